"""The 2021 metrics of a post-processing method that scores boxes rather than frames
(``desed_task.decoding.method.PostProcessingMethod.boxes``, e.g. cSEBBs): PSDS from the boxes
above 50 confidence thresholds, exact PSDS of the boxes (by sed_scores_eval, on the method's
``score_tables``), F1s of the boxes above each class's threshold."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from desed_task.decoding.boxes import boxes_above
from desed_task.decoding.decode import FRAME_STEP
from desed_task.decoding.postprocessing_file import PostProcessing
from desed_task.decoding.score_files import audio_id
from desed_task.evaluation.evaluate import (
    evaluate_operating_points,
    evaluate_predictions,
    with_unscored_clips,
)
from desed_task.evaluation.metrics import PSDS_SCENARIOS, threshold_grid
from desed_task.evaluation.tables import (
    IN_F1,
    IN_PSDS,
    absent_class_counts,
    clean_durations,
    clean_event_table,
    events_only,
    report_absent_classes,
    report_unscored_classes,
)

# (boxes, class names, {clip id: seconds}) -> {clip id: sed_scores_eval score table}
ScoreTables = Callable[[pd.DataFrame, Sequence[str], Mapping[str, float]], dict[str, pd.DataFrame]]


def boxes_exact_psds(
    boxes: pd.DataFrame,
    class_names: Sequence[str],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    settings: Mapping[str, float],
    score_tables: ScoreTables,
) -> tuple[float, dict[str, float]]:
    """Exact PSDS of boxes (filename, onset, offset, event_label, confidence) by
    sed_scores_eval, on their ``score_tables`` (e.g. ``sebbs_boxes.sebbs_score_tables``).

    Returns:
        (PSDS, {class: per-class PSDS}).
    """
    from desed_task.evaluation.exact_psds import ground_truth_per_clip, sed_scores_eval_psds

    ground_truth, durations = clean_event_table(ground_truth), clean_durations(durations)
    duration_of = {audio_id(f): float(d) for f, d in zip(durations["filename"], durations["duration"])}
    tables = score_tables(boxes, list(class_names), duration_of)
    truth = ground_truth_per_clip(ground_truth, list(durations["filename"]))
    value, class_psds, *_ = sed_scores_eval_psds(tables, truth, duration_of, settings)
    return float(value), {str(k): float(v) for k, v in class_psds.items()}


def evaluate_boxes(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    postprocessing: PostProcessing,
    n_thresholds: int = 50,
    frame_step: float = FRAME_STEP,
    save_dir: Path | None = None,
    strict_classes: bool = False,
    macro_left_out: dict[str, list[str]] | None = None,
    unscored_durations: pd.DataFrame | None = None,
) -> dict[str, float]:
    """The 2021 metrics of a boxes method (``postprocessing.method``, e.g. cSEBBs): PSDS from
    the boxes above 50 confidence thresholds and exact PSDS of the boxes; F1s of the boxes
    above each class's threshold. Boxes of a class without ground-truth events, ground-truth
    classes without scores, ``macro_left_out`` and ``unscored_durations``: as in
    ``evaluate_scores``."""
    ground_truth = clean_event_table(ground_truth)
    unscored = report_unscored_classes(ground_truth, class_names, strict_classes)
    boxes = postprocessing.boxes(scores, frame_step)
    operating_points = {t: boxes_above(boxes, t, class_names) for t in threshold_grid(n_thresholds)}
    detections = boxes_above(boxes, postprocessing.thresholds(), class_names)
    counts = absent_class_counts(pd.concat([t["event_label"] for t in operating_points.values()]), ground_truth)
    if counts:
        consequence = (f"over the {n_thresholds} operating points they are {IN_PSDS}, and left out of the exact "
                       f"PSDS; the {len(detections[detections['event_label'].isin(counts)])} of the F1 output are {IN_F1}")
        report_absent_classes(counts, ground_truth, f"{postprocessing.words} of the scores", strict_classes, consequence)
    metrics = evaluate_operating_points(
        operating_points, ground_truth, with_unscored_clips(durations, unscored_durations), save_dir
    )
    present = [name for name in class_names if name in set(events_only(ground_truth)["event_label"])]
    present_boxes = boxes[boxes["event_label"].isin(present)]
    for name, settings in PSDS_SCENARIOS.items():  # a class without scores: no box, never detected
        metrics[f"{name}_exact"], _ = boxes_exact_psds(
            present_boxes, [*present, *unscored], ground_truth, durations, settings, postprocessing.kind.score_tables
        )
    metrics |= evaluate_predictions(detections, ground_truth, durations, save_dir, macro_left_out)
    if save_dir is not None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        name = postprocessing.method  # sebbs.tsv, predictions_sebbs.tsv
        boxes.to_csv(Path(save_dir) / f"{name}.tsv", sep="\t", index=False, float_format="%.6g")
        detections.to_csv(Path(save_dir) / f"predictions_{name}.tsv", sep="\t", index=False, float_format="%.6g")
    return metrics
