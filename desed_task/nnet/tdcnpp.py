"""TDCN++ universal sound separation (the 2021 SSEP + SED baseline's separation model) in PyTorch.

A re-implementation of Google's model, built to give the same numbers as its TensorFlow 1 graph
(google-research/sound-separation, ``models/neurips2020_mixit/model.py`` with
``models/train/network.py``, ``network_config.improved_tdcn()`` and ``consistency.py``; the
YFCC100M MixIT checkpoint uses the defaults below at 16 kHz). Its checkpoint is converted by
``python -m desed_task.separation convert`` (variable names: `desed_task.separation.tf_names`).

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
clip shorter than ``hop + 1`` samples gets one frame (the graph computes zero frames for it and
cannot separate it).
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


class TDCNBlock(nn.Module):
    """One block of the improved TDCN, on (batch, bottleneck, frames) activations.

    Args:
        bottleneck: channels in and out.
        conv_channels: channels of the depthwise convolution.
        kernel_size: taps of the depthwise convolution.
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
        self.padding = dilation * (kernel_size - 1) // 2
        self.dense1 = nn.Parameter(torch.empty(conv_channels, bottleneck))
        self.dense1_scale = nn.Parameter(torch.tensor(1.0))
        self.prelu1 = nn.Parameter(torch.full((1,), prelu_init))
        self.norm1_gamma = nn.Parameter(torch.ones(1))
        self.norm1_beta = nn.Parameter(torch.zeros(1))
        self.conv_weight = nn.Parameter(torch.empty(conv_channels, 1, kernel_size))
        self.conv_bias = nn.Parameter(torch.zeros(conv_channels))
        self.prelu2 = nn.Parameter(torch.full((1,), prelu_init))
        self.norm2_gamma = nn.Parameter(torch.ones(1))
        self.norm2_beta = nn.Parameter(torch.zeros(1))
        self.dense2 = nn.Parameter(torch.empty(bottleneck, conv_channels))
        self.dense2_scale = nn.Parameter(torch.tensor(float(scale)))
        for weight in (self.dense1, self.dense2):
            nn.init.xavier_uniform_(weight)
        # Keras DepthwiseConv2D: glorot uniform over fan_in = fan_out = kernel_size
        nn.init.xavier_uniform_(self.conv_weight.view(conv_channels, kernel_size, 1))

    def forward(self, x: Tensor) -> Tensor:
        """(batch, bottleneck, frames) -> the same shape."""
        y = torch.matmul(self.dense1, x) * self.dense1_scale
        y = instance_norm(F.prelu(y, self.prelu1), self.norm1_gamma, self.norm1_beta)
        z = F.conv1d(
            y, self.conv_weight, self.conv_bias, padding=self.padding, dilation=self.dilation,
            groups=y.shape[1],
        )
        z = instance_norm(F.prelu(z, self.prelu2), self.norm2_gamma, self.norm2_beta)
        return x + torch.matmul(self.dense2, z) * self.dense2_scale


def instance_norm(x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
    """Normalise (batch, channels, frames) over frames, per channel, then ``* gamma + beta``
    (scalars, shape (1,)), epsilon `NORM_EPSILON`, biased variance (``tf.nn.moments``)."""
    return F.instance_norm(x, eps=NORM_EPSILON) * gamma + beta


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
        self.hparams = dict(
            num_sources=num_sources, window=window, hop=hop, num_coeffs=num_coeffs,
            bottleneck=bottleneck, conv_channels=conv_channels, kernel_size=kernel_size,
            num_dilations=num_dilations, num_repeats=num_repeats, scale_base=scale_base,
            prelu_init=prelu_init,
        )
        self.n_sources = num_sources
        self.source: dict = {}
        self.window, self.hop, self.num_coeffs = window, hop, num_coeffs
        self.encoder = nn.Parameter(torch.empty(num_coeffs, window))
        self.initial_dense = nn.Parameter(torch.empty(bottleneck, num_coeffs))
        self.initial_bias = nn.Parameter(torch.zeros(bottleneck))
        self.initial_scale = nn.Parameter(torch.tensor(1.0))
        n_blocks = num_dilations * num_repeats
        self.blocks = nn.ModuleList(
            TDCNBlock(bottleneck, conv_channels, kernel_size, 2 ** (b % num_dilations),
                      scale_base**b, prelu_init)
            for b in range(n_blocks)
        )
        self.mask_dense = nn.Parameter(torch.empty(num_sources * num_coeffs, bottleneck))
        self.decoder = nn.Parameter(torch.empty(num_coeffs, window))
        self.mix_weights_dense = nn.Parameter(torch.empty(num_sources, bottleneck))
        for weight in (self.encoder, self.initial_dense, self.mask_dense, self.decoder,
                       self.mix_weights_dense):
            nn.init.xavier_uniform_(weight)

    def encode(self, waveform: Tensor) -> Tensor:
        """Learned-basis coefficients.

        Args:
            waveform: (batch, samples).

        Returns:
            (batch, num_coeffs, frames), non-negative.
        """
        samples = waveform.shape[-1]
        frames = num_frames(samples, self.window, self.hop)
        padded = F.pad(waveform, (0, (frames - 1) * self.hop + self.window - samples))
        # frame f covers samples [f * hop, f * hop + window): a strided convolution
        coeffs = F.conv1d(padded[:, None], self.encoder[:, None], stride=self.hop)
        return torch.relu(coeffs)

    def tdcn(self, coeffs: Tensor) -> Tensor:
        """The improved TDCN: (batch, num_coeffs, frames) -> (batch, bottleneck, frames)."""
        x = (torch.matmul(self.initial_dense, coeffs) + self.initial_bias[:, None]) * self.initial_scale
        for block in self.blocks:
            x = block(x)
        return x

    def decode(self, coeffs: Tensor, samples: int) -> Tensor:
        """Waveforms of masked coefficients: (batch, sources, num_coeffs, frames) ->
        (batch, sources, samples), overlap-added and cut to `samples`."""
        batch, sources, n_coeffs, frames = coeffs.shape
        flat = coeffs.reshape(batch * sources, n_coeffs, frames)
        # transposed strided convolution = dense num_coeffs -> window, then overlap-add
        waveforms = F.conv_transpose1d(flat, self.decoder[:, None], stride=self.hop)
        return waveforms[..., :samples].reshape(batch, sources, samples)

    def intermediates(self, waveform: Tensor) -> dict[str, Tensor]:
        """Every stage of `forward`, for tests against the TensorFlow graph.

        Args:
            waveform: (batch, samples) float32 mixture.

        Returns:
            ``encoder_coeffs`` (batch, frames, num_coeffs); ``tdcn_output``
            (batch, frames, bottleneck); ``mix_weights`` (batch, sources), summing to 1;
            ``separated_before_consistency`` (batch, sources, samples); ``separated``
            (batch, sources, samples), what `forward` returns.
        """
        if waveform.dim() != 2 or waveform.shape[-1] == 0:
            raise ValueError(f"expected a (batch, samples) waveform, got {tuple(waveform.shape)}")
        samples = waveform.shape[-1]
        coeffs = self.encode(waveform)
        tdcn = self.tdcn(coeffs)
        batch, _, frames = tdcn.shape
        logits = torch.matmul(self.mask_dense, tdcn).view(batch, self.n_sources, self.num_coeffs, frames)
        masked = torch.sigmoid(logits) * coeffs[:, None]
        separated = self.decode(masked, samples)
        mix_weights = torch.softmax(torch.matmul(tdcn.mean(dim=-1), self.mix_weights_dense.T), dim=-1)
        residual = waveform - separated.sum(dim=1)
        consistent = separated + mix_weights[..., None] * residual[:, None]
        return {
            "encoder_coeffs": coeffs.transpose(1, 2),
            "tdcn_output": tdcn.transpose(1, 2),
            "mix_weights": mix_weights,
            "separated_before_consistency": separated,
            "separated": consistent,
        }

    def forward(self, waveform: Tensor) -> Tensor:
        """Separate mixtures.

        Args:
            waveform: (batch, samples) float32 mixtures at the model's rate (16 kHz), any
                length >= 1.

        Returns:
            (batch, num_sources, samples) float32 sources that sum to the mixture.
        """
        return self.intermediates(waveform)["separated"]

    @torch.no_grad()
    def separate(self, waveform: np.ndarray) -> np.ndarray:
        """One clip, as the folder separator calls it: (samples,) -> (sources, samples) numpy
        float32, computed on the module's device."""
        param = self.encoder
        x = torch.as_tensor(waveform, dtype=torch.float32, device=param.device).reshape(1, -1)
        return self(x)[0].cpu().numpy()
