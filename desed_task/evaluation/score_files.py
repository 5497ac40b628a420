"""Folders of frame scores in sed_scores_eval's layout (one TSV per clip): reading one,
writing the raw and the median-filtered scores side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from desed_task.evaluation.errors import EvaluationInputError

RAW_FOLDER, FILTERED_FOLDER = "raw", "filtered"


def write_score_folders(
    raw: Mapping[str, np.ndarray],
    filtered: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    frame_step: float,
    folder: str | Path,
) -> None:
    """Write ``folder/raw/<clip id>.tsv`` and ``folder/filtered/<clip id>.tsv``.

    Args:
        raw, filtered: {filename: (n_classes, n_frames) scores}, the network's output and
            its median-filtered version (what the exact PSDS is computed on).
        class_names: (n_classes,) column names.
        frame_step: seconds per frame.
    """
    from sed_scores_eval.base_modules.io import write_sed_scores

    from desed_task.evaluation.exact_psds import score_dataframes

    folder = Path(folder)
    for name, scores in ((RAW_FOLDER, raw), (FILTERED_FOLDER, filtered)):
        write_sed_scores(score_dataframes(scores, class_names, frame_step), folder / name)


def read_score_folder(
    folder: str | Path, known_filenames: set[str]
) -> tuple[dict[str, np.ndarray], list[str], float]:
    """Read ``<clip id>.tsv`` files with columns onset, offset, one per class.

    Args:
        folder: the folder.
        known_filenames: the evaluated clips' file names (durations table); a clip id ``X``
            is named ``X.wav`` when that is one of them.

    Returns:
        ({filename: (n_classes, n_frames) scores}, class names, frame step in seconds).
    """
    folder = Path(folder)
    paths = sorted(folder.glob("*.tsv"))
    if not paths:
        hint = ""
        if (folder / RAW_FOLDER).is_dir():
            hint = (f"; give {folder / RAW_FOLDER} (median-filtered by --median_window) or "
                    f"{folder / FILTERED_FOLDER} with --median_window 1")
        raise EvaluationInputError(f"{folder}: no .tsv score files{hint}")
    scores: dict[str, np.ndarray] = {}
    class_names: list[str] | None = None
    frame_steps = []
    for path in paths:
        table = pd.read_csv(path, sep="\t")
        if list(table.columns[:2]) != ["onset", "offset"] or table.shape[1] < 3:
            raise EvaluationInputError(f"{path}: expected columns onset, offset, then one per class")
        classes = [str(c) for c in table.columns[2:]]
        if class_names is None:
            class_names = classes
        elif classes != class_names:
            raise EvaluationInputError(f"{path}: classes {classes} differ from {class_names}")
        try:
            values = table.to_numpy(dtype=np.float64)
        except ValueError as error:
            raise EvaluationInputError(f"{path}: non-numeric values ({error})") from error
        if len(values) == 0:
            raise EvaluationInputError(f"{path}: no frames")
        frame_steps.append((values[-1, 1] - values[0, 0]) / len(values))
        clip = path.stem + ".wav" if path.stem + ".wav" in known_filenames else path.stem
        scores[clip] = values[:, 2:].T
    frame_step = float(np.median(frame_steps))
    return scores, class_names, frame_step
