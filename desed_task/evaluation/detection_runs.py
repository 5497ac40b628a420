"""Every detection that some decision threshold yields on frame scores (the run tree).

Thresholding one class's scores of one clip at ``theta`` (a frame is on where
``score >= theta``) gives runs: maximal intervals of on frames. As ``theta`` falls from
+inf, runs appear at local maxima, grow frame by frame and merge at local minima. Each
distinct run ``[start, stop)`` lives for ``theta`` in ``(death score, birth score]``: its
birth score is the lowest score inside it, its death score the higher of its two neighbour
frames (none at the clip's edges: it never dies). A statistic that sums a value over the
runs of a threshold is then +value at the run's birth and -value at its death, and
cumulative sums over the sorted scores give it at every threshold at once: this is how
sed_scores_eval's change points are found here, without a loop over thresholds.

Scores are compared through their rank among the sorted unique scores of their class
(``class_scores``), ranks of all classes numbered one after the other (global ranks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from desed_task.decoding.errors import EvaluationInputError


@dataclass(frozen=True)
class DetectionRuns:
    """The runs of every (clip, class) score row at every threshold.

    Attributes:
        clips: (n_clips,) clip names, in the order of the clip indices.
        class_names: (n_classes,) labels of the score rows.
        frame_step: seconds per frame; frame i covers [i * frame_step, (i + 1) * frame_step).
        n_frames: (n_clips,) frames per clip.
        class_scores: per class, (n_unique,) its sorted unique scores over all clips.
        rank_offset: (n_classes + 1,) global rank of each class's lowest score (and the total).
        row_top: (n_classes, n_clips) global rank of each row's highest score.
        clip, label: (n_runs,) clip and class index of each run.
        start, stop: (n_runs,) frames [start, stop) of each run.
        birth, death: (n_runs,) global ranks of the birth and death scores; death -1 for a
            run that never dies (it spans its whole clip).
    """

    clips: list[str]
    class_names: list[str]
    frame_step: float
    n_frames: np.ndarray
    class_scores: list[np.ndarray]
    rank_offset: np.ndarray
    row_top: np.ndarray
    clip: np.ndarray
    label: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    birth: np.ndarray
    death: np.ndarray

    def __len__(self) -> int:
        return int(self.birth.size)


def _block_minima(ranks: np.ndarray, n_levels: int) -> list[np.ndarray]:
    """Sparse table: level j holds min(ranks[i : i + 2**j]) (-1 past the end)."""
    levels = [ranks]
    for j in range(1, n_levels):
        half = 1 << (j - 1)
        level = np.full_like(ranks, -1)
        np.minimum(levels[-1][:-half], levels[-1][half:], out=level[:-half])
        levels.append(level)
    return levels


def _extend(
    levels: list[np.ndarray],
    edge: np.ndarray,
    target: np.ndarray,
    passes: Callable[[np.ndarray, np.ndarray], np.ndarray],
    leftward: bool,
) -> np.ndarray:
    """Move each ``edge`` over the longest block of frames that ``passes(block minimum,
    target)``: leftward, edge is an exclusive end and moves to the block's first frame;
    rightward, edge is the first frame and moves past the block. Galloping (blocks of 1, 2,
    4, ... frames) then binary descent, each step on the edges still moving."""
    edge = edge.copy()
    reach = np.zeros(edge.size, dtype=np.int8)  # the level at which galloping stopped
    moving = np.arange(edge.size)
    for j in range(len(levels)):
        step = 1 << j
        first = edge[moving] - step if leftward else edge[moving]
        ok = passes(levels[j][np.maximum(first, 0)], target[moving]) & (first >= 0)
        done = moving[~ok]
        reach[done] = j
        moving = moving[ok]
        edge[moving] += -step if leftward else step
        if not moving.size:
            break
    for j in range(int(reach.max(initial=0)) - 1, -1, -1):
        moving = np.flatnonzero(reach > j)
        step = 1 << j
        first = edge[moving] - step if leftward else edge[moving]
        ok = passes(levels[j][np.maximum(first, 0)], target[moving]) & (first >= 0)
        edge[moving[ok]] += -step if leftward else step
    return edge


def _row_runs(ranks: np.ndarray, n_levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs of one class's rows laid end to end.

    Args:
        ranks: (n,) int32 score ranks, -1 on separators (one first, one after each row).
        n_levels: sparse-table levels; 2**n_levels must exceed the longest row.

    Returns:
        birth, before, after: (n_runs,) positions of each run's leftmost lowest frame, of
        the frame before it and of the frame after it.
    """
    levels = _block_minima(ranks, n_levels)
    positions = np.flatnonzero(ranks >= 0)
    value = ranks[positions]
    # before: the last frame to the left not above the frame (a separator at worst)
    before = positions - 1
    search = np.flatnonzero(ranks[before] > value)
    before[search] = _extend(levels, positions[search], value[search], np.greater, leftward=True) - 1
    # one run per leftmost lowest frame: no equal score between the frame and its run's start
    canonical = ranks[before] < value
    positions, before, value = positions[canonical], before[canonical], value[canonical]
    # after: the first frame to the right below the frame
    after = positions + 1
    search = np.flatnonzero(ranks[after] >= value)
    after[search] = _extend(levels, after[search], value[search], np.greater_equal, leftward=False)
    return positions, before, after


def detection_runs(
    scores: Mapping[str, np.ndarray], class_names: Sequence[str], frame_step: float
) -> DetectionRuns:
    """All runs of all score rows at all thresholds.

    Args:
        scores: {clip: (n_classes, n_frames) scores}; any finite values, clips of any length.
        class_names: (n_classes,) labels of the score rows.
        frame_step: seconds per frame.

    Returns:
        the runs (``DetectionRuns``), clips in the order of ``scores``.
    """
    clips = list(scores)
    n_classes = len(class_names)
    if not clips:
        raise EvaluationInputError("no scores given")
    arrays = [np.asarray(scores[clip], dtype=np.float64) for clip in clips]
    for clip, values in zip(clips, arrays):
        if values.ndim != 2 or values.shape[0] != n_classes or values.shape[1] == 0:
            raise EvaluationInputError(
                f"scores of {clip}: expected shape ({n_classes}, n_frames > 0), got {values.shape}"
            )
    n_frames = np.array([a.shape[1] for a in arrays], dtype=np.int64)
    # class-major layout: each class's rows side by side, each row followed by a separator
    column_start = np.concatenate([[0], np.cumsum(n_frames + 1)[:-1]])
    width = int(n_frames.sum() + n_frames.size)
    blocks = np.full((n_classes, width), -np.inf)
    if (n_frames == n_frames[0]).all():
        blocks.reshape(n_classes, len(clips), -1)[:, :, :-1] = np.stack(arrays, axis=1)
    else:
        for start, values in zip(column_start, arrays):
            blocks[:, start:start + values.shape[1]] = values
    is_frame = np.ones(width, dtype=bool)
    is_frame[column_start + n_frames] = False
    if not np.isfinite(blocks[:, is_frame]).all():
        bad = next(clip for clip, values in zip(clips, arrays) if not np.isfinite(values).all())
        raise EvaluationInputError(f"scores of {bad}: NaN or infinite values")
    n_levels = max(1, int(np.ceil(np.log2(n_frames.max() + 1))))
    clip_of_column = np.repeat(np.arange(len(clips)), n_frames + 1)
    class_scores, parts, row_top = [], [], []
    rank_offset = np.zeros(n_classes + 1, dtype=np.int64)
    for k in range(n_classes):  # one class at a time: the sparse table stays in cache
        unique, inverse = np.unique(blocks[k, is_frame], return_inverse=True)
        ranks = np.full(width + 1, -1, dtype=np.int32)  # a separator in front of the first row
        ranks[1:][is_frame] = inverse
        birth, before, after = _row_runs(ranks, n_levels)
        clip = clip_of_column[birth - 1]
        first = 1 + column_start[clip]  # position of the row's frame 0
        offset = rank_offset[k]
        death = np.maximum(ranks[before], ranks[after]).astype(np.int64)
        death[death >= 0] += offset
        parts.append((clip, np.full(clip.size, k), before + 1 - first, after - first, ranks[birth] + offset, death))
        row_top.append(np.maximum.reduceat(ranks[1:], column_start) + offset)
        class_scores.append(unique)
        rank_offset[k + 1] = offset + unique.size
    if parts:
        clip, label, start, stop, birth, death = (np.concatenate(column) for column in zip(*parts))
    else:  # no class (e.g. every ground-truth class is without scores)
        clip, label, start, stop, birth, death = (np.zeros(0, np.int64) for _ in range(6))
    return DetectionRuns(
        clips=clips,
        class_names=list(class_names),
        frame_step=float(frame_step),
        n_frames=n_frames,
        class_scores=class_scores,
        rank_offset=rank_offset,
        row_top=np.stack(row_top) if row_top else np.zeros((0, len(clips)), np.int64),
        clip=clip,
        label=label,
        start=start,
        stop=stop,
        birth=birth,
        death=death,
    )


def with_undetected_classes(runs: DetectionRuns, names: Sequence[str]) -> DetectionRuns:
    """``runs`` with classes that have no scores at all appended: no score, no rank, no run,
    so no threshold ever detects them (each one's ROC is the origin alone, its TPR 0), while
    their ground-truth events still count in the other classes' cross-triggers.

    Args:
        runs: the runs of the scored classes.
        names: the classes to append (ground-truth classes the model has no scores for).

    Returns:
        the runs over ``runs.class_names + names``; ``row_top`` is -1 on the new rows.
    """
    if not names:
        return runs
    n_new = len(names)
    return DetectionRuns(
        clips=runs.clips,
        class_names=[*runs.class_names, *names],
        frame_step=runs.frame_step,
        n_frames=runs.n_frames,
        class_scores=[*runs.class_scores, *(np.zeros(0) for _ in names)],
        rank_offset=np.concatenate([runs.rank_offset, np.full(n_new, runs.rank_offset[-1])]),
        row_top=np.concatenate([runs.row_top, np.full((n_new, len(runs.clips)), -1, runs.row_top.dtype)]),
        clip=runs.clip,
        label=runs.label,
        start=runs.start,
        stop=runs.stop,
        birth=runs.birth,
        death=runs.death,
    )
