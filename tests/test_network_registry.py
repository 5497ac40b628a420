"""The network registry (`desed_task.nnet.registry`): a network registered by its contract alone
is checked by the config, trained by train_sed.py's entry point, scored by the inference API and
exported to ONNX; the built-in ``crnn`` is the default of every config without ``net.type``."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from pipeline import REPO, tiny_config, write_config
from torch import nn

from desed_task.checkpoints import HYPER_PARAMETERS, NETWORK_PREFIXES, STATE_DICT, load_checkpoint
from desed_task.config import ConfigError, load_config, validate_config
from desed_task.nnet import build_network, network_kind, network_needs
from desed_task.nnet.CRNN import CRNN, CRNN_CONTRACT
from desed_task.nnet.registry import (
    NetKey,
    NetworkContract,
    network_contract,
    network_types,
    register_network,
    unregister_network,
)


class TinyConvSED(nn.Module):
    """A SED network of two 1-D convolutions over the mel bands.

    Shapes:
        x: (batch, n_mels, frames) -> strong (batch, nclass, frames // pool), weak (batch, nclass).
    """

    def __init__(self, n_mels: int = 128, nclass: int = 10, width: int = 8, pool: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv1d(n_mels, width, 3, padding=1)
        self.head = nn.Conv1d(width, nclass, 1)
        self.pool = nn.AvgPool1d(pool)
        self.time_pooling = pool

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        strong = torch.sigmoid(self.head(self.pool(torch.relu(self.conv(x)))))
        return strong, strong.mean(-1)


TINY_CONV = NetworkContract(
    name="tiny_conv",
    build=TinyConvSED,
    keys={"n_mels": NetKey(int), "nclass": NetKey(int), "width": NetKey(int, bounds=(1, None)),
          "pool": NetKey(int, bounds=(1, None))},
    time_pooling=lambda net: net.get("pool", 4),
    time_pooling_keys=("pool",),
)


@pytest.fixture
def tiny_conv():
    register_network(TINY_CONV)
    yield TINY_CONV
    unregister_network(TINY_CONV.name)


def _tiny_conv_config(config: dict, **net) -> dict:
    config = copy.deepcopy(config)
    config["net"] = {"type": "tiny_conv", "width": 8, **net}
    return config


def test_configs_without_net_type_are_the_2021_crnn():
    config = load_config(REPO / "confs" / "sed.yaml")
    assert "type" not in config["net"]  # nothing added: checkpoints keep their hyper-parameters
    assert network_kind(config) == "crnn" and network_contract(config["net"]) is CRNN_CONTRACT
    assert isinstance(build_network(config["net"]), CRNN) and "crnn" in network_types()
    assert network_needs(load_config(REPO / "confs" / "pretrained.yaml")).embeddings
    assert network_needs(load_config(REPO / "confs" / "sep+sed.yaml")).sources
    # the contract's defaults are the 2021 sed.yaml values (rnn_layers: None, meaning the same 2)
    as_lists = lambda v: [as_lists(x) for x in v] if isinstance(v, (list, tuple)) else v  # noqa: E731
    keys = [k for k in config["net"] if k != "rnn_layers"]
    assert {k: as_lists(CRNN_CONTRACT.defaults[k]) for k in keys} == {k: config["net"][k] for k in keys}

def test_the_config_checks_the_net_section_by_its_contract(tiny_conv, tmp_path):
    config = tiny_config(tmp_path, tmp_path)
    checked = validate_config(_tiny_conv_config(config), "x.yaml")
    assert network_kind(checked) == "tiny_conv" and not network_needs(checked).embeddings
    with pytest.raises(ConfigError, match=r"x.yaml: 'net.type' must be one of crnn, tiny_conv, got 'rnn'"):
        validate_config({**copy.deepcopy(config), "net": {"type": "rnn"}}, "x.yaml")
    with pytest.raises(ConfigError, match=r"x.yaml: unknown key 'net.nb_filters'"):
        validate_config(_tiny_conv_config(config, nb_filters=[4]), "x.yaml")
    with pytest.raises(ConfigError, match=r"x.yaml: 'net.width' must be >= 1, got 0"):
        validate_config(_tiny_conv_config(config, width=0), "x.yaml")
    with pytest.raises(ConfigError, match=r"x.yaml: data.net_subsample is 4 but the network pools time by 2 "
                                          r"\(the product of the time factors of net.pool\): set data.net_subsample: 2, or change net.pool"):
        validate_config(_tiny_conv_config(config, pool=2), "x.yaml")
    fine_tuned = _tiny_conv_config(config)
    fine_tuned["training"]["sed_checkpoint"] = "exp/best.ckpt"
    with pytest.raises(ConfigError, match=r"SSEP \+ SED ensemble .* of net.type tiny_conv is not implemented"):
        validate_config(fine_tuned, "x.yaml")


def test_a_registered_network_trains_scores_and_exports_through_the_entry_points(tiny_conv, tiny_data, tmp_path, capsys):
    from desed_task.export.cli import main as export_main
    from desed_task.inference import SoundEventDetector
    from desed_task.training.cli import main as train_main

    config = _tiny_conv_config(tiny_config(tiny_data, tmp_path / "exp", n_epochs=1))
    conf = write_config(config, tmp_path / "tiny_conv.yaml")
    train_main("train_sed.py", str(conf), "unused", argv=["--conf_file", str(conf), "--gpus", "0"])
    best = tmp_path / "exp" / "best.ckpt"
    checkpoint = load_checkpoint(best)
    assert checkpoint[HYPER_PARAMETERS]["net"]["type"] == "tiny_conv"
    assert {k.split(".")[1] for k in checkpoint[STATE_DICT] if k.startswith(NETWORK_PREFIXES)} == {"conv", "head"}

    detector = SoundEventDetector.from_checkpoint(best, window=None)
    assert isinstance(detector.pipeline.network, TinyConvSED)
    audio = (0.1 * np.random.default_rng(0).standard_normal(13 * 16000)).astype(np.float32)
    scores = detector.scores(audio, 16000)
    assert scores.shape == (10, (1 + 13 * 16000 // 256) // 4)

    ort = pytest.importorskip("onnxruntime")
    capsys.readouterr()
    export_main(["--checkpoint", str(best), "--onnx", str(tmp_path / "tiny_conv.onnx")])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["onnx"] == str(tmp_path / "tiny_conv.onnx")
    session = ort.InferenceSession(str(tmp_path / "tiny_conv.onnx"), providers=["CPUExecutionProvider"])
    strong, weak = session.run(["strong", "weak"], {"audio": audio[None]})
    with torch.no_grad():
        expected_strong, expected_weak = detector.pipeline(torch.from_numpy(audio)[None])
    assert np.abs(strong - expected_strong.numpy()).max() < 1e-5
    assert np.abs(weak - expected_weak.numpy()).max() < 1e-5
