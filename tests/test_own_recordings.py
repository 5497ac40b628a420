"""Issue 26: scoring one's own recordings without traps, through the commands a user runs:
audio below 16 kHz, the install on today's distributions, the tuning loop of docs/evaluation.md as
written, and the smaller things (--fast_dev_run, --threshold, the JSON summary, line numbers,
TensorFlow's start-up lines, plot ticks of a short clip)."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import write_wav
from pipeline import REPO, TINY_SIZES, run_cli, tiny_config, tiny_detector_config, write_config

from desed_task.data.resample import resample_folder
from desed_task.data.tables import MetadataError, read_strong_table
from desed_task.inference.cli import main as inference_main

README = (REPO / "README.md").read_text()
EVALUATION = (REPO / "docs" / "evaluation.md").read_text()
DOCS = README + "".join(page.read_text() for page in sorted((REPO / "docs").glob("*.md")))
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _exits(main, argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def _one_error_line(err: str, *expected: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for text in expected:
        assert text in lines[0], (text, err)
    return lines[0]


def _summary(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------ 4. audio below 16 kHz
def test_each_file_below_16k_is_named_once_and_counted(tiny_checkpoint, tmp_path, capsys, caplog):
    folder = tmp_path / "rec"
    write_wav(folder / "phone_8k.wav", seconds=3.0, fs=8000)
    write_wav(folder / "radio_11k.flac", seconds=2.0, fs=11025)
    write_wav(folder / "studio_48k.wav", seconds=2.0, fs=48000, channels=2)
    write_wav(folder / "plain_16k.wav", seconds=2.0, fs=16000)
    (folder / "broken.wav").write_bytes(b"RIFF not audio")
    with caplog.at_level(logging.WARNING):
        code, out, err = _exits(inference_main, ["--checkpoint", str(tiny_checkpoint), "--gpus", "0",
                                                 "--out_dir", str(tmp_path / "out"), str(folder)], capsys)
    assert code == 2 and "broken.wav" in err  # the bad file still fails the command
    summary = _summary(out)
    assert (summary["inputs"], summary["scored"], summary["failed"], summary["upsampled"]) == (5, 4, 1, 2)
    notes = [r.getMessage() for r in caplog.records if "below the 16000 Hz the model was trained on" in r.getMessage()]
    assert len(notes) == 2, notes  # one line per such file, none for 16 and 48 kHz
    assert any("phone_8k.wav: sampled at 8000 Hz" in n and "nothing above 4 kHz" in n for n in notes), notes
    assert any("radio_11k.flac: sampled at 11025 Hz" in n and "5.5125 kHz" in n for n in notes), notes
    assert (tmp_path / "out" / "scores" / "phone_8k.wav.tsv").is_file()  # still scored


def test_a_folder_resampled_for_training_names_its_files_below_16k(tmp_path, caplog):
    """train_sed.py resamples a `_44k` folder (test, eval sets) with `resample_folder`."""
    write_wav(tmp_path / "src" / "a_8k.wav", seconds=1.0, fs=8000)
    write_wav(tmp_path / "src" / "b_44k.wav", seconds=1.0, fs=44100)
    with caplog.at_level(logging.WARNING):
        report = resample_folder(tmp_path / "src", tmp_path / "dst", 16000, resampler="soxr_hq", progress=False)
    assert [p.name for p in report.upsampled] == ["a_8k.wav"] and report.resampled == 2
    notes = [r.getMessage() for r in caplog.records if "below the 16000 Hz" in r.getMessage()]
    assert len(notes) == 1 and "a_8k.wav: sampled at 8000 Hz" in notes[0]


@pytest.mark.slow
def test_train_sed_test_names_a_test_clip_below_16k(tiny_checkpoint, tmp_path, caplog):
    """`train_sed.py --test_from_checkpoint` on a test set given by its `_44k` folder."""
    write_wav(tmp_path / "test_44k" / "low.wav", seconds=10.0, fs=8000, seed=1)
    write_wav(tmp_path / "test_44k" / "high.wav", seconds=10.0, fs=44100, seed=2)
    (tmp_path / "test.tsv").write_text("filename\tonset\toffset\tevent_label\nlow.wav\t1\t3\tDog\nhigh.wav\t2\t5\tCat\n")
    config = tiny_detector_config()
    config["data"].update(test_folder=str(tmp_path / "test_16k"), test_folder_44k=str(tmp_path / "test_44k"),
                          test_tsv=str(tmp_path / "test.tsv"), test_dur=str(tmp_path / "test_dur.tsv"), resampler="soxr_hq")
    conf = write_config(config, tmp_path / "tiny.yaml")
    with caplog.at_level(logging.WARNING):
        run_cli(conf, "--test_from_checkpoint", str(tiny_checkpoint), "--log_dir", str(tmp_path / "log"))
    notes = [r.getMessage() for r in caplog.records if "below the 16000 Hz the model was trained on" in r.getMessage()]
    assert len(notes) == 1 and notes[0].startswith(f"{tmp_path / 'test_44k' / 'low.wav'}: sampled at 8000 Hz"), notes
    assert (tmp_path / "log" / "metrics_test" / "summary.md").is_file()


# ------------------------------------------------------------------ 6. install on today's distributions
def _fake_python(tmp_path: Path, managed: bool) -> tuple[Path, Path]:
    """A `python` that is this interpreter, seen by sysconfig as a distribution's (an
    EXTERNALLY-MANAGED file beside its standard library) when `managed`; its `-m pip` only
    logs its arguments."""
    root = tmp_path / ("managed" if managed else "plain")
    stdlib = root / "stdlib"
    stdlib.mkdir(parents=True)
    if managed:
        (stdlib / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=use apt\n")
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import sysconfig
        _get_path = sysconfig.get_path
        sysconfig.get_path = lambda name, *a, **k: {str(stdlib)!r} if name == "stdlib" else _get_path(name, *a, **k)
    """))
    log = root / "pip.log"
    python = root / "bin" / "python"
    python.parent.mkdir()
    python.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "$@" >> {log}; exit 0; fi
        PYTHONPATH={root / "site"} exec {sys.executable} "$@"
    """))
    python.chmod(0o755)
    return python, log


def _install(python: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "scripts" / "install.sh"), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHON": python, **env})


@pytest.mark.skipif(shutil.which("dpkg") is None or subprocess.run(["dpkg", "-s", "libsox-dev"], capture_output=True).returncode,
                    reason="needs Debian's libsox-dev installed (else install.sh would apt-get it)")
def test_install_refuses_a_distribution_python_with_one_line_and_installs_into_another(tmp_path):
    managed, managed_log = _fake_python(tmp_path, managed=True)
    proc = _install(str(managed), "test")
    assert proc.returncode == 2 and not managed_log.exists(), proc.stderr
    line = _one_error_line(proc.stderr, "externally managed, PEP 668", "python3 -m venv .venv && . .venv/bin/activate",
                           "bash scripts/install.sh test", "PYTHON=")
    assert "python3-venv" in line
    # pip's own escape hatch is respected
    assert _install(str(managed), "test", PIP_BREAK_SYSTEM_PACKAGES="1").returncode == 0 and managed_log.is_file()

    plain, plain_log = _fake_python(tmp_path, managed=False)  # a virtual environment's, or CI's
    proc = _install(str(plain), "test,export")
    assert proc.returncode == 0, proc.stderr
    assert plain_log.read_text().split() == ["-m", "pip", "install", "-q", "-e", ".[demo,test,export]"]

    proc = _install("no-such-python-here")
    assert proc.returncode == 2
    _one_error_line(proc.stderr, "no 'no-such-python-here' command on the PATH", "python3 -m venv .venv")


def test_install_refuses_this_machines_distribution_python_when_it_has_one():
    system = Path("/usr/bin/python3")
    probe = "import os, sysconfig; print(os.path.isfile(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')))"
    if not system.is_file() or subprocess.run([system, "-c", probe], capture_output=True, text=True).stdout.strip() != "True":
        pytest.skip("no externally-managed /usr/bin/python3 here (Debian 12 and Ubuntu 24.04 have one)")
    proc = _install(str(system))
    assert proc.returncode == 2
    _one_error_line(proc.stderr, "/usr/bin/python3", "PEP 668", "python3 -m venv .venv && . .venv/bin/activate")


def test_the_quick_start_makes_a_venv_first_and_names_every_extra():
    block = re.search(r"## Quick start\n.*?```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert block[0] == "python3 -m venv .venv && . .venv/bin/activate"
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == "bash scripts/install.sh test && python -m pytest -q tests" and ci in block  # CI runs it as written
    quick_start = README[README.index("## Quick start"):README.index("\n## ", README.index("## Quick start") + 1)]
    assert "PYTHON=/path/to/python bash scripts/install.sh" in quick_start and "PEP 668" in quick_start
    for extra in ("test", "export", "separation", "datagen"):
        assert f"`{extra}`" in quick_start, extra
        assert f"bash scripts/install.sh {extra}" in (REPO / "scripts" / "install.sh").read_text(), extra
    assert "needs: bash scripts/install.sh datagen" in DOCS and 'pip install -e ".[separation]"' in DOCS


# ------------------------------------------------------------------ 7. the tuning loop, as written
def _evaluation_page_commands(section: str) -> list[list[str]]:
    """The bash block after `section` of docs/evaluation.md, one command per (backslash-joined) line."""
    start = EVALUATION.index(section)
    block = re.search(r"```bash\n(.*?)```", EVALUATION[start:], re.S).group(1)
    return [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").strip().splitlines()]


def test_the_tuning_loop_of_the_docs_runs_as_written(trained, tiny_data, tmp_path):
    """validation scores -> postprocessing tune -> evaluation --postprocessing -> inference
    --postprocessing, run as docs/evaluation.md writes them, in a folder laid out as the quick start
    leaves it (the tiny demo's data and checkpoint in place of the demo's)."""
    commands = _evaluation_page_commands("**The whole loop on the demo**")
    assert [c[:3] for c in commands] == [["python", "train_sed.py", "--conf_file"],
                                         ["python", "-m", "desed_task.postprocessing"],
                                         ["python", "-m", "desed_task.evaluation"],
                                         ["python", "-m", "desed_task.inference"]]
    assert not any("version_" in word for command in commands for word in command)
    # the page's YAML is what confs/demo_val.yaml changes in confs/demo.yaml
    shown = yaml.safe_load(re.search(r"```yaml\n(.*?)```", EVALUATION[EVALUATION.index("**The whole loop on the demo**"):], re.S).group(1))
    demo = yaml.safe_load((REPO / "confs" / "demo.yaml").read_text())
    demo_val = yaml.safe_load((REPO / "confs" / "demo_val.yaml").read_text())
    changed = {section: {k: v for k, v in values.items() if demo[section].get(k) != v}
               for section, values in demo_val.items() if isinstance(values, dict)}
    assert {s: v for s, v in changed.items() if v} == shown
    assert set(demo_val) == set(demo) and all(set(demo_val[s]) == set(demo[s]) for s in demo)

    folder = tmp_path / "user"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "demo").symlink_to(tiny_data)
    shutil.copytree(trained[0].parent, folder / "exp" / "demo", symlinks=True)  # best.ckpt, version_0, metrics_test
    demo_val["demo"]["sizes"] = TINY_SIZES  # the tiny demo's sizes: its data is complete, not rebuilt
    (folder / "confs").mkdir()
    (folder / "confs" / "demo_val.yaml").write_text(yaml.safe_dump(demo_val))
    shutil.copy(REPO / "train_sed.py", folder / "train_sed.py")
    write_wav(folder / "my_recordings" / "hall.wav", seconds=4.0, fs=16000, seed=3)
    outputs = []
    for command in commands:
        proc = subprocess.run([sys.executable, *command[1:]], cwd=folder, capture_output=True, text=True,
                              timeout=600, env={**ENV, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, (command, proc.stderr[-3000:])
        outputs.append(proc.stdout)
    link = folder / "exp" / "demo_val" / "metrics_test"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.resolve() == (folder / "exp" / "demo_val" / "version_0" / "metrics_test").resolve()
    tuned = yaml.safe_load((folder / "exp" / "demo" / "postprocessing_psds2.yaml").read_text())
    assert tuned["method"] == "median" and len(tuned["median_window"]) == 10
    assert "psds1" in _summary(outputs[2])  # the evaluation's JSON line
    assert _summary(outputs[3])["scored"] == 1
    assert (folder / "exp" / "detections_tuned" / "scores" / "hall.wav.tsv").is_file()

    # a folder that is not there: said so, not "no .tsv score files"
    for command in (commands[1], commands[2]):
        words = [w.replace("metrics_test", "version_7/metrics_test") for w in command]
        proc = subprocess.run([sys.executable, *words[1:]], cwd=folder, capture_output=True, text=True, timeout=300, env=ENV)
        assert proc.returncode == 2
        _one_error_line(proc.stderr, "version_7/metrics_test", "does not exist")


# ------------------------------------------------------------------ 8. smaller things
@pytest.mark.slow
def test_fast_dev_run_writes_inside_a_version_folder_marked_as_a_wiring_check(tiny_data, tmp_path, capsys):
    conf = write_config(tiny_config(tiny_data, tmp_path / "exp"), tmp_path / "tiny.yaml")
    run_cli(conf, "--fast_dev_run")
    out = capsys.readouterr().out
    assert [p.name for p in (tmp_path / "exp").iterdir()] == ["version_0"]  # no metrics_test beside it
    summary = (tmp_path / "exp" / "version_0" / "metrics_test" / "summary.md").read_text()
    assert summary.startswith("**Wiring check (--fast_dev_run)") and "not results" in summary.splitlines()[0]
    assert "Wiring check" in out and "| psds1 |" in summary
    assert not list((tmp_path / "exp").rglob("*.ckpt"))


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.2", "nan"])
def test_a_threshold_outside_0_1_is_refused(tiny_checkpoint, tmp_path, capsys, value):
    clip = write_wav(tmp_path / "clip.wav", seconds=1.0)
    code, out, err = _exits(inference_main, ["--checkpoint", str(tiny_checkpoint), "--gpus", "0", "--threshold", value,
                                             "--out_dir", str(tmp_path / "out"), str(clip)], capsys)
    assert code == 2 and not out
    _one_error_line(err, "--threshold", "outside (0, 1)")
    assert not (tmp_path / "out").exists()


def test_per_class_thresholds_outside_0_1_are_refused(tiny_checkpoint, tmp_path, capsys):
    from desed_task.inference import SoundEventDetector

    classes = SoundEventDetector.from_checkpoint(tiny_checkpoint).class_names
    (tmp_path / "th.tsv").write_text("".join(f"{c}\t{1.2 if i == 3 else 0.5}\n" for i, c in enumerate(classes)))
    code, _, err = _exits(inference_main, ["--checkpoint", str(tiny_checkpoint), "--gpus", "0", "--thresholds",
                                           str(tmp_path / "th.tsv"), str(write_wav(tmp_path / "c.wav", seconds=1.0))], capsys)
    assert code == 2
    _one_error_line(err, "th.tsv", "threshold 1.2 is outside (0, 1)")


def test_error_lines_number_rows_as_the_file_shows_them(tmp_path):
    """Line 1 is the header; a blank line counts, as in an editor."""
    ground_truth = tmp_path / "gt.tsv"
    ground_truth.write_text("filename\tonset\toffset\tevent_label\na.wav\t1\t2\tDog\n\nb.wav\t3\t2\tCat\n")
    durations = tmp_path / "dur.tsv"
    durations.write_text("filename,duration\na.wav,10\n\n\nb.wav,x\n")
    proc = subprocess.run([sys.executable, "-m", "desed_task.evaluation", "--ground_truth", str(ground_truth),
                           "--durations", str(durations), "--predictions", str(ground_truth)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == 2
    _one_error_line(proc.stderr, "gt.tsv: 1 row(s) have offset < onset (first: line 4,")
    ground_truth.write_text(ground_truth.read_text().replace("3\t2\tCat", "1\t2\tCat"))
    proc = subprocess.run([sys.executable, "-m", "desed_task.evaluation", "--ground_truth", str(ground_truth),
                           "--durations", str(durations), "--predictions", str(ground_truth)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == 2
    _one_error_line(proc.stderr, "dur.tsv: 1 row(s) have a missing or non-numeric duration (first: line 5,")
    # the training's metadata reader counts the same way
    strong = tmp_path / "strong.tsv"
    strong.write_text("filename\tonset\toffset\tevent_label\n\na.wav\t1\t2\tDog\n   \nb.wav\t1\t2\tCow\n")
    with pytest.raises(MetadataError, match=r"strong.tsv: line 5: unknown event label 'Cow'"):
        read_strong_table(strong, ["Dog", "Cat"])
    strong.write_text(strong.read_text().replace("Cow", "Cat"))
    assert list(read_strong_table(strong, ["Dog", "Cat"])["event_label"]) == ["Dog", "Cat"]  # blank lines: no rows


def test_tensorflow_starts_without_its_start_up_lines(tmp_path):
    pytest.importorskip("tensorflow")
    env = {k: v for k, v in ENV.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-m", "desed_task.separation.standin", "--out_dir", str(tmp_path / "model")],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for noise in ("absl::InitializeLog", "oneDNN", "cpu_feature_guard", "I0000", "rebuild TensorFlow"):
        assert noise not in proc.stderr, (noise, proc.stderr)
    assert "STAND-IN separation model" in proc.stderr  # our own log lines still show
    # every TensorFlow import of the project goes through the one quiet import
    importers = [str(p.relative_to(REPO)) for p in [*REPO.glob("*.py"), *(REPO / "desed_task").rglob("*.py"),
                                                    *(REPO / "benchmarks").rglob("*.py")]
                 if re.search(r"^\s*(import tensorflow|from tensorflow)", p.read_text(), re.M)]
    assert importers == ["desed_task/separation/model.py"], importers


def test_the_plot_of_a_clip_under_a_second_has_readable_time_ticks(tiny_checkpoint, tmp_path, capsys, saved_figures):
    figures = saved_figures
    for seconds in (0.3, 0.9):
        clip = write_wav(tmp_path / f"clip_{seconds}.wav", seconds=seconds)
        code, _, _ = _exits(inference_main, ["--checkpoint", str(tiny_checkpoint), "--gpus", "0", "--plot",
                                             "--out_dir", str(tmp_path / "out"), str(clip)], capsys)
        assert code == 0
        axis = figures[-1].axes[2]  # the events panel carries the time axis
        figures[-1].canvas.draw()
        low, high = axis.get_xlim()
        ticks = [(t, label.get_text()) for t, label in zip(axis.get_xticks(), axis.get_xticklabels()) if low <= t <= high]
        assert high == pytest.approx(seconds, abs=0.07)
        assert 3 <= len(ticks) <= 12, ticks
        labels = [text for _, text in ticks]
        assert len(set(labels)) == len(labels) and all(len(text) <= 4 for text in labels), labels


def test_the_summary_counts_inputs_successes_and_failures(tiny_checkpoint, tmp_path, capsys):
    write_wav(tmp_path / "in" / "a.wav", seconds=1.5)
    write_wav(tmp_path / "in" / "b.wav", seconds=2.5)
    (tmp_path / "in" / "corrupt.wav").write_bytes(b"RIFF\x00\x00")
    (tmp_path / "in" / "empty.flac").write_bytes(b"")
    code, out, _ = _exits(inference_main, ["--checkpoint", str(tiny_checkpoint), "--gpus", "0",
                                           "--out_dir", str(tmp_path / "out"), str(tmp_path / "in")], capsys)
    summary = _summary(out)
    assert code == 2
    assert {k: summary[k] for k in ("inputs", "scored", "failed", "upsampled")} == {"inputs": 4, "scored": 2, "failed": 2, "upsampled": 0}
    assert summary["audio_seconds"] == pytest.approx(4.0)
    assert set(pd.read_csv(tmp_path / "out" / "events.tsv", sep="\t")["filename"]) <= {"a.wav", "b.wav"}
