"""``python -m desed_task.evaluation``: the 2021 metrics from files.

The evaluated clips are those of ``--durations``. The last line of standard output is one
JSON object with the metrics computed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from desed_task.evaluation.errors import EvaluationInputError
from desed_task.evaluation.evaluate import (
    evaluate_operating_points,
    evaluate_predictions,
    evaluate_scores,
)
from desed_task.evaluation.postprocessed import evaluate_postprocessed
from desed_task.evaluation.postprocessing_file import load_postprocessing
from desed_task.evaluation.score_files import read_score_folder
from desed_task.evaluation.tables import (
    IN_F1,
    IN_PSDS,
    absent_class_counts,
    read_durations,
    read_event_table,
    report_absent_classes,
)


def read_operating_points(folder: str | Path) -> dict:
    """{threshold: table} from the ``predictions_th_<threshold>.tsv`` files of a folder."""
    folder = Path(folder)
    operating_points = {}
    for path in sorted(folder.glob("predictions_th_*.tsv")):
        text = path.stem.removeprefix("predictions_th_")
        try:
            threshold = float(text)
        except ValueError as error:
            raise EvaluationInputError(f"{path}: threshold {text!r} in the name is not a number") from error
        operating_points[threshold] = read_event_table(path)
    if not operating_points:
        raise EvaluationInputError(f"{folder}: no predictions_th_<threshold>.tsv files")
    return dict(sorted(operating_points.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m desed_task.evaluation", description=__doc__)
    parser.add_argument("--ground_truth", required=True, help="events TSV/CSV (filename, onset, offset, event_label)")
    parser.add_argument("--durations", required=True, help="TSV/CSV (filename, duration): the evaluated clips")
    parser.add_argument("--operating_points", help="folder of predictions_th_<threshold>.tsv: psds1, psds2")
    parser.add_argument("--predictions", help="one decoded output (TSV/CSV): the F1 metrics")
    parser.add_argument("--scores", help="folder of per-clip score TSVs (sed_scores_eval layout): all metrics")
    parser.add_argument("--n_thresholds", type=int, default=50, help="operating points decoded from --scores")
    parser.add_argument("--median_window", type=int, default=7,
                        help="median filter length in frames, before decoding --scores and for their exact PSDS")
    parser.add_argument("--clip_to_durations", action="store_true",
                        help="clip events decoded from --scores to the clip durations (2021 did not)")
    parser.add_argument("--strict_classes", action="store_true",
                        help="refuse detections of a class without ground-truth events (default: scored as "
                        "psds_eval and sed_eval score them, with a warning)")
    parser.add_argument("--save_dir", help="where per-class tables and PSD-ROC plots are written")
    parser.add_argument("--reference", action="store_true",
                        help="exact PSDS (--scores) computed by sed_scores_eval instead of this package (slow)")
    parser.add_argument(
        "--postprocessing",
        help="with --scores: a post-processing file of `python -m desed_task.postprocessing tune` "
        "(per-class median windows and thresholds, or cSEBBs) instead of --median_window and 0.5",
    )
    return parser


def run(args: argparse.Namespace) -> dict[str, float]:
    if not (args.operating_points or args.predictions or args.scores):
        raise EvaluationInputError("give at least one of --operating_points, --predictions, --scores")
    if args.reference and not args.scores:
        raise EvaluationInputError("--reference applies to the exact PSDS: give --scores")
    ground_truth = read_event_table(args.ground_truth)
    durations = read_durations(args.durations)
    save_dir = Path(args.save_dir) if args.save_dir else None
    metrics: dict[str, float] = {}
    if args.postprocessing and not args.scores:
        raise EvaluationInputError("--postprocessing applies to frame scores: give --scores too")
    if args.scores:
        scores, class_names, frame_step = read_score_folder(args.scores, set(durations["filename"]))
        scores_dir = save_dir / "scores_evaluation" if save_dir else None
        if args.postprocessing:
            postprocessing = load_postprocessing(args.postprocessing, class_names)
            print(f"post-processing: {postprocessing.describe()}")
            metrics |= evaluate_postprocessed(
                scores, class_names, ground_truth, durations, postprocessing, args.n_thresholds, frame_step, scores_dir,
                clip_to_durations=args.clip_to_durations, reference=args.reference, strict_classes=args.strict_classes,
            )
        else:
            metrics |= evaluate_scores(
                scores, class_names, ground_truth, durations, args.n_thresholds, args.median_window,
                frame_step, scores_dir, args.clip_to_durations, reference=args.reference,
                strict_classes=args.strict_classes,
            )
    if args.operating_points:
        operating_points = read_operating_points(args.operating_points)
        labels = pd.concat([table["event_label"] for table in operating_points.values()], ignore_index=True)
        counts = absent_class_counts(labels, ground_truth)
        report_absent_classes(counts, ground_truth, str(args.operating_points), args.strict_classes, IN_PSDS)
        metrics |= evaluate_operating_points(operating_points, ground_truth, durations, save_dir)
    if args.predictions:
        predictions = read_event_table(args.predictions)
        counts = absent_class_counts(predictions["event_label"], ground_truth)
        report_absent_classes(counts, ground_truth, args.predictions, args.strict_classes, IN_F1)
        metrics |= evaluate_predictions(predictions, ground_truth, durations, save_dir)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        metrics = run(args)
    except EvaluationInputError as error:  # post-processing file errors included
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, value in metrics.items():
        print(f"{name:>24s}: {value:.4f}")
    print(json.dumps(metrics))
    return 0
