"""Golden values for tests/test_evaluation_golden.py, produced by the reference tools.

    python tests/golden/make_evaluation_golden.py [--oracle_python PATH]

psds_eval 0.5.3 and sed_eval 0.2.1 do not run on numpy 2.4 / pandas 3: the script runs
itself again in a Python that has them, ``--oracle_python PATH``, else the virtual
environment of benchmarks/oracle_env.py (~/.cache/desed_task/oracle-venv, created on
first use; numpy < 2.3, pandas < 3).

It writes tests/golden/evaluation_golden.json: for each generated case, its ground truth,
durations, operating points and threshold-0.5 predictions, and what psds_eval / sed_eval
give on them, called the way the DCASE 2021 baseline calls them (sed_eval file by file
over the ground truth's clips, every clip of the durations table listed there, with an
empty row when it has no event).
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")

CLASSES = ["Alarm", "Blender", "Cat", "Dog", "Speech"]
SCENARIOS = {
    "psds1": dict(dtc_threshold=0.7, gtc_threshold=0.7, cttc_threshold=0.3, alpha_ct=0.0, alpha_st=1.0, max_efpr=100.0),
    "psds2": dict(dtc_threshold=0.1, gtc_threshold=0.1, cttc_threshold=0.3, alpha_ct=0.5, alpha_st=1.0, max_efpr=100.0),
    "psds_plain": dict(dtc_threshold=0.5, gtc_threshold=0.5, cttc_threshold=0.3, alpha_ct=0.0, alpha_st=0.0, max_efpr=100.0),
    "psds_ct": dict(dtc_threshold=0.3, gtc_threshold=0.6, cttc_threshold=0.2, alpha_ct=1.0, alpha_st=0.5, max_efpr=100.0),
    "psds_wide": dict(dtc_threshold=0.5, gtc_threshold=0.5, cttc_threshold=0.3, alpha_ct=0.5, alpha_st=0.5, max_efpr=2000.0),
}


def random_events(rng, filenames, durations, density, step=0.064):
    """Non-overlapping same-class events on a frame grid, some touching the clip's ends."""
    rows = []
    for name, duration in zip(filenames, durations):
        for label in CLASSES:
            n_events = rng.poisson(density)
            edges = np.sort(rng.choice(int(duration / step), size=2 * n_events, replace=False)) * step
            edges = np.round(edges, 3)
            for onset, offset in edges.reshape(-1, 2):
                if rng.random() < 0.1:
                    onset = 0.0
                if rng.random() < 0.1:
                    offset = float(duration)
                rows.append((name, float(onset), float(offset), label))
    table = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])
    return table.sort_values(["filename", "onset"]).drop_duplicates(["filename", "event_label", "onset"])


def remove_same_class_overlaps(table):
    kept = []
    for _, group in table.groupby(["filename", "event_label"]):
        last_offset = -1.0
        for row in group.sort_values("onset").itertuples(index=False):
            if row.onset >= last_offset:
                kept.append(row)
                last_offset = row.offset
    return pd.DataFrame(kept, columns=table.columns)


def jitter(rng, table, scale, keep, duration_of):
    """A system output: ground truth events moved/stretched, some dropped, some relabelled."""
    table = table[rng.random(len(table)) < keep].copy()
    table["onset"] = np.clip(table["onset"] + rng.normal(0, scale, len(table)), 0, None).round(3)
    table["offset"] = (table["offset"] + rng.normal(0, scale, len(table))).round(3)
    table["offset"] = np.minimum(table["offset"], table["filename"].map(duration_of))
    relabel = rng.random(len(table)) < 0.15
    table.loc[relabel, "event_label"] = rng.choice(CLASSES, relabel.sum())
    table = table[table["offset"] > table["onset"]]
    return remove_same_class_overlaps(table)


def handmade_case():
    """Overlaps, cross-triggers, an empty clip, events touching both ends, several classes."""
    gt = pd.DataFrame(
        [
            ("a.wav", 0.0, 4.0, "Speech"), ("a.wav", 2.0, 6.0, "Dog"), ("a.wav", 7.0, 10.0, "Cat"),
            ("b.wav", 1.0, 2.0, "Alarm"), ("b.wav", 3.0, 3.5, "Alarm"), ("b.wav", 0.5, 9.5, "Blender"),
            ("c.wav", None, None, None),
            ("d.wav", 0.0, 9.0, "Speech"),
        ],
        columns=["filename", "onset", "offset", "event_label"],
    )
    durations = pd.DataFrame({"filename": ["a.wav", "b.wav", "c.wav", "d.wav"], "duration": [10.0, 10.0, 10.0, 9.0]})
    predictions = pd.DataFrame(
        [
            ("a.wav", 0.0, 3.9, "Speech"), ("a.wav", 2.1, 5.0, "Speech"), ("a.wav", 2.5, 6.2, "Dog"),
            ("a.wav", 6.5, 10.0, "Cat"), ("a.wav", 1.0, 3.0, "Alarm"),
            ("b.wav", 0.9, 3.6, "Alarm"), ("b.wav", 0.0, 10.0, "Blender"), ("b.wav", 4.0, 8.0, "Speech"),
            ("c.wav", 2.0, 3.0, "Dog"), ("c.wav", 0.0, 10.0, "Blender"),
            ("d.wav", 0.1, 9.0, "Speech"), ("d.wav", 8.5, 9.984, "Cat"),
        ],
        columns=["filename", "onset", "offset", "event_label"],
    )
    predictions = remove_same_class_overlaps(predictions)
    operating_points = {
        0.1: predictions,
        0.5: predictions[predictions["onset"] > 0.5],
        0.9: predictions[predictions["event_label"].isin(["Speech", "Cat"])],
    }
    return gt, durations, operating_points, predictions


def random_case(seed, n_clips):
    rng = np.random.default_rng(seed)
    filenames = [f"clip{i:03d}.wav" for i in range(n_clips)]
    durations = np.where(rng.random(n_clips) < 0.2, rng.choice([9.0, 9.5, 7.25], n_clips), 10.0)
    duration_of = dict(zip(filenames, durations))
    gt = random_events(rng, filenames, durations, density=0.6)
    gt = remove_same_class_overlaps(gt)
    empty = sorted(set(filenames) - set(gt["filename"]))
    gt = pd.concat([gt, pd.DataFrame({"filename": empty})], ignore_index=True)
    operating_points = {}
    for threshold, keep, scale in [(0.1, 0.95, 0.6), (0.3, 0.85, 0.4), (0.5, 0.75, 0.25), (0.7, 0.5, 0.2), (0.9, 0.2, 0.1)]:
        system = jitter(rng, gt.dropna(), scale, keep, duration_of)
        extra = random_events(rng, filenames, durations, density=0.3 * (1 - threshold))
        operating_points[threshold] = remove_same_class_overlaps(pd.concat([system, extra]))
    durations_table = pd.DataFrame({"filename": filenames, "duration": durations})
    return gt, durations_table, operating_points, operating_points[0.5]


def push_past_the_end(rng, table, duration_of, share=0.3):
    """Decoded outputs as 2021 wrote them (not clipped to the durations file): some offsets
    moved past the clip's end, and some events lying wholly past it."""
    table = table.copy()
    duration = table["filename"].map(duration_of)
    late = rng.random(len(table)) < share
    table.loc[late, "offset"] = (duration[late] + rng.uniform(0.1, 3.0, late.sum())).round(3)
    beyond = table.sample(frac=0.2, random_state=int(rng.integers(1 << 30))).copy()
    beyond["onset"] = (beyond["filename"].map(duration_of) + rng.uniform(0.0, 1.0, len(beyond))).round(3)
    beyond["offset"] = (beyond["onset"] + rng.uniform(0.1, 2.0, len(beyond))).round(3)
    return remove_same_class_overlaps(pd.concat([table, beyond]))


def clip_set_cases():
    """A ground truth without rows for the clips without events (issue 12), and outputs
    running past the clips' ends (the 2021 decoding)."""
    gt, durations, operating_points, _ = random_case(seed=3, n_clips=30)
    # the events of the last 10 clips are dropped (their detections stay): no row at all for them
    events_only = gt[gt["event_label"].notna() & (gt["filename"] < "clip020.wav")]
    no_empty_rows = (events_only, durations, operating_points, operating_points[0.5])
    rng = np.random.default_rng(4)
    gt, durations, operating_points, _ = random_case(seed=4, n_clips=30)
    duration_of = dict(zip(durations["filename"], durations["duration"]))
    late = {k: push_past_the_end(rng, v, duration_of) for k, v in operating_points.items()}
    return {"no_empty_rows": no_empty_rows, "past_clip_end": (gt, durations, late, late[0.5])}


def absent_class_case():
    """Detections of classes without any ground-truth event (issue 16): Cat, whose events are
    dropped from the ground truth, and Horse, a class of the output only. psds_eval ignores
    them; sed_eval, given the classes of both tables as 2021 gave them, counts them as false
    positives (micro F1) and their classes' F1 is NaN (left out of the macro F1)."""
    gt, durations, operating_points, _ = random_case(seed=5, n_clips=20)
    gt = gt[gt["event_label"] != "Cat"]
    rng = np.random.default_rng(6)
    horse = random_events(rng, list(durations["filename"]), durations["duration"].to_numpy(), density=0.3)
    horse = horse[horse["event_label"] == "Dog"].assign(event_label="Horse")
    operating_points = {k: remove_same_class_overlaps(pd.concat([v, horse])) for k, v in operating_points.items()}
    return gt, durations, operating_points, operating_points[0.5]


def event_list(table, filename):
    rows = table[table["filename"] == filename]
    if len(rows) == 1 and pd.isna(rows["event_label"].iloc[0]):
        return [{"filename": filename}]
    return rows.to_dict("records")


def sed_eval_metrics(predictions, gt, durations):
    import sed_eval

    unlisted = sorted(set(durations["filename"]) - set(gt["filename"]))
    gt = pd.concat([gt, pd.DataFrame({"filename": unlisted})], ignore_index=True)
    classes = sorted(set(gt["event_label"].dropna()) | set(predictions["event_label"].dropna()))
    event_metric = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=classes, t_collar=0.2, percentage_of_length=0.2, empty_system_output_handling="zero_score"
    )
    segment_metric = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=classes, time_resolution=1.0)
    for filename in gt["filename"].unique():
        reference, estimated = event_list(gt, filename), event_list(predictions, filename)
        event_metric.evaluate(reference_event_list=reference, estimated_event_list=estimated)
        segment_metric.evaluate(reference_event_list=reference, estimated_event_list=estimated)
    event_results = event_metric.results()
    segment_results = segment_metric.results()
    return {
        "collar_f1_macro": event_results["class_wise_average"]["f_measure"]["f_measure"],
        "collar_f1_micro": event_results["overall"]["f_measure"]["f_measure"],
        "collar_f1_per_class": {c: event_results["class_wise"][c]["f_measure"]["f_measure"] for c in classes},
        "segment_f1_macro": segment_results["class_wise_average"]["f_measure"]["f_measure"],
        "segment_f1_per_class": {c: segment_results["class_wise"][c]["f_measure"]["f_measure"] for c in classes},
    }


def psds_eval_metrics(operating_points, predictions, gt, durations):
    from psds_eval import PSDSEval

    results = {}
    for name, settings in SCENARIOS.items():
        evaluator = PSDSEval(
            dtc_threshold=settings["dtc_threshold"], gtc_threshold=settings["gtc_threshold"],
            cttc_threshold=settings["cttc_threshold"], ground_truth=gt, metadata=durations,
        )
        for i, (threshold, table) in enumerate(operating_points.items()):
            table = table.copy()
            table["index"] = range(1, len(table) + 1)
            evaluator.add_operating_point(table.set_index("index"), info={"name": f"Op {i + 1:02d}", "threshold": threshold})
        score = evaluator.psds(alpha_ct=settings["alpha_ct"], alpha_st=settings["alpha_st"], max_efpr=settings["max_efpr"])
        results[name] = float(score.value)
    evaluator = PSDSEval(dtc_threshold=0.5, gtc_threshold=0.5, cttc_threshold=0.3, ground_truth=gt, metadata=durations)
    if predictions.empty:
        f1, per_class = 0.0, {}
    else:
        f1, per_class = evaluator.compute_macro_f_score(predictions)
    results["intersection_f1_macro"] = 0.0 if np.isnan(f1) else float(f1)
    results["intersection_f1_per_class"] = {k: float(v) for k, v in per_class.items()}
    return results


def to_records(table):
    table = table[["filename", "onset", "offset", "event_label"]]
    return [[r[0], None if pd.isna(r[1]) else r[1], None if pd.isna(r[2]) else r[2], None if pd.isna(r[3]) else r[3]]
            for r in table.itertuples(index=False)]


def nan_to_none(value):
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    return None if isinstance(value, float) and np.isnan(value) else value


def has_reference_tools():
    try:
        import psds_eval  # noqa: F401
        import sed_eval  # noqa: F401
    except ImportError:
        return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--oracle_python", help="a python with psds_eval 0.5.3 and sed_eval 0.2.1")
    args = parser.parse_args()
    if args.oracle_python or not has_reference_tools():
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
        from oracle_env import oracle_python, run_in_oracle

        run_in_oracle(oracle_python(args.oracle_python), Path(__file__).resolve())
    cases = {
        "handmade": handmade_case(),
        "random_small": random_case(seed=1, n_clips=12),
        "random_medium": random_case(seed=2, n_clips=60),
    }
    gt, durations, operating_points, _ = cases["handmade"]
    empty = pd.DataFrame(columns=["filename", "onset", "offset", "event_label"]).astype({"onset": float, "offset": float})
    cases["empty_output"] = (gt, durations, {0.5: empty, 0.7: empty}, empty)
    cases |= clip_set_cases()
    cases["absent_class"] = absent_class_case()
    golden = {}
    for name, (gt, durations, operating_points, predictions) in cases.items():
        expected = psds_eval_metrics(operating_points, predictions, gt, durations)
        expected.update(sed_eval_metrics(predictions, gt, durations))
        golden[name] = {
            "ground_truth": to_records(gt),
            "durations": durations.values.tolist(),
            "operating_points": {str(k): to_records(v) for k, v in operating_points.items()},
            "predictions": to_records(predictions),
            "expected": nan_to_none(expected),
        }
        print(name, {k: v for k, v in expected.items() if not isinstance(v, dict)})
    path = Path(__file__).with_name("evaluation_golden.json")
    path.write_text(json.dumps({"scenarios": SCENARIOS, "cases": golden}, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    main()
