"""Recurrent part of the 2021 baseline CRNN."""

from __future__ import annotations

import torch
from torch import nn


class BidirectionalGRU(nn.Module):
    """Batch-first bidirectional GRU returning the per-frame outputs of its last layer.

    The GRU is stored as ``self.rnn`` so that parameters are named
    ``rnn.{weight,bias}_{ih,hh}_l{k}[_reverse]`` as in the official checkpoints.

    Args:
        n_in: input features per frame.
        n_hidden: hidden units per direction.
        dropout: dropout between GRU layers (ignored by PyTorch when num_layers == 1).
        num_layers: number of stacked bidirectional layers.

    Shapes:
        x: (batch, frames, n_in) -> (batch, frames, 2 * n_hidden)
    """

    def __init__(self, n_in: int, n_hidden: int, dropout: float = 0.0, num_layers: int = 1):
        super().__init__()
        self.rnn = nn.GRU(
            n_in,
            n_hidden,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout,
            bidirectional=True,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(x)
        return outputs
