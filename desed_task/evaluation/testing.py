"""The metrics of a tested model on a labelled test set (the dev-test in 2021), with their files.

One model at a time: the scores are cut to the clips scored (a --fast_dev_run scores a few),
then every metric of ``metrics.METRICS`` is computed with the 2021 post-processing (median
filter, threshold 0.5) or that of a post-processing file, and the decoded predictions, score
folders, per-class tables and PSD-ROC plots are written to the model's folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from desed_task.decoding.postprocessing_file import PostProcessing, default_description
from desed_task.evaluation.evaluate import evaluate_scores
from desed_task.evaluation.postprocessed import evaluate_postprocessed
from desed_task.evaluation.tables import restrict_to_scored_clips


def score_test_set(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    events: pd.DataFrame,
    durations: pd.DataFrame,
    save_dir: Path,
    *,
    postprocessing: PostProcessing | None,
    n_thresholds: int,
    median_window: int | Sequence[int],
    frame_step: float,
    max_event_time: float | None,
    clip_to_durations: bool = False,
    unscored_durations: pd.DataFrame | None = None,
) -> tuple[dict[str, float], dict[str, list[str]]]:
    """One model's test metrics, its files written under `save_dir`.

    Args:
        scores: {clip: (classes, frames) probabilities} of the scored clips.
        class_names: the classes, in the network's order.
        events, durations: the test set's event and durations tables.
        save_dir: the model's output folder.
        postprocessing: a post-processing file's settings, or None: the 2021 post-processing
            (`median_window`, threshold 0.5).
        n_thresholds: PSDS operating points.
        median_window: median filter length(s) in frames (without a post-processing file).
        frame_step: seconds between two output frames.
        max_event_time: seconds to which decoded times are clamped (None: not clamped).
        clip_to_durations: decoded events clipped to their clip's duration (not in 2021).
        unscored_durations: clips without events left out of the set whose durations still
            count in the psds_eval-style PSDS (``data.drop_clips_without_events``, as 2023).

    Returns:
        ({metric: value} in the order of ``metrics.METRICS``, {macro F1: classes it left out}).
    """
    scores, events, durations = restrict_to_scored_clips(scores, events, durations)
    left_out: dict[str, list[str]] = {}
    options = {
        "clip_to_durations": clip_to_durations,
        "max_event_time": max_event_time,
        "macro_left_out": left_out,
        "unscored_durations": unscored_durations,
    }
    if postprocessing is None:
        results = evaluate_scores(
            scores, class_names, events, durations, n_thresholds=n_thresholds, median_window=median_window,
            frame_step=frame_step, save_dir=save_dir, **options,
        )
    else:
        results = evaluate_postprocessed(
            scores, class_names, events, durations, postprocessing,
            n_thresholds=n_thresholds, frame_step=frame_step, save_dir=save_dir, **options,
        )
    return results, left_out


def postprocessing_description(postprocessing: PostProcessing | None, median_window: int | Sequence[int]) -> str:
    """The post-processing of the test metrics, in words (the table's last line)."""
    if postprocessing is not None:
        return postprocessing.describe()
    return default_description(median_window)
