"""Reading and checking event tables (ground truth, predictions) and duration tables.

An event table is a ``pd.DataFrame`` with the columns ``filename`` (str), ``onset``
and ``offset`` (float, seconds) and ``event_label`` (str; NaN for a clip without
events). A durations table has the columns ``filename`` and ``duration`` (seconds).
The name of the file a table was read from is kept in ``table.attrs["source"]`` so
that later errors can name it.

The durations table is the set of evaluated clips, as psds_eval's metadata and
sed_scores_eval's audio durations are: a clip listed there without any ground-truth
event (no row, or an empty-label row) is a clip without events; detections or scores on
a clip absent from it are an error.

Detections of a class without any ground-truth event are scored as the 2021 tools score
them (``report_absent_classes`` says so, or refuses them when asked to be strict):
psds_eval ignores them (PSDS, intersection F1); sed_eval, given the classes of the ground
truth and of the output as 2021 gave them, counts them as false positives of the collar-
and segment-based micro F1, their class's F1 undefined and so out of the macro F1.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from desed_task.data.tables import (
    READ_FROM,
    drop_events_past_end,
    file_line,
    read_table_file,
    require_columns,
)
from desed_task.decoding.errors import EvaluationInputError

log = logging.getLogger(__name__)

EVENT_COLUMNS = ["filename", "onset", "offset", "event_label"]
DURATION_COLUMNS = ["filename", "duration"]


def source_of(table: pd.DataFrame, default: str) -> str:
    """The name of the file ``table`` was read from, or ``default``."""
    return str(table.attrs.get("source", default))


def _where(table: pd.DataFrame, row: int) -> str:
    """Where row `row` (0-based) is: ``line N`` of the file the table was read from (1-based,
    the header is line 1, as an editor numbers it), ``row N`` (0-based) of an in-memory table."""
    return f"line {file_line(table, row)}" if READ_FROM in table.attrs else f"row {row}"


def _as_seconds(values: pd.Series, column: str, source: str, allow_missing: np.ndarray, table: pd.DataFrame) -> np.ndarray:
    """Numeric seconds from a column of `table`; ``allow_missing`` marks rows that may be empty."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        seconds = values.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        seconds = pd.to_numeric(
            values.astype(object).where(values.notna(), "").astype(str).str.strip().replace("", "nan"),
            errors="coerce",
        ).to_numpy(dtype=np.float64)
    bad = np.isnan(seconds) & ~allow_missing
    if bad.any():
        rows = np.flatnonzero(bad)
        raise EvaluationInputError(
            f"{source}: {rows.size} row(s) have a missing or non-numeric {column} "
            f"(first: {_where(table, rows[0])}, value {values.iloc[rows[0]]!r})"
        )
    return seconds


def clean_event_table(table: pd.DataFrame, source: str | None = None) -> pd.DataFrame:
    """Check and normalise an event table.

    Keeps only ``filename, onset, offset, event_label`` (any order and extra columns
    accepted), turns empty labels into NaN, times into float seconds.

    Raises:
        EvaluationInputError: a missing column, a non-numeric time, or offset < onset.
    """
    source = source or source_of(table, "event table")
    if table.attrs.get("clean"):
        return table
    require_columns(table, EVENT_COLUMNS, source, EvaluationInputError)
    labels = table["event_label"].astype(object)
    labels = labels.where(labels.notna(), "").astype(str).str.strip()
    no_event = (labels == "").to_numpy()
    onset = _as_seconds(table["onset"], "onset", source, no_event, table)
    offset = _as_seconds(table["offset"], "offset", source, no_event, table)
    reversed_rows = np.flatnonzero(offset < onset)
    if reversed_rows.size:
        row = reversed_rows[0]
        raise EvaluationInputError(
            f"{source}: {reversed_rows.size} row(s) have offset < onset "
            f"(first: {_where(table, row)}, onset {onset[row]}, offset {offset[row]})"
        )
    filenames = table["filename"].astype(object).astype(str).str.strip()
    if (filenames == "").any():
        first = int(np.flatnonzero((filenames == "").to_numpy())[0])
        raise EvaluationInputError(f"{source}: rows with an empty filename (first: {_where(table, first)})")
    cleaned = pd.DataFrame(
        {
            "filename": filenames.to_numpy(dtype=object),
            "onset": onset,
            "offset": offset,
            "event_label": np.where(no_event, None, labels.to_numpy(dtype=object)),
        }
    )
    cleaned.attrs.update(source=source, clean=True)
    return cleaned


def clean_durations(table: pd.DataFrame, source: str | None = None) -> pd.DataFrame:
    """Check and normalise a durations table (first row kept for a repeated filename)."""
    source = source or source_of(table, "durations table")
    if table.attrs.get("clean"):
        return table
    require_columns(table, DURATION_COLUMNS, source, EvaluationInputError)
    filenames = table["filename"].astype(object).astype(str).str.strip()
    durations = _as_seconds(table["duration"], "duration", source, np.zeros(len(table), bool), table)
    if (durations < 0).any():
        first = int(np.flatnonzero(durations < 0)[0])
        raise EvaluationInputError(f"{source}: negative durations (first: {_where(table, first)}, {durations[first]:g})")
    cleaned = pd.DataFrame({"filename": filenames.to_numpy(dtype=object), "duration": durations})
    cleaned = cleaned.drop_duplicates("filename", keep="first").reset_index(drop=True)
    cleaned.attrs.update(source=source, clean=True)
    return cleaned


def _read(path: Path) -> pd.DataFrame:
    """A TSV or CSV file as text (``data.tables.read_table_file``); short lines are read with
    NaN in their missing fields (an empty-clip row may be written as its filename alone)."""
    return read_table_file(path, EvaluationInputError, text=True, whole_rows=False)


def read_event_table(path: str | Path) -> pd.DataFrame:
    """Read a ground-truth or prediction file (TSV or CSV, columns in any order)."""
    path = Path(path)
    return clean_event_table(_read(path), source=str(path))


def read_durations(path: str | Path) -> pd.DataFrame:
    """Read a durations file (``filename``, ``duration`` in seconds; TSV or CSV)."""
    path = Path(path)
    return clean_durations(_read(path), source=str(path))


def drop_ground_truth_past_end(ground_truth: pd.DataFrame, durations: pd.DataFrame) -> pd.DataFrame:
    """Training's rule for labels past the end of their clip (``data.tables.drop_events_past_end``),
    applied to a ground truth read by ``read_event_table``: an event that starts at or after its
    clip's duration is dropped, in one counted warning naming the file and line; an event only
    partly past the end is kept as it is.

    Args:
        ground_truth: event table as read (its index is its row number in its file).
        durations: cleaned durations table (filename, duration in seconds); a clip missing
            from it has no end here (``check_ground_truth`` refuses it later).
    """
    source = source_of(ground_truth, "ground truth")
    kept = drop_events_past_end(ground_truth, source, "ground truth", durations=durations)
    if kept is ground_truth:
        return ground_truth
    kept = kept.reset_index(drop=True)
    kept.attrs.update(ground_truth.attrs)
    return kept


def events_only(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of an event table that hold an event (not the empty-clip rows)."""
    return table[table["event_label"].notna()]


def _unique(values: pd.Series) -> pd.Index:
    return pd.Index(pd.unique(values.to_numpy(dtype=object)))


def check_ground_truth(ground_truth: pd.DataFrame, durations: pd.DataFrame) -> None:
    """Every ground-truth clip must have a duration (the durations table is the clip set)."""
    missing = _unique(ground_truth["filename"]).difference(_unique(durations["filename"]))
    if len(missing):
        raise EvaluationInputError(
            f"{source_of(ground_truth, 'ground truth')}: {len(missing)} clip(s) missing from "
            f"{source_of(durations, 'the durations table')} (first: {missing[0]}); add their durations"
        )


def check_clips(filenames: Iterable[str], durations: pd.DataFrame, source: str) -> None:
    """Detected or scored clips must be clips of the evaluation: rows of the durations table."""
    values = filenames if isinstance(filenames, pd.Series) else pd.Series(list(filenames), dtype=object)
    unknown = _unique(values).difference(_unique(durations["filename"]))
    if len(unknown):
        raise EvaluationInputError(
            f"{source}: {len(unknown)} clip(s) not in {source_of(durations, 'the durations table')} "
            f"(first: {unknown[0]}), which lists the evaluated clips"
        )


def check_predictions(predictions: pd.DataFrame, durations: pd.DataFrame) -> None:
    """Predictions may only name clips of the durations table (their classes: see the
    module's docstring)."""
    check_clips(predictions["filename"], durations, source_of(predictions, "predictions"))


# what each metric does with detections of a class without ground truth, for the messages
IN_PSDS = "left out of the PSDS (as psds_eval ignores them)"
IN_F1 = (
    "left out of the intersection F1 (as psds_eval), false positives of the collar and segment "
    "micro F1 and out of their macro F1 (as sed_eval in 2021)"
)


def absent_class_counts(labels: Iterable[str], ground_truth: pd.DataFrame) -> dict[str, int]:
    """{class: number of detections} of the detected classes without any ground-truth event.

    Args:
        labels: (n_detections,) class of each detection (NaN/None: an empty-clip row, skipped).
        ground_truth: cleaned event table.
    """
    present = set(events_only(ground_truth)["event_label"])
    values = (labels if isinstance(labels, pd.Series) else pd.Series(list(labels), dtype=object)).dropna()
    counts = values[~values.isin(present)].value_counts()
    return {str(name): int(counts[name]) for name in sorted(counts.index)}


def report_absent_classes(
    counts: Mapping[str, int], ground_truth: pd.DataFrame, source: str, strict: bool, consequence: str
) -> None:
    """The one rule for detections of classes without ground-truth events: refused with
    ``strict`` (``--strict_classes``), else scored as the 2021 tools do, in one warning.

    Args:
        counts: ``absent_class_counts``'s result (nothing is said when empty).
        ground_truth: the event table (named in the message).
        source: the detections' file or description.
        strict: refuse instead of warn.
        consequence: what the metrics do with them (``IN_PSDS``, ``IN_F1``, ...).

    Raises:
        EvaluationInputError: ``strict`` and ``counts`` not empty.
    """
    if not counts:
        return
    listed = ", ".join(f"{name} ({n} detection{'' if n == 1 else 's'})" for name, n in counts.items())
    head = f"{source}: class(es) not in the ground truth ({source_of(ground_truth, 'ground truth')}): {listed}"
    if strict:
        raise EvaluationInputError(
            f"{head}; drop those detections, or leave out --strict_classes to score them as psds_eval and sed_eval do"
        )
    log.warning("%s: %s; --strict_classes refuses them", head, consequence)


NEVER_DETECTED = (
    "scored as a class the model never detects, as psds_eval and sed_eval score a ground-truth class "
    "without detections: TPR 0 at every threshold of the PSDS and the exact PSDS, all its events missed "
    "in the F1s"
)


def unscored_classes(ground_truth: pd.DataFrame, class_names: Iterable[str]) -> list[str]:
    """The ground-truth classes (sorted) that are not among ``class_names`` (the model's)."""
    return sorted(set(events_only(ground_truth)["event_label"]) - set(class_names))


def report_unscored_classes(
    ground_truth: pd.DataFrame, class_names: Sequence[str], strict: bool
) -> list[str]:
    """The one rule for ground-truth classes the model has no scores for (e.g. an annotation
    ``Door_knock`` for a model of the 10 DESED classes): refused with ``strict``
    (``--strict_classes``), else scored as never detected (``NEVER_DETECTED``), in one warning
    that names them and the model's classes.

    Args:
        ground_truth: cleaned event table.
        class_names: (n_classes,) the model's classes (the score columns).
        strict: refuse instead of warn.

    Returns:
        those classes, sorted (empty: nothing said).

    Raises:
        EvaluationInputError: ``strict`` and some ground-truth class has no scores.
    """
    missing = unscored_classes(ground_truth, class_names)
    if not missing:
        return missing
    head = (
        f"{source_of(ground_truth, 'ground truth')}: class(es) {', '.join(missing)} have no scores "
        f"(the model's {len(class_names)} classes: {', '.join(class_names)})"
    )
    if strict:
        raise EvaluationInputError(
            f"{head}; rename or drop those ground-truth rows, or leave out --strict_classes to score them "
            "as never detected"
        )
    log.warning("%s: %s; --strict_classes refuses them", head, NEVER_DETECTED)
    return missing


def report_undetected_classes(labels: Iterable[str], ground_truth: pd.DataFrame, source: str) -> list[str]:
    """``report_unscored_classes`` for decoded detections (``--predictions``,
    ``--operating_points``), where the model's classes are not known: the ground-truth classes
    without any detection are scored as never detected, as ever, in one warning that names them.

    Args:
        labels: (n_detections,) class of each detection (NaN/None: an empty-clip row, skipped).
        ground_truth: cleaned event table.
        source: the detections' file, named in the warning.

    Returns:
        those classes, sorted (empty: nothing said).
    """
    values = labels if isinstance(labels, pd.Series) else pd.Series(list(labels), dtype=object)
    missing = unscored_classes(ground_truth, set(values.dropna()))
    if missing:
        log.warning(
            "%s: ground-truth class(es) %s of %s have no detection (not among the model's classes, or never "
            "detected): %s", source, ", ".join(missing), source_of(ground_truth, "the ground truth"), NEVER_DETECTED,
        )
    return missing


def restrict_to_scored_clips(
    scores: Mapping[str, np.ndarray],
    events: pd.DataFrame,
    durations: pd.DataFrame,
) -> tuple[Mapping[str, np.ndarray], pd.DataFrame, pd.DataFrame]:
    """Ground truth and durations over the scored clips, the cut said in the log.

    The evaluated clips are those of `durations` (a clip without events need not be in
    `events`). Clips not scored (fast_dev_run, limit_*_batches) leave the ground truth
    instead of counting as missed events. Classes without ground-truth events stay: the
    metrics score them as the 2021 tools did (see the module's docstring).

    Args:
        scores: {filename: (n_classes, n_frames) probabilities} of the scored clips.
        events, durations: the set's event and durations tables.

    Returns:
        ``scores`` and the tables restricted to its clips.
    """
    unscored = set(durations["filename"]) - set(scores)
    if unscored:
        log.warning(
            "%d of %d clips of the durations table were not scored (partial pass); metrics cover the %d scored clips",
            len(unscored), len(durations), len(scores),
        )
        events = events[events["filename"].isin(scores)]
        durations = durations[durations["filename"].isin(scores)]
    return scores, events, durations
