"""The 2021 recipe's mean-teacher training step, built from the recipe's own files, to time beside ours.

The network (`desed_task/nnet/CRNN.py`, `CNN.py`, `RNN.py`), the scaler
(`desed_task/utils/scaler.py`) and mixup (`desed_task/data_augm.py`) are the recipe's files at
DCASE-REPO/DESED_task 367e88c (``../shared/oracle2021/ref``), imported by path under other module
names (the recipe's package is also called ``desed_task``). `Step2021` is
`recipes/dcase2021_task4_baseline/local/sed_trainer.py`'s ``training_step`` (without its
logging: the benchmark stubs ours too), then zero_grad, backward, Adam and the recipe's EMA
loop (``update_ema``, one ``mul_().add_()`` per parameter).

Features: torchaudio's ``MelSpectrogram`` and ``AmplitudeToDB`` when torchaudio imports; else
the same operations written out below (torchaudio 0.8.1's ``spectrogram``, ``MelScale`` and
``amplitude_to_DB``: STFT, ``abs``, ``matmul(spec^T, fb)^T``; ``20 log10(clamp)`` minus 0),
with the filterbank of `desed_task.features.mel` (2021's to the bit).
"""

from __future__ import annotations

import importlib
import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

import torch

from desed_task.features.mel import mel_filterbank

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = REPO.parent / "shared" / "oracle2021" / "ref"
PACKAGE = "desed_task_2021"  # the recipe's desed_task, under this name


def load_reference(reference: Path) -> ModuleType:
    """The recipe's ``desed_task`` package at `reference`/desed_task, imported as
    ``desed_task_2021`` (its ``__init__`` files are not run: they import the data modules)."""
    root = Path(reference) / "desed_task"
    if not (root / "nnet" / "CRNN.py").is_file():
        raise FileNotFoundError(f"{root / 'nnet' / 'CRNN.py'} not found")
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]
    for name, folder in ((PACKAGE, root), (f"{PACKAGE}.nnet", root / "nnet"), (f"{PACKAGE}.utils", root / "utils")):
        package = ModuleType(name)
        package.__path__ = [str(folder)]
        sys.modules[name] = package
    return sys.modules[PACKAGE]


def _import(reference: Path, name: str) -> ModuleType:
    load_reference(reference)
    return importlib.import_module(f"{PACKAGE}.{name}")


def reference_crnn(reference: Path, net: dict) -> torch.nn.Module:
    """The recipe's CRNN built from a config's ``net:`` section as the recipe built it
    (``CRNN(**config["net"])``: the yaml's ``rnn_layers`` is swallowed by its **kwargs)."""
    return _import(reference, "nnet.CRNN").CRNN(**net)


class _Mel2021(torch.nn.Module):
    """torchaudio 0.8.1's ``MelSpectrogram(power=1)`` operations: (B, samples) -> (B, n_mels, frames)."""

    def __init__(self, feats: dict):
        super().__init__()
        self.n_fft, self.hop = int(feats["n_window"]), int(feats["hop_length"])
        self.register_buffer("window", torch.hamming_window(self.n_fft, periodic=False))
        fb = mel_filterbank(self.n_fft // 2 + 1, feats["f_min"], feats["f_max"], feats["n_mels"], feats["sample_rate"])
        self.register_buffer("fb", fb)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        shape = waveform.size()
        waveform = waveform.reshape(-1, shape[-1])
        spec = torch.stft(waveform, self.n_fft, self.hop, self.n_fft, self.window, center=True,
                          pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
        spec = spec.reshape(shape[:-1] + spec.shape[-2:]).abs()
        shape = spec.size()
        spec = spec.reshape(-1, shape[-2], shape[-1])
        mel = torch.matmul(spec.transpose(1, 2), self.fb).transpose(1, 2)
        return mel.reshape(shape[:-2] + mel.shape[-2:])


def _amplitude_to_db_2021(x: torch.Tensor) -> torch.Tensor:
    """torchaudio 0.8.1's ``amplitude_to_DB(x, 20, amin=1e-5, db_multiplier=0, top_db=None)``."""
    x_db = 20.0 * torch.log10(torch.clamp(x, min=1e-5))
    x_db -= 20.0 * 0.0
    return x_db


def mel_2021(feats: dict) -> tuple[torch.nn.Module, object, str]:
    """The recipe's MelSpectrogram and ``take_log``, and which implementation they are."""
    try:
        from torchaudio.transforms import AmplitudeToDB, MelSpectrogram
    except Exception:  # noqa: BLE001 - not installed, or its compiled part does not load
        return _Mel2021(feats), lambda mels: _amplitude_to_db_2021(mels).clamp(min=-50, max=80), "its operations"
    mel = MelSpectrogram(
        sample_rate=feats["sample_rate"], n_fft=feats["n_window"], win_length=feats["n_window"],
        hop_length=feats["hop_length"], f_min=feats["f_min"], f_max=feats["f_max"], n_mels=feats["n_mels"],
        window_fn=torch.hamming_window, wkwargs={"periodic": False}, power=1,
    )
    amp_to_db = AmplitudeToDB(stype="amplitude")
    amp_to_db.amin = 1e-5
    return mel, lambda mels: amp_to_db(mels).clamp(min=-50, max=80), "torchaudio"


class Step2021:
    """One training step of the 2021 recipe on a batch of the benchmark's layout.

    Args:
        reference: the folder holding the recipe's ``desed_task/``.
        config: our config of the 2021 CRNN (``net``, ``feats``, ``scaler``, ``training``).
        device: where the step runs.
        state_dict: the student's (and teacher's) initial weights, e.g. our network's, so that
            both steps compute on the same numbers.
    """

    def __init__(self, reference: Path, config: dict, device: str, state_dict: dict | None = None):
        self.config = config
        self.student = reference_crnn(reference, config["net"]).to(device)
        if state_dict is not None:
            self.student.load_state_dict(state_dict)
        self.teacher = reference_crnn(reference, config["net"]).to(device)
        self.teacher.load_state_dict(self.student.state_dict())
        for param in self.teacher.parameters():
            param.detach_()
        scaler = config["scaler"]
        self.scaler = _import(reference, "utils.scaler").TorchScaler(scaler["statistic"], scaler["normtype"], scaler["dims"])
        self.mixup = _import(reference, "data_augm").mixup
        mel, self.take_log, self.mel_kind = mel_2021(config["feats"])
        self.mel_spec = mel.to(device)
        self.student.train()
        self.teacher.train()
        self.optimizer = torch.optim.Adam(self.student.parameters(), 1e-3, betas=(0.9, 0.999))
        self.supervised_loss = torch.nn.BCELoss()
        self.selfsup_loss = torch.nn.MSELoss()
        self.global_step = 0

    def detect(self, mel_feats: torch.Tensor, model: torch.nn.Module):
        return model(self.scaler(self.take_log(mel_feats)))

    def training_step(self, audio: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """sed_trainer.py's ``training_step``: audio (B, samples), labels (B, classes, frames)."""
        indx_synth, indx_weak, indx_unlabelled = self.config["training"]["batch_size"]
        features = self.mel_spec(audio)
        batch_num = features.shape[0]
        strong_mask = torch.zeros(batch_num).to(features).bool()
        weak_mask = torch.zeros(batch_num).to(features).bool()
        strong_mask[:indx_synth] = 1
        weak_mask[indx_synth : indx_weak + indx_synth] = 1
        labels_weak = (torch.sum(labels[weak_mask], -1) > 0).float()
        mixup_type = self.config["training"].get("mixup")
        if mixup_type is not None and 0.5 > random.random():
            features[weak_mask], labels_weak = self.mixup(features[weak_mask], labels_weak, mixup_label_type=mixup_type)
            features[strong_mask], labels[strong_mask] = self.mixup(
                features[strong_mask], labels[strong_mask], mixup_label_type=mixup_type
            )
        strong_preds_student, weak_preds_student = self.detect(features, self.student)
        loss_strong = self.supervised_loss(strong_preds_student[strong_mask], labels[strong_mask])
        loss_weak = self.supervised_loss(weak_preds_student[weak_mask], labels_weak)
        tot_loss_supervised = loss_strong + loss_weak
        with torch.no_grad():
            strong_preds_teacher, weak_preds_teacher = self.detect(features, self.teacher)
            self.supervised_loss(strong_preds_teacher[strong_mask], labels[strong_mask])
            self.supervised_loss(weak_preds_teacher[weak_mask], labels_weak)
        weight = self.config["training"]["const_max"] * 0.5
        strong_self_sup_loss = self.selfsup_loss(strong_preds_student, strong_preds_teacher.detach())
        weak_self_sup_loss = self.selfsup_loss(weak_preds_student, weak_preds_teacher.detach())
        tot_self_loss = (strong_self_sup_loss + weak_self_sup_loss) * weight
        return tot_loss_supervised + tot_self_loss

    def update_ema(self, alpha: float, global_step: int) -> None:
        """sed_trainer.py's ``update_ema``."""
        alpha = min(1 - 1 / (global_step + 1), alpha)
        for ema_params, params in zip(self.teacher.parameters(), self.student.parameters()):
            ema_params.data.mul_(alpha).add_(params.data, alpha=1 - alpha)

    def __call__(self, batch: dict) -> None:
        """A whole step on the benchmark's batch (audio, strong_targets as the recipe's labels)."""
        loss = self.training_step(batch["audio"].clone(), batch["strong_targets"].clone())
        self.update_ema(0.999, self.global_step + 1)  # on_before_zero_grad
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.global_step += 1
