"""SeparatedEnsemble: exact paths at q = 0 / 1, frozen parts stay frozen, q is learned, and the
2021 defaults: q drawn by the seeded torch.rand and unconstrained, the frozen copy's dropout on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from desed_task.nnet.CRNN import CRNN
from desed_task.nnet.ensemble import SeparatedEnsemble

N_MELS, N_CLASSES, FRAMES, BATCH, SOURCES = 8, 3, 12, 2, 4


class TinySED(nn.Module):
    """Smallest model with the CRNN interface: (B, n_mels, T) -> (B, C, T), (B, C)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(N_MELS, 6, 3, padding=1)
        self.bn = nn.BatchNorm1d(6)
        self.dense = nn.Linear(6, N_CLASSES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = torch.relu(self.bn(self.conv(x)))
        strong = torch.sigmoid(self.dense(hidden.transpose(1, 2))).transpose(1, 2)
        return strong, strong.mean(-1)


def log_features(mels: torch.Tensor) -> torch.Tensor:
    return torch.log1p(mels)


def make_ensemble(q: float, **options) -> SeparatedEnsemble:
    torch.manual_seed(0)
    sed = TinySED()
    with torch.no_grad():  # non-trivial batch norm statistics, as a pre-trained model has
        sed.bn.running_mean.uniform_(-0.5, 0.5)
        sed.bn.running_var.uniform_(0.5, 2.0)
    return SeparatedEnsemble.from_pretrained(sed, log_features, q_init=q, **options)


def mel_sources() -> torch.Tensor:
    return torch.rand(BATCH, SOURCES, N_MELS, FRAMES, generator=torch.Generator().manual_seed(1))


def expected_paths(ensemble: SeparatedEnsemble, sources: torch.Tensor):
    """Both paths computed by hand from the two copies."""
    with torch.no_grad():
        flat = log_features(sources.reshape(BATCH * SOURCES, N_MELS, FRAMES))
        strong, weak = ensemble.multisrc_model(flat)
        strong_sep = strong.reshape(BATCH, SOURCES, N_CLASSES, FRAMES).sum(1).clamp(max=1)
        weak_sep = weak.reshape(BATCH, SOURCES, N_CLASSES).sum(1).clamp(max=1)
        strong_mix, weak_mix = ensemble.monaural_model(log_features(sources.sum(1)))
    return (strong_sep, weak_sep), (strong_mix, weak_mix)


def make_crnn_ensemble(q: float) -> SeparatedEnsemble:
    """The ensemble of the project's CRNN, sized for the tiny inputs (8 mels pooled to 1)."""
    torch.manual_seed(0)
    crnn = CRNN(n_in_channel=1, nclass=N_CLASSES, attention=True, n_RNN_cell=8, rnn_layers=1,
                kernel_size=[3, 3], padding=[1, 1], stride=[1, 1], nb_filters=[4, 8],
                pooling=[[1, 4], [1, 2]], dropout=0.0)
    return SeparatedEnsemble.from_pretrained(crnn, log_features, q_init=q)


@pytest.mark.parametrize("network", ["tiny", "project CRNN"])
@pytest.mark.parametrize("q, path", [(0.0, "separated"), (1.0, "mixture")])
def test_q_bounds_give_each_path_exactly(q: float, path: str, network: str) -> None:
    ensemble = (make_ensemble(q) if network == "tiny" else make_crnn_ensemble(q)).eval()
    sources = mel_sources()
    separated, mixture = expected_paths(ensemble, sources)
    strong, weak = ensemble(sources)
    want = separated if path == "separated" else mixture
    assert strong.shape == (BATCH, N_CLASSES, FRAMES) and weak.shape == (BATCH, N_CLASSES)
    assert torch.equal(strong, want[0]) and torch.equal(weak, want[1])
    assert not torch.equal(separated[0], mixture[0])  # the test can tell the paths apart


def test_sum_over_sources_is_clamped_and_q_mixes_linearly() -> None:
    ensemble = make_ensemble(0.25).eval()
    sources = mel_sources()
    (strong_sep, weak_sep), (strong_mix, weak_mix) = expected_paths(ensemble, sources)
    assert strong_sep.max() == 1.0  # four sigmoids around 0.5 add up past 1: clamped
    strong, weak = ensemble(sources)
    torch.testing.assert_close(strong, 0.25 * strong_mix + 0.75 * strong_sep)
    torch.testing.assert_close(weak, 0.25 * weak_mix + 0.75 * weak_sep)


def test_explicit_mixture_feeds_the_frozen_copy() -> None:
    ensemble = make_ensemble(1.0).eval()
    sources, mixture = mel_sources(), torch.rand(BATCH, N_MELS, FRAMES)
    strong, _ = ensemble(sources, mixture)
    with torch.no_grad():
        want, _ = ensemble.monaural_model(log_features(mixture))
    assert torch.equal(strong, want)


def test_training_step_keeps_frozen_parts_and_learns_q() -> None:
    ensemble = make_ensemble(0.5).train()
    with torch.no_grad():  # low source outputs: their sum stays below the clamp at 1
        ensemble.multisrc_model.dense.bias.fill_(-3.0)
    assert ensemble.multisrc_model.training and not ensemble.multisrc_model.bn.training
    # 2021: the frozen copy is in train mode (dropout on) with its batch norm frozen
    assert ensemble.monaural_model.training and not ensemble.monaural_model.bn.training
    mixture_before = {k: v.clone() for k, v in ensemble.monaural_model.state_dict().items()}
    bn_before = {k: v.clone() for k, v in ensemble.multisrc_model.bn.state_dict().items()}
    conv_before = ensemble.multisrc_model.conv.weight.detach().clone()
    q_before = ensemble.q.detach().clone()

    trainable = [p for p in ensemble.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=1e-2)
    strong, weak = ensemble(mel_sources())
    loss = nn.functional.binary_cross_entropy(strong, torch.zeros_like(strong))
    loss = loss + nn.functional.binary_cross_entropy(weak, torch.ones_like(weak))
    loss.backward()
    optimizer.step()

    for key, value in ensemble.monaural_model.state_dict().items():
        assert torch.equal(value, mixture_before[key]), f"frozen copy changed: {key}"
    for key, value in ensemble.multisrc_model.bn.state_dict().items():
        assert torch.equal(value, bn_before[key]), f"batch norm of fine-tuned copy changed: {key}"
    assert all(p.grad is None for p in ensemble.monaural_model.parameters())
    assert not torch.equal(ensemble.multisrc_model.conv.weight, conv_before)
    assert not torch.equal(ensemble.q.detach(), q_before)


def test_q_is_not_clamped_by_default_as_2021() -> None:
    ensemble = make_ensemble(1.5).eval()
    assert not ensemble.q_clamp
    strong, weak = ensemble(mel_sources())
    (strong_sep, weak_sep), (strong_mix, weak_mix) = expected_paths(ensemble, mel_sources())
    torch.testing.assert_close(strong, 1.5 * strong_mix - 0.5 * strong_sep)
    torch.testing.assert_close(weak, 1.5 * weak_mix - 0.5 * weak_sep)
    assert ensemble.mixture_weight is ensemble.q


def test_q_starts_from_the_seeded_torch_rand() -> None:
    sed = TinySED()
    torch.manual_seed(7)
    ensemble = SeparatedEnsemble.from_pretrained(sed)
    torch.manual_seed(7)
    assert torch.equal(ensemble.q.detach(), torch.rand(1))


def test_q_clamp_variant_clamps_but_keeps_its_gradient() -> None:
    ensemble = make_ensemble(1.5, q_clamp=True).eval()
    strong, _ = ensemble(mel_sources())
    (_, _), (strong_mix, _) = expected_paths(ensemble, mel_sources())
    assert torch.equal(strong, strong_mix)  # q = 1.5 acts as 1
    strong.sum().backward()
    assert ensemble.q.grad is not None and ensemble.q.grad.abs().item() > 0


def test_state_dict_keeps_2021_keys_and_no_feature_keys() -> None:
    def scaler(x: torch.Tensor) -> torch.Tensor:
        return x

    scaler_module = nn.BatchNorm1d(N_MELS)  # a feature module is used, not owned
    ensemble = SeparatedEnsemble.from_pretrained(TinySED(), scaler_module, q_init=0.3)
    keys = set(ensemble.state_dict())
    assert "q" in keys
    assert any(k.startswith("multisrc_model.") for k in keys)
    assert any(k.startswith("monaural_model.") for k in keys)
    assert not any(k.startswith("features") for k in keys)
    assert scaler(torch.ones(1)).item() == 1.0


@pytest.mark.parametrize("q, path", [(0.0, "separated"), (1.0, "mixture")])
def test_mixture_first_layout_feeds_channel_zero_to_the_frozen_copy(q: float, path: str) -> None:
    """The MeanTeacher layout: one tensor (B, 1 + K, ...), the mixture at channel 0."""
    torch.manual_seed(0)
    ensemble = SeparatedEnsemble.from_pretrained(TinySED(), log_features, q_init=q, mixture_first=True).eval()
    sources, mixture = mel_sources(), torch.rand(BATCH, N_MELS, FRAMES)
    strong, weak = ensemble(torch.cat([mixture[:, None], sources], 1))
    with torch.no_grad():
        if path == "mixture":
            want = ensemble.monaural_model(log_features(mixture))
        else:
            want = ensemble.separated_path(sources)
    assert torch.equal(strong, want[0]) and torch.equal(weak, want[1])


def test_mixture_first_refuses_an_input_without_sources() -> None:
    ensemble = SeparatedEnsemble.from_pretrained(TinySED(), mixture_first=True)
    with pytest.raises(ValueError, match="1 \\+ sources"):
        ensemble(torch.rand(BATCH, 1, N_MELS, FRAMES))
    with pytest.raises(ValueError, match="channel 0"):
        ensemble(mel_sources(), torch.rand(BATCH, N_MELS, FRAMES))


def dropout_crnn() -> nn.Module:
    from desed_task.nnet.CRNN import CRNN

    torch.manual_seed(0)
    return CRNN(n_in_channel=1, nclass=N_CLASSES, attention=True, n_RNN_cell=8, rnn_layers=1,
                kernel_size=[3, 3], padding=[1, 1], stride=[1, 1], nb_filters=[4, 8],
                pooling=[[1, 4], [1, 2]], dropout=0.5)


def test_frozen_mixture_copy_keeps_dropout_in_training_as_2021() -> None:
    ensemble = SeparatedEnsemble.from_pretrained(dropout_crnn(), log_features, q_init=1.0).train()
    mixture = torch.rand(BATCH, N_MELS, FRAMES)
    first, second = ensemble.mixture_path(mixture), ensemble.mixture_path(mixture)
    assert not torch.equal(first[0], second[0])  # dropout draws differ
    bn = [m for m in ensemble.monaural_model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bn and not any(m.training for m in bn)  # batch norm frozen, as CRNN(freeze_bn=True)
    ensemble.eval()
    assert torch.equal(ensemble.mixture_path(mixture)[0], ensemble.mixture_path(mixture)[0])


def test_mixture_dropout_off_keeps_the_frozen_copy_in_eval_mode() -> None:
    ensemble = SeparatedEnsemble.from_pretrained(dropout_crnn(), log_features, q_init=1.0,
                                                 mixture_dropout=False).train()
    assert not ensemble.monaural_model.training and ensemble.multisrc_model.training
    mixture = torch.rand(BATCH, N_MELS, FRAMES)
    assert torch.equal(ensemble.mixture_path(mixture)[0], ensemble.mixture_path(mixture)[0])
