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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from desed_task.evaluation.errors import EvaluationInputError


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


def _rank_rows(blocks: np.ndarray, is_frame: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Global ranks (int32) of (n_classes, width) scores; -1 on the separators between clips."""
    ranks = np.full(blocks.shape, -1, dtype=np.int32)
    class_scores = []
    offsets = [0]
    for k in range(blocks.shape[0]):
        unique, inverse = np.unique(blocks[k, is_frame], return_inverse=True)
        ranks[k, is_frame] = inverse + offsets[-1]
        offsets.append(offsets[-1] + unique.size)
        class_scores.append(unique)
    if offsets[-1] >= np.iinfo(np.int32).max:
        raise EvaluationInputError(f"{offsets[-1]} distinct scores: too many for one evaluation")
    return ranks, class_scores, np.asarray(offsets, dtype=np.int64)


def _block_minima(ranks: np.ndarray, n_levels: int) -> list[np.ndarray]:
    """Sparse table: level j holds min(ranks[i : i + 2**j]) (-1 past the end)."""
    levels = [ranks]
    for j in range(1, n_levels):
        half = 1 << (j - 1)
        level = np.full_like(ranks, -1)
        np.minimum(levels[-1][:-half], levels[-1][half:], out=level[:-half])
        levels.append(level)
    return levels


def _extend(levels: list[np.ndarray], edge: np.ndarray, target: np.ndarray, passes, leftward: bool) -> np.ndarray:
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
    arrays = []
    for clip in clips:
        values = np.asarray(scores[clip], dtype=np.float64)
        if values.ndim != 2 or values.shape[0] != n_classes or values.shape[1] == 0:
            raise EvaluationInputError(
                f"scores of {clip}: expected shape ({n_classes}, n_frames > 0), got {values.shape}"
            )
        if not np.isfinite(values).all():
            raise EvaluationInputError(f"scores of {clip}: NaN or infinite values")
        arrays.append(values)
    n_frames = np.array([a.shape[1] for a in arrays], dtype=np.int64)
    # class-major layout: each class's rows side by side, each row followed by a separator
    blocks = np.concatenate(
        [np.concatenate([a, np.full((n_classes, 1), -np.inf)], axis=1) for a in arrays], axis=1
    )
    width = blocks.shape[1]
    column_start = np.concatenate([[0], np.cumsum(n_frames + 1)[:-1]])
    is_frame = np.isfinite(blocks[0])
    ranks, class_scores, rank_offset = _rank_rows(blocks, is_frame)
    flat = np.concatenate([np.full(1, -1, dtype=np.int32), ranks.ravel()])  # a separator in front of the first row
    n_levels = max(1, int(np.ceil(np.log2(n_frames.max() + 1))))
    levels = _block_minima(flat, n_levels)

    positions = np.flatnonzero(flat >= 0)
    value = flat[positions]
    # before: the last frame to the left not above the frame (a separator at worst)
    before = positions - 1
    search = np.flatnonzero(flat[before] > value)
    before[search] = _extend(levels, positions[search], value[search], np.greater, leftward=True) - 1
    # one run per leftmost lowest frame: no equal score between the frame and its run's start
    canonical = flat[before] < value
    positions, before, value = positions[canonical], before[canonical], value[canonical]
    # after: the first frame to the right below the frame
    after = positions + 1
    search = np.flatnonzero(flat[after] >= value)
    after[search] = _extend(levels, after[search], value[search], np.greater_equal, leftward=False)

    label, column = np.divmod(positions - 1, width)
    clip = np.searchsorted(column_start, column, side="right") - 1
    first = 1 + label * width + column_start[clip]  # flat position of the row's frame 0
    row_ranks = ranks.reshape(n_classes, width)
    row_top = np.stack([
        np.maximum.reduceat(np.where(is_frame, row_ranks[k], -1), column_start) for k in range(n_classes)
    ])
    return DetectionRuns(
        clips=clips,
        class_names=list(class_names),
        frame_step=float(frame_step),
        n_frames=n_frames,
        class_scores=class_scores,
        rank_offset=rank_offset,
        row_top=row_top,
        clip=clip,
        label=label,
        start=before + 1 - first,
        stop=after - first,
        birth=flat[positions],
        death=np.maximum(flat[before], flat[after]),
    )
