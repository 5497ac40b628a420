"""Threshold-independent (exact) PSDS from frame scores, computed by sed_scores_eval."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sed_scores_eval import intersection_based
from sed_scores_eval.base_modules.scores import create_score_dataframe

from desed_task.evaluation.errors import EvaluationInputError
from desed_task.evaluation.tables import (
    check_ground_truth,
    clean_durations,
    clean_event_table,
    events_only,
    source_of,
)


@dataclass(frozen=True)
class ExactPSDSResult:
    """sed_scores_eval's PSDS output.

    Attributes:
        value: the PSDS.
        class_psds: {class: PSDS of that class alone}.
        roc_etpr, roc_efpr: (n_points,) the PSD-ROC (eFPR per hour).
        class_rocs: {class: (tpr, efpr)} per-class ROCs.
        settings: the scenario (dtc, gtc, cttc, alpha_ct, alpha_st, max_efpr).
    """

    value: float
    class_psds: dict[str, float]
    roc_etpr: np.ndarray
    roc_efpr: np.ndarray
    class_rocs: dict[str, tuple[np.ndarray, np.ndarray]]
    settings: dict[str, float]


class _WritableSeries(pd.Series):
    """A Series whose ``to_numpy`` returns a writable copy (see ``_WritableScores``)."""

    @property
    def _constructor(self):
        return _WritableSeries

    def to_numpy(self, *args, **kwargs) -> np.ndarray:
        return np.array(super().to_numpy(*args, **kwargs))


class _WritableScores(pd.DataFrame):
    """A score table whose arrays are writable.

    pandas 3 (copy-on-write) hands out read-only arrays, which sed_scores_eval 0.0.4's
    Cython detection code rejects ("buffer source array is read-only").
    """

    @property
    def _constructor(self):
        return _WritableScores

    @property
    def _constructor_sliced(self):
        return _WritableSeries

    def to_numpy(self, *args, **kwargs) -> np.ndarray:
        return np.array(super().to_numpy(*args, **kwargs))


def audio_id(filename: str) -> str:
    """sed_scores_eval's clip id: the file name without its extension."""
    return str(Path(filename).with_suffix("")) if filename.endswith(".wav") else filename


def score_dataframes(
    scores: Mapping[str, np.ndarray], class_names: Sequence[str], frame_step: float
) -> dict[str, pd.DataFrame]:
    """sed_scores_eval score tables keyed by clip id.

    Args:
        scores: {filename: (n_classes, n_frames) probabilities}; frame i covers
            [i * frame_step, (i + 1) * frame_step) seconds.
    """
    tables = {}
    for filename, clip_scores in scores.items():
        clip_scores = np.asarray(clip_scores, dtype=np.float64)
        if clip_scores.ndim != 2 or clip_scores.shape[0] != len(class_names):
            raise EvaluationInputError(
                f"scores of {filename}: expected shape ({len(class_names)}, n_frames), got {clip_scores.shape}"
            )
        timestamps = np.arange(clip_scores.shape[1] + 1) * frame_step
        table = create_score_dataframe(clip_scores.T, timestamps, list(class_names))
        tables[audio_id(filename)] = _WritableScores(table)
    return tables


def _sed_scores_ground_truth(ground_truth: pd.DataFrame, clip_ids: list[str]) -> dict[str, list[tuple]]:
    events = events_only(ground_truth)
    per_clip: dict[str, list[tuple]] = {clip: [] for clip in clip_ids}
    for filename, onset, offset, label in zip(
        events["filename"], events["onset"], events["offset"], events["event_label"]
    ):
        per_clip[audio_id(filename)].append((float(onset), float(offset), str(label)))
    return per_clip


def exact_psds(
    score_tables: Mapping[str, pd.DataFrame],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    dtc: float,
    gtc: float,
    cttc: float = 0.3,
    alpha_ct: float = 0.0,
    alpha_st: float = 0.0,
    max_efpr: float = 100.0,
) -> ExactPSDSResult:
    """Exact PSDS over the clips of the durations table (those without ground-truth events
    have none).

    Args:
        score_tables: {clip id: sed_scores_eval score table} (``score_dataframes``); one per
            clip of the durations table, no other.
        ground_truth, durations: event and durations tables.
    """
    ground_truth = clean_event_table(ground_truth)
    durations = clean_durations(durations)
    check_ground_truth(ground_truth, durations)
    gt_ids = {audio_id(name): name for name in durations["filename"]}
    missing = sorted(set(gt_ids) - set(score_tables))
    extra = sorted(set(score_tables) - set(gt_ids))
    if missing or extra:
        raise EvaluationInputError(
            f"scores do not match {source_of(durations, 'the durations table')}: "
            f"{len(missing)} of its clip(s) without scores (first: {missing[:1]}), "
            f"{len(extra)} scored clip(s) not in it (first: {extra[:1]})"
        )
    clip_ids = sorted(gt_ids)
    duration_of = dict(zip(durations["filename"], durations["duration"]))
    value, class_psds, (etpr, efpr), class_rocs = intersection_based.psds(
        scores=dict(score_tables),
        ground_truth=_sed_scores_ground_truth(ground_truth, clip_ids),
        audio_durations={clip: float(duration_of[gt_ids[clip]]) for clip in clip_ids},
        dtc_threshold=dtc,
        gtc_threshold=gtc,
        cttc_threshold=cttc if alpha_ct > 0 else None,  # sed_scores_eval refuses an unused cttc
        alpha_ct=alpha_ct,
        alpha_st=alpha_st,
        max_efpr=max_efpr,
        num_jobs=1,
    )
    return ExactPSDSResult(
        value=float(value),
        class_psds={str(k): float(v) for k, v in class_psds.items()},
        roc_etpr=np.asarray(etpr),
        roc_efpr=np.asarray(efpr),
        class_rocs={str(k): (np.asarray(v[0]), np.asarray(v[1])) for k, v in class_rocs.items()},
        settings={"dtc": dtc, "gtc": gtc, "cttc": cttc, "alpha_ct": alpha_ct, "alpha_st": alpha_st, "max_efpr": max_efpr},
    )
