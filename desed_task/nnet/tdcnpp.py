"""TDCN++ universal sound separation (the 2021 SSEP + SED baseline's separation model) in PyTorch.

A re-implementation of Google's model, built to give the same numbers as its TensorFlow 1 graph
(google-research/sound-separation, ``models/neurips2020_mixit/model.py`` with
``models/train/network.py``, ``network_config.improved_tdcn()`` and ``consistency.py``; the
YFCC100M MixIT checkpoint uses the defaults below at 16 kHz). Its checkpoint is converted by
``python -m desed_task.separation convert`` (variable names:
`desed_task.separation.convert.tf_to_torch_names`).

Signal flow, for a mixture (batch, samples) at 16 kHz:

1. learned-basis encoder: frames of ``window`` = 40 samples every ``hop`` = 20, zero-padded at
   the end as ``tf.signal.frame(pad_end=True)`` and cut to ``1 + ceil((samples - window) / hop)``
   frames; ``ReLU(frames @ W)``, W (window, num_coeffs) without bias;
2. the improved TDCN: dense num_coeffs -> bottleneck with bias and a learned scalar scale, then
   ``num_repeats`` x ``num_dilations`` blocks (dilations 1, 2, .., 2**(num_dilations - 1) per
   repeat), each::

       y = PReLU(x @ W1 * s1); y = InstanceNorm(y)            # 256 -> 512
       z = DepthwiseConv(y, kernel 3, dilation d, same) + b
       z = InstanceNorm(PReLU(z))
       out = x + (z @ W2) * s2                                # 512 -> 256; s2 starts at 0.9**block

   PReLU and instance norm (over time, epsilon 1e-3) have scalar parameters; no skip-residual
   connections between blocks (``add_skip_residual_connections=False``);
3. a mask per source: ``sigmoid(tdcn @ W)``, W (bottleneck, sources * num_coeffs), times the
   encoder coefficients;
4. the decoder: ``masked @ W``, W (num_coeffs, window) without bias, overlap-added with ``hop``
   and cut to the input length;
5. mixture consistency with predicted weights: ``w = softmax(mean_time(tdcn) @ W)``,
   W (bottleneck, sources); every source gets ``w_source * (mixture - sum of sources)``.

Differences from the TensorFlow graph: any batch size (the published graph fixes batch 1); a
clip shorter than ``hop + 1`` samples gets one frame (the graph computes zero frames for it).
Equal to the graph within float32 rounding: on the golden of ../shared/reference/tdcnpp2021
(tests/test_tdcnpp.py) the sources differ by at most ~1e-6 and the TDCN output (values up to 9.3)
by ~2e-5.

Implementation, for speed on the CPU (a 10 s clip is 7,999 frames of 512 channels through 32
blocks): activations are time-major (frames, batch, channels), so that every dense layer is one
matrix product, the instance norm is PyTorch's fused batch norm over a (frames, batch *
channels) view and the dilated depthwise convolution is three multiply-adds on shifted slices;
the learned scalar scales are folded into the dense kernels and the residual is added inside
the last product of a block. On the CPU without gradient the products are oneDNN's (MKL's, used
by ``torch.matmul``, is slower on AMD processors). ``fast=False`` (and tracing or export) uses
plain operations only, with the same results up to float rounding.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORM_EPSILON = 1e-3
"""Epsilon of the instance norm: Keras ``LayerNormalization``'s default, which the official
``LayerNormalizationScalarParams`` keeps."""


def num_frames(samples: int, window: int, hop: int) -> int:
    """Frames of the encoder: ``1 + ceil((samples - window) / hop)`` as the official encoder
    computes it, at least 1.

    Args:
        samples: input length in samples.
        window, hop: frame length and hop in samples.
    """
    return max(1, 1 - (-(samples - window) // hop))


def exporting() -> bool:
    """Whether the module is being traced or exported (then `forward` uses only plain ops)."""
    compiling = getattr(torch.compiler, "is_compiling", lambda: False)()  # torch >= 2.3
    return torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or compiling


class TDCNBlock(nn.Module):
    """One block of the improved TDCN, on time-major (frames, batch, bottleneck) activations.

    Parameters keep TensorFlow's layouts: dense kernels (in, out), the depthwise kernel
    (kernel_size, channels), scalar scales and PReLU slopes, (1,) norm gamma and beta.

    Args:
        bottleneck: channels in and out.
        conv_channels: channels of the depthwise convolution.
        kernel_size: taps of the depthwise convolution (odd).
        dilation: its dilation (frames).
        scale: initial value of the learned output scale (0.9 ** block in the official model).
        prelu_init: initial PReLU slope.
    """

    def __init__(
        self,
        bottleneck: int,
        conv_channels: int,
        kernel_size: int,
        dilation: int,
        scale: float,
        prelu_init: float,
    ) -> None:
        super().__init__()
        self.dilation = dilation
        self.dense1 = nn.Parameter(torch.empty(bottleneck, conv_channels))
        self.dense1_scale = nn.Parameter(torch.tensor(1.0))
        self.prelu1 = nn.Parameter(torch.tensor(float(prelu_init)))
        self.norm1_gamma = nn.Parameter(torch.ones(1))
        self.norm1_beta = nn.Parameter(torch.zeros(1))
        self.conv_weight = nn.Parameter(torch.empty(kernel_size, conv_channels))
        self.conv_bias = nn.Parameter(torch.zeros(conv_channels))
        self.prelu2 = nn.Parameter(torch.tensor(float(prelu_init)))
        self.norm2_gamma = nn.Parameter(torch.ones(1))
        self.norm2_beta = nn.Parameter(torch.zeros(1))
        self.dense2 = nn.Parameter(torch.empty(conv_channels, bottleneck))
        self.dense2_scale = nn.Parameter(torch.tensor(float(scale)))
        for weight in (self.dense1, self.dense2):
            nn.init.xavier_uniform_(weight)
        # Keras DepthwiseConv2D's glorot uniform on its (taps, 1, channels, 1) kernel:
        # fan_in = taps * channels, fan_out = taps (the golden's std 0.036 for 3 x 512)
        bound = (6.0 / (kernel_size * conv_channels + kernel_size)) ** 0.5
        nn.init.uniform_(self.conv_weight, -bound, bound)

    def forward(self, x: Tensor, fast: bool = True) -> Tensor:
        """(frames, batch, bottleneck) -> the same shape.

        `fast`: fused instance norm and in-place convolution taps (same results up to float
        rounding); False uses plain ops only (tracing, export).
        """
        # the learned scalar scales are folded into the dense kernels
        y = dense(x, self.dense1 * self.dense1_scale, fast=fast)
        y = instance_norm(F.prelu(y, self.prelu1.reshape(1)), self.norm1_gamma, self.norm1_beta, fast)
        z = depthwise_conv(y, self.conv_weight, self.conv_bias, self.dilation, fast)
        z = instance_norm(F.prelu(z, self.prelu2.reshape(1)), self.norm2_gamma, self.norm2_beta, fast)
        return dense(z, self.dense2 * self.dense2_scale, residual=x, fast=fast)


def onednn_usable(x: Tensor) -> bool:
    """Whether `dense` may call oneDNN's linear (CPU float32 inference; it has no gradient)."""
    return (
        x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
        and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def dense(x: Tensor, kernel: Tensor, residual: Tensor | None = None, fast: bool = True) -> Tensor:
    """``x @ kernel (+ residual)`` on the last axis.

    Args:
        x: (..., in).
        kernel: (in, out), TensorFlow's layout.
        residual: None or (..., out), added to the product.
        fast: on the CPU without gradient, oneDNN's matrix product (PyTorch's CPU matmul is
            MKL, measurably slower on AMD processors; same results up to float rounding).

    Returns:
        (..., out).
    """
    if fast and onednn_usable(x):
        flat = x.reshape(-1, x.shape[-1])
        weight = kernel.t().contiguous()
        if residual is None:
            out = torch.ops.mkldnn._linear_pointwise(flat, weight, None, "none", [], "")
        else:
            out = torch.ops.mkldnn._linear_pointwise.binary(
                flat, residual.reshape(-1, residual.shape[-1]), weight, None, "add"
            )
        return out.reshape(*x.shape[:-1], kernel.shape[1])
    out = torch.matmul(x, kernel)
    return out if residual is None else residual + out


def instance_norm(x: Tensor, gamma: Tensor, beta: Tensor, fast: bool = True) -> Tensor:
    """Normalise time-major (frames, batch, channels) over frames, per batch item and channel,
    then ``* gamma + beta`` (both (1,)): biased variance, epsilon `NORM_EPSILON`, as the official
    ``LayerNormalizationScalarParams`` over the time axis (``tf.nn.moments`` +
    ``tf.nn.batch_normalization``).

    `fast`: PyTorch's fused batch norm on the (frames, batch * channels) view; False: the
    TensorFlow formula in plain ops, ``x * inv + (beta - mean * inv)``,
    ``inv = gamma / sqrt(var + eps)``.
    """
    if fast:
        frames, batch, channels = x.shape
        # (contiguous weights: the expanded scalars make the fused kernel ~2x slower)
        out = torch.batch_norm(
            x.reshape(frames, batch * channels), gamma.expand(batch * channels).contiguous(),
            beta.expand(batch * channels).contiguous(), None, None, True, 0.0, NORM_EPSILON, False,
        )
        return out.reshape(x.shape)
    mean = x.mean(dim=0, keepdim=True)
    var = torch.square(x - mean).mean(dim=0, keepdim=True)
    inv = torch.rsqrt(var + NORM_EPSILON) * gamma
    return x * inv + (beta - mean * inv)


def depthwise_conv(x: Tensor, weight: Tensor, bias: Tensor, dilation: int, fast: bool = True) -> Tensor:
    """Depthwise convolution over frames with zero 'same' padding (Keras ``DepthwiseConv2D``,
    ``padding='SAME'``).

    Args:
        x: (frames, batch, channels).
        weight: (kernel_size, channels), kernel_size odd; tap k multiplies frame
            ``t + (k - kernel_size // 2) * dilation``.
        bias: (channels,).
        dilation: frames between taps.
        fast: add the outer taps in place into slices; False: on a zero-padded copy (plain
            ops; the same sums in the same order).

    Returns:
        (frames, batch, channels): ``bias + sum_k weight[k] * x[t + shift_k]``, the centre tap
        first, then the others in order.
    """
    frames, centre = x.shape[0], weight.shape[0] // 2
    out = torch.addcmul(bias, x, weight[centre])
    if not fast:
        half = centre * dilation
        padded = F.pad(x, (0, 0, 0, 0, half, half))
    for k in range(weight.shape[0]):
        shift = (k - centre) * dilation
        if k == centre or abs(shift) >= frames:
            continue
        if not fast:
            out = torch.addcmul(out, padded[k * dilation:k * dilation + frames], weight[k])
        elif shift < 0:  # out[t] += w_k * x[t + shift], t >= -shift
            out[-shift:].addcmul_(x[:frames + shift], weight[k])
        else:
            out[:frames - shift].addcmul_(x[shift:], weight[k])
    return out


class TDCNpp(nn.Module):
    """The TDCN++ separation network with a learned basis and mixture consistency.

    Args:
        num_sources: separated sources (8 in the YFCC100M model).
        window: encoder frame length in samples (0.0025 s at 16 kHz).
        hop: encoder hop in samples (0.00125 s at 16 kHz).
        num_coeffs: basis coefficients per frame.
        bottleneck: channels between blocks.
        conv_channels: channels inside a block.
        kernel_size: taps of the depthwise convolutions.
        num_dilations: blocks per repeat (dilations 1 .. 2 ** (num_dilations - 1)).
        num_repeats: repeats of those blocks.
        scale_base: block b's output scale starts at ``scale_base ** b``.
        prelu_init: initial PReLU slope.

    Attributes:
        hparams: the constructor's arguments (what `save_separator` stores).
        n_sources: ``num_sources``, as the folder separator reads it.
        source: where the weights came from (set by `load_separator`; empty otherwise).
    """

    def __init__(
        self,
        *,
        num_sources: int = 8,
        window: int = 40,
        hop: int = 20,
        num_coeffs: int = 256,
        bottleneck: int = 256,
        conv_channels: int = 512,
        kernel_size: int = 3,
        num_dilations: int = 8,
        num_repeats: int = 4,
        scale_base: float = 0.9,
        prelu_init: float = 0.1,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd ('same' padding), got {kernel_size}")
        if window % hop:
            raise ValueError(f"window ({window}) must be a multiple of hop ({hop})")
        self.hparams = dict(
            num_sources=num_sources, window=window, hop=hop, num_coeffs=num_coeffs,
            bottleneck=bottleneck, conv_channels=conv_channels, kernel_size=kernel_size,
            num_dilations=num_dilations, num_repeats=num_repeats, scale_base=scale_base,
            prelu_init=prelu_init,
        )
        self.n_sources = num_sources
        self.source: dict = {}
        self.window, self.hop, self.num_coeffs = window, hop, num_coeffs
        # dense kernels in TensorFlow's (in, out) layout
        self.encoder = nn.Parameter(torch.empty(window, num_coeffs))
        self.initial_dense = nn.Parameter(torch.empty(num_coeffs, bottleneck))
        self.initial_bias = nn.Parameter(torch.zeros(bottleneck))
        self.initial_scale = nn.Parameter(torch.tensor(1.0))
        n_blocks = num_dilations * num_repeats
        self.blocks = nn.ModuleList(
            TDCNBlock(bottleneck, conv_channels, kernel_size, 2 ** (b % num_dilations),
                      scale_base**b, prelu_init)
            for b in range(n_blocks)
        )
        self.mask_dense = nn.Parameter(torch.empty(bottleneck, num_sources * num_coeffs))
        self.decoder = nn.Parameter(torch.empty(num_coeffs, window))
        self.mix_weights_dense = nn.Parameter(torch.empty(bottleneck, num_sources))
        for weight in (self.encoder, self.initial_dense, self.mask_dense, self.decoder,
                       self.mix_weights_dense):
            nn.init.xavier_uniform_(weight)

    def encode(self, waveform: Tensor) -> Tensor:
        """Learned-basis coefficients.

        Args:
            waveform: (batch, samples).

        Returns:
            (frames, batch, num_coeffs), non-negative; ``num_frames(samples)`` frames.
        """
        samples = waveform.shape[-1]
        # 1 + ceil((samples - window) / hop), written with shape arithmetic a tracer records
        # (exported graphs take any length >= hop + 1); at least 1 frame otherwise
        frames = 1 + (samples - self.window + self.hop - 1) // self.hop
        if not exporting():
            frames = max(1, frames)
        # frame f: samples [f * hop, f * hop + window), zero beyond the end: a strided
        # convolution over the mixture padded by a whole window, cut to `frames`
        padded = F.pad(waveform, (0, self.window))
        coeffs = F.conv1d(padded[:, None], self.encoder.t()[:, None], stride=self.hop)[..., :frames]
        return torch.relu(coeffs).permute(2, 0, 1)

    def tdcn(self, coeffs: Tensor, fast: bool = True) -> Tensor:
        """The improved TDCN: (frames, batch, num_coeffs) -> (frames, batch, bottleneck)."""
        scale = self.initial_scale
        x = dense(coeffs, self.initial_dense * scale, fast=fast) + self.initial_bias * scale
        for block in self.blocks:
            x = block(x, fast)
        return x

    def decode(self, coeffs: Tensor, samples: int) -> Tensor:
        """Waveforms of masked coefficients.

        Args:
            coeffs: (frames, batch, sources, num_coeffs).
            samples: the output length (at most ``(frames - 1) * hop + window``).

        Returns:
            (batch, sources, samples): each frame's ``coeffs @ decoder`` overlap-added.
        """
        frames, batch, sources, _ = coeffs.shape
        per_frame = self.window // self.hop
        pieces = torch.matmul(coeffs, self.decoder).unflatten(-1, (per_frame, self.hop))
        # pieces (frames, batch, sources, per_frame, hop): piece j of frame f lands at hop f + j
        hops = frames - 1 + per_frame
        out = pieces[:, :, :, 0]
        if per_frame > 1:
            out = F.pad(out, (0, 0, 0, 0, 0, 0, 0, per_frame - 1))
            for j in range(1, per_frame):
                out = out + F.pad(pieces[:, :, :, j], (0, 0, 0, 0, 0, 0, j, per_frame - 1 - j))
        # (hops, batch, sources, hop) -> (batch, sources, hops * hop)
        return out.permute(1, 2, 0, 3).reshape(batch, sources, hops * self.hop)[..., :samples]

    def intermediates(self, waveform: Tensor, fast: bool | None = None) -> dict[str, Tensor]:
        """Every stage of `forward`, for tests against the TensorFlow graph.

        Args:
            waveform: (batch, samples) float32 mixture.
            fast: as in `forward`.

        Returns:
            ``encoder_coeffs`` (batch, frames, num_coeffs); ``tdcn_output``
            (batch, frames, bottleneck); ``mix_weights`` (batch, sources), summing to 1;
            ``separated_before_consistency`` (batch, sources, samples); ``separated``
            (batch, sources, samples), what `forward` returns.
        """
        fast = not exporting() if fast is None else fast
        coeffs, tdcn, mix_weights, separated, consistent = self._run(waveform, fast)
        return {
            "encoder_coeffs": coeffs.transpose(0, 1),
            "tdcn_output": tdcn.transpose(0, 1),
            "mix_weights": mix_weights,
            "separated_before_consistency": separated,
            "separated": consistent,
        }

    def _run(self, waveform: Tensor, fast: bool) -> tuple[Tensor, ...]:
        """(coeffs, tdcn, mix_weights, separated, consistent) of `intermediates`, time-major."""
        if waveform.dim() != 2 or waveform.shape[-1] == 0:
            raise ValueError(f"expected a (batch, samples) waveform, got {tuple(waveform.shape)}")
        samples = waveform.shape[-1]
        coeffs = self.encode(waveform)
        tdcn = self.tdcn(coeffs, fast)
        logits = dense(tdcn, self.mask_dense, fast=fast).unflatten(-1, (self.n_sources, self.num_coeffs))
        if fast and not torch.is_grad_enabled():  # in place: 2 fewer copies of the largest tensor
            masked = logits.sigmoid_().mul_(coeffs[:, :, None])
        else:
            masked = torch.sigmoid(logits) * coeffs[:, :, None]
        separated = self.decode(masked, samples)
        mix_weights = torch.softmax(torch.matmul(tdcn.mean(dim=0), self.mix_weights_dense), dim=-1)
        residual = waveform - separated.sum(dim=1)
        consistent = separated + mix_weights[..., None] * residual[:, None]
        return coeffs, tdcn, mix_weights, separated, consistent

    def forward(self, waveform: Tensor, fast: bool | None = None) -> Tensor:
        """Separate mixtures.

        Args:
            waveform: (batch, samples) float32 mixtures at the model's rate (16 kHz), any
                length >= 1.
            fast: fused ops (default, except while tracing or exporting); False: plain ops only.

        Returns:
            (batch, num_sources, samples) float32 sources that sum to the mixture.
        """
        return self._run(waveform, fast=not exporting() if fast is None else fast)[-1]
    @torch.no_grad()
    def separate(self, waveform: np.ndarray) -> np.ndarray:
        """One clip, as the folder separator calls it: (samples,) -> (sources, samples) numpy
        float32, computed on the module's device."""
        param = self.encoder
        x = torch.as_tensor(waveform, dtype=torch.float32, device=param.device).reshape(1, -1)
        return self(x)[0].cpu().numpy()
