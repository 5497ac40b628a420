"""Batch mixup of the 2021 baseline (one mixing coefficient per batch)."""

from __future__ import annotations

import numpy as np
import torch

LABEL_TYPES = ("soft", "hard")


@torch.no_grad()
def mixup(
    features: torch.Tensor,
    targets: torch.Tensor | None = None,
    alpha: float = 0.2,
    beta: float = 0.2,
    label_type: str = "soft",
    paired: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Mix each item of a batch with another item of the same batch.

    ``c ~ Beta(alpha, beta)`` is drawn once for the whole batch and ``perm`` is a random
    permutation of the batch; ``mixed = c * x + (1 - c) * x[perm]``. As 2021 drew them: c from
    numpy's global generator, perm from torch's (so a seeded run mixes as 2021 did, and a
    resumed run, whose generator states come back with its checkpoint, as the uninterrupted
    one).

    Args:
        features: (batch, ...) features, e.g. (batch, n_mels, frames).
        targets: optional (batch, ...) labels in [0, 1], weak (batch, n_classes) or
            strong (batch, n_classes, frames).
        alpha, beta: parameters of the Beta distribution of c.
        label_type: "soft": ``clamp(c * y + (1 - c) * y[perm], 0, 1)``;
            "hard": ``clamp(y + y[perm], 0, 1)`` (every class of either item is present).
        paired: optional (batch, ...) inputs that go with the features (the clips'
            pretrained embeddings), mixed with the same c and perm; no extra draw.

    Returns:
        mixed features, or (mixed features, mixed targets) if targets are given; with
        `paired`, the mixed paired inputs last.
    """
    if label_type not in LABEL_TYPES:
        raise ValueError(f"mixup: unknown label_type {label_type!r}; expected one of {LABEL_TYPES}")
    batch_size = features.shape[0]
    c = np.random.beta(alpha, beta)
    perm = torch.randperm(batch_size).to(features.device)

    mixed_features = c * features + (1 - c) * features[perm]
    mixed_paired = () if paired is None else (c * paired + (1 - c) * paired[perm],)
    if targets is None:
        return (mixed_features, *mixed_paired) if mixed_paired else mixed_features
    if label_type == "soft":
        mixed_targets = torch.clamp(c * targets + (1 - c) * targets[perm], min=0, max=1)
    else:
        mixed_targets = torch.clamp(targets + targets[perm], min=0, max=1)
    return (mixed_features, mixed_targets, *mixed_paired)
