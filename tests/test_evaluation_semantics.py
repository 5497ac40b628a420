"""What is evaluated: the clip set of the durations table (issue 12), events past the clip's
end (2021 decoding, unclipped), the exact PSDS on median-filtered scores (issue 8).

The small cases are worked out by hand in the comments, as psds_eval's own tests are.
"""

import json

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage

from desed_task.decoding import (
    EvaluationInputError,
    score_dataframes,
)
from desed_task.evaluation import (
    collar_f1,
    evaluate_predictions,
    evaluate_scores,
    intersection_f1_scores,
    psds_from_operating_points,
    segment_f1,
)
from desed_task.evaluation.cli import main
from desed_task.evaluation.exact_psds import exact_psds
from desed_task.evaluation.metrics import PSDS_SCENARIO_1, PSDS_SCENARIO_2

COLUMNS = ["filename", "onset", "offset", "event_label"]


def events(*rows):
    return pd.DataFrame(list(rows), columns=COLUMNS).astype({"onset": float, "offset": float})


# a.wav has events, b.wav and c.wav none; c.wav has no detection either
DURATIONS = pd.DataFrame({"filename": ["a.wav", "b.wav", "c.wav"], "duration": [10.0, 10.0, 20.0]})
EVENTS_ONLY = events(("a.wav", 0.0, 4.0, "Dog"), ("a.wav", 5.0, 10.0, "Speech"))
WITH_EMPTY_ROWS = pd.concat([EVENTS_ONLY, events(("b.wav", None, None, None), ("c.wav", None, None, None))])
DETECTIONS = events(("a.wav", 0.0, 4.0, "Dog"), ("a.wav", 5.0, 10.0, "Speech"), ("b.wav", 2.0, 4.0, "Dog"))


@pytest.mark.parametrize("ground_truth", [EVENTS_ONLY, WITH_EMPTY_ROWS], ids=["events_only", "empty_rows"])
def test_clips_without_events_count_by_hand(ground_truth):
    # intersection (dtc = gtc = 0.5): Dog TP 1, FP 1 (b.wav), FN 0 -> 2/3; Speech 1 -> macro 5/6
    f1 = intersection_f1_scores(DETECTIONS, ground_truth, DURATIONS)
    assert f1["Dog"] == pytest.approx(2 / 3) and f1["Speech"] == 1.0 and f1["macro"] == pytest.approx(5 / 6)
    # PSDS, one operating point, alpha_ct = alpha_st = 0: Dog TPR 1 at FPR 3600 / 40 s = 90 / h,
    # Speech TPR 1 at 0; mean staircase 0.5 on [0, 90), 1 on [90, 100] -> (45 + 10) / 100
    result = psds_from_operating_points({0.5: DETECTIONS}, ground_truth, DURATIONS, dtc=0.5, gtc=0.5)
    assert result.fpr.tolist() == [[90.0], [0.0]] and result.value == pytest.approx(0.55)
    # collar: Dog P 1/2, R 1 -> 2/3; Speech 1 -> macro 5/6; micro P 2/3, R 1 -> 0.8
    collar = collar_f1(DETECTIONS, ground_truth, durations=DURATIONS)
    assert collar["macro"] == pytest.approx(5 / 6) and collar["micro"] == pytest.approx(0.8)
    # segments of 1 s: Dog reference 4, output 4 + 2 (b.wav), TP 4 -> 0.8; Speech 5/5 -> 1
    segment = segment_f1(DETECTIONS, ground_truth, durations=DURATIONS)
    assert segment["Dog"] == pytest.approx(0.8) and segment["macro"] == pytest.approx(0.9)
    assert segment["micro"] == pytest.approx(0.9)  # TP 9, output 11, reference 9


def test_with_or_without_empty_rows_the_metrics_are_the_same():
    scores, classes, gt, durations = _noisy_case(n_clips=16)
    # events on half the clips only; the others are empty-label rows, or absent
    with_events = gt[gt["filename"] < "Y0008.wav"]
    with_rows = pd.concat([with_events, events(*[(f"Y{i:04d}.wav", None, None, None) for i in range(8, 16)])])
    expected = evaluate_scores(scores, classes, with_rows, durations, n_thresholds=10)
    assert evaluate_scores(scores, classes, with_events, durations, n_thresholds=10) == expected
    assert expected["psds2"] > 0 and expected["psds2_exact"] > 0 and expected["collar_f1_macro"] > 0


def test_detections_on_clips_missing_from_the_durations_table_are_an_error(tmp_path, capsys):
    stray = pd.concat([DETECTIONS, events(("d.wav", 0.0, 1.0, "Dog"))])
    with pytest.raises(EvaluationInputError, match=r"1 clip\(s\) not in .*first: d\.wav"):
        psds_from_operating_points({0.5: stray}, EVENTS_ONLY, DURATIONS, dtc=0.5, gtc=0.5)
    for metric in (intersection_f1_scores, evaluate_predictions):
        with pytest.raises(EvaluationInputError, match=r"first: d\.wav"):
            metric(stray, EVENTS_ONLY, DURATIONS)
    for metric in (collar_f1, segment_f1):
        with pytest.raises(EvaluationInputError, match=r"first: d\.wav"):
            metric(stray, EVENTS_ONLY, durations=DURATIONS)
    scores = {name: np.zeros((2, 10)) for name in ["a.wav", "b.wav", "c.wav", "d.wav"]}
    with pytest.raises(EvaluationInputError, match=r"scores: 1 clip\(s\) not in .*first: d\.wav"):
        evaluate_scores(scores, ["Dog", "Speech"], EVENTS_ONLY, DURATIONS, n_thresholds=2)
    with pytest.raises(EvaluationInputError, match=r"scored clip\(s\) not in it \(first: \['d\.wav'\]\)"):
        exact_psds(scores, ["Dog", "Speech"], 0.064, EVENTS_ONLY, DURATIONS, **PSDS_SCENARIO_1)
    # the command line: exit code 2 and one line naming the file and the clip
    DURATIONS.to_csv(dur := tmp_path / "dur.tsv", sep="\t", index=False)
    EVENTS_ONLY.to_csv(gt := tmp_path / "gt.tsv", sep="\t", index=False)
    stray.to_csv(pred := tmp_path / "pred.tsv", sep="\t", index=False)
    assert main(["--ground_truth", str(gt), "--durations", str(dur), "--predictions", str(pred)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {pred}: 1 clip(s) not in {dur} (first: d.wav)")


def test_exact_psds_gives_sed_scores_eval_empty_lists_for_clips_without_events():
    from sed_scores_eval import intersection_based

    rng = np.random.default_rng(0)
    scores = {name: rng.random((2, 40)) for name in DURATIONS["filename"]}
    tables = score_dataframes(scores, ["Dog", "Speech"], 0.25)
    ours = {gt_name: exact_psds(scores, ["Dog", "Speech"], 0.25, gt, DURATIONS, dtc=0.5, gtc=0.5).value
            for gt_name, gt in (("events_only", EVENTS_ONLY), ("empty_rows", WITH_EMPTY_ROWS))}
    reference = intersection_based.psds(
        scores=tables,
        ground_truth={"a": [(0.0, 4.0, "Dog"), (5.0, 10.0, "Speech")], "b": [], "c": []},
        audio_durations={"a": 10.0, "b": 10.0, "c": 20.0},
        dtc_threshold=0.5, gtc_threshold=0.5, cttc_threshold=None, alpha_ct=0.0, alpha_st=0.0, max_efpr=100.0,
    )[0]
    assert ours["events_only"] == ours["empty_rows"] == pytest.approx(reference, abs=1e-9)


def test_psds_eval_example_with_a_clip_of_the_metadata_only():
    """psds_eval 0.5.3's test_two_operating_points_one_with_no_detections (its tests/data):
    events on test.wav only, test4.wav in the metadata only, detections on it at the second
    operating point; with detections of a class z4 absent from the ground truth (issue 16),
    which psds_eval ignores and sed_eval counts as false positives.

    Golden values: psds_eval 0.5.3 and sed_eval 0.2.1 (the ~/.cache/oracle2021 venv) on these
    very tables, sed_eval called as 2021 called it (classes of both tables, file by file)."""
    metadata = pd.DataFrame({"filename": ["test.wav", "test2.wav", "test3.wav", "test4.wav",
                                          "Y23R6_ppquxs_247.000_257.000.wav"],
                             "duration": [50.0, 50.0, 50.0, 120.0, 10.0]})
    gt = events(("test.wav", 2, 20, "c1"), ("test.wav", 12, 35, "c2"), ("test.wav", 42, 47, "c3"))
    det1 = events(("test.wav", 0, 19, "c1"), ("test.wav", 40, 45, "c1"), ("test.wav", 11, 25, "c2"),
                  ("test.wav", 27, 30, "c2"), ("test.wav", 32, 41.5, "c2"), ("test.wav", 38, 48, "c3"),
                  ("test.wav", 13, 21, "z4"), ("test2.wav", 1, 5, "z4"))
    det4 = events(("test4.wav", 9, 25, "c1"), ("test4.wav", 41, 66, "c1"), ("test4.wav", 25, 49, "c2"),
                  ("test4.wav", 74, 82, "c2"), ("test4.wav", 86, 105, "c2"), ("test4.wav", 33, 45, "c3"),
                  ("test4.wav", 46.5, 59, "c3"), ("test4.wav", 60, 70, "z4"))
    result = psds_from_operating_points({0: det1, 1: det4}, gt, metadata, dtc=0.5, gtc=0.5, cttc=0.3)
    assert result.value == pytest.approx(0.9142857142857143, abs=1e-9)
    assert result.class_names == ["c1", "c2", "c3"]
    # psds_eval's expected rates for the first operating point: 1 FP in 280 s = 12.857 / h
    np.testing.assert_allclose(result.fpr[:, 0], [12.857143, 12.857143, 0.0], atol=1e-6)
    # the second: no event on test4.wav, so its 2, 3, 2 detections of c1, c2, c3 are all FPs
    assert result.tpr[:, 1].tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(result.fpr[:, 1], np.array([2, 3, 2]) * 3600 / 280)
    # the F1s of the first operating point (psds_eval: z4 ignored; sed_eval: z4 has F1 NaN,
    # out of the macro mean, and its 2 detections / 12 active segments are false positives)
    intersection = intersection_f1_scores(det1, gt, metadata)
    assert intersection["macro"] == pytest.approx(0.7777777777777777, abs=1e-9) and "z4" not in intersection
    segment = segment_f1(det1, gt, durations=metadata)
    assert segment["macro"] == pytest.approx(0.7453968253968254, abs=1e-9)
    assert segment["micro"] == pytest.approx(0.6890756302521008, abs=1e-9)
    assert np.isnan(segment["z4"])
    collar = collar_f1(det1, gt, durations=metadata)
    assert collar["macro"] == collar["micro"] == 0.0 and np.isnan(collar["z4"])


def test_events_past_the_clip_end_as_psds_eval_and_sed_eval_count_them():
    # a.wav lasts 5 s (its scores were padded to 10 s); b.wav 10 s
    durations = pd.DataFrame({"filename": ["a.wav", "b.wav"], "duration": [5.0, 10.0]})
    gt = events(("a.wav", 3.0, 5.0, "Dog"), ("b.wav", 0.0, 1.0, "Speech"))
    # [3, 8] overlaps the Dog event over 2 of its 5 s (precision 0.4) and the clip ("world");
    # [6, 9] lies past a.wav's end: it overlaps nothing, so psds_eval counts it nowhere
    unclipped = events(("a.wav", 3.0, 8.0, "Dog"), ("a.wav", 6.0, 9.0, "Speech"))
    strict = psds_from_operating_points({0.5: unclipped}, gt, durations, dtc=0.5, gtc=0.5)
    assert strict.tpr[:, 0].tolist() == [0.0, 0.0]
    assert strict.fpr[:, 0].tolist() == [3600 / 15, 0.0]  # one FP (Dog) in 15 s
    loose = psds_from_operating_points({0.5: unclipped}, gt, durations, dtc=0.3, gtc=0.5)
    assert loose.tpr[:, 0].tolist() == [1.0, 0.0] and loose.fpr[:, 0].tolist() == [0.0, 0.0]
    # clipped to the durations, [3, 5] is a true positive at dtc 0.5 and [6, 9] disappears
    clipped = events(("a.wav", 3.0, 5.0, "Dog"))
    assert psds_from_operating_points({0.5: clipped}, gt, durations, dtc=0.5, gtc=0.5).tpr[0, 0] == 1.0
    # sed_eval: the offset 8 misses 5 by more than max(0.2, 0.2 x 2 s): no collar match; both
    # outputs count; segments 3..7 and 6..8 are output, Dog reference segments 3, 4
    collar = collar_f1(unclipped, gt, durations=durations)
    assert collar["micro"] == 0.0 and collar["Dog"] == 0.0
    segment = segment_f1(unclipped, gt, durations=durations)
    assert segment["Dog"] == pytest.approx(2 * 2 / (5 + 2))  # TP 2, output 5, reference 2
    assert segment["Speech"] == 0.0  # TP 0, output 3 (a.wav 6..8), reference 1


def test_evaluate_scores_clips_only_when_asked():
    # frames of 1 s; Dog active on frames 6..9 of a 10-frame clip that lasts 8 s; Cat found exactly
    dog = np.r_[np.zeros(6), np.ones(4)]
    cat = np.r_[np.zeros(1), np.ones(2), np.zeros(7)]
    scores = {"a.wav": np.stack([np.zeros(10), dog]), "b.wav": np.stack([cat, np.zeros(10)])}
    durations = pd.DataFrame({"filename": ["a.wav", "b.wav"], "duration": [8.0, 10.0]})
    gt = events(("a.wav", 6.0, 8.0, "Dog"), ("b.wav", 1.0, 3.0, "Cat"))
    # unclipped (2021): Dog [6, 10] covers its event but only half of it is on it (precision
    # 0.5): psds1's dtc 0.7 fails (TPR 0, so mean - std over classes is 0), the F1's dtc 0.5
    # passes, the collar misses the offset by 2 s; clipped to [6, 8]: everything is found
    settings = dict(n_thresholds=2, median_window=1, frame_step=1.0)
    unclipped = evaluate_scores(scores, ["Cat", "Dog"], gt, durations, **settings)
    clipped = evaluate_scores(scores, ["Cat", "Dog"], gt, durations, clip_to_durations=True, **settings)
    assert unclipped["psds1"] == 0.0 and clipped["psds1"] == 1.0
    assert unclipped["intersection_f1_macro"] == clipped["intersection_f1_macro"] == 1.0
    assert unclipped["collar_f1_macro"] == 0.5 and clipped["collar_f1_macro"] == 1.0


def _noisy_case(n_clips=120, n_frames=156, seed=0):
    """Smoothed targets plus noise, several events per clip, some clips without events."""
    rng = np.random.default_rng(seed)
    classes = ["Alarm", "Blender", "Cat", "Dog", "Speech"]
    filenames = [f"Y{i:04d}.wav" for i in range(n_clips)]
    truth = np.zeros((n_clips, len(classes), n_frames), bool)
    rows = []
    for i, name in enumerate(filenames):
        for c, label in enumerate(classes):
            for _ in range(rng.poisson(0.4)):
                start = int(rng.integers(0, n_frames - 5))
                truth[i, c, start:min(n_frames, start + int(rng.integers(3, 80)))] = True
            padded = np.concatenate([[0], truth[i, c].astype(int), [0]])
            for start, stop in np.flatnonzero(np.diff(padded)).reshape(-1, 2):
                rows.append((name, start * 0.064, stop * 0.064, label))
    smooth = scipy.ndimage.uniform_filter1d(truth.astype(float), 5, axis=-1)
    noise = scipy.ndimage.uniform_filter1d(rng.random(truth.shape), 3, axis=-1)
    scores = np.clip(0.6 * smooth + 0.8 * noise - 0.3 + 0.2 * rng.standard_normal(truth.shape), 0, 1)
    durations = pd.DataFrame({"filename": filenames, "duration": 10.0})
    return dict(zip(filenames, scores)), classes, events(*rows), durations


@pytest.mark.slow
def test_exact_psds_is_computed_on_median_filtered_scores(tmp_path):
    from sed_scores_eval import intersection_based

    scores, classes, gt, durations = _noisy_case()
    metrics = evaluate_scores(scores, classes, gt, durations, median_window=7, save_dir=tmp_path)
    filtered = {name: scipy.ndimage.median_filter(values.T, size=(7, 1)).T for name, values in scores.items()}
    tables = score_dataframes(filtered, classes, 0.064)
    ground_truth = {name[:-4]: [] for name in scores}
    for name, onset, offset, label in gt.itertuples(index=False):
        ground_truth[name[:-4]].append((onset, offset, label))
    for name, settings in (("psds1", PSDS_SCENARIO_1), ("psds2", PSDS_SCENARIO_2)):
        reference = intersection_based.psds(
            scores=tables, ground_truth=ground_truth, audio_durations={k: 10.0 for k in ground_truth},
            dtc_threshold=settings["dtc"], gtc_threshold=settings["gtc"],
            cttc_threshold=settings["cttc"] if settings["alpha_ct"] else None, alpha_ct=settings["alpha_ct"],
            alpha_st=settings["alpha_st"], max_efpr=settings["max_efpr"],
        )[0]
        assert metrics[f"{name}_exact"] == pytest.approx(reference, abs=1e-6), name
        # the threshold-free limit of the 50 operating points, not a different quantity
        assert metrics[f"{name}_exact"] >= metrics[name] - 0.005, name
    # both score folders, the filtered one as filtered above
    written = pd.read_csv(tmp_path / "scores" / "filtered" / "Y0003.tsv", sep="\t")
    np.testing.assert_allclose(written[classes].to_numpy().T, filtered["Y0003.wav"], atol=1e-6)
    raw = pd.read_csv(tmp_path / "scores" / "raw" / "Y0003.tsv", sep="\t")
    np.testing.assert_allclose(raw[classes].to_numpy().T, scores["Y0003.wav"], atol=1e-6)


def test_cli_median_window_applies_to_the_exact_psds(tmp_path, capsys):
    scores, classes, gt, durations = _noisy_case(n_clips=12)
    evaluate_scores(scores, classes, gt, durations, n_thresholds=4, save_dir=tmp_path / "run")
    gt.to_csv(gt_path := tmp_path / "gt.tsv", sep="\t", index=False)
    durations.to_csv(dur_path := tmp_path / "dur.tsv", sep="\t", index=False)

    def exact(folder, window):
        assert main(["--ground_truth", str(gt_path), "--durations", str(dur_path), "--scores", str(folder),
                     "--n_thresholds", "4", "--median_window", str(window)]) == 0
        metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        return metrics["psds1_exact"], metrics["psds2_exact"]

    raw_filtered_here = exact(tmp_path / "run" / "scores" / "raw", 7)
    assert exact(tmp_path / "run" / "scores" / "filtered", 1) == pytest.approx(raw_filtered_here, abs=1e-6)
    assert exact(tmp_path / "run" / "scores" / "raw", 1) != pytest.approx(raw_filtered_here, abs=1e-6)
    # the parent folder: the error says which folder to give
    assert main(["--ground_truth", str(gt_path), "--durations", str(dur_path),
                 "--scores", str(tmp_path / "run" / "scores")]) == 2
    assert "--median_window 1" in capsys.readouterr().err


@pytest.mark.slow  # imports Lightning
def test_the_test_set_is_every_clip_of_the_durations_table(tmp_path):
    from conftest import write_wav

    from desed_task.data.classes import DESED_CLASSES
    from desed_task.data.datamodule import DESEDDataModule
    from desed_task.data.label_encoder import ManyHotEncoder
    from desed_task.data.tables import MetadataError
    from desed_task.evaluation.tables import restrict_to_scored_clips

    for name, seconds in zip(DURATIONS["filename"], DURATIONS["duration"]):
        write_wav(tmp_path / "audio" / name, seconds=float(seconds), seed=len(name))
    DURATIONS.to_csv(tmp_path / "durations.tsv", sep="\t", index=False)
    encoder = ManyHotEncoder(list(DESED_CLASSES), audio_len=10, frame_len=2048, frame_hop=256, net_pooling=4, fs=16000)

    def test_set(ground_truth):
        ground_truth.to_csv(tmp_path / "gt.tsv", sep="\t", index=False)
        data = {"test_folder": str(tmp_path / "audio"), "test_tsv": str(tmp_path / "gt.tsv"),
                "test_dur": str(tmp_path / "durations.tsv"), "fs": 16000, "audio_max_len": 10}
        module = DESEDDataModule({"data": data, "training": {}}, encoder, mode="test")
        module.setup("test")
        return module

    with_rows, events_only = test_set(WITH_EMPTY_ROWS), test_set(EVENTS_ONLY)
    assert with_rows.test_set.filenames == events_only.test_set.filenames == ["a.wav", "b.wav", "c.wav"]
    assert not events_only.test_set[2]["strong_targets"].any()
    pd.testing.assert_frame_equal(with_rows.test_durations, events_only.test_durations)
    scores = {name: np.zeros((len(DESED_CLASSES), 156)) for name in ["a.wav", "b.wav", "c.wav"]}
    restricted = restrict_to_scored_clips(scores, events_only.test_events, events_only.test_durations)
    assert sorted(restricted[0]) == ["a.wav", "b.wav", "c.wav"] and sorted(restricted[2]["filename"]) == sorted(restricted[0])

    # a listed clip absent from the disk is skipped (counted), as before; one on disk but
    # without a duration could not be evaluated: refused before any work
    with_missing = test_set(pd.concat([EVENTS_ONLY, events(("gone.wav", 0.0, 1.0, "Dog"))]))
    assert with_missing.test_set.missing == ["gone.wav"]
    write_wav(tmp_path / "audio" / "d.wav", seconds=1.0)
    with pytest.raises(MetadataError, match=r"gt\.tsv: 1 clip\(s\) missing from .*durations\.tsv \(first: d\.wav\)"):
        test_set(pd.concat([EVENTS_ONLY, events(("d.wav", 0.0, 1.0, "Dog"))]))


def test_per_class_legend_is_outside_the_axes(tmp_path):
    from desed_task.evaluation.plots import _draw_per_class

    x = np.array([0.0, 50.0, 100.0])
    curves = {f"class_{i}": (x, np.array([0.0, 0.01 * i, 0.02 * i])) for i in range(10)}
    figure = _draw_per_class(tmp_path / "roc.png", curves, 100.0, "title")
    axes = figure.axes[0]
    assert axes.get_legend().get_window_extent().x0 >= axes.get_window_extent().x1
    assert (tmp_path / "roc.png").stat().st_size > 0


def test_the_clipping_key_is_a_boolean_off_by_default():
    from pathlib import Path

    import yaml

    from desed_task.config import ConfigError, validate_config

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "confs" / "sed.yaml").read_text())
    assert "clip_events_to_durations" not in config["training"]  # 2021: not clipped
    validate_config({**config, "training": {**config["training"], "clip_events_to_durations": True}})
    with pytest.raises(ConfigError, match="clip_events_to_durations"):
        validate_config({**config, "training": {**config["training"], "clip_events_to_durations": "yes"}})
