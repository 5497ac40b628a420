"""Files written by the inference CLI: events.tsv (DCASE layout) and per-file score tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

EVENT_COLUMNS = ("filename", "onset", "offset", "event_label")


def write_score_table(scores: np.ndarray, class_names: Sequence[str], frame_step: float, path: Path) -> Path:
    """Raw frame scores in sed_scores_eval's layout: onset, offset, one column per class.

    Args:
        scores: (n_classes, n_frames) probabilities; frame i covers [i, i + 1) * frame_step s.
        class_names: (n_classes,) column names.
        frame_step: seconds per frame.
        path: the ``.tsv`` to write (parents are created).
    """
    n_frames = scores.shape[1]
    onsets = np.arange(n_frames) * frame_step
    table = pd.DataFrame(np.asarray(scores, dtype=np.float64).T, columns=list(class_names))
    table.insert(0, "offset", onsets + frame_step)
    table.insert(0, "onset", onsets)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False, float_format="%.6g")
    return path


class EventsFile:
    """``events.tsv`` written as files are scored (a crash keeps what was done)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\t".join(EVENT_COLUMNS) + "\n")
        self.count = 0

    def append(self, events: pd.DataFrame) -> None:
        """Add one file's events (columns filename, onset, offset, event_label; seconds)."""
        if len(events):
            events[list(EVENT_COLUMNS)].to_csv(self.path, sep="\t", index=False, header=False, mode="a", float_format="%.3f")
        self.count += len(events)
