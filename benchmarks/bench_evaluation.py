"""Speed of the evaluation: this package vs the DCASE 2021 path, on 1168 clips x 10 classes x 156 frames.

    python benchmarks/bench_evaluation.py [--legacy_clips N] [--oracle_python PATH | --no_oracle] [--n_clips N]
                                          [--skip_sed_scores_eval]

Both paths decode synthetic scores at the 50 thresholds 0.01 ... 0.99 (and 0.5 for the
F1s), then compute PSDS 1 and 2, the intersection F1 and the collar F1. The 2021 path
decodes clip by clip with scipy's median filter and grows a DataFrame per clip; its
metrics are computed by psds_eval 0.5.3 / sed_eval 0.2.1 in a Python of their own (they
do not run on numpy 2.4 / pandas 3): ``--oracle_python PATH``, else a virtual environment
under ~/.cache/desed_task/oracle-venv ($DESED_TASK_ORACLE_VENV), created on first use
(see oracle_env.py). With --no_oracle only the 2021 decoding is timed. With
--legacy_clips the 2021 decoding is timed on fewer clips and scaled up to all of them
(printed as such).

Then the exact (threshold-free) PSDS 1 and 2 on the median-filtered scores: this package
vs sed_scores_eval on the same input, and the whole command-line process
``python -m desed_task.evaluation --scores DIR ...`` (imports included; goal: 4 s on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not
sys.path.insert(0, str(Path(__file__).resolve().parent))

from oracle_env import oracle_python  # noqa: E402

from desed_task.decoding import (
    decode_scores,
    median_filter_scores,
    write_sed_scores,
)
from desed_task.evaluation import (
    # noqa: E402
    collar_f1,
    exact_psds_scenarios,
    intersection_f1_macro,
    threshold_grid,
)
from desed_task.evaluation.metrics import PSDS_SCENARIOS  # noqa: E402
from desed_task.evaluation.psds import psds_scenarios_from_operating_points  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CLASSES = ["Alarm_bell_ringing", "Blender", "Cat", "Dishes", "Dog", "Electric_shaver_toothbrush",
           "Frying", "Running_water", "Speech", "Vacuum_cleaner"]
N_FRAMES = 156

ORACLE_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd, sed_eval
from pathlib import Path
from psds_eval import PSDSEval
folder = Path(sys.argv[1])
start = time.perf_counter()
gt = pd.read_csv(folder / "gt.tsv", sep="\t")
durations = pd.read_csv(folder / "durations.tsv", sep="\t")
ops = {float(p.stem.split("_")[-1]): pd.read_csv(p, sep="\t") for p in sorted((folder / "ops").glob("*.tsv"))}
values = {}
for name, (dtc, gtc, cttc, act, ast) in {"psds1": (0.7, 0.7, 0.3, 0, 1), "psds2": (0.1, 0.1, 0.3, 0.5, 1)}.items():
    evaluator = PSDSEval(dtc, gtc, cttc, ground_truth=gt, metadata=durations)
    for i, (th, det) in enumerate(ops.items()):
        det = det.copy(); det["index"] = range(1, len(det) + 1)
        evaluator.add_operating_point(det.set_index("index"), info={"name": i, "threshold": th})
    values[name] = evaluator.psds(alpha_ct=act, alpha_st=ast, max_efpr=100).value
pred = pd.read_csv(folder / "pred05.tsv", sep="\t")
f1, _ = PSDSEval(0.5, 0.5, 0.3, ground_truth=gt, metadata=durations).compute_macro_f_score(pred)
values["intersection_f1_macro"] = float(f1)
classes = sorted(set(gt.event_label.dropna()) | set(pred.event_label.dropna()))
metric = sed_eval.sound_event.EventBasedMetrics(event_label_list=classes, t_collar=0.2,
    percentage_of_length=0.2, empty_system_output_handling="zero_score")
def events(df, f):
    rows = df[df.filename == f]
    return [{"filename": f}] if len(rows) == 1 and pd.isna(rows.event_label.iloc[0]) else rows.to_dict("records")
for f in gt.filename.unique():
    metric.evaluate(events(gt, f), events(pred, f))
values["collar_f1_macro"] = metric.results_class_wise_average_metrics()["f_measure"]["f_measure"]
values["seconds"] = time.perf_counter() - start
print(json.dumps(values))
"""


def synthetic_data(n_clips: int = 1168, seed: int = 0):
    """Scores (n_clips, n_classes, n_frames), ground truth and durations tables."""
    rng = np.random.default_rng(seed)
    filenames = [f"Y{i:05d}_0.000_10.000.wav" for i in range(n_clips)]
    truth = np.zeros((n_clips, len(CLASSES), N_FRAMES), bool)
    rows = []
    for i, name in enumerate(filenames):
        for c in range(len(CLASSES)):
            for _ in range(rng.poisson(0.25)):
                start = int(rng.integers(0, N_FRAMES - 5))
                stop = int(min(N_FRAMES, start + rng.integers(3, 80)))
                truth[i, c, start:stop] = True
        for c, label in enumerate(CLASSES):
            padded = np.concatenate([[0], truth[i, c].astype(int), [0]])
            for start, stop in np.flatnonzero(np.diff(padded)).reshape(-1, 2):
                rows.append((name, round(start * 0.064, 3), round(stop * 0.064, 3), label))
        if not truth[i].any():
            rows.append((name, np.nan, np.nan, None))
    noise = scipy.ndimage.uniform_filter1d(rng.random(truth.shape), 7, axis=-1)
    smooth_truth = scipy.ndimage.uniform_filter1d(truth.astype(float), 5, axis=-1)
    scores = np.clip(0.5 * smooth_truth + noise - 0.3 + 0.15 * rng.standard_normal(truth.shape), 0, 1)
    ground_truth = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])
    durations = pd.DataFrame({"filename": filenames, "duration": 10.0})
    return scores.astype(np.float32), filenames, ground_truth, durations


def decode_2021(scores, filenames, thresholds, n_clips):
    """The 2021 decoding: per clip and threshold binarise, median filter, regions, append."""
    tables = {th: pd.DataFrame(columns=["event_label", "onset", "offset", "filename"]) for th in thresholds}
    for clip_scores, filename in zip(scores[:n_clips], filenames[:n_clips]):
        for threshold in thresholds:
            active = scipy.ndimage.median_filter(clip_scores.T > threshold, (7, 1))
            events = []
            for c, label in enumerate(CLASSES):
                padded = np.concatenate([[0], active[:, c].astype(int), [0]])
                for start, stop in np.flatnonzero(np.diff(padded)).reshape(-1, 2):
                    events.append([label, min(max(start * 4 / (16000 / 256), 0), 10),
                                   min(max(stop * 4 / (16000 / 256), 0), 10)])
            clip_table = pd.DataFrame(events, columns=["event_label", "onset", "offset"])
            clip_table["filename"] = filename
            tables[threshold] = pd.concat([tables[threshold], clip_table], ignore_index=True)
    return tables


def run_ours(scores, filenames, ground_truth, durations, thresholds):
    start = time.perf_counter()
    decoded = decode_scores(scores, filenames, CLASSES, thresholds + [0.5], median_window=7)
    at_half = decoded.pop(0.5)
    decode_seconds = time.perf_counter() - start
    psds = psds_scenarios_from_operating_points(decoded, ground_truth, durations, PSDS_SCENARIOS)
    values = {
        "psds1": psds["psds1"].value,
        "psds2": psds["psds2"].value,
        "intersection_f1_macro": intersection_f1_macro(at_half, ground_truth, durations),
        "collar_f1_macro": collar_f1(at_half, ground_truth, durations=durations)["macro"],
    }
    return values, decode_seconds, time.perf_counter() - start, decoded, at_half


def time_exact_psds(scores, filenames, ground_truth, durations, reference: bool) -> None:
    """Exact PSDS 1 and 2 on median-filtered scores: ours, then sed_scores_eval's."""
    mapping = dict(zip(filenames, median_filter_scores(scores, 7)))
    start = time.perf_counter()
    ours = exact_psds_scenarios(mapping, CLASSES, 0.064, ground_truth, durations, PSDS_SCENARIOS)
    our_seconds = time.perf_counter() - start
    print(f"exact PSDS 1 and 2 (median-filtered scores): this package {our_seconds:.2f} s")
    if reference:
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # dcase_util's import
        start = time.perf_counter()
        theirs = exact_psds_scenarios(mapping, CLASSES, 0.064, ground_truth, durations, PSDS_SCENARIOS, reference=True)
        their_seconds = time.perf_counter() - start
        print(f"exact PSDS 1 and 2: sed_scores_eval {their_seconds:.1f} s, {their_seconds / our_seconds:.0f}x slower")
    for name, result in ours.items():
        also = f"  sed_scores_eval {theirs[name].value:.6f}  diff {abs(result.value - theirs[name].value):.1e}" if reference else ""
        print(f"  {name + '_exact':>22s}: ours {result.value:.6f}{also}")


def time_command_line(scores, filenames, ground_truth, durations) -> float:
    """Wall seconds of ``python -m desed_task.evaluation --scores DIR ...`` (a new process)."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        write_sed_scores(dict(zip(filenames, scores)), CLASSES, 0.064, folder / "scores")
        ground_truth.to_csv(folder / "gt.tsv", sep="\t", index=False)
        durations.to_csv(folder / "durations.tsv", sep="\t", index=False)
        command = [sys.executable, "-m", "desed_task.evaluation", "--scores", str(folder / "scores"),
                   "--ground_truth", str(folder / "gt.tsv"), "--durations", str(folder / "durations.tsv")]
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        seconds = time.perf_counter() - start
    print(f"command line (python -m desed_task.evaluation --scores DIR ..., imports included): {seconds:.2f} s"
          f" (goal: 4 s on 2 cores)")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n_clips", type=int, default=1168, help="clips of the synthetic set (1168: DESED dev-test)")
    parser.add_argument("--legacy_clips", type=int, help="clips decoded by the 2021 path (default: all)")
    parser.add_argument("--oracle_python", help="a python with psds_eval 0.5.3 and sed_eval (default: the cached venv)")
    parser.add_argument("--no_oracle", action="store_true", help="do not run (or build) the 2021 tools")
    parser.add_argument("--skip_sed_scores_eval", action="store_true", help="do not time sed_scores_eval's exact PSDS")
    args = parser.parse_args()
    n_clips = args.n_clips
    scores, filenames, ground_truth, durations = synthetic_data(n_clips)
    absent = sorted(set(CLASSES) - set(ground_truth["event_label"].dropna()))
    if absent:
        sys.exit(f"error: --n_clips {n_clips} leaves {absent} without ground-truth events; give more clips")
    thresholds = threshold_grid(50)
    print(f"data: {n_clips} clips x {N_FRAMES} frames x {len(CLASSES)} classes, "
          f"{ground_truth['event_label'].notna().sum()} ground-truth events, 50 thresholds + 0.5")

    ours, our_decode, our_total, decoded, at_half = run_ours(scores, filenames, ground_truth, durations, thresholds)
    print(f"this package: decoding {our_decode:.2f} s, whole evaluation {our_total:.2f} s")

    n_legacy = min(args.legacy_clips or n_clips, n_clips)
    start = time.perf_counter()
    legacy = decode_2021(scores, filenames, thresholds + [0.5], n_legacy)
    legacy_decode = (time.perf_counter() - start) * n_clips / n_legacy
    scaled = "" if n_legacy == n_clips else f" (timed on {n_legacy} clips, scaled to {n_clips})"
    print(f"2021 path: decoding {legacy_decode:.1f} s, {1000 * legacy_decode / n_clips:.1f} ms a clip{scaled}")
    if n_legacy == n_clips:
        for threshold in thresholds:
            ours_table = decoded[threshold][["event_label", "onset", "offset", "filename"]]
            pd.testing.assert_frame_equal(ours_table, legacy[threshold], check_dtype=False)
        print("decoded events: identical to the 2021 path at all thresholds")

    legacy_total = None
    oracle = None if args.no_oracle else oracle_python(args.oracle_python)
    if oracle is not None:
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            (folder / "ops").mkdir()
            ground_truth.to_csv(folder / "gt.tsv", sep="\t", index=False)
            durations.to_csv(folder / "durations.tsv", sep="\t", index=False)
            for threshold, table in decoded.items():
                table.to_csv(folder / "ops" / f"predictions_th_{threshold:.2f}.tsv", sep="\t", index=False)
            at_half.to_csv(folder / "pred05.tsv", sep="\t", index=False)
            completed = subprocess.run([str(oracle), "-c", ORACLE_SCRIPT, str(folder)],
                                       capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            sys.exit(f"error: the 2021 tools failed in {oracle}:\n{completed.stderr}")
        reference = json.loads(completed.stdout.strip().splitlines()[-1])
        legacy_total = legacy_decode + reference.pop("seconds")
        print(f"2021 path: psds_eval + sed_eval (oracle venv) metrics {legacy_total - legacy_decode:.1f} s")
        for name, value in ours.items():
            print(f"  {name:>22s}: ours {value:.6f}  reference tools {reference[name]:.6f}  "
                  f"diff {abs(value - reference[name]):.1e}")
    else:
        print("2021 path: --no_oracle, only its decoding is timed")
        for name, value in ours.items():
            print(f"  {name:>22s}: ours {value:.6f}")
    baseline = legacy_total if legacy_total is not None else legacy_decode
    what = "whole evaluation" if legacy_total is not None else "decoding only (2021) vs whole evaluation (ours)"
    print(f"2021 path {baseline:.1f} s vs this package {our_total:.2f} s: {baseline / our_total:.0f}x faster ({what})")

    time_exact_psds(scores, filenames, ground_truth, durations, reference=not args.skip_sed_scores_eval)
    command_seconds = time_command_line(scores, filenames, ground_truth, durations)
    print(f"2021 path {baseline:.1f} s vs this package's command line {command_seconds:.2f} s: "
          f"{baseline / command_seconds:.0f}x faster ({what})")


if __name__ == "__main__":
    sys.exit(main())
