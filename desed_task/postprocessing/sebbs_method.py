"""Change-point based sound event bounding boxes (cSEBBs, Ebbers et al., Interspeech 2024)
through the optional ``sebbs`` package, tuned and evaluated with this project's metrics.

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

Tuning follows the package's ``select_best_psds`` (classwise): the grid of step filter
lengths x merge thresholds (either absolute or relative) is run once, and each class keeps
the parameters of its best per-class PSDS (or best intersection F1 over confidence
thresholds for the f1 objective).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from desed_task.evaluation.decode import FRAME_STEP
from desed_task.evaluation.evaluate import evaluate_operating_points, evaluate_predictions
from desed_task.evaluation.exact_psds import audio_id, score_dataframes
from desed_task.evaluation.intersection_inputs import prepare_intersection_inputs
from desed_task.evaluation.scenarios import PSDS_SCENARIOS, threshold_grid
from desed_task.evaluation.tables import (
    IN_F1,
    IN_PSDS,
    absent_class_counts,
    clean_durations,
    clean_event_table,
    events_only,
    report_absent_classes,
)
from desed_task.postprocessing.median_tuning import DEFAULT_THRESHOLDS, _macro, per_class_f1
from desed_task.postprocessing.settings import (
    DEFAULT_THRESHOLD,
    SEBBS_KEYS,
    PostProcessing,
    PostProcessingError,
)

STEP_FILTER_LENGTHS = (0.32, 0.48, 0.64)  # seconds: the package's defaults
MERGE_THRESHOLDS_ABS = (0.15, 0.2, 0.3)
MERGE_THRESHOLDS_REL = (1.5, 2.0, 3.0)


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


def _detections(boxes: pd.DataFrame, thresholds: Sequence[float] | float, class_names: Sequence[str]) -> pd.DataFrame:
    """The boxes whose confidence exceeds their class's threshold, as an event table."""
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
            _, class_psds = sebbs_exact_psds(boxes, names, ground_truth, durations, PSDS_SCENARIOS[objective])
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
        detections = _detections(boxes, best_threshold, names)
        f1 = _box_f1(detections.assign(confidence=1.0), names, inputs, [0.0])[0]
        after = _macro(f1)
    else:
        after, _ = sebbs_exact_psds(boxes, names, ground_truth, durations, PSDS_SCENARIOS[objective])
    return tuned, tuple(best_threshold), after


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
) -> dict[str, float]:
    """The 2021 metrics of cSEBBs: PSDS from the boxes above 50 confidence thresholds and
    exact PSDS of the boxes; F1s of the boxes above each class's threshold. Boxes of a class
    without ground-truth events: as in ``evaluate_scores``."""
    boxes = sebbs_boxes(scores, class_names, postprocessing.sebbs, frame_step)
    operating_points = {t: _detections(boxes, t, class_names) for t in threshold_grid(n_thresholds)}
    detections = _detections(boxes, postprocessing.threshold, class_names)
    ground_truth = clean_event_table(ground_truth)
    counts = absent_class_counts(pd.concat([t["event_label"] for t in operating_points.values()]), ground_truth)
    if counts:
        consequence = (f"over the {n_thresholds} operating points they are {IN_PSDS}, and left out of the exact "
                       f"PSDS; the {len(detections[detections['event_label'].isin(counts)])} of the F1 output are {IN_F1}")
        report_absent_classes(counts, ground_truth, "cSEBBs of the scores", strict_classes, consequence)
    metrics = evaluate_operating_points(operating_points, ground_truth, durations, save_dir)
    present = [name for name in class_names if name in set(events_only(ground_truth)["event_label"])]
    present_boxes = boxes[boxes["event_label"].isin(present)]
    for name, settings in PSDS_SCENARIOS.items():
        metrics[f"{name}_exact"], _ = sebbs_exact_psds(present_boxes, present, ground_truth, durations, settings)
    metrics |= evaluate_predictions(detections, ground_truth, durations, save_dir)
    if save_dir is not None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        boxes.to_csv(Path(save_dir) / "sebbs.tsv", sep="\t", index=False, float_format="%.6g")
        detections.to_csv(Path(save_dir) / "predictions_sebbs.tsv", sep="\t", index=False, float_format="%.6g")
    return metrics
