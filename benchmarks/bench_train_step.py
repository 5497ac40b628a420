"""Time one full mean-teacher training step of the 2021 baseline and print clips per second.

A step = features (mel + dB + scaler), student forward and backward, teacher forward, Adam
update and EMA, on a batch of [12, 12, 24] clips of 10 s at 16 kHz (random audio: the cost does
not depend on the content). With ``--conf_file confs/pretrained.yaml`` (the 2023 CRNN, batch
[24, 24, 48]) each clip also brings its frame embeddings (768 x 496, random), as the loader reads
them from the extracted files; BEATs does not run in the step (its embeddings are extracted
once: ``benchmarks/bench_embeddings.py``).

    python benchmarks/bench_train_step.py [--conf_file confs/sed.yaml] [--device cpu|cuda]
        [--steps 5] [--threads N]

`benchmarks/bench_shared_cores.py` runs it alone and then two at once.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import desed_task  # noqa: E402, F401 - first: it sets the OpenMP wait policy before torch loads

# isort: split
import torch  # noqa: E402

from desed_task.config import load_config  # noqa: E402
from desed_task.data.classes import DESED_CLASSES  # noqa: E402
from desed_task.data.datasets import LabelType  # noqa: E402
from desed_task.features.kaldi import KaldiFbank  # noqa: E402
from desed_task.nnet import build_network  # noqa: E402
from desed_task.nnet.beats import N_MEL_BINS  # noqa: E402
from desed_task.threads import set_cpu_threads  # noqa: E402
from desed_task.training.ema import update_ema  # noqa: E402
from desed_task.training.mean_teacher import MeanTeacher  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conf_file", default=str(Path(__file__).resolve().parents[1] / "confs" / "sed.yaml"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: as training)")
    parser.add_argument("--barrier", type=Path, help=argparse.SUPPRESS)  # bench_shared_cores.py
    parser.add_argument("--parties", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        set_cpu_threads()
    config = load_config(args.conf_file)
    config["training"]["mixup"] = "soft"
    module = MeanTeacher(config, build_network(config["net"]), list(DESED_CLASSES), 0.064).to(args.device)
    module.train()
    optimizer = torch.optim.Adam(module.sed_student.parameters(), lr=1e-3)
    batch_sizes = config["training"]["batch_size"]
    n_samples = int(config["data"]["audio_max_len"] * config["data"]["fs"])
    batch = make_batch(batch_sizes, n_samples, 156, args.device, config["net"])
    # the module's step without a Trainer: log() and the warm-up need one, so stub them
    module.log = module.log_dict = lambda *a, **k: None
    module.warmup_factor = lambda: 0.5
    module.optimizers = lambda: optimizer

    def step() -> None:
        loss = module.training_step({k: v.clone() for k, v in batch.items()}, 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        update_ema(module.sed_student, module.sed_teacher, 0.999, 10)

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    step()  # warm-up (allocations, cuDNN autotuning)
    sync()
    if args.barrier:  # start timing when every run of the group is warm
        (args.barrier / f"ready.{id(step)}.{time.time_ns()}").touch()
        while len(list(args.barrier.glob("ready.*"))) < args.parties:
            time.sleep(0.01)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    clips = sum(batch_sizes)
    print(f"device: {args.device} ({torch.get_num_threads()} CPU threads), config: {args.conf_file}")
    if "embeddings" in batch:
        print(f"with embeddings {tuple(batch['embeddings'].shape[1:])} per clip (net.aggregation_type "
              f"{config['net'].get('aggregation_type', 'pool1d')})")
    print(f"batch {batch_sizes} = {clips} clips of {config['data']['audio_max_len']} s")
    print(f"training step: median {median * 1000:.1f} ms, min {min(times) * 1000:.1f} ms over {args.steps} steps")
    print(f"throughput: {clips / median:.1f} clips/s")
    print(json.dumps({"median_s": median, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
