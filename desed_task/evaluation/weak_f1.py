"""Clip-level (weak) macro F1, as torchmetrics ``MultilabelF1Score(average="macro")`` computes it."""

from __future__ import annotations

import numpy as np


def weak_f1_macro(probabilities: np.ndarray, targets: np.ndarray, threshold: float = 0.5) -> float:
    """Macro F1 over classes of clip-level decisions ``probability > threshold``.

    Args:
        probabilities: (n_clips, n_classes) clip probabilities in [0, 1].
        targets: (n_clips, n_classes) binary clip labels.
        threshold: decision threshold.

    A class with no positive target and no positive decision has F1 0 (torchmetrics'
    ``zero_division=0``), and still counts in the mean.
    """
    decisions = np.asarray(probabilities) > threshold
    targets = np.asarray(targets).astype(bool)
    true_positives = (decisions & targets).sum(axis=0)
    errors = (decisions ^ targets).sum(axis=0)
    denominator = 2 * true_positives + errors
    f1 = np.divide(2 * true_positives, denominator, out=np.zeros(denominator.shape), where=denominator > 0)
    return float(f1.mean())
