"""Issue 26, items 1, 2, 3 and 5: scoring one's own recordings through the commands.

Labels past the end of a file, a ground-truth class the model does not know, what the macro
F1s average, and inference -> evaluation in one step (durations.tsv, --only_annotated)."""

import json
import logging

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage
from conftest import write_wav
from pipeline import tiny_config

from desed_task.config import validate_config
from desed_task.data.datamodule import DESEDDataModule
from desed_task.data.label_encoder import ManyHotEncoder
from desed_task.decoding import (
    EvaluationInputError,
    read_score_folder,
    write_sed_scores,
)
from desed_task.evaluation import evaluate as evaluate_module
from desed_task.evaluation import (
    evaluate_scores,
    exact_psds_scenarios,
)
from desed_task.evaluation.cli import main
from desed_task.evaluation.exact_psds_from_runs import psd_roc_from_class_rocs, staircase_auc
from desed_task.evaluation.metrics import PSDS_SCENARIO_1
from desed_task.inference.cli import main as inference_main
from desed_task.postprocessing.cli import main as tune_main

MODEL_CLASSES = ["Alarm", "Dog", "Frying", "Speech"]
PAST_END = "event(s) start at or after their clip's end and are ignored"


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Scores of 6 recordings (one 45 s long, the others 10 s) for 4 classes and a ground truth
    that annotates Alarm, Dog and Frying (Speech: scored, never annotated)."""
    rng = np.random.default_rng(3)
    folder = tmp_path_factory.mktemp("own")
    lengths = {"long45.wav": 45.0, **{f"rec{i}.wav": 10.0 for i in range(5)}}
    rows, scores = [], {}
    for name, seconds in lengths.items():
        n_frames = int(round(seconds / 0.064))
        truth = np.zeros((len(MODEL_CLASSES), n_frames))
        for c, label in enumerate(MODEL_CLASSES[:3]):
            start = int(rng.integers(0, n_frames - 40))
            stop = start + int(rng.integers(10, 40))
            truth[c, start:stop] = 1
            rows.append((name, round(start * 0.064, 3), round(stop * 0.064, 3), label))
        noise = scipy.ndimage.uniform_filter1d(rng.random(truth.shape), 9, axis=-1)
        scores[name] = np.clip(0.55 * truth + 0.7 * noise - 0.1, 0, 1)
    ground_truth = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])
    durations = pd.DataFrame({"filename": list(lengths), "duration": list(lengths.values())})
    write_sed_scores(scores, MODEL_CLASSES, 0.064, folder / "scores")
    durations.to_csv(folder / "dur.tsv", sep="\t", index=False)
    return folder, scores, ground_truth, durations


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _metrics(printed: dict) -> dict:
    return {k: v for k, v in printed.items() if k != "left_out_of_macro"}


def test_labels_past_the_end_of_a_file_are_dropped_with_training_s_warning(recordings, tmp_path, capsys, caplog):
    """Item 1: `long45.wav 46.0 48.0 Frying` for a 45 s file: one counted warning naming the
    file and line, the same as training's (one rule, data.tables.drop_events_past_end), and
    the event is dropped as training drops it: the metrics are those of the ground truth
    without that line, and differ from counting it as a miss."""
    folder, scores, ground_truth, durations = recordings
    past = pd.DataFrame([("long45.wav", 46.0, 48.0, "Frying"), ("rec0.wav", 12.5, 13.0, "Dog")],
                        columns=ground_truth.columns)
    with_past = pd.concat([ground_truth.iloc[:4], past, ground_truth.iloc[4:]], ignore_index=True)
    with_past.to_csv(tmp_path / "gt.tsv", sep="\t", index=False)
    ground_truth.to_csv(tmp_path / "clean.tsv", sep="\t", index=False)
    base = ["--durations", str(folder / "dur.tsv"), "--scores", str(folder / "scores"), "--n_thresholds", "10"]
    with caplog.at_level(logging.WARNING):
        assert main(["--ground_truth", str(tmp_path / "gt.tsv"), *base]) == 0
    printed = _json(capsys)
    said = [r.getMessage() for r in caplog.records if PAST_END in r.getMessage()]
    assert said == [
        f"ground truth: 2 {PAST_END} (first: {tmp_path / 'gt.tsv'} line 6: long45.wav onset 46 s, clip end 45 s); "
        "fix or remove those lines"
    ]
    assert main(["--ground_truth", str(tmp_path / "clean.tsv"), *base]) == 0
    assert printed == _json(capsys)
    kept = evaluate_scores(scores, MODEL_CLASSES, with_past, durations, n_thresholds=10)
    assert kept["psds2_exact"] < printed["psds2_exact"] and kept["psds1"] < printed["psds1"]

    # the tuning command reads its ground truth by the same rule
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert tune_main(["tune", "--scores", str(folder / "scores"), "--ground_truth", str(tmp_path / "gt.tsv"),
                          "--durations", str(folder / "dur.tsv"), "--windows", "1,7", "--out",
                          str(tmp_path / "pp.yaml"), "--no_progress"]) == 0
    assert [r.getMessage() for r in caplog.records if PAST_END in r.getMessage()] == said

    # training: the same function and message for a set's labels past data.audio_max_len
    write_wav(tmp_path / "test" / "rec0.wav", seconds=10.0)
    (tmp_path / "test.tsv").write_text("filename\tonset\toffset\tevent_label\nrec0.wav\t1.0\t2.0\tDog\n"
                                       "rec0.wav\t3.0\t4.0\tFrying\nrec0.wav\t12.5\t13.0\tDog\n")
    config = tiny_config(tmp_path / "absent", tmp_path / "exp")
    del config["demo"]
    config["data"].update(test_folder=str(tmp_path / "test"), test_folder_44k=None,
                          test_tsv=str(tmp_path / "test.tsv"), test_dur=str(tmp_path / "test_dur.tsv"))
    (tmp_path / "test_dur.tsv").write_text("filename\tduration\nrec0.wav\t10.0\n")
    config = validate_config(config)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        DESEDDataModule(config, ManyHotEncoder.from_config(config), mode="test").setup("test")
    said = [r.getMessage() for r in caplog.records if PAST_END in r.getMessage()]
    assert said == [f"test: 1 {PAST_END} (first: {tmp_path / 'test.tsv'} line 4: rec0.wav onset 12.5 s, "
                    "clip end 10 s); fix or remove those lines"]


def test_a_ground_truth_class_the_model_does_not_know_is_one_rule_for_scores_and_predictions(
    recordings, tmp_path, capsys, caplog, monkeypatch
):
    """Item 2: Door_knock annotated, not among the model's classes. As psds_eval and sed_eval
    score a ground-truth class without detections: never detected (TPR 0 in the PSDS and the
    exact PSDS), for --scores and --predictions alike, one warning naming the model's classes;
    --strict_classes refuses it, and a failed command writes nothing to --save_dir."""
    folder, scores, ground_truth, durations = recordings
    knock = pd.DataFrame([("rec1.wav", 2.0, 2.4, "Door_knock"), ("rec3.wav", 6.0, 6.5, "Door_knock")],
                         columns=ground_truth.columns)
    gt = pd.concat([ground_truth, knock], ignore_index=True)
    gt.to_csv(tmp_path / "gt.tsv", sep="\t", index=False)
    base = ["--ground_truth", str(tmp_path / "gt.tsv"), "--durations", str(folder / "dur.tsv"), "--n_thresholds", "10"]
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        assert main([*base, "--scores", str(folder / "scores"), "--save_dir", str(run)]) == 0
    from_scores = _json(capsys)
    said = [r.getMessage() for r in caplog.records if "have no scores" in r.getMessage()]
    assert len(said) == 1 and "class(es) Door_knock have no scores (the model's 4 classes: Alarm, Dog, Frying, " \
        "Speech)" in said[0] and "TPR 0" in said[0], said

    # the exact PSDS counts Door_knock as a class whose ROC is the origin: scenario 1 (no
    # cross-triggers) from the other classes' ROCs and a zero one
    known = exact_psds_scenarios({k: v[:3] for k, v in scores.items()}, MODEL_CLASSES[:3], 0.064, ground_truth, durations,
                                 {"psds1": PSDS_SCENARIO_1})["psds1"]
    rocs = [*(known.class_rocs[c] for c in MODEL_CLASSES[:3]), (np.zeros(1), np.zeros(1))]
    etpr, efpr = psd_roc_from_class_rocs(rocs, 1.0, 100.0)
    assert from_scores["psds1_exact"] == pytest.approx(staircase_auc(etpr, efpr, 100.0) / 100.0, abs=1e-12)
    assert from_scores["psds1_exact"] < known.value
    per_class = pd.read_csv(run / "scores_evaluation" / "psds_exact_per_class.tsv", sep="\t").set_index("event_label")
    assert per_class.loc["Door_knock"].tolist() == [0.0, 0.0]

    # the same file with --operating_points and --predictions (decoded by the --scores run):
    # the same PSDS and F1s
    decoded = run / "scores_evaluation"
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main([*base, "--operating_points", str(decoded / "operating_points"),
                     "--predictions", str(decoded / "predictions_th_0.5.tsv")]) == 0
    from_files = _json(capsys)
    for name in ("psds1", "psds2", "intersection_f1_macro", "collar_f1_macro", "segment_f1_macro"):
        assert from_files[name] == pytest.approx(from_scores[name], abs=1e-9), name
    said = [r.getMessage() for r in caplog.records if "have no detection" in r.getMessage()]
    assert len(said) == 2 and all("class(es) Door_knock of" in m and "TPR 0" in m for m in said), said

    # --strict_classes: refused, naming the model's classes; nothing left in --save_dir
    failed = tmp_path / "failed"
    assert main([*base, "--scores", str(folder / "scores"), "--save_dir", str(failed), "--strict_classes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'gt.tsv'}: class(es) Door_knock have no scores "
                                               "(the model's 4 classes: Alarm, Dog, Frying, Speech)")
    assert not failed.exists() and not list(tmp_path.glob(".failed*"))
    # a failure after the decoded operating points and the PSDS tables were written (here in the
    # exact PSDS) leaves an earlier result as it was, and no new folder
    before = {p.relative_to(run): p.stat().st_mtime_ns for p in run.rglob("*")}

    def fails(*args, **kwargs):
        assert (list(tmp_path.glob(".*.partial/scores_evaluation/operating_points/*.tsv"))
                and list(tmp_path.glob(".*.partial/scores_evaluation/psds1_roc.png")))  # written, staged
        raise EvaluationInputError("the exact PSDS failed")

    monkeypatch.setattr(evaluate_module, "evaluate_exact", fails)
    for save_dir in (run, tmp_path / "new"):
        assert main([*base, "--scores", str(folder / "scores"), "--save_dir", str(save_dir)]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == "error: the exact PSDS failed"
    assert {p.relative_to(run): p.stat().st_mtime_ns for p in run.rglob("*")} == before
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".run*")) + list(tmp_path.glob(".new*"))
    monkeypatch.undo()

    # sed_scores_eval cannot score a class without scores: --reference refuses it
    pytest.importorskip("sed_scores_eval")
    assert main([*base, "--scores", str(folder / "scores"), "--save_dir", str(failed), "--reference"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "Door_knock have no scores, which sed_scores_eval (--reference) " \
        "refuses" in err[-1] and not failed.exists()


def test_the_summary_names_the_classes_each_macro_f1_leaves_out(recordings, tmp_path, capsys, caplog):
    """Item 3: the macro F1s keep their official value (the mean over the classes with a
    defined F1), and the JSON summary and a warning name the classes each one left out."""
    folder, scores, ground_truth, durations = recordings
    gt_path = tmp_path / "gt.tsv"
    ground_truth.to_csv(gt_path, sep="\t", index=False)
    # one output that detects Dog well, Frying with no true positive, Alarm never, Speech
    # (not annotated) once
    dogs = ground_truth[ground_truth["event_label"] == "Dog"]
    fryings = ground_truth[ground_truth["event_label"] == "Frying"].assign(onset=0.0, offset=0.05)
    speech = pd.DataFrame([("rec2.wav", 1.0, 2.0, "Speech")], columns=ground_truth.columns)
    pd.concat([dogs, fryings, speech]).to_csv(tmp_path / "pred.tsv", sep="\t", index=False)
    with caplog.at_level(logging.WARNING):
        assert main(["--ground_truth", str(gt_path), "--durations", str(folder / "dur.tsv"),
                     "--predictions", str(tmp_path / "pred.tsv"), "--save_dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    printed = json.loads(out.strip().splitlines()[-1])
    assert printed["left_out_of_macro"] == {
        "intersection_f1_macro": ["Alarm", "Frying"],  # psds_eval: no true positive
        # sed_eval: no ground truth; a class without detections scores 0 in the collar F1 (2021's
        # empty_system_output_handling "zero_score"), is undefined in the segment F1
        "collar_f1_macro": ["Speech"],
        "segment_f1_macro": ["Alarm", "Speech"],
    }
    assert "intersection_f1_macro leaves out (F1 undefined): Alarm, Frying" in out
    per_class = pd.read_csv(tmp_path / "out" / "f1_per_class.tsv", sep="\t").set_index("event_label")
    assert printed["intersection_f1_macro"] == pytest.approx(per_class.loc["Dog", "intersection_f1"]) == 1.0
    assert printed["collar_f1_macro"] == pytest.approx(per_class.loc[["Alarm", "Dog", "Frying"], "collar_f1"].mean())
    said = [r.getMessage() for r in caplog.records if "macro F1s average" in r.getMessage()]
    assert said == [f"{tmp_path / 'pred.tsv'}: macro F1s average the classes with a defined F1 (as psds_eval and "
                    "sed_eval): intersection_f1_macro leaves out 2 of 3 classes (Alarm, Frying); collar_f1_macro "
                    "leaves out 1 of 4 classes (Speech); segment_f1_macro leaves out 2 of 4 classes (Alarm, Speech)"]


def test_inference_then_evaluation_in_one_step(tiny_checkpoint, tmp_path, capsys):
    """Item 5: inference writes durations.tsv beside events.tsv and the scores; an evaluation
    over more recordings than the ground truth names is refused, naming --only_annotated,
    which evaluates the annotated ones and says how many were left out."""
    inputs = tmp_path / "in"
    write_wav(inputs / "a.wav", seconds=10.0, seed=1)
    write_wav(inputs / "b.flac", seconds=7.3, seed=2)
    write_wav(inputs / "sub" / "c.wav", seconds=12.0, fs=44100, seed=3)
    write_wav(inputs / "d.wav", seconds=3.0, seed=4)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as done:
        inference_main(["--checkpoint", str(tiny_checkpoint), "--out_dir", str(out), "--gpus", "0", str(inputs)])
    assert done.value.code == 0
    capsys.readouterr()
    written = pd.read_csv(out / "durations.tsv", sep="\t")
    assert dict(zip(written["filename"], written["duration"])) == {
        "a.wav": 10.0, "b.flac": 7.3, "d.wav": 3.0, "sub/c.wav": 12.0}
    events = pd.read_csv(out / "events.tsv", sep="\t")
    # the annotations of three recordings (d.wav: annotated, without events)
    gt = tmp_path / "gt.tsv"
    gt.write_text("filename\tonset\toffset\tevent_label\na.wav\t1.0\t3.0\tDog\nsub/c.wav\t2.0\t9.5\tSpeech\n"
                  "b.flac\t0.5\t1.5\tDog\nd.wav\t\t\t\n")
    (tmp_path / "dur.tsv").write_text("filename\tduration\na.wav\t10\nsub/c.wav\t12\nb.flac\t7.3\n")
    common = ["--ground_truth", str(gt), "--scores", str(out / "scores"), "--predictions", str(out / "events.tsv"),
              "--n_thresholds", "10"]
    assert main([*common, "--durations", str(out / "durations.tsv")]) == 0  # every clip annotated
    complete = _json(capsys)
    gt.write_text(gt.read_text().replace("d.wav\t\t\t\n", ""))  # d.wav not annotated
    # without the flag, a clip of --durations without a row is a clip without events, as said
    assert main([*common, "--durations", str(out / "durations.tsv")]) == 0
    printed = capsys.readouterr().out
    assert f"1 of the 4 clip(s) of {out / 'durations.tsv'} have no row in {gt} (first: d.wav): evaluated as " \
        "clips without events (--only_annotated leaves them out)" in printed
    assert json.loads(printed.strip().splitlines()[-1]) == complete
    assert main([*common, "--durations", str(tmp_path / "dur.tsv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "clip(s) not in" in err[0] and "--only_annotated" in err[0], err
    assert main([*common, "--durations", str(out / "durations.tsv"), "--only_annotated"]) == 0
    printed = capsys.readouterr().out
    assert f"--only_annotated: 3 clip(s) named by {gt} evaluated, 1 other clip(s)" in printed
    assert "left out (first: d.wav)" in printed
    annotated = json.loads(printed.strip().splitlines()[-1])

    # the same as evaluating the three annotated recordings alone
    alone = tmp_path / "alone"
    scores, class_names, _ = read_score_folder(out / "scores", set(written["filename"]))
    write_sed_scores({k: v for k, v in scores.items() if k != "d.wav"}, class_names, 0.064, alone / "scores")
    events[events["filename"] != "d.wav"].to_csv(alone / "events.tsv", sep="\t", index=False)
    assert main(["--ground_truth", str(gt), "--durations", str(tmp_path / "dur.tsv"), "--scores", str(alone / "scores"),
                 "--predictions", str(alone / "events.tsv"), "--n_thresholds", "10"]) == 0
    assert annotated == _json(capsys)
    assert annotated != complete  # d.wav's detections counted as false positives there
