"""PSD-ROC figures (PNG), drawn without pyplot so that no display backend is needed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from desed_task.evaluation.exact_psds_from_runs import ExactPSDSResult
from desed_task.evaluation.psds import PSDSResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _title(value: float, settings: dict[str, float]) -> str:
    return (
        f"PSDS: {value:.5f}\n"
        f"dtc {settings['dtc']}, gtc {settings['gtc']}, cttc {settings['cttc']}, "
        f"alpha_ct {settings['alpha_ct']}, alpha_st {settings['alpha_st']}, max_efpr {settings['max_efpr']}"
    )


def _draw_overall(path: Path, efpr: np.ndarray, etpr: np.ndarray, value: float, settings: dict) -> None:
    from matplotlib.figure import Figure  # imported when a figure is drawn (0.2 s)

    figure = Figure(figsize=(7, 7))
    axes = figure.add_subplot()
    axes.vlines(settings["max_efpr"], ymin=0, ymax=1.0, linestyles="dashed")
    axes.step(efpr, etpr, "b-", label="PSD-ROC", where="post")
    axes.fill_between(efpr, etpr, 0, step="post", alpha=0.3, color="tab:blue", label="AUC")
    axes.set(xlim=(0, settings["max_efpr"]), ylim=(0, 1), xlabel="eFPR per hour", ylabel="eTPR")
    axes.set_title(_title(value, settings))
    axes.legend()
    axes.grid()
    figure.savefig(path)


def _draw_per_class(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], max_efpr: float, title: str) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 7), layout="constrained")
    axes = figure.add_subplot()
    for name, (efpr, tpr) in curves.items():
        axes.step(efpr, tpr, label=name, where="post")
    axes.set(xlim=(0, max_efpr), ylim=(0, 1), xlabel="eFPR per hour", ylabel="TPR", title=title)
    # outside the axes: inside, it hides the lowest curves
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    axes.grid()
    figure.savefig(path)
    return figure


def plot_psds(result: PSDSResult, directory: Path, name: str) -> list[Path]:
    """Write ``<name>_roc.png`` (PSD-ROC) and ``<name>_roc_per_class.png``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(result, k) for k in ("dtc", "gtc", "cttc", "alpha_ct", "alpha_st", "max_efpr")}
    overall, per_class = directory / f"{name}_roc.png", directory / f"{name}_roc_per_class.png"
    _draw_overall(overall, result.roc_efpr, result.roc_etpr, result.value, settings)
    curves = {c: (result.roc_efpr, result.roc_class_tpr[i]) for i, c in enumerate(result.class_names)}
    _draw_per_class(per_class, curves, result.max_efpr, f"{name}: per-class TPR vs eFPR")
    return [overall, per_class]


def plot_exact_psds(result: ExactPSDSResult, directory: Path, name: str) -> list[Path]:
    """The same two figures for an exact (threshold-free) PSDS."""
    directory.mkdir(parents=True, exist_ok=True)
    overall, per_class = directory / f"{name}_roc.png", directory / f"{name}_roc_per_class.png"
    _draw_overall(overall, result.roc_efpr, result.roc_etpr, result.value, result.settings)
    curves = {c: (efpr, tpr) for c, (tpr, efpr) in result.class_rocs.items()}
    _draw_per_class(per_class, curves, result.settings["max_efpr"], f"{name}: per-class TPR vs eFPR")
    return [overall, per_class]
