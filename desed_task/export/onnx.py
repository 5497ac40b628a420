"""ONNX (and TorchScript) export of a SED model with its features inside: 16 kHz mono audio in,
scores out.

The graph takes ``audio`` float32 (batch, samples) and returns ``strong`` (batch, classes, frames)
and ``weak`` (batch, classes); mel spectrogram, dB, scaler and network are all inside, so a
deployment needs only onnxruntime. Batch and length axes are dynamic. The metadata holds the
class names, the frame step, the sample rate and the STFT settings.

A checkpoint of the 2023 CRNN fed BEATs embeddings exports BEATs too (its Kaldi fbank, the
encoder) beside the mel, scaler and CRNN, so the graph takes audio only; its ``audio`` is then
(batch, clip samples), the training clip length (10 s: 160000 samples), since BEATs embedded
10 s clips: a deployment zero-pads shorter windows, as ``python -m desed_task.inference --onnx``
does. The CRNN's adaptive pooling of the 496 tokens to its 156 frames (or its nearest-exact
resampling, ``aggregation_type: interpolate``) is exported as the same fixed matrix
(``CRNN.fix_token_pooling``): the exporter cannot write adaptive pooling of sizes that do not
divide, nor nearest-exact resampling.

An SSEP + SED checkpoint (finetune_on_separated.py) exports ONE graph with the separation model
inside (the PyTorch TDCN++ of its converted ``separation.pt``): ``audio`` (batch, samples) in,
the mixture separated, then the ensemble with the features on the mixture and its sources,
scores out (metadata ``separation: inside``). The graph separates each window it is given as
2021 separated its 10 s clips, so a deployment feeds it windows of 10 s (or less), as
``python -m desed_task.inference --onnx`` does.

The TorchScript-based exporter is used: the dynamo exporter fails on the GRU (torch 2.13). The
STFT is written as frame gathering and two matrix products (``FactoredDFTMagnitude``), which
ONNX Runtime runs 4x faster than its STFT node: the same numbers as
``desed_task.features.mel.MelSpectrogram`` to float32 rounding.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from desed_task.features.mel import MelSpectrogram
from desed_task.features.network_input import mel_magnitudes, normalise
from desed_task.nnet import run_network

OPSET = 17


def _factor_pair(n: int) -> tuple[int, int]:
    """(n1, n2) with n1 * n2 = n and n1 the largest divisor not above sqrt(n)."""
    n1 = max(d for d in range(1, int(n**0.5) + 1) if n % d == 0)
    return n1, n // n1


class FactoredDFTMagnitude(nn.Module):
    """|DFT| of windowed frames (onesided) as two small matrix products: one Cooley-Tukey
    step (n_fft = n1 x n2, DFTs of size n1 then n2 with twiddle factors between).

    ONNX Runtime's STFT took half the exported model's time (0.31 s of 0.56 s for 8 windows
    of 10 s at n_fft 2048); this needs ~0.4 M multiply-adds a frame at 2048 (a direct DFT
    product needs 4.2 M) in MatMul nodes, which ONNX Runtime runs fast.

    Shapes:
        frames: (..., n_fft) windowed samples -> (..., n_fft // 2 + 1) magnitudes.
    """

    def __init__(self, n_fft: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.n1, self.n2 = _factor_pair(n_fft)
        self.n_freqs = n_fft // 2 + 1
        self.k2_count = -(-self.n_freqs // self.n1)  # bins k = k1 + n1 k2 needed: k2 < k2_count
        n1, n2 = torch.arange(self.n1, dtype=torch.float64), torch.arange(self.n2, dtype=torch.float64)
        k2 = torch.arange(self.k2_count, dtype=torch.float64)
        inner = 2 * torch.pi * n1[:, None] * n1[None, :] / self.n1  # [k1, n1]
        self.register_buffer("inner", torch.cat([torch.cos(inner), -torch.sin(inner)]).float(), persistent=False)
        twiddle = 2 * torch.pi * n1[:, None] * n2[None, :] / n_fft  # [k1, n2]
        self.register_buffer("twiddle_cos", torch.cos(twiddle).float(), persistent=False)
        self.register_buffer("twiddle_sin", torch.sin(twiddle).float(), persistent=False)
        outer = 2 * torch.pi * n2[:, None] * k2[None, :] / self.n2  # [n2, k2]
        cos, sin = torch.cos(outer), torch.sin(outer)
        # [re | im] @ this = [re cos + im sin | im cos - re sin]: the outer DFT of a complex input
        self.register_buffer("outer", torch.cat([torch.cat([cos, -sin], 1), torch.cat([sin, cos], 1)]).float(), persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        leading = frames.shape[:-1]
        grid = frames.reshape(-1, self.n1, self.n2)  # sample n = n2_count * n1 + n2
        inner = torch.matmul(self.inner, grid)  # (rows, 2 n1, n2): DFT over n1 -> [k1, n2]
        real, imag = inner[:, : self.n1], inner[:, self.n1 :]
        real, imag = (real * self.twiddle_cos + imag * self.twiddle_sin,
                      imag * self.twiddle_cos - real * self.twiddle_sin)
        spectrum = torch.matmul(torch.cat([real, imag], -1), self.outer)  # (rows, n1, 2 k2): [k1, k2]
        power = spectrum[..., : self.k2_count].pow(2) + spectrum[..., self.k2_count :].pow(2)
        power = power.transpose(1, 2).reshape(-1, self.n1 * self.k2_count)[:, : self.n_freqs]  # bin k1 + n1 k2
        return torch.sqrt(power).reshape(*leading, self.n_freqs)


class ExportMelSpectrogram(nn.Module):
    """``MelSpectrogram`` (centred STFT, reflect padding, magnitude, mel matrix) written with
    operations the ONNX exporter supports; shares the window and filterbank of ``mel``.

    When the hop divides n_fft (2021: 256 and 2048) the frames are gathered from hop-long
    blocks and transformed by :class:`FactoredDFTMagnitude`; otherwise ``torch.stft`` is
    exported (ONNX STFT).

    Shapes:
        audio: (batch, [channels,] samples) -> (batch, [channels,] n_mels, 1 + samples // hop_length).
    """

    def __init__(self, mel: MelSpectrogram) -> None:
        super().__init__()
        self.n_fft = mel.n_fft
        self.hop_length = mel.hop_length
        self.win_length = mel.win_length
        # torch.stft centres a shorter window in the frame
        left = (self.n_fft - self.win_length) // 2
        window = nn.functional.pad(mel.window.detach(), (left, self.n_fft - self.win_length - left))
        self.register_buffer("window", window.clone(), persistent=False)
        self.register_buffer("filterbank_t", mel.filterbank.detach().T.contiguous(), persistent=False)
        self.blocks_per_frame = self.n_fft // self.hop_length if self.n_fft % self.hop_length == 0 else 0
        self.dft = FactoredDFTMagnitude(self.n_fft) if self.blocks_per_frame else None

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() == 3:  # (batch, channels, samples): each channel on its own
            mel = self.forward(audio.reshape(-1, audio.shape[-1]))
            return mel.reshape(audio.shape[0], audio.shape[1], *mel.shape[-2:])
        half = self.n_fft // 2
        padded = nn.functional.pad(audio[:, None], (half, half), mode="reflect")[:, 0]
        if self.dft is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # return_complex=False is deprecated
                spec = torch.stft(
                    padded, self.n_fft, self.hop_length, self.n_fft, self.window,
                    center=False, onesided=True, return_complex=False,
                )  # (batch, n_freqs, frames, 2)
            return torch.matmul(self.filterbank_t, torch.sqrt(spec.pow(2).sum(-1)))
        n_frames = audio.shape[-1] // self.hop_length + 1
        n_blocks = n_frames + self.blocks_per_frame - 1  # (n_blocks) x hop <= samples + n_fft
        blocks = padded[:, : n_blocks * self.hop_length].reshape(audio.shape[0], n_blocks, self.hop_length)
        frames = torch.cat([blocks[:, i : i + n_frames] for i in range(self.blocks_per_frame)], -1)
        magnitude = self.dft(frames * self.window)  # (batch, frames, n_freqs)
        return torch.matmul(self.filterbank_t, magnitude.transpose(1, 2))


class ExportPipeline(nn.Module):
    """Audio -> (strong, weak) of a :class:`desed_task.inference.SEDPipeline`, exportable: the
    same network input (`desed_task.features.network_input`) with the mel spectrogram written
    as :class:`ExportMelSpectrogram`; for a pipeline that `takes_embeddings`, its BEATs on the
    same audio, and the copy of its network that its contract exports for clips of
    ``clip_samples`` samples (`NetworkContract.for_export`: the CRNN maps the tokens to its
    frames by a fixed matrix, `CRNN.fix_token_pooling`).

    Args:
        pipeline: the detector's :class:`SEDPipeline`.
        clip_samples: the 2023 CRNN's clip length (its graph's fixed input length).
        separator: for a pipeline that `takes_sources` (SSEP + SED): the separation network,
            (batch, samples) -> (batch, sources, samples), put in the graph before the features;
            the graph then takes (batch, samples). None: it takes (batch, 1 + sources, samples).

    Raises:
        ValueError: a pipeline that takes embeddings but has no BEATs.
    """

    def __init__(self, pipeline: nn.Module, clip_samples: int | None = None, separator: nn.Module | None = None) -> None:
        super().__init__()
        self.separator = separator if getattr(pipeline, "takes_sources", False) else None
        self.mel = ExportMelSpectrogram(pipeline.mel)
        self.scaler = pipeline.scaler
        self.network = pipeline.network
        self.mixture_input = pipeline.mixture_input
        self.beats = None
        if getattr(pipeline, "takes_embeddings", False):
            if pipeline.beats is None or clip_samples is None:
                raise ValueError("exporting the 2023 CRNN needs its BEATs model and the clip length")
            self.beats, self.embedding_type = pipeline.beats, pipeline.embedding_type
            n_frames = (1 + clip_samples // self.mel.hop_length) // self.network.time_pooling
            self.network = pipeline.needs.for_export(copy.deepcopy(self.network), self.beats.n_tokens(clip_samples), n_frames)

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.separator is not None:  # (batch, samples) -> (batch, 1 + sources, samples)
            audio = torch.cat([audio[:, None], self.separator(audio)], 1)
        features = normalise(self.scaler, mel_magnitudes(self.mel, audio, self.mixture_input))
        embeddings = None if self.beats is None else self.beats.embeddings(audio)[self.embedding_type]
        return run_network(self.network, features, embeddings)


EXAMPLE_SOURCES = 4  # sources of the tracing input of an SSEP + SED graph fed its sources (the axis is dynamic)
AUDIO_INPUT = "audio: float32 (batch, samples), mono at sample_rate Hz, at least n_fft / 2 + 1 samples"
CLIP_INPUT = (
    "audio: float32 (batch, {samples}), mono at sample_rate Hz: windows of exactly the training clip length "
    "({seconds:g} s), a shorter one zero-padded at its end (the BEATs embeddings were extracted from clips "
    "padded so); scores of the padding are to be cut off"
)
SEPARATING_INPUT = (
    "audio: float32 (batch, samples), mono mixtures at sample_rate Hz, at least n_fft / 2 + 1 samples: the "
    "separation model inside the graph separates each row as 2021 separated its 10 s clips (feed windows "
    "of at most 10 s); the ensemble then scores the mixture and its sources"
)
SEPARATED_INPUT = (
    "audio: float32 (batch, 1 + sources, samples) at sample_rate Hz, at least n_fft / 2 + 1 samples: "
    "channel 0 the mono mixture, then its sources by the separation model (not in this graph); "
    "with mixture_input sum_of_sources (2021) channel 0 is not read"
)


def model_metadata(
    class_names: Sequence[str], sample_rate: int, hop_length: int, net_pooling: int, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """What a deployment needs to read the outputs, as strings (an SSEP + SED export gives its
    ``input`` and ``mixture_input`` in `extra`)."""
    return {
        "class_names": json.dumps(list(class_names)),
        "sample_rate": str(int(sample_rate)),
        "frame_step": repr(hop_length * net_pooling / sample_rate),
        "hop_length": str(int(hop_length)),
        "net_pooling": str(int(net_pooling)),
        "input": AUDIO_INPUT,
        "outputs": "strong: (batch, classes, frames) frame probabilities, frame i covers [i, i + 1) * frame_step s; weak: (batch, classes)",
        **(extra or {}),
    }


def example_input(
    pipeline: nn.Module, sample_rate: int, clip_samples: int | None = None, separates: bool = False
) -> torch.Tensor:
    """10 s (or ``clip_samples``) of audio in the pipeline's input layout: (1, samples), or
    (1, 1 + sources, samples) for a pipeline that takes separated sources and does not separate
    them itself (`separates`). Silence, but noise for a graph that separates (its instance norm
    would divide zeros by zero)."""
    samples = clip_samples or 10 * int(sample_rate)
    if separates:
        return 0.1 * torch.randn(1, samples, generator=torch.Generator().manual_seed(0))
    if getattr(pipeline, "takes_sources", False):
        return torch.zeros(1, 1 + EXAMPLE_SOURCES, samples)
    return torch.zeros(1, samples)


def export_torchscript(
    pipeline: nn.Module, path: str | Path, metadata: dict[str, str], clip_samples: int | None = None,
    separator: nn.Module | None = None,
) -> Path:
    """Write a traced TorchScript module of ``pipeline`` (same input and outputs as the ONNX
    graph; dynamic batch and length, the length fixed to ``clip_samples`` for the 2023 CRNN);
    ``metadata`` goes in the archive's ``metadata.json``
    (``torch.jit.load(path, _extra_files={"metadata.json": ""})``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = ExportPipeline(pipeline, clip_samples, separator).eval()
    example = example_input(pipeline, int(metadata["sample_rate"]), clip_samples, module.separator is not None)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={"metadata.json": json.dumps(metadata)})
    return path


def materialize_initializer_copies(graph) -> None:
    """Replace each ``Identity`` node that copies an initializer by an initializer of its own.

    The exporter stores parameters of equal values (e.g. the TDCN++'s instance-norm gains, all
    1 before training, as in the demo's stand-in) once, the others as ``Identity`` copies of
    it; ONNX Runtime's graph optimizer then refuses the graph ("... is not a graph input,
    initializer, or output of a previous node"). The copies are small (scalars, in practice)."""
    import onnx

    initializers = {tensor.name: tensor for tensor in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            copy_ = onnx.TensorProto()
            copy_.CopyFrom(initializers[node.input[0]])
            copy_.name = node.output[0]
            graph.initializer.append(copy_)
        else:
            kept.append(node)
    if len(kept) != len(graph.node):
        del graph.node[:]
        graph.node.extend(kept)


def export_onnx(
    pipeline: nn.Module,
    path: str | Path,
    class_names: Sequence[str],
    sample_rate: int,
    hop_length: int,
    net_pooling: int,
    extra_metadata: dict[str, str] | None = None,
    clip_samples: int | None = None,
    separator: nn.Module | None = None,
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
        clip_samples: for a pipeline that `takes_embeddings` (the 2023 CRNN): the training clip
            length in samples, the graph's fixed input length.
        separator: for a pipeline that `takes_sources`: the separation network to put inside
            the graph (see :class:`ExportPipeline`).

    Returns:
        the path written.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = ExportPipeline(pipeline, clip_samples, separator).eval()
    example = example_input(pipeline, sample_rate, clip_samples, module.separator is not None)
    audio_axes = {0: "batch", 1: "sources", 2: "samples"} if example.dim() == 3 else {0: "batch", 1: "samples"}
    if module.beats is not None:  # BEATs embedded clips of one length: so does the graph
        audio_axes = {0: "batch"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["audio"],
            output_names=["strong", "weak"],
            dynamic_axes={"audio": audio_axes, "strong": {0: "batch", 2: "frames"}, "weak": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    model = onnx.load(str(path))
    materialize_initializer_copies(model.graph)
    onnx.helper.set_model_props(model, model_metadata(class_names, sample_rate, hop_length, net_pooling, extra_metadata))
    onnx.save(model, str(path))
    return path
