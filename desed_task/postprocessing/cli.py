"""``python -m desed_task.postprocessing tune``: post-processing tuned on validation scores.

Reads the RAW frame scores of the validation clips (a folder of per-clip TSVs in
sed_scores_eval's layout, as the test step writes them; a folder holding ``raw/`` is read
there), tunes per-class median windows (method median) or cSEBBs parameters (method sebbs)
to maximise the objective, and writes the post-processing file
(``desed_task.decoding.postprocessing_file``), which
``--postprocessing`` of ``python -m desed_task.evaluation`` and the test step
(``training.postprocessing``) apply.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from desed_task.command_line import run_command
from desed_task.decoding.errors import EvaluationInputError
from desed_task.decoding.median_per_class import MEDIAN_WINDOW
from desed_task.decoding.methods import METHODS
from desed_task.decoding.postprocessing_file import (
    DEFAULT_THRESHOLD,
    OBJECTIVES,
    PostProcessing,
    write_postprocessing,
)
from desed_task.decoding.score_files import check_score_folder, read_score_folder
from desed_task.evaluation.tables import (
    clean_durations,
    clean_event_table,
    drop_ground_truth_past_end,
    read_durations,
    read_event_table,
)
from desed_task.postprocessing.median_tuning import (
    DEFAULT_WINDOWS,
    WINDOW_2021,
    tune_median_f1,
    tune_median_psds,
)

log = logging.getLogger("desed_task.postprocessing")


def _windows(text: str) -> list[int]:
    try:
        windows = sorted({int(w) for w in text.split(",") if w.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated frame counts, got {text!r}") from None
    if not windows or windows[0] < 1 or windows[-1] > 255:
        raise argparse.ArgumentTypeError(f"windows must be in [1, 255] frames, got {text!r}")
    return windows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m desed_task.postprocessing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    tune = commands.add_parser("tune", help="tune post-processing on validation scores, write a YAML file")
    tune.add_argument("--scores", required=True, help="folder of RAW per-clip score TSVs (onset, offset, one column per class)")
    tune.add_argument("--ground_truth", required=True, help="validation events TSV (filename, onset, offset, event_label)")
    tune.add_argument("--durations", required=True, help="validation durations TSV (filename, duration)")
    tune.add_argument("--method", choices=list(TUNERS), default="median")
    tune.add_argument("--objective", choices=OBJECTIVES, default="psds1")
    tune.add_argument("--out", required=True, help="the post-processing YAML file to write")
    tune.add_argument("--windows", type=_windows, default=list(DEFAULT_WINDOWS),
                      help="median windows tried, frames (default 1,3,...,31)")
    tune.add_argument("--rounds", type=int, default=1, help="median, PSDS: passes of the per-class refinement")
    tune.add_argument("--candidates", type=int, default=2, help="median, PSDS: windows tried per class and pass")
    tune.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def _score_folder(path: str) -> Path:
    folder = check_score_folder(path)
    if not any(folder.glob("*.tsv")) and any((folder / "raw").glob("*.tsv")):
        log.info("reading the raw scores of %s", folder / "raw")
        return folder / "raw"
    if folder.name == "filtered":
        log.warning("%s holds median-filtered scores: tune on the raw ones (its sibling raw/)", folder)
    return folder


def _validation_inputs(args: argparse.Namespace):
    """Scores restricted to the durations' clips, the classes with ground truth, the tables."""
    durations = clean_durations(read_durations(args.durations))
    ground_truth = clean_event_table(drop_ground_truth_past_end(read_event_table(args.ground_truth), durations))
    folder = _score_folder(args.scores)
    scores, class_names, frame_step = read_score_folder(folder, set(durations["filename"]))
    clips = list(durations["filename"])
    unscored = [clip for clip in clips if clip not in scores]
    if unscored:
        raise EvaluationInputError(
            f"{folder}: {len(unscored)} clip(s) of {args.durations} have no score file (first: {unscored[0]})"
        )
    labels = set(ground_truth["event_label"].dropna())
    unknown = sorted(labels - set(class_names))
    if unknown:
        raise EvaluationInputError(f"{args.ground_truth}: class(es) {', '.join(unknown)} are not in the scores ({folder})")
    tuned = [name for name in class_names if name in labels]
    if len(tuned) < len(class_names):
        log.warning("no validation event of %s: those keep the 2021 post-processing",
                    ", ".join(n for n in class_names if n not in labels))
    rows = [class_names.index(name) for name in tuned]
    scores = {clip: scores[clip][rows] for clip in clips}
    return scores, class_names, tuned, frame_step, ground_truth, durations, folder


@dataclass(frozen=True)
class TuningInputs:
    """What a tuner reads: the validation scores of the classes with events, the tables.

    Attributes:
        scores: {filename: (len(tuned), n_frames) raw probabilities}.
        class_names: (n_classes,) the model's classes (the file gives a value for each).
        tuned: the classes with validation events, the rows of ``scores``.
        frame_step: seconds per frame.
        ground_truth, durations: the cleaned validation tables.
        progress: show progress bars.
    """

    scores: dict
    class_names: list[str]
    tuned: list[str]
    frame_step: float
    ground_truth: pd.DataFrame
    durations: pd.DataFrame
    progress: bool

    def full(self, values: Sequence, default) -> tuple:
        """(n_classes,) values: those of ``tuned`` (in its order), ``default`` for the others."""
        index = {name: i for i, name in enumerate(self.tuned)}
        return tuple(values[index[n]] if n in index else default for n in self.class_names)


def _tune_median(args: argparse.Namespace, inputs: TuningInputs) -> tuple[dict, tuple, dict]:
    """Per-class median windows (and thresholds for objective f1): (parameters, thresholds,
    validation entries)."""
    scores, tuned, ground_truth, durations = inputs.scores, inputs.tuned, inputs.ground_truth, inputs.durations
    if args.objective == "f1":
        result = tune_median_f1(scores, tuned, ground_truth, durations, args.windows,
                                frame_step=inputs.frame_step, progress=inputs.progress)
    else:
        result = tune_median_psds(scores, tuned, ground_truth, durations, args.objective, args.windows,
                                  inputs.frame_step, args.candidates, args.rounds, progress=inputs.progress)
    validation = {"before": round(result.before, 6), "after": round(result.after, 6),
                  "windows_tried": args.windows, "evaluations": result.evaluations}
    thresholds = inputs.full(result.threshold, DEFAULT_THRESHOLD) if args.objective == "f1" else ()
    return {MEDIAN_WINDOW: inputs.full(result.median_window, WINDOW_2021)}, thresholds, validation


def _tune_sebbs(args: argparse.Namespace, inputs: TuningInputs) -> tuple[dict, tuple, dict]:
    """Per-class cSEBBs parameters (and thresholds for objective f1): (parameters, thresholds,
    validation entries)."""
    from desed_task.postprocessing.sebbs_tuning import tune_sebbs

    scores, tuned, ground_truth, durations = inputs.scores, inputs.tuned, inputs.ground_truth, inputs.durations
    parameters, thresholds, after = tune_sebbs(scores, tuned, ground_truth, durations, args.objective,
                                               inputs.frame_step, progress=inputs.progress)
    before = _before_2021(scores, tuned, ground_truth, durations, args.objective, inputs.frame_step)
    defaults = {"step_filter_length": 0.48, "merge_threshold_abs": 0.2, "merge_threshold_rel": float("inf")}
    return (
        {key: inputs.full(values, defaults[key]) for key, values in parameters.items()},
        inputs.full(thresholds, DEFAULT_THRESHOLD) if args.objective == "f1" else (),
        {"before": round(before, 6), "after": round(after, 6)},
    )


# the tuner of each post-processing method (a key of desed_task.decoding.methods.METHODS)
TUNERS = {"median": _tune_median, "sebbs": _tune_sebbs}


def tune(args: argparse.Namespace) -> PostProcessing:
    METHODS[args.method].require()  # before reading anything
    scores, class_names, tuned, frame_step, ground_truth, durations, folder = _validation_inputs(args)
    inputs = TuningInputs(scores, class_names, tuned, frame_step, ground_truth, durations, not args.no_progress)
    parameters, thresholds, entries = TUNERS[args.method](args, inputs)
    validation = {"scores": str(folder), "clips": len(scores)} | entries
    return PostProcessing(args.method, tuple(class_names), parameters, thresholds, objective=args.objective,
                          validation=validation)


def _before_2021(scores, class_names, ground_truth, durations, objective, frame_step) -> float:
    """The objective with the 2021 post-processing (7 frames, threshold 0.5)."""
    if objective == "f1":
        result = tune_median_f1(scores, class_names, ground_truth, durations, [WINDOW_2021], [DEFAULT_THRESHOLD],
                                frame_step, progress=False)
    else:
        result = tune_median_psds(scores, class_names, ground_truth, durations, objective, [WINDOW_2021],
                                  frame_step, candidates=0, rounds=0, progress=False)
    return result.before


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; its exit status (`run_command`: 2 on a user error)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_command(lambda: tune_and_write(args))


def tune_and_write(args: argparse.Namespace) -> int:
    """Tune, write the post-processing file and print the objective before and after."""
    postprocessing = tune(args)
    path = write_postprocessing(postprocessing, args.out)
    validation = postprocessing.validation
    print(f"{args.objective} on validation ({validation['clips']} clips): {validation['before']:.4f} with the 2021 "
          f"post-processing, {validation['after']:.4f} tuned ({args.method}); written to {path}")
    return 0
