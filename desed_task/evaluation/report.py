"""What a test or eval run writes for people and for the challenge: the results table of the
test step and the evaluation set's predictions in the 2021 layout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from desed_task.decoding.decode import decode_clip_scores
from desed_task.decoding.median_filter import median_filter_scores
from desed_task.decoding.score_files import write_score_folders
from desed_task.evaluation import metrics
from desed_task.evaluation.metrics import F1_THRESHOLD, threshold_grid, threshold_name

EVAL_COLUMNS = ["event_label", "onset", "offset", "filename"]  # the column order 2021 wrote


def summary_table(
    results: Mapping[str, Mapping[str, float]],
    postprocessing: str | None = None,
    left_out: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> str:
    """Markdown table: one row per metric of ``metrics.METRICS`` (those every model has), one
    column per model; then the post-processing used, when given; then, per model, the classes
    each macro F1 left out (its F1 undefined), or that none did.

    Args:
        results: {model: {metric name: value}}, e.g. {"student": {...}, "teacher": {...}}.
        postprocessing: the post-processing in words (``PostProcessing.describe``).
        left_out: {model: ``metrics.left_out_of_macros``'s result}.
    """
    models = list(results)
    lines = ["| metric | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for metric in metrics.METRICS:
        if all(metric.name in results[m] for m in models):
            lines.append(f"| {metric.name} | " + " | ".join(f"{results[m][metric.name]:.4f}" for m in models) + " |")
    if postprocessing:
        lines += ["", f"Post-processing: {postprocessing}."]
    if left_out:
        lines += ["", "Macro F1s average the classes with a defined F1 (as psds_eval and sed_eval); left out:"]
        for model, per_metric in left_out.items():
            said = [f"{name}: {', '.join(classes)}" for name, classes in per_metric.items() if classes]
            lines.append(f"- {model}: {'; '.join(said) if said else 'none'}")
    return "\n".join(lines)


def write_predictions(
    scores: Mapping[str, np.ndarray],
    class_names: list[str],
    save_dir: Path,
    model: str,
    median_window: int,
    frame_step: float,
    n_thresholds: int = 50,
    max_event_time: float | None = None,
) -> None:
    """Evaluation-set outputs of one model, as 2021 wrote them, and its frame scores.

    2021's files: ``predictions_05_<model>.tsv`` (threshold 0.5) and the operating points
    ``predictions_th_<t:.2f>.tsv`` (0.01, 0.03, ..., 0.99), columns event_label, onset,
    offset, filename, times clamped to ``max_event_time``; all 51 decoded at once, each clip
    at its own length. Then the frame scores, raw and median-filtered (``scores/raw/``,
    ``scores/filtered/``; sed_scores_eval layout: one TSV per clip with onset, offset and
    one column per class).

    Args:
        scores: {filename: (n_classes, n_frames) probabilities}, each clip at its own length.
        class_names: (n_classes,) labels of the score rows.
        save_dir: the model's folder (created).
        model: "student" or "teacher", in the file name.
        median_window: frames.
        frame_step: seconds per frame.
        n_thresholds: operating points.
        max_event_time: seconds to which onsets and offsets are clamped (None: not clamped).
    """
    names = sorted(scores)
    operating_points = threshold_grid(n_thresholds)
    thresholds = list(dict.fromkeys([*operating_points, F1_THRESHOLD]))
    decoded = decode_clip_scores(
        {n: scores[n] for n in names}, class_names, thresholds, median_window, frame_step, max_event_time
    )
    save_dir.mkdir(parents=True, exist_ok=True)

    def write(table: pd.DataFrame, name: str) -> None:
        table[EVAL_COLUMNS].to_csv(save_dir / name, sep="\t", index=False)

    write(decoded[F1_THRESHOLD], f"predictions_05_{model}.tsv")
    labels = [f"{threshold:.2f}" for threshold in operating_points]
    if len(set(labels)) < len(labels):  # more than 50 thresholds: 2 decimals would overwrite files
        labels = [threshold_name(threshold) for threshold in operating_points]
    for threshold, label in zip(operating_points, labels):
        write(decoded[threshold], f"predictions_th_{label}.tsv")
    filtered = {name: median_filter_scores(values, median_window) for name, values in scores.items()}
    write_score_folders(scores, filtered, class_names, frame_step, save_dir / "scores")
