"""A folder separation killed (SIGKILL) before its 4th clip's rename, then run again: the
resume check shared by the TensorFlow and the PyTorch backends' tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pipeline import REPO

from desed_task.separation import folder, separate_folder

_KILL_BEFORE_RENAME = """
real_replace, done = os.replace, []

def replace_or_die(tmp, final):
    # the temporary output of clip number kill_at is written: SIGKILL before its rename
    if len(done) + 1 == int(kill_at):
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(tmp, final)
    done.append(final)
    with open(renames_log, "a") as log:
        log.write(f"{final}\\n")

os.replace = replace_or_die
separate_folder(model, src, dst, progress=False)
"""


def check_resume_after_sigkill(
    open_model: str,
    model_args: list[str],
    separator,
    src: Path,
    dst: Path,
    renames_log: Path,
    names: list[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str] | None = None,
) -> None:
    """Separate ``src`` into ``dst`` in a process killed before the rename of its 4th clip, then
    resume with ``separator`` in this one: every clip of ``names`` is written once, the first
    run's outputs are not rewritten, no temporary file is left.

    ``open_model`` is the killed process's code that builds ``model`` from ``args`` (its
    ``model_args``); it has ``os``, ``signal``, ``sys`` and ``separate_folder`` imported.
    """
    script = textwrap.dedent("""
        import os, signal, sys
        from desed_task.separation import separate_folder
        args = sys.argv[1:-4]
        src, dst, renames_log, kill_at = sys.argv[-4:]
    """) + textwrap.dedent(open_model) + _KILL_BEFORE_RENAME
    killed = subprocess.run(
        [sys.executable, "-c", script, *model_args, str(src), str(dst), str(renames_log), "4"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True, text=True, timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first_run = renames_log.read_text().split()
    assert len(first_run) == 3
    assert len(list(dst.rglob(f"*{folder.TEMP_MARKER}*"))) == 1  # clip 4 was being written
    mtimes = {p: Path(p).stat().st_mtime_ns for p in first_run}

    second_run: list[str] = []
    real_replace = os.replace

    def logging_replace(tmp, final):
        real_replace(tmp, final)
        second_run.append(str(final))

    monkeypatch.setattr(folder.os, "replace", logging_replace)
    report = separate_folder(separator, src, dst, progress=False)
    assert (report.separated, report.already_done, len(report.failed)) == (3, 3, 0)
    assert sorted(first_run + second_run) == sorted(str(dst / n) for n in names)  # once each
    assert all(Path(p).stat().st_mtime_ns == t for p, t in mtimes.items())  # not rewritten
    assert not list(dst.rglob(f"*{folder.TEMP_MARKER}*"))
