"""ONNX export (``python -m desed_task.export``): the graph with the features inside gives the
PyTorch path's scores on 10 s and 3.7 s of audio."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pipeline import tiny_config

from desed_task.export.cli import main as export_main
from desed_task.inference import SoundEventDetector
from desed_task.nnet import build_network
from desed_task.training.mean_teacher import MeanTeacher

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = tiny_config(tmp_path_factory.mktemp("unused"), tmp_path_factory.mktemp("unused"))
    config.pop("demo")
    config["scaler"] = {"statistic": "instance", "normtype": "minmax", "dims": [1, 2]}
    module = MeanTeacher(config, build_network(config["net"]), [f"c{i}" for i in range(10)], 0.064)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save({"hyper_parameters": config, "state_dict": module.state_dict()}, path)
    return path


def test_onnx_matches_pytorch_on_10_s_and_3_7_s(checkpoint, tmp_path, capsys):
    onnx_path = tmp_path / "model.onnx"
    export_main(["--checkpoint", str(checkpoint), "--model", "student", "--onnx", str(onnx_path)])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["onnx"] == str(onnx_path)
    detector = SoundEventDetector.from_checkpoint(checkpoint, model="student")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    assert json.loads(metadata["class_names"]) == detector.class_names
    assert float(metadata["frame_step"]) == pytest.approx(0.064) and metadata["sample_rate"] == "16000"
    rng = np.random.default_rng(0)
    for batch, seconds in ((2, 10.0), (1, 3.7), (3, 3.7)):
        audio = (0.1 * rng.standard_normal((batch, round(seconds * 16000)))).astype(np.float32)
        strong, weak = session.run(["strong", "weak"], {"audio": audio})
        with torch.no_grad():
            expected_strong, expected_weak = detector.pipeline(torch.from_numpy(audio))
        assert strong.shape == tuple(expected_strong.shape) == (batch, 10, (1 + len(audio[0]) // 256) // 4)
        assert np.abs(strong - expected_strong.numpy()).max() < 1e-4
        assert np.abs(weak - expected_weak.numpy()).max() < 1e-4


def test_inference_cli_with_onnx_runtime_gives_the_pytorch_scores(checkpoint, tmp_path, capsys):
    from conftest import write_wav

    from desed_task.inference.cli import main as inference_main

    onnx_path = tmp_path / "model.onnx"
    export_main(["--checkpoint", str(checkpoint), "--onnx", str(onnx_path)])
    clip = write_wav(tmp_path / "in" / "clip.wav", seconds=23.0, fs=22050, channels=2)
    tables = {}
    for backend, extra in (("torch", []), ("onnx", ["--onnx", str(onnx_path)])):
        with pytest.raises(SystemExit) as exit_info:
            inference_main(["--checkpoint", str(checkpoint), "--gpus", "0", "--out_dir", str(tmp_path / backend), *extra, str(clip)])
        assert exit_info.value.code == 0
        tables[backend] = np.loadtxt(tmp_path / backend / "scores" / "clip.wav.tsv", skiprows=1)
    assert tables["onnx"].shape == tables["torch"].shape == (359, 12)
    assert np.abs(tables["onnx"] - tables["torch"]).max() < 1e-4


def test_torchscript_export_matches_pytorch(checkpoint, tmp_path):
    path = tmp_path / "model.pt"
    export_main(["--checkpoint", str(checkpoint), "--torchscript", str(path)])
    extra = {"metadata.json": ""}
    traced = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["metadata.json"])["sample_rate"] == "16000"
    detector = SoundEventDetector.from_checkpoint(checkpoint)
    audio = 0.1 * torch.randn(2, 59200)
    with torch.no_grad():
        for got, expected in zip(traced(audio), detector.pipeline(audio)):
            assert got.shape == expected.shape and (got - expected).abs().max() < 1e-4


@pytest.mark.parametrize(("n_fft", "hop", "win"), [(2048, 256, 2048), (1024, 256, 800), (2048, 300, 2048), (510, 102, 510)])
def test_export_front_end_equals_the_mel_spectrogram(n_fft, hop, win):
    # the factored DFT (hop dividing n_fft; 510 = 15 x 34) or the exported torch.stft
    from desed_task.export.onnx import ExportMelSpectrogram
    from desed_task.features.mel import MelSpectrogram

    torch.manual_seed(0)
    mel = MelSpectrogram(n_fft=n_fft, hop_length=hop, win_length=win)
    for n_samples in (160000, 59200, n_fft // 2 + 9):
        audio = 0.05 * torch.randn(2, n_samples)
        expected = mel(audio)
        actual = ExportMelSpectrogram(mel)(audio)
        assert actual.shape == expected.shape
        assert float((actual - expected).abs().max()) <= 1e-5 * float(expected.abs().max())
