"""Separation speed and memory: Google's TensorFlow graph against the PyTorch TDCN++.

Both backends separate the same clips of --seconds of noise (the cost does not depend on the
audio nor on the weights) with the same threads (--threads: TensorFlow's intra- and inter-op
threads, torch's intra-op threads). The runs are interleaved, round after round (TensorFlow,
then PyTorch at each batch size), so that a machine shared with other work slows every backend
alike; the table gives each backend's median over the rounds. PyTorch runs at each of
--batch_size (clips of one length stacked into one forward pass) and, with several threads on
the CPU, as --workers clips at a time with one thread each; the best is marked.

Then the peak memory of one 10 s clip, each backend in a fresh child process: the peak resident
memory while it separates the clip, and how much that is above the process's resident memory
just before (the model loaded and run once on 1 s); on a GPU also torch's peak allocated GPU
memory.

The models: TensorFlow's graph and checkpoint of --tf_model (default: the random-weight golden of
../shared/reference/tdcnpp2021, the real architecture), and PyTorch's --model (a file of
``python -m desed_task.separation convert``), by default the same checkpoint converted in
memory, so that the largest difference between the backends' sources is printed as well.

    python benchmarks/bench_separation.py [--clips 8] [--seconds 10] [--threads 2] [--rounds 3]
        [--batch_size 1,2,4] [--tf_model DIR] [--model separation.pt]
    python benchmarks/bench_separation.py --device cuda --batch_size 1,16   # PyTorch only

The last column: hours to separate DESED's ~27,000 clips of 10 s at that speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from desed_task.nnet.tdcnpp import TDCNpp  # noqa: E402
from desed_task.separation import load_separator  # noqa: E402
from desed_task.separation.convert import convert_checkpoint, resolve_prefix  # noqa: E402

GOLDEN = REPO.parent / "shared" / "reference" / "tdcnpp2021"
DESED_CLIPS = 27_000
FS = 16000


def make_clips(n: int, seconds: float) -> np.ndarray:
    """(n, samples) float32 noise at 16 kHz."""
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((n, int(seconds * FS)))).astype(np.float32)


def torch_model(args: argparse.Namespace) -> TDCNpp:
    if args.model:
        return load_separator(args.model)
    if args.tf_model:
        return convert_checkpoint(resolve_prefix(args.tf_model, None))
    return TDCNpp().eval()  # random weights: the same cost


def tf_model(args: argparse.Namespace):
    from desed_task.separation.model import TFSeparationModel, model_files_in

    graph, prefix = model_files_in(args.tf_model)
    return TFSeparationModel(graph, prefix, threads=args.threads, gpu_memory_growth=False)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_torch(model: TDCNpp, clips: np.ndarray, batch: int, device: torch.device) -> tuple[float, np.ndarray]:
    """(seconds, sources (n, sources, samples)) of separating `clips` in batches of `batch`."""
    outputs = []
    sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(clips), batch):
            outputs.append(model(torch.from_numpy(clips[i:i + batch]).to(device)).cpu())
    sync(device)
    return time.perf_counter() - start, torch.cat(outputs).numpy()


def run_torch_workers(model: TDCNpp, clips: np.ndarray, workers: int) -> tuple[float, np.ndarray]:
    """(seconds, sources) of separating `clips` one by one in `workers` Python threads with one
    torch thread each (clip-level parallelism: no OpenMP barrier between the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def separate(clip: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(clip[None]))[0].numpy()

    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            outputs = list(pool.map(separate, clips))
        return time.perf_counter() - start, np.stack(outputs)
    finally:
        torch.set_num_threads(threads)


def run_tf(model, clips: np.ndarray) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    outputs = [model.separate(clip) for clip in clips]
    return time.perf_counter() - start, np.stack(outputs)


def memory_child(args: argparse.Namespace, backend: str) -> dict:
    """Peak memory of one 10 s clip, measured in a fresh process (see `memory_main`)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--_memory", backend,
               "--threads", str(args.threads), "--device", args.device]
    for flag in ("tf_model", "model"):
        if getattr(args, flag):
            command += [f"--{flag}", str(getattr(args, flag))]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def memory_status(field: str) -> float:
    """A memory figure of this process in MiB from /proc/self/status (Linux): VmRSS (resident
    now) or VmHWM (peak resident since exec or since `reset_peak`). Not getrusage: a child's
    ru_maxrss starts at its parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    """Reset VmHWM to the resident memory now (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def memory_main(args: argparse.Namespace) -> None:
    """Child process: load, warm up on 1 s, then separate one 10 s clip; print JSON."""
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    clip = make_clips(1, 10.0)
    if args._memory == "tensorflow":
        model = tf_model(args)
        separate = model.separate
        separate(clip[0, :FS])
    else:
        model = torch_model(args).to(device)
        run_torch(model, clip[:, :FS], 1, device)
        separate = lambda audio: run_torch(model, audio[None], 1, device)  # noqa: E731
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
    loaded, reset = memory_status("VmRSS"), True
    try:
        reset_peak()
    except OSError:
        reset = False
    separate(clip[0])
    peak = memory_status("VmHWM")
    result = {"peak_mib": peak, "added_mib": peak - loaded if reset else float("nan")}
    if device.type == "cuda" and args._memory != "tensorflow":
        result["gpu_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch_size", default=None, help="PyTorch batch sizes, comma-separated (default: 1,2,4 on the CPU, 1,16 on a GPU)")
    parser.add_argument("--device", default="cpu", help="PyTorch's device: cpu or cuda[:N] (TensorFlow runs on the CPU only, so it is left out on a GPU)")
    parser.add_argument("--tf_model", type=Path, default=GOLDEN if GOLDEN.is_dir() else None)
    parser.add_argument("--model", type=Path, default=None, help="PyTorch separation.pt (default: --tf_model's checkpoint converted)")
    parser.add_argument("--workers", type=int, default=None, help="also PyTorch with this many clips at a time, one thread each (default: --threads when above 1, on the CPU)")
    parser.add_argument("--no_memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--_memory", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._memory:
        memory_main(args)
        return

    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in (args.batch_size or ("1,2,4" if device.type == "cpu" else "1,16")).split(",")]
    clips = make_clips(args.clips, args.seconds)
    model = torch_model(args).to(device)
    use_tf = device.type == "cpu" and args.tf_model is not None
    tf = tf_model(args) if use_tf else None

    workers = args.workers if args.workers is not None else (args.threads if device.type == "cpu" and args.threads > 1 else 0)
    names = (["tensorflow b=1"] if use_tf else []) + [f"pytorch b={b}" for b in batches]
    names += [f"pytorch {workers}x1 thr"] if workers else []
    times: dict[str, list[float]] = {name: [] for name in names}
    outputs = {}
    # warm-up (graph optimisation, oneDNN kernels, CUDA context) on one short clip each
    if use_tf:
        tf.separate(clips[0, :FS])
    for b in batches:
        run_torch(model, np.repeat(clips[:1, :FS], b, axis=0), b, device)
    for _ in range(args.rounds):
        if use_tf:
            seconds, outputs["tensorflow"] = run_tf(tf, clips)
            times["tensorflow b=1"].append(seconds)
        for b in batches:
            seconds, outputs[b] = run_torch(model, clips, b, device)
            times[f"pytorch b={b}"].append(seconds)
        if workers:
            seconds, outputs["workers"] = run_torch_workers(model, clips, workers)
            times[f"pytorch {workers}x1 thr"].append(seconds)

    print(f"\n{args.clips} clips of {args.seconds:g} s, {args.threads} threads, PyTorch on {device}, "
          f"median of {args.rounds} interleaved rounds (torch {torch.__version__})")
    print(f"{'backend':<16} {'clips/s':>9} {'s/clip':>8} {'x real time':>12} {'DESED hours':>12}")
    rates = {name: args.clips / statistics.median(values) for name, values in times.items()}
    best_torch = max((n for n in names if n.startswith("pytorch")), key=rates.get)
    for name in names:
        rate = rates[name]
        hours = DESED_CLIPS * (10.0 / args.seconds) / rate / 3600
        mark = "  (best PyTorch)" if name == best_torch and sum(n.startswith("pytorch") for n in names) > 1 else ""
        print(f"{name:<16} {rate:>9.3f} {1 / rate:>8.3f} {rate * args.seconds:>12.1f} {hours:>12.2f}{mark}")
    if use_tf:
        print(f"PyTorch / TensorFlow speed: {rates[best_torch] / rates['tensorflow b=1']:.2f} (best PyTorch), "
              f"{rates['pytorch b=1'] / rates['tensorflow b=1']:.2f} (batch 1)"
              if "pytorch b=1" in rates else "")
        if args.model is None:
            diff = max(float(np.abs(outputs[key] - outputs["tensorflow"]).max())
                       for key in [*batches, *(["workers"] if workers else [])])
            print(f"largest |PyTorch - TensorFlow| over the sources: {diff:.2e}")
    if not args.no_memory:
        print("\npeak memory of one 10 s clip (fresh process, batch 1)")
        for backend in (["tensorflow"] if use_tf else []) + ["pytorch"]:
            mem = memory_child(args, backend)
            gpu = f", GPU peak allocated {mem['gpu_peak_mib']:.0f} MiB" if "gpu_peak_mib" in mem else ""
            print(f"{backend:<11} peak resident {mem['peak_mib']:.0f} MiB, "
                  f"{mem['added_mib']:.0f} MiB above the loaded model{gpu}")


if __name__ == "__main__":
    main()
