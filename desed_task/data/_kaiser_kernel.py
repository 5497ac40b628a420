"""The numba loop of the 2021 resampler (imported lazily: numba takes a moment to load).

Band-limited interpolation with a tabulated windowed-sinc filter, in the arithmetic of resampy
0.2.2 (what librosa 0.8's default ``resample`` ran in 2021): the time register is advanced by
repeated addition, and each output sample is accumulated in float32 in the same order, so that
the result does not depend on how the signal is cut into blocks (see ``kaiser_best.py``).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def interpolate(
    x: np.ndarray,
    first: int,
    n_input: int,
    y: np.ndarray,
    time_register: float,
    time_increment: float,
    n_last: int,
    half_window: np.ndarray,
    half_window_delta: np.ndarray,
    num_table: int,
    scale: float,
) -> tuple[int, float]:
    """Fill rows of ``y`` from ``x`` until ``y`` is full or the next output needs input beyond
    ``n_last``.

    Args:
        x: (samples, channels) input samples ``first`` .. ``first + len(x)`` of the signal.
        first: index in the whole signal of ``x[0]``.
        n_input: the signal's length, or the end of ``x`` while more input is to come (the
            caller then sets ``n_last`` so that no output reaches past it).
        y: (outputs, channels) float32 zeros, filled in place.
        time_register: input time (samples) of the first output to make.
        time_increment: input samples per output sample.
        n_last: the last input index an output may be centred on.
        half_window, half_window_delta: the filter's right wing (already scaled for
            downsampling) and its first differences.
        num_table: filter samples per zero crossing.
        scale: min(1, output rate / input rate).

    Returns:
        (rows filled, time register of the next output).
    """
    index_step = int(scale * num_table)
    n_window = half_window.shape[0]
    channels = x.shape[1]
    filled = 0
    for t in range(y.shape[0]):
        n = int(time_register)
        if n > n_last:
            break
        frac = scale * (time_register - n)
        index_frac = frac * num_table
        offset = int(index_frac)
        eta = index_frac - offset
        for i in range(min(n + 1, (n_window - offset) // index_step)):
            weight = half_window[offset + i * index_step] + eta * half_window_delta[offset + i * index_step]
            for c in range(channels):
                y[t, c] += weight * x[n - i - first, c]
        frac = scale - frac
        index_frac = frac * num_table
        offset = int(index_frac)
        eta = index_frac - offset
        for k in range(min(n_input - n - 1, (n_window - offset) // index_step)):
            weight = half_window[offset + k * index_step] + eta * half_window_delta[offset + k * index_step]
            for c in range(channels):
                y[t, c] += weight * x[n + k + 1 - first, c]
        time_register += time_increment
        filled = t + 1
    return filled, time_register
