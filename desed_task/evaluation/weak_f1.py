"""Clip-level (weak) macro F1, as 2021's validation computed it (Lightning 1.2's ``F1``)."""

from __future__ import annotations

import numpy as np


def weak_f1_macro(probabilities: np.ndarray, targets: np.ndarray, threshold: float = 0.5) -> float:
    """Macro F1 over classes of clip-level decisions ``probability > threshold``.

    Args:
        probabilities: (n_clips, n_classes) clip probabilities in [0, 1].
        targets: (n_clips, n_classes) binary clip labels.
        threshold: decision threshold.

    Computed in float32 as 2021's ``pl.metrics.classification.F1(average="macro",
    multilabel=True)`` (Lightning 1.2) did, so that the value is 2021's to the last bit:
    per-class precision and recall, ``2 * p * r / (p + r)``, a class with no positive target or
    no positive decision counted as 0 (torchmetrics' ``zero_division=0`` today), then torch's
    float32 mean. Decisions are ``> threshold`` (today's torchmetrics; Lightning 1.2 took
    ``>=``, which differs only for a probability of exactly 0.5).
    """
    import torch

    decisions = torch.from_numpy(np.asarray(probabilities) > threshold).float()
    truth = torch.from_numpy(np.asarray(targets).astype(bool)).float()
    true_positives = (decisions * truth).sum(0)
    precision = true_positives / decisions.sum(0)
    recall = true_positives / truth.sum(0)
    f1 = (2.0 * precision * recall) / (1.0 * precision + recall)
    f1[f1 != f1] = 0  # 0/0: no positive target or decision
    return float(torch.mean(f1))
