"""Convolutional front end of the 2021 baseline CRNN.

The module and parameter names (``cnn.conv{i}``, ``cnn.batchnorm{i}``, ``cnn.glu{i}.linear``)
follow the official 2021 layout so that official checkpoints load with ``strict=True``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

# activations the 2021 code knew, keyed by their (case-insensitive) config name
ACTIVATIONS = ("glu", "cg", "relu", "leakyrelu")


class GLU(nn.Module):
    """Gated linear unit over channels: ``linear(x) * sigmoid(x)``.

    The linear map mixes channels at each (time, frequency) bin; as in 2021 the gate is
    the sigmoid of the *input*, not of a second projection.

    Args:
        n_channels: number of channels C of the input.

    Shapes:
        x: (batch, C, frames, freq) -> (batch, C, frames, freq)
    """

    def __init__(self, n_channels: int):
        super().__init__()
        self.linear = nn.Linear(n_channels, n_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _channel_linear(self.linear, x) * torch.sigmoid(x)


class ContextGating(nn.Module):
    """Context gating over channels: ``x * sigmoid(linear(x))``.

    Args:
        n_channels: number of channels C of the input.

    Shapes:
        x: (batch, C, frames, freq) -> (batch, C, frames, freq)
    """

    def __init__(self, n_channels: int):
        super().__init__()
        self.linear = nn.Linear(n_channels, n_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(_channel_linear(self.linear, x))


def _channel_linear(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """Apply ``linear`` along the channel axis of a (batch, C, frames, freq) tensor."""
    # a 1x1 convolution computes the same; on CPU it measured no faster than this
    return linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class UniformDropout(nn.Dropout):
    """`nn.Dropout` with its mask drawn by `uniform_` instead of `bernoulli_`: the same
    distribution, about 2x cheaper on the CPU, where the masks of the full-resolution blocks
    took a third of a training step; but other random numbers than 2021's `nn.Dropout` (the
    CRNN's ``uniform_dropout`` switch)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return torch.zeros_like(x)
        keep = torch.empty_like(x).uniform_().ge_(self.p)
        return x * keep * (1.0 / (1.0 - self.p))


class CNN(nn.Module):
    """Stack of conv -> batch norm -> activation -> dropout -> average pooling blocks.

    Block ``i`` maps ``nb_filters[i - 1]`` (or ``n_in_channel``) channels to ``nb_filters[i]``
    and pools (time, freq) by ``pooling[i]``.

    Args:
        n_in_channel: input channels (1 for a single log-mel spectrogram).
        activation: one of "glu" (2021 default), "cg" (context gating), "relu", "leakyrelu".
        conv_dropout: dropout probability after each block's activation.
        kernel_size, padding, stride: per-block Conv2d arguments.
        nb_filters: per-block output channels.
        pooling: per-block AvgPool2d kernel (time, freq).
        uniform_dropout: `UniformDropout` masks instead of 2021's `nn.Dropout`.
        batch_norm: add BatchNorm2d(eps=1e-3, momentum=0.99) after each conv, as in 2021.
            (PyTorch's momentum 0.99 means running stats mostly follow the last batch:
            faithful to 2021, where the Keras-style value was used as-is.)

    Shapes:
        x: (batch, n_in_channel, frames, freq) ->
           (batch, nb_filters[-1], frames / prod(pool_t), freq / prod(pool_f))

    Attributes:
        time_pooling: input frames per output frame, the product of the time factors of
            ``pooling`` and ``stride`` (4 for the 2021 CNN).
    """

    def __init__(
        self,
        n_in_channel: int,
        activation: str = "relu",
        conv_dropout: float = 0.0,
        kernel_size: Sequence = (3, 3, 3),
        padding: Sequence = (1, 1, 1),
        stride: Sequence = (1, 1, 1),
        nb_filters: Sequence[int] = (64, 64, 64),
        pooling: Sequence = ((1, 4), (1, 4), (1, 4)),
        batch_norm: bool = True,
        uniform_dropout: bool = False,
    ):
        super().__init__()
        n_blocks = len(nb_filters)
        for name, values in (
            ("kernel_size", kernel_size),
            ("padding", padding),
            ("stride", stride),
            ("pooling", pooling),
        ):
            if len(values) != n_blocks:
                raise ValueError(
                    f"CNN: {name} has {len(values)} entries but nb_filters has {n_blocks}"
                )
        if activation.lower() not in ACTIVATIONS:
            raise ValueError(
                f"CNN: unknown activation {activation!r}; expected one of {ACTIVATIONS}"
            )
        self.nb_filters = list(nb_filters)
        # frames in per frame out: the time factors of the pooling and of the conv strides
        self.time_pooling = cnn_time_pooling(pooling, stride)

        cnn = nn.Sequential()
        for i in range(n_blocks):
            n_in = n_in_channel if i == 0 else nb_filters[i - 1]
            n_out = nb_filters[i]
            cnn.add_module(
                f"conv{i}",
                nn.Conv2d(n_in, n_out, _pair(kernel_size[i]), _pair(stride[i]), _pair(padding[i])),
            )
            if batch_norm:
                cnn.add_module(f"batchnorm{i}", nn.BatchNorm2d(n_out, eps=0.001, momentum=0.99))
            cnn.add_module(*_activation(activation, i, n_out))
            if conv_dropout is not None:
                dropout = UniformDropout if uniform_dropout else nn.Dropout
                cnn.add_module(f"dropout{i}", dropout(conv_dropout))
            cnn.add_module(f"pooling{i}", nn.AvgPool2d(_pair(pooling[i])))
        self.cnn = cnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, channels, frames, freq) -> (batch, nb_filters[-1], frames', freq')."""
        return self.cnn(x)


def _pair(value) -> int | tuple[int, ...]:
    # yaml gives lists; nn layers want ints or tuples
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _time_factor(value) -> int:
    """The time (first) factor of a pooling or stride entry: ``[t, f]`` or one int for both."""
    return int(value[0]) if isinstance(value, (list, tuple)) else int(value)


def cnn_time_pooling(pooling: Sequence, stride: Sequence) -> int:
    """Input frames per output frame of the blocks of `pooling` and `stride` (4 for the 2021
    CNN): the product of their time factors."""
    return math.prod(_time_factor(p) for p in pooling) * math.prod(_time_factor(s) for s in stride)


def _activation(name: str, index: int, n_channels: int) -> tuple[str, nn.Module]:
    key = name.lower()
    if key == "glu":
        return f"glu{index}", GLU(n_channels)
    if key == "cg":
        return f"cg{index}", ContextGating(n_channels)
    if key == "relu":
        return f"relu{index}", nn.ReLU()
    return f"relu{index}", nn.LeakyReLU(0.2)
