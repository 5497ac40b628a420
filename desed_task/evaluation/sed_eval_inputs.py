"""Checked, encoded inputs of the sed_eval-style metrics (collar- and segment-based F1).

sed_eval is run file by file over the ground-truth clips, with the union of ground
truth and predicted labels as classes; predictions must name ground-truth clips and
classes only (checked), so the classes are the ground truth's.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from desed_task.evaluation.encoding import EncodedEvents, class_index, encode_events
from desed_task.evaluation.tables import check_predictions, clean_event_table


@dataclass(frozen=True)
class SedEvalInputs:
    """Reference and estimated events over the ground-truth clips."""

    classes: pd.Index
    reference: EncodedEvents
    estimated: EncodedEvents


def prepare_sed_eval_inputs(predictions: pd.DataFrame, ground_truth: pd.DataFrame) -> SedEvalInputs:
    """Clean, check and encode a prediction table and the ground truth."""
    predictions = clean_event_table(predictions)
    ground_truth = clean_event_table(ground_truth)
    check_predictions(predictions, ground_truth)
    clips = pd.Index(pd.unique(ground_truth["filename"].to_numpy(dtype=object)))
    classes = class_index(ground_truth)
    return SedEvalInputs(
        classes=classes,
        reference=encode_events(ground_truth, clips, classes),
        estimated=encode_events(predictions, clips, classes),
    )


def scores_by_class(classes: pd.Index, class_f1, macro: float, micro: float | None = None) -> dict[str, float]:
    """{"macro": ..., ["micro": ...,] class: F1, ...}; an undefined macro (no output) is 0."""
    scores = {"macro": 0.0 if macro != macro else macro}
    if micro is not None:
        scores["micro"] = 0.0 if micro != micro else micro
    scores.update({str(name): float(value) for name, value in zip(classes, class_f1)})
    return scores
