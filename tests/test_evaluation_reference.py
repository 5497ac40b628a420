"""Conformance with the official tools on the real 2021 baseline outputs (../shared)."""

import json

import pytest
from conftest import SHARED

from desed_task.evaluation import read_event_table
from desed_task.evaluation.cli import main

REFERENCE = SHARED / "reference" / "dcase2021_baseline_devtest"
EXPECTED = {
    "psds1": 0.3345,
    "psds2": 0.5281,
    "intersection_f1_macro": 0.6374,
    "collar_f1_macro": 0.3987,
    "collar_f1_micro": 0.4095,
    "segment_f1_macro": 0.6935,
}


@pytest.fixture(scope="module")
def reference_dir():
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data absent: {REFERENCE} (see ../shared/reference/README.md)")
    return REFERENCE


def test_cli_reproduces_the_official_values(reference_dir, capsys, tmp_path):
    status = main([
        "--ground_truth", str(reference_dir / "validation.tsv"),
        "--durations", str(reference_dir / "validation_durations.tsv"),
        "--operating_points", str(reference_dir / "student_operating_points"),
        "--predictions", str(reference_dir / "student_predictions_th0.5.csv"),
        "--save_dir", str(tmp_path),
    ])
    assert status == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # the official student has an F1 for every class: its macro F1s average all ten
    assert metrics.pop("left_out_of_macro") == {name: [] for name in ("intersection_f1_macro", "collar_f1_macro",
                                                                      "segment_f1_macro")}
    assert set(metrics) == set(EXPECTED)
    for name, value in EXPECTED.items():
        assert metrics[name] == pytest.approx(value, abs=1e-3), name
    for written in ["psds1_roc.png", "psds2_roc_per_class.png", "psds_per_class.tsv", "f1_per_class.tsv"]:
        assert (tmp_path / written).is_file(), written


@pytest.mark.slow
def test_without_its_empty_rows_the_ground_truth_gives_the_same_values(reference_dir, capsys, tmp_path):
    ground_truth = read_event_table(reference_dir / "validation.tsv")
    events_only = ground_truth[ground_truth["event_label"].notna()]
    assert len(events_only) < len(ground_truth)  # DESED lists its 15 clips without events
    events_only.to_csv(tmp_path / "events_only.tsv", sep="\t", index=False)
    assert main([
        "--ground_truth", str(tmp_path / "events_only.tsv"),
        "--durations", str(reference_dir / "validation_durations.tsv"),
        "--operating_points", str(reference_dir / "student_operating_points"),
        "--predictions", str(reference_dir / "student_predictions_th0.5.csv"),
    ]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for name, value in EXPECTED.items():
        assert metrics[name] == pytest.approx(value, abs=1e-4), name
