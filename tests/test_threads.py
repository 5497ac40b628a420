"""CPU sharing: the OpenMP wait policy set before torch loads, thread counts from the cores given."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from pipeline import REPO

from desed_task import threads


def _openmp_settings(env: dict[str, str]) -> str:
    """libgomp's settings as it prints them at start (OMP_DISPLAY_ENV), after `import desed_task`."""
    code = "import desed_task, torch; torch.ones(8).sum()"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(REPO), "OMP_DISPLAY_ENV": "VERBOSE"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    if "GOMP_SPINCOUNT" not in proc.stderr:
        pytest.skip("torch's OpenMP runtime is not libgomp (it does not print GOMP_SPINCOUNT)")
    return proc.stderr


@pytest.mark.slow
def test_importing_desed_task_shortens_idle_spinning_unless_the_user_chose():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    assert "GOMP_SPINCOUNT = '5000'" in _openmp_settings(env)  # libgomp's default: 300000
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in _openmp_settings({**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert "GOMP_SPINCOUNT = '0'" in _openmp_settings({**env, "OMP_WAIT_POLICY": "PASSIVE"})


def test_thread_count_respects_the_user_then_the_cores_given(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert threads.set_cpu_threads(processes=1, loader_workers=0) == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(threads, "available_cores", lambda: 8)
        assert threads.set_cpu_threads(processes=2, loader_workers=1) == 3 == torch.get_num_threads()
        assert threads.set_cpu_threads(processes=4, loader_workers=6) == 1  # never below one
        threads.one_thread_worker(0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_cgroup_cpu_quota_caps_the_cores(tmp_path, monkeypatch):
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", quota)
    quota.write_text("150000 100000\n")  # docker --cpus 1.5
    assert threads.available_cores() == min(2, len(os.sched_getaffinity(0)))
    quota.write_text("max 100000\n")
    assert threads.available_cores() == len(os.sched_getaffinity(0))
