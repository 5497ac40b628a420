"""Precision, recall and F1 from counts, with sed_eval's conventions for empty counts."""

from __future__ import annotations

import numpy as np


def f1_from_counts(
    true_positives: np.ndarray, n_system: np.ndarray, n_reference: np.ndarray, empty_system_scores_zero: bool
) -> np.ndarray:
    """sed_eval's F1 per entry of the (same-shaped) count arrays.

    Precision is NaN without system output (0 when ``empty_system_scores_zero``, sed_eval's
    ``empty_system_output_handling="zero_score"``), recall is NaN without reference events;
    F1 is 0 when both are 0 and NaN when either is NaN.
    """
    true_positives = np.asarray(true_positives, dtype=np.float64)
    n_system = np.asarray(n_system, dtype=np.float64)
    n_reference = np.asarray(n_reference, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_system > 0, true_positives / n_system, 0.0 if empty_system_scores_zero else np.nan)
        recall = np.where(n_reference > 0, true_positives / n_reference, np.nan)
        f1 = 2 * precision * recall / (precision + recall)
    return np.where((precision == 0) & (recall == 0), 0.0, f1)


def nan_mean(values: np.ndarray) -> float:
    """Mean over the defined (non-NaN) values; NaN when none is."""
    values = np.asarray(values, dtype=np.float64)
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")
