"""Frame probabilities to event lists at many thresholds at once (2021 baseline semantics).

The 2021 baseline, per clip and threshold: ``pred > threshold``, then
``scipy.ndimage.median_filter(pred, (window, 1))`` over time (mode 'reflect'), then
each contiguous run of active frames [start, stop) becomes the event
(start * frame_step, stop * frame_step) seconds, onset and offset each clamped to
[0, audio_max_len] (10 s; ``ManyHotEncoder._frame_to_time``: an event wholly past 10 s
became (10, 10) and stayed in the table). Here the same is
done for all clips, classes and thresholds at once, in a few array operations
(``threshold_regions``).

Every decoder of the package is here: ``decode_scores`` (clips of one length, as arrays),
``decode_clip_scores`` (clips of any lengths, the eval set), ``decode_at_class_thresholds``
(a threshold and a median window per class: post-processing files, inference) and
``decode_mapping`` (the arrays behind them, for the metrics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from desed_task.decoding.errors import EvaluationInputError
from desed_task.decoding.median_filter import median_filter_scores, windows_per_class

FRAME_STEP = 256 / 16000 * 4  # s: hop length / sample rate x CRNN temporal pooling = 0.064


def _score_levels(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many of the sorted ``thresholds`` each score is above (``score > threshold``);
    NaN is above none. int16 or int32, the shape of ``scores``."""
    dtype = np.int16 if thresholds.size < np.iinfo(np.int16).max else np.int32
    levels = np.searchsorted(thresholds, scores, side="left").astype(dtype)
    levels[np.isnan(scores)] = 0
    return levels


def threshold_regions(
    scores: np.ndarray, thresholds: Sequence[float], windows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous active regions after binarising at each threshold and median filtering.

    All thresholds at once: each score becomes its level (the number of thresholds it is
    above), which the median filter keeps (a median commutes with a nondecreasing map);
    where the level steps up from ``a`` to ``b`` a region starts at the thresholds of
    rank a .. b-1, where it steps down from ``b`` to ``a`` those regions stop.

    Args:
        scores: (n_clips, n_classes, n_frames) probabilities.
        thresholds: (n_thresholds,) a frame is active where ``score > threshold``.
        windows: (n_classes,) median-filter window per class, in frames.

    Returns:
        threshold, clip, label, start, stop: each (n_regions,) int64, ordered by the rank
        of the threshold, then clip, class, start; ``threshold`` indexes ``thresholds``;
        a region covers frames [start, stop).
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    order = np.argsort(thresholds, kind="stable")
    levels = _score_levels(scores, thresholds[order])
    if (windows > 1).any():
        levels = median_filter_scores(levels, windows)
    n_clips, n_classes, n_frames = scores.shape
    padded = np.zeros((n_clips * n_classes, n_frames + 2), dtype=np.int32)
    padded[:, 1:-1] = levels.reshape(-1, n_frames)
    before, after = padded[:, :-1].ravel(), padded[:, 1:].ravel()
    steps = after - before  # at edge i of a row: level[i] - level[i - 1], i in 0 .. n_frames

    def crossings(edges: np.ndarray, lowest: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (edge, threshold rank) crossed, ordered by rank, then edge."""
        edge = np.repeat(edges, count)
        first_of_edge = np.repeat(np.cumsum(count) - count, count)
        rank = np.repeat(lowest, count) + (np.arange(edge.size) - first_of_edge)
        by_rank = np.argsort(rank.astype(levels.dtype), kind="stable")  # int16 when it fits: a radix sort
        return edge[by_rank], rank[by_rank]

    rising = np.flatnonzero(steps > 0)
    falling = np.flatnonzero(steps < 0)
    start_edge, rank = crossings(rising, before[rising], steps[rising])
    stop_edge, _ = crossings(falling, after[falling], -steps[falling])  # rises and falls alternate
    row, start = np.divmod(start_edge, n_frames + 1)
    clip, label = np.divmod(row, n_classes)
    return order[rank], clip, label, start, stop_edge % (n_frames + 1)


def regions_in_seconds(
    clip: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    frame_step: float,
    durations: np.ndarray | None = None,
    max_event_time: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Onsets and offsets (seconds) of regions of frames [start, stop), rounded as 2021 did.

    With ``max_event_time`` (seconds) onsets and offsets are clamped to it, as 2021 clamped
    them to ``audio_max_len``: an event wholly past it is kept, of length 0. With
    (n_clips,) ``durations`` (seconds) the events are clipped to their clip and those left
    empty are dropped.

    Returns:
        kept (bool, (n_regions,): False for events left empty by ``durations``), onset, offset.
    """
    frames_per_second = 1.0 / frame_step  # f / 15.625 rounds like the 2021 f * 4 / 62.5
    onset = np.maximum(start / frames_per_second, 0.0)
    offset = stop / frames_per_second
    if max_event_time is not None:
        onset, offset = np.minimum(onset, max_event_time), np.minimum(offset, max_event_time)
    if durations is None:
        return np.ones(onset.shape, bool), onset, offset
    clip_end = np.asarray(durations, dtype=np.float64)[clip]
    onset, offset = np.minimum(onset, clip_end), np.minimum(offset, clip_end)
    return offset > onset, onset, offset


def decode_scores(
    scores: np.ndarray,
    filenames: Sequence[str],
    class_names: Sequence[str],
    thresholds: Sequence[float],
    median_window: int | Sequence[int] = 7,
    frame_step: float = FRAME_STEP,
    durations: np.ndarray | None = None,
    max_event_time: float | None = None,
) -> dict[float, pd.DataFrame]:
    """Decode frame probabilities into one event table per threshold.

    Args:
        scores: (n_clips, n_classes, n_frames) probabilities; frame i covers
            [i * frame_step, (i + 1) * frame_step) seconds.
        filenames: (n_clips,) clip names written to the ``filename`` column.
        class_names: (n_classes,) labels written to the ``event_label`` column.
        thresholds: decision thresholds (a frame is active where score > threshold).
        median_window: median-filter length in frames, one for all classes or one per class.
        frame_step: seconds per frame (0.064 for the 2021 CRNN).
        durations: optional (n_clips,) clip durations in seconds; events are clipped to
            [0, duration] and dropped when nothing is left (not in 2021).
        max_event_time: optional seconds to which onsets and offsets are clamped, events
            left empty kept (2021: ``audio_max_len``, which the 156 frames of a 10 s clip
            never reach).

    Returns:
        {threshold: DataFrame with columns filename, onset, offset, event_label}.
    """
    scores = np.asarray(scores)
    if scores.ndim != 3:
        raise EvaluationInputError(f"scores must be (n_clips, n_classes, n_frames), got {scores.shape}")
    n_clips, n_classes, _ = scores.shape
    if len(filenames) != n_clips or len(class_names) != n_classes:
        raise EvaluationInputError(
            f"scores {scores.shape} do not match {len(filenames)} filenames and "
            f"{len(class_names)} class names"
        )
    windows = windows_per_class(median_window, n_classes)
    threshold, clip, label, start, stop = threshold_regions(scores, thresholds, windows)
    kept, onset, offset = regions_in_seconds(clip, start, stop, frame_step, durations, max_event_time)
    return event_tables(
        thresholds,
        threshold[kept],
        np.asarray(filenames, dtype=object)[clip[kept]],
        np.asarray(class_names, dtype=object)[label[kept]],
        onset[kept],
        offset[kept],
    )


def event_tables(
    thresholds: Sequence[float],
    threshold: np.ndarray,
    filename: np.ndarray,
    event_label: np.ndarray,
    onset: np.ndarray,
    offset: np.ndarray,
) -> dict[float, pd.DataFrame]:
    """{threshold: event table} from the events of all thresholds.

    Args:
        thresholds: (n_thresholds,) the keys.
        threshold: (n_events,) index in ``thresholds`` of each event's threshold.
        filename, event_label, onset, offset: (n_events,) the columns; each table keeps
            the order its events have here.
    """
    order = np.argsort(threshold.astype(np.int32), kind="stable")
    bounds = np.searchsorted(threshold[order], np.arange(len(thresholds) + 1))
    tables = {}
    for index, value in enumerate(thresholds):
        part = order[bounds[index] : bounds[index + 1]]
        table = pd.DataFrame(
            {"filename": filename[part], "onset": onset[part], "offset": offset[part], "event_label": event_label[part]}
        )
        table.attrs.update(source=f"predictions at threshold {value}", clean=True)
        tables[value] = table
    return tables


@dataclass(frozen=True)
class DecodedScores:
    """Events decoded from a {filename: scores} mapping at several thresholds, as arrays.

    Attributes:
        filenames: the clips, in the order ``clip`` indexes.
        thresholds: the thresholds, in the order ``threshold`` indexes.
        threshold, clip, label, onset, offset: (n_events,) each; ``label`` indexes the
            class names of the scores; seconds.
    """

    filenames: list[str]
    thresholds: list[float]
    threshold: np.ndarray
    clip: np.ndarray
    label: np.ndarray
    onset: np.ndarray
    offset: np.ndarray

    def tables(self, class_names: Sequence[str]) -> dict[float, pd.DataFrame]:
        """{threshold: event table}, events ordered by clip (in score order), class, onset."""
        filenames = np.asarray(self.filenames, dtype=object)
        labels = np.asarray(class_names, dtype=object)
        return event_tables(
            self.thresholds, self.threshold, filenames[self.clip], labels[self.label], self.onset, self.offset
        )

    def detections_per_class(self, n_classes: int) -> np.ndarray:
        """(n_classes,) number of events of each class, all thresholds together."""
        return np.bincount(self.label, minlength=n_classes)


def decode_mapping(
    scores: Mapping[str, np.ndarray],
    thresholds: Sequence[float],
    median_window: int | Sequence[int],
    frame_step: float,
    duration_of: Mapping[str, float] | None,
    max_event_time: float | None = None,
) -> DecodedScores:
    """``threshold_regions`` on a {filename: (n_classes, n_frames)} mapping (clips grouped
    by length), in seconds; events are clipped to ``duration_of[filename]`` when it is given,
    their times clamped to ``max_event_time`` when it is (``regions_in_seconds``)."""
    by_length: dict[int, list[str]] = {}
    for filename, clip_scores in scores.items():
        by_length.setdefault(np.shape(clip_scores)[-1], []).append(filename)
    filenames, parts = [], []
    for names in by_length.values():
        stacked = np.stack([np.asarray(scores[name], dtype=np.float64) for name in names])
        windows = windows_per_class(median_window, stacked.shape[1])
        threshold, clip, label, start, stop = threshold_regions(stacked, thresholds, windows)
        clip_durations = None if duration_of is None else np.array([duration_of[name] for name in names])
        kept, onset, offset = regions_in_seconds(clip, start, stop, frame_step, clip_durations, max_event_time)
        parts.append((threshold[kept], clip[kept] + len(filenames), label[kept], onset[kept], offset[kept]))
        filenames += names
    columns = [np.concatenate([part[i] for part in parts]) for i in range(5)]
    return DecodedScores(filenames, list(thresholds), *columns)


def median_filter_mapping(
    scores: Mapping[str, np.ndarray], median_window: int | Sequence[int]
) -> dict[str, np.ndarray]:
    """``median_filter_scores`` on a {filename: (n_classes, n_frames)} mapping, clips of one
    length filtered together."""
    by_length: dict[int, list[str]] = {}
    for filename, clip_scores in scores.items():
        by_length.setdefault(np.shape(clip_scores)[-1], []).append(filename)
    filtered = {}
    for filenames in by_length.values():
        stacked = np.stack([np.asarray(scores[name], dtype=np.float64) for name in filenames])
        filtered.update(zip(filenames, median_filter_scores(stacked, median_window)))
    return filtered


def decode_clip_scores(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    thresholds: Sequence[float],
    median_window: int | Sequence[int] = 7,
    frame_step: float = FRAME_STEP,
    max_event_time: float | None = None,
) -> dict[float, pd.DataFrame]:
    """The 2021 decoding of clips of any lengths at many thresholds at once.

    Args:
        scores: {filename: (n_classes, n_frames) probabilities}, each clip at its own length.
        class_names: (n_classes,) labels of the score rows.
        thresholds: decision thresholds (a frame is active where score > threshold).
        median_window: frames, one or (n_classes,), applied as 2021 did (binarise, then filter).
        frame_step: seconds per frame.
        max_event_time: seconds to which onsets and offsets are clamped (2021: audio_max_len).

    Returns:
        {threshold: event table (filename, onset, offset, event_label)}, events ordered by
        clip (in the order of ``scores``), class, onset.
    """
    filtered = median_filter_mapping(scores, median_window)
    decoded = decode_mapping(filtered, list(thresholds), 1, frame_step, None, max_event_time)
    position = {name: i for i, name in enumerate(scores)}
    rank = np.array([position[name] for name in decoded.filenames], dtype=np.int64)
    # clips were decoded grouped by length: back to the mapping's order (stable: class, onset kept)
    order = np.lexsort((rank[decoded.clip], decoded.threshold))
    reordered = DecodedScores(
        decoded.filenames, decoded.thresholds, decoded.threshold[order], decoded.clip[order],
        decoded.label[order], decoded.onset[order], decoded.offset[order],
    )
    return reordered.tables(class_names)


def decode_at_class_thresholds(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    thresholds: float | Sequence[float],
    median_window: int | Sequence[int] = 7,
    frame_step: float = FRAME_STEP,
    duration_of: Mapping[str, float] | None = None,
    max_event_time: float | None = None,
) -> pd.DataFrame:
    """One decoded output with a threshold (and a median window) per class.

    A median commutes with a threshold, so the scores are filtered once and then binarised
    class by class: the same events as the 2021 decoding of each class alone.

    Args:
        scores: {filename: (n_classes, n_frames) probabilities}.
        class_names: (n_classes,) labels of the score rows.
        thresholds: one, or (n_classes,) decision thresholds.
        median_window: frames, one or (n_classes,).
        frame_step: seconds per frame.
        duration_of: {filename: seconds}: events clipped to their clip when given.
        max_event_time: seconds to which onsets and offsets are clamped (2021: audio_max_len).

    Returns:
        Event table (filename, onset, offset, event_label), ordered by filename and onset.
    """
    thresholds = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(class_names),))
    active = {
        name: (values > thresholds[:, None]).astype(np.float32)
        for name, values in median_filter_mapping(scores, median_window).items()
    }
    table = decode_mapping(active, [0.5], 1, frame_step, duration_of, max_event_time).tables(class_names)[0.5]
    table = table.sort_values(["filename", "onset"], kind="stable", ignore_index=True)
    table.attrs.update(source="predictions at per-class thresholds", clean=True)
    return table
