"""Event tables as flat integer/float arrays, the form every metric computes on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from desed_task.evaluation.tables import events_only


@dataclass(frozen=True)
class EncodedEvents:
    """Events as parallel arrays, each of shape (n_events,).

    Attributes:
        clip: index of the clip in the evaluation's clip list (int64).
        label: index of the class in the evaluation's class list (int64).
        onset: onset in seconds (float64).
        offset: offset in seconds (float64).
    """

    clip: np.ndarray
    label: np.ndarray
    onset: np.ndarray
    offset: np.ndarray

    def __len__(self) -> int:
        return int(self.clip.size)

    def select(self, mask: np.ndarray) -> EncodedEvents:
        """The events where ``mask`` (bool, (n_events,)) is true."""
        return EncodedEvents(self.clip[mask], self.label[mask], self.onset[mask], self.offset[mask])


def encode_events(table: pd.DataFrame, clips: pd.Index, classes: pd.Index) -> EncodedEvents:
    """Encode the event rows of a cleaned event table (empty-clip rows are dropped).

    Clips or classes absent from ``clips`` / ``classes`` get index -1; callers check
    the tables beforehand (``tables.check_predictions``).
    """
    events = events_only(table)
    return EncodedEvents(
        clip=clips.get_indexer(events["filename"].to_numpy(dtype=object)).astype(np.int64),
        label=classes.get_indexer(events["event_label"].to_numpy(dtype=object)).astype(np.int64),
        onset=events["onset"].to_numpy(dtype=np.float64),
        offset=events["offset"].to_numpy(dtype=np.float64),
    )


def class_index(ground_truth: pd.DataFrame) -> pd.Index:
    """The evaluation's classes: the sorted labels of the ground truth."""
    return pd.Index(sorted(set(events_only(ground_truth)["event_label"])), dtype=object)


def same_key_pairs(left_keys: np.ndarray, right_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i, j) with ``left_keys[i] == right_keys[j]``, without a Python loop.

    Args:
        left_keys: (n_left,) int64 group keys (e.g. clip index).
        right_keys: (n_right,) int64 group keys.

    Returns:
        (left_index, right_index), each (n_pairs,) int64, grouped by left index.
    """
    order = np.argsort(right_keys, kind="stable")
    sorted_keys = right_keys[order]
    start = np.searchsorted(sorted_keys, left_keys, side="left")
    count = np.searchsorted(sorted_keys, left_keys, side="right") - start
    left_index = np.repeat(np.arange(left_keys.size, dtype=np.int64), count)
    first_of_left = np.repeat(np.cumsum(count) - count, count)
    within = np.arange(left_index.size, dtype=np.int64) - first_of_left
    right_index = order[np.repeat(start, count) + within]
    return left_index, right_index
