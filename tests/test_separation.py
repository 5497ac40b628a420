"""The TensorFlow path (``separation.backend: tensorflow``, the reference) for real, on the
TensorFlow STAND-IN graph: build, load, separate folders, resume after a SIGKILL, and
run_separation.py end to end. Skipped without TensorFlow (the separation extra)."""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

pytest.importorskip("tensorflow", reason="the TensorFlow backend needs TensorFlow (the separation extra)")

from separation_resume import check_resume_after_sigkill  # noqa: E402

from desed_task.data.resample import MARKER, resample_audio  # noqa: E402
from desed_task.separation import separate_folder  # noqa: E402
from desed_task.separation.errors import ModelNotFound
from desed_task.separation.model import TFSeparationModel  # noqa: E402
from desed_task.separation.standin import build_standin_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FS = 16000
N_SOURCES = 3  # not the default 4: nothing may assume the count


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_standin_model(tmp_path_factory.mktemp("standin"), n_sources=N_SOURCES)


@pytest.fixture(scope="module")
def model(standin: tuple[Path, Path]) -> TFSeparationModel:
    with TFSeparationModel(*standin) as loaded:
        yield loaded


def write_clips(folder_path: Path, names: list[str], samples: int = 2000, fs: int = FS) -> None:
    for i, name in enumerate(names):
        path = folder_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        audio = np.random.default_rng(i).uniform(-0.3, 0.3, samples).astype(np.float32)
        sf.write(str(path), audio, fs)


def test_standin_has_the_real_file_names_and_tensor_contract(standin, model) -> None:
    graph_path, prefix = standin
    assert graph_path.name == "inference.meta" and prefix.name == "model.ckpt-3547330"
    assert prefix.with_name(prefix.name + ".index").is_file()
    assert list(prefix.parent.glob("model.ckpt-3547330.data-*"))
    assert model.is_standin and model.n_sources == N_SOURCES
    mixture = np.random.default_rng(0).standard_normal(1234).astype(np.float32)
    sources = model.separate(mixture)
    assert sources.shape == (N_SOURCES, 1234) and sources.dtype == np.float32
    np.testing.assert_allclose(sources.sum(0), mixture, atol=1e-5)  # mixture consistency
    assert not np.allclose(sources[0], sources[1])


def test_standin_is_deterministic(tmp_path: Path, standin, model) -> None:
    mixture = np.linspace(-1, 1, 500, dtype=np.float32)
    with TFSeparationModel(*build_standin_model(tmp_path, n_sources=N_SOURCES)) as again:
        np.testing.assert_array_equal(again.separate(mixture), model.separate(mixture))


def test_missing_checkpoint_says_where_to_get_the_model(tmp_path: Path, standin) -> None:
    with pytest.raises(ModelNotFound, match="yfcc100m_mixit_model_checkpoint"):
        TFSeparationModel(standin[0], tmp_path / "model.ckpt-3547330")


def test_folder_separation_mirrors_layout(tmp_path: Path, model) -> None:
    src, dst = tmp_path / "16k", tmp_path / "sep"
    write_clips(src, ["a.wav", "sub/b.wav", "sub/deeper/c.wav"])
    report = separate_folder(model, src, dst, progress=False)
    assert (report.separated, report.already_done, len(report.failed)) == (3, 0, 0)
    for name in ["a.wav", "sub/b.wav", "sub/deeper/c.wav"]:
        info = sf.info(str(dst / name))
        assert (info.channels, info.frames, info.samplerate) == (N_SOURCES, 2000, FS)


def test_resume_after_sigkill_separates_every_clip_once(
    tmp_path: Path, standin, model, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst, renames_log = tmp_path / "16k", tmp_path / "sep", tmp_path / "renames.txt"
    names = [f"clip{i}.wav" for i in range(4)] + ["sub/clip4.wav", "sub/clip5.wav"]
    write_clips(src, names)
    open_model = """
        from desed_task.separation.model import TFSeparationModel
        model = TFSeparationModel(*args)
    """
    check_resume_after_sigkill(open_model, [str(p) for p in standin], model, src, dst, renames_log, names,
                               monkeypatch, env={"TF_CPP_MIN_LOG_LEVEL": "2"})
    for name in names:
        assert sf.info(str(dst / name)).channels == N_SOURCES


def load_run_separation():
    spec = importlib.util.spec_from_file_location("run_separation", REPO / "run_separation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_separation_resamples_separates_and_reports(tmp_path: Path, standin, capsys) -> None:
    data = tmp_path / "data"
    write_clips(data / "validation", ["y1.wav", "y2.wav"], samples=4410, fs=44100)
    (data / "validation" / "broken.wav").write_bytes(b"not audio")
    config = yaml.safe_load((REPO / "confs" / "sep+sed.yaml").read_text())
    config["training"].update(sep_graph=str(standin[0]), sep_checkpoint=str(standin[1]))
    config["separation"] = {"backend": "tensorflow"}  # the TF stand-in is no TDCN++: the reference backend
    config["data"] = {
        "audio_max_len": 10,
        "fs": FS,
        "net_subsample": 4,
        "test_folder_44k": str(data / "validation"),
        "test_folder_16k": str(data / "validation_16k"),
        "test_folder_sep": str(data / "validation_sep"),
        "test_dur": str(data / "validation_durations.tsv"),
    }
    conf = tmp_path / "sep+sed.yaml"
    conf.write_text(yaml.safe_dump(config))
    run_separation = load_run_separation()

    status = run_separation.main(["--conf_file", str(conf), "--test_only"])

    assert status == 1  # broken.wav cannot be resampled: counted, the rest goes on
    for name in ["y1.wav", "y2.wav"]:  # the separation input is resampled as 2021 (kaiser_best)
        source, _ = sf.read(str(data / "validation" / name), dtype="float32")
        made, _ = sf.read(str(data / "validation_16k" / name), dtype="float32")
        np.testing.assert_allclose(made, resample_audio(source, 44100, FS, "kaiser_best"), rtol=0, atol=1e-6)
        info = sf.info(str(data / "validation_sep" / name))
        assert (info.channels, info.samplerate, info.frames) == (N_SOURCES, FS, 1600)
    assert (data / "validation_durations.tsv").is_file()
    assert report_row(capsys.readouterr().out, "test") == ["2", "0", "0"]
    assert run_separation.main(["--conf_file", str(conf), "--test_only"]) == 1
    assert report_row(capsys.readouterr().out, "test") == ["0", "2", "0"]  # nothing redone


def report_row(printed: str, name: str) -> list[str]:
    """separated, already done, failed of one folder in the final table."""
    return next(line.split()[1:] for line in printed.splitlines() if line.startswith(name + " "))


def _finished(folder_path: Path) -> list[Path]:
    """Outputs under their final name (temporary ones are hidden)."""
    return sorted(p for p in folder_path.glob("*.wav") if not p.name.startswith("."))


THROTTLED = """
import runpy, sys, time
import desed_task.data.resample as resample
import desed_task.separation.folder as folder

def slower(work):
    def slowed(*args, **kwargs):
        out = work(*args, **kwargs)
        time.sleep(0.2)
        return out
    return slowed

resample.resample_file = slower(resample.resample_file)
folder.separate_clip = slower(folder.separate_clip)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow
def test_run_separation_killed_at_a_random_point_resumes_to_the_same_files(tmp_path: Path, standin) -> None:
    """The real command, SIGKILLed after a seeded random number of finished files of a seeded
    random phase (resampling or separation) plus a seeded random delay, then started again:
    the same 16 kHz clips, durations and separated files as an uninterrupted run, no
    temporary file left, and no file finished before the kill written again."""
    rng = random.Random(7)
    n_clips = 12
    confs = {}
    for name in ("straight", "killed"):
        data = tmp_path / name
        write_clips(data / "validation", [f"y{i:02d}.wav" for i in range(n_clips)], samples=44100, fs=44100)
        config = yaml.safe_load((REPO / "confs" / "sep+sed.yaml").read_text())
        config["training"].update(sep_graph=str(standin[0]), sep_checkpoint=str(standin[1]))
        config["separation"] = {"backend": "tensorflow"}  # the TF stand-in is no TDCN++: the reference backend
        config["data"] = {
            "audio_max_len": 10, "fs": FS, "net_subsample": 4,
            "test_folder_44k": str(data / "validation"), "test_folder_16k": str(data / "validation_16k"),
            "test_folder_sep": str(data / "validation_sep"), "test_dur": str(data / "durations.tsv"),
        }
        confs[name] = tmp_path / f"{name}.yaml"
        confs[name].write_text(yaml.safe_dump(config))
    assert load_run_separation().main(["--conf_file", str(confs["straight"]), "--test_only"]) == 0

    # the killed run: the real command, each file's work made 0.2 s longer so that the kill
    # lands mid-run on a loaded machine too (the numbers are not touched)
    command = [sys.executable, "-c", THROTTLED, str(REPO / "run_separation.py"), "--conf_file", str(confs["killed"]), "--test_only"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    killed_data = tmp_path / "killed"
    watched = killed_data / rng.choice(["validation_16k", "validation_sep"])
    kill_after, delay = rng.randint(1, n_clips - 1), rng.uniform(0.0, 0.05)
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(_finished(watched)) < kill_after:
        time.sleep(0.005)
    time.sleep(delay)
    assert proc.poll() is None, "the run ended before it could be killed:\n" + proc.stdout.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p: p.stat().st_mtime_ns for folder_name in ("validation_16k", "validation_sep")
              for p in _finished(killed_data / folder_name)}
    assert 0 < len(before) < 2 * n_clips

    resumed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert not [p for p in killed_data.rglob(".*") if p.is_file() and p.name != MARKER]  # no temporary file left
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # nothing done twice
    for folder_name in ("validation_16k", "validation_sep"):
        straight = _finished(tmp_path / "straight" / folder_name)
        assert [p.name for p in _finished(killed_data / folder_name)] == [p.name for p in straight]
        for reference in straight:
            np.testing.assert_array_equal(
                sf.read(str(killed_data / folder_name / reference.name))[0], sf.read(str(reference))[0]
            )
    assert (killed_data / "durations.tsv").read_text() == (tmp_path / "straight" / "durations.tsv").read_text()
