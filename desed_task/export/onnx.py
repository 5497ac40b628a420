"""ONNX (and TorchScript) export of a SED model with its features inside: 16 kHz mono audio in,
scores out.

The graph takes ``audio`` float32 (batch, samples) and returns ``strong`` (batch, classes, frames)
and ``weak`` (batch, classes); mel spectrogram, dB, scaler and network are all inside, so a
deployment needs only onnxruntime. Batch and length axes are dynamic. The metadata holds the
class names, the frame step, the sample rate and the STFT settings.

The TorchScript-based exporter is used: the dynamo exporter fails on the GRU (torch 2.13), and
the TorchScript one exports ``torch.stft`` (ONNX STFT, opset 17+) only with real outputs, so
the export front end takes the magnitude from ``return_complex=False`` (the same numbers as
``desed_task.features.mel.MelSpectrogram`` to float32 rounding).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from desed_task.features.mel import DB_CLAMP_MAX, DB_CLAMP_MIN, MelSpectrogram, amplitude_to_db

OPSET = 17


class ExportMelSpectrogram(nn.Module):
    """``MelSpectrogram`` (centred STFT, reflect padding, magnitude, mel matrix) written with
    operations the ONNX exporter supports; shares the window and filterbank of ``mel``.

    Shapes:
        audio: (batch, samples) -> (batch, n_mels, 1 + samples // hop_length).
    """

    def __init__(self, mel: MelSpectrogram) -> None:
        super().__init__()
        self.n_fft = mel.n_fft
        self.hop_length = mel.hop_length
        self.win_length = mel.win_length
        self.register_buffer("window", mel.window.detach().clone(), persistent=False)
        self.register_buffer("filterbank_t", mel.filterbank.detach().T.contiguous(), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        half = self.n_fft // 2
        padded = nn.functional.pad(audio[:, None], (half, half), mode="reflect")[:, 0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # return_complex=False is deprecated
            spec = torch.stft(
                padded, self.n_fft, self.hop_length, self.win_length, self.window,
                center=False, onesided=True, return_complex=False,
            )  # (batch, n_freqs, frames, 2)
        magnitude = torch.sqrt(spec.pow(2).sum(-1))
        return torch.matmul(self.filterbank_t, magnitude)


class ExportPipeline(nn.Module):
    """Audio -> (strong, weak) of a :class:`desed_task.inference.SEDPipeline`, exportable."""

    def __init__(self, pipeline: nn.Module) -> None:
        super().__init__()
        self.mel = ExportMelSpectrogram(pipeline.mel)
        self.scaler = pipeline.scaler
        self.network = pipeline.network

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        db = amplitude_to_db(self.mel(audio), amin=1e-5).clamp(DB_CLAMP_MIN, DB_CLAMP_MAX)
        return self.network(self.scaler(db))


def model_metadata(
    class_names: Sequence[str], sample_rate: int, hop_length: int, net_pooling: int, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """What a deployment needs to read the outputs, as strings."""
    return {
        "class_names": json.dumps(list(class_names)),
        "sample_rate": str(int(sample_rate)),
        "frame_step": repr(hop_length * net_pooling / sample_rate),
        "hop_length": str(int(hop_length)),
        "net_pooling": str(int(net_pooling)),
        "input": "audio: float32 (batch, samples), mono at sample_rate Hz, at least n_fft / 2 + 1 samples",
        "outputs": "strong: (batch, classes, frames) frame probabilities, frame i covers [i, i + 1) * frame_step s; weak: (batch, classes)",
        **(extra or {}),
    }


def export_torchscript(pipeline: nn.Module, path: str | Path, metadata: dict[str, str]) -> Path:
    """Write a traced TorchScript module of ``pipeline`` (same input and outputs as the ONNX
    graph; dynamic batch and length); ``metadata`` goes in the archive's ``metadata.json``
    (``torch.jit.load(path, _extra_files={"metadata.json": ""})``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(ExportPipeline(pipeline).eval(), torch.zeros(1, 10 * int(metadata["sample_rate"])), check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={"metadata.json": json.dumps(metadata)})
    return path


def export_onnx(
    pipeline: nn.Module,
    path: str | Path,
    class_names: Sequence[str],
    sample_rate: int,
    hop_length: int,
    net_pooling: int,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """Write the ONNX model of ``pipeline`` (a SEDPipeline) with its metadata.

    Args:
        pipeline: audio (batch, samples) -> strong (batch, classes, frames), weak (batch, classes).
        path: the ``.onnx`` file to write.
        class_names: (n_classes,) output order.
        sample_rate: Hz the graph expects (16000).
        hop_length, net_pooling: STFT hop (samples) and network time pooling; the frame step
            is their product over the sample rate.
        extra_metadata: more key/value strings (the checkpoint, the model).

    Returns:
        the path written.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = ExportPipeline(pipeline).eval()
    example = torch.zeros(1, 10 * sample_rate)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["audio"],
            output_names=["strong", "weak"],
            dynamic_axes={"audio": {0: "batch", 1: "samples"}, "strong": {0: "batch", 2: "frames"}, "weak": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, model_metadata(class_names, sample_rate, hop_length, net_pooling, extra_metadata))
    onnx.save(model, str(path))
    return path
