"""Log-mel features of the 2021 baseline, in plain torch (no torchaudio).

Numerically this is ``torchaudio.transforms.MelSpectrogram(..., window_fn=torch.hamming_window,
wkwargs={"periodic": False}, power=1)`` followed by ``AmplitudeToDB(stype="amplitude")`` with
``amin=1e-5`` and the 2021 clamp to [-50, 80] dB (`log_mel`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# 2021 clamped the dB values "to reproduce old code"
DB_CLAMP_MIN = -50.0
DB_CLAMP_MAX = 80.0
LOG_MEL_AMIN = 1e-5  # 2021's floor before the log, "as in librosa"


def hz_to_mel_htk(freq_hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale: 2595 * log10(1 + f / 700)."""
    return 2595.0 * torch.log10(1.0 + freq_hz / 700.0)


def mel_to_hz_htk(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel_htk`."""
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int
) -> torch.Tensor:
    """Triangular HTK-mel filterbank without area normalisation (torchaudio's default).

    Filter ``m`` rises linearly from mel point ``m`` to ``m + 1`` and falls to ``m + 2``,
    with ``n_mels + 2`` points equally spaced on the HTK mel scale over [f_min, f_max].
    Computed in float32 with torchaudio's operations (``melscale_fbanks``, as in 0.8.1, which
    2021 ran), so the weights are 2021's to the bit (a float64 computation differs by up to
    1.4e-5 in some 2000 of the 2021 weights).

    Args:
        n_freqs: number of STFT bins, n_fft // 2 + 1, spanning 0 .. sample_rate / 2 Hz.
        f_min, f_max: band edges in Hz.
        n_mels: number of filters.
        sample_rate: in Hz.

    Returns:
        (n_freqs, n_mels) float32 weights.
    """
    bin_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    mel_min = 2595.0 * math.log10(1.0 + f_min / 700.0)
    mel_max = 2595.0 * math.log10(1.0 + f_max / 700.0)
    hz_points = mel_to_hz_htk(torch.linspace(mel_min, mel_max, n_mels + 2))
    widths = hz_points[1:] - hz_points[:-1]  # (n_mels + 1,)
    offsets = hz_points.unsqueeze(0) - bin_freqs.unsqueeze(1)  # (n_freqs, n_mels + 2)
    rising = (-1.0 * offsets[:, :-2]) / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    return torch.max(torch.zeros(1), torch.min(rising, falling))


class MelSpectrogram(nn.Module):
    """Magnitude (power 1) mel spectrogram, torchaudio-compatible.

    STFT with a symmetric Hamming window, ``center=True`` and reflect padding, so a clip
    of ``n`` samples gives ``1 + n // hop_length`` frames (626 for 10 s at 16 kHz). The
    window and the filterbank are non-persistent buffers: they follow ``.to(device)`` but
    stay out of checkpoints.

    Args:
        sample_rate: in Hz.
        n_fft: FFT size.
        win_length: window length in samples (<= n_fft), defaults to n_fft.
        hop_length: frame hop in samples.
        f_min, f_max: mel band edges in Hz; f_max defaults to sample_rate / 2.
        n_mels: number of mel bands.

    Shapes:
        waveform: (..., samples) -> (..., n_mels, frames)
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 2048,
        win_length: int | None = None,
        hop_length: int = 256,
        f_min: float = 0.0,
        f_max: float | None = None,
        n_mels: int = 128,
    ):
        super().__init__()
        win_length = n_fft if win_length is None else win_length
        f_max = sample_rate / 2 if f_max is None else f_max
        if win_length > n_fft:
            raise ValueError(f"MelSpectrogram: win_length {win_length} > n_fft {n_fft}")
        if not 0 <= f_min < f_max <= sample_rate / 2:
            raise ValueError(
                f"MelSpectrogram: need 0 <= f_min < f_max <= sample_rate / 2, got "
                f"f_min={f_min}, f_max={f_max}, sample_rate={sample_rate}"
            )
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.f_min = f_min
        self.f_max = f_max
        self.n_mels = n_mels
        self.register_buffer(
            "window", torch.hamming_window(win_length, periodic=False), persistent=False
        )
        self.register_buffer(
            "filterbank",
            mel_filterbank(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate),
            persistent=False,
        )

    @classmethod
    def from_config(cls, feats: dict) -> MelSpectrogram:
        """From the config's ``feats:`` section (2021 key names)."""
        return cls(
            sample_rate=feats["sample_rate"],
            n_fft=feats["n_filters"],
            win_length=feats["n_window"],
            hop_length=feats["hop_length"],
            f_min=feats["f_min"],
            f_max=feats["f_max"],
            n_mels=feats["n_mels"],
        )

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        leading = waveform.shape[:-1]
        spec = torch.stft(
            waveform.reshape(-1, waveform.shape[-1]),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        ).abs()  # (batch, n_freqs, frames)
        # (frames, freqs) @ (freqs, mels), torchaudio's order of the sums: 2021's values exactly
        mel = torch.matmul(spec.transpose(-1, -2), self.filterbank).transpose(-1, -2)
        return mel.reshape(*leading, self.n_mels, mel.shape[-1])


def amplitude_to_db(
    amplitude: torch.Tensor, amin: float = 1e-5, top_db: float | None = None
) -> torch.Tensor:
    """Magnitude to decibels: ``20 * log10(max(amplitude, amin))`` (reference 1.0).

    Args:
        amplitude: non-negative magnitudes, (..., n_mels, frames).
        amin: floor before the log (2021 used 1e-5, "as in librosa").
        top_db: if given, floor each spectrogram (last two dims) at its maximum minus
            ``top_db``. torchaudio instead takes the maximum over the last three dims,
            which for a (batch, n_mels, frames) input mixes clips; the baseline uses None.

    Returns:
        dB values, same shape.
    """
    db = 20.0 * torch.log10(torch.clamp(amplitude, min=amin))
    if top_db is not None:
        peak = db.amax(dim=(-2, -1), keepdim=True)
        db = torch.maximum(db, peak - top_db)
    return db


def log_mel(mel_magnitudes: torch.Tensor) -> torch.Tensor:
    """The 2021 dB step of the SED features: ``20 * log10(max(mel, 1e-5))`` clamped to
    [-50, 80] dB, any shape (..., n_mels, frames) -> the same shape.

    The one copy of that step: training (`MeanTeacher`), inference (`SEDPipeline`) and the
    exported graph (`ExportPipeline`) call it.
    """
    return amplitude_to_db(mel_magnitudes, amin=LOG_MEL_AMIN).clamp(DB_CLAMP_MIN, DB_CLAMP_MAX)


__all__ = [
    "MelSpectrogram",
    "amplitude_to_db",
    "log_mel",
    "mel_filterbank",
    "hz_to_mel_htk",
    "mel_to_hz_htk",
]
