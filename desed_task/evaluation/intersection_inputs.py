"""Checked, encoded inputs shared by the intersection-based metrics (PSDS, intersection F1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from desed_task.evaluation.encoding import EncodedEvents, class_index, encode_events
from desed_task.evaluation.intersection_counts import ReferenceEvents, build_reference
from desed_task.evaluation.tables import (
    check_ground_truth,
    check_predictions,
    clean_durations,
    clean_event_table,
)


@dataclass(frozen=True)
class IntersectionInputs:
    """The evaluation's clip list (the durations table's), class list and reference events."""

    ground_truth: pd.DataFrame
    durations: pd.DataFrame
    clips: pd.Index
    classes: pd.Index
    reference: ReferenceEvents

    def encode_detections(self, predictions: pd.DataFrame) -> EncodedEvents:
        """Check a prediction table against the clip set and encode it; a class without
        ground-truth events gets label -1, which the counts ignore (as psds_eval)."""
        predictions = clean_event_table(predictions)
        check_predictions(predictions, self.durations)
        return encode_events(predictions, self.clips, self.classes)


def prepare_intersection_inputs(ground_truth: pd.DataFrame, durations: pd.DataFrame) -> IntersectionInputs:
    """Clean and check the ground truth and durations and build the reference events."""
    ground_truth = clean_event_table(ground_truth)
    durations = clean_durations(durations)
    check_ground_truth(ground_truth, durations)
    clips = pd.Index(durations["filename"].to_numpy(dtype=object))
    classes = class_index(ground_truth)
    encoded = encode_events(ground_truth, clips, classes)
    reference = build_reference(encoded, durations["duration"].to_numpy(np.float64), len(classes))
    return IntersectionInputs(ground_truth, durations, clips, classes, reference)
