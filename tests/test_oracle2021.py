"""The project's training is the 2021 recipe's: its first 20 steps, run beside the recipe itself.

`benchmarks/oracle2021.py steps` runs the DCASE 2021 recipe (DESED_task 367e88c on Lightning
1.2.10, ``../shared/oracle2021``) and this project's ``train_sed.py`` on the same tiny demo
dataset, seed and thread count, for 20 training steps over 7 epochs (validation between them),
and compares what each recorded: the clips of every batch, whether mixup ran, every loss term,
the learning rate, the consistency weight, the initial weights and the student's and teacher's
weights after every step. The oracle's environment is built on first use (a few minutes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, SHARED

pytestmark = pytest.mark.slow


def test_first_20_steps_equal_the_2021_recipe(tmp_path):
    if not (SHARED / "oracle2021").is_dir():
        pytest.skip("../shared/oracle2021 (the 2021 recipe harness) is absent")
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "oracle2021.py"), "steps", "--steps", "20",
         "--work", str(tmp_path / "work")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=3000,
    )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout[done.stdout.index("{"): done.stdout.rindex("}") + 1])
    assert report["steps"] == 20
    assert report["same_batches"] and report["same_mixup"]
    for key, value in report.items():
        if isinstance(value, float):
            assert value <= 1e-5, (key, value)
