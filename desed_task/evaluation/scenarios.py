"""The DCASE 2021 Task 4 PSDS scenarios and threshold grid."""

from __future__ import annotations

import numpy as np

PSDS_SCENARIO_1 = {"dtc": 0.7, "gtc": 0.7, "cttc": 0.3, "alpha_ct": 0.0, "alpha_st": 1.0, "max_efpr": 100.0}
PSDS_SCENARIO_2 = {"dtc": 0.1, "gtc": 0.1, "cttc": 0.3, "alpha_ct": 0.5, "alpha_st": 1.0, "max_efpr": 100.0}
PSDS_SCENARIOS = {"psds1": PSDS_SCENARIO_1, "psds2": PSDS_SCENARIO_2}
F1_THRESHOLD = 0.5


def threshold_grid(n_thresholds: int = 50) -> list[float]:
    """The n thresholds 1/(2n), 3/(2n), ..., 1 - 1/(2n) (0.01, 0.03, ..., 0.99 for n = 50)."""
    return [float(t) for t in np.arange(1, 2 * n_thresholds, 2) / (2 * n_thresholds)]


def threshold_name(threshold: float) -> str:
    """Short text of a threshold for file names: 0.01 -> "0.01", 0.005 -> "0.005"."""
    return np.format_float_positional(threshold, precision=6, trim="-")
