"""CRNN of the 2021 baseline: golden outputs, parameter layout, configuration checks."""


import pytest
import torch
from conftest import SHARED

from desed_task.nnet.CNN import CNN, GLU, ContextGating
from desed_task.nnet.CRNN import CRNN
from desed_task.nnet.RNN import BidirectionalGRU

GOLDEN = SHARED / "reference" / "crnn2021_golden.pt"

# the ``net:`` section of the 2021 confs/sed.yaml
NET_2021 = {
    "dropout": 0.5,
    "rnn_layers": 2,
    "n_in_channel": 1,
    "nclass": 10,
    "attention": True,
    "n_RNN_cell": 128,
    "activation": "glu",
    "rnn_type": "BGRU",
    "kernel_size": [3, 3, 3, 3, 3, 3, 3],
    "padding": [1, 1, 1, 1, 1, 1, 1],
    "stride": [1, 1, 1, 1, 1, 1, 1],
    "nb_filters": [16, 32, 64, 128, 128, 128, 128],
    "pooling": [[2, 2], [2, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2]],
    "dropout_recurrent": 0,
}
N_PARAMS_2021 = 1_112_420


def test_golden_outputs_of_the_official_2021_crnn():
    if not GOLDEN.exists():
        pytest.skip(f"golden file not available: {GOLDEN} (needs the shared reference folder)")
    golden = torch.load(GOLDEN, weights_only=True)
    model = CRNN(**golden["net_config"])
    model.load_state_dict(golden["state_dict"], strict=True)
    model.eval()
    with torch.no_grad():
        strong, weak = model(golden["input"])
    torch.testing.assert_close(strong, golden["strong"], atol=1e-5, rtol=0)
    torch.testing.assert_close(weak, golden["weak"], atol=1e-5, rtol=0)


def test_2021_config_parameter_count_and_official_names():
    model = CRNN(**NET_2021)
    assert sum(p.numel() for p in model.parameters()) == N_PARAMS_2021
    names = set(model.state_dict())
    for i in range(7):
        assert {f"cnn.cnn.conv{i}.weight", f"cnn.cnn.batchnorm{i}.running_var"} <= names
        assert f"cnn.cnn.glu{i}.linear.weight" in names
    for layer in (0, 1):
        for suffix in ("", "_reverse"):
            assert f"rnn.rnn.weight_ih_l{layer}{suffix}" in names
    assert "rnn.rnn.weight_ih_l2" not in names
    assert {"dense.weight", "dense.bias", "dense_softmax.weight", "dense_softmax.bias"} <= names
    # defaults are the 2021 configuration
    assert CRNN().state_dict().keys() == model.state_dict().keys()


def test_output_shapes_and_ranges():
    torch.manual_seed(0)
    model = CRNN(**NET_2021).eval()
    with torch.no_grad():
        strong, weak = model(torch.rand(3, 128, 626))
    assert strong.shape == (3, 10, 156)
    assert weak.shape == (3, 10)
    assert 0 <= strong.min() and strong.max() <= 1
    # attention pooling is a weighted mean over frames: within the frame range
    assert torch.all(weak <= strong.amax(-1) + 1e-6) and torch.all(weak >= strong.amin(-1) - 1e-6)


def test_mean_pooling_without_attention():
    model = CRNN(**{**NET_2021, "attention": False}).eval()
    with torch.no_grad():
        strong, weak = model(torch.rand(2, 128, 64))
    torch.testing.assert_close(weak, strong.mean(-1))
    assert not hasattr(model, "dense_softmax")


def test_rnn_layers_is_honoured_and_consistent():
    assert CRNN(**{**NET_2021, "rnn_layers": 1}).rnn.rnn.num_layers == 1
    assert CRNN(**{**NET_2021, "rnn_layers": 3}).rnn.rnn.num_layers == 3
    assert CRNN(n_layers_RNN=1).rnn.rnn.num_layers == 1
    with pytest.raises(ValueError, match="disagree"):
        CRNN(rnn_layers=2, n_layers_RNN=3)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"rnn_type": "BLSTM"}, "rnn_type"),
        ({"activation": "swish"}, "activation"),
        ({"n_filters_typo": 3}, "n_filters_typo"),
        ({"pooling": [[2, 2]] * 6}, "pooling"),
    ],
)
def test_rejects_unsupported_config(change, match):
    with pytest.raises(ValueError, match=match):
        CRNN(**{**NET_2021, **change})


def test_frozen_batchnorm_stays_frozen_through_training():
    torch.manual_seed(0)
    model = CRNN(**NET_2021, frozen_batchnorm=True)
    model.train()
    batchnorms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert batchnorms and all(not bn.training for bn in batchnorms)
    before = {k: v.clone() for k, v in model.state_dict().items() if "batchnorm" in k}
    conv_before = model.cnn.cnn.conv0.weight.clone()

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-2)
    strong, weak = model(torch.rand(2, 128, 64))
    (strong.mean() + weak.mean()).backward()
    optimizer.step()

    for key, value in model.state_dict().items():
        if "batchnorm" in key:
            assert torch.equal(value, before[key]), key
    assert not torch.equal(model.cnn.cnn.conv0.weight, conv_before)  # the rest trains

    model.unfreeze_batchnorm().train()
    assert all(bn.training and bn.weight.requires_grad for bn in batchnorms)


def test_freeze_batchnorm_after_construction_and_train_cnn_false():
    model = CRNN(**NET_2021).freeze_batchnorm().train()
    assert not model.cnn.cnn.batchnorm3.training
    assert not model.cnn.cnn.batchnorm3.weight.requires_grad
    frozen_cnn = CRNN(**{**NET_2021, "train_cnn": False})
    assert not any(p.requires_grad for p in frozen_cnn.cnn.parameters())
    assert all(p.requires_grad for p in frozen_cnn.rnn.parameters())


def test_cnn_integration_with_two_channels():
    model = CRNN(**{**NET_2021, "n_in_channel": 2}, cnn_integration=True).eval()
    assert model.rnn.rnn.input_size == 256
    with torch.no_grad():
        strong, weak = model(torch.rand(2, 2, 128, 64))
    assert strong.shape == (2, 10, 16) and weak.shape == (2, 10)


def test_pad_mask_matches_2021_semantics():
    model = CRNN(**NET_2021).eval()
    x = torch.rand(1, 128, 64)
    mask = torch.zeros(1, 1, 16, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(model(x, pad_mask=mask)[1], model(x)[1])
        mask[..., 8:] = True
        strong, weak = model(x, pad_mask=mask)
    # masked frames get uniform 1/nclass attention over classes (2021 behaviour)
    assert weak.shape == (1, 10) and torch.isfinite(weak).all()


def test_unreduced_frequency_axis_is_an_error():
    model = CRNN(
        **{**NET_2021, "pooling": [[2, 2], [2, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 1]]}
    )
    with pytest.raises(ValueError, match="frequency"):
        model(torch.rand(1, 128, 16))


def test_building_blocks():
    x = torch.randn(2, 4, 5, 3)
    glu = GLU(4)
    expected = glu.linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) * torch.sigmoid(x)
    torch.testing.assert_close(glu(x), expected)
    cg = ContextGating(4)
    expected = x * torch.sigmoid(cg.linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
    torch.testing.assert_close(cg(x), expected)

    cnn = CNN(
        1,
        activation="relu",
        nb_filters=[8, 8],
        kernel_size=[3, 3],
        padding=[1, 1],
        stride=[1, 1],
        pooling=[(1, 4), (2, 2)],
    )
    assert cnn(torch.rand(2, 1, 8, 16)).shape == (2, 8, 4, 2)
    assert "relu0" in dict(cnn.cnn.named_children())

    gru = BidirectionalGRU(n_in=6, n_hidden=5, num_layers=2)
    assert gru(torch.rand(3, 7, 6)).shape == (3, 7, 10)
