"""cSEBBs parameters per class, tuned on validation scores (method sebbs of
``python -m desed_task.postprocessing tune``; the boxes: ``desed_task.decoding.sebbs_boxes``,
their metrics: ``desed_task.evaluation.box_metrics``).

Tuning follows the package's ``select_best_psds`` (classwise): the grid of step filter
lengths x merge thresholds (either absolute or relative) is run once, and each class keeps
the parameters of its best per-class PSDS (or best intersection F1 over confidence
thresholds for the f1 objective).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from desed_task.decoding.boxes import boxes_above
from desed_task.decoding.decode import FRAME_STEP
from desed_task.decoding.postprocessing_file import DEFAULT_THRESHOLD
from desed_task.decoding.sebbs_boxes import (
    SEBBS_KEYS,
    require_sebbs,
    sebbs_boxes,
    sebbs_score_tables,
)
from desed_task.evaluation.box_metrics import boxes_exact_psds
from desed_task.evaluation.intersection_inputs import prepare_intersection_inputs
from desed_task.evaluation.metrics import PSDS_SCENARIOS
from desed_task.postprocessing.median_tuning import DEFAULT_THRESHOLDS, _macro, per_class_f1

STEP_FILTER_LENGTHS = (0.32, 0.48, 0.64)  # seconds: the package's defaults
MERGE_THRESHOLDS_ABS = (0.15, 0.2, 0.3)
MERGE_THRESHOLDS_REL = (1.5, 2.0, 3.0)


def _box_f1(boxes: pd.DataFrame, class_names: Sequence[str], inputs, thresholds: Sequence[float]) -> np.ndarray:
    """(n_thresholds, n_classes) intersection F1 of the boxes above each confidence threshold."""
    label_index = inputs.classes.get_indexer(list(class_names))
    clip = inputs.clips.get_indexer(boxes["filename"].to_numpy(dtype=object))
    label = inputs.classes.get_indexer(boxes["event_label"].to_numpy(dtype=object))
    confidence = boxes["confidence"].to_numpy()
    onset, offset = boxes["onset"].to_numpy(), boxes["offset"].to_numpy()
    parts = []
    for k, threshold in enumerate(thresholds):
        kept = (confidence > threshold) & (clip >= 0) & (label >= 0)
        parts.append((clip[kept], label[kept], onset[kept], offset[kept], np.full(int(kept.sum()), k)))
    return per_class_f1(inputs, parts, len(thresholds), label_index)


def tune_sebbs(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    objective: str = "psds1",
    frame_step: float = FRAME_STEP,
    step_filter_lengths: Sequence[float] = STEP_FILTER_LENGTHS,
    merge_thresholds_abs: Sequence[float] = MERGE_THRESHOLDS_ABS,
    merge_thresholds_rel: Sequence[float] = MERGE_THRESHOLDS_REL,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    progress: bool = True,
) -> tuple[dict[str, tuple[float, ...]], tuple[float, ...], float]:
    """cSEBBs parameters per class, chosen on validation scores (module docstring).

    Returns:
        ({key of SEBBS_KEYS: (n_classes,) values}, (n_classes,) confidence thresholds (0.5
        unless the objective is f1), the objective with the tuned parameters).
    """
    require_sebbs()
    names = list(class_names)
    merges = [(a, np.inf) for a in merge_thresholds_abs] + [(np.inf, r) for r in merge_thresholds_rel]
    grid = list(itertools.product(step_filter_lengths, merges))
    thresholds = sorted({float(t) for t in thresholds} | {DEFAULT_THRESHOLD})
    inputs = prepare_intersection_inputs(ground_truth, durations) if objective == "f1" else None
    best_value = np.full(len(names), -np.inf)
    best_parameters: list[tuple] = [(STEP_FILTER_LENGTHS[1], 0.2, np.inf)] * len(names)
    best_threshold = [DEFAULT_THRESHOLD] * len(names)
    for step, (merge_abs, merge_rel) in tqdm(grid, desc=f"tune cSEBBs for {objective}", disable=not progress):
        parameters = {"step_filter_length": [step] * len(names), "merge_threshold_abs": [merge_abs] * len(names),
                      "merge_threshold_rel": [merge_rel] * len(names)}
        boxes = sebbs_boxes(scores, names, parameters, frame_step)
        if objective == "f1":
            f1 = np.nan_to_num(_box_f1(boxes, names, inputs, thresholds))
            values, at = f1.max(axis=0), f1.argmax(axis=0)
        else:
            _, class_psds = boxes_exact_psds(
                boxes, names, ground_truth, durations, PSDS_SCENARIOS[objective], sebbs_score_tables
            )
            values, at = np.array([class_psds.get(n, 0.0) for n in names]), None
        for c in range(len(names)):
            if values[c] > best_value[c]:
                best_value[c] = values[c]
                best_parameters[c] = (step, merge_abs, merge_rel)
                if at is not None:
                    best_threshold[c] = thresholds[at[c]]
    tuned = {key: tuple(float(p[i]) for p in best_parameters) for i, key in enumerate(SEBBS_KEYS)}
    boxes = sebbs_boxes(scores, names, tuned, frame_step)
    if objective == "f1":
        detections = boxes_above(boxes, best_threshold, names)
        f1 = _box_f1(detections.assign(confidence=1.0), names, inputs, [0.0])[0]
        after = _macro(f1)
    else:
        after, _ = boxes_exact_psds(
            boxes, names, ground_truth, durations, PSDS_SCENARIOS[objective], sebbs_score_tables
        )
    return tuned, tuple(best_threshold), after
