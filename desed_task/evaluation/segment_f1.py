"""Segment-based F1, sed_eval 0.2.1 ``SegmentBasedMetrics`` semantics.

An event is active in the segments floor(onset / resolution) to ceil(offset /
resolution) (exclusive) of its clip; per class, TP are segments active in both the
reference and the output. Without ``empty_system_output_handling`` (as the 2021
baseline calls it), a class with no output has an undefined F1 and is left out of
the macro mean.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from desed_task.evaluation.encoding import EncodedEvents
from desed_task.evaluation.f_measure import f1_from_counts, nan_mean
from desed_task.evaluation.sed_eval_inputs import prepare_sed_eval_inputs, scores_by_class


def active_segments(events: EncodedEvents, n_classes: int, resolution: float, n_segments: int) -> np.ndarray:
    """Sorted unique keys (clip * n_classes + class) * n_segments + segment of active segments."""
    first = np.maximum(np.floor(events.onset * 1 / resolution), 0).astype(np.int64)
    stop = np.ceil(events.offset * 1 / resolution).astype(np.int64)
    count = np.maximum(stop - first, 0)
    event = np.repeat(np.arange(len(events)), count)
    segment = np.repeat(first, count) + np.arange(event.size) - np.repeat(np.cumsum(count) - count, count)
    group = events.clip[event] * n_classes + events.label[event]
    return np.unique(group * n_segments + segment)


def segment_f1(
    predictions: pd.DataFrame,
    ground_truth: pd.DataFrame,
    time_resolution: float = 1.0,
    *,
    durations: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Segment-based F1: ``"macro"``, ``"micro"`` and per class (``time_resolution`` in seconds).

    ``durations``: as in ``collar_f1``, the table whose clips are evaluated.
    """
    inputs = prepare_sed_eval_inputs(predictions, ground_truth, durations)
    n_classes = len(inputs.classes)
    offsets = np.concatenate([inputs.reference.offset, inputs.estimated.offset, [0.0]])
    n_segments = int(np.ceil(offsets.max() / time_resolution)) + 1
    reference = active_segments(inputs.reference, n_classes, time_resolution, n_segments)
    estimated = active_segments(inputs.estimated, n_classes, time_resolution, n_segments)
    both = np.intersect1d(reference, estimated, assume_unique=True)

    def per_class(keys: np.ndarray) -> np.ndarray:
        return np.bincount(keys // n_segments % n_classes, minlength=n_classes)

    true_positives, n_reference, n_system = per_class(both), per_class(reference), per_class(estimated)
    class_f1 = f1_from_counts(true_positives, n_system, n_reference, empty_system_scores_zero=False)
    micro = f1_from_counts(true_positives.sum(), n_system.sum(), n_reference.sum(), False)
    return scores_by_class(inputs.classes, class_f1, nan_mean(class_f1), float(micro))
