"""The Lightning Trainer of the recipe: devices, DDP, logger and callbacks from the config."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
import types
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    ModelSummary,
    TQDMProgressBar,
)
from lightning.pytorch.loggers import TensorBoardLogger

from desed_task.devices import parse_gpus
from desed_task.threads import set_cpu_threads

log = logging.getLogger(__name__)

LAST_CHECKPOINT = "last"  # checkpoints/last.ckpt, rewritten after every epoch
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


@contextlib.contextmanager
def preserved_random_states() -> Iterator[None]:
    """Run a block without moving the global generators (e.g. building the demo data on the
    first run only): the draws of training stay those of a seeded run."""
    states = random_states()
    try:
        yield
    finally:
        set_random_states(states)


class RandomStateCheckpoint(Callback):
    """Keeps the random generators' states in every checkpoint and restores them on resume, so
    that a run resumed from `last.ckpt` draws the same mixup and dropout as an uninterrupted
    one (Lightning restores the weights, optimizer and loops, not these)."""

    def state_dict(self) -> dict:
        return random_states()

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            set_random_states(state_dict)


@contextlib.contextmanager
def _dirpath_change_expected() -> Iterator[None]:
    """Drop Lightning's warning that a resumed run's checkpoint folder (its new version_N)
    differs from the killed run's: the new folder is intended, and the best score that the
    warning says is lost is restored by ResumableModelCheckpoint."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The dirpath has changed from", category=UserWarning)
        yield


class ResumableModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that keeps the best score of the run it resumes: Lightning forgets it
    when the checkpoint folder changes (a resumed run logs to a new version_N), so the first
    validation after a resume would become the "best" whatever its score. The previous best
    file stays the one to beat (and is replaced as usual when beaten).

    Lightning warns on every resume that the folder changed and the best score "won't be
    reloaded"; as it is reloaded here, that warning is dropped and one info line says what
    happens instead (when the run starts: resumed from which file, the best score so far, and
    which file holds it)."""

    _restored: tuple[float, str] | None = None

    def load_state_dict(self, state_dict: dict) -> None:
        with _dirpath_change_expected():
            super().load_state_dict(state_dict)
        best, score = state_dict.get("best_model_path"), state_dict.get("best_model_score")
        if self.best_model_score is None and score is not None and best and Path(best).is_file():
            self.best_model_score, self.best_model_path = score, best
            self.best_k_models = {best: score}
            self.kth_best_model_path, self.kth_value = best, score
            self._restored = (float(score), best)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if self._restored is not None and trainer.is_global_zero:
            score, best = self._restored
            log.info(
                "resumed from %s: best %s so far %.4f, from %s (the score to beat; new checkpoints "
                "go to %s)", trainer.ckpt_path, self.monitor, score, best, self.dirpath,
            )
        self._restored = None


class LastCheckpoint(ModelCheckpoint):
    """checkpoints/last.ckpt, rewritten after every epoch (for --resume_from_checkpoint), quiet
    on resume. Its state key stays ModelCheckpoint's, that of the last.ckpt files written before
    this class existed, so that they resume without Lightning's missing-callback warning."""

    @property
    def state_key(self) -> str:
        return "ModelCheckpoint" + super().state_key.removeprefix(type(self).__qualname__)

    def load_state_dict(self, state_dict: dict) -> None:
        with _dirpath_change_expected():
            super().load_state_dict(state_dict)


class ParameterSummary(ModelSummary):
    """Lightning's model summary without its FLOPs: Lightning counts them only through an
    ``example_input_array``, which the mean teacher has not, and printed 0 for each layer."""

    @staticmethod
    def summarize(summary_data, total_parameters, trainable_parameters, model_size, total_training_modes,
                  total_flops=0, **summarize_kwargs) -> None:
        columns = [(name, [str(v) for v in values]) for name, values in summary_data if name != "FLOPs"]
        widths = [max([len(name), *map(len, values)]) for name, values in columns]
        rows = [[name for name, _ in columns], *zip(*(values for _, values in columns))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        log.info(
            "model:\n%s\n%s trainable, %s non-trainable parameters (%.2f MB)", "\n".join(lines),
            f"{trainable_parameters:,}", f"{total_parameters - trainable_parameters:,}", model_size,
        )


def build_trainer(
    config: dict,
    log_dir: str | Path,
    gpus: str | None = None,
    *,
    cpu_processes: int = 1,
    num_nodes: int = 1,
    fast_dev_run: bool = False,
    recipe_callbacks: Sequence[Callback] = (),
) -> L.Trainer:
    """A Trainer with TensorBoard logs under `log_dir`/version_N, the best (val/obj_metric)
    and the last checkpoint, early stopping, and DDP when more than one process is used.
    `recipe_callbacks` (the scaler fit, the validation and test scoring) run after the
    Trainer's own callbacks (the model summary is printed before the scaler is fitted) and
    before the checkpoint callbacks, which Lightning moves last."""
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
        LastCheckpoint(save_top_k=1, filename=LAST_CHECKPOINT, enable_version_counter=False),
        ParameterSummary(),
        EarlyStopping(monitor="val/obj_metric", patience=training["early_stop_patience"], mode="max"),
        RandomStateCheckpoint(),
    ]
    progress_bar = training.get("enable_progress_bar", True)
    if progress_bar:
        callbacks.insert(-1, TQDMProgressBar(refresh_rate=10))
    callbacks += recipe_callbacks
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
        # None, not 1.0: Lightning then says nothing (1.0 logs "100% of the batches will be used")
        limit_train_batches=training.get("max_steps_per_epoch") or None,
        num_sanity_val_steps=0,
        log_every_n_steps=min(40, int(training.get("max_steps_per_epoch") or 40)),
        precision=training.get("precision") or "32-true",
        logger=logger,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        # --fast_dev_run: Lightning swaps the logger for a dummy one and writes under
        # default_root_dir: the next version_N folder, as a real run's
        default_root_dir=logger.log_dir if fast_dev_run else str(log_dir),
        fast_dev_run=fast_dev_run,
        use_distributed_sampler=False,
        enable_model_summary=False,  # ParameterSummary, among the callbacks, prints it
        enable_progress_bar=progress_bar,
        deterministic=training.get("deterministic"),  # unset: Lightning's default, as 2021
    )
