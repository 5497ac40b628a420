"""`--gpus`: which accelerator a command runs on (training, embedding extraction)."""

from __future__ import annotations

import torch

from desed_task.config import ConfigError


def parse_gpus(gpus: str | None) -> tuple[str, int | list[int]]:
    """`--gpus` to (accelerator, devices).

    "0" runs on the CPU; "N" uses N GPUs; "i,j" uses those GPU indices; None (the default)
    uses one GPU when CUDA is available and the CPU otherwise.
    """
    if gpus is None or gpus == "auto":
        return ("gpu", 1) if torch.cuda.is_available() else ("cpu", 1)
    text = gpus.strip()
    parts = [i.strip() for i in text.split(",") if i.strip()]
    if not parts or not all(i.isdigit() for i in parts):
        raise ConfigError(f"--gpus {gpus}: give 0 (CPU), a GPU count N, or GPU indices i,j")
    if "," in text:
        return "gpu", [int(i) for i in parts]
    count = int(text)
    if count == 0:
        return "cpu", 1
    if not torch.cuda.is_available():
        raise ConfigError(f"--gpus {gpus}: no CUDA GPU is visible; use --gpus 0 to run on the CPU")
    return "gpu", count


def single_device(gpus: str | None) -> torch.device:
    """The one torch device of a single-process command (embedding extraction) for `--gpus`,
    read as :func:`parse_gpus` reads it: "0" is the CPU, "N" or "i,j" the first GPU named,
    None (or "auto") a GPU when CUDA is available and the CPU otherwise."""
    accelerator, devices = parse_gpus(gpus)
    if accelerator == "cpu":
        return torch.device("cpu")
    index = devices[0] if isinstance(devices, list) else 0
    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        raise ConfigError(f"--gpus {gpus}: no CUDA GPU {index} is visible; use --gpus 0 to run on the CPU")
    return torch.device("cuda", index)
