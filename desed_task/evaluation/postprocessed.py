"""Frame scores evaluated under a post-processing file (``desed_task.decoding.postprocessing_file``)
instead of the 2021 post-processing: a method that is a frame decoding per class (median
windows and thresholds) by ``evaluate_scores``, one that scores boxes (cSEBBs) by
``box_metrics.evaluate_boxes``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from desed_task.decoding.decode import FRAME_STEP
from desed_task.decoding.postprocessing_file import DEFAULT_THRESHOLD, PostProcessing
from desed_task.evaluation.evaluate import evaluate_scores


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
    """``evaluate_scores`` with per-class median windows and F1 thresholds, or the metrics of
    a method's boxes (cSEBBs).

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
    decoding = postprocessing.frame_decoding()
    if decoding is None:
        from desed_task.evaluation.box_metrics import evaluate_boxes

        return evaluate_boxes(
            scores, class_names, ground_truth, durations, postprocessing, n_thresholds, frame_step, save_dir,
            strict_classes=bool(options.get("strict_classes", False)), macro_left_out=options.get("macro_left_out"),
            unscored_durations=options.get("unscored_durations"),
        )
    thresholds, windows = decoding
    tuned_thresholds = any(t != DEFAULT_THRESHOLD for t in thresholds)
    return evaluate_scores(
        scores, class_names, ground_truth, durations, n_thresholds, windows,
        frame_step, save_dir, f1_thresholds=thresholds if tuned_thresholds else None, **options,
    )
