"""Decoding, input checks, the weak F1, evaluate_scores and the command line."""

import json

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage

from desed_task.decoding import (
    EvaluationInputError,
    decode_scores,
    median_filter_binary,
    median_filter_scores,
)
from desed_task.evaluation import (
    collar_f1,
    evaluate_scores,
    intersection_f1_macro,
    psds_from_operating_points,
    read_event_table,
    segment_f1,
    weak_f1_macro,
)
from desed_task.evaluation.cli import main

CLASSES = ["Alarm", "Dog", "Speech"]


def decode_2021(scores, filenames, class_names, threshold, window, frame_step=0.064):
    """The 2021 per-clip loop: binarise, scipy median filter, contiguous regions."""
    rows = []
    for clip_scores, filename in zip(scores, filenames):
        active = scipy.ndimage.median_filter(clip_scores.T > threshold, (window, 1))
        for c, label in enumerate(class_names):
            padded = np.concatenate([[0], active[:, c].astype(int), [0]])
            changes = np.flatnonzero(np.diff(padded))
            for start, stop in changes.reshape(-1, 2):
                onset = np.clip(start * 4 / (16000 / 256), 0, 10)
                offset = np.clip(stop * 4 / (16000 / 256), 0, 10)
                rows.append((filename, onset, offset, label))
    return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])


@pytest.fixture(scope="module")
def synthetic():
    """Smooth random scores for 12 clips, the ground truth they were drawn from."""
    rng = np.random.default_rng(0)
    n_clips, n_frames = 12, 156
    filenames = [f"clip{i:02d}.wav" for i in range(n_clips)]
    truth = np.zeros((n_clips, len(CLASSES), n_frames), bool)
    rows = []
    for i, name in enumerate(filenames):
        for c, label in enumerate(CLASSES):
            if rng.random() < 0.5:
                start = rng.integers(0, 120)
                stop = min(n_frames, start + rng.integers(5, 60))
                truth[i, c, start:stop] = True
                rows.append((name, start * 0.064, stop * 0.064, label))
        if not truth[i].any():
            rows.append((name, np.nan, np.nan, None))
    noise = scipy.ndimage.uniform_filter1d(rng.random(truth.shape), 9, axis=-1)
    scores = np.clip(0.6 * truth + 0.6 * noise - 0.1, 0, 1)
    ground_truth = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])
    durations = pd.DataFrame({"filename": filenames, "duration": 10.0})
    return scores, filenames, ground_truth, durations


@pytest.mark.parametrize("window", [1, 2, 5, 7, 12])
def test_median_filter_matches_scipy(window):
    active = np.random.default_rng(window).random((6, 3, 40)) > 0.5
    expected = np.stack([scipy.ndimage.median_filter(a.T, (window, 1)).T for a in active])
    np.testing.assert_array_equal(median_filter_binary(active, window), expected)


def test_decode_matches_the_2021_loop(synthetic):
    scores, filenames, _, _ = synthetic
    thresholds = [0.1, 0.35, 0.5, 0.9]
    decoded = decode_scores(scores, filenames, CLASSES, thresholds, median_window=7)
    for threshold in thresholds:
        expected = decode_2021(scores, filenames, CLASSES, threshold, 7)
        pd.testing.assert_frame_equal(decoded[threshold], expected, check_dtype=False)


def test_decode_per_class_window_and_durations():
    scores = np.zeros((1, 2, 20))
    scores[0, :, 5:15] = 1.0
    scores[0, 0, 9] = 0.0  # a one-frame gap, closed by a window of 3 but not of 1
    decoded = decode_scores(scores, ["a.wav"], ["x", "y"], [0.5], [3, 1], 0.5, durations=np.array([6.0]))[0.5]
    assert decoded[["onset", "offset"]].values.tolist() == [[2.5, 6.0], [2.5, 6.0]]
    decoded = decode_scores(scores, ["a.wav"], ["x", "y"], [0.5], [1, 1], 0.5)[0.5]
    assert decoded["event_label"].tolist() == ["x", "x", "y"]


def test_weak_f1_matches_torchmetrics():
    import torch  # a dependency, as torchmetrics is of lightning: never absent
    from torchmetrics import classification as metrics
    rng = np.random.default_rng(0)
    probabilities = rng.random((40, 10))
    targets = (rng.random((40, 10)) < 0.3).astype(int)
    targets[:, 3] = 0  # a class with no positives...
    probabilities[:, 3] = 0.1  # ...and no positive decisions: F1 0 in torchmetrics
    probabilities[0, 0] = 0.5  # exactly at the threshold: not positive
    metric = metrics.MultilabelF1Score(num_labels=10, average="macro", threshold=0.5)
    expected = float(metric(torch.tensor(probabilities), torch.tensor(targets)))
    assert weak_f1_macro(probabilities, targets) == pytest.approx(expected, abs=1e-6)


def test_empty_output_scores_zero(synthetic):
    _, _, ground_truth, durations = synthetic
    empty = pd.DataFrame(columns=["filename", "onset", "offset", "event_label"])
    assert intersection_f1_macro(empty, ground_truth, durations) == 0.0
    assert collar_f1(empty, ground_truth)["macro"] == 0.0
    assert collar_f1(empty, ground_truth)["micro"] == 0.0
    assert segment_f1(empty, ground_truth)["macro"] == 0.0
    assert psds_from_operating_points({0.5: empty}, ground_truth, durations, 0.7, 0.7).value == 0.0


def _write(table, path, sep="\t"):
    table.to_csv(path, sep=sep, index=False)
    return path


def test_reader_is_lenient(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text(",event_label,onset,offset,filename\n0,Dog,1.0,2.5,a.wav\n1,,,,b.wav\n")
    table = read_event_table(path)
    assert table.columns.tolist() == ["filename", "onset", "offset", "event_label"]
    assert table["event_label"].isna().tolist() == [False, True]
    assert table["onset"].iloc[0] == 1.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("filename\tonset\toffset\tevent_label\na.wav\t2.0\t1.0\tDog\n", "offset < onset"),
        ("filename\tonset\toffset\tevent_label\na.wav\tsoon\t1.0\tDog\n", "non-numeric onset"),
        ("filename\tonset\tevent_label\na.wav\t1.0\tDog\n", "missing column"),
    ],
)
def test_malformed_rows_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(EvaluationInputError, match=rf"bad\.tsv.*{message}"):
        read_event_table(path)


def test_inconsistent_inputs_name_the_problem(synthetic, tmp_path, capsys):
    _, _, ground_truth, durations = synthetic
    gt_path = _write(ground_truth, tmp_path / "gt.tsv")
    short_durations = _write(durations.iloc[1:], tmp_path / "dur.tsv")
    predictions = pd.DataFrame([("clip00.wav", 1.0, 2.0, "Dog")], columns=ground_truth.columns)
    pred_path = _write(predictions, tmp_path / "pred.tsv")
    assert main(["--ground_truth", str(gt_path), "--durations", str(short_durations), "--predictions", str(pred_path)]) == 2
    assert "gt.tsv: 1 clip(s) missing from" in capsys.readouterr().err

    dur_path = _write(durations, tmp_path / "durations.tsv")
    unknown_clip = _write(predictions.assign(filename="other.wav"), tmp_path / "clip.tsv")
    assert main(["--ground_truth", str(gt_path), "--durations", str(dur_path), "--predictions", str(unknown_clip)]) == 2
    assert "clip.tsv: 1 clip(s) not in" in (err := capsys.readouterr().err)
    assert "durations.tsv (first: other.wav)" in err

    # a class absent from the ground truth: refused with --strict_classes (scored by default,
    # see test_evaluation_semantics)
    unknown_class = _write(predictions.assign(event_label="Cat"), tmp_path / "class.tsv")
    assert main(["--ground_truth", str(gt_path), "--durations", str(dur_path), "--predictions", str(unknown_class),
                 "--strict_classes"]) == 2
    err = capsys.readouterr().err
    assert "class.tsv: class(es) not in the ground truth (" in err and "gt.tsv): Cat (1 detection)" in err


def test_evaluate_scores_and_cli_agree(synthetic, tmp_path, capsys):
    scores, filenames, ground_truth, durations = synthetic
    mapping = dict(zip(filenames, scores))
    metrics = evaluate_scores(mapping, CLASSES, ground_truth, durations, n_thresholds=10, save_dir=tmp_path / "run")
    assert set(metrics) == {
        "psds1", "psds2", "psds1_exact", "psds2_exact", "intersection_f1_macro",
        "collar_f1_macro", "collar_f1_micro", "segment_f1_macro",
    }
    assert 0.0 < metrics["psds1"] <= 1.0 and 0.0 < metrics["psds2_exact"] <= 1.0
    # the exact PSDS bounds the 10-threshold approximation from above (up to the median filter)
    assert metrics["psds2_exact"] >= metrics["psds2"] - 0.1
    run = tmp_path / "run"
    for written in ["psds1_roc.png", "psds2_exact_roc.png", "psds_exact_per_class.tsv",
                    "f1_per_class.tsv", "predictions_th_0.5.tsv", "operating_points/predictions_th_0.05.tsv",
                    "scores/raw/clip00.tsv", "scores/filtered/clip00.tsv"]:
        assert (run / written).is_file(), written

    gt_path = _write(ground_truth, tmp_path / "gt.tsv")
    dur_path = _write(durations, tmp_path / "dur.tsv")
    assert main(["--ground_truth", str(gt_path), "--durations", str(dur_path),
                 "--scores", str(run / "scores" / "raw"), "--n_thresholds", "10"]) == 0
    from_cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert from_cli.pop("left_out_of_macro") == {"intersection_f1_macro": [], "collar_f1_macro": [],
                                                 "segment_f1_macro": []}
    assert from_cli == pytest.approx(metrics, abs=1e-6)

    assert main(["--ground_truth", str(gt_path), "--durations", str(dur_path),
                 "--operating_points", str(run / "operating_points"),
                 "--predictions", str(run / "predictions_th_0.5.tsv")]) == 0
    from_files = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    del from_files["left_out_of_macro"]
    for name, value in from_files.items():
        assert value == pytest.approx(metrics[name], abs=1e-6), name


def test_a_class_absent_from_the_ground_truth_is_scored_alike_by_evaluate_scores_and_the_cli(
    synthetic, tmp_path, capsys, caplog
):
    """Issue 16: Dog has scores but no ground-truth event. As the 2021 tools: left out of the
    PSDS and intersection F1 (psds_eval), of the exact PSDS (no PSDS without ground truth),
    false positives of the collar micro F1 and undefined in the macro F1s (sed_eval, see the
    golden case absent_class); one warning naming it and its detections; --strict_classes
    (strict_classes=True) refuses it."""
    scores, filenames, ground_truth, durations = synthetic
    no_dog = ground_truth[ground_truth["event_label"] != "Dog"]
    mapping = dict(zip(filenames, scores))
    with caplog.at_level("WARNING"):
        metrics = evaluate_scores(mapping, CLASSES, no_dog, durations, n_thresholds=10, save_dir=tmp_path / "run")
    warnings = [r.getMessage() for r in caplog.records if "not in the ground truth" in r.getMessage()]
    run = tmp_path / "run"
    operating_points = [pd.read_csv(p, sep="\t") for p in (run / "operating_points").glob("*.tsv")]
    at_half = pd.read_csv(run / "predictions_th_0.5.tsv", sep="\t")
    n_dog = sum(int((t["event_label"] == "Dog").sum()) for t in operating_points)
    assert len(warnings) == 1 and f"Dog ({n_dog} detections)" in warnings[0], warnings
    assert f"the {(at_half['event_label'] == 'Dog').sum()} of the F1 output" in warnings[0]

    # without Dog's scores: the same figures, but for the collar micro F1 (Dog's false positives)
    rows = [CLASSES.index("Alarm"), CLASSES.index("Speech")]
    without = evaluate_scores({k: v[rows] for k, v in mapping.items()}, ["Alarm", "Speech"], no_dog, durations,
                              n_thresholds=10)
    for name in without:
        if name != "collar_f1_micro":
            assert metrics[name] == pytest.approx(without[name], abs=1e-12), name
    assert metrics["collar_f1_micro"] < without["collar_f1_micro"]
    assert metrics["collar_f1_micro"] == collar_f1(at_half, no_dog, durations=durations)["micro"]

    gt_path, dur_path = _write(no_dog, tmp_path / "gt.tsv"), _write(durations, tmp_path / "dur.tsv")
    base = ["--ground_truth", str(gt_path), "--durations", str(dur_path)]
    caplog.clear()
    assert main([*base, "--scores", str(run / "scores" / "raw"), "--n_thresholds", "10"]) == 0
    from_cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # Dog: no ground truth, its F1 undefined in sed_eval's macro F1s
    assert from_cli.pop("left_out_of_macro") == {"intersection_f1_macro": [], "collar_f1_macro": ["Dog"],
                                                 "segment_f1_macro": ["Dog"]}
    assert from_cli == pytest.approx(metrics, abs=1e-6)
    assert main([*base, "--operating_points", str(run / "operating_points"),
                 "--predictions", str(run / "predictions_th_0.5.tsv")]) == 0
    from_files = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    del from_files["left_out_of_macro"]
    for name, value in from_files.items():
        assert value == pytest.approx(metrics[name], abs=1e-6), name
    said = [r.getMessage() for r in caplog.records if "not in the ground truth" in r.getMessage()]
    assert len(said) == 3 and "operating_points: class(es) not in the ground truth" in said[1]

    for given in (["--scores", str(run / "scores" / "raw")], ["--predictions", str(run / "predictions_th_0.5.tsv")]):
        assert main([*base, *given, "--strict_classes"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "not in the ground truth" in err[0] and "Dog (" in err[0]
    with pytest.raises(EvaluationInputError, match=r"class\(es\) not in the ground truth .*: Dog \("):
        evaluate_scores(mapping, CLASSES, no_dog, durations, n_thresholds=10, strict_classes=True)


@pytest.mark.parametrize("window", [2, 3, 7, 12, 31, 101])
def test_median_filter_scores_matches_scipy(window):
    rng = np.random.default_rng(window)
    for n_frames in (1, 3, 10, 156):
        scores = np.round(rng.random((4, 3, n_frames)), 1)  # ties
        expected = scipy.ndimage.median_filter(scores, size=(1, 1, window), mode="reflect")
        np.testing.assert_array_equal(median_filter_scores(scores, window), expected)
    per_class = median_filter_scores(scores, [window, 1, 5])
    np.testing.assert_array_equal(per_class[:, 0], expected[:, 0])
    np.testing.assert_array_equal(per_class[:, 1], scores[:, 1])
    np.testing.assert_array_equal(per_class[:, 2], scipy.ndimage.median_filter(scores[:, 2], size=(1, 5), mode="reflect"))


def test_decode_clamps_event_times_to_audio_max_len_as_2021():
    """A 12 s clip (187 frames): 2021's encoder clamped onset and offset to audio_max_len,
    keeping an event wholly past 10 s as (10, 10)."""
    rng = np.random.default_rng(3)
    scores = scipy.ndimage.uniform_filter1d(rng.random((2, 3, 187)), 9, axis=-1)
    scores[0, 0, 170:180] = 1.0  # 10.88 .. 11.52 s: past 10 s
    filenames = ["a.wav", "b.wav"]
    decoded = decode_scores(scores, filenames, CLASSES, [0.3, 0.5], median_window=7, max_event_time=10.0)
    for threshold in (0.3, 0.5):
        expected = decode_2021(scores, filenames, CLASSES, threshold, 7)
        pd.testing.assert_frame_equal(decoded[threshold], expected, check_dtype=False)
    assert ((decoded[0.5]["onset"] == 10.0) & (decoded[0.5]["offset"] == 10.0)).any()
    assert decode_scores(scores, filenames, CLASSES, [0.5], median_window=7)[0.5]["offset"].max() > 11.0


def test_decode_at_unsorted_thresholds_and_nan_scores(synthetic):
    scores, filenames, _, _ = synthetic
    scores = scores.copy()
    scores[0, 1, 10:14] = np.nan  # never above a threshold: ``nan > threshold`` is False
    thresholds = [0.9, 0.1, 0.5, 0.35]
    decoded = decode_scores(scores, filenames, CLASSES, thresholds, median_window=7)
    assert list(decoded) == thresholds
    for threshold in thresholds:
        expected = decode_2021(scores, filenames, CLASSES, threshold, 7)
        pd.testing.assert_frame_equal(decoded[threshold], expected, check_dtype=False)


def test_collar_f1_takes_the_maximum_matching_where_events_compete():
    # r1 matches e1 and e2, r2 only e1: the maximum matching pairs r1-e2 and r2-e1; the
    # lone pair of b.wav is matched without the matching algorithm
    columns = ["filename", "onset", "offset", "event_label"]
    ground_truth = pd.DataFrame(
        [("a.wav", 1.0, 2.0, "x"), ("a.wav", 1.1, 2.0, "x"), ("b.wav", 3.0, 4.0, "x")], columns=columns
    )
    predictions = pd.DataFrame(
        [("a.wav", 1.05, 2.0, "x"), ("a.wav", 0.85, 2.0, "x"), ("b.wav", 3.1, 4.0, "x")], columns=columns
    )
    durations = pd.DataFrame({"filename": ["a.wav", "b.wav"], "duration": [10.0, 10.0]})
    assert collar_f1(predictions, ground_truth, durations=durations)["macro"] == 1.0
    assert collar_f1(predictions.iloc[[0, 2]], ground_truth, durations=durations)["x"] == pytest.approx(0.8)
