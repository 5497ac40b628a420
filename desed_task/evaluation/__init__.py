"""DCASE 2021 Task 4 evaluation of decoded scores (``desed_task.decoding``): PSDS (from
operating points and exact), intersection-, collar- and segment-based F1, PSD-ROC plots and a
command line.

Reimplements the semantics of psds_eval 0.5.3 and sed_eval 0.2.1 in vectorised numpy
(neither runs on numpy 2 / pandas 3), and sed_scores_eval 0.0.4's exact (threshold-free)
PSDS; sed_scores_eval stays the reference (``--reference``), imported only then.
"""

from desed_task.evaluation.collar_f1 import collar_f1
from desed_task.evaluation.evaluate import (
    evaluate_exact,
    evaluate_operating_points,
    evaluate_predictions,
    evaluate_scores,
)
from desed_task.evaluation.exact_psds import (
    exact_psds,
    exact_psds_scenarios,
)
from desed_task.evaluation.exact_psds_from_runs import ExactPSDSResult, exact_psds_from_runs
from desed_task.evaluation.intersection_f1 import intersection_f1_macro, intersection_f1_scores
from desed_task.evaluation.metrics import PSDS_SCENARIO_1, PSDS_SCENARIO_2, threshold_grid
from desed_task.evaluation.psds import PSDSResult, psds_from_operating_points
from desed_task.evaluation.segment_f1 import segment_f1
from desed_task.evaluation.tables import (
    clean_durations,
    clean_event_table,
    read_durations,
    read_event_table,
)
from desed_task.evaluation.weak_f1 import weak_f1_macro

__all__ = [
    "PSDS_SCENARIO_1",
    "PSDS_SCENARIO_2",
    "ExactPSDSResult",
    "PSDSResult",
    "clean_durations",
    "clean_event_table",
    "collar_f1",
    "evaluate_exact",
    "evaluate_operating_points",
    "evaluate_predictions",
    "evaluate_scores",
    "exact_psds",
    "exact_psds_from_runs",
    "exact_psds_scenarios",
    "intersection_f1_macro",
    "intersection_f1_scores",
    "psds_from_operating_points",
    "read_durations",
    "read_event_table",
    "segment_f1",
    "threshold_grid",
    "weak_f1_macro",
]
