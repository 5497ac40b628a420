"""``python -m desed_task.evaluation``: the 2021 metrics from files.

The evaluated clips are those of ``--durations`` (with ``--only_annotated``: those of it that
the ground truth names). The last line of standard output is one JSON object with the metrics
computed and, with F1 metrics, the classes each macro F1 left out. ``--save_dir`` is written
only when the command succeeds.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from desed_task.command_line import run_command
from desed_task.decoding.errors import EvaluationInputError
from desed_task.decoding.postprocessing_file import load_postprocessing
from desed_task.decoding.score_files import read_score_folder
from desed_task.evaluation.evaluate import (
    evaluate_operating_points,
    evaluate_predictions,
    evaluate_scores,
)
from desed_task.evaluation.postprocessed import evaluate_postprocessed
from desed_task.evaluation.tables import (
    IN_F1,
    IN_PSDS,
    absent_class_counts,
    check_ground_truth,
    drop_ground_truth_past_end,
    read_durations,
    read_event_table,
    report_absent_classes,
    report_undetected_classes,
    source_of,
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
                        help="refuse detections of a class without ground-truth events, and ground-truth classes "
                        "without scores (default: scored as psds_eval and sed_eval score them, with a warning)")
    parser.add_argument("--only_annotated", action="store_true",
                        help="evaluate only the clips the ground truth names (a row each; a row with the filename "
                        "alone for a clip without events), leaving out the other clips of --durations and of the "
                        "inputs, e.g. inference's durations.tsv and events.tsv over more recordings than annotated")
    parser.add_argument("--save_dir", help="where per-class tables and PSD-ROC plots are written (only when the "
                        "command succeeds)")
    parser.add_argument("--reference", action="store_true",
                        help="exact PSDS (--scores) computed by sed_scores_eval instead of this package (slow)")
    parser.add_argument(
        "--postprocessing",
        help="with --scores: a post-processing file of `python -m desed_task.postprocessing tune` "
        "(per-class median windows and thresholds, or cSEBBs) instead of --median_window and 0.5",
    )
    return parser


@contextmanager
def staged_folder(target: str | Path | None) -> Iterator[Path | None]:
    """A temporary folder beside ``target`` whose entries replace ``target``'s of the same
    name when the block ends without an exception; removed, ``target`` untouched, when it
    raises (a failed evaluation leaves nothing that looks complete). None for None."""
    if target is None:
        yield None
        return
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield staging
        target.mkdir(exist_ok=True)
        for entry in sorted(staging.iterdir()):
            destination = target / entry.name
            if destination.is_dir() and not destination.is_symlink():
                shutil.rmtree(destination)
            elif destination.exists() or destination.is_symlink():
                destination.unlink()
            entry.rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _refuse_unlisted(clips: Iterable[str], durations: pd.DataFrame, source: str) -> None:
    """Without --only_annotated: inputs on clips outside --durations are refused, naming the flag."""
    unknown = sorted(set(clips) - set(durations["filename"]))
    if unknown:
        raise EvaluationInputError(
            f"{source}: {len(unknown)} clip(s) not in {source_of(durations, 'the durations table')} "
            f"(first: {unknown[0]}), which lists the evaluated clips; --only_annotated evaluates only the clips "
            "the ground truth names and leaves out the others"
        )


def _only(table: pd.DataFrame, clips: set[str]) -> pd.DataFrame:
    """The rows of ``table`` on ``clips``, its source kept."""
    kept = table[table["filename"].isin(clips)].reset_index(drop=True)
    kept.attrs.update(table.attrs)
    return kept


def _inputs(args: argparse.Namespace, durations: pd.DataFrame):
    """The evaluated inputs: scores ({clip: (n_classes, n_frames)}, class names, frame step),
    operating points ({threshold: table}) and predictions, each None when not given."""
    known = set(durations["filename"])
    scores = read_score_folder(args.scores, known) if args.scores else None
    operating_points = read_operating_points(args.operating_points) if args.operating_points else None
    predictions = read_event_table(args.predictions) if args.predictions else None
    return scores, operating_points, predictions


def run(args: argparse.Namespace, save_dir: Path | None = None) -> tuple[dict[str, float], dict[str, list[str]]]:
    """The metrics, and the classes each macro F1 left out (empty without F1 metrics).

    Args:
        args: the parsed command line.
        save_dir: where tables and plots go (the staging folder of ``--save_dir``).
    """
    if not (args.operating_points or args.predictions or args.scores):
        raise EvaluationInputError("give at least one of --operating_points, --predictions, --scores")
    if args.reference and not args.scores:
        raise EvaluationInputError("--reference applies to the exact PSDS: give --scores")
    if args.postprocessing and not args.scores:
        raise EvaluationInputError("--postprocessing applies to frame scores: give --scores too")
    ground_truth = read_event_table(args.ground_truth)
    durations = read_durations(args.durations)
    check_ground_truth(ground_truth, durations)
    scores, operating_points, predictions = _inputs(args, durations)
    input_clips = {
        "scores": set(scores[0]) if scores else set(),
        str(args.operating_points): set().union(*(set(t["filename"]) for t in operating_points.values()))
        if operating_points else set(),
        str(args.predictions): set(predictions["filename"]) if predictions is not None else set(),
    }
    if args.only_annotated:
        annotated = set(ground_truth["filename"])
        left_out = (set(durations["filename"]) | set().union(*input_clips.values())) - annotated
        durations = _only(durations, annotated)
        print(
            f"--only_annotated: {len(durations)} clip(s) named by {args.ground_truth} evaluated, {len(left_out)} "
            f"other clip(s) of {args.durations} and the inputs left out"
            + (f" (first: {sorted(left_out)[0]})" if left_out else "")
        )
        if scores:
            scores = ({k: v for k, v in scores[0].items() if k in annotated}, *scores[1:])
        if operating_points:
            operating_points = {t: _only(table, annotated) for t, table in operating_points.items()}
        if predictions is not None:
            predictions = _only(predictions, annotated)
    else:
        for source, clips in input_clips.items():
            _refuse_unlisted(clips, durations, source if source != "scores" else str(args.scores))
        unnamed = set(durations["filename"]) - set(ground_truth["filename"])
        if unnamed:
            print(
                f"{len(unnamed)} of the {len(durations)} clip(s) of {args.durations} have no row in "
                f"{args.ground_truth} (first: {sorted(unnamed)[0]}): evaluated as clips without events "
                "(--only_annotated leaves them out)"
            )
    ground_truth = drop_ground_truth_past_end(ground_truth, durations)

    metrics: dict[str, float] = {}
    left_out_of_macro: dict[str, list[str]] = {}
    if scores:
        scores, class_names, frame_step = scores
        scores_dir = save_dir / "scores_evaluation" if save_dir else None
        options = {"clip_to_durations": args.clip_to_durations, "reference": args.reference,
                   "strict_classes": args.strict_classes}
        if args.postprocessing:
            postprocessing = load_postprocessing(args.postprocessing, class_names)
            print(f"post-processing: {postprocessing.describe()}")
            metrics |= evaluate_postprocessed(
                scores, class_names, ground_truth, durations, postprocessing, args.n_thresholds, frame_step, scores_dir,
                macro_left_out=left_out_of_macro, **options,
            )
        else:
            metrics |= evaluate_scores(
                scores, class_names, ground_truth, durations, args.n_thresholds, args.median_window,
                frame_step, scores_dir, macro_left_out=left_out_of_macro, **options,
            )
    if operating_points:
        labels = pd.concat([table["event_label"] for table in operating_points.values()], ignore_index=True)
        counts = absent_class_counts(labels, ground_truth)
        report_absent_classes(counts, ground_truth, str(args.operating_points), args.strict_classes, IN_PSDS)
        report_undetected_classes(labels, ground_truth, str(args.operating_points))
        metrics |= evaluate_operating_points(operating_points, ground_truth, durations, save_dir)
    if predictions is not None:
        counts = absent_class_counts(predictions["event_label"], ground_truth)
        report_absent_classes(counts, ground_truth, args.predictions, args.strict_classes, IN_F1)
        report_undetected_classes(predictions["event_label"], ground_truth, args.predictions)
        metrics |= evaluate_predictions(predictions, ground_truth, durations, save_dir, left_out_of_macro)
    return metrics, left_out_of_macro


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; its exit status (`run_command`: 2 on a user error)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    return run_command(lambda: evaluate(args))


def evaluate(args: argparse.Namespace) -> int:
    """Evaluate into the staged ``--save_dir``, then print the metrics and the JSON line."""
    if args.save_dir and Path(args.save_dir).exists() and not Path(args.save_dir).is_dir():
        raise EvaluationInputError(f"--save_dir {args.save_dir} is a file: give a folder")
    with staged_folder(args.save_dir) as save_dir:
        metrics, left_out = run(args, save_dir)
    for name, value in metrics.items():
        print(f"{name:>24s}: {value:.4f}")
    for name, classes in left_out.items():
        if classes:
            print(f"{name} leaves out (F1 undefined): {', '.join(classes)}")
    summary: dict = dict(metrics)
    if left_out:
        summary["left_out_of_macro"] = left_out
    print(json.dumps(summary))
    return 0
