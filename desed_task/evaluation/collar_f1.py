"""Collar-based (event-based) F1, sed_eval 0.2.1 ``EventBasedMetrics`` semantics.

An estimated event matches a reference event of the same clip and class when
|onset difference| <= t_collar and |offset difference| <= max(t_collar,
percentage_of_length x reference length). True positives are a maximum one-to-one
matching (sed_eval's "optimal" matching), found here for all clips and classes with a
single Hopcroft-Karp call on the block-diagonal match graph (less its lone edges).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from desed_task.evaluation.encoding import same_key_pairs
from desed_task.evaluation.f_measure import f1_from_counts, nan_mean
from desed_task.evaluation.sed_eval_inputs import prepare_sed_eval_inputs, scores_by_class


def matched_reference_events(reference, estimated, n_classes: int, t_collar: float, percentage_of_length: float) -> np.ndarray:
    """(n_reference,) bool: reference events matched by the maximum collar matching."""
    ref_index, est_index = same_key_pairs(
        reference.clip * n_classes + reference.label, estimated.clip * n_classes + estimated.label
    )
    ref_onset, ref_offset = reference.onset[ref_index], reference.offset[ref_index]
    offset_collar = np.maximum(t_collar, percentage_of_length * (ref_offset - ref_onset))
    hit = (np.abs(ref_onset - estimated.onset[est_index]) <= t_collar) & (
        np.abs(ref_offset - estimated.offset[est_index]) <= offset_collar
    )
    ref_hit, est_hit = ref_index[hit], est_index[hit]
    matched = np.zeros(len(reference), dtype=bool)
    # an edge alone at both ends is a component of its own, matched; on decoded outputs
    # nearly all are, and only the rest needs the matching (and scipy.sparse, 0.3 s to import)
    alone = (np.bincount(ref_hit, minlength=len(reference))[ref_hit] == 1) & (
        np.bincount(est_hit, minlength=len(estimated))[est_hit] == 1
    )
    matched[ref_hit[alone]] = True
    if alone.all():
        return matched
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    ref_rest, est_rest = ref_hit[~alone], est_hit[~alone]
    graph = csr_matrix(
        (np.ones(ref_rest.size, dtype=np.int8), (ref_rest, est_rest)), shape=(len(reference), len(estimated))
    )
    matched[maximum_bipartite_matching(graph, perm_type="column") >= 0] = True
    return matched


def collar_f1(
    predictions: pd.DataFrame,
    ground_truth: pd.DataFrame,
    t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
    *,
    durations: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Collar-based F1: ``"macro"`` (mean over classes with a defined F1), ``"micro"`` and per class.

    Args:
        predictions, ground_truth: event tables (filename, onset, offset, event_label).
        t_collar: onset (and minimum offset) tolerance, seconds.
        percentage_of_length: offset tolerance as a fraction of the reference event length.
        durations: the durations table, whose clips are the evaluated ones (a clip without
            ground-truth events need not be listed in the ground truth); without it, the
            ground truth's clips.

    An empty output scores 0 (sed_eval's ``empty_system_output_handling="zero_score"``).
    """
    inputs = prepare_sed_eval_inputs(predictions, ground_truth, durations)
    n_classes = len(inputs.classes)
    reference, estimated = inputs.reference, inputs.estimated
    matched = matched_reference_events(reference, estimated, n_classes, t_collar, percentage_of_length)
    true_positives = np.bincount(reference.label[matched], minlength=n_classes)
    n_reference = np.bincount(reference.label, minlength=n_classes)
    n_system = np.bincount(estimated.label, minlength=n_classes)
    class_f1 = f1_from_counts(true_positives, n_system, n_reference, empty_system_scores_zero=True)
    micro = f1_from_counts(true_positives.sum(), n_system.sum(), n_reference.sum(), True)
    return scores_by_class(inputs.classes, class_f1, nan_mean(class_f1), float(micro))
