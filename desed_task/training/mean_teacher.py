"""The mean-teacher training of the 2021 baseline as one LightningModule.

The student is trained with BCE on the strongly labelled (frame) and weakly labelled (clip)
parts of each batch and with a consistency loss (MSE) towards the teacher on the whole batch;
the teacher is an exponential moving average of the student. The same module trains the SED
baseline and fine-tunes the separation ensemble: the network is whatever `student` is.
"""

from __future__ import annotations

import copy
import logging
import random
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch import nn

from desed_task.data.datasets import LabelType
from desed_task.evaluation import (
    collar_f1,
    decode_scores,
    evaluate_scores,
    intersection_f1_macro,
    weak_f1_macro,
)
from desed_task.features.mel import DB_CLAMP_MAX, DB_CLAMP_MIN, MelSpectrogram, amplitude_to_db
from desed_task.features.scaler import TorchScaler
from desed_task.postprocessing import default_description, load_postprocessing
from desed_task.postprocessing.apply import evaluate_postprocessed
from desed_task.training.distributed import broadcast_from_zero, gather_by_name
from desed_task.training.ema import update_ema
from desed_task.training.mixup import mixup
from desed_task.training.schedulers import ExponentialWarmup, exponential_warmup_factor

log = logging.getLogger(__name__)

MODELS = ("student", "teacher")
SUMMARY_KEYS = (
    "psds1",
    "psds2",
    "psds1_exact",
    "psds2_exact",
    "intersection_f1_macro",
    "collar_f1_macro",
    "collar_f1_micro",
    "segment_f1_macro",
)


class MeanTeacher(L.LightningModule):
    """Student + EMA teacher, trained on mixed [synthetic, weak, unlabelled] batches.

    Args:
        config: the checked YAML config (saved as the checkpoint's hyper-parameters).
        student: the network (features (B, n_mels, frames) -> strong (B, C, frames'),
            weak (B, C)). The teacher is a copy of it.
        class_names: output classes, in the network's order.
        frame_step: seconds between two output frames (0.064 s in 2021).
        evaluation: test on unlabelled clips: only predictions and scores are written.
    """

    def __init__(
        self,
        config: dict,
        student: nn.Module,
        class_names: list[str],
        frame_step: float,
        evaluation: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(config)
        self.config = config
        self.class_names = list(class_names)
        self.frame_step = float(frame_step)
        self.evaluation = evaluation
        self.sed_student = student
        self.sed_teacher = copy.deepcopy(student)
        for param in self.sed_teacher.parameters():
            param.requires_grad_(False)
        feats = config["feats"]
        self.mel = MelSpectrogram(
            sample_rate=feats["sample_rate"],
            n_fft=feats["n_filters"],
            win_length=feats["n_window"],
            hop_length=feats["hop_length"],
            f_min=feats["f_min"],
            f_max=feats["f_max"],
            n_mels=feats["n_mels"],
        )
        scaler = config["scaler"]
        self.scaler = TorchScaler(scaler["statistic"], scaler["normtype"], tuple(scaler["dims"]))
        training = config["training"]
        self.supervised_loss = nn.BCELoss()
        self.consistency_loss = nn.MSELoss() if training["self_sup_loss"] == "mse" else nn.BCELoss()
        self._buffers_reset()
        self.test_results: dict[str, dict[str, float]] = {}
        self._warmup_steps = 0  # set when the optimizer is built
        # read now, so that a wrong file stops the run before training, not at its end
        path = training.get("postprocessing")
        self.postprocessing = load_postprocessing(path, self.class_names) if path else None

    # ------------------------------------------------------------------ features
    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """Linear mel magnitudes: (B, samples) -> (B, n_mels, frames); (B, K, samples) ->
        (B, K, n_mels, frames) for separated sources."""
        return self.mel(audio)

    def normalise(self, mel: torch.Tensor) -> torch.Tensor:
        """dB (amin 1e-5) clamped to [-50, 80], then the scaler, clip by clip and source by source."""
        db = amplitude_to_db(mel, amin=1e-5).clamp(DB_CLAMP_MIN, DB_CLAMP_MAX)
        flat = db.reshape(-1, *db.shape[-2:])
        return self.scaler(flat).reshape(db.shape)

    def detect(self, mel: torch.Tensor, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        return model(self.normalise(mel))

    # ------------------------------------------------------------------ training
    def warmup_factor(self) -> float:
        """Exponential ramp-up shared by the learning rate and the consistency weight."""
        return exponential_warmup_factor(self.global_step + 1, self._warmup_steps)

    def _count_warmup_steps(self) -> int:
        """n_epochs_warmup epochs of optimizer steps (2021: n_epochs_warmup * epoch_len)."""
        steps_per_epoch = self.trainer.estimated_stepping_batches / max(self.trainer.max_epochs, 1)
        return int(self.config["training"]["n_epochs_warmup"] * steps_per_epoch)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        training = self.config["training"]
        strong_targets = batch["strong_targets"]
        weak_targets = batch["weak_targets"]
        strong_mask = batch["label_type"] == LabelType.STRONG
        weak_mask = batch["label_type"] == LabelType.WEAK
        mel = self.features(batch["audio"])

        if training.get("mixup") and random.random() < 0.5:
            for mask, targets in ((weak_mask, weak_targets), (strong_mask, strong_targets)):
                if mask.sum() > 1:
                    mel[mask], targets[mask] = mixup(mel[mask], targets[mask], label_type=training["mixup"])

        features = self.normalise(mel)
        strong_student, weak_student = self.sed_student(features)
        losses = {}
        if strong_mask.any():
            losses["loss_strong"] = self.supervised_loss(strong_student[strong_mask], strong_targets[strong_mask])
        if weak_mask.any():
            losses["loss_weak"] = self.supervised_loss(weak_student[weak_mask], weak_targets[weak_mask])
        supervised = sum(losses.values(), torch.zeros((), device=self.device))

        with torch.no_grad():
            strong_teacher, weak_teacher = self.sed_teacher(features)
        weight = training["const_max"] * self.warmup_factor()
        strong_consistency = self.consistency_loss(strong_student, strong_teacher.detach())
        weak_consistency = self.consistency_loss(weak_student, weak_teacher.detach())
        consistency = (strong_consistency + weak_consistency) * weight
        loss = supervised + consistency

        for name, value in losses.items():
            self.log(f"train/student/{name}", value)
        self.log_dict(
            {
                "train/student/tot_supervised": supervised,
                "train/student/strong_self_sup_loss": strong_consistency,
                "train/student/weak_self_sup_loss": weak_consistency,
                "train/student/tot_self_loss": consistency,
                "train/weight": weight,
                "train/lr": self.optimizers().param_groups[-1]["lr"],
                "train/step": float(self.global_step),
            }
        )
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        # 2021 updated the teacher after each optimizer step, counting steps from 1
        update_ema(
            self.sed_student,
            self.sed_teacher,
            self.config["training"]["ema_factor"],
            self.global_step + 1,
        )

    def configure_optimizers(self):
        lr = self.config["opt"]["lr"]
        params = [p for p in self.sed_student.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr, betas=(0.9, 0.999))
        self._warmup_steps = self._count_warmup_steps()
        scheduler = ExponentialWarmup(optimizer, lr, self._warmup_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ buffers of clip outputs
    def _buffers_reset(self) -> None:
        self._strong_scores: dict[str, dict[str, np.ndarray]] = {m: {} for m in MODELS}
        self._weak_scores: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {m: {} for m in MODELS}

    def _predict(self, batch: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        mel = self.features(batch["audio"])
        return {
            "student": self.detect(mel, self.sed_student),
            "teacher": self.detect(mel, self.sed_teacher),
        }

    def _collect(self, batch: dict, outputs: dict, stage: str) -> None:
        names = batch["filename"]
        strong_mask = (batch["label_type"] == LabelType.STRONG).cpu().numpy()
        weak_mask = (batch["label_type"] == LabelType.WEAK).cpu().numpy()
        for model, (strong, weak) in outputs.items():
            strong_np = strong.float().cpu().numpy()
            weak_np = weak.float().cpu().numpy()
            targets = batch["weak_targets"].float().cpu().numpy()
            for i, name in enumerate(names):
                if weak_mask[i]:
                    self._weak_scores[model][name] = (weak_np[i], targets[i])
                else:
                    self._strong_scores[model][name] = strong_np[i]
            if strong_mask.any() and stage != "eval":
                self.log(
                    f"{stage}/synth/{model}/loss_strong" if stage == "val" else f"{stage}/{model}/loss_strong",
                    self.supervised_loss(strong[strong_mask], batch["strong_targets"][strong_mask]),
                    batch_size=int(strong_mask.sum()),
                )
            if weak_mask.any():
                self.log(
                    f"{stage}/weak/{model}/loss_weak",
                    self.supervised_loss(weak[weak_mask], batch["weak_targets"][weak_mask]),
                    batch_size=int(weak_mask.sum()),
                )

    def _gathered(self) -> tuple[dict, dict]:
        strong = {m: gather_by_name(self._strong_scores[m]) for m in MODELS}
        weak = {m: gather_by_name(self._weak_scores[m]) for m in MODELS}
        self._buffers_reset()
        return strong, weak

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._collect(batch, self._predict(batch), "val")

    def on_validation_epoch_end(self) -> None:
        strong, weak = self._gathered()
        if self.trainer.sanity_checking:
            return
        datamodule = self.trainer.datamodule
        training = self.config["training"]
        thresholds = training.get("val_thresholds") or [0.5]
        metrics = {}
        for model in MODELS:
            if weak[model]:
                probs, targets = (np.stack(x) for x in zip(*weak[model].values()))
                metrics[f"val/weak/{model}/macro_F1"] = weak_f1_macro(probs, targets)
            else:
                metrics[f"val/weak/{model}/macro_F1"] = 0.0
            if strong[model]:
                scores, classes, gt, durations = restrict_to_ground_truth(
                    strong[model], self.class_names, datamodule.synth_val_events, datamodule.synth_val_durations
                )
                names = sorted(scores)
                decoded = decode_scores(
                    np.stack([scores[n] for n in names]),
                    names,
                    classes,
                    thresholds,
                    median_window=training["median_window"],
                    frame_step=self.frame_step,
                )
                metrics[f"val/synth/{model}/intersection_f1_macro"] = float(
                    np.mean([intersection_f1_macro(decoded[t], gt, durations) for t in thresholds])
                )
                at_half = decoded[thresholds[0]] if 0.5 not in decoded else decoded[0.5]
                metrics[f"val/synth/{model}/event_f1_macro"] = collar_f1(at_half, gt)["macro"]
        synth_type = training.get("obj_metric_synth_type") or "intersection"
        synth_key = "intersection_f1_macro" if synth_type == "intersection" else "event_f1_macro"
        metrics["val/obj_metric"] = metrics["val/weak/student/macro_F1"] + metrics.get(
            f"val/synth/student/{synth_key}", 0.0
        )
        metrics = broadcast_from_zero(metrics)
        objective = float(metrics.pop("val/obj_metric"))
        self.log_dict({k: float(v) for k, v in metrics.items()})
        self.log("val/obj_metric", objective, prog_bar=True)

    # ------------------------------------------------------------------ test
    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._collect(batch, self._predict(batch), "eval" if self.evaluation else "test")

    @property
    def output_dir(self) -> Path:
        base = self.trainer.log_dir or self.trainer.default_root_dir
        return Path(base) / ("metrics_eval" if self.evaluation else "metrics_test")

    def on_test_epoch_end(self) -> None:
        strong, _ = self._gathered()
        training = self.config["training"]
        output_dir = self.output_dir  # a collective under DDP: every process asks
        results: dict[str, dict[str, float]] = {}
        if self.trainer.is_global_zero:
            for model in MODELS:
                save_dir = output_dir / model
                if self.evaluation:
                    write_predictions(
                        strong[model], self.class_names, save_dir,
                        median_window=training["median_window"], frame_step=self.frame_step,
                    )
                    continue
                scores, classes, events, durations = restrict_to_ground_truth(
                    strong[model],
                    self.class_names,
                    self.trainer.datamodule.test_events,
                    self.trainer.datamodule.test_durations,
                )
                if self.postprocessing is None:
                    results[model] = evaluate_scores(
                        scores,
                        classes,
                        events,
                        durations,
                        n_thresholds=training["n_test_thresholds"],
                        median_window=training["median_window"],
                        frame_step=self.frame_step,
                        save_dir=save_dir,
                    )
                else:
                    results[model] = evaluate_postprocessed(
                        scores, classes, events, durations, self.postprocessing,
                        n_thresholds=training["n_test_thresholds"], frame_step=self.frame_step, save_dir=save_dir,
                    )
            if self.evaluation:
                log.info("predictions and scores written to %s", output_dir)
        results = broadcast_from_zero(results)
        self.test_results = results
        if not results:
            return
        flat = {f"test/{m}/{k}": float(v) for m, r in results.items() for k, v in r.items()}
        flat["hp_metric"] = max(results["student"]["psds1"], results["student"]["psds2"])
        self.log_dict(flat)
        if self.trainer.is_global_zero:
            table = summary_table(results, self.postprocessing_description)
            print("\n" + table + "\n", flush=True)
            (output_dir / "summary.md").write_text(table + "\n")
            self._log_figures(table, output_dir)

    @property
    def postprocessing_description(self) -> str:
        """The post-processing of the test metrics, in words."""
        if self.postprocessing is not None:
            return self.postprocessing.describe()
        return default_description(self.config["training"]["median_window"])

    def _log_figures(self, table: str, output_dir: Path) -> None:
        experiment = getattr(self.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_text"):
            return
        experiment.add_text("test/summary", table, self.global_step)
        import matplotlib.image as mpimg

        for png in sorted(output_dir.glob("*/*.png")):
            image = mpimg.imread(png)[..., :3]
            experiment.add_image(f"test/{png.parent.name}/{png.stem}", image, self.global_step, dataformats="HWC")


def restrict_to_ground_truth(
    scores: dict[str, np.ndarray],
    class_names: list[str],
    events: pd.DataFrame,
    durations: pd.DataFrame,
) -> tuple[dict[str, np.ndarray], list[str], pd.DataFrame, pd.DataFrame]:
    """Scores, classes and ground truth over what can be scored, each cut said in the log.

    - Clips not scored (fast_dev_run, limit_*_batches) leave the ground truth instead of
      counting as missed events.
    - Classes without any ground-truth event in the set leave the scores: the 2021 metrics
      (psds_eval) take their classes from the ground truth.
    """
    unscored = set(durations["filename"]) - set(scores)
    if unscored:
        log.warning(
            "%d of %d ground-truth clips were not scored (partial pass); metrics cover the %d scored clips",
            len(unscored), len(durations), len(scores),
        )
        events = events[events["filename"].isin(scores)]
        durations = durations[durations["filename"].isin(scores)]
    present = set(events["event_label"].dropna())
    kept = [i for i, name in enumerate(class_names) if name in present]
    if len(kept) < len(class_names):
        log.warning(
            "no ground-truth event of %s in this set: those classes are left out of its metrics",
            ", ".join(n for n in class_names if n not in present),
        )
        scores = {name: values[kept] for name, values in scores.items()}
        class_names = [class_names[i] for i in kept]
    return scores, class_names, events, durations


def write_predictions(
    scores: dict[str, np.ndarray],
    class_names: list[str],
    save_dir: Path,
    median_window: int,
    frame_step: float,
    threshold: float = 0.5,
) -> None:
    """Evaluation-set outputs: events decoded at `threshold` and the frame scores
    (sed_scores_eval layout: one TSV per clip with onset, offset and one column per class)."""
    from sed_scores_eval.base_modules.io import write_sed_scores

    from desed_task.evaluation import score_dataframes

    names = sorted(scores)
    decoded = decode_scores(
        np.stack([scores[n] for n in names]), names, class_names, [threshold], median_window, frame_step
    )[threshold]
    save_dir.mkdir(parents=True, exist_ok=True)
    decoded.to_csv(save_dir / f"predictions_th_{threshold:.2f}.tsv", sep="\t", index=False)
    write_sed_scores(score_dataframes(scores, class_names, frame_step), save_dir / "scores")


def summary_table(results: dict[str, dict[str, float]], postprocessing: str | None = None) -> str:
    """Markdown table: one row per metric, one column per model; then the post-processing
    used, when given."""
    models = list(results)
    lines = ["| metric | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for key in SUMMARY_KEYS:
        if all(key in results[m] for m in models):
            lines.append(f"| {key} | " + " | ".join(f"{results[m][key]:.4f}" for m in models) + " |")
    if postprocessing:
        lines += ["", f"Post-processing: {postprocessing}."]
    return "\n".join(lines)


