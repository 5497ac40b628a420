"""The Lightning Trainer of the recipe: devices, DDP, logger and callbacks from the config."""

from __future__ import annotations

import logging
import os
import random
import sys
import types
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger

from desed_task.devices import parse_gpus
from desed_task.threads import set_cpu_threads

log = logging.getLogger(__name__)

LIGHTNING_NOISE = (
    "💡 Tip:",  # adverts for Lightning's cloud services
    "GPU available: False",  # said on every CPU run; "GPU available: True" is kept
    "TPU available:",
    "HPU available:",
    "Loading `train_dataloader` to estimate number of stepping batches.",
)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic on local disks: each checkpoint is written to
    a hidden file beside its final name, then renamed. A run killed while saving keeps its
    previous `last.ckpt` whole (Lightning writes through a temporary file in /tmp, which is
    copied, not renamed, when /tmp is another file system, and left there by a kill)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        if "://" in str(path) or storage_options is not None:
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.saving")
        try:
            with open(partial, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)


def _keep_tensorflow_out() -> None:
    """TensorBoard imports TensorFlow when it is installed (the separation extra); its own
    `notf` switch makes it use its stub instead, so the SED process never loads TensorFlow."""
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))


class _DropLightningNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(LIGHTNING_NOISE)


def quiet_lightning() -> None:
    """Drop Lightning's adverts and CPU-run platform lines from its log (idempotent)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLightningNoise) for f in logger.filters):
            logger.addFilter(_DropLightningNoise())


def random_states() -> dict:
    """The global generators' states (Python, numpy, torch CPU and CUDA) in types that
    `torch.load(weights_only=True)` reads back."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, python_gauss = random.getstate()
    states = {
        "python": [version, list(internal), python_gauss],
        "numpy": [name, keys.tolist(), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict) -> None:
    """Restore what `random_states` returned."""
    version, internal, python_gauss = states["python"]
    random.setstate((version, tuple(internal), python_gauss))
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RandomStateCheckpoint(Callback):
    """Keeps the random generators' states in every checkpoint and restores them on resume, so
    that a run resumed from `last.ckpt` draws the same mixup and dropout as an uninterrupted
    one (Lightning restores the weights, optimizer and loops, not these)."""

    def state_dict(self) -> dict:
        return random_states()

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            set_random_states(state_dict)


class ResumableModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that keeps the best score of the run it resumes: Lightning forgets it
    when the checkpoint folder changes (a resumed run logs to a new version_N), so the first
    validation after a resume would become the "best" whatever its score. The previous best
    file stays the one to beat (and is replaced as usual when beaten)."""

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        best, score = state_dict.get("best_model_path"), state_dict.get("best_model_score")
        if self.best_model_score is None and score is not None and best and Path(best).is_file():
            self.best_model_score, self.best_model_path = score, best
            self.best_k_models = {best: score}
            self.kth_best_model_path, self.kth_value = best, score


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
        threads = set_cpu_threads(cpu_processes, workers)  # processes of this node
        log.info("CPU: %d torch thread(s) per process, %d loader worker(s)", threads, workers)
    n_processes = (len(devices) if isinstance(devices, list) else devices) * num_nodes
    strategy = "auto"
    if n_processes > 1:
        backend = training.get("backend") or "ddp"
        strategy = "ddp" if backend in ("ddp", "dp") else backend
    log_dir = Path(log_dir)
    _keep_tensorflow_out()
    quiet_lightning()
    logger = TensorBoardLogger(save_dir=str(log_dir.parent), name=log_dir.name)
    callbacks = [
        ResumableModelCheckpoint(monitor="val/obj_metric", mode="max", save_top_k=1, filename="best-{epoch}-{step}"),
        # Lightning 2.6 refreshes `save_last` only when the best improves: a separate callback
        # keeps checkpoints/last.ckpt at the latest epoch, for --resume_from_checkpoint
        ModelCheckpoint(save_top_k=1, filename="last", enable_version_counter=False),
        EarlyStopping(monitor="val/obj_metric", patience=training["early_stop_patience"], mode="max"),
        TQDMProgressBar(refresh_rate=10),
        RandomStateCheckpoint(),
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
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(log_dir),
        fast_dev_run=fast_dev_run,
        use_distributed_sampler=False,
        enable_model_summary=True,
    )
