"""The mean-teacher training of the 2021 baseline as one LightningModule.

The student is trained with BCE on the strongly labelled (frame) and weakly labelled (clip)
parts of each batch and with a consistency loss (MSE) towards the teacher on the whole batch;
the teacher is an exponential moving average of the student. The same module trains the SED
baseline and fine-tunes the separation ensemble: the network is whatever `student` is.
"""

from __future__ import annotations

import itertools
import logging
import random
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from desed_task.checkpoints import MODELS, CheckpointError, lay_out_modules
from desed_task.config import ConfigError
from desed_task.data.datasets import LabelType
from desed_task.evaluation import (
    collar_f1,
    decode_scores,
    evaluate_scores,
    intersection_f1_macro,
    weak_f1_macro,
)
from desed_task.evaluation.postprocessed import evaluate_postprocessed
from desed_task.evaluation.postprocessing_file import default_description, load_postprocessing
from desed_task.evaluation.report import summary_table, write_predictions
from desed_task.evaluation.tables import restrict_to_scored_clips
from desed_task.features.mel import log_mel
from desed_task.features.network_input import mel_magnitudes, normalise
from desed_task.nnet import run_network
from desed_task.training.distributed import broadcast_from_zero, gather_by_name
from desed_task.training.ema import update_ema
from desed_task.training.mixup import mixup
from desed_task.training.schedulers import (
    ExponentialWarmup,
    exponential_warmup_factor,
    first_step_lr,
    warmup_length,
)

log = logging.getLogger(__name__)

WIRING_CHECK = (
    "**Wiring check (--fast_dev_run): one batch of training, validation and test; "
    "these figures are not results.**"
)
"""First line of the test table (printed and in summary.md) of a --fast_dev_run."""


class Float32BCELoss(nn.BCELoss):
    """`nn.BCELoss` in float32 outside autocast: CUDA autocast refuses ``binary_cross_entropy``
    (an error under ``training.precision`` 16-mixed or bf16-mixed on a GPU). In float32 without
    autocast it is `nn.BCELoss` itself (same numbers); under autocast the half-precision
    probabilities and targets are widened to float32 first. Shapes: any, input and target alike."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: A002 - nn.BCELoss's names
        with torch.autocast(input.device.type, enabled=False):
            return super().forward(input.float(), target.float())


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
        lay_out_modules(self, config, student)  # sed_student, sed_teacher, mel, scaler: the checkpoint's layout
        for param in self.sed_teacher.parameters():
            param.requires_grad_(False)
        training = config["training"]
        self._mixture_input = training.get("ensemble_mixture_input") or "sum_of_sources"
        self.supervised_loss = Float32BCELoss()
        self.consistency_loss = nn.MSELoss() if training["self_sup_loss"] == "mse" else Float32BCELoss()
        self._buffers_reset()
        self.test_results: dict[str, dict[str, float]] = {}
        self._warmup_steps = 0  # set when the optimizer is built
        # read now, so that a wrong file stops the run before training, not at its end
        path = training.get("postprocessing")
        self.postprocessing = load_postprocessing(path, self.class_names) if path else None

    # ------------------------------------------------------------------ features
    def mel_magnitudes(self, audio: torch.Tensor) -> torch.Tensor:
        """Linear mel magnitudes: (B, samples) -> (B, n_mels, frames); separated sources,
        (B, 1 + K, samples) with the mixture first -> (B, 1 + K, n_mels, frames), channel 0 per
        ``training.ensemble_mixture_input`` (see `desed_task.features.network_input`)."""
        return mel_magnitudes(self.mel, audio, self._mixture_input)

    def normalise(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel magnitudes -> the network's input: dB (amin 1e-5) clamped to [-50, 80], then the
        scaler, clip by clip and source by source; shaped as `mel`."""
        return normalise(self.scaler, mel)

    def detect(
        self, mel: torch.Tensor, model: nn.Module, embeddings: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mel magnitudes (and, for the 2023 CRNN, the clips' embeddings) -> (strong, weak) of
        `model`."""
        return run_network(model, self.normalise(mel), embeddings)

    # ------------------------------------------------------------------ training
    def warmup_factor(self) -> float:
        """Exponential ramp-up shared by the learning rate and the consistency weight."""
        return exponential_warmup_factor(self.global_step + 1, self._warmup_steps)

    def _count_warmup_steps(self) -> int:
        """n_epochs_warmup epochs of optimizer steps, counted as 2021 counted them.

        2021: ``n_epochs_warmup * min_i(len(set_i) // (batch_size_i * accumulate_batches))``,
        i.e. the loader's batches per epoch floor-divided by the accumulation (Lightning's
        ``estimated_stepping_batches`` rounds up: 360 instead of 330 for the 2021 SSEP + SED
        fine-tuning). The batches per epoch are those Lightning runs: the loader's length, or
        ``training.max_steps_per_epoch`` when smaller (not in 2021), per process under DDP.
        """
        self.trainer.estimated_stepping_batches  # noqa: B018 - sets the train loader up
        return warmup_length(
            self.config["training"]["n_epochs_warmup"],
            int(self.trainer.num_training_batches),
            int(self.trainer.accumulate_grad_batches),
        )

    # ------------------------------------------------------------------ dataset scaler
    def on_fit_start(self) -> None:
        """``scaler.statistic: dataset``: statistics restored from the resumed checkpoint,
        else read from ``scaler.savepath`` when that file exists, else fitted once over an
        epoch of the training loader's log-mels and saved there (2021). They are buffers of
        the scaler, so every checkpoint holds them."""
        if self.scaler.is_fitted:
            if self.scaler.statistic == "dataset":
                log.info("dataset scaler: statistics from the checkpoint (no refit)")
            return
        if self._load_scaler_file():
            return
        loader = self.trainer.datamodule.train_dataloader()
        n_batches = min(len(loader), int(self.trainer.num_training_batches))
        batches = itertools.islice(loader, n_batches)
        if self.trainer.is_global_zero:
            batches = tqdm(batches, total=n_batches, desc="fitting the dataset scaler", unit="batch")
        self.scaler.fit(batches, lambda batch: self._log_mel_spectrograms(batch["audio"].to(self.device)))
        self._average_scaler_over_processes()
        if not self.trainer.is_global_zero:
            return
        log.info("dataset scaler fitted over %d training batches (per process)", n_batches)
        path = self.config["scaler"].get("savepath")
        if path:
            self.scaler.save_statistics(path)
            log.info("dataset scaler statistics saved to %s (scaler.savepath)", path)

    def _log_mel_spectrograms(self, audio: torch.Tensor) -> torch.Tensor:
        """What the scaler sees: (N, n_mels, frames) log-mels, clips and sources flattened into N."""
        db = log_mel(self.mel_magnitudes(audio))
        return db.reshape(-1, *db.shape[-2:])

    def on_test_start(self) -> None:
        """A tested checkpoint brings its dataset statistics; else ``scaler.savepath``."""
        if self.scaler.is_fitted or self._load_scaler_file():
            return
        raise CheckpointError(
            "scaler.statistic is dataset but the checkpoint holds no scaler statistics and "
            f"scaler.savepath ({self.config['scaler'].get('savepath')}) is not a file: test a "
            "checkpoint trained with this scaler, or set scaler.savepath to its statistics"
        )

    def _load_scaler_file(self) -> bool:
        path = self.config["scaler"].get("savepath")
        if not path or not Path(path).is_file():
            return False
        try:
            self.scaler.load_statistics(path)
        except ValueError as err:
            raise ConfigError(f"scaler.savepath: {err}") from err
        self.scaler.to(self.device)
        log.info("dataset scaler statistics loaded from %s (scaler.savepath; delete it to refit)", path)
        return True

    def _average_scaler_over_processes(self) -> None:
        """Under DDP each process fitted its own shard: means averaged, extrema reduced."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return
        ops = {"mean": "avg", "mean_squared": "avg", "amin": "min", "amax": "max"}
        for name, op in ops.items():
            value = getattr(self.scaler, name)
            if op == "avg":
                torch.distributed.all_reduce(value, torch.distributed.ReduceOp.SUM)
                value /= torch.distributed.get_world_size()
            else:
                reduce_op = torch.distributed.ReduceOp.MIN if op == "min" else torch.distributed.ReduceOp.MAX
                torch.distributed.all_reduce(value, reduce_op)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        training = self.config["training"]
        strong_targets = batch["strong_targets"]
        weak_targets = batch["weak_targets"]
        strong_mask = batch["label_type"] == LabelType.STRONG
        weak_mask = batch["label_type"] == LabelType.WEAK
        mel = self.mel_magnitudes(batch["audio"])
        # the 2023 CRNN's embeddings: student and teacher get the same, unmixed as in 2023
        # (training.mixup_embeddings: mixed with the mels' coefficient and permutation)
        embeddings = batch.get("embeddings")
        mix_embeddings = embeddings is not None and training.get("mixup_embeddings", False)

        if training.get("mixup") and random.random() < 0.5:
            # weak then strong part, each with its own draws, as 2021 (also for 0 or 1 clip)
            for mask, targets in ((weak_mask, weak_targets), (strong_mask, strong_targets)):
                if mix_embeddings:
                    mel[mask], targets[mask], embeddings[mask] = mixup(
                        mel[mask], targets[mask], label_type=training["mixup"], paired=embeddings[mask]
                    )
                else:
                    mel[mask], targets[mask] = mixup(mel[mask], targets[mask], label_type=training["mixup"])

        features = self.normalise(mel)
        strong_student, weak_student = run_network(self.sed_student, features, embeddings)
        losses = {}
        if strong_mask.any():
            losses["loss_strong"] = self.supervised_loss(strong_student[strong_mask], strong_targets[strong_mask])
        if weak_mask.any():
            losses["loss_weak"] = self.supervised_loss(weak_student[weak_mask], weak_targets[weak_mask])
        supervised = sum(losses.values(), torch.zeros((), device=self.device))

        with torch.no_grad():
            strong_teacher, weak_teacher = run_network(self.sed_teacher, features, embeddings)
            teacher_losses = {}  # logged only, as 2021
            if strong_mask.any():
                teacher_losses["loss_strong"] = self.supervised_loss(strong_teacher[strong_mask], strong_targets[strong_mask])
            if weak_mask.any():
                teacher_losses["loss_weak"] = self.supervised_loss(weak_teacher[weak_mask], weak_targets[weak_mask])
        weight = training["const_max"] * self.warmup_factor()
        strong_consistency = self.consistency_loss(strong_student, strong_teacher.detach())
        weak_consistency = self.consistency_loss(weak_student, weak_teacher.detach())
        consistency = (strong_consistency + weak_consistency) * weight
        loss = supervised + consistency

        for model, values in (("student", losses), ("teacher", teacher_losses)):
            for name, value in values.items():
                self.log(f"train/{model}/{name}", value)
        self.log_dict(
            {
                "train/student/tot_supervised": supervised,
                "train/student/strong_self_sup_loss": strong_consistency,
                "train/student/weak_self_sup_loss": weak_consistency,
                "train/student/tot_self_loss": consistency,
                "train/weight": weight,
                "train/lr": self.optimizers().param_groups[-1]["lr"],
                # 2021 logged its scheduler's step count: optimizer steps taken, this one included
                "train/step": float(self.global_step + 1),
            }
        )
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_before_zero_grad(self, optimizer) -> None:
        """The teacher's EMA step, where 2021 took it: Lightning calls this hook after
        ``training_step`` and before ``backward`` and the optimizer step (1.2 and 2.x alike),
        at the first batch of each accumulation window. So the teacher averages the student
        as it was before this step's update (the first update, alpha 1/2 of two equal models,
        changes nothing), with 2021's step count: optimizer steps taken + 1."""
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
        scheduler = ExponentialWarmup(optimizer, lr, self._warmup_steps, first_step_lr=first_step_lr(self.config["opt"]))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ buffers of clip outputs
    def _buffers_reset(self) -> None:
        self._strong_scores: dict[str, dict[str, np.ndarray]] = {m: {} for m in MODELS}
        self._weak_scores: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {m: {} for m in MODELS}

    def _predict(self, batch: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        mel = self.mel_magnitudes(batch["audio"])
        embeddings = batch.get("embeddings")
        return {
            "student": self.detect(mel, self.sed_student, embeddings),
            "teacher": self.detect(mel, self.sed_teacher, embeddings),
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
                scores, gt, durations = restrict_to_scored_clips(
                    strong[model], datamodule.synth_val_events, datamodule.synth_val_durations
                )
                names = sorted(scores)
                decoded = decode_scores(
                    np.stack([scores[n] for n in names]),
                    names,
                    self.class_names,
                    thresholds,
                    median_window=training["median_window"],
                    frame_step=self.frame_step,
                    max_event_time=self.max_event_time,
                )
                metrics[f"val/synth/{model}/intersection_f1_macro"] = float(
                    np.mean([intersection_f1_macro(decoded[t], gt, durations) for t in thresholds])
                )
                at_half = decoded[thresholds[0]] if 0.5 not in decoded else decoded[0.5]
                metrics[f"val/synth/{model}/event_f1_macro"] = collar_f1(at_half, gt, durations=durations)["macro"]
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
        if self.evaluation and batch["audio"].dim() == 2:
            self._score_full_length(batch)
            return
        self._collect(batch, self._predict(batch), "eval" if self.evaluation else "test")

    def _score_full_length(self, batch: dict) -> None:
        """Evaluation clips at their own length (2021: unpadded, one clip per batch), through
        the long-form path of the inference package in one window (one implementation of
        "score a clip of any length"; clips under a second are padded and cut back). The 2023
        CRNN's clips are padded to the length their embeddings describe (audio_max_len, at
        least the clip's: the datamodule refuses longer ones), as extraction padded them."""
        from desed_task.inference.windows import LongFormScorer

        feats = self.config["feats"]
        all_embeddings = batch.get("embeddings")
        seconds = 1.0 if all_embeddings is None else float(self.config["data"]["audio_max_len"])
        for model_name in MODELS:
            network = getattr(self, f"sed_{model_name}")
            for i, (name, audio) in enumerate(zip(batch["filename"], batch["audio"])):
                embeddings = None if all_embeddings is None else all_embeddings[i : i + 1]
                scorer = LongFormScorer(
                    lambda audio, network=network, embeddings=embeddings: self.detect(
                        self.mel_magnitudes(audio.to(self.device)), network, embeddings
                    )[0],
                    hop_length=int(feats["hop_length"]),
                    net_pooling=int(self.config["data"]["net_subsample"]),
                    window=None,
                    min_samples=round(seconds * int(feats["sample_rate"])),
                )
                self._strong_scores[model_name][name] = scorer.score(audio)

    @property
    def max_event_time(self) -> float | None:
        """Seconds to which decoded event times are clamped: ``data.audio_max_len``, as 2021's
        encoder clamped them (validation, test and eval alike); None with
        ``training.clamp_events_to_audio_max_len: false``."""
        if not self.config["training"].get("clamp_events_to_audio_max_len", True):
            return None
        return float(self.config["data"]["audio_max_len"])

    @property
    def output_dir(self) -> Path:
        base = self.trainer.log_dir or self.trainer.default_root_dir
        return Path(base) / ("metrics_eval" if self.evaluation else "metrics_test")

    def on_test_epoch_end(self) -> None:
        strong, _ = self._gathered()
        training = self.config["training"]
        output_dir = self.output_dir  # a collective under DDP: every process asks
        results: dict[str, dict[str, float]] = {}
        left_out: dict[str, dict[str, list[str]]] = {}  # {model: {macro F1: classes it left out}}
        if self.trainer.is_global_zero:
            for model in MODELS:
                save_dir = output_dir / model
                if self.evaluation:
                    write_predictions(
                        strong[model], self.class_names, save_dir, model,
                        median_window=training["median_window"], frame_step=self.frame_step,
                        n_thresholds=training["n_test_thresholds"], max_event_time=self.max_event_time,
                    )
                    continue
                scores, events, durations = restrict_to_scored_clips(
                    strong[model], self.trainer.datamodule.test_events, self.trainer.datamodule.test_durations
                )
                options = {
                    "clip_to_durations": bool(training.get("clip_events_to_durations", False)),
                    "max_event_time": self.max_event_time,
                    "macro_left_out": left_out.setdefault(model, {}),
                    # data.drop_clips_without_events: 2023's psds_eval still counted their durations
                    "unscored_durations": self.trainer.datamodule.test_dropped_durations,
                }
                if self.postprocessing is None:
                    results[model] = evaluate_scores(
                        scores,
                        self.class_names,
                        events,
                        durations,
                        n_thresholds=training["n_test_thresholds"],
                        median_window=training["median_window"],
                        frame_step=self.frame_step,
                        save_dir=save_dir,
                        **options,
                    )
                else:
                    results[model] = evaluate_postprocessed(
                        scores, self.class_names, events, durations, self.postprocessing,
                        n_thresholds=training["n_test_thresholds"], frame_step=self.frame_step, save_dir=save_dir,
                        **options,
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
            table = summary_table(results, self.postprocessing_description, left_out)
            if self.trainer.fast_dev_run:
                table = f"{WIRING_CHECK}\n\n{table}"
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
