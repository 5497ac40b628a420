"""Kaldi-style log-mel filterbank (``compute-fbank-feats``), batched, in plain torch.

Numerically this is ``torchaudio.compliance.kaldi.fbank`` without dither (its default) and
with ``snip_edges=True``, ``use_energy=False``, ``use_log_fbank=True``, ``use_power=True``
(its defaults), for every clip of a batch at once. BEATs uses it with 128 bins, 25 ms frames
every 10 ms at 16 kHz.

Everything before the power spectrum is linear in each frame (mean removal, pre-emphasis,
window, zero padding to a power of two, real DFT), so it is folded into one matrix. Frames are
cut from hop-sized chunks (reshape, slices, concat) and multiplied by that matrix: the graph
holds only pad, reshape, slice, concat, matmul, mul, add, max and log, all of which ONNX
exports (no ``torch.stft``, no complex numbers, no ``unfold``), and a matmul keeps full float32
on GPUs (cuDNN convolutions may run in TF32, too coarse for a DFT).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# numeric_limits<float>::epsilon(), Kaldi's floor before the log
FLOAT_EPSILON = torch.finfo(torch.float32).eps
WINDOW_TYPES = ("povey", "hanning", "hamming", "rectangular")


def kaldi_mel_scale(freq_hz: torch.Tensor | float) -> torch.Tensor | float:
    """Kaldi's mel scale, 1127 * ln(1 + f / 700)."""
    if isinstance(freq_hz, torch.Tensor):
        return 1127.0 * torch.log1p(freq_hz / 700.0)
    return 1127.0 * math.log1p(freq_hz / 700.0)


def kaldi_mel_banks(
    num_bins: int, padded_window_size: int, sample_frequency: float, low_freq: float, high_freq: float
) -> torch.Tensor:
    """Kaldi's triangular mel filters over the FFT bins below Nyquist, in float64.

    Args:
        num_bins: mel filters (> 3).
        padded_window_size: FFT size in samples (even).
        sample_frequency: in Hz.
        low_freq: lowest edge in Hz.
        high_freq: highest edge in Hz; <= 0 counts down from Nyquist (0: Nyquist).

    Returns:
        (num_bins, padded_window_size // 2) weights; the Nyquist bin has weight 0 in Kaldi and
        is left out.
    """
    nyquist = 0.5 * sample_frequency
    if high_freq <= 0.0:
        high_freq += nyquist
    if num_bins <= 3 or not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ValueError(
            f"kaldi_mel_banks: need more than 3 bins and 0 <= low_freq < high_freq <= Nyquist "
            f"({nyquist} Hz), got {num_bins} bins, low_freq={low_freq}, high_freq={high_freq}"
        )
    mel_low, mel_high = kaldi_mel_scale(float(low_freq)), kaldi_mel_scale(float(high_freq))
    delta = (mel_high - mel_low) / (num_bins + 1)
    edges = mel_low + delta * torch.arange(num_bins + 2, dtype=torch.float64)  # left, centre, right
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bin_width = sample_frequency / padded_window_size
    mel = kaldi_mel_scale(bin_width * torch.arange(padded_window_size // 2, dtype=torch.float64))[None, :]
    rising = (mel - left) / (centre - left)
    falling = (right - mel) / (right - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


def _window(window_type: str, size: int) -> torch.Tensor:
    """Kaldi's frame windows (symmetric), float64."""
    if window_type == "rectangular":
        return torch.ones(size, dtype=torch.float64)
    if window_type == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46, dtype=torch.float64)
    hann = torch.hann_window(size, periodic=False, dtype=torch.float64)
    return hann.pow(0.85) if window_type == "povey" else hann


def frame_to_spectrum_matrix(
    window_size: int,
    padded_window_size: int,
    window_type: str = "povey",
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
) -> torch.Tensor:
    """The linear map from one raw frame to the real and imaginary parts of its DFT.

    Kaldi's order: subtract the frame's mean, pre-emphasise (``x[j] - c * x[max(j - 1, 0)]``),
    window, zero-pad to ``padded_window_size``, real DFT. Bins 0 .. padded / 2 - 1 (the Nyquist
    bin carries no mel weight).

    Returns:
        (2 * padded_window_size // 2, window_size) float64: real parts, then imaginary parts.
    """
    eye = torch.eye(window_size, dtype=torch.float64)
    op = eye - 1.0 / window_size if remove_dc_offset else eye
    if preemphasis_coefficient != 0.0:
        previous = torch.diag(torch.ones(window_size - 1, dtype=torch.float64), -1)
        previous[0, 0] = 1.0
        op = (eye - preemphasis_coefficient * previous) @ op
    op = _window(window_type, window_size)[:, None] * op
    n_bins = padded_window_size // 2
    # exact angles: k * n mod N keeps the argument small
    k = torch.arange(n_bins, dtype=torch.int64)[:, None]
    n = torch.arange(window_size, dtype=torch.int64)[None, :]
    angle = (2.0 * math.pi / padded_window_size) * torch.remainder(k * n, padded_window_size).double()
    dft = torch.cat([torch.cos(angle), -torch.sin(angle)])  # (2 * n_bins, window_size)
    return dft @ op


class KaldiFbank(nn.Module):
    """Log mel filterbank energies as Kaldi's ``compute-fbank-feats`` (torchaudio's
    ``compliance.kaldi.fbank``), for a batch of waveforms.

    Args:
        num_mel_bins: mel filters.
        sample_frequency: in Hz.
        frame_length: frame length in ms (25: 400 samples at 16 kHz).
        frame_shift: frame hop in ms (10: 160 samples).
        low_freq, high_freq: filter edges in Hz (high <= 0: offset from Nyquist).
        preemphasis_coefficient: 0.97 as Kaldi.
        window_type: "povey" (Kaldi's default), "hanning", "hamming" or "rectangular".
        remove_dc_offset: subtract each frame's mean first.
        round_to_power_of_two: zero-pad frames to the next power of two for the DFT.

    Shapes:
        waveform: (batch, samples), in the waveform's own units (BEATs multiplies [-1, 1]
        audio by 2**15 first) -> (batch, frames, num_mel_bins) natural-log energies,
        frames = 1 + (samples - frame samples) // hop samples (998 for 10 s at 16 kHz).
    """

    def __init__(
        self,
        num_mel_bins: int = 23,
        sample_frequency: float = 16000.0,
        frame_length: float = 25.0,
        frame_shift: float = 10.0,
        low_freq: float = 20.0,
        high_freq: float = 0.0,
        preemphasis_coefficient: float = 0.97,
        window_type: str = "povey",
        remove_dc_offset: bool = True,
        round_to_power_of_two: bool = True,
    ):
        super().__init__()
        if window_type not in WINDOW_TYPES:
            raise ValueError(f"KaldiFbank: window_type must be one of {WINDOW_TYPES}, got {window_type!r}")
        self.window_size = int(sample_frequency * frame_length * 0.001)
        self.window_shift = int(sample_frequency * frame_shift * 0.001)
        if self.window_size < 2 or self.window_shift < 1:
            raise ValueError("KaldiFbank: frames must hold at least 2 samples and move by at least 1")
        padded = 1 << (self.window_size - 1).bit_length() if round_to_power_of_two else self.window_size
        if padded % 2:
            raise ValueError("KaldiFbank: the padded frame must have an even number of samples")
        dft = frame_to_spectrum_matrix(
            self.window_size, padded, window_type, preemphasis_coefficient, remove_dc_offset
        )
        # a frame spans this many hop-sized chunks; the matrix's rows past the frame are zero
        self.chunks_per_frame = -(-self.window_size // self.window_shift)
        rows = self.chunks_per_frame * self.window_shift - self.window_size
        dft = torch.cat([dft.T, dft.new_zeros(rows, dft.shape[0])])
        # non-persistent: they follow .to(device) but stay out of state dicts
        self.register_buffer("frame_to_spectrum", dft.float(), persistent=False)
        mel = kaldi_mel_banks(num_mel_bins, padded, sample_frequency, low_freq, high_freq)
        self.register_buffer("mel_banks", mel.float().T.contiguous(), persistent=False)
        self.num_mel_bins = num_mel_bins

    def n_frames(self, n_samples: int) -> int:
        """Frames for a clip of ``n_samples`` samples (0 when shorter than one frame)."""
        if n_samples < self.window_size:
            return 0
        return 1 + (n_samples - self.window_size) // self.window_shift

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() != 2:
            raise ValueError(f"KaldiFbank: expected (batch, samples), got shape {tuple(waveform.shape)}")
        if waveform.shape[-1] < self.window_size:
            raise ValueError(
                f"KaldiFbank: {waveform.shape[-1]} samples is shorter than one frame ({self.window_size})"
            )
        batch, n_samples = waveform.shape
        n_frames, hop, span = self.n_frames(n_samples), self.window_shift, self.chunks_per_frame
        needed = (n_frames - 1 + span) * hop
        if needed > n_samples:  # samples past the last frame's end meet zero rows
            waveform = nn.functional.pad(waveform, (0, needed - n_samples))
        chunks = waveform[:, :needed].reshape(batch, n_frames - 1 + span, hop)
        frames = torch.cat([chunks[:, i : i + n_frames] for i in range(span)], dim=-1)
        real, imag = (frames @ self.frame_to_spectrum).chunk(2, dim=-1)  # (batch, frames, bins)
        power = real * real + imag * imag
        energies = power @ self.mel_banks  # (batch, frames, num_mel_bins)
        return torch.clamp(energies, min=FLOAT_EPSILON).log()


__all__ = ["KaldiFbank", "kaldi_mel_banks", "kaldi_mel_scale", "frame_to_spectrum_matrix"]
