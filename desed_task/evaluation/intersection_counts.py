"""Intersection-based detection counts (psds_eval 0.5.3 semantics) for many operating points at once.

For each operating point (a table of detections) psds_eval counts, per class:
- true positives: ground-truth events covered (gt_coverage summed over the detections
  that pass the DTC) by at least ``gtc``;
- cross-triggers towards class k: detections failing the DTC whose duration overlaps
  events of class k by at least ``cttc`` (summed over those events);
- false positives: detections failing the DTC that overlap their clip at all (psds_eval's
  injected "world" event spanning [0, duration]).
A detection passes the DTC when the fraction of it that overlaps same-class ground
truth (summed over those events) is at least ``dtc``. Overlaps are strict
(onset_a < offset_b and onset_b < offset_a); zero-length events are ignored, and so are
detections of a class outside the ground truth's (label -1): psds_eval counts only the
classes of its ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from desed_task.evaluation.encoding import EncodedEvents, same_key_pairs


@dataclass(frozen=True)
class ReferenceEvents:
    """Ground truth and clip durations, the form the counting needs.

    psds_eval adds one "world" event [0, duration] per clip of positive duration: a
    detection failing the DTC that overlaps it is a false positive. Its overlap needs no
    pairing (the detection's own clip), so world events are kept as ``clip_durations``.

    Attributes:
        events: ground-truth events, zero-length ones removed.
        clip_durations: (n_clips,) seconds.
        n_classes: number of real classes.
        events_per_class: (n_classes,) number of ground-truth events.
        seconds_per_class: (n_classes,) total ground-truth event duration, seconds.
        total_seconds: total duration of the clips, seconds.
    """

    events: EncodedEvents
    clip_durations: np.ndarray
    n_classes: int
    events_per_class: np.ndarray
    seconds_per_class: np.ndarray
    total_seconds: float


def build_reference(ground_truth: EncodedEvents, clip_durations: np.ndarray, n_classes: int) -> ReferenceEvents:
    """Reference events from encoded ground truth and (n_clips,) clip durations in seconds."""
    ground_truth = ground_truth.select(ground_truth.offset > ground_truth.onset)
    return ReferenceEvents(
        events=ground_truth,
        clip_durations=np.asarray(clip_durations, dtype=np.float64),
        n_classes=n_classes,
        events_per_class=np.bincount(ground_truth.label, minlength=n_classes),
        seconds_per_class=np.bincount(
            ground_truth.label, weights=ground_truth.offset - ground_truth.onset, minlength=n_classes
        ),
        total_seconds=float(clip_durations[clip_durations > 0].sum()),
    )


@dataclass(frozen=True)
class IntersectionCounts:
    """Counts per operating point.

    Attributes:
        true_positives: (n_ops, n_classes) ground-truth events detected.
        false_positives: (n_ops, n_classes) detections failing the DTC.
        cross_triggers: (n_ops, n_classes, n_classes) [op, detected class, gt class].
    """

    true_positives: np.ndarray
    false_positives: np.ndarray
    cross_triggers: np.ndarray


def _group_sums(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique keys and the sum of values per key."""
    unique, inverse = np.unique(keys, return_inverse=True)
    return unique, np.bincount(inverse, weights=values, minlength=unique.size)


@dataclass(frozen=True)
class IntersectionPairs:
    """Detections and the ground-truth events they overlap, in the same clip.

    Attributes:
        detections: the detections of positive length, of the ground truth's classes.
        operating_point: (n_detections,) int64 operating point of each detection.
        in_clip: (n_detections,) bool, the detection overlaps its clip's world event.
        det_index, ref_index: (n_pairs,) indices of overlapping pairs.
        det_precision: (n_pairs,) overlap / detection length.
        gt_coverage: (n_pairs,) overlap / reference event length.
        same_class: (n_pairs,) bool, detection and reference of one label.
    """

    detections: EncodedEvents
    operating_point: np.ndarray
    in_clip: np.ndarray
    det_index: np.ndarray
    ref_index: np.ndarray
    det_precision: np.ndarray
    gt_coverage: np.ndarray
    same_class: np.ndarray


def intersection_pairs(
    detections: EncodedEvents, operating_point: np.ndarray, reference: ReferenceEvents
) -> IntersectionPairs:
    """The overlaps of every detection with the reference events of its clip (what the
    counts of any dtc, gtc, cttc are made of: computed once for several scenarios)."""
    kept = (detections.offset > detections.onset) & (detections.label >= 0)
    detections, operating_point = detections.select(kept), operating_point[kept]
    ref = reference.events
    clip_duration = reference.clip_durations[detections.clip]
    in_clip = (clip_duration > 0) & (detections.onset < clip_duration) & (detections.offset > 0)
    det_index, ref_index = same_key_pairs(detections.clip, ref.clip)
    overlapping = np.flatnonzero(
        (detections.onset[det_index] < ref.offset[ref_index]) & (ref.onset[ref_index] < detections.offset[det_index])
    )
    det_index, ref_index = det_index[overlapping], ref_index[overlapping]
    det_onset, det_offset = detections.onset[det_index], detections.offset[det_index]
    ref_onset, ref_offset = ref.onset[ref_index], ref.offset[ref_index]
    overlap = np.minimum(det_offset, ref_offset) - np.maximum(det_onset, ref_onset)
    return IntersectionPairs(
        detections=detections,
        operating_point=operating_point,
        in_clip=in_clip,
        det_index=det_index,
        ref_index=ref_index,
        det_precision=overlap / (det_offset - det_onset),
        gt_coverage=overlap / (ref_offset - ref_onset),
        same_class=detections.label[det_index] == ref.label[ref_index],
    )


def count_intersections(
    detections: EncodedEvents | IntersectionPairs,
    operating_point: np.ndarray | None,
    n_operating_points: int,
    reference: ReferenceEvents,
    dtc: float,
    gtc: float,
    cttc: float,
) -> IntersectionCounts:
    """Count TPs, FPs and cross-triggers for all operating points in one pass.

    Args:
        detections: detections of all operating points, concatenated, or their
            ``intersection_pairs`` (then ``operating_point`` is not used).
        operating_point: (n_detections,) int64 index of each detection's operating point.
        n_operating_points: number of operating points.
        reference: ground truth and clip durations (``build_reference``).
        dtc, gtc, cttc: the detection tolerance, ground-truth intersection and
            cross-trigger tolerance criteria, fractions in [0, 1].
    """
    n_classes = reference.n_classes
    pairs = detections if isinstance(detections, IntersectionPairs) else intersection_pairs(
        detections, operating_point, reference
    )
    detections, operating_point, ref = pairs.detections, pairs.operating_point, reference.events
    det_index, ref_index, same_class = pairs.det_index, pairs.ref_index, pairs.same_class
    det_precision, gt_coverage = pairs.det_precision, pairs.gt_coverage

    n_detections = len(detections)
    has_same_class = np.bincount(det_index[same_class], minlength=n_detections) > 0
    precision_sum = np.bincount(
        det_index[same_class], weights=det_precision[same_class], minlength=n_detections
    )
    passes_dtc = has_same_class & (precision_sum >= dtc)

    # true positives: ground-truth events covered enough by DTC-passing detections
    tp_pair = same_class & passes_dtc[det_index]
    tp_key = operating_point[det_index[tp_pair]] * len(ref) + ref_index[tp_pair]
    coverage_sum = np.bincount(tp_key, weights=gt_coverage[tp_pair], minlength=n_operating_points * len(ref))
    detected_op, detected_ref = np.divmod(np.flatnonzero(coverage_sum >= gtc), len(ref))
    true_positives = np.bincount(
        detected_op * n_classes + ref.label[detected_ref], minlength=n_operating_points * n_classes
    ).reshape(n_operating_points, n_classes)

    # false positives: detections failing the DTC that overlap their clip (its world event)
    failing = ~passes_dtc
    false_positives = np.bincount(
        (operating_point * n_classes + detections.label)[failing & pairs.in_clip],
        minlength=n_operating_points * n_classes,
    ).reshape(n_operating_points, n_classes)

    # cross-triggers: detections failing the DTC, per other class they overlap enough
    ct_pair = ~same_class & failing[det_index]
    ct_key = det_index[ct_pair] * n_classes + ref.label[ref_index[ct_pair]]
    crossed_key, crossed_sum = _group_sums(ct_key, det_precision[ct_pair])
    crossed_det, crossed_label = np.divmod(crossed_key[crossed_sum >= cttc], n_classes)
    flat = (operating_point[crossed_det] * n_classes + detections.label[crossed_det]) * n_classes + crossed_label
    cross_triggers = np.bincount(flat, minlength=n_operating_points * n_classes * n_classes).reshape(
        n_operating_points, n_classes, n_classes
    )
    return IntersectionCounts(true_positives, false_positives, cross_triggers)
