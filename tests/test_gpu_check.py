"""benchmarks/gpu_check.sh --cpu: every step of the GPU check runs, in tiny sizes, and the report
holds each step's status and figures."""

import os
import re
import subprocess

import pytest
from conftest import REPO


@pytest.mark.slow
def test_the_gpu_check_runs_on_the_cpu_and_writes_one_report(tmp_path):
    report = tmp_path / "gpu_check.md"
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON", "python")}
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu", "--out", str(report), "--budget", "1800"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1900,
    )
    text = report.read_text()
    assert proc.returncode == 0, f"{proc.stderr[-2000:]}\n{text[:4000]}"
    rows = re.findall(r"^\| (\d+) \| (.+?) \| (.+?) \| (.+?) \|$", text, flags=re.MULTILINE)
    statuses = {title: status for _, title, status, _ in rows}
    assert len(rows) == 11, statuses
    expected_off = {"two-process DDP step", "separation speed"}
    assert all(status == "ok" for title, status in statuses.items() if title not in expected_off), statuses
    assert statuses["two-process DDP step"].startswith("not run: --cpu")
    for figure in ("results written to", "throughput:", "precision bf16-mixed", "clips/s", "real-time factor", "- torch "):
        assert figure in text, figure
    assert (tmp_path / "gpu_check.md.logs").is_dir()


def test_a_wrong_argument_is_refused_with_one_error_line(tmp_path):
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--gpu"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: gpu_check.sh: unknown argument --gpu (see --help)"]
