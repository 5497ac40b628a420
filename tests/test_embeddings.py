"""`python -m desed_task.embeddings`: BEATs embeddings in the 2023 HDF5 layout, resumable."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from beats_checkpoint import SMALL_CFG, write_small_beats
from conftest import REPO

from desed_task.data.audio import read_audio
from desed_task.embeddings.cli import main
from desed_task.nnet.beats import load_beats

pytestmark = pytest.mark.slow


def _write_clips(folder: Path, seconds: dict[str, float], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, length in seconds.items():
        sf.write(str(folder / name), 0.1 * rng.standard_normal(int(length * 16000)).astype(np.float32), 16000)
    return folder


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as done:
        main(["--no_progress", "--gpus", "0", *argv])
    return done.value.code


def _subprocess(argv: list[str], **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "desed_task.embeddings", "--no_progress", "--gpus", "0", *argv],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _rows(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (global, frame), looked up as the 2023 training sets did."""
    with h5py.File(path, "r") as f:
        index = {name.decode("UTF-8"): i for i, name in enumerate(f["filenames"])}
        return {name: (f["global_embeddings"][i], f["frame_embeddings"][i]) for name, i in index.items() if name}


def test_golden_clips_give_the_golden_embeddings(shared_reference, tmp_path):
    """The done-when check: the two clips of beats_io.pt as 16 kHz float wavs."""
    io = torch.load(shared_reference / "beats2023" / "beats_io.pt", weights_only=True)
    for i, clip in enumerate(io["audio"]):
        sf.write(str(tmp_path / f"golden_{i}.wav"), clip.numpy(), 16000, subtype="FLOAT")
    out = tmp_path / "E.hdf5"
    run = _subprocess(["--beats", str(shared_reference / "beats2023" / "beats_iter3_small.pt"),
                       "--folder", str(tmp_path), "--out", str(out)])
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    rows = _rows(out)
    assert sorted(rows) == ["golden_0", "golden_1"]
    for i in range(2):
        global_row, frame_row = rows[f"golden_{i}"]
        assert frame_row.shape == (96, 496)
        assert np.abs(frame_row - io["iter3_small_frame"][i].numpy()).max() < 1e-4
        assert np.abs(global_row - io["iter3_small_global"][i].numpy()).max() < 1e-4


def test_file_layout_and_clip_lengths_as_2023(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    beats = write_small_beats(tmp_path / "beats.pt")
    folder = _write_clips(tmp_path / "audio", {"short.wav": 3.0, "exact.wav": 10.0, "long.wav": 12.5})
    (folder / "notes.txt").write_text("not a clip")
    stereo = 0.1 * np.random.default_rng(1).standard_normal((160000, 2)).astype(np.float32)
    sf.write(str(folder / "stereo.wav"), stereo, 16000)
    out = tmp_path / "emb" / "E.hdf5"
    assert _run(["--beats", str(beats), "--folder", str(folder), "--out", str(out), "--batch_size", "3"]) == 0

    model, dim = load_beats(beats), SMALL_CFG["encoder_embed_dim"]
    with h5py.File(out, "r") as f:
        assert h5py.check_string_dtype(f["filenames"].dtype).length is None  # variable-length str
        assert list(f["filenames"].asstr()) == ["exact", "long", "short", "stereo"]  # stems
        assert f["global_embeddings"].shape == (4, dim) and f["global_embeddings"].dtype == np.float32
        assert f["frame_embeddings"].shape == (4, dim, 496) and f["frame_embeddings"].dtype == np.float32
        assert list(f["extracted"]) == [1, 1, 1, 1]
    rows = _rows(out)
    for name in ("short", "long", "stereo"):
        # padded with zeros or cropped at the start to 10 s, channels averaged
        audio, _ = read_audio(folder / f"{name}.wav", sample_rate=16000, target_len=160000)
        with torch.inference_mode():
            expected = model.embeddings(audio[None])
        assert np.abs(rows[name][1] - expected["frame"][0].numpy()).max() < 1e-5
        assert np.abs(rows[name][0] - expected["global"][0].numpy()).max() < 1e-5
    audio, _ = sf.read(str(folder / "long.wav"), dtype="float32")
    with torch.inference_mode():
        first_10s = model.embeddings(torch.from_numpy(audio[:160000])[None])["frame"][0].numpy()
    assert np.abs(rows["long"][1] - first_10s).max() < 1e-5

    caplog.clear()
    assert _run(["--beats", str(beats), "--folder", str(folder), "--out", str(out)]) == 0
    assert "complete (4 clips), nothing to do" in caplog.text


def test_unreadable_clip_is_named_counted_and_left_out(tmp_path, caplog):
    beats = write_small_beats(tmp_path / "beats.pt")
    folder = _write_clips(tmp_path / "audio", {"a.wav": 2.0, "c.wav": 2.0})
    (folder / "b.wav").write_bytes(b"RIFF but not really")
    sf.write(str(folder / "rate.wav"), np.zeros(44100, np.float32), 44100)
    out = tmp_path / "E.hdf5"
    caplog.set_level(logging.INFO)
    assert _run(["--beats", str(beats), "--folder", str(folder), "--out", str(out)]) == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 of 4 clips could not be read" in warnings[0].message
    assert "b.wav" in warnings[0].message and "rate.wav" in warnings[0].message and "44100" in warnings[0].message
    assert sorted(_rows(out)) == ["a", "c"]  # the unreadable ones have a blank name
    with h5py.File(out, "r") as f:
        assert list(f["extracted"]) == [1, 2, 1, 2]


def test_killed_extraction_resumes_without_recomputing(tmp_path):
    beats = write_small_beats(tmp_path / "beats.pt")
    n_clips = 60
    folder = _write_clips(tmp_path / "audio", {f"clip_{i:02d}.wav": 0.3 for i in range(n_clips)})
    out = tmp_path / "killed" / "E.hdf5"
    part = out.with_name("E.hdf5.part")
    run = _subprocess(["--beats", str(beats), "--folder", str(folder), "--out", str(out), "--batch_size", "1"])
    done_before_kill = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and run.poll() is None:
        if part.exists():
            with h5py.File(part, "r") as f:
                done_before_kill = int((f["extracted"][()] == 1).sum())
            if done_before_kill >= 3:
                run.send_signal(signal.SIGKILL)
                break
        time.sleep(0.01)
    run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL, "the extraction ended before it could be killed"
    assert part.exists() and not out.exists()
    with h5py.File(part, "r") as f:
        done_at_kill = int((f["extracted"][()] == 1).sum())
    assert 3 <= done_at_kill < n_clips

    resumed = _subprocess(["--beats", str(beats), "--folder", str(folder), "--out", str(out)])
    _, log = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, log
    assert f"resuming, {done_at_kill} of {n_clips} clips already extracted" in log
    counts = re.search(r"(\d+) clips extracted, (\d+) already done, 0 unreadable", log)
    assert counts and (int(counts[1]), int(counts[2])) == (n_clips - done_at_kill, done_at_kill)
    assert out.exists() and not part.exists()

    whole = tmp_path / "whole" / "E.hdf5"
    assert _run(["--beats", str(beats), "--folder", str(folder), "--out", str(whole)]) == 0
    resumed_rows, whole_rows = _rows(out), _rows(whole)
    assert sorted(resumed_rows) == sorted(whole_rows) and len(whole_rows) == n_clips
    for name, (global_row, frame_row) in whole_rows.items():
        np.testing.assert_allclose(resumed_rows[name][1], frame_row, atol=1e-5, rtol=0)
        np.testing.assert_allclose(resumed_rows[name][0], global_row, atol=1e-5, rtol=0)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_bad_inputs_give_one_error_line_and_exit_2(tmp_path, capsys):
    beats = write_small_beats(tmp_path / "beats.pt")
    folder = _write_clips(tmp_path / "audio", {"a.wav": 1.0})
    out = str(tmp_path / "E.hdf5")
    not_beats = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, not_beats)
    assert _run(["--beats", str(not_beats), "--folder", str(folder), "--out", out]) == 2
    assert str(not_beats) in _error_line(capsys)
    assert _run(["--beats", str(tmp_path / "absent.pt"), "--folder", str(folder), "--out", out]) == 2
    assert "not found" in _error_line(capsys)
    assert _run(["--beats", str(beats), "--folder", str(tmp_path / "none"), "--out", out]) == 2
    assert "does not exist" in _error_line(capsys)
    assert _run(["--beats", str(beats), "--folder", str(folder), "--out", out, "--gpus", "x"]) == 2
    assert "--gpus x" in _error_line(capsys)
    assert _run(["--beats", str(beats), "--folder", str(folder)]) == 2
    assert "--folder needs --out" in capsys.readouterr().err
    # a finished file of another checkpoint is not overwritten, nor mixed with
    assert _run(["--beats", str(beats), "--folder", str(folder), "--out", out]) == 0
    other = write_small_beats(tmp_path / "other.pt", seed=1)
    capsys.readouterr()
    assert _run(["--beats", str(other), "--folder", str(folder), "--out", out]) == 2
    assert "another BEATs checkpoint" in _error_line(capsys)
    _write_clips(folder, {"new.wav": 1.0})
    assert _run(["--beats", str(beats), "--folder", str(folder), "--out", out]) == 2
    assert "holds other clips than the folder now has (1 vs 2)" in _error_line(capsys)


def _embeddings_config(tmp_path: Path, beats: Path, with_eval: bool) -> Path:
    config = yaml.safe_load((REPO / "confs" / "demo.yaml").read_text())
    config.pop("demo", None)
    data = config["data"]
    for key in [k for k in data if k.endswith(("_folder", "_folder_44k", "_folder_16k"))]:
        data[key] = None
    clips = {"synth": 2, "weak": 3, "unlabeled": 2, "synth_val": 1, "test": 2}
    for i, (name, n) in enumerate(clips.items()):
        data[f"{name}_folder"] = str(_write_clips(tmp_path / name, {f"{name}_{j}.wav": 1.0 for j in range(n)}, seed=i))
    data["test_folder_44k"] = str(tmp_path / "test_44k")  # absent: nothing to resample
    data["eval_folder"] = str(tmp_path / "eval") if not with_eval else str(
        _write_clips(tmp_path / "eval", {"e.wav": 1.0}, seed=9))
    config["pretrained"] = {"model": "beats", "e2e": False, "freezed": True,
                            "extracted_embeddings_dir": str(tmp_path / "embeddings"), "checkpoint": str(beats)}
    path = tmp_path / "pretrained.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_conf_file_extracts_every_set_of_the_config(tmp_path, caplog):
    beats = write_small_beats(tmp_path / "beats.pt")
    conf = _embeddings_config(tmp_path, beats, with_eval=False)
    caplog.set_level(logging.INFO)
    assert _run(["--conf_file", str(conf)]) == 0  # the checkpoint from pretrained.checkpoint
    out = tmp_path / "embeddings" / "beats"
    files = sorted(p.name for p in out.iterdir())
    assert files == ["devtest.hdf5", "synth_train.hdf5", "synth_val.hdf5", "unlabeled_train.hdf5",
                     "weak_train.hdf5", "weak_val.hdf5"]
    assert sorted(_rows(out / "weak_val.hdf5")) == ["weak_0", "weak_1", "weak_2"]
    assert "weak_val.hdf5: copied from" in caplog.text  # the weak folder is extracted once
    assert sorted(_rows(out / "devtest.hdf5")) == ["test_0", "test_1"]
    weak, weak_val = _rows(out / "weak_train.hdf5"), _rows(out / "weak_val.hdf5")
    assert all(np.array_equal(weak[k][1], weak_val[k][1]) for k in weak)

    conf = _embeddings_config(tmp_path, beats, with_eval=True)
    caplog.clear()
    assert _run(["--conf_file", str(conf), "--beats", str(beats)]) == 0
    assert sorted(_rows(out / "eval.hdf5")) == ["e"]
    assert caplog.text.count("nothing to do") == 6


def test_conf_file_without_embeddings_dir_is_an_error(tmp_path, capsys):
    beats = write_small_beats(tmp_path / "beats.pt")
    conf = _embeddings_config(tmp_path, beats, with_eval=False)
    config = yaml.safe_load(conf.read_text())
    del config["pretrained"]["extracted_embeddings_dir"]
    conf.write_text(yaml.safe_dump(config))
    assert _run(["--conf_file", str(conf)]) == 2
    assert "pretrained.extracted_embeddings_dir" in _error_line(capsys)


def test_gpus_that_are_not_there_give_one_error_line(tmp_path, capsys, monkeypatch):
    beats = write_small_beats(tmp_path / "beats.pt")
    folder = _write_clips(tmp_path / "audio", {"a.wav": 1.0})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for gpus in ("1", "0,1"):
        assert _run(["--beats", str(beats), "--folder", str(folder), "--out", str(tmp_path / "E.hdf5"),
                     "--gpus", gpus]) == 2
        assert "no CUDA GPU is visible" in _error_line(capsys)
    assert not (tmp_path / "E.hdf5").exists()
