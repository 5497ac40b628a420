"""Metadata tables of the DESED sets: strong (filename, onset, offset, event_label) and weak
(filename, event_labels), checked on reading so a bad row is reported with its file and line."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from desed_task.errors import UserError

log = logging.getLogger(__name__)


class MetadataError(UserError):
    """A metadata table is malformed; the message names the file, the row and the fix."""


def read_table_file(
    path: str | Path, error: type[Exception] = MetadataError, *, text: bool = False, whole_rows: bool = True
) -> pd.DataFrame:
    """The project's one reader of table files: metadata, ground truth, predictions, durations.

    Tab-separated, or comma-separated when the header holds a comma and no tab; a header row
    names the columns (surrounding spaces dropped). What makes a file unreadable is raised as
    ``error`` (``MetadataError`` for the training's metadata, ``EvaluationInputError`` for the
    evaluation's tables), with the file's name: a missing file, text pandas cannot parse, and
    with ``whole_rows`` a line with fewer fields than the header (pandas would fill it with
    NaN), with its number.

    Args:
        path: the file.
        error: the exception class raised.
        text: every cell as text, an empty cell as "" (the caller checks each column); else
            pandas' types, an empty cell NaN.
        whole_rows: refuse short lines (else they are read with NaN in the missing fields).
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file")
    try:
        with path.open(encoding="utf-8") as handle:
            header = handle.readline()
        separator = "," if "\t" not in header and "," in header else "\t"
        if whole_rows:
            _check_field_counts(path, separator, error)
        options = {"dtype": str, "keep_default_na": False} if text else {"keep_default_na": True}
        table = pd.read_csv(path, sep=separator, **options)
        skipped = _skipped_lines(path, separator)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise error(f"{path}: not a readable table ({err})") from err
    table.columns = [str(column).strip() for column in table.columns]
    table.attrs[READ_FROM] = str(path)
    if skipped:
        table.attrs[SKIPPED_LINES] = skipped
    return table


READ_FROM = "read_from"
"""``attrs`` key of a table read by `read_table_file`: the file (its rows are the file's lines)."""
SKIPPED_LINES = "skipped_lines"
"""``attrs`` key of a table read by `read_table_file`: the file's lines pandas skipped (blank)."""


def _skipped_lines(path: Path, separator: str) -> tuple[int, ...]:
    """1-based numbers of the lines after the header that pandas reads as no row: blank ones
    (nothing but spaces, no separator)."""
    lines = re.split(r"\r\n|\r|\n", path.read_text(encoding="utf-8"))
    return tuple(
        number for number, line in enumerate(lines[1:], start=2)
        if not line.strip() and separator not in line and number < len(lines)  # not the final newline
    )


def file_line(table: pd.DataFrame, row: int) -> int:
    """The 1-based line of the file, header counted (line 1), that holds row `row` (0-based, in
    the order read) of a table of `read_table_file`: blank lines skipped by pandas counted."""
    line = int(row) + 2
    for skipped in table.attrs.get(SKIPPED_LINES, ()):
        if skipped <= line:
            line += 1
    return line


def _check_field_counts(path: Path, separator: str, error: type[Exception]) -> None:
    """pandas fills a short line with NaN: a line with fewer fields than the header is refused
    instead (an empty field is written as nothing between two separators)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        return
    header = lines[0].split(separator)
    name = "tab" if separator == "\t" else "comma"
    for number, line in enumerate(lines[1:], start=2):
        n_fields = line.count(separator) + 1
        if line.strip() and n_fields < len(header):
            raise error(
                f"{path}: line {number}: {n_fields} of the {len(header)} {name}-separated columns "
                f"({', '.join(header)}); add the missing ones (an empty value is written as "
                f"nothing between two {name}s)"
            )


def require_columns(
    table: pd.DataFrame, columns: Sequence[str], source: str | Path, error: type[Exception] = MetadataError
) -> None:
    """Raise ``error`` naming ``source``, the missing columns and those found."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise error(
            f"{source}: missing column(s) {missing}; found {list(table.columns)} "
            f"(a header row naming the columns is expected)"
        )


def _first_bad_line(table: pd.DataFrame, mask: np.ndarray) -> tuple[int, int]:
    """(row, file line) of the first row where `mask` holds (see `file_line`)."""
    row = int(np.flatnonzero(mask)[0])
    return row, file_line(table, row)


def read_strong_table(path: str | Path, class_names: Sequence[str]) -> pd.DataFrame:
    """Strongly labelled events; clips without events are rows with empty onset/label.

    Returns columns filename (str), onset, offset (float, seconds), event_label (str or NaN).
    """
    path = Path(path)
    df = read_table_file(path)
    require_columns(df, ("filename", "onset", "offset", "event_label"), path)
    df = df[["filename", "onset", "offset", "event_label"]].copy()
    for col in ("onset", "offset"):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna().to_numpy() & df[col].notna().to_numpy()
        if bad.any():
            row, line = _first_bad_line(df, bad)
            raise MetadataError(f"{path}: line {line}: {col} {df[col].iloc[row]!r} is not a number")
        df[col] = values.astype(float)
    has_event = df["event_label"].notna().to_numpy()
    times_missing = has_event & (df["onset"].isna() | df["offset"].isna()).to_numpy()
    if times_missing.any():
        raise MetadataError(f"{path}: line {_first_bad_line(df, times_missing)[1]}: event without onset/offset")
    reversed_ = has_event & (df["offset"] < df["onset"]).to_numpy()
    if reversed_.any():
        raise MetadataError(f"{path}: line {_first_bad_line(df, reversed_)[1]}: offset before onset")
    unknown = has_event & ~df["event_label"].isin(class_names).to_numpy()
    if unknown.any():
        row, line = _first_bad_line(df, unknown)
        raise MetadataError(
            f"{path}: line {line}: unknown event label {df['event_label'].iloc[row]!r} "
            f"(known: {', '.join(class_names)})"
        )
    df["filename"] = df["filename"].astype(str)
    return df


def read_weak_table(path: str | Path, class_names: Sequence[str]) -> pd.DataFrame:
    """Weakly labelled clips: columns filename, event_labels (comma-separated class names)."""
    path = Path(path)
    df = read_table_file(path)
    require_columns(df, ("filename", "event_labels"), path)
    df = df[["filename", "event_labels"]].copy()
    df["filename"] = df["filename"].astype(str)
    labels = df["event_labels"].fillna("").astype(str).str.split(",")
    known = set(class_names)
    for row, names in enumerate(labels):
        unknown = [n for n in names if n and n not in known]
        if unknown:
            raise MetadataError(f"{path}: line {file_line(df, row)}: unknown event label(s) {unknown}")
    df["event_labels"] = labels.map(lambda names: [n for n in names if n])
    return df


def read_durations(path: str | Path) -> pd.DataFrame:
    """Clip durations: columns filename, duration (seconds)."""
    path = Path(path)
    df = read_table_file(path)
    require_columns(df, ("filename", "duration"), path)
    duration = pd.to_numeric(df["duration"], errors="coerce")
    if duration.isna().any():
        raise MetadataError(f"{path}: line {_first_bad_line(df, duration.isna().to_numpy())[1]}: bad duration")
    return pd.DataFrame({"filename": df["filename"].astype(str), "duration": duration.astype(float)})


def events_past_end(
    events: pd.DataFrame, clip_seconds: float, durations: pd.DataFrame | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Which events start at or after their clip's end, and each event's clip end (s).

    The end is `clip_seconds` (the fixed clip length), or the clip's durations entry when
    shorter. The 2021 encoder gave such events no frame; they are left out of the targets and
    the ground truth (events only partly past the end are clipped, as in 2021).
    """
    end = pd.Series(float(clip_seconds), index=events.index)
    if durations is not None:
        listed = events["filename"].map(dict(zip(durations["filename"], durations["duration"])))
        end = end.where(listed.isna() | (listed >= end), listed)
    past = (events["event_label"].notna() & (events["onset"] >= end)).to_numpy()
    return past, end.to_numpy(dtype=float)


def describe_event(path: str | Path, events: pd.DataFrame, position: int) -> str:
    """'PATH line N: FILE onset X s' of the event at `position` of a table read by
    `read_strong_table` (its index is the row number in the file, see `file_line`)."""
    row = events.iloc[position]
    return f"{path} line {file_line(events, int(events.index[position]))}: {row['filename']} onset {row['onset']:g} s"


def drop_events_past_end(
    events: pd.DataFrame,
    path: str | Path,
    name: str,
    clip_seconds: float = float("inf"),
    durations: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The one rule for labels past the end of their clip, in training and in evaluation:
    events that start at or after their clip's end (``events_past_end``) are dropped, in one
    counted warning naming the first one's file and line; events only partly past the end stay.

    Args:
        events: event table (filename, onset, offset, event_label; empty-label rows allowed)
            whose index is its row number in ``path`` (as ``read_strong_table`` and the
            evaluation's ``read_event_table`` read it).
        path: the file the events were read from (named in the warning).
        name: what the table is (a set name, "ground truth"), first in the warning.
        clip_seconds: the fixed clip length (training: ``data.audio_max_len``); inf where only
            ``durations`` give the clips' ends (evaluation).
        durations: filename, duration (seconds); a clip's entry is its end when shorter.

    Returns:
        ``events`` without those rows (the same object when none is dropped).
    """
    past_end, clip_ends = events_past_end(events, clip_seconds, durations)
    if not past_end.any():
        return events
    first = int(past_end.argmax())
    log.warning(
        "%s: %d event(s) start at or after their clip's end and are ignored (first: %s, "
        "clip end %g s); fix or remove those lines",
        name, int(past_end.sum()), describe_event(path, events, first), clip_ends[first],
    )
    return events[~past_end]


def shortest_audio_seconds(
    events: pd.DataFrame, durations: pd.DataFrame | None = None, tolerance: float = 0.5
) -> dict[str, float]:
    """How long each clip's audio must be, by its metadata: longer than its last event's
    onset, and than its durations entry less `tolerance` seconds. A shorter file is truncated
    (e.g. a download cut short): scored as its durations entry says, its lost events would
    count as misses."""
    required: dict[str, float] = {}
    labelled = events[events["event_label"].notna()]
    for name, onset in labelled.groupby("filename")["onset"].max().items():
        required[str(name)] = float(onset)
    if durations is not None:
        for name, duration in zip(durations["filename"], durations["duration"]):
            required[name] = max(required.get(name, 0.0), float(duration) - tolerance)
    return required
