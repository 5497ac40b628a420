"""Checked, encoded inputs of the sed_eval-style metrics (collar- and segment-based F1).

The 2021 baseline runs sed_eval file by file over the ground-truth clips, a clip without
events being an empty-label row of the ground truth. Here the clips are those of the
durations table when it is given (the same clips whether or not the ground truth lists
the empty ones), else those of the ground truth; predictions must name those clips and
ground-truth classes only (checked), so the classes are the ground truth's.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from desed_task.evaluation.encoding import EncodedEvents, encode_events
from desed_task.evaluation.tables import (
    check_ground_truth,
    check_predictions,
    clean_durations,
    clean_event_table,
    events_only,
    source_of,
)


@dataclass(frozen=True)
class SedEvalInputs:
    """Reference and estimated events over the evaluated clips."""

    classes: pd.Index
    reference: EncodedEvents
    estimated: EncodedEvents


def prepare_sed_eval_inputs(
    predictions: pd.DataFrame, ground_truth: pd.DataFrame, durations: pd.DataFrame | None = None
) -> SedEvalInputs:
    """Clean, check and encode a prediction table and the ground truth.

    Args:
        predictions, ground_truth: event tables.
        durations: the durations table, whose clips are the evaluated ones; without it,
            the ground truth's clips (empty-label rows included) are.
    """
    predictions = clean_event_table(predictions)
    ground_truth = clean_event_table(ground_truth)
    if durations is None:
        durations = ground_truth[["filename"]].drop_duplicates()
        durations.attrs["source"] = source_of(ground_truth, "the ground truth")
    else:
        durations = clean_durations(durations)
        check_ground_truth(ground_truth, durations)
    check_predictions(predictions, durations)
    clips = pd.Index(pd.unique(durations["filename"].to_numpy(dtype=object)))
    labels = set(events_only(ground_truth)["event_label"]) | set(events_only(predictions)["event_label"])
    classes = pd.Index(sorted(labels), dtype=object)
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
