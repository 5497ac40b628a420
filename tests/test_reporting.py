"""One home for each reported thing: the metric list, the score writer and the intersection F1."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from conftest import write_wav
from test_postprocessing import WINDOWS, known_window_case

from desed_task.decoding.postprocessing_file import PostProcessing
from desed_task.decoding.score_files import read_score_folder
from desed_task.evaluation import metrics
from desed_task.evaluation.postprocessed import evaluate_postprocessed
from desed_task.inference import SoundEventDetector
from desed_task.postprocessing.median_tuning import tune_median_f1

SEGMENT_F1_MICRO = metrics.Metric(
    "segment_f1_micro", metrics.OUTPUT, "segment-based F1 on 1 s segments over all classes",
    metrics.METRICS[-1].per_class, "segment_f1", "micro",
)


def test_a_metric_added_to_the_list_reaches_the_evaluation_under_csebbs(monkeypatch):
    if importlib.util.find_spec("sebbs") is None:
        pytest.skip("the optional sebbs package is not installed (pip install --no-deps sebbs)")
    monkeypatch.setattr(metrics, "METRICS", (*metrics.METRICS, SEGMENT_F1_MICRO))
    scores, classes, ground_truth, durations = known_window_case(n_clips=3)
    parameters = {key: (0.32,) * len(classes) for key in ("step_filter_length", "merge_threshold_abs")}
    sebbs = PostProcessing("sebbs", tuple(classes), threshold=(0.5,) * len(classes),
                           parameters={**parameters, "merge_threshold_rel": (np.inf,) * len(classes)})
    results = evaluate_postprocessed(scores, classes, ground_truth, durations, sebbs)
    assert list(results) == [m.name for m in metrics.METRICS]


def test_the_tuned_f1_is_the_evaluated_f1_to_the_last_digit():
    scores, classes, ground_truth, durations = known_window_case()
    windows = list(range(1, 20, 2))
    tuned = tune_median_f1(scores, classes, ground_truth, durations, windows, progress=False)
    assert tuned.median_window == WINDOWS
    settings = PostProcessing("median", tuple(classes), {"median_window": tuned.median_window}, tuned.threshold)
    evaluated = evaluate_postprocessed(scores, classes, ground_truth, durations, settings)
    assert evaluated["intersection_f1_macro"] == tuned.after  # one intersection F1, not two alike


def test_inference_score_tables_read_back_exactly(tiny_checkpoint, tmp_path, capsys):  # noqa: F811
    from desed_task.inference.cli import main

    clip = write_wav(tmp_path / "rec.wav", seconds=12.3, seed=3)
    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoint", str(tiny_checkpoint), "--gpus", "0", "--out_dir", str(tmp_path / "out"), str(clip)])
    assert exit_info.value.code == 0
    written, classes, frame_step = read_score_folder(tmp_path / "out" / "scores", set())
    expected, _ = SoundEventDetector.from_checkpoint(tiny_checkpoint).score_file(clip)
    assert classes == list(SoundEventDetector.from_checkpoint(tiny_checkpoint).class_names)
    np.testing.assert_array_equal(written["rec.wav"], np.asarray(expected, dtype=np.float64))  # exact values
    assert frame_step == pytest.approx(0.064)
    if importlib.util.find_spec("sed_scores_eval") is not None:  # sed_scores_eval reads them as they are
        from sed_scores_eval.base_modules.io import read_sed_scores

        table = read_sed_scores(str(tmp_path / "out" / "scores" / "rec.wav.tsv"))
        np.testing.assert_array_equal(table[classes].to_numpy().T, written["rec.wav"])
