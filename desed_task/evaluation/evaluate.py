"""The evaluation stages (operating points -> PSDS, one output -> F1s, scores -> exact PSDS)
and ``evaluate_scores``, which runs them all from frame scores. The command line runs
the same stages. Every stage evaluates the clips of the durations table and scores
detections of classes without ground truth as the 2021 tools did (see ``tables``); the
warning about them (or the refusal) is given once, by ``evaluate_scores`` or the command
line, not by each stage."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from desed_task.decoding.decode import (
    FRAME_STEP,
    DecodedScores,
    decode_at_class_thresholds,
    decode_mapping,
    median_filter_mapping,
)
from desed_task.decoding.errors import EvaluationInputError
from desed_task.decoding.score_files import write_score_folders
from desed_task.evaluation.encoding import EncodedEvents
from desed_task.evaluation.exact_psds import exact_psds_scenarios
from desed_task.evaluation.intersection_inputs import (
    IntersectionInputs,
    prepare_intersection_inputs,
)
from desed_task.evaluation.metrics import (
    F1_THRESHOLD,
    PSDS_SCENARIOS,
    describe_left_out,
    left_out_of_macros,
    output_metrics,
    threshold_grid,
    threshold_name,
)
from desed_task.evaluation.plots import plot_exact_psds, plot_psds
from desed_task.evaluation.psds import (
    PSDSResult,
    psds_scenarios_from_detections,
    psds_scenarios_from_operating_points,
)
from desed_task.evaluation.tables import (
    IN_F1,
    IN_PSDS,
    absent_class_counts,
    check_clips,
    clean_durations,
    clean_event_table,
    events_only,
    report_absent_classes,
    report_unscored_classes,
    source_of,
)

log = logging.getLogger(__name__)


def _write_tsv(table: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False, float_format="%.6g")


def evaluate_operating_points(
    operating_points: Mapping[float, pd.DataFrame],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    save_dir: Path | None = None,
) -> dict[str, float]:
    """PSDS scenarios 1 and 2 from decoded operating points: {"psds1": ..., "psds2": ...}.

    With ``save_dir``: ``psds_per_class.tsv`` (per-class area under each scenario's
    staircase), ``<scenario>_operating_points.tsv`` (per-class TPR/FPR/eFPR per
    threshold) and the PSD-ROC PNGs.
    """
    results = psds_scenarios_from_operating_points(operating_points, ground_truth, durations, PSDS_SCENARIOS)
    return _report_psds(results, save_dir)


def _report_psds(results: Mapping[str, PSDSResult], save_dir: Path | None) -> dict[str, float]:
    """The PSDS values; with ``save_dir``, their tables and plots (see ``evaluate_operating_points``)."""
    if save_dir is not None:
        save_dir = Path(save_dir)
        per_class = pd.DataFrame({name: result.class_psds for name, result in results.items()})
        _write_tsv(per_class.rename_axis("event_label").reset_index(), save_dir / "psds_per_class.tsv")
        for name, result in results.items():
            _write_tsv(result.per_class_table(), save_dir / f"{name}_operating_points.tsv")
            plot_psds(result, save_dir, name)
    return {name: result.value for name, result in results.items()}


def evaluate_predictions(
    predictions: pd.DataFrame,
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    save_dir: Path | None = None,
    macro_left_out: dict[str, list[str]] | None = None,
) -> dict[str, float]:
    """The metrics of one output (those of ``metrics.METRICS`` with source ``OUTPUT``:
    intersection F1 with dtc 0.5, gtc 0.5, cttc 0.3, collar F1, segment F1).

    A macro F1 is the mean over the classes with a defined F1 (psds_eval's and sed_eval's rule);
    the classes it leaves out are named in one warning and, given ``macro_left_out``, written
    there ({macro metric name: sorted classes}, ``metrics.left_out_of_macros``).

    With ``save_dir``: ``f1_per_class.tsv``.
    """
    metrics = output_metrics()
    per_class: dict[str, dict[str, float]] = {}
    for metric in metrics:
        if metric.column not in per_class:
            per_class[metric.column] = metric.per_class(predictions, ground_truth, durations)
    left_out = left_out_of_macros(per_class)
    n_classes = {m.name: len(set(per_class[m.column]) - {"macro", "micro"}) for m in metrics}
    if any(left_out.values()):
        log.warning(
            "%s: macro F1s average the classes with a defined F1 (as psds_eval and sed_eval): %s",
            source_of(predictions, "the F1 output"), describe_left_out(left_out, n_classes),
        )
    if macro_left_out is not None:
        macro_left_out.update(left_out)
    if save_dir is not None:
        table = pd.DataFrame(per_class).rename_axis("event_label")
        _write_tsv(table.reset_index(), Path(save_dir) / "f1_per_class.tsv")
    return {metric.name: per_class[metric.column][metric.average] for metric in metrics}


def evaluate_exact(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    frame_step: float,
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    save_dir: Path | None = None,
    reference: bool = False,
) -> dict[str, float]:
    """Exact PSDS scenarios 1 and 2 from frame scores ({filename: (n_classes, n_frames)});
    ``reference``: computed by sed_scores_eval instead of this package.

    With ``save_dir``: ``psds_exact_per_class.tsv`` and the PSD-ROC PNGs.
    """
    scenarios = {f"{name}_exact": settings for name, settings in PSDS_SCENARIOS.items()}
    results = exact_psds_scenarios(scores, class_names, frame_step, ground_truth, durations, scenarios, reference)
    if save_dir is not None:
        save_dir = Path(save_dir)
        per_class = pd.DataFrame({name: result.class_psds for name, result in results.items()})
        _write_tsv(per_class.rename_axis("event_label").reset_index(), save_dir / "psds_exact_per_class.tsv")
        for name, result in results.items():
            plot_exact_psds(result, save_dir, name)
    return {name: result.value for name, result in results.items()}


def with_unscored_clips(durations: pd.DataFrame, unscored_durations: pd.DataFrame | None) -> pd.DataFrame:
    """The durations table of the psds_eval-style PSDS: the clips scored (``durations``) and
    those left out without events (``unscored_durations``, see ``evaluate_scores``), after them."""
    durations = clean_durations(durations)
    if unscored_durations is None or not len(unscored_durations):
        return durations
    combined = pd.concat([durations, clean_durations(unscored_durations)], ignore_index=True)
    combined.attrs.update(durations.attrs)
    return clean_durations(combined.drop_duplicates("filename", keep="first").reset_index(drop=True))


def evaluate_scores(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    n_thresholds: int = 50,
    median_window: int | Sequence[int] = 7,
    frame_step: float = FRAME_STEP,
    save_dir: Path | None = None,
    clip_to_durations: bool = False,
    reference: bool = False,
    f1_thresholds: Sequence[float] | None = None,
    max_event_time: float | None = None,
    strict_classes: bool = False,
    macro_left_out: dict[str, list[str]] | None = None,
    unscored_durations: pd.DataFrame | None = None,
) -> dict[str, float]:
    """All the 2021 metrics from frame scores.

    Args:
        scores: {clip filename (e.g. "Y00abc.wav"): (n_classes, n_frames) probabilities},
            one per clip of ``durations``; frame i covers [i * frame_step, (i + 1) * frame_step)
            seconds.
        class_names: (n_classes,) labels of the score rows.
        ground_truth: event table; a clip of ``durations`` without events may have an
            empty-label row or none.
        durations: table with filename and duration (seconds): the evaluated clips.
        n_thresholds: operating points for psds1/psds2: 1/(2n), 3/(2n), ..., 1 - 1/(2n).
        median_window: median filter length in frames (one, or one per class), applied
            before decoding (as 2021) and to the scores of the exact PSDS.
        frame_step: seconds per frame.
        save_dir: where to write decoded predictions, the raw and median-filtered frame
            scores (``scores/raw/``, ``scores/filtered/``, sed_scores_eval layout),
            per-class tables and PSD-ROC plots.
        clip_to_durations: clip decoded events to their clip's duration, dropping those
            left empty (not done in 2021, which decoded every output frame).
        reference: the exact PSDS computed by sed_scores_eval (slow) instead of this package.
        f1_thresholds: (n_classes,) decision thresholds of the F1 output (tuned
            post-processing); default 0.5 for all classes (2021). The file keeps the name
            ``predictions_th_0.5.tsv``.
        max_event_time: seconds to which decoded onsets and offsets are clamped (2021:
            ``data.audio_max_len``; None: not clamped).
        strict_classes: refuse detections of a class without ground-truth events; else they
            are scored as psds_eval and sed_eval score them, in one warning
            (``tables.report_absent_classes``), and that class's scores are left out of the
            exact PSDS. Ground-truth classes without scores (not in ``class_names``): refused
            with ``strict_classes``, else scored as never detected, in one warning
            (``tables.report_unscored_classes``).
        macro_left_out: filled with the classes each macro F1 leaves out
            (``evaluate_predictions``).
        unscored_durations: table with filename and duration (seconds) of clips without
            ground-truth events that were left out and not scored, whose durations still count
            in the psds_eval-style PSDS (psds1, psds2), as 2023's psds_eval metadata counted
            the dev-test clips its dataset had dropped (``data.drop_clips_without_events``);
            the exact PSDS and the F1s leave them out, as 2023's sed_scores_eval and F1s did.

    Returns:
        {name: value} of ``metrics.METRICS``, in that order: psds1, psds2, psds1_exact,
        psds2_exact, intersection_f1_macro, collar_f1_macro, collar_f1_micro,
        segment_f1_macro (the F1s at threshold 0.5).
    """
    if not scores:
        raise EvaluationInputError("no scores given")
    ground_truth = clean_event_table(ground_truth)
    durations = clean_durations(durations)
    check_clips(scores, durations, "scores")
    report_unscored_classes(ground_truth, class_names, strict_classes)
    unscored = [name for name in durations["filename"] if name not in scores]
    if unscored:
        raise EvaluationInputError(
            f"scores: {len(unscored)} clip(s) of {source_of(durations, 'the durations table')} have no "
            f"scores (first: {unscored[0]}); score every clip listed there"
        )
    duration_of = dict(zip(durations["filename"], durations["duration"])) if clip_to_durations else None
    # a median commutes with a threshold: filtering the scores once and binarising them gives
    # the 2021 decoding (binarise, then filter) at every threshold, and the scores of the exact
    # PSDS, its threshold-free limit
    filtered = median_filter_mapping(scores, median_window)
    thresholds = threshold_grid(n_thresholds)
    decoded = decode_mapping(filtered, thresholds, 1, frame_step, duration_of, max_event_time)
    if f1_thresholds is None:
        at_f1_threshold = decode_mapping(
            filtered, [F1_THRESHOLD], 1, frame_step, duration_of, max_event_time
        ).tables(class_names)[F1_THRESHOLD]
    else:
        at_f1_threshold = decode_at_class_thresholds(
            filtered, class_names, f1_thresholds, 1, frame_step, duration_of, max_event_time
        )
    present = set(events_only(ground_truth)["event_label"])
    _report_absent_score_classes(decoded, at_f1_threshold, class_names, ground_truth, present, strict_classes)
    if save_dir is not None:
        save_dir = Path(save_dir)
        for threshold, table in decoded.tables(class_names).items():
            _write_tsv(table, save_dir / "operating_points" / f"predictions_th_{threshold_name(threshold)}.tsv")
        _write_tsv(at_f1_threshold, save_dir / f"predictions_th_{threshold_name(F1_THRESHOLD)}.tsv")
        write_score_folders(scores, filtered, class_names, frame_step, save_dir / "scores")

    # the operating points go to the PSDS as arrays: 1.5 M events of 50 thresholds on DESED's
    # dev-test set, whose tables would take longer to build and check than the PSDS itself
    inputs = prepare_intersection_inputs(ground_truth, durations)
    psds_inputs = inputs
    if unscored_durations is not None and len(unscored_durations):
        psds_inputs = prepare_intersection_inputs(ground_truth, with_unscored_clips(durations, unscored_durations))
    psds = psds_scenarios_from_detections(
        *_encoded(decoded, psds_inputs, class_names), thresholds, psds_inputs, PSDS_SCENARIOS
    )
    metrics = _report_psds(psds, save_dir)
    # a class without ground truth has no PSDS of its own: its scores are left out (psds_eval
    # ignores its detections; sed_scores_eval refuses it)
    rows = [c for c, name in enumerate(class_names) if name in present]
    exact_scores = filtered if len(rows) == len(class_names) else {k: v[rows] for k, v in filtered.items()}
    exact_classes = [class_names[c] for c in rows]
    metrics |= evaluate_exact(exact_scores, exact_classes, frame_step, ground_truth, durations, save_dir, reference)
    metrics |= evaluate_predictions(at_f1_threshold, ground_truth, durations, save_dir, macro_left_out)
    return metrics


def _encoded(
    decoded: DecodedScores, inputs: IntersectionInputs, class_names: Sequence[str]
) -> tuple[EncodedEvents, np.ndarray]:
    """The decoded events in the indices of ``inputs`` and their thresholds' indices; a class
    without ground-truth events gets label -1 (ignored by the counts, as psds_eval)."""
    label_index = inputs.classes.get_indexer(list(class_names)).astype(np.int64)
    clip_index = inputs.clips.get_indexer(decoded.filenames).astype(np.int64)
    events = EncodedEvents(clip_index[decoded.clip], label_index[decoded.label], decoded.onset, decoded.offset)
    return events, decoded.threshold.astype(np.int64)


def _report_absent_score_classes(
    decoded: DecodedScores,
    at_f1_threshold: pd.DataFrame,
    class_names: Sequence[str],
    ground_truth: pd.DataFrame,
    present: set,
    strict: bool,
) -> None:
    """``report_absent_classes`` for the detections decoded from scores: those of the
    operating points (PSDS) and of the F1 output."""
    per_class = decoded.detections_per_class(len(class_names))
    counts = {name: int(per_class[c]) for c, name in enumerate(class_names) if name not in present and per_class[c]}
    if not counts:
        return
    at_f1 = absent_class_counts(at_f1_threshold["event_label"], ground_truth)
    consequence = (
        f"over the {len(decoded.thresholds)} operating points they are {IN_PSDS}, and their scores left out of the "
        f"exact PSDS; the {sum(at_f1.values())} of the F1 output are {IN_F1}"
    )
    report_absent_classes(counts, ground_truth, "detections decoded from the scores", strict, consequence)
