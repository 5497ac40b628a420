"""The Lightning Trainer of the recipe: devices, DDP, logger and callbacks from the config."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger


def _keep_tensorflow_out() -> None:
    """TensorBoard imports TensorFlow when it is installed (the separation extra); its own
    `notf` switch makes it use its stub instead, so the SED process never loads TensorFlow."""
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))


def parse_gpus(gpus: str | None) -> tuple[str, int | list[int]]:
    """`--gpus` to (accelerator, devices).

    "0" runs on the CPU; "N" uses N GPUs; "i,j" uses those GPU indices; None (the default)
    uses one GPU when CUDA is available and the CPU otherwise.
    """
    if gpus is None or gpus == "auto":
        return ("gpu", 1) if torch.cuda.is_available() else ("cpu", 1)
    text = gpus.strip()
    if "," in text:
        devices = [int(i) for i in text.split(",") if i.strip()]
        return "gpu", devices
    count = int(text)
    if count == 0:
        return "cpu", 1
    if not torch.cuda.is_available():
        raise SystemExit(f"--gpus {gpus}: no CUDA GPU is visible; use --gpus 0 to run on the CPU")
    return "gpu", count


def set_cpu_threads(processes: int, loader_workers: int) -> int:
    """Intra-op threads for CPU training: the cores left after the DDP processes and their
    data loaders. More threads than free cores makes the GRU's many small per-frame ops wait
    on descheduled threads (seen: 250x slower on 2 busy cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // max(processes, 1) - loader_workers)
    torch.set_num_threads(threads)
    return threads


def build_trainer(
    config: dict,
    log_dir: str | Path,
    gpus: str | None = None,
    *,
    cpu_processes: int = 1,
    num_nodes: int = 1,
    fast_dev_run: bool = False,
) -> L.Trainer:
    """A Trainer with TensorBoard logs under `log_dir`/version_N, the best (val/obj_metric)
    and the last checkpoint, early stopping, and DDP when more than one process is used."""
    training = config["training"]
    accelerator, devices = parse_gpus(gpus)
    if accelerator == "cpu":
        devices = cpu_processes
        workers = min(int(training.get("num_workers", 0) or 0), os.cpu_count() or 1)
        set_cpu_threads(cpu_processes * num_nodes, workers)
    n_processes = (len(devices) if isinstance(devices, list) else devices) * num_nodes
    strategy = "auto"
    if n_processes > 1:
        backend = training.get("backend") or "ddp"
        strategy = "ddp" if backend in ("ddp", "dp") else backend
    log_dir = Path(log_dir)
    _keep_tensorflow_out()
    logger = TensorBoardLogger(save_dir=str(log_dir.parent), name=log_dir.name)
    callbacks = [
        ModelCheckpoint(monitor="val/obj_metric", mode="max", save_top_k=1, filename="best-{epoch}-{step}"),
        # Lightning 2.6 refreshes `save_last` only when the best improves: a separate callback
        # keeps checkpoints/last.ckpt at the latest epoch, for --resume_from_checkpoint
        ModelCheckpoint(save_top_k=1, filename="last", enable_version_counter=False),
        EarlyStopping(monitor="val/obj_metric", patience=training["early_stop_patience"], mode="max"),
        TQDMProgressBar(refresh_rate=10),
    ]
    clip = float(training.get("gradient_clip") or 0.0)
    return L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        max_epochs=training["n_epochs"],
        accumulate_grad_batches=int(training.get("accumulate_batches", 1) or 1),
        gradient_clip_val=clip if clip > 0 else None,
        check_val_every_n_epoch=int(training.get("validation_interval", 1) or 1),
        limit_train_batches=training.get("max_steps_per_epoch") or 1.0,
        num_sanity_val_steps=0,
        log_every_n_steps=min(40, int(training.get("max_steps_per_epoch") or 40)),
        precision=training.get("precision") or "32-true",
        logger=logger,
        callbacks=callbacks,
        default_root_dir=str(log_dir),
        fast_dev_run=fast_dev_run,
        use_distributed_sampler=False,
        enable_model_summary=True,
    )
