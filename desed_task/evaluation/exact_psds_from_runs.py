"""The exact (threshold-free) intersection-based PSD-ROC and PSDS computed from the detection
runs of the scores (``detection_runs``), equal to sed_scores_eval 0.0.4's
``intersection_based.psds`` (Ebbers et al., ICASSP 2022), in vectorised numpy. The inputs are
checked and encoded by ``exact_psds``, which calls ``exact_psds_from_runs``.

sed_scores_eval counts, per class and for every decision threshold (each unique score),
with every time rounded to 6 decimals as it does:
- a detection (a run of frames with score >= threshold) is relevant when its intersection
  with the class's ground truth of its clip is at least ``dtc`` of its length;
- false positives: detections not relevant;
- true positives: ground-truth events covered by relevant detections of their clip for at
  least ``gtc`` of their length (an event with ``gtc * length`` rounding to 0 counts as
  soon as the clip has a score at or above the threshold);
- cross-triggers towards another class ``o``: detections whose intersection with ``o``'s
  events of the clip (0 for a relevant one) is at least ``cttc`` of their length, counted
  only in clips with an event of ``o``.
TPR = TP / max(events, 1); eFPR = (FP / total duration + alpha_ct * mean over the other
classes of CT / max(their event seconds, 1e-12)) * 3600, per hour. Each class's ROC keeps
the points that raise the best TPR so far (by increasing eFPR), one per eFPR, up to
``max_efpr``; the PSD-ROC is mean - alpha_st * std over classes of these staircases on the
union of their eFPRs (clipped at 0), extended to ``max_efpr``; PSDS is its area divided by
``max_efpr``.

The statistics come from the runs of ``detection_runs``: per-run values at birth and death
ranks, summed from the top score down. Only thresholds whose FP rate alone stays within
``max_efpr`` can give a ROC point, so true positives and cross-triggers are only counted
for the runs born at or above the lowest such threshold of their class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from desed_task.evaluation.detection_runs import DetectionRuns
from desed_task.evaluation.encoding import EncodedEvents, same_key_pairs

SECONDS_PER_HOUR = 3600.0
TIME_DECIMALS = 6


@dataclass(frozen=True)
class ExactPSDSResult:
    """An exact PSDS with its curves (as sed_scores_eval's ``psds`` returns them).

    Attributes:
        value: the PSDS.
        class_psds: {class: PSDS of that class alone}.
        roc_etpr, roc_efpr: (n_points,) the PSD-ROC (eFPR per hour), ending at max_efpr.
        class_rocs: {class: (tpr, efpr)} per-class ROCs, each (n_class_points,), efpr increasing.
        settings: the scenario (dtc, gtc, cttc, alpha_ct, alpha_st, max_efpr).
    """

    value: float
    class_psds: dict[str, float]
    roc_etpr: np.ndarray
    roc_efpr: np.ndarray
    class_rocs: dict[str, tuple[np.ndarray, np.ndarray]]
    settings: dict[str, float]


def _rounded(values: np.ndarray) -> np.ndarray:
    return np.round(values, decimals=TIME_DECIMALS)


def _segment_sums(keys: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(keys, weights=weights, minlength=size) if keys.size else np.zeros(size)


def _counts_from_top(n_ranks: int, rank_offset: np.ndarray, up: np.ndarray, down: np.ndarray) -> np.ndarray:
    """(n_ranks,) number of items alive at each global rank: born at or above it (``up``
    ranks), not yet dead (``down`` ranks), counted within each class."""
    deltas = np.bincount(up, minlength=n_ranks) - np.bincount(down, minlength=n_ranks)
    from_top = np.concatenate([np.cumsum(deltas[::-1])[::-1], [0]])
    return from_top[:-1] - np.repeat(from_top[rank_offset[1:]], np.diff(rank_offset))


def _counts_at(ranks: np.ndarray, entry_rank: np.ndarray, entry_delta: np.ndarray) -> np.ndarray:
    """Sum of ``entry_delta`` over entries with rank >= each of ``ranks``."""
    order = np.argsort(entry_rank, kind="stable")
    cumulative = np.concatenate([[0], np.cumsum(entry_delta[order])])
    below = np.searchsorted(entry_rank[order], ranks, side="left")
    return cumulative[-1] - cumulative[below]


def _intersections(start: np.ndarray, stop: np.ndarray, onset: np.ndarray, offset: np.ndarray) -> np.ndarray:
    return np.maximum(np.minimum(stop, offset) - np.maximum(start, onset), 0.0)


def _true_positive_entries(
    runs: DetectionRuns,
    events: EncodedEvents,
    pair_event: np.ndarray,
    pair_run: np.ndarray,
    pair_overlap: np.ndarray,
    gtc: float,
    lowest: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(global rank, +-1) entries whose sums from the top give the TP counts."""
    needed = _rounded(gtc * (events.offset - events.onset))
    # sed_scores_eval: 0 >= 0 holds without any detection (from the clip's top score down; a
    # class without scores, ``with_undetected_classes``, has none)
    always = (needed <= 0) & (runs.row_top[events.label, events.clip] >= 0)
    ranks = [runs.row_top[events.label[always], events.clip[always]]]
    deltas = [np.ones(int(always.sum()), dtype=np.int64)]
    keep = ~always[pair_event]
    pair_event, pair_run, pair_overlap = pair_event[keep], pair_run[keep], pair_overlap[keep]
    death = runs.death[pair_run]
    dies = death >= lowest[runs.label[pair_run]]
    event = np.concatenate([pair_event, pair_event[dies]])
    rank = np.concatenate([runs.birth[pair_run], death[dies]])
    weight = np.concatenate([pair_overlap, -pair_overlap[dies]])
    if event.size:
        # coverage of each event by the relevant runs alive, from the top score down
        order = np.lexsort((-rank, event))
        event, rank, weight = event[order], rank[order], weight[order]
        cumulative = np.cumsum(weight)
        event_start = np.flatnonzero(np.r_[True, event[1:] != event[:-1]])
        base = np.repeat(np.r_[0.0, cumulative[event_start[1:] - 1]], np.diff(np.r_[event_start, event.size]))
        last = np.r_[(event[1:] != event[:-1]) | (rank[1:] != rank[:-1]), True]
        event, rank, coverage = event[last], rank[last], (cumulative - base)[last]
        detected = (_rounded(coverage) >= needed[event]).astype(np.int64)
        first = np.r_[True, event[1:] != event[:-1]]
        change = np.diff(detected, prepend=0)
        change[first] = detected[first]
        ranks.append(rank[change != 0])
        deltas.append(change[change != 0])
    return np.concatenate(ranks), np.concatenate(deltas)


def _cross_trigger_entries(
    runs: DetectionRuns,
    events: EncodedEvents,
    candidates: np.ndarray,
    relevant: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    cttc: float,
    lowest: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(global rank, other class, +-1) entries whose sums give the cross-trigger counts."""
    n_classes = len(runs.class_names)
    pair_run, pair_event = same_key_pairs(runs.clip[candidates], events.clip)
    pair_run = candidates[pair_run]
    other = events.label[pair_event]
    keep = other != runs.label[pair_run]
    pair_run, pair_event, other = pair_run[keep], pair_event[keep], other[keep]
    overlap = _intersections(start[pair_run], stop[pair_run], events.onset[pair_event], events.offset[pair_event])
    key, inverse = np.unique(pair_run * n_classes + other, return_inverse=True)
    run, other = np.divmod(key, n_classes)
    overlap = np.where(relevant[run], 0.0, _segment_sums(inverse, overlap, key.size))
    triggered = _rounded(overlap) >= _rounded(cttc * (stop[run] - start[run]))
    run, other = run[triggered], other[triggered]
    death = runs.death[run]
    dies = death >= lowest[runs.label[run]]
    ranks = np.concatenate([runs.birth[run], death[dies]])
    others = np.concatenate([other, other[dies]])
    deltas = np.concatenate([np.ones(run.size, np.int64), -np.ones(int(dies.sum()), np.int64)])
    return ranks, others, deltas


def _unique_cummax_sort(tpr: np.ndarray, efpr: np.ndarray, max_efpr: float) -> tuple[np.ndarray, np.ndarray]:
    """sed_scores_eval's ROC cleaning: sort by (eFPR, TPR), keep the points that raise the
    running best TPR, the last one of each eFPR, up to max_efpr."""
    order = np.lexsort((tpr, efpr))
    tpr, efpr = tpr[order], efpr[order]
    best = np.maximum.accumulate(tpr)
    keep = np.r_[0, np.flatnonzero(best[1:] > best[:-1]) + 1]
    tpr, efpr = tpr[keep], efpr[keep]
    efpr, last = np.unique(efpr[::-1], return_index=True)
    tpr = tpr[::-1][last]
    inside = efpr <= max_efpr
    cut = int(np.argmin(inside)) if not inside.all() else efpr.size
    return tpr[:cut], efpr[:cut]


def staircase_auc(y: np.ndarray, x: np.ndarray, max_x: float) -> float:
    """Area under the step curve y(x) (constant after each x) from x[0] to max_x,
    summed as sed_scores_eval does."""
    order = np.argsort(x)
    x, y = x[order], y[order]
    cut = int(np.argmax(np.r_[x > max_x, True]))
    x = np.concatenate([x[:cut], [max_x]])
    y = y[:cut]
    return float(sum(y * (x[1:] - x[:-1])))


def _interpolate_previous(x_new: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """y at the last x <= x_new (0 before x[0]), as interp1d(kind='previous') with
    fill_value=(0, y[-1])."""
    index = np.searchsorted(x, x_new, side="right") - 1
    return np.where(index >= 0, y[np.maximum(index, 0)], 0.0)


def psd_roc_from_class_rocs(
    class_rocs: list[tuple[np.ndarray, np.ndarray]], alpha_st: float, max_efpr: float
) -> tuple[np.ndarray, np.ndarray]:
    """PSD-ROC (etpr, efpr) from per-class (tpr, efpr) staircases, ending at max_efpr."""
    efpr = np.unique(np.sort(np.concatenate([roc_efpr for _, roc_efpr in class_rocs])))
    tprs = [_interpolate_previous(efpr, roc_efpr, roc_tpr) for roc_tpr, roc_efpr in class_rocs]
    etpr = np.maximum(np.mean(tprs, axis=0) - alpha_st * np.std(tprs, axis=0), 0.0)
    return np.r_[etpr, etpr[-1]], np.r_[efpr, max_efpr]


def exact_psds_from_runs(
    runs: DetectionRuns,
    events: EncodedEvents,
    clip_durations: np.ndarray,
    settings: Mapping[str, float],
) -> ExactPSDSResult:
    """The intersection-based PSDS at every threshold of the scores behind ``runs``.

    Args:
        runs: the runs of the score rows (``detection_runs``).
        events: ground-truth events, clip and label indices into ``runs.clips`` and
            ``runs.class_names``; for sed_scores_eval's exact figures, ordered by clip
            (the order event seconds are summed in).
        clip_durations: (n_clips,) seconds, in the order of ``runs.clips``.
        settings: the scenario: dtc, gtc, cttc (detection, ground-truth and cross-trigger
            tolerance criteria), alpha_ct, alpha_st (weights of the cross-trigger rate and of
            the class spread; cross-triggers are counted only when alpha_ct > 0) and
            max_efpr (end of the area, in eFPR per hour).
    """
    dtc, gtc, cttc = settings["dtc"], settings["gtc"], settings["cttc"]
    alpha_ct, alpha_st, max_efpr = settings["alpha_ct"], settings["alpha_st"], settings["max_efpr"]
    n_classes = len(runs.class_names)
    n_runs = len(runs)
    n_ranks = int(runs.rank_offset[-1])
    dataset_seconds = sum(float(d) for d in clip_durations)
    events_per_class = np.bincount(events.label, minlength=n_classes)
    seconds_per_class = np.bincount(events.label, weights=events.offset - events.onset, minlength=n_classes)
    start = runs.start * runs.frame_step
    stop = runs.stop * runs.frame_step

    # relevance (DTC) of every run: its intersection with its class's events of its clip
    run_row = runs.label * len(runs.clips) + runs.clip
    pair_event, pair_run = same_key_pairs(events.label * len(runs.clips) + events.clip, run_row)
    overlap = _intersections(start[pair_run], stop[pair_run], events.onset[pair_event], events.offset[pair_event])
    relevant = _rounded(_segment_sums(pair_run, overlap, n_runs)) >= _rounded(dtc * (stop - start))

    # false positives at every rank; the ranks whose FP rate alone stays within max_efpr
    false = ~relevant
    dies = false & (runs.death >= 0)
    fps = _counts_from_top(n_ranks, runs.rank_offset, runs.birth[false], runs.death[dies])
    fp_rate = fps / dataset_seconds
    candidate = fp_rate * SECONDS_PER_HOUR <= max_efpr
    class_of_rank = np.repeat(np.arange(n_classes), np.diff(runs.rank_offset))
    candidates = np.r_[np.flatnonzero(candidate), n_ranks]
    lowest = candidates[np.searchsorted(candidates, runs.rank_offset[:-1])]
    lowest = np.where(lowest < runs.rank_offset[1:], lowest, n_ranks)  # per class; n_ranks: none
    alive_above = runs.birth >= lowest[runs.label]

    used = relevant[pair_run] & alive_above[pair_run] & (overlap > 0)
    tp_rank, tp_delta = _true_positive_entries(
        runs, events, pair_event[used], pair_run[used], overlap[used], gtc, lowest
    )
    if alpha_ct > 0:
        ct_rank, ct_other, ct_delta = _cross_trigger_entries(
            runs, events, np.flatnonzero(alive_above), relevant, start, stop, cttc, lowest
        )

    class_rocs = []
    for k in range(n_classes):
        ranks = np.flatnonzero(candidate[runs.rank_offset[k]:runs.rank_offset[k + 1]]) + runs.rank_offset[k]
        in_class = class_of_rank[tp_rank] == k
        tps = _counts_at(ranks, tp_rank[in_class], tp_delta[in_class])
        tpr = tps / max(int(events_per_class[k]), 1)
        efpr = fp_rate[ranks]
        if alpha_ct > 0:
            in_class = class_of_rank[ct_rank] == k
            rates = []
            for o in range(n_classes):
                if o != k:
                    mine = in_class & (ct_other == o)
                    cts = _counts_at(ranks, ct_rank[mine], ct_delta[mine])
                    rates.append(cts / max(float(seconds_per_class[o]), 1e-12))
            if rates:
                efpr = efpr + alpha_ct * np.mean(rates, axis=0)
        efpr = efpr * SECONDS_PER_HOUR
        # the threshold above every score: nothing detected
        class_rocs.append(_unique_cummax_sort(np.r_[tpr, 0.0], np.r_[efpr, 0.0], max_efpr))

    etpr, efpr = psd_roc_from_class_rocs(class_rocs, alpha_st, max_efpr)
    class_psds = np.array([staircase_auc(tpr, fpr, max_efpr) / max_efpr for tpr, fpr in class_rocs])
    return ExactPSDSResult(
        value=float(staircase_auc(etpr, efpr, max_efpr) / max_efpr),
        class_psds={name: float(value) for name, value in zip(runs.class_names, class_psds)},
        roc_etpr=np.asarray(etpr),
        roc_efpr=np.asarray(efpr),
        class_rocs=dict(zip(runs.class_names, class_rocs)),
        settings=dict(settings),
    )
