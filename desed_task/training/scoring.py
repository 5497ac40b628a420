"""Validation and test scoring of the mean teacher, as Lightning callbacks.

The LightningModule holds the method (its steps return the student's and teacher's outputs
and log its losses); these callbacks keep those outputs clip by clip
(`desed_task.evaluation.clip_outputs.ClipOutputs`), gather them over DDP processes and, at
the end of the set, compute and log the metrics (`desed_task.evaluation`), write the test
files and print the test table. Lightning runs a callback's epoch-end hook before the
module's, and a callback may log through the module, so the logged names, values and order
are those of the module's hooks before the move.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from desed_task.checkpoints import MODELS
from desed_task.decoding.postprocessing_file import PostProcessing, load_postprocessing
from desed_task.evaluation.clip_outputs import ClipOutputs
from desed_task.evaluation.report import summary_table, write_predictions
from desed_task.evaluation.testing import postprocessing_description, score_test_set
from desed_task.evaluation.validation_metrics import OBJECTIVE, validation_metrics
from desed_task.sets import LabelType
from desed_task.training.distributed import broadcast_from_zero, gather_by_name

log = logging.getLogger(__name__)

WIRING_CHECK = (
    "**Wiring check (--fast_dev_run): one batch of training, validation and test; "
    "these figures are not results.**"
)
"""First line of the test table (printed and in summary.md) of a --fast_dev_run."""


def max_event_time(config: dict) -> float | None:
    """Seconds to which decoded event times are clamped: ``data.audio_max_len``, as 2021's
    encoder clamped them (validation, test and eval alike); None with
    ``training.clamp_events_to_audio_max_len: false``."""
    if not config["training"].get("clamp_events_to_audio_max_len", True):
        return None
    return float(config["data"]["audio_max_len"])


def _numpy(value: torch.Tensor | list | None) -> np.ndarray | list | None:
    return value.float().cpu().numpy() if torch.is_tensor(value) else value


class _OutputsKeeper(Callback):
    """Keeps the (student, teacher) outputs that the module's validation or test steps return:
    {model: (strong (B, classes, frames), weak (B, classes))}, or for clips scored at their
    own lengths {model: (B arrays (classes, frames_i), None)}."""

    def __init__(self) -> None:
        self.outputs = ClipOutputs(MODELS)

    def _keep(self, outputs: dict, batch: dict) -> None:
        weak_targets = batch.get("weak_targets")
        self.outputs.add_batch(
            batch["filename"],
            (batch["label_type"] == LabelType.WEAK).cpu().numpy(),
            None if weak_targets is None else weak_targets.float().cpu().numpy(),
            {model: (_numpy(strong), _numpy(weak)) for model, (strong, weak) in outputs.items()},
        )

    def _gathered(self) -> tuple[dict, dict]:
        """Every process's outputs (a collective under DDP: every process calls it)."""
        strong, weak = self.outputs.take()
        return ({m: gather_by_name(strong[m]) for m in MODELS}, {m: gather_by_name(weak[m]) for m in MODELS})


class ValidationScoring(_OutputsKeeper):
    """Logs the validation metrics of each epoch (`validation_metrics`) and ``val/obj_metric``
    (in the progress bar), from rank 0's computation under DDP."""

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: dict,
                                batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._keep(outputs, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        strong, weak = self._gathered()
        if trainer.sanity_checking:
            return
        config = pl_module.config
        training = config["training"]
        datamodule = trainer.datamodule
        metrics = validation_metrics(
            strong,
            weak,
            pl_module.class_names,
            datamodule.synth_val_events,
            datamodule.synth_val_durations,
            thresholds=training.get("val_thresholds") or [0.5],
            median_window=training["median_window"],
            frame_step=pl_module.frame_step,
            max_event_time=max_event_time(config),
            synth_type=training.get("obj_metric_synth_type") or "intersection",
        )
        metrics = broadcast_from_zero(metrics)
        objective = float(metrics.pop(OBJECTIVE))
        pl_module.log_dict({k: float(v) for k, v in metrics.items()})
        pl_module.log(OBJECTIVE, objective, prog_bar=True)


class TestScoring(_OutputsKeeper):
    """The test: on the labelled dev-test, every metric of both models logged (``test/<model>/
    <metric>``, ``hp_metric``), their files under ``metrics_test/<model>``, the table printed
    and in ``metrics_test/summary.md`` (and TensorBoard); on unlabelled clips (the module's
    ``evaluation``), only predictions and scores, under ``metrics_eval/<model>``.

    Args:
        config: the checked config.
        class_names: the model's classes, in output order: ``training.postprocessing`` is read
            now, so that a wrong file stops the run before training, not at its end.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, config: dict, class_names: list[str]) -> None:
        super().__init__()
        path = config["training"].get("postprocessing")
        self.postprocessing: PostProcessing | None = load_postprocessing(path, class_names) if path else None
        self.results: dict[str, dict[str, float]] = {}

    @staticmethod
    def output_dir(trainer: L.Trainer, evaluation: bool) -> Path:
        """``LOG_DIR/version_N/metrics_test`` (``metrics_eval``); a collective under DDP:
        every process asks."""
        base = trainer.log_dir or trainer.default_root_dir
        return Path(base) / ("metrics_eval" if evaluation else "metrics_test")

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: dict,
                          batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._keep(outputs, batch)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        strong, _ = self._gathered()
        training = pl_module.config["training"]
        evaluation = pl_module.evaluation
        clamp = max_event_time(pl_module.config)
        output_dir = self.output_dir(trainer, evaluation)
        results: dict[str, dict[str, float]] = {}
        left_out: dict[str, dict[str, list[str]]] = {}  # {model: {macro F1: classes it left out}}
        if trainer.is_global_zero:
            for model in MODELS:
                save_dir = output_dir / model
                if evaluation:
                    write_predictions(
                        strong[model], pl_module.class_names, save_dir, model,
                        median_window=training["median_window"], frame_step=pl_module.frame_step,
                        n_thresholds=training["n_test_thresholds"], max_event_time=clamp,
                    )
                    continue
                datamodule = trainer.datamodule
                results[model], left_out[model] = score_test_set(
                    strong[model], pl_module.class_names, datamodule.test_events, datamodule.test_durations,
                    save_dir,
                    postprocessing=self.postprocessing,
                    n_thresholds=training["n_test_thresholds"],
                    median_window=training["median_window"],
                    frame_step=pl_module.frame_step,
                    max_event_time=clamp,
                    clip_to_durations=bool(training.get("clip_events_to_durations", False)),
                    # data.drop_clips_without_events: 2023's psds_eval still counted their durations
                    unscored_durations=datamodule.test_dropped_durations,
                )
            if evaluation:
                log.info("predictions and scores written to %s", output_dir)
        results = broadcast_from_zero(results)
        self.results = results
        if not results:
            return
        flat = {f"test/{m}/{k}": float(v) for m, r in results.items() for k, v in r.items()}
        flat["hp_metric"] = max(results["student"]["psds1"], results["student"]["psds2"])
        pl_module.log_dict(flat)
        if trainer.is_global_zero:
            description = postprocessing_description(self.postprocessing, training["median_window"])
            table = summary_table(results, description, left_out)
            if trainer.fast_dev_run:
                table = f"{WIRING_CHECK}\n\n{table}"
            print("\n" + table + "\n", flush=True)
            (output_dir / "summary.md").write_text(table + "\n")
            _log_figures(trainer, table, output_dir)


def _log_figures(trainer: L.Trainer, table: str, output_dir: Path) -> None:
    """The test table and the PSD-ROC plots in TensorBoard."""
    experiment = getattr(trainer.logger, "experiment", None)
    if experiment is None or not hasattr(experiment, "add_text"):
        return
    experiment.add_text("test/summary", table, trainer.global_step)
    import matplotlib.image as mpimg

    for png in sorted(output_dir.glob("*/*.png")):
        image = mpimg.imread(png)[..., :3]
        experiment.add_image(f"test/{png.parent.name}/{png.stem}", image, trainer.global_step, dataformats="HWC")
