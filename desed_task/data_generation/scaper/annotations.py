"""Event annotations of generated soundscapes: from JAMS, cleaned like DESED, written as TSV.

Strong metadata TSV columns: ``filename  onset  offset  event_label`` (seconds, 3 decimals).
A clip without any event keeps one row with empty onset/offset/event_label, as in the DESED
evaluation metadata, so that the file list stays complete.
Weak metadata TSV columns: ``filename  event_labels`` (comma-separated classes, sorted).
Durations TSV columns: ``filename  duration`` (seconds).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import jams
import numpy as np
import pandas as pd

from desed_task.data_generation.scaper.soundbank import class_of_label

STRONG_COLUMNS = ["filename", "onset", "offset", "event_label"]
MIN_EVENT_DURATION_S = 0.250
MIN_GAP_S = 0.150


def natural_key(filename: str) -> tuple:
    """Sort key putting ``2.wav`` before ``10.wav``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", filename))


def events_from_jams(jam: jams.JAMS) -> list[tuple[float, float, str]]:
    """Foreground events of a scaper JAMS as ``(onset_s, offset_s, class)``, variant suffix removed."""
    annotation = jam.annotations.search(namespace="scaper")[0]
    return [
        (float(obs.time), float(obs.time + obs.duration), class_of_label(obs.value["label"]))
        for obs in annotation.data
        if obs.value["role"] == "foreground"
    ]


def clean_clip_events(
    events: Iterable[tuple[float, float, str]],
    clip_duration_s: float,
    min_event_s: float = MIN_EVENT_DURATION_S,
    min_gap_s: float = MIN_GAP_S,
) -> list[tuple[float, float, str]]:
    """Clean one clip's events the way DESED annotations were cleaned (per class).

    Events are clipped to ``[0, clip_duration_s]``; an event shorter than ``min_event_s`` is
    lengthened on its offset side (and dropped if that passes the clip end); events of the same
    class are merged when they overlap, when the silence between them is under ``min_gap_s`` or
    when their onsets are less than ``min_event_s + min_gap_s`` apart. Times in seconds.
    """
    by_class: dict[str, list[tuple[float, float]]] = {}
    for onset, offset, label in events:
        onset = round(max(0.0, onset), 3)
        offset = round(min(clip_duration_s, offset), 3)
        by_class.setdefault(label, []).append((onset, offset))

    cleaned: list[tuple[float, float, str]] = []
    for label, spans in by_class.items():
        spans.sort()
        i = 0
        while i < len(spans):
            onset, offset = spans[i]
            if offset - onset < min_event_s:
                offset = round(onset + min_event_s, 3)
                if offset > clip_duration_s:
                    break  # the following events of this class start even later
            j = i + 1
            while j < len(spans):
                next_onset, next_offset = spans[j]
                if next_offset < offset:
                    pass  # inside the current event
                elif (
                    next_onset - offset < min_gap_s or next_onset - onset < min_event_s + min_gap_s
                ):
                    offset = next_offset
                else:
                    break
                j += 1
            cleaned.append((onset, offset, label))
            i = j
    cleaned.sort(key=lambda event: (event[0], event[2]))
    return cleaned


def strong_table(clip_events: dict[str, Sequence[tuple[float, float, str]]]) -> pd.DataFrame:
    """One DataFrame of strong labels from ``{filename: events}``; clips without events get a blank row."""
    rows: list[tuple[str, float, float, str | None]] = []
    for filename in sorted(clip_events, key=natural_key):
        events = clip_events[filename]
        if events:
            rows.extend((filename, onset, offset, label) for onset, offset, label in events)
        else:
            rows.append((filename, np.nan, np.nan, None))
    return pd.DataFrame(rows, columns=STRONG_COLUMNS)


def weak_table(clip_events: dict[str, Sequence[tuple[float, float, str]]]) -> pd.DataFrame:
    """One DataFrame of weak labels (``filename``, comma-separated ``event_labels``)."""
    rows = [
        (filename, ",".join(sorted({label for _, _, label in clip_events[filename]})))
        for filename in sorted(clip_events, key=natural_key)
    ]
    return pd.DataFrame(rows, columns=["filename", "event_labels"])


def durations_table(durations_s: dict[str, float]) -> pd.DataFrame:
    """One DataFrame of clip durations (``filename``, ``duration`` in seconds)."""
    return pd.DataFrame(
        [(name, durations_s[name]) for name in sorted(durations_s, key=natural_key)],
        columns=["filename", "duration"],
    )


def write_tsv(table: pd.DataFrame, path: Path) -> Path:
    """Write a metadata table as TSV in one go (through a temporary name, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    table.to_csv(tmp, sep="\t", index=False, float_format="%.3f")
    tmp.replace(path)
    return path
