"""Time one full mean-teacher training step of the 2021 baseline; print clips per second and,
beside the 2021 recipe's own step, the ratio of the two.

A step = features (mel + dB + scaler), student forward and backward, teacher forward, Adam
update and EMA, on a batch of [12, 12, 24] clips of 10 s at 16 kHz (random audio: the cost does
not depend on the content). With ``--conf_file confs/pretrained.yaml`` (the 2023 CRNN, batch
[24, 24, 48]) each clip also brings its frame embeddings (768 x 496, random), as the loader reads
them from the extracted files; BEATs does not run in the step (its embeddings are extracted
once: ``benchmarks/bench_embeddings.py``).

For the 2021 CRNN, when the 2021 recipe's files are found (``--reference``, default
``../shared/oracle2021/ref``), the recipe's step (`benchmarks/step2021.py`: its CRNN, scaler,
mixup, training_step and EMA loop, starting from our network's weights) runs in the same
process, alternated with ours step by step (ABBA order, the same mixup coin for both), and the
ratio ours / 2021 is printed: the median of the per-pair ratios and their spread.

    python benchmarks/bench_train_step.py [--conf_file confs/sed.yaml] [--device cpu|cuda]
        [--steps 5] [--threads N] [--precision 32|bf16-mixed|16-mixed] [--batch_size S W U]
        [--reference DIR | --no_reference] [--profile]

`--precision` runs the step under `torch.autocast` as Lightning's mixed precision does (16-mixed
with a gradient scaler). `--profile` prints the operators that cost most in one step of each
(torch.profiler, self CPU time). `benchmarks/bench_shared_cores.py` runs it alone and then two at
once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import desed_task  # noqa: E402, F401 - first: it sets the OpenMP wait policy before torch loads

# isort: split
import torch  # noqa: E402

from desed_task.config import load_config  # noqa: E402
from desed_task.data.classes import DESED_CLASSES  # noqa: E402
from desed_task.features.kaldi import KaldiFbank  # noqa: E402
from desed_task.nnet import build_network  # noqa: E402
from desed_task.nnet.beats import N_MEL_BINS  # noqa: E402
from desed_task.sets import LabelType  # noqa: E402
from desed_task.threads import set_cpu_threads  # noqa: E402
from desed_task.training.ema import update_ema  # noqa: E402
from desed_task.training.mean_teacher import MeanTeacher  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step2021 import DEFAULT_REFERENCE, Step2021  # noqa: E402

PRECISIONS = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def make_batch(batch_sizes: list[int], n_samples: int, n_frames: int, device: str, net: dict | None = None) -> dict:
    n = sum(batch_sizes)
    kinds = [LabelType.STRONG] * batch_sizes[0] + [LabelType.WEAK] * batch_sizes[1] + [LabelType.UNLABELED] * batch_sizes[2]
    batch = {
        "audio": 0.1 * torch.randn(n, n_samples, device=device),
        "strong_targets": (torch.rand(n, len(DESED_CLASSES), n_frames, device=device) > 0.8).float(),
        "weak_targets": (torch.rand(n, len(DESED_CLASSES), device=device) > 0.7).float(),
        "label_type": torch.tensor([int(k) for k in kinds], device=device),
    }
    if net and net.get("use_embeddings"):  # BEATs' tokens of the clip: 496 for 10 s
        size = int(net.get("embedding_size", 768))
        tokens = (KaldiFbank(num_mel_bins=N_MEL_BINS).n_frames(n_samples) // 16) * (N_MEL_BINS // 16)
        shape = (n, size) if net.get("embedding_type") == "global" else (n, size, tokens)
        batch["embeddings"] = torch.randn(*shape, device=device)
    return batch


def our_step(config: dict, device: str, autocast: Callable, scaler: torch.amp.GradScaler | None) -> tuple[Callable, MeanTeacher]:
    """Our `MeanTeacher.training_step`, then zero_grad, backward, Adam and the EMA."""
    module = MeanTeacher(config, build_network(config["net"]), list(DESED_CLASSES), 0.064).to(device)
    module.train()
    optimizer = torch.optim.Adam(module.sed_student.parameters(), lr=1e-3)
    # the module's step without a Trainer: log() and the warm-up need one, so stub them
    module.log = module.log_dict = lambda *a, **k: None
    module.warmup_factor = lambda: 0.5
    module.optimizers = lambda: optimizer

    def step(batch: dict) -> None:
        with autocast():
            loss = module.training_step({k: v.clone() for k, v in batch.items()}, 0)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        update_ema(module.sed_student, module.sed_teacher, 0.999, 10)

    return step, module


def reference_step(reference: Path, config: dict, device: str, state_dict: dict, autocast: Callable,
                   scaler: torch.amp.GradScaler | None) -> tuple[Callable, str]:
    """The 2021 recipe's step (`step2021.Step2021`) from the same initial weights."""
    ref = Step2021(reference, config, device, state_dict)

    def step(batch: dict) -> None:
        with autocast():
            loss = ref.training_step(batch["audio"].clone(), batch["strong_targets"].clone())
        ref.update_ema(0.999, 10)
        ref.optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            ref.optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(ref.optimizer)
            scaler.update()

    return step, ref.mel_kind


def profile_steps(steps: dict[str, Callable], batch: dict, top: int = 15) -> None:
    """The operators of one step of each, by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    for name, step in steps.items():
        random.seed(0)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step(batch)
        events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in events)
        print(f"--- {name}: {total / 1e3:.1f} ms self CPU time in all")
        for event in events[:top]:
            print(f"{event.self_cpu_time_total / 1e3:10.1f} ms {event.count:6d}x  {event.key}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conf_file", default=str(Path(__file__).resolve().parents[1] / "confs" / "sed.yaml"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: as training)")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="32",
                        help="32 (default), or torch.autocast as Lightning's bf16-mixed / 16-mixed")
    parser.add_argument("--batch_size", type=int, nargs=3, metavar=("STRONG", "WEAK", "UNLABELLED"),
                        help="clips of each kind (default: the config's training.batch_size)")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE,
                        help="folder of the 2021 recipe's desed_task/ (default: %(default)s)")
    parser.add_argument("--no_reference", action="store_true", help="time our step only")
    parser.add_argument("--profile", action="store_true", help="print the costliest operators of one step")
    parser.add_argument("--barrier", type=Path, help=argparse.SUPPRESS)  # bench_shared_cores.py
    parser.add_argument("--parties", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        set_cpu_threads()
    config = load_config(args.conf_file)
    config["training"]["mixup"] = "soft"
    if args.batch_size:
        config["training"]["batch_size"] = list(args.batch_size)
    device_type = torch.device(args.device).type
    dtype = PRECISIONS[args.precision]

    def autocast():
        return torch.autocast(device_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def grad_scaler() -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(device_type) if dtype == torch.float16 else None

    torch.manual_seed(0)
    steps: dict[str, Callable] = {}
    steps["ours"], module = our_step(config, args.device, autocast, grad_scaler())
    reference_note = None
    if args.no_reference or args.barrier:
        pass
    elif config["net"].get("use_embeddings"):
        reference_note = "2021 recipe's step: not compared (the 2023 CRNN with embeddings is not the 2021 network)"
    elif not (args.reference / "desed_task" / "nnet" / "CRNN.py").is_file():
        reference_note = f"2021 recipe's step: skipped (its files are not at {args.reference}; --reference DIR)"
    else:
        state = module.sed_student.state_dict()
        steps["2021"], mel_kind = reference_step(args.reference, config, args.device, state, autocast, grad_scaler())
        reference_note = f"2021 recipe's step: {args.reference} (mel and dB: {mel_kind})"

    batch_sizes = config["training"]["batch_size"]
    n_samples = int(config["data"]["audio_max_len"] * config["data"]["fs"])
    batch = make_batch(batch_sizes, n_samples, 156, args.device, config["net"])

    def sync() -> None:
        if device_type == "cuda":
            torch.cuda.synchronize()

    for step in steps.values():  # warm-up (allocations, cuDNN autotuning)
        step(batch)
    sync()
    if args.profile:
        profile_steps(steps, batch)
    if args.barrier:  # start timing when every run of the group is warm
        (args.barrier / f"ready.{id(batch)}.{time.time_ns()}").touch()
        while len(list(args.barrier.glob("ready.*"))) < args.parties:
            time.sleep(0.01)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(args.steps):
        order = list(steps) if i % 2 == 0 else list(reversed(steps))  # ABBA
        for name in order:
            random.seed(i)  # the same mixup coin for both
            start = time.perf_counter()
            steps[name](batch)
            sync()
            times[name].append(time.perf_counter() - start)
    median = statistics.median(times["ours"])
    clips = sum(batch_sizes)
    print(f"device: {args.device} ({torch.get_num_threads()} CPU threads), precision {args.precision}, "
          f"config: {args.conf_file}")
    if "embeddings" in batch:
        print(f"with embeddings {tuple(batch['embeddings'].shape[1:])} per clip (net.aggregation_type "
              f"{config['net'].get('aggregation_type', 'pool1d')})")
    print(f"batch {batch_sizes} = {clips} clips of {config['data']['audio_max_len']} s")
    print(f"training step: median {median * 1000:.1f} ms, min {min(times['ours']) * 1000:.1f} ms over {args.steps} steps")
    print(f"throughput: {clips / median:.1f} clips/s")
    result = {"median_s": median, "threads": torch.get_num_threads(), "precision": args.precision}
    if reference_note:
        print(reference_note)
    if "2021" in times:
        ratios = sorted(a / b for a, b in zip(times["ours"], times["2021"]))
        ratio = statistics.median(ratios)
        print(f"2021 recipe's step: median {statistics.median(times['2021']) * 1000:.1f} ms, "
              f"min {min(times['2021']) * 1000:.1f} ms")
        print(f"ratio ours / 2021: median {ratio:.3f} over {len(ratios)} alternated pairs "
              f"(from {ratios[0]:.3f} to {ratios[-1]:.3f}); ratio of the minima "
              f"{min(times['ours']) / min(times['2021']):.3f}")
        result.update(reference_median_s=statistics.median(times["2021"]), ratio=ratio, ratios=ratios)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
