"""What a new user meets, through the entry points the user runs: the inference page's
snippets as written (docs/inference.md), array layouts of the Python API, output names of the inference CLI,
foreign checkpoints, `--gpus` forms, SIGTERM and Ctrl-C of train_sed.py, and the noise of a run."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from conftest import write_wav
from pipeline import REPO, tiny_config, write_config

from desed_task.export.cli import main as export_main
from desed_task.inference import SoundEventDetector
from desed_task.inference.cli import main as inference_main
from desed_task.training.cli import main as training_main

README = (REPO / "README.md").read_text()
INFERENCE = (REPO / "docs" / "inference.md").read_text()
DOCS = README + "".join(page.read_text() for page in sorted((REPO / "docs").glob("*.md")))
NOISE = (
    "100% of the batches",  # Lightning's limit_train_batches=1.0 line
    "FLOPs", "Total Flops",  # Lightning's model summary counts them only with an example input
    "dirpath has changed",  # Lightning's warning on resume (the best score is restored here)
    "Skipping setting a default",
    "Traceback",
)


def _exits(main, argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def _one_error_line(err: str, *expected: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for text in expected:
        assert text in lines[0], (text, err)


# ------------------------------------------------------------------ 1. the inference page, as written
def _inference_block(language: str, section: str) -> str:
    start = INFERENCE.index(section)
    match = re.search(rf"```{language}\n(.*?)```", INFERENCE[start:], re.S)
    assert match, (language, section)
    return match.group(1)


def _user_folder(tmp_path: Path, checkpoint: Path) -> Path:
    """A folder laid out as the inference page's examples expect, with the tiny trained checkpoint."""
    (tmp_path / "exp" / "demo").mkdir(parents=True)
    (tmp_path / "exp" / "demo" / "best.ckpt").symlink_to(checkpoint.resolve())
    write_wav(tmp_path / "kitchen.wav", seconds=12.5, fs=44100, channels=2)
    write_wav(tmp_path / "kitchen.flac", seconds=3.0, fs=22050)
    write_wav(tmp_path / "my_recordings" / "hall.wav", seconds=4.0, fs=16000, seed=3)
    return tmp_path


def test_inference_python_snippet_runs_as_written(trained, tmp_path, monkeypatch):
    code = _inference_block("python", "From Python:")
    assert "sf.read(" in code and "scores(waveform, sample_rate)" in code
    monkeypatch.chdir(_user_folder(tmp_path, trained[0]))
    namespace: dict = {}
    exec(compile(code, "docs/inference.md", "exec"), namespace)  # noqa: S102 - the page's own snippet
    detector, events = namespace["detector"], namespace["events"]
    in_memory = detector.scores(*sf.read("kitchen.wav"))
    n_frames = (1 + round(12.5 * 16000) // 256) // 4  # one pass of the network over 12.5 s
    assert in_memory.shape == (len(detector.class_names), n_frames)
    np.testing.assert_allclose(namespace["scores"], in_memory, atol=1e-4)  # score_file: the same
    assert list(events.columns) == ["filename", "onset", "offset", "event_label"]


def test_inference_commands_run_as_written_and_write_under_exp(trained, tmp_path):
    block = _inference_block("bash", "## Detect events in your own recordings")
    assert "pip install -e '.[export]'" in block and "desed_task[export]" not in DOCS
    folder = _user_folder(tmp_path, trained[0])
    before = {p.name for p in folder.iterdir()}
    for line in block.strip().splitlines():
        words = shlex.split(line, comments=True)
        assert words[0] == "python"
        proc = subprocess.run([sys.executable, *words[1:]], cwd=folder, capture_output=True, text=True,
                              timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p.name for p in folder.iterdir()} == before  # detections and the ONNX file under exp/
    assert (folder / "exp" / "detections" / "events.tsv").is_file()
    assert (folder / "exp" / "detections" / "plots" / "kitchen.flac.png").is_file()
    import onnx

    metadata = {p.key: p.value for p in onnx.load(str(folder / "exp" / "demo" / "sed.onnx")).metadata_props}
    assert metadata["checkpoint"] == trained[0].resolve().name != "best.ckpt"  # the file, not the link


def test_inference_page_says_the_demo_model_is_not_for_real_audio():
    section = INFERENCE[INFERENCE.index("## Detect events in your own recordings"):]
    section = section[: section.index("\n## ", 1)]
    assert "procedural sounds" in section and "mean nothing" in section
    assert "python train_sed.py" in section and "official 2021 checkpoint" in section


# ------------------------------------------------------------------ 1. array layouts
def test_scores_take_every_common_layout(trained, tmp_path):
    detector = SoundEventDetector.from_checkpoint(trained[0])
    rng = np.random.default_rng(4)
    stereo = (0.1 * rng.standard_normal((44100 * 11, 2))).astype(np.float32)
    sf.write(tmp_path / "rec.wav", stereo, 44100, subtype="FLOAT")
    waveform, rate = sf.read(tmp_path / "rec.wav")  # (samples, channels), float64
    assert waveform.shape == (44100 * 11, 2)
    expected = detector.scores(stereo.mean(axis=1), 44100)
    assert expected.shape[1] == (1 + 11 * 16000 // 256) // 4  # not one frame of 2 "samples"
    for layout in (waveform, waveform.T, torch.from_numpy(waveform.T.copy()), stereo[:, :1]):
        scores = detector.scores(layout, rate)
        if layout.shape[-1] == 1:  # the left channel alone
            scores_left = detector.scores(stereo[:, 0], 44100)
            np.testing.assert_allclose(scores, scores_left, atol=1e-6)
        else:
            np.testing.assert_allclose(scores, expected, atol=1e-5)
    pcm = (stereo * 32768).astype(np.int16)  # scipy.io.wavfile's layout and type
    np.testing.assert_allclose(detector.scores(pcm, 44100), expected, atol=2e-3)


@pytest.mark.parametrize("shape, message", [
    ((20, 20), "cannot tell the channel axis"),
    ((3, 30), "cannot tell the channel axis"),
    ((100000, 40), "cannot tell the channel axis"),
    ((2, 3, 16000), "give one recording"),
    ((0,), "give one recording"),
])
def test_an_ambiguous_or_empty_array_is_refused_with_the_fix(trained, shape, message):
    detector = SoundEventDetector.from_checkpoint(trained[0])
    with pytest.raises(ValueError, match=message):
        detector.scores(np.zeros(shape, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="NaN"):
        detector.scores(np.full(16000, np.nan, dtype=np.float32), 16000)


# ------------------------------------------------------------------ 2. output names
def test_every_input_gets_its_own_outputs_and_a_findable_name(trained, tmp_path, capsys):
    folder = tmp_path / "in"
    for extension in ("wav", "mp3", "ogg"):
        write_wav(folder / f"kitchen_mix.{extension}", seconds=2.0 + ("wav", "mp3", "ogg").index(extension))
    write_wav(folder / "sub" / "rec.wav", seconds=1.5)
    write_wav(tmp_path / "a" / "rec.wav", seconds=2.5)
    write_wav(tmp_path / "b" / "rec.wav", seconds=3.5)
    write_wav(tmp_path / "other" / "sub" / "rec.wav", seconds=4.5)
    out = tmp_path / "out"
    args = ["--checkpoint", str(trained[0]), "--out_dir", str(out), "--gpus", "0", "--threshold", "1e-6", "--plot",
            str(folder), str(tmp_path / "a" / "rec.wav"), str(tmp_path / "b" / "rec.wav"), str(tmp_path / "other"),
            str(folder / "kitchen_mix.wav")]  # given twice: scored once
    code, out_text, _ = _exits(inference_main, args, capsys)
    assert code == 0 and json.loads(out_text.strip().splitlines()[-1])["scored"] == 7
    # PATH 1 is the folder, 2 and 3 the two rec.wav files, 4 the folder "other" (sub/rec.wav as 1)
    names = {"kitchen_mix.wav": 2.0, "kitchen_mix.mp3": 3.0, "kitchen_mix.ogg": 4.0, "1/sub/rec.wav": 1.5,
             "2/rec.wav": 2.5, "3/rec.wav": 3.5, "4/sub/rec.wav": 4.5}
    events = pd.read_csv(out / "events.tsv", sep="\t")
    assert set(events["filename"]) == set(names)
    for name, seconds in names.items():
        scores = pd.read_csv(out / "scores" / f"{name}.tsv", sep="\t")
        assert scores["offset"].iloc[-1] == pytest.approx(seconds, abs=0.2), name  # its own file
        assert (out / "plots" / f"{name}.png").is_file()
        assert events[events["filename"] == name]["offset"].max() <= seconds + 1e-6
    assert len(list((out / "scores").rglob("*.tsv"))) == len(names) == 7


# ------------------------------------------------------------------ 3. foreign checkpoints
def _foreign_files(folder: Path, real: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "text": folder / "notes.ckpt",
        "zip": folder / "archive.ckpt",
        "random": folder / "random.ckpt",
        "truncated": folder / "truncated.ckpt",
        "tensor": folder / "tensor.ckpt",
        "empty": folder / "empty.ckpt",
    }
    files["text"].write_text("epoch 3, loss 0.12\n")
    with zipfile.ZipFile(files["zip"], "w") as archive:
        archive.writestr("readme.txt", "not a checkpoint")
    files["random"].write_bytes(np.random.default_rng(0).bytes(4096))
    whole = real.read_bytes()
    files["truncated"].write_bytes(whole[: len(whole) // 2])
    torch.save(torch.zeros(3), files["tensor"])
    files["empty"].write_bytes(b"")
    return files


@pytest.mark.parametrize("kind", ["text", "zip", "random", "truncated", "tensor", "empty"])
def test_a_foreign_checkpoint_is_one_error_line_in_every_command(trained, tiny_data, tmp_path, capsys, kind):
    foreign = _foreign_files(tmp_path / "foreign", trained[0].resolve())[kind]
    clip = write_wav(tmp_path / "clip.wav", seconds=1.0)
    conf = write_config(tiny_config(tiny_data, tmp_path / "exp"), tmp_path / "tiny.yaml")
    commands = {
        "inference": (inference_main, ["--checkpoint", str(foreign), "--gpus", "0", "--out_dir", str(tmp_path / "d"), str(clip)]),
        "export": (export_main, ["--checkpoint", str(foreign), "--onnx", str(tmp_path / "m.onnx")]),
        "test": (lambda argv: training_main("t", "x", "x", argv=argv),
                 ["--conf_file", str(conf), "--gpus", "0", "--test_from_checkpoint", str(foreign)]),
        "resume": (lambda argv: training_main("t", "x", "x", argv=argv),
                   ["--conf_file", str(conf), "--gpus", "0", "--resume_from_checkpoint", str(foreign)]),
    }
    for command, (main, argv) in commands.items():
        code, _, err = _exits(main, argv, capsys)
        assert code == 2, command
        _one_error_line(err, str(foreign), "checkpoint")
    assert not (tmp_path / "exp").exists() and not (tmp_path / "m.onnx").exists()


# ------------------------------------------------------------------ 4. --gpus
@pytest.mark.parametrize("gpus", ["1", "2", "0,1", "1,", "3,5", "abc", "-1", "1.5", ""])
def test_every_gpus_form_gets_the_same_clean_answer(tiny_data, tmp_path, capsys, gpus):
    """No CUDA here (or it is hidden): every command refuses GPUs that are not there alike."""
    clip = write_wav(tmp_path / "clip.wav", seconds=1.0)
    conf = write_config(tiny_config(tiny_data, tmp_path / "exp"), tmp_path / "tiny.yaml")
    errors = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.cuda, "is_available", lambda: False)
        for main, argv in (
            (lambda argv: training_main("t", "x", "x", argv=argv), ["--conf_file", str(conf), "--gpus", gpus]),
            (inference_main, ["--checkpoint", "unused.ckpt", "--gpus", gpus, str(clip)]),
        ):
            code, _, err = _exits(main, argv, capsys)
            assert code == 2
            _one_error_line(err, f"--gpus {gpus}")
            errors.append(err)
    assert errors[0] == errors[1]
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("gpus, expected", [("3", "3 GPUs asked for, 2 visible"), ("0,2", "GPU index 2 is not visible"),
                                            ("1,1", "given twice")])
def test_gpus_beyond_the_visible_count_are_refused(tiny_data, tmp_path, capsys, gpus, expected):
    conf = write_config(tiny_config(tiny_data, tmp_path / "exp"), tmp_path / "tiny.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.cuda, "is_available", lambda: True)
        patch.setattr(torch.cuda, "device_count", lambda: 2)
        code, _, err = _exits(lambda argv: training_main("t", "x", "x", argv=argv),
                              ["--conf_file", str(conf), "--gpus", gpus], capsys)
    assert code == 2
    _one_error_line(err, f"--gpus {gpus}", expected)


def test_the_real_script_refuses_two_gpus_without_cuda(tiny_data, tmp_path):
    conf = write_config(tiny_config(tiny_data, tmp_path / "exp"), tmp_path / "tiny.yaml")
    proc = subprocess.run(
        [sys.executable, str(REPO / "train_sed.py"), "--conf_file", str(conf), "--gpus", "0,1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""},
    )
    assert proc.returncode == 2
    _one_error_line(proc.stderr, "--gpus 0,1: no CUDA GPU is visible here; use --gpus 0")


# ------------------------------------------------------------------ 5, 6. SIGTERM, Ctrl-C, resume
def _start(conf: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "train_sed.py", "--conf_file", str(conf), "--gpus", "0", "--log_dir", str(cwd / "runs")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a Python handler set here is SIG_DFL after exec, so the script gets Python's Ctrl-C
        # handling even when the test runner was started with SIGINT ignored (a background job)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler),
    )


def _stop_after_first_checkpoint(proc: subprocess.Popen, last: Path, signum: int) -> tuple[str, str]:
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not last.is_file():
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the signal:\n" + proc.stderr.read()[-3000:]
    time.sleep(0.3)  # inside the next epoch
    proc.send_signal(signum)
    return proc.communicate(timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_keep_the_checkpoint_fail_and_say_how_to_go_on(tiny_data, tmp_path, signum, status):
    conf = write_config(tiny_config(tiny_data, tmp_path / "unused", n_epochs=3), tmp_path / "tiny.yaml")
    last = tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    proc = _start(conf, tmp_path)
    _, err = _stop_after_first_checkpoint(proc, last, signum)
    assert proc.returncode == status, err[-3000:]
    command = err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert command.endswith(
        f"go on with: python train_sed.py --conf_file {conf} --log_dir {tmp_path / 'runs'} --gpus 0 "
        f"--resume_from_checkpoint {last}"
    ), command
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] > 0  # kept, whole
    if signum != signal.SIGTERM:
        return
    # the printed command goes on, and says what it restored instead of Lightning's warning
    words = shlex.split(command.split("go on with: ", 1)[1])
    resumed = subprocess.run([sys.executable, *words[1:]], cwd=REPO, capture_output=True, text=True, timeout=600,
                             env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    output = resumed.stdout + resumed.stderr
    best = next((tmp_path / "runs" / "version_0" / "checkpoints").glob("best-*.ckpt"))
    assert re.search(rf"resumed from {re.escape(str(last))}: best val/obj_metric so far \d\.\d{{4}}, from {re.escape(str(best))}", output), output[-3000:]
    for noise in NOISE:
        assert noise not in output, noise
    # the resumed run tested in version_1: LOG_DIR/metrics_test names it (issue 26)
    runs = tmp_path / "runs"
    assert (runs / "version_1" / "metrics_test" / "summary.md").is_file()
    assert (runs / "metrics_test").resolve() == (runs / "version_1" / "metrics_test").resolve()


# ------------------------------------------------------------------ 8. small things
def test_a_run_prints_no_lightning_noise_and_links_best_relatively(trained, tmp_path):
    best, lines = trained
    text = "\n".join(lines)
    for noise in NOISE:
        assert noise not in text, noise
    assert any("trainable" in line and "non-trainable parameters" in line for line in lines)
    assert best.is_symlink() and not os.path.isabs(os.readlink(best))
    moved = tmp_path / "moved"
    shutil.copytree(best.parent, moved, symlinks=True)
    assert (moved / "best.ckpt").resolve().parent.parent.parent == moved.resolve()


def test_the_plot_shows_hz_and_a_colour_scale(trained, tmp_path, capsys, saved_figures):
    figures = saved_figures
    clip = write_wav(tmp_path / "clip.wav", seconds=4.0)
    code, _, _ = _exits(inference_main, ["--checkpoint", str(trained[0]), "--gpus", "0", "--plot",
                                         "--out_dir", str(tmp_path / "out"), str(clip)], capsys)
    assert code == 0 and len(figures) == 1
    spectrogram = figures[0].axes[0]
    assert "Hz" in spectrogram.get_ylabel()
    labels = [t.get_text() for t in spectrogram.get_yticklabels()]
    assert {"500", "1k", "4k"} <= set(labels), labels
    colour_bars = [ax for ax in spectrogram.child_axes if ax.get_ylabel() == "dB"]  # an inset
    assert len(colour_bars) == 1


def test_the_demo_config_head_says_the_measured_minutes():
    head = (REPO / "confs" / "demo.yaml").read_text().split("\ndemo:")[0]
    minutes = int(re.search(r"about (\d+) minutes", head).group(1))
    quick_start = re.search(r"\((\d+) s: install (\d+) s", README)
    measured = (int(quick_start.group(1)) - int(quick_start.group(2))) / 60  # without the install
    assert abs(minutes - measured) <= 1, (minutes, measured)


@pytest.mark.slow
def test_the_test_run_shows_no_dependency_warning():
    """`import desed_task` filters named dependency warnings; pytest dropped the filters it saw
    while collecting, and showed 20 LeafSpec warnings a run (conftest installs them again)."""
    test = "tests/test_inference.py::test_eval_from_checkpoint_scores_clips_at_their_own_length"  # one that warned
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    summary = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 0 and "1 passed" in summary and "warning" not in summary, proc.stdout[-3000:]
