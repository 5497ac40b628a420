"""Log-mel features (checked against librosa/scipy) and the feature scaler."""

import numpy as np
import pytest
import scipy.signal
import torch

from desed_task.features.mel import (
    MelSpectrogram,
    amplitude_to_db,
    log_mel,
    mel_filterbank,
)
from desed_task.features.scaler import TorchScaler

librosa = pytest.importorskip("librosa")

FEATS_2021 = {
    "n_mels": 128,
    "n_filters": 2048,
    "hop_length": 256,
    "n_window": 2048,
    "sample_rate": 16000,
    "f_min": 0,
    "f_max": 8000,
}


def _reference_mel(waveform: np.ndarray) -> np.ndarray:
    """Independent float64 magnitude mel spectrogram: librosa STFT + librosa HTK filters."""
    window = scipy.signal.get_window("hamming", 2048, fftbins=False)  # symmetric
    stft = librosa.stft(
        waveform.astype(np.float64),
        n_fft=2048,
        hop_length=256,
        win_length=2048,
        window=window,
        center=True,
        pad_mode="reflect",
    )
    filters = librosa.filters.mel(
        sr=16000, n_fft=2048, n_mels=128, fmin=0, fmax=8000, htk=True, norm=None, dtype=np.float64
    )
    return filters @ np.abs(stft)


def test_filterbank_matches_librosa_htk():
    ours = mel_filterbank(1025, 0.0, 8000.0, 128, 16000).numpy().T
    reference = librosa.filters.mel(
        sr=16000, n_fft=2048, n_mels=128, fmin=0, fmax=8000, htk=True, norm=None
    )
    # 2021's weights are computed in float32: up to 1.4e-5 from librosa's float64 ones
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=2e-5)


def _filterbank_2021(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> torch.Tensor:
    """torchaudio 0.8.1's create_fb_matrix (2021's), its float32 operations in their order."""
    import math

    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    m_min = 2595.0 * math.log10(1.0 + (f_min / 700.0))
    m_max = 2595.0 * math.log10(1.0 + (f_max / 700.0))
    m_pts = torch.linspace(m_min, m_max, n_mels + 2)
    f_pts = 700.0 * (10 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
    down_slopes = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
    up_slopes = slopes[:, 2:] / f_diff[1:]
    return torch.max(torch.zeros(1), torch.min(down_slopes, up_slopes))


def test_mel_spectrogram_is_2021s_to_the_bit():
    """The filterbank and the mel product of torchaudio 0.8.1's MelSpectrogram (power 1):
    the same float32 values, not only close ones (training then draws the same updates)."""
    fb = _filterbank_2021(1025, 0.0, 8000.0, 128, 16000)
    assert torch.equal(mel_filterbank(1025, 0.0, 8000.0, 128, 16000), fb)
    waveform = torch.randn(3, 16000, generator=torch.Generator().manual_seed(0))
    window = torch.hamming_window(2048, periodic=False)
    spec = torch.stft(waveform, 2048, 256, 2048, window, center=True, pad_mode="reflect",
                      normalized=False, onesided=True, return_complex=True).abs()
    expected = torch.matmul(spec.transpose(1, 2), fb).transpose(1, 2)
    assert torch.equal(MelSpectrogram(16000, 2048, 2048, 256, 0, 8000, 128)(waveform), expected)


def test_mel_spectrogram_matches_reference_stft():
    rng = np.random.default_rng(0)
    n = 16000 * 2
    t = np.arange(n) / 16000
    waveform = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n)
    mel = MelSpectrogram(
        sample_rate=16000,
        n_fft=2048,
        win_length=2048,
        hop_length=256,
        f_min=0,
        f_max=8000,
        n_mels=128,
    )
    ours = mel(torch.from_numpy(waveform).float()[None]).numpy()[0]
    reference = _reference_mel(waveform)
    assert ours.shape == reference.shape == (128, 1 + n // 256)
    # relative to each frame's energy: bands far below the peak carry float32 noise
    scale = reference.max(axis=0, keepdims=True)
    np.testing.assert_allclose(ours / scale, reference / scale, rtol=0, atol=1e-4)
    significant = reference > 1e-3 * scale
    np.testing.assert_allclose(ours[significant], reference[significant], rtol=1e-4)


def test_ten_second_clip_gives_626_frames_in_batch_and_leading_dims():
    mel = MelSpectrogram(16000, 2048, 2048, 256, 0, 8000, 128)
    assert mel(torch.zeros(2, 160000)).shape == (2, 128, 626)
    assert mel(torch.zeros(3, 2, 3000)).shape == (3, 2, 128, 12)
    # window and filterbank follow the module but stay out of checkpoints
    assert {name for name, _ in mel.named_buffers()} == {"window", "filterbank"}
    assert mel.state_dict() == {}


def test_amplitude_to_db_and_2021_log_mel_chain():
    x = torch.tensor([[[0.0, 1e-6, 1e-5, 1.0, 10.0, 1e5]]])
    expected = torch.tensor([[[-100.0, -100.0, -100.0, 0.0, 20.0, 100.0]]])
    torch.testing.assert_close(amplitude_to_db(x), expected)
    topped = amplitude_to_db(x, top_db=30.0)
    torch.testing.assert_close(topped, expected.clamp(min=70.0))

    mel = MelSpectrogram.from_config(FEATS_2021)
    waveform = torch.randn(2, 16000)
    out = log_mel(mel(waveform))
    assert out.shape == (2, 128, 63)
    assert out.min() >= -50 and out.max() <= 80
    expected = amplitude_to_db(mel(waveform)).clamp(-50, 80)
    torch.testing.assert_close(out, expected)


# ---------------------------------------------------------------------------------- scaler
def test_instance_minmax_is_the_2021_formula():
    x = torch.randn(4, 8, 20) * 10
    scaled = TorchScaler("instance", "minmax", dims=(1, 2))(x)
    x_min = x.amin(dim=(1, 2), keepdim=True)
    x_max = x.amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(scaled, (x - x_min) / (x_max - x_min + 1e-8))
    assert scaled.amin(dim=(1, 2)).abs().max() < 1e-6
    assert (scaled.amax(dim=(1, 2)) - 1).abs().max() < 1e-6
    assert TorchScaler("instance", "minmax").state_dict() == {}


def test_instance_standard_and_mean():
    x = torch.randn(3, 8, 20) * 5 + 2
    standard = TorchScaler("instance", "standard")(x)
    torch.testing.assert_close(standard.mean(dim=(1, 2)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(standard.std(dim=(1, 2)), torch.ones(3), atol=1e-5, rtol=0)
    mean = TorchScaler("instance", "mean", dims=(2,))(x)
    torch.testing.assert_close(mean.mean(dim=2), torch.zeros(3, 8), atol=1e-5, rtol=0)


@pytest.mark.parametrize("normtype", ["standard", "mean", "minmax"])
def test_dataset_statistics_fit_save_and_load(normtype):
    torch.manual_seed(0)
    data = torch.randn(12, 8, 20) * 3 + 1
    scaler = TorchScaler("dataset", normtype, dims=(1, 2))
    scaler.fit(data.split(4))  # equal-size batches: exact dataset statistics
    out = scaler(data)
    if normtype == "standard":
        torch.testing.assert_close(out.mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
        torch.testing.assert_close(out.std(unbiased=False), torch.tensor(1.0), atol=1e-4, rtol=0)
    elif normtype == "mean":
        torch.testing.assert_close(out.mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
    else:
        torch.testing.assert_close(out.min(), torch.tensor(0.0), atol=1e-6, rtol=0)
        torch.testing.assert_close(out.max(), torch.tensor(1.0), atol=1e-6, rtol=0)

    restored = TorchScaler("dataset", normtype)
    restored.load_state_dict(scaler.state_dict())
    torch.testing.assert_close(restored(data), out)


def test_dataset_per_band_statistics_and_fit_transform():
    data = torch.randn(6, 4, 10) + torch.arange(4.0)[None, :, None] * 10
    scaler = TorchScaler("dataset", "standard", dims=(2,))
    scaler.fit([(data[:3], "label"), (data[3:], "label")], transform=lambda batch: batch[0])
    assert scaler.mean.shape == (1, 4, 1)
    band_means = scaler(data).mean(dim=(0, 2))
    torch.testing.assert_close(band_means, torch.zeros(4), atol=1e-5, rtol=0)


def test_dataset_scaler_loads_a_2021_state_and_needs_fitting():
    state_2021 = {"mean": torch.full((1, 1, 1), 2.0), "mean_squared": torch.full((1, 1, 1), 13.0)}
    scaler = TorchScaler("dataset", "standard")
    with pytest.raises(RuntimeError, match="fit"):
        scaler(torch.zeros(1, 2, 2))
    scaler.load_state_dict(state_2021)  # strict, without amin/amax
    torch.testing.assert_close(scaler(torch.full((1, 2, 2), 5.0)), torch.ones(1, 2, 2))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"statistic": "global"}, "statistic"), ({"normtype": "robust"}, "normtype")],
)
def test_scaler_rejects_unknown_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TorchScaler(**kwargs)


def test_dataset_statistics_file_round_trip_and_refusals(tmp_path):
    data = torch.randn(8, 4, 10) * 2 + 3
    scaler = TorchScaler("dataset", "standard").fit(data.split(4))
    path = tmp_path / "sub" / "scaler.ckpt"
    scaler.save_statistics(path)
    restored = TorchScaler("dataset", "standard").load_statistics(path)
    torch.testing.assert_close(restored(data), scaler(data))
    with pytest.raises(ValueError, match="dims"):
        TorchScaler("dataset", "standard", dims=(2,)).load_statistics(path)
    torch.save(torch.nn.Identity(), tmp_path / "pickled.ckpt")  # as a 2021 scaler.ckpt: a module
    with pytest.raises(ValueError, match="pickled.ckpt: not a scaler statistics file.*delete it"):
        TorchScaler("dataset", "standard").load_statistics(tmp_path / "pickled.ckpt")
