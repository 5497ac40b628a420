"""The same batches on every disk: the unlabelled clips are sorted by name by default.

2021 read the unlabelled folder in the order the disk lists it (``glob``); on ext4 that is a
per-file-system hash, so the same files on another disk gave other batches. With
``data.sort_unlabeled: true`` (the default) the demo dataset built in two folders trains on
the same clips at every step, through train_sed.py (tests/train_sed_recording_steps.py
records each step's clips); with ``false`` the batches follow the folder's listing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from pipeline import tiny_config, write_config

pytestmark = pytest.mark.slow


def _train_clips(data_root: Path, work: Path, **data) -> list[list[str]]:
    """The clips (``<label type>/<file>``) of every training step of a 2-epoch run of
    train_sed.py on `data_root` (2 steps an epoch), `data` keys changed."""
    config = tiny_config(data_root, work / "exp", n_epochs=2, max_steps_per_epoch=2)
    config["data"].update(data)
    records = work / "records"
    records.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / "train_sed_recording_steps.py"),
         "--conf_file", str(write_config(config, work / "tiny.yaml")), "--gpus", "0"],
        cwd=work, env={**os.environ, "PYTHONPATH": str(REPO), "DESED_RECORD_DIR": str(records)},
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    entries = [json.loads(line) for line in (records / "rank0.jsonl").read_text().splitlines()]
    return [e["clips"] for e in entries if e["stage"] == "train"]


def _part(steps: list[list[str]], unlabeled: bool) -> list[list[str]]:
    """Each step's unlabelled clips (or its labelled ones)."""
    return [[c for c in clips if c.startswith("unlabeled/") == unlabeled] for clips in steps]


def test_the_demo_built_in_two_folders_draws_the_same_batches(tiny_data, tmp_path):
    from desed_task.training.cli import ensure_demo_data

    other = tmp_path / "elsewhere" / "demo"
    ensure_demo_data(tiny_config(other, tmp_path / "exp_build"))
    folder = "audio/train/unlabel_in_domain"
    assert sorted(os.listdir(tiny_data / folder)) == sorted(os.listdir(other / folder))  # the same files

    first = _train_clips(tiny_data, tmp_path / "first")
    second = _train_clips(other, tmp_path / "second")
    assert len(first) == 4 and all(any(c.startswith("unlabeled/") for c in clips) for clips in first)
    assert first == second

    listed = [name for name in os.listdir(other / folder) if name.endswith(".wav")]
    if listed == sorted(listed):
        pytest.skip(f"this file system lists {other / folder} in sorted order: the disk's order is the same")
    disk_order = _train_clips(other, tmp_path / "disk_order", sort_unlabeled=False)
    assert _part(first, unlabeled=True) != _part(disk_order, unlabeled=True)  # the listing gave other clips
    assert _part(first, unlabeled=False) == _part(disk_order, unlabeled=False)  # and only those differ
