"""Intersection-based F1 at one operating point (psds_eval's ``compute_macro_f_score``).

Per class: TP = detected ground-truth events, FP = detections failing the DTC,
FN = ground-truth events - TP; F1 = 2 TP / (2 TP + FP + FN). As in psds_eval, the
number of ground-truth events is recovered as TP / (TP / n), so a class with no true
positive has an undefined (NaN) F1 and is left out of the macro average; the 2021
baseline reports 0 when no class is defined or the output is empty.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from desed_task.evaluation.encoding import EncodedEvents
from desed_task.evaluation.intersection_counts import IntersectionCounts, count_intersections
from desed_task.evaluation.intersection_inputs import (
    IntersectionInputs,
    prepare_intersection_inputs,
)


def intersection_f1_from_counts(counts: IntersectionCounts, events_per_class: np.ndarray) -> np.ndarray:
    """psds_eval's F1 = 2 TP / (2 TP + FN + FP) per operating point and class.

    Args:
        counts: ``count_intersections`` of n_ops operating points, n_classes classes.
        events_per_class: (n_classes,) ground-truth events of each class.

    Returns:
        (n_ops, n_classes) F1, NaN where a class has no true positive (psds_eval recovers the
        number of events as TP / (TP / n), undefined at TP = 0).
    """
    true_positives = counts.true_positives.astype(np.float64)
    false_positives = counts.false_positives.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_events = true_positives / (true_positives / events_per_class)
        false_negatives = n_events - true_positives
        return 2 * true_positives / (2 * true_positives + false_negatives + false_positives)


def intersection_f1_per_operating_point(
    inputs: IntersectionInputs,
    detections: EncodedEvents,
    operating_point: np.ndarray,
    n_operating_points: int,
    dtc: float = 0.5,
    gtc: float = 0.5,
    cttc: float = 0.3,
) -> np.ndarray:
    """Intersection F1 of many outputs at once (e.g. the grid of a tuning).

    Args:
        inputs: ``prepare_intersection_inputs`` of the ground truth.
        detections: the detections of every output, in the indices of ``inputs``.
        operating_point: (n_detections,) int64 index of each detection's output.
        n_operating_points: number of outputs.
        dtc, gtc, cttc: the intersection criteria.

    Returns:
        (n_operating_points, n_classes of ``inputs.classes``) F1, NaN where undefined.
    """
    counts = count_intersections(detections, operating_point, n_operating_points, inputs.reference, dtc, gtc, cttc)
    return intersection_f1_from_counts(counts, inputs.reference.events_per_class)


def intersection_f1_scores(
    predictions: pd.DataFrame,
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    dtc: float = 0.5,
    gtc: float = 0.5,
    cttc: float = 0.3,
) -> dict[str, float]:
    """Per-class intersection F1 (NaN where undefined) and their ``"macro"`` mean (0 if none)."""
    inputs = prepare_intersection_inputs(ground_truth, durations)
    detections = inputs.encode_detections(predictions)
    operating_point = np.zeros(len(detections), np.int64)
    f1 = intersection_f1_per_operating_point(inputs, detections, operating_point, 1, dtc, gtc, cttc)[0]
    scores = {str(name): float(value) for name, value in zip(inputs.classes, f1)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        macro = float(np.nanmean(f1)) if f1.size else float("nan")
    scores["macro"] = 0.0 if np.isnan(macro) else macro
    return scores


def intersection_f1_macro(
    predictions: pd.DataFrame,
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    dtc: float = 0.5,
    gtc: float = 0.5,
    cttc: float = 0.3,
) -> float:
    """Intersection-based macro F1 (0.0 for an empty output), as the 2021 baseline reports it."""
    return intersection_f1_scores(predictions, ground_truth, durations, dtc, gtc, cttc)["macro"]
