"""Frame scores in sed_scores_eval's layout: a folder with one TSV per clip, columns
onset, offset (seconds) and one per class, one row per frame; raw and median-filtered
scores are written side by side (``raw/``, ``filtered/``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from desed_task.decoding.errors import EvaluationInputError

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
    folder = Path(folder)
    for name, scores in ((RAW_FOLDER, raw), (FILTERED_FOLDER, filtered)):
        write_sed_scores(scores, class_names, frame_step, folder / name)


def frame_table(filename: str, clip_scores: np.ndarray, n_classes: int, frame_step: float) -> np.ndarray:
    """One clip's scores in sed_scores_eval's layout.

    Args:
        filename: the clip (named in the error).
        clip_scores: (n_classes, n_frames) scores.
        n_classes: the expected number of rows.
        frame_step: seconds per frame; frame i covers [i * frame_step, (i + 1) * frame_step).

    Returns:
        (n_frames, 2 + n_classes) float64: onset, offset (seconds), then the class scores.
    """
    clip_scores = np.asarray(clip_scores, dtype=np.float64)
    if clip_scores.ndim != 2 or clip_scores.shape[0] != n_classes:
        raise EvaluationInputError(
            f"scores of {filename}: expected shape ({n_classes}, n_frames), got {clip_scores.shape}"
        )
    timestamps = np.arange(clip_scores.shape[1] + 1) * frame_step
    return np.concatenate([timestamps[:-1, None], timestamps[1:, None], clip_scores.T], axis=1)


def _clip_id(filename: str) -> str:
    """sed_scores_eval's clip id: the file name without its .wav extension."""
    return filename[: -len(".wav")] if filename.endswith(".wav") else filename


def write_score_table(
    clip_scores: np.ndarray, class_names: Sequence[str], frame_step: float, path: str | Path, filename: str = ""
) -> Path:
    """Write one recording's frame scores in sed_scores_eval's layout: the project's one score
    writer (test and eval runs, the evaluation command line, inference).

    Every value is written exactly (the shortest text that reads back to the same float, as
    pandas and sed_scores_eval's ``write_sed_scores`` write them), so that the exact PSDS and
    the tuning read back the scores they would get in memory.

    Args:
        clip_scores: (n_classes, n_frames) scores; frame i covers [i * frame_step,
            (i + 1) * frame_step) seconds.
        class_names: (n_classes,) column names after onset and offset.
        frame_step: seconds per frame.
        path: the ``.tsv`` to write (parents are created).
        filename: the recording, named in the error of a wrong shape (default: ``path``).
    """
    path = Path(path)
    table = frame_table(filename or str(path), clip_scores, len(class_names), frame_step)
    header = "\t".join(["onset", "offset", *map(str, class_names)])
    lines = ["\t".join(map(repr, row)) for row in table.tolist()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "\n".join(lines) + "\n")
    return path


def write_sed_scores(
    scores: Mapping[str, np.ndarray], class_names: Sequence[str], frame_step: float, folder: str | Path
) -> None:
    """Write ``<clip id>.tsv`` per clip (``write_score_table``), as sed_scores_eval's
    ``write_sed_scores`` does.

    Args:
        scores: {filename: (n_classes, n_frames) scores}; the clip id drops ".wav".
        class_names: (n_classes,) column names.
        frame_step: seconds per frame; frame i covers [i * frame_step, (i + 1) * frame_step).
        folder: created if needed.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for filename, clip_scores in scores.items():
        write_score_table(clip_scores, class_names, frame_step, folder / f"{_clip_id(filename)}.tsv", filename)


def _read_one(path: Path) -> np.ndarray:
    """(n_frames, 2 + n_classes) values of one file, errors naming it."""
    try:
        values = pd.read_csv(path, sep="\t").to_numpy(dtype=np.float64)
    except (ValueError, pd.errors.ParserError) as error:
        raise EvaluationInputError(f"{path}: non-numeric values ({error})") from error
    if len(values) == 0:
        raise EvaluationInputError(f"{path}: no frames")
    return values


def check_score_folder(folder: str | Path) -> Path:
    """The folder, or an EvaluationInputError saying it does not exist (or is a file)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationInputError(
            f"{folder}: {'is a file, not a folder' if folder.exists() else 'does not exist'} "
            f"(give the folder of per-clip score TSVs, e.g. LOG_DIR/metrics_test/student/scores/raw)"
        )
    return folder


def read_score_folder(
    folder: str | Path, known_filenames: set[str]
) -> tuple[dict[str, np.ndarray], list[str], float]:
    """Read ``<clip id>.tsv`` files with columns onset, offset, one per class, in ``folder`` and
    its sub-folders (clip id ``sub/x`` for ``sub/x.tsv``, as inference names the recordings
    found under a folder).

    All files are parsed at once (one ``read_csv`` over their joined rows); a file that
    breaks it is then read alone to name it in the error.

    Args:
        folder: the folder.
        known_filenames: the evaluated clips' file names (durations table); a clip id ``X``
            is named ``X.wav`` when that is one of them.

    Returns:
        ({filename: (n_classes, n_frames) scores}, class names, frame step in seconds).
    """
    folder = check_score_folder(folder)
    if not any(folder.glob("*.tsv")) and (folder / RAW_FOLDER).is_dir():
        raise EvaluationInputError(
            f"{folder}: no .tsv score files; give {folder / RAW_FOLDER} (median-filtered by --median_window) or "
            f"{folder / FILTERED_FOLDER} with --median_window 1"
        )
    # sub-folders too: inference names the recordings of a folder by their relative path
    paths = sorted(folder.rglob("*.tsv"))
    if not paths:
        raise EvaluationInputError(f"{folder}: no .tsv score files")
    class_names: list[str] | None = None
    bodies, n_rows = [], []
    for path in paths:
        header, _, body = path.read_text().partition("\n")
        columns = [c.strip() for c in next(csv.reader([header.rstrip("\r")], delimiter="\t"), [])]
        if columns[:2] != ["onset", "offset"] or len(columns) < 3:
            raise EvaluationInputError(f"{path}: expected columns onset, offset, then one per class")
        if class_names is None:
            class_names = columns[2:]
        elif columns[2:] != class_names:
            raise EvaluationInputError(f"{path}: classes {columns[2:]} differ from {class_names}")
        body = body.strip("\r\n")
        if not body:
            raise EvaluationInputError(f"{path}: no frames")
        bodies.append(body)
        n_rows.append(body.count("\n") + 1)
    try:
        values = pd.read_csv(
            io.StringIO("\n".join(bodies)), sep="\t", header=None, dtype=np.float64, skip_blank_lines=False
        ).to_numpy()
        complete = values.shape == (sum(n_rows), len(class_names) + 2)
    except (ValueError, pd.errors.ParserError):
        complete = False
    if complete:
        tables = np.split(values, np.cumsum(n_rows)[:-1])
    else:
        tables = [_read_one(path) for path in paths]  # raises, naming the file
    scores: dict[str, np.ndarray] = {}
    frame_steps = []
    for path, table in zip(paths, tables):
        if table.shape[1] != len(class_names) + 2:
            raise EvaluationInputError(f"{path}: rows of {table.shape[1]} values, expected {len(class_names) + 2}")
        frame_steps.append((table[-1, 1] - table[0, 0]) / len(table))
        clip_id = path.relative_to(folder).with_suffix("").as_posix()
        clip = clip_id + ".wav" if clip_id + ".wav" in known_filenames else clip_id
        scores[clip] = table[:, 2:].T
    return scores, class_names, float(np.median(frame_steps))


def audio_id(filename: str) -> str:
    """sed_scores_eval's clip id: the file name without its extension."""
    return str(Path(filename).with_suffix("")) if filename.endswith(".wav") else filename


class _WritableSeries(pd.Series):
    """A Series whose ``to_numpy`` returns a writable copy (see ``WritableScores``)."""

    @property
    def _constructor(self):
        return _WritableSeries

    def to_numpy(self, *args, **kwargs) -> np.ndarray:
        return np.array(super().to_numpy(*args, **kwargs))


class WritableScores(pd.DataFrame):
    """A score table whose arrays are writable.

    pandas 3 (copy-on-write) hands out read-only arrays, which sed_scores_eval 0.0.4's
    Cython detection code rejects ("buffer source array is read-only").
    """

    @property
    def _constructor(self):
        return WritableScores

    @property
    def _constructor_sliced(self):
        return _WritableSeries

    def to_numpy(self, *args, **kwargs) -> np.ndarray:
        return np.array(super().to_numpy(*args, **kwargs))


def score_dataframes(
    scores: Mapping[str, np.ndarray], class_names: Sequence[str], frame_step: float
) -> dict[str, pd.DataFrame]:
    """sed_scores_eval score tables keyed by clip id (columns onset, offset, one per class).

    Args:
        scores: {filename: (n_classes, n_frames) probabilities}; frame i covers
            [i * frame_step, (i + 1) * frame_step) seconds.
    """
    columns = ["onset", "offset", *class_names]
    return {
        audio_id(filename): WritableScores(
            pd.DataFrame(frame_table(filename, clip_scores, len(class_names), frame_step), columns=columns)
        )
        for filename, clip_scores in scores.items()
    }
