"""The dataset scaler's statistics before training and testing, as a Lightning callback.

``scaler.statistic: dataset`` (2021): the network's input is normalised with the mean and
spread of the training set's log-mels. They are buffers of the module's scaler, so every
checkpoint holds them; this callback supplies them when the module has none yet.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from tqdm.auto import tqdm

from desed_task.checkpoints import CheckpointError
from desed_task.config import ConfigError
from desed_task.features.mel import log_mel

log = logging.getLogger(__name__)


class DatasetScalerFit(Callback):
    """Before training: statistics restored from the resumed checkpoint, else read from
    ``scaler.savepath`` when that file exists, else fitted once over an epoch of the training
    loader's log-mels (per process under DDP, then averaged) and saved there (2021). Before
    testing: the tested checkpoint's, else ``scaler.savepath``'s, else an error.

    The fit runs in Lightning's ``on_fit_start`` (after the resumed checkpoint is restored,
    before the first training batch), where the module's own hook ran it before it moved
    here: iterating the training loader draws random numbers, which must stay at this point
    of the stream."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        scaler = pl_module.scaler
        if scaler.is_fitted:
            if scaler.statistic == "dataset":
                log.info("dataset scaler: statistics from the checkpoint (no refit)")
            return
        if _load_scaler_file(pl_module):
            return
        loader = trainer.datamodule.train_dataloader()
        n_batches = min(len(loader), int(trainer.num_training_batches))
        batches = itertools.islice(loader, n_batches)
        if trainer.is_global_zero:
            batches = tqdm(batches, total=n_batches, desc="fitting the dataset scaler", unit="batch")
        scaler.fit(batches, lambda batch: _log_mel_spectrograms(pl_module, batch["audio"].to(pl_module.device)))
        _average_over_processes(scaler)
        if not trainer.is_global_zero:
            return
        log.info("dataset scaler fitted over %d training batches (per process)", n_batches)
        path = pl_module.config["scaler"].get("savepath")
        if path:
            scaler.save_statistics(path)
            log.info("dataset scaler statistics saved to %s (scaler.savepath)", path)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A tested checkpoint brings its dataset statistics; else ``scaler.savepath``."""
        if pl_module.scaler.is_fitted or _load_scaler_file(pl_module):
            return
        raise CheckpointError(
            "scaler.statistic is dataset but the checkpoint holds no scaler statistics and "
            f"scaler.savepath ({pl_module.config['scaler'].get('savepath')}) is not a file: test a "
            "checkpoint trained with this scaler, or set scaler.savepath to its statistics"
        )


def _log_mel_spectrograms(pl_module: L.LightningModule, audio: torch.Tensor) -> torch.Tensor:
    """What the scaler sees: (N, n_mels, frames) log-mels, clips and sources flattened into N."""
    db = log_mel(pl_module.mel_magnitudes(audio))
    return db.reshape(-1, *db.shape[-2:])


def _load_scaler_file(pl_module: L.LightningModule) -> bool:
    path = pl_module.config["scaler"].get("savepath")
    if not path or not Path(path).is_file():
        return False
    try:
        pl_module.scaler.load_statistics(path)
    except ValueError as err:
        raise ConfigError(f"scaler.savepath: {err}") from err
    pl_module.scaler.to(pl_module.device)
    log.info("dataset scaler statistics loaded from %s (scaler.savepath; delete it to refit)", path)
    return True


def _average_over_processes(scaler: torch.nn.Module) -> None:
    """Under DDP each process fitted its own shard: means averaged, extrema reduced."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    ops = {"mean": "avg", "mean_squared": "avg", "amin": "min", "amax": "max"}
    for name, op in ops.items():
        value = getattr(scaler, name)
        if op == "avg":
            torch.distributed.all_reduce(value, torch.distributed.ReduceOp.SUM)
            value /= torch.distributed.get_world_size()
        else:
            reduce_op = torch.distributed.ReduceOp.MIN if op == "min" else torch.distributed.ReduceOp.MAX
            torch.distributed.all_reduce(value, reduce_op)
