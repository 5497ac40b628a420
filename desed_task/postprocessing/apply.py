"""Evaluating frame scores with a post-processing file instead of the 2021 one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from desed_task.evaluation.decode import FRAME_STEP
from desed_task.evaluation.evaluate import evaluate_scores
from desed_task.postprocessing.settings import DEFAULT_THRESHOLD, PostProcessing


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
        from desed_task.postprocessing.sebbs_method import evaluate_sebbs

        return evaluate_sebbs(
            scores, class_names, ground_truth, durations, postprocessing, n_thresholds, frame_step, save_dir
        )
    tuned_thresholds = any(t != DEFAULT_THRESHOLD for t in postprocessing.threshold)
    return evaluate_scores(
        scores, class_names, ground_truth, durations, n_thresholds, list(postprocessing.median_window),
        frame_step, save_dir, f1_thresholds=list(postprocessing.threshold) if tuned_thresholds else None, **options,
    )
