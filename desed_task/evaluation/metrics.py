"""What is reported: the metrics, in the order of the results table, with the PSDS scenarios,
the operating points and the threshold of the F1 output they are computed with.

Adding a metric is adding it here, and nothing else: the test step's table (``report``), the
evaluation command line, ``evaluate_scores`` and the evaluation under a post-processing file
(``postprocessed``, cSEBBs included) all compute and show ``METRICS``.

- A metric of one decoded output (the F1 output: events above ``F1_THRESHOLD``, or above the
  per-class thresholds of a post-processing file) is one ``Metric`` entry of ``METRICS``
  (source ``OUTPUT``): its name, its function (predictions, ground truth, durations ->
  ``{class: value, ..., "macro": ..., "micro": ...}``, computed once for the entries that
  share it, its per-class values a column of ``f1_per_class.tsv``) and the average reported.
- A PSDS scenario is one entry of ``PSDS_SCENARIOS``: it gives two metrics, ``<name>`` from the
  operating points and ``<name>_exact`` from the frame scores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from desed_task.evaluation.collar_f1 import collar_f1
from desed_task.evaluation.intersection_f1 import intersection_f1_scores
from desed_task.evaluation.segment_f1 import segment_f1

PSDS_SCENARIO_1 = {"dtc": 0.7, "gtc": 0.7, "cttc": 0.3, "alpha_ct": 0.0, "alpha_st": 1.0, "max_efpr": 100.0}
PSDS_SCENARIO_2 = {"dtc": 0.1, "gtc": 0.1, "cttc": 0.3, "alpha_ct": 0.5, "alpha_st": 1.0, "max_efpr": 100.0}
PSDS_SCENARIOS = {"psds1": PSDS_SCENARIO_1, "psds2": PSDS_SCENARIO_2}
F1_THRESHOLD = 0.5

# what a metric is computed from
OPERATING_POINTS = "operating points"  # the event tables decoded at the thresholds of threshold_grid
SCORES = "scores"  # the post-processed frame scores, every threshold (threshold-free)
OUTPUT = "output"  # one decoded event table, the F1 output


def threshold_grid(n_thresholds: int = 50) -> list[float]:
    """The n thresholds 1/(2n), 3/(2n), ..., 1 - 1/(2n) (0.01, 0.03, ..., 0.99 for n = 50)."""
    return [float(t) for t in np.arange(1, 2 * n_thresholds, 2) / (2 * n_thresholds)]


def threshold_name(threshold: float) -> str:
    """Short text of a threshold for file names: 0.01 -> "0.01", 0.005 -> "0.005"."""
    return np.format_float_positional(threshold, precision=6, trim="-")


ClassScores = Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame], dict[str, float]]


@dataclass(frozen=True)
class Metric:
    """One reported metric.

    Attributes:
        name: its key in the results and its row in the results table.
        source: what it is computed from: ``OPERATING_POINTS``, ``SCORES`` or ``OUTPUT``.
        description: how it is computed, and the 2021 tool whose values it gives.
        per_class: ``OUTPUT`` metrics: (predictions, ground truth, durations) -> {class:
            value, "macro": ..., and "micro": ... where defined}.
        column: ``OUTPUT`` metrics: the column of ``f1_per_class.tsv`` with ``per_class``'s
            values (entries with one function share it).
        average: ``OUTPUT`` metrics: the key of ``per_class``'s result reported.
    """

    name: str
    source: str
    description: str
    per_class: ClassScores | None = None
    column: str = ""
    average: str = "macro"


def _collar_f1(predictions: pd.DataFrame, ground_truth: pd.DataFrame, durations: pd.DataFrame) -> dict[str, float]:
    return collar_f1(predictions, ground_truth, durations=durations)


def _segment_f1(predictions: pd.DataFrame, ground_truth: pd.DataFrame, durations: pd.DataFrame) -> dict[str, float]:
    return segment_f1(predictions, ground_truth, durations=durations)


def _settings(settings: dict[str, float]) -> str:
    return ", ".join(f"{key} {value:g}" for key, value in settings.items())


METRICS = (
    *(Metric(name, OPERATING_POINTS, f"PSDS ({_settings(settings)}) over the operating points (psds_eval 0.5.3)")
      for name, settings in PSDS_SCENARIOS.items()),
    *(Metric(f"{name}_exact", SCORES, f"PSDS ({_settings(settings)}) at every threshold of the scores "
             "(sed_scores_eval 0.0.4)") for name, settings in PSDS_SCENARIOS.items()),
    Metric("intersection_f1_macro", OUTPUT, "intersection-based F1 (dtc 0.5, gtc 0.5, cttc 0.3), mean over the "
           "classes with a true positive (psds_eval 0.5.3's compute_macro_f_score)",
           intersection_f1_scores, "intersection_f1", "macro"),
    Metric("collar_f1_macro", OUTPUT, "event-based F1 with a 200 ms onset collar and an offset collar of "
           "max(200 ms, 20 % of the event), mean over the classes (sed_eval 0.2.1)", _collar_f1, "collar_f1", "macro"),
    Metric("collar_f1_micro", OUTPUT, "the same F1 over all events (sed_eval 0.2.1)", _collar_f1, "collar_f1", "micro"),
    Metric("segment_f1_macro", OUTPUT, "segment-based F1 on 1 s segments, mean over the classes (sed_eval 0.2.1)",
           _segment_f1, "segment_f1", "macro"),
)


def output_metrics() -> tuple[Metric, ...]:
    """The entries of ``METRICS`` computed from one decoded output, in their order."""
    return tuple(metric for metric in METRICS if metric.source == OUTPUT)


def left_out_of_macros(per_class: Mapping[str, Mapping[str, float]]) -> dict[str, list[str]]:
    """The classes each macro F1 leaves out: those whose F1 is undefined (NaN), as psds_eval
    (no true positive) and sed_eval (no detection with sed_eval's NaN precision, or no
    ground-truth event) leave them out of their means.

    Args:
        per_class: {``Metric.column``: {class: F1, ..., "macro": ..., "micro": ...}}, the
            per-class values of ``output_metrics``.

    Returns:
        {name of each macro-averaged ``output_metrics`` entry: sorted classes left out (may be
        empty)}, in the order of ``METRICS``.
    """
    left_out = {}
    for metric in output_metrics():
        if metric.average == "macro" and metric.column in per_class:
            values = per_class[metric.column]
            left_out[metric.name] = sorted(
                name for name, value in values.items() if name not in ("macro", "micro") and np.isnan(value)
            )
    return left_out


def describe_left_out(left_out: Mapping[str, Sequence[str]], n_classes: Mapping[str, int]) -> str:
    """'intersection_f1_macro leaves out 5 of 8 classes (A, B, ...); ...' for the metrics that
    leave some class out ('' when none does).

    Args:
        left_out: ``left_out_of_macros``'s result.
        n_classes: {metric name: number of classes it has a value for}.
    """
    parts = [
        f"{name} leaves out {len(classes)} of {n_classes[name]} classes ({', '.join(classes)})"
        for name, classes in left_out.items() if classes
    ]
    return "; ".join(parts)
