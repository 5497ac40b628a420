"""2021's resampler: resampy 0.2.2's ``kaiser_best``, as librosa 0.8's ``resample`` ran it.

The 2021 recipe resampled with ``librosa.resample(x, orig_sr, target_sr)``, whose default then
was resampy's ``kaiser_best`` filter: a windowed sinc with 64 zero crossings, 512 table samples
per crossing, a Kaiser window (beta 14.7697) and a cut-off at 0.9476 of the lower Nyquist
frequency. resampy 0.3 (2022) replaced that filter by another one of the same name (50 crossings,
cut-off 0.9173) and its time register by a multiplication, so today's
``librosa.resample(res_type="kaiser_best")`` differs from 2021 (by up to 0.025 on white noise at
0.06 rms). This module computes the 2021 numbers (equal to resampy 0.2.2 within 1e-6,
``tests/golden/make_resample_golden.py``): the filter is rebuilt from its design (it equals the
table resampy 0.2.2 shipped to 2e-16), the loop is ``_kaiser_kernel.interpolate``, and the output
has librosa's length, ``ceil(samples * ratio)`` (resampy's ``floor`` plus a zero when they differ).

:class:`KaiserBestStream` resamples a signal that arrives in blocks and gives the same samples as
one call on the whole signal: the time register and the float32 sums run the same way; only the
input a block's outputs need (the filter reaches 177 input samples each side at 44.1 -> 16 kHz)
is kept between blocks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator

import numpy as np

ZERO_CROSSINGS = 64
TABLE_BITS = 9  # 2**9 filter samples per zero crossing
KAISER_BETA = 14.769656459379492
ROLLOFF = 0.9475937167399596


@functools.cache
def _filter(ratio: float) -> tuple[np.ndarray, np.ndarray, int, float]:
    """The right wing of the filter (scaled by ``ratio`` when downsampling), its first
    differences, the table samples per zero crossing and the scale min(1, ratio)."""
    from scipy.signal import get_window

    num_table = 2**TABLE_BITS
    n = num_table * ZERO_CROSSINGS
    taper = get_window(("kaiser", KAISER_BETA), 2 * n + 1, fftbins=False)[n:]
    wing = taper * ROLLOFF * np.sinc(ROLLOFF * np.linspace(0, ZERO_CROSSINGS, num=n + 1))
    if ratio < 1:
        wing = wing * ratio
    delta = np.zeros_like(wing)
    delta[:-1] = np.diff(wing)
    wing.flags.writeable = delta.flags.writeable = False
    return wing, delta, num_table, min(1.0, ratio)


def reach(orig_rate: int, target_rate: int) -> int:
    """Input samples the filter reads on each side of an output's position (177 at 44.1 -> 16 kHz)."""
    wing, _, num_table, scale = _filter(float(target_rate) / orig_rate)
    return len(wing) // int(scale * num_table) + 1


def output_length(n_input: int, orig_rate: int, target_rate: int) -> int:
    """librosa's output length: ``ceil(n_input * target_rate / orig_rate)`` in float64."""
    return int(np.ceil(n_input * (float(target_rate) / orig_rate)))


class KaiserBestStream:
    """Resample (samples, channels) float32 blocks; the outputs concatenated equal
    :func:`resample_kaiser_best` of the whole signal.

    Args:
        orig_rate, target_rate: sample rates in Hz (different).
        channels: channels of every block.
    """

    def __init__(self, orig_rate: int, target_rate: int, channels: int = 1) -> None:
        self.ratio = float(target_rate) / orig_rate
        self.orig_rate, self.target_rate = int(orig_rate), int(target_rate)
        self.filter = _filter(self.ratio)
        self.reach = reach(orig_rate, target_rate)
        self.increment = 1.0 / self.ratio
        self.channels = channels
        self.buffer = np.zeros((0, channels), dtype=np.float32)
        self.first = 0  # index in the signal of buffer[0]
        self.received = 0  # input samples pushed so far
        self.made = 0  # output samples made so far
        self.register = 0.0  # input time of the next output

    def _run(self, n_input: int, n_last: int, n_outputs: int) -> np.ndarray:
        from desed_task.data._kaiser_kernel import interpolate

        out = np.zeros((max(0, n_outputs), self.channels), dtype=np.float32)
        wing, delta, num_table, scale = self.filter
        filled, self.register = interpolate(
            self.buffer, self.first, n_input, out, self.register, self.increment, n_last,
            wing, delta, num_table, scale,
        )
        self.made += filled
        keep_from = max(self.first, int(self.register) - self.reach - 1)
        self.buffer = self.buffer[keep_from - self.first :]
        self.first = keep_from
        return out[:filled]

    def push(self, block: np.ndarray) -> np.ndarray:
        """Add input; returns the (outputs, channels) samples it completes (maybe none)."""
        block = np.ascontiguousarray(np.asarray(block, dtype=np.float32).reshape(len(block), self.channels))
        self.buffer = np.concatenate([self.buffer, block]) if len(self.buffer) else block
        self.received += len(block)
        n_last = self.received - 1 - self.reach  # outputs centred further need more input
        bound = math.floor((n_last + 1 - self.register) * self.ratio) + 2
        return self._run(self.received, n_last, bound)

    def finish(self) -> np.ndarray:
        """The remaining outputs, up to librosa's length (its zero padding included)."""
        floor_length = int(self.received * self.ratio)  # resampy 0.2.2's length
        tail = self._run(self.received, self.received, floor_length - self.made)
        pad = output_length(self.received, self.orig_rate, self.target_rate) - self.made
        return np.concatenate([tail, np.zeros((max(0, pad), self.channels), dtype=np.float32)])


def resample_kaiser_best(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample along the first axis: (samples,) or (samples, channels) -> float32 at
    ``target_rate``, ``ceil(samples * target_rate / orig_rate)`` samples."""
    audio = np.asarray(audio, dtype=np.float32)
    stream = KaiserBestStream(orig_rate, target_rate, 1 if audio.ndim == 1 else audio.shape[1])
    out = np.concatenate([stream.push(audio), stream.finish()])
    return out[:, 0] if audio.ndim == 1 else out


def kaiser_best_blocks(blocks: Iterable[np.ndarray], orig_rate: int, target_rate: int) -> Iterator[np.ndarray]:
    """Resample a stream of mono (samples,) blocks; yields non-empty float32 (samples,) blocks."""
    stream = KaiserBestStream(orig_rate, target_rate)
    for block in blocks:
        out = stream.push(block)
        if len(out):
            yield out[:, 0]
    tail = stream.finish()
    if len(tail):
        yield tail[:, 0]
