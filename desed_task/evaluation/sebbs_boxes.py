"""Change-point based sound event bounding boxes (cSEBBs, Ebbers et al., Interspeech 2024)
through the optional ``sebbs`` package, and their metrics (a post-processing file of method
sebbs; tuned by ``desed_task.postprocessing.sebbs_tuning``).

cSEBBs turn each class's frame scores into boxes (onset, offset, confidence): a step filter
finds candidate on- and offsets, neighbouring candidates are merged when the gap between
them is shallow (``merge_threshold_abs`` / ``merge_threshold_rel``), and a box's confidence
is its mean score. Detections are the boxes whose confidence exceeds a threshold.

Install with ``pip install --no-deps sebbs``: its declared requirement
``sed_scores_eval_np2`` is a fork that installs the same ``sed_scores_eval`` module over the
project's sed_scores_eval 0.0.4; sebbs runs on 0.0.4 (checked with numpy 2.4, pandas 3).
Only ``CSEBBsPredictor.predict`` and ``sebbs.utils.sed_scores_from_sebbs`` are used: the
package's own ``tune`` fails in its selection step (predictors without class names) and
its PSDS call hits pandas 3's read-only arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from desed_task.evaluation.decode import FRAME_STEP
from desed_task.evaluation.evaluate import (
    evaluate_operating_points,
    evaluate_predictions,
    with_unscored_clips,
)
from desed_task.evaluation.exact_psds import audio_id, score_dataframes
from desed_task.evaluation.metrics import PSDS_SCENARIOS, threshold_grid
from desed_task.evaluation.postprocessing_file import (
    SEBBS_KEYS,
    PostProcessing,
    PostProcessingError,
)
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


def require_sebbs():
    """The ``sebbs`` modules used, or a PostProcessingError that says how to install it."""
    try:
        from sebbs import csebbs, utils
    except ImportError as error:
        raise PostProcessingError(
            f"method sebbs needs the sebbs package ({error}): pip install --no-deps sebbs "
            "(--no-deps: its sed_scores_eval fork would replace the project's sed_scores_eval)"
        ) from None
    return csebbs.CSEBBsPredictor, utils.sed_scores_from_sebbs


def sebbs_boxes(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    parameters: Mapping[str, Sequence[float]],
    frame_step: float = FRAME_STEP,
) -> pd.DataFrame:
    """cSEBBs of frame scores.

    Args:
        scores: {filename: (n_classes, n_frames) probabilities}.
        class_names: (n_classes,) labels of the score rows.
        parameters: {key of SEBBS_KEYS: (n_classes,) values}.
        frame_step: seconds per frame.

    Returns:
        Table with columns filename, onset, offset (seconds), event_label, confidence.
    """
    predictor_class, _ = require_sebbs()
    names = list(class_names)
    predictor = predictor_class(
        **{key: dict(zip(names, map(float, parameters[key]))) for key in SEBBS_KEYS}, sound_classes=names
    )
    filename_of = {audio_id(name): name for name in scores}
    boxes = predictor.predict(score_dataframes(scores, names, frame_step))
    rows = [(filename_of[clip], *box) for clip, clip_boxes in boxes.items() for box in clip_boxes]
    table = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label", "confidence"])
    return table.astype({"onset": np.float64, "offset": np.float64, "confidence": np.float64})


def sebbs_detections(boxes: pd.DataFrame, thresholds: Sequence[float] | float, class_names: Sequence[str]) -> pd.DataFrame:
    """The boxes (``sebbs_boxes``) whose confidence exceeds their class's threshold (one, or
    (n_classes,)), as an event table (filename, onset, offset, event_label)."""
    per_class = dict(zip(class_names, np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(class_names),))))
    kept = boxes["confidence"].to_numpy() > boxes["event_label"].map(per_class).to_numpy(dtype=np.float64)
    return boxes.loc[kept, ["filename", "onset", "offset", "event_label"]].reset_index(drop=True)


def sebbs_exact_psds(
    boxes: pd.DataFrame,
    class_names: Sequence[str],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    settings: Mapping[str, float],
) -> tuple[float, dict[str, float]]:
    """Exact PSDS of boxes (confidence over each box, -inf elsewhere), by sed_scores_eval.

    Returns:
        (PSDS, {class: per-class PSDS}).
    """
    from desed_task.evaluation.exact_psds import ground_truth_per_clip, sed_scores_eval_psds

    _, sed_scores_from_sebbs = require_sebbs()
    ground_truth, durations = clean_event_table(ground_truth), clean_durations(durations)
    duration_of = {audio_id(f): float(d) for f, d in zip(durations["filename"], durations["duration"])}
    per_clip: dict[str, list] = {clip: [] for clip in duration_of}
    for clip, group in boxes.groupby(boxes["filename"].map(audio_id), sort=False):
        per_clip[clip] = list(zip(group["onset"], group["offset"], group["event_label"], group["confidence"]))
    tables = sed_scores_from_sebbs(per_clip, list(class_names), audio_duration=duration_of)
    truth = ground_truth_per_clip(ground_truth, list(durations["filename"]))
    value, class_psds, *_ = sed_scores_eval_psds(tables, truth, duration_of, settings)
    return float(value), {str(k): float(v) for k, v in class_psds.items()}


def evaluate_sebbs(
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
    """The 2021 metrics of cSEBBs: PSDS from the boxes above 50 confidence thresholds and
    exact PSDS of the boxes; F1s of the boxes above each class's threshold. Boxes of a class
    without ground-truth events, ground-truth classes without scores, ``macro_left_out`` and
    ``unscored_durations``: as in ``evaluate_scores``."""
    ground_truth = clean_event_table(ground_truth)
    unscored = report_unscored_classes(ground_truth, class_names, strict_classes)
    boxes = sebbs_boxes(scores, class_names, postprocessing.sebbs, frame_step)
    operating_points = {t: sebbs_detections(boxes, t, class_names) for t in threshold_grid(n_thresholds)}
    detections = sebbs_detections(boxes, postprocessing.threshold, class_names)
    counts = absent_class_counts(pd.concat([t["event_label"] for t in operating_points.values()]), ground_truth)
    if counts:
        consequence = (f"over the {n_thresholds} operating points they are {IN_PSDS}, and left out of the exact "
                       f"PSDS; the {len(detections[detections['event_label'].isin(counts)])} of the F1 output are {IN_F1}")
        report_absent_classes(counts, ground_truth, "cSEBBs of the scores", strict_classes, consequence)
    metrics = evaluate_operating_points(
        operating_points, ground_truth, with_unscored_clips(durations, unscored_durations), save_dir
    )
    present = [name for name in class_names if name in set(events_only(ground_truth)["event_label"])]
    present_boxes = boxes[boxes["event_label"].isin(present)]
    for name, settings in PSDS_SCENARIOS.items():  # a class without scores: no box, never detected
        metrics[f"{name}_exact"], _ = sebbs_exact_psds(
            present_boxes, [*present, *unscored], ground_truth, durations, settings
        )
    metrics |= evaluate_predictions(detections, ground_truth, durations, save_dir, macro_left_out)
    if save_dir is not None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        boxes.to_csv(Path(save_dir) / "sebbs.tsv", sep="\t", index=False, float_format="%.6g")
        detections.to_csv(Path(save_dir) / "predictions_sebbs.tsv", sep="\t", index=False, float_format="%.6g")
    return metrics
