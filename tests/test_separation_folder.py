"""separate_folder and the config jobs with a numpy test separator (no TensorFlow needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from desed_task.config import ConfigError
from desed_task.separation import SeparationReport, format_reports, separate_folder
from desed_task.separation.folder import TEMP_MARKER, temporary_path
from desed_task.separation.jobs import separation_jobs

FS = 16000


class SplitInHalves:
    """Test separator: 2 "sources", the mixture times 0.25 and 0.75; counts calls."""

    n_sources = 2

    def __init__(self) -> None:
        self.calls = 0

    def separate(self, waveform: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.stack([0.25 * waveform, 0.75 * waveform])


def write_clip(path: Path, samples: int = 1600, fs: int = FS, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(len(path.name)).uniform(-0.5, 0.5, (samples, channels))
    sf.write(str(path), data.astype(np.float32), fs)


def test_outputs_mirror_the_layout_with_one_channel_per_source(tmp_path: Path) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    write_clip(src / "a.wav")
    write_clip(src / "sub" / "b.wav", samples=800, channels=2)  # stereo: averaged, as 2021
    separator = SplitInHalves()
    report = separate_folder(separator, src, dst, progress=False)
    assert (report.separated, report.already_done, report.failed) == (2, 0, {})
    out, fs = sf.read(str(dst / "sub" / "b.wav"), dtype="float32")
    mono = sf.read(str(src / "sub" / "b.wav"), dtype="float32")[0].mean(1)
    assert fs == FS and out.shape == (800, 2)
    np.testing.assert_allclose(out[:, 1], 0.75 * mono, rtol=1e-6)
    assert not list(dst.rglob(f"*{TEMP_MARKER}*"))


def test_done_clips_are_skipped_and_stale_temporaries_removed(tmp_path: Path) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    for name in ("a", "b", "c"):
        write_clip(src / f"{name}.wav")
    separate_folder(SplitInHalves(), src, dst, progress=False)
    (dst / "c.wav").unlink()  # as if the run had been killed before c
    temporary_path(dst / "c.wav").write_bytes(b"half a wav")  # ... while writing it
    (dst / "b.wav").write_bytes(b"RIFF")  # an output that is not whole is redone
    separator = SplitInHalves()
    report = separate_folder(separator, src, dst, progress=False)
    assert (report.separated, report.already_done, separator.calls) == (2, 1, 2)
    assert not list(dst.rglob(f"*{TEMP_MARKER}*"))
    assert sf.info(str(dst / "b.wav")).channels == 2


def test_unreadable_and_wrong_rate_clips_are_reported_and_skipped(tmp_path: Path) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    write_clip(src / "good.wav")
    (src / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    write_clip(src / "at_44k.wav", fs=44100)
    report = separate_folder(SplitInHalves(), src, dst, progress=False)
    assert report.separated == 1
    assert set(report.failed) == {src / "corrupt.wav", src / "at_44k.wav"}
    assert "44100" in report.failed[src / "at_44k.wav"]
    assert sorted(p.name for p in dst.iterdir()) == ["good.wav"]
    table = format_reports({"test": report})
    assert "corrupt.wav" in table and "at_44k.wav" in table


def test_separator_error_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    class Broken(SplitInHalves):
        def separate(self, waveform: np.ndarray) -> np.ndarray:
            raise RuntimeError("device lost\nlong traceback")

    src = tmp_path / "in"
    write_clip(src / "a.wav")
    report = separate_folder(Broken(), src, tmp_path / "out", progress=False)
    assert report.failed == {src / "a.wav": "RuntimeError: device lost"}
    assert isinstance(report, SeparationReport) and report.total == 1


def test_jobs_read_2021_keys_and_name_what_is_missing(tmp_path: Path) -> None:
    data = {
        f"{name}_{suffix}": str(tmp_path / f"{name}_{suffix}")
        for name in ("synth", "synth_val", "weak", "unlabeled", "test")
        for suffix in ("folder_44k", "folder_16k", "folder_sep")
    }
    data["test_dur"] = str(tmp_path / "test_dur.tsv")
    jobs = separation_jobs(data)
    assert [job.name for job in jobs] == ["synth", "synth_val", "weak", "unlabeled", "test"]
    assert jobs[-1].durations_tsv == tmp_path / "test_dur.tsv"
    assert [job.name for job in separation_jobs(data, test_only=True)] == ["test"]
    del data["weak_folder_sep"]
    with pytest.raises(ConfigError, match="data.weak_folder_sep"):
        separation_jobs(data)
    # load_config folds <set>_folder_16k into <set>_folder: both are read
    folded = {"test_folder": str(tmp_path), "test_folder_sep": str(tmp_path / "sep")}
    assert separation_jobs(folded, test_only=True)[0].audio_16k == tmp_path


def test_eval_is_separated_only_when_its_sep_folder_is_set_and_its_audio_exists(tmp_path: Path) -> None:
    data = {
        f"{name}_{suffix}": str(tmp_path / f"{name}_{suffix}")
        for name in ("synth", "synth_val", "weak", "unlabeled", "test")
        for suffix in ("folder_44k", "folder_16k", "folder_sep")
    }
    data["eval_folder"] = str(tmp_path / "eval")
    assert "eval" not in [job.name for job in separation_jobs(data)]  # no eval_folder_sep
    data["eval_folder_sep"] = str(tmp_path / "eval_sep")
    assert "eval" not in [job.name for job in separation_jobs(data)]  # no eval audio on disk
    (tmp_path / "eval").mkdir()
    assert separation_jobs(data)[-1].name == "eval"
    assert [job.name for job in separation_jobs(data, test_only=True)] == ["test"]
