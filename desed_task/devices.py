"""`--gpus`, read the same way by every command (train_sed.py, finetune_on_separated.py,
``python -m desed_task.inference``): the one parser, checked against the GPUs that are there.

Documented forms: "0" the CPU; "N" N GPUs; "i,j" (or "i,") those GPU indices; not given: one GPU
when CUDA is available, else the CPU.
"""

from __future__ import annotations

import torch

from desed_task.errors import UserError


class DeviceError(UserError):
    """`--gpus` asks for what is not there, or is not a documented form; one line with the fix."""


def _visible_gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def parse_gpus(gpus: str | None) -> tuple[str, int | list[int]]:
    """`--gpus` to Lightning's (accelerator, devices): ("cpu", 1), ("gpu", N) or ("gpu", [i, j]).

    Raises:
        DeviceError: not a documented form, or more GPUs (or a higher index) than are visible.
    """
    if gpus is None or str(gpus).strip() == "auto":
        return ("gpu", 1) if _visible_gpus() else ("cpu", 1)
    text = str(gpus).strip()
    parts = [part.strip() for part in text.split(",")]
    if "," in text and parts[-1] == "":
        parts.pop()  # "i," names one index, as Lightning reads it
    if not parts or not all(part.isdigit() for part in parts):
        raise DeviceError(f"--gpus {gpus}: give 0 (the CPU), a GPU count N, or GPU indices i,j")
    if "," not in text and int(text) == 0:
        return "cpu", 1
    visible = _visible_gpus()
    wanted = [int(part) for part in parts] if "," in text else int(text)
    if not visible:
        raise DeviceError(f"--gpus {gpus}: no CUDA GPU is visible here; use --gpus 0 to run on the CPU")
    if isinstance(wanted, list):
        if len(set(wanted)) != len(wanted):
            raise DeviceError(f"--gpus {gpus}: a GPU index is given twice")
        if max(wanted) >= visible:
            raise DeviceError(
                f"--gpus {gpus}: GPU index {max(wanted)} is not visible ({visible} GPU(s) here, "
                f"indices 0 to {visible - 1}; CUDA_VISIBLE_DEVICES renumbers them from 0)"
            )
    elif wanted > visible:
        raise DeviceError(f"--gpus {gpus}: {wanted} GPUs asked for, {visible} visible here; use --gpus {visible} or fewer")
    return "gpu", wanted


def torch_device(gpus: str | None) -> torch.device:
    """The one device of a one-process command: the CPU, or the first GPU `--gpus` names.

    Raises:
        DeviceError: as :func:`parse_gpus`.
    """
    accelerator, devices = parse_gpus(gpus)
    if accelerator == "cpu":
        return torch.device("cpu")
    return torch.device(f"cuda:{devices[0]}" if isinstance(devices, list) else "cuda:0")
