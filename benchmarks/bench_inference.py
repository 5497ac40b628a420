"""Real-time factor and peak memory of ``python -m desed_task.inference`` on the CPU (PyTorch also
on a GPU with ``--gpus 1``).

The 2021 network (confs/sed.yaml ``net:``, random weights: the cost does not depend on them) scores
a recording of random noise written at --rate Hz, with PyTorch and with ONNX Runtime (the model
exported by ``python -m desed_task.export``), each in its own process limited to --threads
threads; peak memory is that process's maximum resident set. Then a recording --long_factor
times longer, to show that memory does not grow with the length.

    python benchmarks/bench_inference.py [--minutes 10] [--long_factor 6] [--threads 2]
        [--window 10 --hop 5] [--rate 16000] [--gpus 0]

``--gpus`` is the CLI's option for the PyTorch run (ONNX Runtime runs on the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from desed_task.config import load_config  # noqa: E402
from desed_task.data.classes import DESED_CLASSES  # noqa: E402
from desed_task.nnet import build_network  # noqa: E402
from desed_task.training.mean_teacher import MeanTeacher  # noqa: E402


def write_noise(path: Path, minutes: float, rate: int) -> Path:
    """A mono recording of low-level noise, written in blocks of one minute."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as handle:
        for _ in range(int(np.ceil(minutes))):
            handle.write((0.05 * rng.standard_normal(60 * rate)).astype(np.float32))
    return path


def python_path() -> str:
    """This repository first on the children's PYTHONPATH, what the caller put there kept."""
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


def run_cli(args: list[str], threads: int) -> tuple[dict, float]:
    """Run the CLI in a child process; (its JSON summary, its peak resident memory in MiB)."""
    env = {**os.environ, "PYTHONPATH": python_path(), "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryFile("w+") as errors:  # a file, not a pipe: wait4 below reaps the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "desed_task.inference", *args],
            stdout=subprocess.PIPE, stderr=errors, text=True, env=env, cwd=REPO,
        )
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"error: the inference CLI failed ({proc.returncode}): {out[-1000:]}{errors.read()[-2000:]}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conf_file", default=str(REPO / "confs" / "sed.yaml"))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--long_factor", type=float, default=6.0, help="the memory check's recording is this many times longer (0: skip)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--hop", type=float, default=5.0)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--rate", type=int, default=16000, help="sample rate of the recording (resampled when not 16000)")
    parser.add_argument("--gpus", default="0", help='the PyTorch run\'s device: "0" the CPU (default), "1" a GPU')
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = load_config(args.conf_file)
        torch.manual_seed(0)
        module = MeanTeacher(config, build_network(config["net"]), list(DESED_CLASSES), 0.064)
        checkpoint = tmp / "sed2021.ckpt"
        torch.save({"hyper_parameters": config, "state_dict": module.state_dict()}, checkpoint)
        onnx_path = tmp / "sed2021.onnx"
        export = subprocess.run(
            [sys.executable, "-m", "desed_task.export", "--checkpoint", str(checkpoint), "--onnx", str(onnx_path)],
            cwd=REPO, env={**os.environ, "PYTHONPATH": python_path()}, capture_output=True, text=True,
        )
        backends = [("PyTorch", ["--gpus", args.gpus])]
        if export.returncode == 0:
            backends.append(("ONNX Runtime", ["--gpus", "0", "--onnx", str(onnx_path)]))
        else:  # the PyTorch figures still come; say why ONNX Runtime's do not
            print(f"ONNX export failed ({export.returncode}), ONNX Runtime skipped:\n{export.stderr[-3000:]}", flush=True)
        common = ["--checkpoint", str(checkpoint), "--window", str(args.window), "--hop", str(args.hop),
                  "--batch_size", str(args.batch_size)]
        recording = write_noise(tmp / "recording.wav", args.minutes, args.rate)
        print(f"{args.minutes:g} min at {args.rate} Hz, windows {args.window:g} s every {args.hop:g} s, "
              f"{args.threads} threads, 2021 CRNN, PyTorch on {'the CPU' if args.gpus == '0' else 'GPU ' + args.gpus}")
        print("| backend | seconds | real-time factor | peak memory (MiB) |\n|---|---|---|---|")
        rows = {}
        for backend, extra in backends:
            summary, peak = run_cli([*common, *extra, "--out_dir", str(tmp / backend), str(recording)], args.threads)
            rows[backend] = peak
            print(f"| {backend} | {summary['seconds']:.1f} | {summary['realtime_factor']:.0f}x | {peak:.0f} |", flush=True)
        if args.long_factor and "ONNX Runtime" in rows:
            minutes = args.minutes * args.long_factor
            longer = write_noise(tmp / "longer.wav", minutes, args.rate)
            summary, peak = run_cli([*common, "--gpus", "0", "--onnx", str(onnx_path), "--out_dir", str(tmp / "long"), str(longer)],
                                    args.threads)
            print(f"\nONNX Runtime, {minutes:g} min: {summary['realtime_factor']:.0f}x real time, peak memory "
                  f"{peak:.0f} MiB = {peak / rows['ONNX Runtime']:.2f} x that of {args.minutes:g} min")


if __name__ == "__main__":
    main()
