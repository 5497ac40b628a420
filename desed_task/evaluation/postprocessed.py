"""Frame scores decoded and evaluated under a post-processing file (``postprocessing_file``)
instead of the 2021 post-processing: per-class median windows and thresholds, or cSEBBs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from desed_task.evaluation.decode import FRAME_STEP, decode_at_class_thresholds
from desed_task.evaluation.evaluate import evaluate_scores
from desed_task.evaluation.postprocessing_file import DEFAULT_THRESHOLD, PostProcessing


def evaluate_postprocessed(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    postprocessing: PostProcessing,
    n_thresholds: int = 50,
    frame_step: float = FRAME_STEP,
    save_dir: Path | None = None,
    **options,
) -> dict[str, float]:
    """``evaluate_scores`` with per-class median windows and F1 thresholds, or cSEBBs.

    Args:
        scores: {filename: (n_classes, n_frames) probabilities}.
        class_names: (n_classes,) labels of the score rows, a subset of the file's classes.
        ground_truth, durations: event and durations tables.
        postprocessing: ``load_postprocessing``'s result.
        n_thresholds, frame_step, save_dir, options: as ``evaluate_scores``.

    Returns:
        The metrics of ``evaluate_scores``.
    """
    postprocessing = postprocessing.for_classes(class_names)
    if postprocessing.method == "sebbs":
        from desed_task.evaluation.sebbs_boxes import evaluate_sebbs

        return evaluate_sebbs(
            scores, class_names, ground_truth, durations, postprocessing, n_thresholds, frame_step, save_dir,
            strict_classes=bool(options.get("strict_classes", False)), macro_left_out=options.get("macro_left_out"),
            unscored_durations=options.get("unscored_durations"),
        )
    tuned_thresholds = any(t != DEFAULT_THRESHOLD for t in postprocessing.threshold)
    return evaluate_scores(
        scores, class_names, ground_truth, durations, n_thresholds, list(postprocessing.median_window),
        frame_step, save_dir, f1_thresholds=list(postprocessing.threshold) if tuned_thresholds else None, **options,
    )


def detect_events(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    postprocessing: PostProcessing,
    frame_step: float = FRAME_STEP,
) -> pd.DataFrame:
    """Events of frame scores under a post-processing file (for inference).

    Args:
        scores: {filename: (n_classes, n_frames) probabilities}.
        class_names: (n_classes,) labels of the score rows, a subset of the file's classes.
        postprocessing: ``load_postprocessing``'s result.
        frame_step: seconds per frame.

    Returns:
        Event table (filename, onset, offset, event_label): class c decoded at its
        threshold after its median window, or cSEBBs above their class's threshold.
    """
    postprocessing = postprocessing.for_classes(class_names)
    if postprocessing.method == "sebbs":
        from desed_task.evaluation.sebbs_boxes import sebbs_boxes, sebbs_detections

        boxes = sebbs_boxes(scores, class_names, postprocessing.sebbs, frame_step)
        return sebbs_detections(boxes, postprocessing.threshold, class_names)
    return decode_at_class_thresholds(
        scores, class_names, postprocessing.threshold, list(postprocessing.median_window), frame_step
    )
