"""Frame probabilities to event lists at many thresholds at once (2021 baseline semantics).

The 2021 baseline, per clip and threshold: ``pred > threshold``, then
``scipy.ndimage.median_filter(pred, (window, 1))`` over time (mode 'reflect'), then
each contiguous run of active frames [start, stop) becomes the event
(start * frame_step, stop * frame_step) seconds, clipped to the clip. Here the same is
done for all clips and classes of one threshold in a few array operations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from desed_task.evaluation.errors import EvaluationInputError

FRAME_STEP = 256 / 16000 * 4  # s: hop length / sample rate x CRNN temporal pooling = 0.064


def median_filter_binary(active: np.ndarray, window: int) -> np.ndarray:
    """Median filter of a boolean array along its last axis.

    Same output as ``scipy.ndimage.median_filter`` with size ``window`` along that axis
    and mode 'reflect' (edge frames mirrored, edge included): a frame is active when at
    least ``window - window // 2`` frames of its window are (the scipy rank for even
    windows too).

    Args:
        active: (..., n_frames) bool.
        window: window length in frames, in [1, 255].

    Returns:
        (..., n_frames) bool.
    """
    if window <= 1:
        return active
    left = window // 2
    right = window - 1 - left
    n_frames = active.shape[-1]
    # scipy 'reflect' extension (d c b a | a b c d | d c b a), periodic with period 2 n_frames
    position = np.arange(-left, n_frames + right) % (2 * n_frames)
    position = np.where(position < n_frames, position, 2 * n_frames - 1 - position)
    padded = active[..., position]
    # running counts modulo 256: differences stay exact for windows below 256, and uint8 is fast
    running = np.cumsum(padded, axis=-1, dtype=np.uint8)
    running = np.concatenate([np.zeros_like(running[..., :1]), running], axis=-1)
    count = running[..., window:] - running[..., :-window]
    return count >= window - window // 2


def median_filter_scores(scores: np.ndarray, median_window: int | Sequence[int]) -> np.ndarray:
    """Median filter of frame scores along time, one window for all classes or one per class.

    ``scipy.ndimage.median_filter`` with size (window, 1) on each clip's (frames, classes)
    scores, mode 'reflect', as the later DESED recipes filter scores before sed_scores_eval.
    Thresholding the filtered scores gives the 2021 decoding (filtering the binarised
    scores): a median commutes with a threshold.

    Args:
        scores: (..., n_classes, n_frames) probabilities.
        median_window: window length in frames, one int or (n_classes,) ints in [1, 255].

    Returns:
        (..., n_classes, n_frames) float array, the same dtype as ``scores``.
    """
    from scipy.ndimage import median_filter

    scores = np.asarray(scores)
    windows = _windows_per_class(median_window, scores.shape[-2])
    filtered = scores.copy()
    for window in np.unique(windows):
        if window > 1:
            selected = windows == window
            size = (1,) * (scores.ndim - 1) + (int(window),)
            filtered[..., selected, :] = median_filter(scores[..., selected, :], size=size, mode="reflect")
    return filtered


def _windows_per_class(median_window: int | Sequence[int], n_classes: int) -> np.ndarray:
    windows = np.broadcast_to(np.asarray(median_window, dtype=np.int64), (n_classes,))
    if (windows < 1).any() or (windows > 255).any():
        raise EvaluationInputError(f"median_window must be in [1, 255], got {median_window}")
    return windows


def active_regions(
    scores: np.ndarray, threshold: float, windows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous active regions after binarising and median filtering.

    Args:
        scores: (n_clips, n_classes, n_frames) probabilities.
        threshold: a frame is active where ``score > threshold``.
        windows: (n_classes,) median-filter window per class, in frames.

    Returns:
        clip, label, start, stop: each (n_regions,) int64, ordered by clip, class, start;
        a region covers frames [start, stop).
    """
    active = scores > threshold
    for window in np.unique(windows):
        selected = windows == window
        if window > 1:
            active[:, selected] = median_filter_binary(active[:, selected], int(window))
    edges = np.diff(active.view(np.int8), axis=-1, prepend=0, append=0)
    changes = np.flatnonzero(edges)
    rises = edges.ravel()[changes] == 1  # rises and falls alternate along each (clip, class) row
    clip, label, start = np.unravel_index(changes[rises], edges.shape)
    stop = np.unravel_index(changes[~rises], edges.shape)[2]
    return clip, label, start, stop


def decode_scores(
    scores: np.ndarray,
    filenames: Sequence[str],
    class_names: Sequence[str],
    thresholds: Sequence[float],
    median_window: int | Sequence[int] = 7,
    frame_step: float = FRAME_STEP,
    durations: np.ndarray | None = None,
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
            [0, duration] and dropped when nothing is left. Without it, nothing is clipped
            beyond [0, n_frames * frame_step] (the 2021 bound of 10 s is never reached).

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
    windows = _windows_per_class(median_window, n_classes)
    filenames_array = np.asarray(filenames, dtype=object)
    class_array = np.asarray(class_names, dtype=object)
    frames_per_second = 1.0 / frame_step  # f / 15.625 rounds like the 2021 f * 4 / 62.5
    decoded = {}
    for threshold in thresholds:
        clip, label, start, stop = active_regions(scores, threshold, windows)
        onset = np.maximum(start / frames_per_second, 0.0)
        offset = stop / frames_per_second
        if durations is not None:
            clip_end = np.asarray(durations, dtype=np.float64)[clip]
            onset, offset = np.minimum(onset, clip_end), np.minimum(offset, clip_end)
            kept = offset > onset
            clip, label, onset, offset = clip[kept], label[kept], onset[kept], offset[kept]
        table = pd.DataFrame(
            {
                "filename": filenames_array[clip],
                "onset": onset,
                "offset": offset,
                "event_label": class_array[label],
            }
        )
        table.attrs.update(source=f"predictions at threshold {threshold}", clean=True)
        decoded[threshold] = table
    return decoded
