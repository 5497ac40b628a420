"""The exact (threshold-free) PSDS of frame scores against event and durations tables: the
inputs checked and encoded, the detection runs found once for all scenarios, the PSDS computed
by ``exact_psds_from_runs`` (default) or by sed_scores_eval (``reference=True``, imported only
then; its adapter here also scores the cSEBBs' boxes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from desed_task.decoding.errors import EvaluationInputError
from desed_task.decoding.score_files import WritableScores, audio_id, score_dataframes
from desed_task.evaluation.detection_runs import detection_runs, with_undetected_classes
from desed_task.evaluation.encoding import encode_events
from desed_task.evaluation.exact_psds_from_runs import ExactPSDSResult, exact_psds_from_runs
from desed_task.evaluation.tables import (
    check_ground_truth,
    clean_durations,
    clean_event_table,
    events_only,
    source_of,
    unscored_classes,
)


def _checked_clips(scores: Mapping[str, np.ndarray], durations: pd.DataFrame) -> list[str]:
    """The clips of the durations table, in sed_scores_eval's order; they must be exactly the
    scored ones (a clip without ground-truth events has none)."""
    clips = set(durations["filename"])
    missing = sorted(clips - set(scores))
    extra = sorted(set(scores) - clips)
    if missing or extra:
        raise EvaluationInputError(
            f"scores do not match {source_of(durations, 'the durations table')}: "
            f"{len(missing)} of its clip(s) without scores (first: {missing[:1]}), "
            f"{len(extra)} scored clip(s) not in it (first: {extra[:1]})"
        )
    return sorted(clips, key=audio_id)


def _reference_psds(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    frame_step: float,
    ground_truth: pd.DataFrame,
    clips: list[str],
    duration_of: Mapping[str, float],
    settings: Mapping[str, float],
) -> tuple:
    return sed_scores_eval_psds(
        score_dataframes({clip: scores[clip] for clip in clips}, class_names, frame_step),
        ground_truth_per_clip(ground_truth, clips),
        {audio_id(clip): float(duration_of[clip]) for clip in clips},
        settings,
    )


def ground_truth_per_clip(ground_truth: pd.DataFrame, clips: Sequence[str]) -> dict[str, list[tuple]]:
    """sed_scores_eval's ground truth: {clip id: [(onset, offset, label), ...]}, an empty list
    for each clip of ``clips`` (file names) without events."""
    per_clip: dict[str, list[tuple]] = {audio_id(clip): [] for clip in clips}
    events = events_only(ground_truth)
    for filename, onset, offset, label in zip(
        events["filename"], events["onset"], events["offset"], events["event_label"]
    ):
        per_clip[audio_id(filename)].append((float(onset), float(offset), str(label)))
    return per_clip


def sed_scores_eval_psds(
    score_tables: Mapping[str, pd.DataFrame],
    ground_truth: Mapping[str, list[tuple]],
    audio_durations: Mapping[str, float],
    settings: Mapping[str, float],
) -> tuple:
    """sed_scores_eval's ``intersection_based.psds`` (the reference, and cSEBBs' boxes).

    Args:
        score_tables: {clip id: score table (onset, offset, one column per class)}.
        ground_truth: {clip id: [(onset, offset, label), ...]}, an empty list for a clip
            without events.
        audio_durations: {clip id: seconds}.
        settings: dtc, gtc, cttc, alpha_ct, alpha_st, max_efpr.

    Returns:
        sed_scores_eval's (psds, class psds, (etpr, efpr), class ROCs).
    """
    try:
        from sed_scores_eval import intersection_based
    except ImportError as error:
        raise EvaluationInputError(
            f"--reference needs sed_scores_eval ({error}): pip install -e '.[reference]' in the clone"
        ) from error
    try:
        return intersection_based.psds(
            scores={clip: WritableScores(table) for clip, table in score_tables.items()},
            ground_truth=dict(ground_truth),
            audio_durations=dict(audio_durations),
            dtc_threshold=settings["dtc"],
            gtc_threshold=settings["gtc"],
            # sed_scores_eval refuses an unused cttc
            cttc_threshold=settings["cttc"] if settings["alpha_ct"] > 0 else None,
            alpha_ct=settings["alpha_ct"],
            alpha_st=settings["alpha_st"],
            max_efpr=settings["max_efpr"],
            num_jobs=1,
        )
    except (AssertionError, ValueError) as error:
        raise EvaluationInputError(f"sed_scores_eval refuses the input: {error}") from error


def exact_psds_scenarios(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    frame_step: float,
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    scenarios: Mapping[str, Mapping[str, float]],
    reference: bool = False,
) -> dict[str, ExactPSDSResult]:
    """Exact PSDS of several scenarios over the clips of the durations table (the runs are
    found once).

    Args:
        scores: {filename: (n_classes, n_frames) scores}, one per clip of the durations
            table, no other.
        class_names: (n_classes,) labels of the score rows; a ground-truth class without
            scores counts as never detected (TPR 0, as psds_eval scores a class without
            detections; refused with ``reference``).
        frame_step: seconds per frame.
        ground_truth, durations: event and durations tables.
        scenarios: {name: dtc, gtc, and optionally cttc, alpha_ct, alpha_st, max_efpr}.
        reference: compute with sed_scores_eval instead (slow; it refuses classes without
            ground-truth events and overlapping events of one class).
    """
    ground_truth = clean_event_table(ground_truth)
    durations = clean_durations(durations)
    check_ground_truth(ground_truth, durations)
    clips = _checked_clips(scores, durations)
    duration_of = dict(zip(durations["filename"], durations["duration"]))
    unscored = unscored_classes(ground_truth, class_names)
    if unscored and reference:
        raise EvaluationInputError(
            f"{source_of(ground_truth, 'the ground truth')}: class(es) {', '.join(unscored)} have no scores, "
            "which sed_scores_eval (--reference) refuses; leave out --reference to score them as never detected"
        )
    class_index = pd.Index([*class_names, *unscored], dtype=object)
    events = encode_events(ground_truth, pd.Index(clips, dtype=object), class_index)
    events = events.select(np.argsort(events.clip, kind="stable"))  # sed_scores_eval's summing order
    clip_durations = np.array([duration_of[clip] for clip in clips], dtype=np.float64)
    runs = None
    if not reference:
        runs = with_undetected_classes(detection_runs({c: scores[c] for c in clips}, class_names, frame_step), unscored)

    results = {}
    for name, given in scenarios.items():
        settings = {"cttc": 0.3, "alpha_ct": 0.0, "alpha_st": 0.0, "max_efpr": 100.0, **given}
        if not reference:
            results[name] = exact_psds_from_runs(runs, events, clip_durations, settings)
            continue
        value, class_psds, (etpr, efpr), class_rocs = _reference_psds(
            scores, class_names, frame_step, ground_truth, clips, duration_of, settings
        )
        results[name] = ExactPSDSResult(
            value=float(value),
            class_psds={str(k): float(v) for k, v in class_psds.items()},
            roc_etpr=np.asarray(etpr),
            roc_efpr=np.asarray(efpr),
            class_rocs={str(k): (np.asarray(v[0]), np.asarray(v[1])) for k, v in class_rocs.items()},
            settings=settings,
        )
    return results


def exact_psds(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    frame_step: float,
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    dtc: float,
    gtc: float,
    cttc: float = 0.3,
    alpha_ct: float = 0.0,
    alpha_st: float = 0.0,
    max_efpr: float = 100.0,
    reference: bool = False,
) -> ExactPSDSResult:
    """Exact PSDS of one scenario (``exact_psds_scenarios`` for the arguments)."""
    settings = {"dtc": dtc, "gtc": gtc, "cttc": cttc, "alpha_ct": alpha_ct, "alpha_st": alpha_st, "max_efpr": max_efpr}
    return exact_psds_scenarios(
        scores, class_names, frame_step, ground_truth, durations, {"psds": settings}, reference
    )["psds"]
