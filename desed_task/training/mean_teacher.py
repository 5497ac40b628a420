"""The mean-teacher training of the 2021 baseline as one LightningModule.

The student is trained with BCE on the strongly labelled (frame) and weakly labelled (clip)
parts of each batch and with a consistency loss (MSE) towards the teacher on the whole batch;
the teacher is an exponential moving average of the student. The same module trains the SED
baseline and fine-tunes the separation ensemble: the network is whatever `student` is.

The module holds the method only: its steps, losses, EMA, optimiser and scheduler, and the
logging of its own values. The dataset scaler's fit is a callback
(`desed_task.training.scaler_fit`), so are the validation metrics and the test scoring and
reports (`desed_task.training.scoring`, over `desed_task.evaluation`).
"""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch
from torch import nn

from desed_task.checkpoints import MODELS, lay_out_modules
from desed_task.features.network_input import mel_magnitudes, normalise
from desed_task.nnet import run_network
from desed_task.sets import LabelType
from desed_task.training.ema import update_ema
from desed_task.training.mixup import mixup
from desed_task.training.schedulers import (
    ExponentialWarmup,
    exponential_warmup_factor,
    first_step_lr,
    warmup_length,
)


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
        class_names: output classes, in the network's order (what the scoring callbacks
            read its outputs as).
        frame_step: seconds between two output frames (0.064 s in 2021).
        evaluation: test on unlabelled clips (at their own lengths, no loss): only
            predictions and scores are written.
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
        self._warmup_steps = 0  # set when the optimizer is built

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

    # ------------------------------------------------------------------ validation and test
    def _predict(self, batch: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        mel = self.mel_magnitudes(batch["audio"])
        embeddings = batch.get("embeddings")
        return {
            "student": self.detect(mel, self.sed_student, embeddings),
            "teacher": self.detect(mel, self.sed_teacher, embeddings),
        }

    def _log_losses(self, batch: dict, outputs: dict, stage: str) -> None:
        """The supervised losses of both models on the batch's strongly and weakly labelled clips."""
        strong_mask = (batch["label_type"] == LabelType.STRONG).cpu().numpy()
        weak_mask = (batch["label_type"] == LabelType.WEAK).cpu().numpy()
        for model, (strong, weak) in outputs.items():
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

    def validation_step(self, batch: dict, batch_idx: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Logs the losses; returns {model: (strong (B, C, frames'), weak (B, C))} for the
        scoring callback (`desed_task.training.scoring.ValidationScoring`)."""
        outputs = self._predict(batch)
        self._log_losses(batch, outputs, "val")
        return outputs

    def test_step(self, batch: dict, batch_idx: int) -> dict[str, tuple]:
        """As `validation_step` (for `desed_task.training.scoring.TestScoring`); evaluation clips
        at their own lengths: {model: (B arrays (C, frames_i), None)}, no loss."""
        if self.evaluation and batch["audio"].dim() == 2:
            return self._score_full_length(batch)
        outputs = self._predict(batch)
        self._log_losses(batch, outputs, "eval" if self.evaluation else "test")
        return outputs

    def _score_full_length(self, batch: dict) -> dict[str, tuple[list[np.ndarray], None]]:
        """Evaluation clips at their own length (2021: unpadded, one clip per batch), through
        the long-form path of the inference package in one window (one implementation of
        "score a clip of any length"; clips under a second are padded and cut back). The 2023
        CRNN's clips are padded to the length their embeddings describe (audio_max_len, at
        least the clip's: the datamodule refuses longer ones), as extraction padded them."""
        from desed_task.inference.windows import LongFormScorer

        feats = self.config["feats"]
        all_embeddings = batch.get("embeddings")
        seconds = 1.0 if all_embeddings is None else float(self.config["data"]["audio_max_len"])
        outputs = {}
        for model_name in MODELS:
            network = getattr(self, f"sed_{model_name}")
            scores = []
            for i, audio in enumerate(batch["audio"]):
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
                scores.append(scorer.score(audio))
            outputs[model_name] = (scores, None)
        return outputs
