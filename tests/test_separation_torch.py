"""The PyTorch separation backend through the real entry points: run_separation.py (batches of
clips, resumable after SIGKILL), the SSEP demo without TensorFlow (run_separation.py and
finetune_on_separated.py --fast_dev_run in a process where `import tensorflow` fails), and on
the golden TDCN++ the files of both backends within 1e-4 (TensorFlow and ../shared only)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from pipeline import REPO, TINY_SIZES
from separation_resume import check_resume_after_sigkill

from desed_task.separation import load_separator
from desed_task.separation.backend import TorchSeparator
from desed_task.separation.demo import write_standin_separator

FS = 16000
N_SOURCES = 3  # not the stand-in's default 4: nothing may assume the count


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    return write_standin_separator(tmp_path_factory.mktemp("standin") / "separation.pt", seed=3, num_sources=N_SOURCES)


def write_clips(folder_path: Path, lengths: dict[str, int], fs: int = FS) -> None:
    for i, (name, samples) in enumerate(lengths.items()):
        path = folder_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.random.default_rng(i).uniform(-0.3, 0.3, samples).astype(np.float32), fs)


def load_run_separation():
    spec = importlib.util.spec_from_file_location("run_separation", REPO / "run_separation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def separation_config(tmp_path: Path, sep_model: Path, **training) -> Path:
    config = yaml.safe_load((REPO / "confs" / "sep+sed.yaml").read_text())
    config["training"].update(sep_model=str(sep_model), **training)
    config["data"] = {"audio_max_len": 10, "fs": FS, "net_subsample": 4,
                      "test_folder_16k": str(tmp_path / "16k"), "test_folder_sep": str(tmp_path / "sep")}
    conf = tmp_path / "sep.yaml"
    conf.write_text(yaml.safe_dump(config))
    return conf


def report_row(printed: str, name: str) -> list[str]:
    """separated, already done, failed of one folder in the final table."""
    return next(line.split()[1:] for line in printed.splitlines() if line.startswith(name + " "))


def test_run_separation_batches_clips_as_one_by_one_and_redoes_nothing(tmp_path, standin, capsys):
    lengths = {"a.wav": 4000, "b.wav": 4000, "c.wav": 4000, "d.wav": 2500, "sub/e.wav": 4000}
    write_clips(tmp_path / "16k", lengths)
    (tmp_path / "16k" / "broken.wav").write_bytes(b"not audio")
    conf = separation_config(tmp_path, standin)
    run_separation = load_run_separation()

    assert run_separation.main(["--conf_file", str(conf), "--test_only", "--gpus", "0", "--batch_size", "2"]) == 1
    assert report_row(capsys.readouterr().out, "test") == ["5", "0", "1"]  # broken.wav: counted, the rest goes on
    model = load_separator(standin)
    for name, samples in lengths.items():
        written, fs = sf.read(str(tmp_path / "sep" / name), dtype="float32")
        mixture = sf.read(str(tmp_path / "16k" / name), dtype="float32")[0]
        with torch.no_grad():  # one clip at a time, as 2021 separated
            alone = model(torch.from_numpy(mixture)[None])[0].numpy().T
        assert fs == FS and written.shape == (samples, N_SOURCES)
        np.testing.assert_allclose(written, alone, rtol=0, atol=1e-6)
        assert np.abs(written[:, 0] - written[:, 1]).max() > 1e-3  # the sources differ
    assert run_separation.main(["--conf_file", str(conf), "--test_only", "--gpus", "0"]) == 1
    assert report_row(capsys.readouterr().out, "test") == ["0", "5", "1"]


def test_bad_batch_size_and_gpus_are_one_error_line(tmp_path, standin, capsys):
    conf = separation_config(tmp_path, standin)
    run_separation = load_run_separation()
    for argv, expected in ((["--batch_size", "0"], "error: --batch_size 0"), (["--gpus", "x"], "error: --gpus x")):
        assert run_separation.main(["--conf_file", str(conf), "--test_only", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(expected), err


def test_batched_separation_resumes_after_sigkill_and_separates_every_clip_once(tmp_path, standin, monkeypatch):
    src, dst, renames_log = tmp_path / "16k", tmp_path / "sep", tmp_path / "renames.txt"
    names = [f"clip{i}.wav" for i in range(4)] + ["sub/clip4.wav", "sub/clip5.wav"]
    write_clips(src, dict.fromkeys(names, 2000))
    open_model = """
        from desed_task.separation.backend import open_torch_file
        model = open_torch_file(args[0], "cpu", batch_size=2)  # clip 4 is in the second batch of two
    """
    check_resume_after_sigkill(open_model, [str(standin)], TorchSeparator(load_separator(standin), batch_size=2),
                               src, dst, renames_log, names, monkeypatch)


# `import tensorflow` fails in the subprocess: a package of that name that raises ImportError
NO_TENSORFLOW = 'raise ImportError("tensorflow is blocked in this test")\n'


def tiny_demo_copy(tiny_data: Path, tmp_path: Path) -> Path:
    root = tmp_path / "demo"
    shutil.copytree(tiny_data, root)
    return root


@pytest.mark.slow
def test_ssep_demo_separates_and_fine_tunes_without_tensorflow(tiny_data, tmp_path):
    """run_separation.py then finetune_on_separated.py --fast_dev_run on confs/demo_sep+sed.yaml
    (the tiny demo data): the stand-in written by the demo, every clip separated, in processes
    where `import tensorflow` fails. The fine-tuning's dev-test `_sep` folder is deleted
    first: it separates the missing clips itself, in its process."""
    from test_finetune import pretrained_checkpoint, sep_config

    root = tiny_demo_copy(tiny_data, tmp_path)
    config = yaml.safe_load((REPO / "confs" / "demo_sep+sed.yaml").read_text())
    config["demo"].update(root=str(root), sizes=TINY_SIZES, log_dir=str(tmp_path / "exp"))
    for key, value in config["data"].items():
        if isinstance(value, str) and value.startswith("data/demo/"):
            config["data"][key] = str(root / value[len("data/demo/"):])
    model_file = tmp_path / "model" / "separation.pt"
    config["training"]["sep_model"] = str(model_file)
    tiny = sep_config(root, tmp_path / "exp", tmp_path / "sed.ckpt")  # a tiny network to fine-tune
    config["net"] = tiny["net"]
    config["training"].update(sed_checkpoint=str(pretrained_checkpoint(tmp_path / "sed.ckpt", tiny)[0]),
                              batch_size=[2, 2, 2], batch_size_val=4, num_workers=0)
    conf = tmp_path / "demo_sep+sed.yaml"
    conf.write_text(yaml.safe_dump(config))
    blocker = tmp_path / "blocker" / "tensorflow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(NO_TENSORFLOW)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker.parent), str(REPO)])}
    blocked = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, capture_output=True, text=True)
    assert blocked.returncode == 1 and "blocked in this test" in blocked.stderr

    separated = subprocess.run(
        [sys.executable, str(REPO / "run_separation.py"), "--conf_file", str(conf), "--gpus", "0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert separated.returncode == 0, separated.stderr[-3000:]
    assert "STAND-IN separation model" in separated.stderr and model_file.is_file()
    for name in ("synth", "weak", "unlabeled", "synth_val", "test", "eval"):
        sep = Path(config["data"][f"{name}_folder_sep"])
        clips = Path(config["data"].get(f"{name}_folder") or config["data"][f"{name}_folder_16k"])
        assert len(list(sep.rglob("*.wav"))) == len(list(clips.rglob("*.wav"))) > 0, name
        assert sf.info(str(next(sep.rglob("*.wav")))).channels == 4  # the stand-in's sources

    test_sep = Path(config["data"]["test_folder_sep"])
    shutil.rmtree(test_sep)
    tuned = subprocess.run(
        [sys.executable, str(REPO / "finetune_on_separated.py"), "--conf_file", str(conf), "--gpus", "0",
         "--fast_dev_run"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    assert "separating the clips missing from" in tuned.stderr
    assert len(list(test_sep.glob("*.wav"))) == len(list(Path(config["data"]["test_folder_16k"]).glob("*.wav")))


# ---------------------------------------------------------------- the golden TDCN++ (TensorFlow)
@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> Path:
    pytest.importorskip("tensorflow", reason="the reference backend needs TensorFlow (the separation extra)")
    model = REPO.parent / "shared" / "reference" / "tdcnpp2021"
    if not (model / "io.npz").is_file():
        pytest.skip("../shared/reference/tdcnpp2021 is absent (reference data is only beside the repo in CI)")
    return model


@pytest.mark.slow
def test_both_backends_write_the_same_sources_of_the_golden_model(golden, tmp_path, capsys):
    """run_separation.py on a folder of the golden's two inputs (10 s and 48123 samples): the
    TensorFlow session (2021's path) and the PyTorch file converted by the CLI write files within
    1e-4 of each other, and TensorFlow's are the golden's recorded outputs."""
    io = np.load(golden / "io.npz")
    src = tmp_path / "16k"
    src.mkdir()
    for i in (0, 1):
        sf.write(str(src / f"clip{i}.wav"), io[f"input_{i}"][0, 0], FS, subtype="FLOAT")
    converted = tmp_path / "separation.pt"
    convert = subprocess.run(
        [sys.executable, "-m", "desed_task.separation", "convert", "--tf_model", str(golden), "--out", str(converted)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert convert.returncode == 0, convert.stderr[-2000:]
    run_separation = load_run_separation()
    written = {}
    for backend in ("tensorflow", "pytorch"):
        config = yaml.safe_load((REPO / "confs" / "sep+sed.yaml").read_text())
        config["training"].update(sep_model=str(converted), sep_graph=str(golden / "inference.meta"),
                                  sep_checkpoint=str(golden / "model.ckpt-1"))
        config["separation"] = {"backend": backend, "batch_size": 2}
        config["data"] = {"audio_max_len": 10, "fs": FS, "net_subsample": 4,
                          "test_folder_16k": str(src), "test_folder_sep": str(tmp_path / backend)}
        conf = tmp_path / f"{backend}.yaml"
        conf.write_text(yaml.safe_dump(config))
        assert run_separation.main(["--conf_file", str(conf), "--test_only", "--gpus", "0"]) == 0
        written[backend] = [sf.read(str(tmp_path / backend / f"clip{i}.wav"), dtype="float32")[0].T for i in (0, 1)]
    capsys.readouterr()
    with capsys.disabled():  # the figures of the README (pytest -s)
        for i in (0, 1):
            print(f"\ngolden input {i} ({len(io[f'input_{i}'][0, 0])} samples): largest |pytorch - tensorflow| "
                  f"{np.abs(written['pytorch'][i] - written['tensorflow'][i]).max():.2g}, largest |tensorflow - "
                  f"io.npz| {np.abs(written['tensorflow'][i] - io[f'output_{i}'][0]).max():.2g}")
    for i in (0, 1):
        tf_sources, torch_sources = written["tensorflow"][i], written["pytorch"][i]
        assert tf_sources.shape == torch_sources.shape == io[f"output_{i}"][0].shape
        np.testing.assert_allclose(tf_sources, io[f"output_{i}"][0], rtol=0, atol=1e-6)
        assert np.abs(torch_sources - tf_sources).max() < 1e-4
        assert np.abs(tf_sources).max() > 1e-2  # sources worth comparing


def test_demo_writes_the_standin_once_where_the_config_points(tmp_path, caplog):
    from desed_task.config import ConfigError
    from desed_task.separation.demo import ensure_standin_separator

    path = tmp_path / "model" / "separation.pt"
    config = {"demo": {"root": "x", "seed": 5, "separation_standin": True}, "training": {"sep_model": str(path)}}
    with caplog.at_level("WARNING"):
        assert ensure_standin_separator(config) is True
    assert "STAND-IN separation model" in caplog.text
    separator = load_separator(path)
    assert separator.source["standin"] and separator.hparams["num_sources"] == 4
    mtime = path.stat().st_mtime_ns
    assert ensure_standin_separator(config) is False and path.stat().st_mtime_ns == mtime
    again = load_separator(write_standin_separator(tmp_path / "again.pt", seed=5))
    assert all(torch.equal(a, b) for a, b in zip(separator.state_dict().values(), again.state_dict().values()))
    assert ensure_standin_separator({"demo": {"root": "x"}, "training": {}}) is False  # not asked for
    with pytest.raises(ConfigError, match="demo.separation_standin needs training.sep_model"):
        ensure_standin_separator({"demo": {"root": "x", "separation_standin": True}, "training": {}})


@pytest.mark.slow
def test_a_long_recording_is_separated_window_by_window_as_10_s_clips(tmp_path, standin):
    """Inference of an SSEP + SED checkpoint: the separation model only ever sees windows of at
    most 10 s (the 2021 clip length), a batch of them at a time (memory bounded by the batch,
    not the recording), and batching them changes no score."""
    from conftest import write_wav
    from test_network_kinds import checkpoint_of, tiny

    from desed_task.config import load_config
    from desed_task.inference import SoundEventDetector

    config = tiny(load_config(REPO / "confs" / "demo_sep+sed.yaml"))
    config["training"]["sep_model"] = str(standin)
    path = checkpoint_of(config, tmp_path / "ssep.ckpt")
    wav = write_wav(tmp_path / "long.wav", seconds=27.0)
    scores = {}
    for batch_size in (1, 3):
        detector = SoundEventDetector.from_checkpoint(path, batch_size=batch_size)
        seen = []
        separate = detector.separator.separate_tensor
        detector.separator.separate_tensor = lambda audio, f=separate, s=seen: s.append(tuple(audio.shape)) or f(audio)
        scores[batch_size], _ = detector.score_file(wav)
        assert max(n for _, n in seen) == 10 * FS and all(b <= batch_size for b, _ in seen), seen
        assert sum(b for b, _ in seen) == 5  # windows at 0, 5, 10, 15 s (10 s long), then 20 s to the end
    assert scores[1].shape == (10, (1 + 27 * FS // 256) // 4)
    np.testing.assert_allclose(scores[3], scores[1], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_ssep_sed_export_with_the_golden_tdcnpp_inside_gives_the_pytorch_scores(tmp_path, capsys):
    """The export CLI of an SSEP + SED checkpoint with the converted golden TDCN++ (the real
    architecture, 8 sources) inside: under ONNX Runtime, its scores are PyTorch's to
    1e-4 on the golden's 10 s input and on a 7 s window (no TensorFlow needed)."""
    ort = pytest.importorskip("onnxruntime")
    from test_network_kinds import checkpoint_of, tiny

    from desed_task.config import load_config
    from desed_task.export.cli import main as export_main
    from desed_task.inference import SoundEventDetector
    from desed_task.separation.cli import main as convert_main

    golden = REPO.parent / "shared" / "reference" / "tdcnpp2021"
    if not (golden / "io.npz").is_file():
        pytest.skip("../shared/reference/tdcnpp2021 is absent (reference data is only beside the repo in CI)")
    converted = tmp_path / "separation.pt"
    assert convert_main(["convert", "--tf_model", str(golden), "--out", str(converted)]) == 0
    config = tiny(load_config(REPO / "confs" / "demo_sep+sed.yaml"))
    config["training"]["sep_model"] = str(converted)
    path = checkpoint_of(config, tmp_path / "ssep.ckpt")
    export_main(["--checkpoint", str(path), "--onnx", str(tmp_path / "ssep.onnx")])
    capsys.readouterr()
    session = ort.InferenceSession(str(tmp_path / "ssep.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["separation_sources"] == "8"
    detector = SoundEventDetector.from_checkpoint(path)
    ten_seconds = np.load(golden / "io.npz")["input_0"][0]  # (1, 160000)
    for audio in (ten_seconds, ten_seconds[:, 16000:128000]):
        with torch.inference_mode():
            mixture = torch.from_numpy(np.ascontiguousarray(audio))
            sources = detector.separator.separate_tensor(mixture)
            strong, weak = detector.pipeline(torch.cat([mixture[:, None], sources], 1))
        onnx_strong, onnx_weak = session.run(["strong", "weak"], {"audio": audio})
        with capsys.disabled():  # the figure of the closing note (pytest -s)
            print(f"\nSSEP + SED ONNX with the golden TDCN++, {audio.shape[1]} samples: largest |onnx - pytorch| "
                  f"strong {np.abs(onnx_strong - strong.numpy()).max():.2g}, weak {np.abs(onnx_weak - weak.numpy()).max():.2g}")
        assert np.abs(onnx_strong - strong.numpy()).max() < 1e-4 and np.abs(onnx_weak - weak.numpy()).max() < 1e-4
        assert strong.std() > 1e-3  # scores that vary
