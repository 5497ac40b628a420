"""One figure per recording: log-mel spectrogram, per-class score curves, detected events."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

FREQUENCY_TICKS_HZ = (0, 125, 250, 500, 1000, 2000, 4000, 8000, 16000)
TICK_STEPS = (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)  # seconds between ticks (at most 12 ticks; a clip under 1 s gets 0.05 s steps)


def _time_formatter(duration: float):
    from matplotlib.ticker import FuncFormatter

    if duration <= 120:
        return FuncFormatter(lambda t, _: f"{t:g}")
    return FuncFormatter(lambda t, _: f"{int(t // 60)}:{int(t % 60):02d}")


def _mel_htk(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale, as the features' filterbank (desed_task.features.mel.hz_to_mel_htk)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def frequency_ticks(n_mels: int, f_min: float, f_max: float) -> tuple[list[float], list[str]]:
    """Positions on a spectrogram image of ``n_mels`` rows (row m spans [m, m + 1)) of the
    frequencies of FREQUENCY_TICKS_HZ within the bands, and their labels (Hz or kHz).

    Row m is the filter centred at mel point m + 1 of the n_mels + 2 points equally spaced on the
    HTK mel scale over [f_min, f_max]."""
    low, high = _mel_htk(f_min), _mel_htk(f_max)
    step = (high - low) / (n_mels + 1)
    positions, labels = [], []
    for hz in FREQUENCY_TICKS_HZ:
        y = float((_mel_htk(hz) - low) / step - 0.5)
        if 0 <= y <= n_mels:
            positions.append(y)
            labels.append(f"{hz // 1000:g}k" if hz >= 1000 else f"{hz:g}")
    return positions, labels


def plot_detection(
    log_mel: np.ndarray,
    scores: np.ndarray,
    events: pd.DataFrame,
    class_names: Sequence[str],
    frame_step: float,
    duration: float,
    path: Path,
    title: str = "",
    thresholds: Sequence[float] | None = None,
    band_edges: tuple[float, float] | None = None,
) -> Path:
    """Save the three panels on one time axis (seconds, or m:ss past two minutes).

    Args:
        log_mel: (n_mels, n_frames) dB at the output frame rate.
        scores: (n_classes, n_frames) raw frame probabilities.
        events: filename, onset, offset, event_label of this recording.
        class_names: (n_classes,) in score order.
        frame_step: seconds per frame.
        duration: seconds of audio.
        path: the PNG to write.
        title: figure title.
        thresholds: (n_classes,) drawn on the score panel when they are all equal.
        band_edges: (f_min, f_max) Hz of the mel filterbank: the spectrogram's axis is then
            labelled in Hz (else in mel bands).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_classes = len(class_names)
    colours = plt.get_cmap("tab10" if n_classes <= 10 else "tab20")(np.arange(n_classes) % 20)
    end = max(duration, scores.shape[1] * frame_step)
    fig, axes = plt.subplots(
        3, 1, figsize=(14, 8.5), sharex=True, gridspec_kw={"height_ratios": [2.2, 2.2, 2.0]}
    )
    spec, curves, bars = axes
    image = spec.imshow(
        log_mel, origin="lower", aspect="auto", cmap="magma", interpolation="antialiased",
        extent=(0, log_mel.shape[1] * frame_step, 0, log_mel.shape[0]),
    )
    if band_edges is not None:
        spec.set_yticks(*frequency_ticks(log_mel.shape[0], *band_edges))
        spec.set_ylabel("frequency (Hz, mel scale)")
    else:
        spec.set_ylabel("mel band")
    # the colour scale in an inset beside the panel: the three panels keep one time axis
    colour_axis = spec.inset_axes((1.005, 0.0, 0.012, 1.0))
    fig.colorbar(image, cax=colour_axis).set_label("dB", fontsize=8)
    colour_axis.tick_params(labelsize=8)
    spec.set_title(title, loc="left", fontsize=11)

    times = (np.arange(scores.shape[1]) + 0.5) * frame_step
    long_recording = end > 120
    for k, name in enumerate(class_names):
        curves.plot(times, scores[k], color=colours[k], lw=0.6 if long_recording else 1.2, label=name)
    if thresholds is not None and len(set(thresholds)) == 1:
        curves.axhline(thresholds[0], color="0.4", ls="--", lw=0.8)
    curves.set_ylim(0, 1.02)
    curves.set_ylabel("score")
    curves.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)

    for k, name in enumerate(class_names):
        rows = events[events["event_label"] == name]
        spans = list(zip(rows["onset"], rows["offset"] - rows["onset"]))
        if spans:
            bars.broken_barh(spans, (k - 0.4, 0.8), facecolors=colours[k])
    bars.set_yticks(range(n_classes), list(class_names), fontsize=8)
    bars.set_ylim(n_classes - 0.5, -0.5)
    bars.grid(axis="x", color="0.85", lw=0.5)
    bars.set_xlim(0, end)
    from matplotlib.ticker import MultipleLocator

    step = next((s for s in TICK_STEPS if end / s <= 12), TICK_STEPS[-1] * np.ceil(end / TICK_STEPS[-1] / 12))
    bars.xaxis.set_major_locator(MultipleLocator(step))
    bars.xaxis.set_major_formatter(_time_formatter(end))
    bars.set_xlabel("time (m:ss)" if long_recording else "time (s)")
    bars.set_ylabel("events")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
