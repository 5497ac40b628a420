"""Post-processing tuned on validation scores: per-class median windows (and F1 thresholds),
the post-processing file, and its use by the evaluation command line and the test step."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from desed_task.config import merge_for_test, validate_config
from desed_task.decoding.postprocessing_file import (
    PostProcessing,
    PostProcessingError,
    load_postprocessing,
    write_postprocessing,
)
from desed_task.evaluation import cli as evaluation_cli
from desed_task.evaluation import intersection_f1_scores
from desed_task.evaluation.postprocessed import evaluate_postprocessed
from desed_task.evaluation.report import summary_table
from desed_task.postprocessing import cli as postprocessing_cli
from desed_task.postprocessing.median_tuning import tune_median_f1, tune_median_psds

FRAME = 0.064
WINDOWS = (3, 9, 15)  # the best median window of each generated class
GRID = list(range(1, 20, 2))


def known_window_case(n_clips: int = 8, n_frames: int = 156, seed: int = 0):
    """Scores where class ``class_<w>`` is best filtered by exactly w frames.

    Each class has one event of (w + 1) / 2 frames at 0.8 (kept by a window of w, erased by
    w + 2) and two blips of (w - 1) / 2 frames at 0.9 (erased by w, kept by w - 2), far
    apart, over a background below 0.1.
    """
    rng = np.random.default_rng(seed)
    classes = [f"class_{w}" for w in WINDOWS]
    scores, rows = {}, []
    for i in range(n_clips):
        name = f"clip_{i:02d}.wav"
        values = rng.uniform(0.0, 0.1, (len(WINDOWS), n_frames))
        for c, window in enumerate(WINDOWS):
            half = (window - 1) // 2
            start = 20 + int(rng.integers(0, 10))
            values[c, start : start + half + 1] = 0.8
            rows.append((name, start * FRAME, (start + half + 1) * FRAME, classes[c]))
            for blip in (70, 115):
                at = blip + int(rng.integers(0, 8))
                values[c, at : at + half] = 0.9
        scores[name] = values
    ground_truth = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])
    durations = pd.DataFrame({"filename": list(scores), "duration": n_frames * FRAME})
    return scores, classes, ground_truth, durations


def write_case(tmp_path, scores, classes, ground_truth, durations):
    folder = tmp_path / "scores"
    folder.mkdir()
    for name, values in scores.items():
        times = np.arange(values.shape[1] + 1) * FRAME
        table = pd.DataFrame(values.T, columns=classes)
        table.insert(0, "offset", times[1:])
        table.insert(0, "onset", times[:-1])
        table.to_csv(folder / name.replace(".wav", ".tsv"), sep="\t", index=False)
    ground_truth.to_csv(tmp_path / "gt.tsv", sep="\t", index=False)
    durations.to_csv(tmp_path / "dur.tsv", sep="\t", index=False)
    return folder, tmp_path / "gt.tsv", tmp_path / "dur.tsv"


def test_psds_tuning_finds_each_class_window():
    scores, classes, ground_truth, durations = known_window_case()
    result = tune_median_psds(scores, classes, ground_truth, durations, "psds1", GRID, progress=False)
    assert result.median_window == WINDOWS
    assert result.after > result.before
    assert result.evaluations == len(GRID) + 1 + len(WINDOWS) * 2  # bounded search


def test_f1_tuning_finds_windows_and_its_f1_is_the_evaluated_one():
    scores, classes, ground_truth, durations = known_window_case()
    result = tune_median_f1(scores, classes, ground_truth, durations, GRID, progress=False)
    assert result.median_window == WINDOWS
    assert all(0.1 <= t < 0.8 for t in result.threshold)
    assert result.after == pytest.approx(1.0) and result.before < 1.0
    # the same F1 through the evaluation stages, with a threshold away from 0.5
    thresholds = (0.3, 0.5, 0.7)
    settings = PostProcessing("median", tuple(classes), {"median_window": result.median_window}, thresholds)
    metrics = evaluate_postprocessed(scores, classes, ground_truth, durations, settings)
    assert metrics["intersection_f1_macro"] == pytest.approx(1.0)
    from desed_task.decoding.decode import decode_at_class_thresholds

    duration_of = dict(zip(durations["filename"], durations["duration"]))
    decoded = decode_at_class_thresholds(scores, classes, [0.85] * 3, result.median_window, FRAME, duration_of)
    assert intersection_f1_scores(decoded, ground_truth, durations)["macro"] == 0.0  # 0.8 events below 0.85


@pytest.mark.slow
def test_tune_command_writes_a_file_the_evaluation_command_applies(tmp_path, capsys):
    case = known_window_case()
    folder, gt, dur = write_case(tmp_path, *case)
    out = tmp_path / "pp.yaml"
    code = postprocessing_cli.main([
        "tune", "--scores", str(folder), "--ground_truth", str(gt), "--durations", str(dur),
        "--objective", "psds1", "--windows", "1,3,7,9,15,17", "--out", str(out), "--no_progress",
    ])
    assert code == 0
    written = yaml.safe_load(out.read_text())
    assert written["method"] == "median" and written["objective"] == "psds1"
    assert written["median_window"] == {f"class_{w}": w for w in WINDOWS}
    assert written["validation"]["after"] > written["validation"]["before"]
    capsys.readouterr()

    def evaluate(*extra):
        assert evaluation_cli.main(["--scores", str(folder), "--ground_truth", str(gt), "--durations", str(dur), *extra]) == 0
        printed = capsys.readouterr().out
        return printed, json.loads(printed.strip().splitlines()[-1])

    printed, tuned = evaluate("--postprocessing", str(out))
    assert "post-processing: per-class median filter (tuned for psds1" in printed
    _, default = evaluate()
    assert tuned["psds1"] > default["psds1"] + 0.2
    assert tuned["intersection_f1_macro"] > default["intersection_f1_macro"]


def test_file_for_other_classes_is_refused_by_name(tmp_path, capsys):
    path = write_postprocessing(
        PostProcessing("median", ("Speech", "Dog"), {"median_window": (7, 9)}, objective="psds1"), tmp_path / "pp.yaml"
    )
    with pytest.raises(PostProcessingError, match=r"Dog are not classes of this model"):
        load_postprocessing(path, ["Speech", "Cat"])
    with pytest.raises(PostProcessingError, match=r"no median window for class\(es\) Cat"):
        load_postprocessing(path, ["Speech", "Dog", "Cat"])
    assert load_postprocessing(path, ["Dog", "Speech"]).parameters["median_window"] == (9, 7)
    # through the evaluation command line: one error line, exit 2
    scores, classes, ground_truth, durations = known_window_case(n_clips=2)
    folder, gt, dur = write_case(tmp_path, scores, classes, ground_truth, durations)
    code = evaluation_cli.main(["--scores", str(folder), "--ground_truth", str(gt), "--durations", str(dur),
                                "--postprocessing", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Dog" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("method: mean\n", "'method' must be one of median, sebbs"),
        ("method: median\nmedian_window: {a: 0, b: 3}\n", "must be in \\[1, 255\\]"),
        ("method: median\nmedian_window: {a: x, b: 3}\n", "median window of a is 'x', not an integer"),
        ("method: sebbs\n", "needs a 'sebbs' mapping"),
        ("[1, 2", "not valid YAML"),
    ],
)
def test_bad_files_are_refused_with_the_reason(tmp_path, text, message):
    path = tmp_path / "pp.yaml"
    path.write_text(text)
    with pytest.raises(PostProcessingError, match=message):
        load_postprocessing(path, ["a", "b"])


def test_unreadable_inputs_and_missing_sebbs_end_with_one_error_line(tmp_path, capsys, monkeypatch):
    args = ["tune", "--scores", str(tmp_path / "nowhere"), "--ground_truth", str(tmp_path / "gt.tsv"),
            "--durations", str(tmp_path / "dur.tsv"), "--out", str(tmp_path / "pp.yaml")]
    assert postprocessing_cli.main(args) == 2
    assert capsys.readouterr().err.startswith("error: ")
    monkeypatch.setitem(sys.modules, "sebbs", None)  # as if not installed
    assert postprocessing_cli.main([*args, "--method", "sebbs"]) == 2
    assert "pip install --no-deps sebbs" in capsys.readouterr().err


def test_sebbs_tuning_runs_when_installed():
    pytest.importorskip("sebbs")
    from desed_task.postprocessing.sebbs_tuning import tune_sebbs

    scores, classes, ground_truth, durations = known_window_case(n_clips=4)
    parameters, thresholds, after = tune_sebbs(
        scores, classes, ground_truth, durations, "psds1", step_filter_lengths=(0.32,), progress=False
    )
    assert set(parameters) == {"step_filter_length", "merge_threshold_abs", "merge_threshold_rel"}
    settings = PostProcessing("sebbs", tuple(classes), parameters, thresholds)
    metrics = evaluate_postprocessed(scores, classes, ground_truth, durations, settings)
    assert metrics["psds1_exact"] == pytest.approx(after)


def test_results_table_and_config_say_which_postprocessing(tmp_path):
    table = summary_table({"student": {"psds1": 0.5}}, "per-class median filter (tuned for psds1: pp.yaml)")
    assert table.endswith("Post-processing: per-class median filter (tuned for psds1: pp.yaml).")
    config = yaml.safe_load(open("confs/demo.yaml"))
    validate_config(config)  # the key is optional: unset is the 2021 behaviour
    current = yaml.safe_load(open("confs/demo.yaml"))
    current["training"]["postprocessing"] = "pp.yaml"
    merged = merge_for_test(validate_config(config), validate_config(current))
    assert merged["training"]["postprocessing"] == "pp.yaml"  # a test-time setting


@pytest.mark.slow
def test_test_step_applies_the_file_and_a_wrong_one_stops_before_training(tmp_path, capsys, monkeypatch):
    from pipeline import tiny_config, write_config

    from desed_task.data.classes import DESED_CLASSES
    from desed_task.evaluation import metrics
    from desed_task.training.cli import ensure_demo_data, main

    # a metric added to the one list reaches the test table and the command line (issue 17)
    added = metrics.Metric("segment_f1_micro", metrics.OUTPUT, "segment-based F1 over all classes",
                           metrics.METRICS[-1].per_class, "segment_f1", "micro")
    monkeypatch.setattr(metrics, "METRICS", (*metrics.METRICS, added))
    root = tmp_path / "demo"
    pp = write_postprocessing(
        PostProcessing("median", DESED_CLASSES, {"median_window": tuple(range(1, 20, 2))}, objective="psds2"), tmp_path / "pp.yaml"
    )
    config = tiny_config(root, tmp_path / "exp", postprocessing=str(pp), n_epochs=1, max_steps_per_epoch=1)
    ensure_demo_data(config)
    conf = write_config(config, tmp_path / "tiny.yaml")
    main("test", str(conf), "unused", argv=["--conf_file", str(conf), "--gpus", "0"])
    summary = (tmp_path / "exp" / "version_0" / "metrics_test" / "summary.md").read_text()
    assert "Post-processing: per-class median filter (tuned for psds2" in summary
    capsys.readouterr()
    scores = tmp_path / "exp" / "version_0" / "metrics_test" / "student" / "scores" / "raw"
    assert evaluation_cli.main(["--scores", str(scores), "--ground_truth", config["data"]["test_tsv"],
                                "--durations", config["data"]["test_dur"], "--postprocessing", str(pp)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # the classes each macro F1 left out (issue 26.3): the same in summary.md and the JSON
    left_out = printed.pop("left_out_of_macro")
    said = "; ".join(f"{name}: {', '.join(classes)}" for name, classes in left_out.items() if classes)
    assert any(left_out.values()) and f"\n- student: {said}\n" in summary
    rows = [line.split(" | ")[:2] for line in summary.splitlines()[2:] if line.startswith("| ")]
    assert [name.lstrip("| ") for name, _ in rows] == [metric.name for metric in metrics.METRICS]
    assert {name.lstrip("| "): value for name, value in rows} == {k: f"{v:.4f}" for k, v in printed.items()}

    write_postprocessing(PostProcessing("median", ("Speech", "Bird"), {"median_window": (7, 7)}), pp)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main("test", str(conf), "unused", argv=["--conf_file", str(conf), "--gpus", "0", "--log_dir", str(tmp_path / "x")])
    assert stop.value.code == 2
    assert "Bird are not classes of this model" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_detect_events_decodes_each_class_with_its_window_and_threshold():
    from desed_task.decoding.postprocessing_file import detect_events

    scores, classes, ground_truth, _ = known_window_case(n_clips=3)
    events = detect_events(scores, classes, PostProcessing("median", tuple(classes), {"median_window": WINDOWS}, (0.5, 0.5, 0.5)))
    expected = ground_truth.sort_values(["filename", "onset"], ignore_index=True)
    pd.testing.assert_frame_equal(events.sort_values(["filename", "onset"], ignore_index=True), expected,
                                  check_dtype=False, atol=1e-9)
    assert detect_events(scores, classes, PostProcessing("median", tuple(classes), {"median_window": WINDOWS}, (0.85,) * 3)).empty


def test_class_values_files_in_yaml_and_tsv(tmp_path):
    from desed_task.decoding.class_values import read_class_values
    from desed_task.decoding.errors import ClassValuesError

    (tmp_path / "w.tsv").write_text("event_label\twindow\nDog\t9\nSpeech\t7\n")
    (tmp_path / "t.yaml").write_text("Speech: 0.4\nDog: 0.6\n")
    assert read_class_values(tmp_path / "w.tsv", ["Speech", "Dog"], int, "median window") == [7, 9]
    assert read_class_values(tmp_path / "t.yaml", ["Dog", "Speech"], float, "threshold") == [0.6, 0.4]
    with pytest.raises(ClassValuesError, match=r"t.yaml: class\(es\) Dog are not classes of this model"):
        read_class_values(tmp_path / "t.yaml", ["Speech", "Cat"], float, "threshold")


def test_every_post_processing_method_has_the_interface_and_a_tuner():
    from desed_task.decoding.method import PostProcessingMethod
    from desed_task.decoding.methods import METHODS
    from desed_task.postprocessing.cli import TUNERS

    members = [name for name in vars(PostProcessingMethod) if not name.startswith("_")]
    members += list(PostProcessingMethod.__annotations__)
    for name, method in METHODS.items():
        assert method.name == name
        assert [member for member in members if not hasattr(method, member)] == [], name
    assert set(TUNERS) == set(METHODS)


def test_a_median_file_is_a_frame_decoding_and_a_sebbs_file_is_not(tmp_path):
    """Streams and the detector run a method that is the 2021 frame decoding per class
    (``frame_decoding``); a cSEBBs file segments whole recordings (its ``events``)."""
    median = write_postprocessing(
        PostProcessing("median", ("Speech", "Dog"), {"median_window": (7, 9)}, (0.4, 0.6)), tmp_path / "m.yaml"
    )
    assert load_postprocessing(median, ["Dog", "Speech"]).frame_decoding() == ([0.6, 0.4], [9, 7])
    parameters = {"step_filter_length": (0.48, 0.32), "merge_threshold_abs": (0.2, 0.2),
                  "merge_threshold_rel": (np.inf, 2.0)}
    sebbs = write_postprocessing(PostProcessing("sebbs", ("Speech", "Dog"), parameters), tmp_path / "s.yaml")
    loaded = load_postprocessing(sebbs, ["Speech", "Dog"])
    assert loaded.frame_decoding() is None and loaded.parameters == parameters
    assert loaded.describe() == f"cSEBBs (from file: {sebbs})"
