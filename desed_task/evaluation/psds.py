"""PSDS from decoded operating points, as psds_eval 0.5.3 computes it.

Per class and operating point: TPR = detected / ground-truth events, FPR = false
positives per hour, CTR towards class k = cross-triggers per hour of class-k events,
eFPR = FPR + alpha_ct * mean over k of CTR. Each class's TPR-vs-eFPR staircase (best
TPR at or below each eFPR, with an added (0, 0) point) is sampled on the union of all
eFPR values; the PSD-ROC is mean - alpha_st * std over classes (clipped at 0) and PSDS
is its area up to max_efpr, divided by max_efpr.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from desed_task.decoding.errors import EvaluationInputError
from desed_task.evaluation.encoding import EncodedEvents
from desed_task.evaluation.intersection_counts import (
    IntersectionCounts,
    count_intersections,
    intersection_pairs,
)
from desed_task.evaluation.intersection_inputs import (
    IntersectionInputs,
    prepare_intersection_inputs,
)
from desed_task.evaluation.tables import clean_event_table, events_only, source_of

SECONDS_PER_HOUR = 3600


@dataclass(frozen=True)
class PSDSResult:
    """A PSDS value with the curves behind it.

    Attributes:
        value: the PSDS.
        class_names: (n_classes,) sorted ground-truth classes.
        thresholds: (n_ops,) the operating points' keys, in the given order.
        tpr, fpr, efpr: (n_classes, n_ops) per-class rates; rates are per hour.
        ctr: (n_classes, n_classes, n_ops) cross-trigger rates per hour, NaN on the diagonal.
        roc_efpr: (n_points,) eFPR axis of the PSD-ROC (per hour).
        roc_class_tpr: (n_classes, n_points) per-class TPR staircases on that axis.
        roc_etpr: (n_points,) effective TPR: mean - alpha_st * std over classes.
        class_psds: {class: area under that class's staircase up to max_efpr / max_efpr}
            (not part of psds_eval; for per-class tables).
        dtc, gtc, cttc, alpha_ct, alpha_st, max_efpr: the settings used.
    """

    value: float
    class_names: list[str]
    thresholds: list
    tpr: np.ndarray
    fpr: np.ndarray
    efpr: np.ndarray
    ctr: np.ndarray
    roc_efpr: np.ndarray
    roc_class_tpr: np.ndarray
    roc_etpr: np.ndarray
    class_psds: dict[str, float]
    dtc: float
    gtc: float
    cttc: float
    alpha_ct: float
    alpha_st: float
    max_efpr: float

    def per_class_table(self) -> pd.DataFrame:
        """One row per class and operating point: threshold, TPR, FPR, eFPR."""
        n_classes, n_ops = self.tpr.shape
        return pd.DataFrame(
            {
                "event_label": np.repeat(self.class_names, n_ops),
                "threshold": np.tile(np.asarray(self.thresholds, dtype=float), n_classes),
                "tpr": self.tpr.ravel(),
                "fpr_per_hour": self.fpr.ravel(),
                "efpr_per_hour": self.efpr.ravel(),
            }
        )


def staircase(points: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Best y reached at or below each of ``points`` (0 below every x).

    Args:
        points: (n_points,) sorted query positions.
        x, y: (n,) the curve's samples, in any order.
    """
    order = np.argsort(x, kind="stable")
    best = np.maximum.accumulate(y[order])
    index = np.searchsorted(x[order], points, side="right") - 1
    return np.where(index >= 0, best[np.maximum(index, 0)], 0.0)


def area_up_to(x: np.ndarray, y: np.ndarray, max_x: float) -> float:
    """Area of the staircase (x, y) (value y[i] on [x[i], x[i+1])) from x[0] to ``max_x``.

    psds_eval's rectangle sum: when ``max_x`` is not a sample it is inserted with the
    value of the sample before it.
    """
    if max_x not in x:
        x = np.sort(np.concatenate([x, [max_x]]))
        where = int(np.flatnonzero(x == max_x)[0])
        y = np.concatenate([y[:where], [y[where - 1]], y[where:]])
    valid = x <= max_x
    return float(np.sum(np.diff(x[valid]) * y[valid][:-1]))


def _psd_roc(
    tpr: np.ndarray, efpr: np.ndarray, alpha_st: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class staircases and the effective TPR on the union of eFPR values.

    Args:
        tpr, efpr: (n_classes, n_points_per_class) including the (0, 0) point.
    """
    points = np.unique(efpr)
    curves = np.stack([staircase(points, efpr[c], tpr[c]) for c in range(tpr.shape[0])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(curves, axis=0)
        std = np.nanstd(curves, axis=0)
    etpr = np.nan_to_num(mean - alpha_st * std, nan=0.0)
    return points, curves, np.maximum(etpr, 0.0)


def psds_from_operating_points(
    operating_points: Mapping[float, pd.DataFrame],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    dtc: float,
    gtc: float,
    cttc: float = 0.3,
    alpha_ct: float = 0.0,
    alpha_st: float = 0.0,
    max_efpr: float = 100.0,
) -> PSDSResult:
    """PSDS of a system from its decoded outputs at several thresholds.

    Args:
        operating_points: {threshold: event table (filename, onset, offset, event_label)}.
        ground_truth: event table; clips without events as rows with NaN event_label.
        durations: table with filename and duration (seconds).
        dtc, gtc, cttc: intersection criteria, fractions in [0, 1].
        alpha_ct: weight of the cross-trigger rate in the eFPR.
        alpha_st: weight of the across-class standard deviation.
        max_efpr: eFPR (per hour) up to which the area is taken.
    """
    settings = {"dtc": dtc, "gtc": gtc, "cttc": cttc, "alpha_ct": alpha_ct, "alpha_st": alpha_st, "max_efpr": max_efpr}
    return psds_scenarios_from_operating_points(operating_points, ground_truth, durations, {"psds": settings})["psds"]


def _checked_scenarios(scenarios: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """The scenarios with their defaults filled in; out-of-range settings are refused."""
    scenarios = {
        name: {"cttc": 0.3, "alpha_ct": 0.0, "alpha_st": 0.0, "max_efpr": 100.0, **settings}
        for name, settings in scenarios.items()
    }
    for settings in scenarios.values():
        for key in ("dtc", "gtc", "cttc", "alpha_ct"):
            if not 0.0 <= settings[key] <= 1.0:
                raise EvaluationInputError(f"{key} must be in [0, 1], got {settings[key]}")
        if settings["alpha_st"] < 0:
            raise EvaluationInputError(f"alpha_st must be >= 0, got {settings['alpha_st']}")
    return scenarios


def psds_scenarios_from_operating_points(
    operating_points: Mapping[float, pd.DataFrame],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    scenarios: Mapping[str, Mapping[str, float]],
) -> dict[str, PSDSResult]:
    """``psds_from_operating_points`` for several scenarios ({name: its keyword arguments});
    the detections are checked, encoded and intersected with the ground truth once."""
    _checked_scenarios(scenarios)
    if not operating_points:
        raise EvaluationInputError("no operating points given")
    inputs = prepare_intersection_inputs(ground_truth, durations)
    thresholds = list(operating_points)
    # one check and one encoding of all operating points together
    tables = [events_only(clean_event_table(operating_points[key])) for key in thresholds]
    op_index = np.repeat(np.arange(len(thresholds)), [len(table) for table in tables])
    combined = pd.concat(tables, ignore_index=True)
    combined.attrs.update(source=source_of(operating_points[thresholds[0]], "operating points"), clean=True)
    return psds_scenarios_from_detections(inputs.encode_detections(combined), op_index, thresholds, inputs, scenarios)


def psds_scenarios_from_detections(
    detections: EncodedEvents,
    operating_point: np.ndarray,
    thresholds: list,
    inputs: IntersectionInputs,
    scenarios: Mapping[str, Mapping[str, float]],
) -> dict[str, PSDSResult]:
    """``psds_scenarios_from_operating_points`` on detections already encoded and checked
    against ``inputs`` (clip and class indices of ``inputs.clips`` / ``inputs.classes``).

    Args:
        detections: the detections of all operating points.
        operating_point: (n_detections,) int64 index in ``thresholds`` of each detection's.
        thresholds: (n_ops,) the operating points' keys.
    """
    scenarios = _checked_scenarios(scenarios)
    pairs = intersection_pairs(detections, operating_point, inputs.reference)
    return {
        name: _psds_result(
            count_intersections(pairs, None, len(thresholds), inputs.reference, settings["dtc"], settings["gtc"], settings["cttc"]),
            inputs, thresholds, **settings,
        )
        for name, settings in scenarios.items()
    }


def _psds_result(
    counts: IntersectionCounts,
    inputs: IntersectionInputs,
    thresholds: list,
    dtc: float,
    gtc: float,
    cttc: float,
    alpha_ct: float,
    alpha_st: float,
    max_efpr: float,
) -> PSDSResult:
    reference = inputs.reference
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = (counts.true_positives / reference.events_per_class).T
        fpr = (counts.false_positives * SECONDS_PER_HOUR / reference.total_seconds).T
        ctr = np.transpose(
            counts.cross_triggers * SECONDS_PER_HOUR / reference.seconds_per_class, (1, 2, 0)
        ).astype(np.float64)
    n_classes = len(inputs.classes)
    ctr[np.arange(n_classes), np.arange(n_classes)] = np.nan
    with warnings.catch_warnings():  # a single class has no other class to cross-trigger
        warnings.simplefilter("ignore", RuntimeWarning)
        efpr = fpr + alpha_ct * np.nanmean(ctr, axis=1)
    # the added operating point where nothing is detected
    tpr_with_origin = np.pad(tpr, ((0, 0), (0, 1)))
    efpr_with_origin = np.pad(efpr, ((0, 0), (0, 1)))
    points, curves, etpr = _psd_roc(tpr_with_origin, efpr_with_origin, alpha_st)
    value = area_up_to(points, etpr, max_efpr) / max_efpr
    class_names = [str(name) for name in inputs.classes]
    return PSDSResult(
        value=value,
        class_names=class_names,
        thresholds=thresholds,
        tpr=tpr,
        fpr=fpr,
        efpr=efpr,
        ctr=ctr,
        roc_efpr=points,
        roc_class_tpr=curves,
        roc_etpr=etpr,
        class_psds={
            name: area_up_to(points, curves[c], max_efpr) / max_efpr
            for c, name in enumerate(class_names)
        },
        dtc=dtc,
        gtc=gtc,
        cttc=cttc,
        alpha_ct=alpha_ct,
        alpha_st=alpha_st,
        max_efpr=max_efpr,
    )
