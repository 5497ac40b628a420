"""The scoring taken out of the LightningModule: the clip-outputs buffer and the validation
metrics (pure, in `desed_task.evaluation`), and the module left with the method only."""

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from desed_task.decoding.decode import decode_scores
from desed_task.evaluation import collar_f1, intersection_f1_macro, weak_f1_macro
from desed_task.evaluation.clip_outputs import ClipOutputs
from desed_task.evaluation.validation_metrics import OBJECTIVE, validation_metrics

CLASSES = ["Alarm", "Dog"]
MEAN_TEACHER = Path(__file__).resolve().parents[1] / "desed_task" / "training" / "mean_teacher.py"


def test_clip_outputs_keep_weak_outputs_of_weak_clips_and_strong_scores_of_the_others():
    outputs = ClipOutputs(("student", "teacher"))
    strong = np.arange(3 * 2 * 4, dtype=np.float32).reshape(3, 2, 4)
    weak = np.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]], dtype=np.float32)
    targets = np.array([[0, 1], [1, 0], [0, 0]], dtype=np.float32)
    batch = {"student": (strong, weak), "teacher": (strong + 1, weak)}
    outputs.add_batch(["a.wav", "b.wav", "c.wav"], np.array([False, True, False]), targets, batch)
    kept_strong, kept_weak = outputs.take()
    assert list(kept_strong["student"]) == ["a.wav", "c.wav"] and list(kept_weak["teacher"]) == ["b.wav"]
    np.testing.assert_array_equal(kept_strong["teacher"]["c.wav"], strong[2] + 1)
    probs, target = kept_weak["student"]["b.wav"]
    np.testing.assert_array_equal(probs, weak[1])
    np.testing.assert_array_equal(target, targets[1])
    assert outputs.take() == ({"student": {}, "teacher": {}}, {"student": {}, "teacher": {}})  # emptied


def test_clips_at_their_own_lengths_keep_every_strong_score():
    outputs = ClipOutputs(("student",))
    clips = [np.zeros((2, 5)), np.ones((2, 9))]
    outputs.add_batch(["a.wav", "b.wav"], np.array([True, True]), None, {"student": (clips, None)})
    strong, weak = outputs.take()
    assert [s.shape for s in strong["student"].values()] == [(2, 5), (2, 9)] and weak == {"student": {}}


def _synthetic_case() -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    names = ["s1.wav", "s2.wav"]
    scores = {name: rng.random((len(CLASSES), 156)).astype(np.float32) for name in names}
    events = pd.DataFrame({"filename": names, "onset": [0.5, 2.0], "offset": [3.0, 6.5],
                           "event_label": ["Alarm", "Dog"]})
    durations = pd.DataFrame({"filename": names, "duration": [10.0, 10.0]})
    return scores, events, durations


@pytest.mark.parametrize("synth_type", ["intersection", "event"])
def test_validation_metrics_are_the_2021_values_and_the_objective_is_the_students(synth_type):
    scores, events, durations = _synthetic_case()
    weak_probs = np.array([[0.9, 0.2], [0.3, 0.7]])
    weak_targets = np.array([[1.0, 0.0], [1.0, 1.0]])
    strong = {"student": scores, "teacher": {k: v[::-1].copy() for k, v in scores.items()}}
    weak = {"student": {"w1.wav": (weak_probs[0], weak_targets[0]), "w2.wav": (weak_probs[1], weak_targets[1])},
            "teacher": {}}
    thresholds = [0.3, 0.5]
    metrics = validation_metrics(strong, weak, CLASSES, events, durations, thresholds=thresholds, median_window=7,
                                 frame_step=0.064, max_event_time=10.0, synth_type=synth_type)
    assert list(metrics)[-1] == OBJECTIVE
    assert metrics["val/weak/student/macro_F1"] == weak_f1_macro(weak_probs, weak_targets)
    assert metrics["val/weak/teacher/macro_F1"] == 0.0  # no weak clips
    names = sorted(scores)
    decoded = decode_scores(np.stack([scores[n] for n in names]), names, CLASSES, thresholds, median_window=7,
                            frame_step=0.064, max_event_time=10.0)
    intersection = float(np.mean([intersection_f1_macro(decoded[t], events, durations) for t in thresholds]))
    event = collar_f1(decoded[0.5], events, durations=durations)["macro"]
    assert metrics["val/synth/student/intersection_f1_macro"] == intersection
    assert metrics["val/synth/student/event_f1_macro"] == event
    synth = intersection if synth_type == "intersection" else event
    assert metrics[OBJECTIVE] == metrics["val/weak/student/macro_F1"] + synth


def test_the_mean_teacher_module_holds_the_method_only():
    """Scoring, reports and the scaler fit live in callbacks: the module imports no evaluation."""
    tree = ast.parse(MEAN_TEACHER.read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {name for name in imported if name.startswith("desed_task.evaluation")}
    methods = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert not methods & {"on_fit_start", "on_test_start", "on_validation_epoch_end", "on_test_epoch_end"}
