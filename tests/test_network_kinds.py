"""Every kind of network the configs describe, through the one factory (`build_network`): built,
exported to ONNX where export is possible, and scoring a 13 s recording through the inference API
(SSEP + SED with the stand-in separation model); `data.net_subsample` checked against the
network's time pooling."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_wav
from pipeline import REPO, tiny_config, write_config

from desed_task.checkpoints import CheckpointError
from desed_task.config import ConfigError, load_config, validate_config
from desed_task.data.label_encoder import ManyHotEncoder
from desed_task.export.cli import main as export_main
from desed_task.inference import SoundEventDetector
from desed_task.inference.cli import main as inference_main
from desed_task.nnet import build_network, network_from_config, network_kind
from desed_task.nnet.CRNN import CRNN
from desed_task.nnet.ensemble import SeparatedEnsemble
from desed_task.training.mean_teacher import MeanTeacher

SECONDS = 13.0
FRAMES_13_S = (1 + round(SECONDS * 16000) // 256) // 4  # one pass of the network: 203
N_SOURCES = 3  # the stand-in's; the real model has 4: nothing may assume the count
CONFS = ("sed", "demo", "sep+sed", "demo_sep+sed")


def tiny(config: dict) -> dict:
    """The config with a tiny-width network of its own kind and pooling (a few ms a forward)."""
    config = copy.deepcopy(config)
    n_blocks = len(config["net"]["nb_filters"])
    config["net"].update(nb_filters=[4] + [8] * (n_blocks - 1), n_RNN_cell=8)
    config["scaler"].pop("savepath", None)
    config.pop("demo", None)
    return config


def checkpoint_of(config: dict, path: Path) -> Path:
    """A checkpoint in the training module's layout, its network built by the factory (random
    weights; a student unlike its teacher)."""
    torch.manual_seed(0)
    encoder = ManyHotEncoder.from_config(config)
    module = MeanTeacher(config, network_from_config(config), list(encoder.labels), encoder.frame_step)
    with torch.no_grad():
        for param in module.sed_student.parameters():
            param.add_(0.1 * torch.randn_like(param))
    torch.save({"hyper_parameters": config, "state_dict": module.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    """The stand-in separation model (a small random PyTorch TDCN++, the SSEP demo's)."""
    from desed_task.separation.demo import write_standin_separator

    return write_standin_separator(tmp_path_factory.mktemp("standin") / "separation.pt", num_sources=N_SOURCES)


def recording() -> np.ndarray:
    return (0.1 * np.random.default_rng(13).standard_normal(round(SECONDS * 16000))).astype(np.float32)


@pytest.mark.parametrize("name", CONFS)
def test_each_configured_network_builds_exports_and_scores_13_s(name, tmp_path, capsys, request):
    config = tiny(load_config(REPO / "confs" / f"{name}.yaml"))
    separated = "sep" in name
    assert network_kind(config) == ("ssep_sed" if separated else "crnn")
    network = network_from_config(config)
    assert isinstance(network, SeparatedEnsemble if separated else CRNN)
    if separated:
        standin = request.getfixturevalue("standin")
        config["training"].update(sep_model=str(standin))
    path = checkpoint_of(config, tmp_path / f"{name}.ckpt")

    # scores through the inference API: one pass over 13 s (SSEP + SED: the mixture separated,
    # then the ensemble on the mixture and its sources), and the default 10 s windows
    one_pass = SoundEventDetector.from_checkpoint(path, window=None)
    audio = recording()
    scores = one_pass.scores(audio, 16000)
    assert scores.shape == (10, FRAMES_13_S) and ((0 <= scores) & (scores <= 1)).all()
    network_input = torch.from_numpy(audio)[None]
    if separated:
        assert one_pass.separator.is_standin  # from the checkpoint's training.sep_model
        sources = torch.from_numpy(one_pass.separator.separate(audio))[None]
        assert sources.shape == (1, N_SOURCES, len(audio))
        network_input = torch.cat([network_input[:, None], sources], 1)
    with torch.no_grad():
        expected = one_pass.pipeline(network_input)[0][0].numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    windowed = SoundEventDetector.from_checkpoint(path, separation_model=one_pass.separator if separated else None)
    assert windowed.scores(audio, 16000).shape == (10, FRAMES_13_S)

    # ONNX: the graph gives the PyTorch pipeline's scores (SSEP + SED: one graph that separates
    # the mixture, then scores it and its sources)
    ort = pytest.importorskip("onnxruntime")
    onnx_path = tmp_path / f"{name}.onnx"
    export_main(["--checkpoint", str(path), "--onnx", str(onnx_path)])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["onnx"] == str(onnx_path)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    assert (metadata.get("separation") == "inside") == separated and "1 + sources" not in metadata["input"]
    strong, weak = session.run(["strong", "weak"], {"audio": audio[None]})
    with torch.no_grad():
        expected_strong, expected_weak = one_pass.pipeline(network_input)
    assert strong.shape == (1, 10, FRAMES_13_S)
    assert np.abs(strong - expected_strong.numpy()).max() < 1e-4
    assert np.abs(weak - expected_weak.numpy()).max() < 1e-4


def test_ssep_sed_checkpoint_without_its_separation_model_is_refused_then_scored_with_the_flag(tmp_path, capsys, standin):
    config = tiny(load_config(REPO / "confs" / "demo_sep+sed.yaml"))
    config["training"].update(sep_model=str(tmp_path / "absent" / "separation.pt"))
    path = checkpoint_of(config, tmp_path / "ssep.ckpt")
    wav = write_wav(tmp_path / "in" / "clip.wav", seconds=SECONDS)
    argv = ["--checkpoint", str(path), "--gpus", "0", "--out_dir", str(tmp_path / "out"), str(wav)]
    with pytest.raises(SystemExit) as exit_info:
        inference_main(argv)
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ssep.ckpt: an SSEP + SED checkpoint" in errors[0] and "--separation_model FILE" in errors[0]
    assert not (tmp_path / "out").exists()

    with pytest.raises(SystemExit) as exit_info:
        inference_main([*argv, "--separation_model", str(standin)])
    assert exit_info.value.code == 0
    table = np.loadtxt(tmp_path / "out" / "scores" / "clip.wav.tsv", skiprows=1)
    assert table.shape == (FRAMES_13_S, 12)

    # one ONNX graph with the separation inside, run by the inference CLI without a separation
    # model: the PyTorch scores (10 s windows, hop 5 s: each window separated on its own)
    pytest.importorskip("onnxruntime")
    export_main(["--checkpoint", str(path), "--separation_model", str(standin), "--onnx", str(tmp_path / "ssep.onnx")])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        inference_main([*argv[:-3], "--out_dir", str(tmp_path / "onnx_out"), "--onnx", str(tmp_path / "ssep.onnx"), str(wav)])
    assert exit_info.value.code == 0, capsys.readouterr().err
    onnx_table = np.loadtxt(tmp_path / "onnx_out" / "scores" / "clip.wav.tsv", skiprows=1)
    assert onnx_table.shape == table.shape and np.abs(onnx_table[:, 2:] - table[:, 2:]).max() < 1e-4
    assert np.abs(table[:, 2:] - table[::-1, 2:]).max() > 1e-3  # scores that vary: the check can fail


def test_the_fused_crnn_is_built_and_inference_and_export_ask_for_its_beats(tmp_path, capsys):
    from desed_task.embeddings.standin import write_standin_beats

    config = tiny(load_config(REPO / "confs" / "demo.yaml"))
    config["net"].update(use_embeddings=True, embedding_size=48, aggregation_type="pool1d")
    network = network_from_config(config)
    assert isinstance(network, CRNN) and network.use_embeddings
    strong, weak = network.eval()(torch.randn(2, 128, 626), embeddings=torch.randn(2, 48, 496))
    assert strong.shape == (2, 10, 156) and weak.shape == (2, 10)
    path = checkpoint_of(config, tmp_path / "fused.ckpt")
    wav = write_wav(tmp_path / "in" / "clip.wav", seconds=SECONDS)
    beats = write_standin_beats(tmp_path / "beats.pt")
    for main, argv in ((export_main, ["--onnx", str(tmp_path / "f.onnx")]),
                       (inference_main, ["--out_dir", str(tmp_path / "out"), str(wav)])):
        with pytest.raises(SystemExit) as exit_info:
            main(["--checkpoint", str(path), *argv])
        assert exit_info.value.code == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "fused.ckpt" in errors[0] and "net.use_embeddings: true" in errors[0], errors
        assert "--beats BEATS.pt" in errors[0]
    export_main(["--checkpoint", str(path), "--beats", str(beats), "--onnx", str(tmp_path / "f.onnx")])
    assert (tmp_path / "f.onnx").is_file()
    detector = SoundEventDetector.from_checkpoint(path, beats=beats)
    assert detector.scores(np.zeros(round(SECONDS * 16000), np.float32), 16000).shape == (10, FRAMES_13_S)


@pytest.mark.parametrize("aggregation, embedding_type", [
    ("pool1d", "frame"), ("interpolate", "frame"), ("frame", "frame"), ("global", "global")])
def test_every_2023_aggregation_exports_with_beats_inside(aggregation, embedding_type, tmp_path, capsys):
    """pool1d and interpolate go out as their fixed token-to-frame matrices (CRNN.fix_token_pooling)."""
    import onnxruntime as ort

    from desed_task.embeddings.standin import write_standin_beats

    config = tiny(load_config(REPO / "confs" / "demo_pretrained.yaml"))
    config["net"].update(aggregation_type=aggregation, embedding_type=embedding_type, frame_emb_enc_dim=8)
    path, beats = checkpoint_of(config, tmp_path / "fused.ckpt"), write_standin_beats(tmp_path / "beats.pt")
    export_main(["--checkpoint", str(path), "--beats", str(beats), "--onnx", str(tmp_path / "f.onnx")])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["onnx"] == str(tmp_path / "f.onnx")
    audio = 0.1 * torch.randn(2, 160000, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        strong, weak = SoundEventDetector.from_checkpoint(path, beats=beats).pipeline(audio)
    session = ort.InferenceSession(str(tmp_path / "f.onnx"), providers=["CPUExecutionProvider"])
    onnx_strong, onnx_weak = session.run(["strong", "weak"], {"audio": audio.numpy()})
    assert np.abs(onnx_strong - strong.numpy()).max() < 1e-4 and np.abs(onnx_weak - weak.numpy()).max() < 1e-4


def test_net_subsample_other_than_the_time_pooling_stops_the_command_before_any_data(tmp_path, capsys):
    from desed_task.training.cli import main

    config = tiny_config(tmp_path / "absent", tmp_path / "exp")
    del config["demo"]
    config["data"]["net_subsample"] = 2
    conf = write_config(config, tmp_path / "tiny.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main("t", "x", "x", argv=["--conf_file", str(conf), "--gpus", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {conf}: data.net_subsample is 2 but the network pools time by 4 (the product of the "
                   "time factors of net.pooling and net.stride): set data.net_subsample: 4, or change net.pooling")
    assert not (tmp_path / "exp").exists()
    config["data"]["net_subsample"] = 8
    config["net"]["pooling"] = [[4, 2], [4, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2]]
    with pytest.raises(ConfigError, match="x.yaml: data.net_subsample is 8 but the network pools time by 16"):
        validate_config(config, "x.yaml")


def test_a_checkpoint_of_another_kind_than_its_config_says_is_refused_by_name(tmp_path):
    """An SSEP + SED ensemble's weights under a config that describes a CRNN (no
    training.sed_checkpoint): the loader names the script it belongs to."""
    config = tiny(load_config(REPO / "confs" / "demo.yaml"))
    module = MeanTeacher(config, build_network(config["net"], ensemble=config["training"]), list("abcdefghij"), 0.064)
    torch.save({"hyper_parameters": config, "state_dict": module.state_dict()}, tmp_path / "x.ckpt")
    with pytest.raises(CheckpointError, match="finetune_on_separated.py"):
        SoundEventDetector.from_checkpoint(tmp_path / "x.ckpt")
