"""Checkpoints: safe loading, the official 2021 (Lightning 1.x) layout, mismatched configs."""

from pathlib import Path

import pytest
import torch
from pytorch_lightning.utilities.parsing import AttributeDict

from desed_task.checkpoints import (
    CheckpointError,
    config_from_checkpoint,
    load_checkpoint,
    load_network_weights,
)
from desed_task.config import load_config
from desed_task.data.classes import DESED_CLASSES
from desed_task.nnet import build_network
from desed_task.training.mean_teacher import MeanTeacher

REPO = Path(__file__).resolve().parents[1]


def official_2021_checkpoint(path: Path, net_state: dict, config: dict) -> Path:
    """A file laid out as the official 2021 checkpoints: Lightning 1.x keys, an AttributeDict of
    hyper-parameters, torchaudio feature buffers beside the networks."""
    state = {}
    for prefix in ("sed_student.", "sed_teacher."):
        state.update({prefix + k: v.clone() for k, v in net_state.items()})
    state["mel_spec.spectrogram.window"] = torch.hamming_window(2048, periodic=False)
    state["mel_spec.mel_scale.fb"] = torch.zeros(1025, 128)
    torch.save(
        {
            "epoch": 178,
            "global_step": 21121,
            "pytorch-lightning_version": "1.2.4",
            "state_dict": state,
            "hyper_parameters": AttributeDict({**config, "log_dir": "./exp/2021_baseline"}),
        },
        path,
    )
    return path


def _module(config):
    return MeanTeacher(config, build_network(config["net"]), list(DESED_CLASSES), 0.064)


def test_official_layout_loads_safely(tmp_path):
    config = load_config(REPO / "confs" / "sed.yaml")
    torch.manual_seed(0)
    reference = build_network(config["net"])
    path = official_2021_checkpoint(tmp_path / "epoch=178-step=21121.ckpt", reference.state_dict(), config)
    checkpoint = load_checkpoint(path)
    restored = config_from_checkpoint(checkpoint, path)
    assert restored["net"] == config["net"]
    module = _module(restored)
    load_network_weights(module, checkpoint, path)
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(module.sed_student.state_dict()[name], value)
        torch.testing.assert_close(module.sed_teacher.state_dict()[name], value)


def test_golden_2021_crnn_through_a_2021_checkpoint(tmp_path, shared_reference):
    golden = torch.load(shared_reference / "crnn2021_golden.pt", weights_only=True)
    config = load_config(REPO / "confs" / "sed.yaml")
    config["net"] = dict(golden["net_config"])
    path = official_2021_checkpoint(tmp_path / "official.ckpt", golden["state_dict"], config)
    module = _module(config_from_checkpoint(load_checkpoint(path), path))
    load_network_weights(module, load_checkpoint(path), path)
    module.eval()
    with torch.no_grad():
        strong, weak = module.sed_teacher(golden["input"])
    torch.testing.assert_close(strong, golden["strong"], atol=1e-5, rtol=0)
    torch.testing.assert_close(weak, golden["weak"], atol=1e-5, rtol=0)


def test_checkpoint_of_another_config_is_refused_by_name(tmp_path):
    config = load_config(REPO / "confs" / "sed.yaml")
    path = official_2021_checkpoint(tmp_path / "a.ckpt", build_network(config["net"]).state_dict(), config)
    other = load_config(REPO / "confs" / "sed.yaml")
    other["net"]["n_RNN_cell"] = 64
    with pytest.raises(CheckpointError, match="a.ckpt.*shape"):
        load_network_weights(_module(other), load_checkpoint(path), path)


def test_unreadable_and_unsafe_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.ckpt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.ckpt"):
        load_checkpoint(bad)
    unsafe = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": {}, "hook": Path("x")}, unsafe)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(unsafe)
