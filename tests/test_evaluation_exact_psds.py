"""The threshold-free PSDS of this package against sed_scores_eval 0.0.4 (the oracle),
the runs behind it, the score files and what importing the evaluation loads."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from desed_task.decoding import (
    EvaluationInputError,
    read_score_folder,
    score_dataframes,
    write_sed_scores,
)
from desed_task.evaluation import (
    exact_psds,
)
from desed_task.evaluation.cli import main
from desed_task.evaluation.detection_runs import detection_runs

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = [
    {"dtc": 0.7, "gtc": 0.7, "alpha_ct": 0.0, "alpha_st": 1.0, "max_efpr": 100.0},
    {"dtc": 0.1, "gtc": 0.1, "cttc": 0.3, "alpha_ct": 0.5, "alpha_st": 1.0, "max_efpr": 100.0},
    {"dtc": 0.5, "gtc": 0.5, "cttc": 0.2, "alpha_ct": 1.0, "alpha_st": 0.0, "max_efpr": 1000.0},
]


def random_case(seed: int, n_classes: int | None = None):
    """Clips of 1-60 frames, 0-3 events per class (on or off the frame grid, some past the
    clip's end), empty clips, scores with and without ties, durations not always n_frames."""
    rng = np.random.default_rng(seed)
    n_classes = n_classes or int(rng.integers(2, 5))
    step = float(rng.choice([0.064, 0.1, 0.02]))
    classes = [f"class{k}" for k in range(n_classes)]
    scores, rows, durations = {}, [], []
    for i in range(int(rng.integers(1, 9))):
        n_frames, name = int(rng.integers(1, 60)), f"clip{i}.wav"
        truth = np.zeros((n_classes, n_frames))
        for k in range(n_classes):
            free_from = 0.0  # sed_scores_eval refuses touching events of one class
            for _ in range(int(rng.poisson(0.8))):
                onset = free_from + rng.exponential(n_frames * step / 3)
                onset = np.ceil(onset / step) * step if rng.random() < 0.5 else onset
                offset = onset + rng.exponential(n_frames * step / 4) + 1e-3
                offset = round(offset / step) * step if rng.random() < 0.5 else offset
                if offset <= onset:
                    break
                rows.append((name, onset, offset, classes[k]))
                truth[k, int(onset / step):int(np.ceil(offset / step))] = 1
                free_from = offset + 0.01
        kind = rng.integers(0, 3)
        values = 0.6 * truth + 0.5 * rng.random((n_classes, n_frames))
        if kind == 1:
            values = np.round(values, 1)  # ties within and across clips
        elif kind == 2:
            values = np.round(rng.random((n_classes, n_frames)), 1)
        scores[name] = values
        durations.append((name, n_frames * step * float(rng.choice([1.0, 0.9, 1.2]))))
        if not any(row[0] == name for row in rows):
            rows.append((name, np.nan, np.nan, None))
    ground_truth = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])
    return scores, classes, step, ground_truth, pd.DataFrame(durations, columns=["filename", "duration"])


@pytest.fixture
def oracle(monkeypatch):
    """sed_scores_eval, made to accept classes without ground-truth events (it asserts
    there are none; its formulas then give them a TPR of 0, as ours do)."""
    pytest.importorskip("sed_scores_eval")
    from sed_scores_eval.base_modules import statistics

    def single_label(ground_truth, event_classes):
        per_class = {label: {clip: [] for clip in ground_truth} for label in event_classes}
        for clip, events in ground_truth.items():
            for onset, offset, label in events:
                per_class[label][clip].append((onset, offset))
        return per_class

    monkeypatch.setattr(statistics, "multi_label_to_single_label_ground_truths", single_label)


def assert_same(ours, reference, classes):
    assert ours.value == pytest.approx(reference.value, abs=1e-6)
    for name in classes:
        assert ours.class_psds[name] == pytest.approx(reference.class_psds[name], abs=1e-6), name
        for mine, theirs in zip(ours.class_rocs[name], reference.class_rocs[name]):
            np.testing.assert_allclose(mine, theirs, atol=1e-9)
    np.testing.assert_allclose(ours.roc_efpr, reference.roc_efpr, atol=1e-9)
    np.testing.assert_allclose(ours.roc_etpr, reference.roc_etpr, atol=1e-9)


@pytest.mark.parametrize("first_seed", range(0, 30, 10))
def test_equals_sed_scores_eval_on_random_cases(oracle, first_seed):
    for seed in range(first_seed, first_seed + 10):
        scores, classes, step, ground_truth, durations = random_case(seed)
        for settings in SCENARIOS:
            ours = exact_psds(scores, classes, step, ground_truth, durations, **settings)
            reference = exact_psds(scores, classes, step, ground_truth, durations, reference=True, **settings)
            assert_same(ours, reference, classes)


def test_equals_sed_scores_eval_with_one_class(oracle):
    for seed in range(10):
        scores, classes, step, ground_truth, durations = random_case(100 + seed, n_classes=1)
        ours = exact_psds(scores, classes, step, ground_truth, durations, **SCENARIOS[0])
        reference = exact_psds(scores, classes, step, ground_truth, durations, reference=True, **SCENARIOS[0])
        assert_same(ours, reference, classes)


def without_class(ground_truth, clips, label):
    """The ground truth less ``label``'s events, clips left empty kept as empty rows."""
    kept = ground_truth[ground_truth["event_label"] != label]
    empty = sorted(set(clips) - set(kept["filename"]))
    return pd.concat([kept, pd.DataFrame({"filename": empty, "event_label": None})], ignore_index=True)


def test_class_without_ground_truth(oracle):
    scores, classes, step, ground_truth, durations = random_case(7, n_classes=3)
    ground_truth = without_class(ground_truth, scores, "class1")
    for settings in SCENARIOS:
        ours = exact_psds(scores, classes, step, ground_truth, durations, **settings)
        reference = exact_psds(scores, classes, step, ground_truth, durations, reference=True, **settings)
        assert_same(ours, reference, classes)
        assert ours.class_psds["class1"] == 0.0


def test_reference_refuses_what_sed_scores_eval_refuses():
    pytest.importorskip("sed_scores_eval")
    scores, classes, step, ground_truth, durations = random_case(3, n_classes=2)
    ground_truth = without_class(ground_truth, scores, "class1")
    with pytest.raises(EvaluationInputError, match="sed_scores_eval"):
        exact_psds(scores, classes, step, ground_truth, durations, reference=True, **SCENARIOS[0])
    assert 0.0 <= exact_psds(scores, classes, step, ground_truth, durations, **SCENARIOS[0]).value <= 1.0


def test_runs_are_every_threshold_s_detections():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n_classes = int(rng.integers(1, 4))
        scores = {
            f"c{i}": np.round(rng.random((n_classes, int(rng.integers(1, 30)))), int(rng.integers(1, 3)))
            for i in range(int(rng.integers(1, 5)))
        }
        runs = detection_runs(scores, [f"k{k}" for k in range(n_classes)], 0.1)
        found = set()
        for i in range(len(runs)):
            label, offset = runs.label[i], runs.rank_offset[runs.label[i]]
            birth = runs.class_scores[label][runs.birth[i] - offset]
            death = runs.class_scores[label][runs.death[i] - offset] if runs.death[i] >= 0 else -np.inf
            found.add((runs.clips[runs.clip[i]], int(label), int(runs.start[i]), int(runs.stop[i]), birth, death))
        expected = set()
        for clip, values in scores.items():
            for k, row in enumerate(values):
                for threshold in np.unique(row):
                    edges = np.diff(np.concatenate([[0], (row >= threshold).astype(int), [0]]))
                    for start, stop in np.flatnonzero(edges).reshape(-1, 2):
                        before = row[start - 1] if start > 0 else -np.inf
                        after = row[stop] if stop < row.size else -np.inf
                        expected.add((clip, k, int(start), int(stop), row[start:stop].min(), max(before, after)))
        assert found == expected and len(found) == len(runs)


def test_score_files_in_sed_scores_eval_layout(tmp_path):
    pytest.importorskip("sed_scores_eval")
    from sed_scores_eval.base_modules.io import read_sed_scores
    from sed_scores_eval.base_modules.io import write_sed_scores as their_writer

    scores, classes, step, ground_truth, _ = random_case(5)
    write_sed_scores(scores, classes, step, tmp_path)
    their_writer(score_dataframes(scores, classes, step), tmp_path / "theirs")
    for name in scores:
        text = (tmp_path / name.replace(".wav", ".tsv")).read_text()
        assert text == (tmp_path / "theirs" / name.replace(".wav", ".tsv")).read_text()
    theirs = read_sed_scores(tmp_path / "theirs")
    assert sorted(theirs) == sorted(name.removesuffix(".wav") for name in scores)
    read, read_classes, read_step = read_score_folder(tmp_path, set(scores))
    assert read_classes == classes and read_step == pytest.approx(step)
    for name, values in scores.items():
        table = theirs[name.removesuffix(".wav")]
        np.testing.assert_array_equal(table[classes].to_numpy().T, values)
        np.testing.assert_array_equal(table["onset"].to_numpy(), np.arange(values.shape[1]) * step)
        np.testing.assert_array_equal(read[name], values)


def test_cli_reference_switch(oracle, tmp_path, capsys):
    scores, classes, step, ground_truth, durations = random_case(11, n_classes=3)
    write_sed_scores(scores, classes, step, tmp_path / "scores")
    ground_truth.to_csv(tmp_path / "gt.tsv", sep="\t", index=False)
    durations.to_csv(tmp_path / "durations.tsv", sep="\t", index=False)
    arguments = ["--ground_truth", str(tmp_path / "gt.tsv"), "--durations", str(tmp_path / "durations.tsv"),
                 "--scores", str(tmp_path / "scores"), "--n_thresholds", "5"]
    assert main(arguments) == 0
    ours = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main([*arguments, "--reference"]) == 0
    reference = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ours.pop("left_out_of_macro") == reference.pop("left_out_of_macro")
    assert ours == pytest.approx(reference, abs=1e-6)


def _loaded_after(code: str) -> list[str]:
    heavy = ["sed_scores_eval", "dcase_util", "sed_eval", "matplotlib"]
    probe = f"{code}\nimport sys\nprint([m for m in {heavy!r} if m in sys.modules])"
    completed = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_importing_the_evaluation_loads_no_reference_tool():
    assert _loaded_after("import desed_task.evaluation") == []
    assert _loaded_after(
        "import sys; from desed_task.evaluation.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    ) == []


@pytest.mark.slow
def test_training_loads_no_reference_tool():
    loaded = _loaded_after("import desed_task.training.mean_teacher, desed_task.training.cli")
    assert "sed_scores_eval" not in loaded and "dcase_util" not in loaded
