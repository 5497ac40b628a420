"""Per-class median windows (and F1 thresholds) tuned on validation scores.

PSDS objectives (``psds1``, ``psds2``): the exact, threshold-free PSDS of the
median-filtered scores. The PSDS of several classes is not a sum of per-class terms (the
spread of the per-class TPRs is penalised, alpha_st = 1, and scenario 2 counts
cross-triggers), so the search has two stages, bounded in PSDS evaluations:

1. screening, one PSDS per window of the grid (all classes filtered alike): each class
   starts at the window with its best per-class PSDS (``class_psds``); the start is kept
   only if its global PSDS beats the best single window for all classes;
2. coordinate refinement on the global PSDS: for each class in turn, its next
   ``candidates`` best windows of stage 1 are tried with the other classes fixed, and a
   change is kept when the global PSDS rises; ``rounds`` passes.

That is len(windows) + 1 + rounds * n_classes * candidates PSDS evaluations (16 + 1 + 20
for the default grid of 10 classes), instead of the hundreds of a full coordinate search.

F1 objective (intersection-based F1 at dtc = gtc = 0.5, as the 2021 baseline reports it,
macro-averaged with 0 for a class without any true positive, see ``_macro``): a class's F1
depends on that class's output only, so the best (window, threshold) pair of each class is
found exactly by one count over the whole grid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from desed_task.decoding.decode import FRAME_STEP, regions_in_seconds, threshold_regions
from desed_task.decoding.errors import EvaluationInputError
from desed_task.decoding.median_filter import median_filter_scores
from desed_task.decoding.postprocessing_file import DEFAULT_THRESHOLD
from desed_task.evaluation.encoding import EncodedEvents
from desed_task.evaluation.exact_psds import exact_psds
from desed_task.evaluation.intersection_f1 import intersection_f1_per_operating_point
from desed_task.evaluation.intersection_inputs import prepare_intersection_inputs
from desed_task.evaluation.metrics import PSDS_SCENARIOS

DEFAULT_WINDOWS = tuple(range(1, 32, 2))  # odd windows 1..31 frames (64 ms .. 2 s)
DEFAULT_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2))  # 0.05 .. 0.95
WINDOW_2021 = 7


@dataclass(frozen=True)
class MedianTuning:
    """The tuned values, in the order of the class names given.

    Attributes:
        median_window: (n_classes,) frames.
        threshold: (n_classes,) F1 decision thresholds (0.5 unless the objective is f1).
        before: the objective with the 2021 post-processing (7 frames, threshold 0.5).
        after: the objective with the tuned values.
        evaluations: number of PSDS or F1-grid evaluations made.
    """

    median_window: tuple[int, ...]
    threshold: tuple[float, ...]
    before: float
    after: float
    evaluations: int


class _ScoreGroups:
    """Frame scores grouped by clip length, with their median-filtered versions cached.

    Args:
        scores: {filename: (n_classes, n_frames) probabilities}.
    """

    def __init__(self, scores: Mapping[str, np.ndarray]) -> None:
        by_length: dict[int, list[str]] = {}
        for name, values in scores.items():
            by_length.setdefault(np.shape(values)[-1], []).append(name)
        self.groups = [
            (names, np.stack([np.asarray(scores[n], dtype=np.float64) for n in names])) for names in by_length.values()
        ]
        self._filtered: dict[int, list[np.ndarray]] = {}

    def filtered(self, window: int) -> list[np.ndarray]:
        """(n_clips_of_group, n_classes, n_frames) scores filtered with ``window``, per group."""
        if window not in self._filtered:
            self._filtered[window] = [median_filter_scores(stacked, window) for _, stacked in self.groups]
        return self._filtered[window]

    def per_class(self, windows: Sequence[int]) -> dict[str, np.ndarray]:
        """{filename: (n_classes, n_frames)} with class c filtered by ``windows[c]``."""
        parts = [np.empty_like(stacked) for _, stacked in self.groups]
        for c, window in enumerate(windows):
            for part, filtered in zip(parts, self.filtered(int(window))):
                part[:, c] = filtered[:, c]
        return {name: part[i] for (names, _), part in zip(self.groups, parts) for i, name in enumerate(names)}


def exact_psds_of_frames(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    frame_step: float,
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    settings: Mapping[str, float],
):
    """``exact_psds`` of {filename: (n_classes, n_frames)} scores for one scenario."""
    return exact_psds(scores, class_names, frame_step, ground_truth, durations, **settings)


def _pick(values: np.ndarray, preferred: int) -> int:
    """Index of the maximum; ties go to the index nearest ``preferred`` (the 2021 setting)."""
    best = np.flatnonzero(values >= np.max(values) - 1e-12)
    return int(best[np.argmin(np.abs(best - preferred))])


def tune_median_psds(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    scenario: str = "psds1",
    windows: Sequence[int] = DEFAULT_WINDOWS,
    frame_step: float = FRAME_STEP,
    candidates: int = 2,
    rounds: int = 1,
    psds: Callable | None = None,
    progress: bool = True,
) -> MedianTuning:
    """Per-class median windows maximising the exact PSDS of ``scenario`` (module docstring).

    Args:
        scores: {filename: (n_classes, n_frames) probabilities} of the validation clips.
        class_names: (n_classes,) labels of the score rows; every one must have
            ground-truth events (leave the others out beforehand).
        ground_truth, durations: the validation event and durations tables.
        scenario: "psds1" or "psds2".
        windows: the grid of windows, in frames.
        frame_step: seconds per frame.
        candidates: windows tried per class and round in stage 2.
        rounds: passes of stage 2.
        psds: function (scores, class_names, frame_step, ground truth, durations,
            scenario settings) -> result with ``value`` and ``class_psds``; default
            ``exact_psds_of_frames``.
        progress: show a progress bar.
    """
    psds = psds or exact_psds_of_frames
    settings = PSDS_SCENARIOS[scenario]
    groups = _ScoreGroups(scores)
    windows = [int(w) for w in windows]
    n_classes = len(class_names)
    total = len(windows) + 1 + rounds * n_classes * min(candidates, len(windows) - 1)
    bar = tqdm(total=total, desc=f"tune median windows for {scenario}", unit="psds", disable=not progress)

    def evaluate(per_class_windows: Sequence[int]):
        result = psds(groups.per_class(per_class_windows), class_names, frame_step, ground_truth, durations, settings)
        bar.update()
        return result

    # stage 1: one PSDS per window; per-class PSDS rank the windows of each class
    class_psds = np.zeros((n_classes, len(windows)))
    uniform = np.zeros(len(windows))
    for j, window in enumerate(windows):
        result = evaluate([window] * n_classes)
        uniform[j] = result.value
        class_psds[:, j] = [result.class_psds.get(name, 0.0) for name in class_names]
    preferred = windows.index(WINDOW_2021) if WINDOW_2021 in windows else 0
    before = float(uniform[preferred]) if WINDOW_2021 in windows else float(evaluate([WINDOW_2021] * n_classes).value)
    current = [windows[_pick(class_psds[c], preferred)] for c in range(n_classes)]
    best = float(evaluate(current).value)
    best_uniform = _pick(uniform, preferred)
    if uniform[best_uniform] > best:
        current, best = [windows[best_uniform]] * n_classes, float(uniform[best_uniform])
    # stage 2: coordinate refinement on the global PSDS
    evaluations = len(windows) + 1
    for _ in range(rounds):
        for c in range(n_classes):
            ranked = [windows[j] for j in np.argsort(-class_psds[c], kind="stable") if windows[j] != current[c]]
            for window in ranked[:candidates]:
                trial = current.copy()
                trial[c] = window
                value = float(evaluate(trial).value)
                evaluations += 1
                if value > best + 1e-12:
                    current, best = trial, value
    bar.close()
    return MedianTuning(tuple(current), (DEFAULT_THRESHOLD,) * n_classes, before, best, evaluations)


def f1_grid(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    windows: Sequence[int],
    thresholds: Sequence[float],
    frame_step: float = FRAME_STEP,
    progress: bool = True,
) -> np.ndarray:
    """Intersection F1 (dtc = gtc = 0.5, cttc = 0.3) of every class at every (window, threshold).

    Decoding as the 2021 baseline (``decode_scores``): frames above the threshold, median
    filter, events clipped to the clip duration.

    Returns:
        (n_classes, n_windows, n_thresholds) F1; NaN where no event is detected (the
        2021 macro F1 leaves such classes out of its mean).
    """
    inputs = prepare_intersection_inputs(ground_truth, durations)
    groups = _ScoreGroups(scores)
    duration_of = dict(zip(durations["filename"], durations["duration"].astype(np.float64)))
    label_index = inputs.classes.get_indexer(list(class_names))
    if (label_index < 0).any():
        missing = [n for n, i in zip(class_names, label_index) if i < 0]
        raise EvaluationInputError(f"no ground-truth event of {', '.join(missing)}: leave those classes out of the tuning")
    n_ops = len(windows) * len(thresholds)
    parts: list[tuple] = []
    bar = tqdm(total=len(windows) * len(groups.groups), desc="tune median windows and thresholds for f1",
               unit="window", disable=not progress)
    for j, window in enumerate(windows):
        windows_array = np.full(len(class_names), int(window))
        for names, stacked in groups.groups:
            clip_index = inputs.clips.get_indexer(names)
            clip_end = np.array([duration_of.get(n, np.inf) for n in names])
            threshold, clip, label, start, stop = threshold_regions(stacked, thresholds, windows_array)
            kept, onset, offset = regions_in_seconds(clip, start, stop, frame_step, clip_end)
            kept &= clip_index[clip] >= 0
            op = j * len(thresholds) + threshold[kept]
            parts.append((clip_index[clip][kept], label_index[label][kept], onset[kept], offset[kept], op))
            bar.update()
    bar.close()
    f1 = per_class_f1(inputs, parts, n_ops, label_index)
    return f1.T.reshape(len(class_names), len(windows), len(thresholds))


def per_class_f1(inputs, parts: list[tuple], n_ops: int, label_index: np.ndarray) -> np.ndarray:
    """Intersection F1 (dtc = gtc = 0.5, cttc = 0.3) per operating point and class, as the
    evaluation reports it (``intersection_f1_per_operating_point``).

    Args:
        inputs: ``prepare_intersection_inputs`` of the ground truth.
        parts: (clip index, label index, onset, offset, operating point) arrays of detections.
        n_ops: number of operating points.
        label_index: (n_classes,) index of each class in ``inputs.classes``.

    Returns:
        (n_ops, n_classes) F1, NaN where a class has no true positive.
    """
    detections = EncodedEvents(*(np.concatenate([p[i] for p in parts]).astype(t) for i, t in
                                 enumerate((np.int64, np.int64, np.float64, np.float64))))
    operating_point = np.concatenate([p[4] for p in parts]).astype(np.int64)
    return intersection_f1_per_operating_point(inputs, detections, operating_point, n_ops)[:, label_index]


def _macro(f1: np.ndarray) -> float:
    """The macro F1 with 0 for classes without a true positive (NaN in ``f1``).

    The 2021 figure (psds_eval) leaves such classes out of its mean; maximised, that mean
    would silence every class but the best one, so the tuning counts them as 0.
    """
    return float(np.nan_to_num(f1).mean()) if f1.size else 0.0


def tune_median_f1(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    windows: Sequence[int] = DEFAULT_WINDOWS,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    frame_step: float = FRAME_STEP,
    progress: bool = True,
) -> MedianTuning:
    """Per-class (median window, threshold) maximising each class's intersection F1, hence
    the macro F1 (exact on the grid: the per-class F1s are independent)."""
    windows = [int(w) for w in windows]
    thresholds = sorted({float(t) for t in thresholds} | {DEFAULT_THRESHOLD})
    grid_windows = sorted(set(windows) | {WINDOW_2021})
    f1 = f1_grid(scores, class_names, ground_truth, durations, grid_windows, thresholds, frame_step, progress)
    n_windows, n_thresholds = len(grid_windows), len(thresholds)
    preferred_window, preferred_threshold = grid_windows.index(WINDOW_2021), thresholds.index(DEFAULT_THRESHOLD)
    preferred = preferred_window * n_thresholds + preferred_threshold
    flat = np.nan_to_num(f1.reshape(len(class_names), -1))
    searched = np.array([w in windows for w in grid_windows]).repeat(n_thresholds)
    window_of, threshold_of = np.divmod(np.arange(flat.shape[1]), n_thresholds)
    # ties: nearest the 2021 window, then nearest the 2021 threshold
    distance = np.abs(window_of - preferred_window) * n_thresholds + np.abs(threshold_of - preferred_threshold)
    chosen = []
    for c in range(len(class_names)):
        candidates = np.where(searched, flat[c], -np.inf)
        best = np.flatnonzero(candidates >= candidates.max() - 1e-12)
        chosen.append(int(best[np.argmin(distance[best])]))
    by_class = f1.reshape(len(class_names), -1)
    before, after = _macro(by_class[:, preferred]), _macro(by_class[np.arange(len(chosen)), chosen])
    return MedianTuning(
        tuple(grid_windows[i // n_thresholds] for i in chosen),
        tuple(thresholds[i % n_thresholds] for i in chosen),
        before, after, n_windows * n_thresholds,
    )
