"""The DCASE 2023 CRNN with pretrained embeddings fused before the GRU (`use_embeddings`)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import yaml
from test_nnet import NET_2021

from desed_task.config import ConfigError, load_config
from desed_task.nnet.CRNN import CRNN

# the net section of the 2023 confs/pretrained.yaml (embedding_size 96: the golden's small BEATs)
NET_2023 = {**NET_2021, "use_embeddings": True, "embedding_size": 96, "embedding_type": "frame",
            "aggregation_type": "pool1d"}


def test_golden_outputs_of_the_official_2023_crnn(shared_reference):
    golden = torch.load(shared_reference / "beats2023" / "crnn2023_pool1d.pt", weights_only=True)
    assert golden["net_config"] == NET_2023
    model = CRNN(**golden["net_config"])
    model.load_state_dict(golden["state_dict"], strict=True)
    model.eval()
    with torch.no_grad():
        strong, weak = model(golden["input"], embeddings=golden["embeddings"])
    torch.testing.assert_close(strong, golden["strong"], atol=1e-5, rtol=0)
    torch.testing.assert_close(weak, golden["weak"], atol=1e-5, rtol=0)


def _fused_embedding_part(model: CRNN, x: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """What the model concatenates to the CNN features: the last columns of cat_tf's input."""
    seen = []
    handle = model.cat_tf.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    with torch.no_grad():
        model(x, embeddings=embeddings)
    handle.remove()
    return seen[0][..., NET_2021["nb_filters"][-1]:]


def test_each_2023_aggregation_feeds_what_2023_computed():
    torch.manual_seed(0)
    # 160 input frames -> 40 CNN frames; 124 tokens (a 2.5 s clip): pooling and interpolation
    # both map unevenly, as 496 tokens to 156 frames do
    x, frames = torch.randn(2, 128, 160), torch.randn(2, 96, 124)
    n_out = 40
    # the 2023 CRNN.forward expressions
    pool1d = F.adaptive_avg_pool1d(frames, n_out).transpose(1, 2)
    model = CRNN(**NET_2023).eval()
    torch.testing.assert_close(_fused_embedding_part(model, x, frames), pool1d, atol=0, rtol=0)

    model = CRNN(**{**NET_2023, "aggregation_type": "interpolate"}).eval()
    nearest = F.interpolate(frames.unsqueeze(1), size=(96, n_out), mode="nearest-exact").squeeze(1).transpose(1, 2)
    assert not torch.equal(nearest, pool1d)
    torch.testing.assert_close(_fused_embedding_part(model, x, frames), nearest, atol=0, rtol=0)

    model = CRNN(**{**NET_2023, "aggregation_type": "frame"}).eval()
    assert model.frame_embs_encoder.hidden_size == 512 and model.frame_embs_encoder.bidirectional
    with torch.no_grad():
        last = model.frame_embs_encoder(frames.transpose(1, 2))[0][:, -1]
        expected = model.shrink_emb(last).unsqueeze(1).repeat(1, n_out, 1)
    torch.testing.assert_close(_fused_embedding_part(model, x, frames), expected)

    model = CRNN(**{**NET_2023, "aggregation_type": "global", "embedding_type": "global"}).eval()
    clip = frames.mean(-1)
    with torch.no_grad():
        expected = model.shrink_emb(clip).unsqueeze(1).repeat(1, n_out, 1)
    torch.testing.assert_close(_fused_embedding_part(model, x, clip), expected)


def test_official_layer_names_and_sizes():
    names = {k: tuple(v.shape) for k, v in CRNN(**{**NET_2023, "embedding_size": 768}).state_dict().items()}
    assert names["cat_tf.weight"] == (128, 128 + 768)
    frame = CRNN(**{**NET_2023, "embedding_size": 768, "aggregation_type": "frame"}).state_dict()
    assert frame["frame_embs_encoder.weight_ih_l0"].shape == (3 * 512, 768)
    assert frame["shrink_emb.0.weight"].shape == (128, 1024) and "shrink_emb.1.weight" in frame
    assert frame["cat_tf.weight"].shape == (128, 256)


def test_without_embeddings_the_2021_network_is_unchanged():
    torch.manual_seed(3)
    plain = CRNN(**NET_2021)
    torch.manual_seed(3)
    switched_off = CRNN(**{**NET_2021, "use_embeddings": False, "embedding_size": 768,
                           "embedding_type": "frame", "aggregation_type": "pool1d"})
    assert plain.state_dict().keys() == switched_off.state_dict().keys()
    for key, value in plain.state_dict().items():
        assert torch.equal(value, switched_off.state_dict()[key])


@pytest.mark.parametrize("change, match", [
    ({"aggregation_type": "attention"}, "aggregation_type must be one of"),
    ({"embedding_type": "tokens"}, "embedding_type must be one of"),
    ({"aggregation_type": "global"}, "needs embedding_type global"),
    ({"embedding_type": "global"}, "needs embedding_type frame"),
])
def test_bad_fusion_settings_are_refused(change, match):
    with pytest.raises(ValueError, match=match):
        CRNN(**{**NET_2023, **change})


def test_forward_without_embeddings_is_an_error():
    with pytest.raises(ValueError, match="needs embeddings"):
        CRNN(**NET_2023)(torch.randn(1, 128, 626))


def _write_config(tmp_path, net_changes=None, pretrained=None):
    config = yaml.safe_load(open("confs/sed.yaml"))
    config["net"].update({"use_embeddings": True, "embedding_size": 768, "embedding_type": "frame",
                          "aggregation_type": "pool1d", **(net_changes or {})})
    config["pretrained"] = pretrained if pretrained is not None else {
        "model": "beats", "e2e": False, "freezed": True, "extracted_embeddings_dir": "./embeddings",
        "checkpoint": "pretrained_models/BEATs_iter3_plus_AS2M.pt"}
    path = tmp_path / "pretrained.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_2023_config_keys_are_accepted(tmp_path):
    config = load_config(_write_config(tmp_path))
    assert config["pretrained"]["extracted_embeddings_dir"] == "./embeddings"
    model = CRNN(**config["net"])
    assert model.cat_tf.in_features == 128 + 768


@pytest.mark.parametrize("net_changes, pretrained, match", [
    ({"aggregation_type": "mean"}, None, "net.aggregation_type"),
    ({"use_embeddings": "yes"}, None, "net.use_embeddings"),
    (None, {"model": "panns"}, "pretrained.model"),
    (None, {"model": "beats", "freezed": False, "e2e": False}, "needs 'pretrained.e2e: true'"),
    (None, {"e2e": False}, "missing key 'pretrained.model'"),
])
def test_bad_2023_config_values_are_refused(tmp_path, net_changes, pretrained, match):
    with pytest.raises(ConfigError, match=match):
        load_config(_write_config(tmp_path, net_changes, pretrained))
