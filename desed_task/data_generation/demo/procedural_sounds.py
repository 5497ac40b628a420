"""Procedural sounds with a distinct, learnable signature per DESED class, plus backgrounds.

Every synthesiser is ``f(rng, sample_rate, duration_s) -> float32 mono array`` with per-instance
random variation drawn from ``rng``; output peaks at about 0.5 (scaper renormalises loudness).
Content stays below 8 kHz so that it survives resampling to 16 kHz.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import signal

Synth = Callable[[np.random.Generator, int, float], np.ndarray]


def _time(sample_rate: int, duration_s: float) -> np.ndarray:
    return np.arange(int(round(duration_s * sample_rate))) / sample_rate


def _band(
    x: np.ndarray, sample_rate: int, low_hz: float | None, high_hz: float | None
) -> np.ndarray:
    nyquist = sample_rate / 2
    if low_hz and high_hz:
        sos = signal.butter(
            4, [low_hz / nyquist, min(high_hz / nyquist, 0.99)], "bandpass", output="sos"
        )
    elif high_hz:
        sos = signal.butter(4, min(high_hz / nyquist, 0.99), "lowpass", output="sos")
    else:
        sos = signal.butter(4, low_hz / nyquist, "highpass", output="sos")
    return signal.sosfilt(sos, x)


def _harmonics(phase: np.ndarray, n: int, rolloff: float = 1.0) -> np.ndarray:
    """Sum of ``n`` harmonics of an instantaneous phase (radians), amplitude ``1/k**rolloff``."""
    return sum(np.sin(k * phase) / k**rolloff for k in range(1, n + 1))


def _phase(freq_hz: np.ndarray | float, sample_rate: int, n: int) -> np.ndarray:
    return 2 * np.pi * np.cumsum(np.broadcast_to(freq_hz, (n,))) / sample_rate


def _smooth_random(rng: np.random.Generator, n: int, n_knots: int) -> np.ndarray:
    """A slowly varying random curve in [-1, 1] (cubic-free linear interpolation of knots)."""
    knots = rng.uniform(-1, 1, n_knots)
    return np.interp(np.linspace(0, n_knots - 1, n), np.arange(n_knots), knots)


def _normalise(x: np.ndarray, peak: float = 0.5) -> np.ndarray:
    return (peak * x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32)


def alarm_bell(rng: np.random.Generator, sr: int, dur: float) -> np.ndarray:
    """Two high tones (1.5-3 kHz) alternating every 0.08-0.25 s, with a few harmonics."""
    t = _time(sr, dur)
    f_high = rng.uniform(1500, 3000)
    f_low = f_high * rng.uniform(0.7, 0.85)
    period = rng.uniform(0.08, 0.25)
    freq = np.where((t // period) % 2 == 0, f_high, f_low)
    return _normalise(_harmonics(_phase(freq, sr, t.size), 3, rolloff=1.5))


def blender(rng: np.random.Generator, sr: int, dur: float) -> np.ndarray:
    """Motor harmonics (f0 90-160 Hz, wobbling) and broadband noise modulated at the motor rate."""
    t = _time(sr, dur)
    f0 = rng.uniform(90, 160) * (1 + 0.03 * _smooth_random(rng, t.size, 6))
    motor = _harmonics(_phase(f0, sr, t.size), 20, rolloff=0.7)
    noise = _band(rng.standard_normal(t.size), sr, 500, 4000)
    noise *= 1 + 0.5 * np.sin(_phase(f0 / 4, sr, t.size))
    return _normalise(motor / 3 + rng.uniform(0.5, 1.5) * noise / np.std(noise))


def cat(rng: np.random.Generator, sr: int, dur: float) -> np.ndarray:
    """A "meow": harmonic voice whose pitch glides up then down, formant-filtered, bell envelope."""
    t = _time(sr, dur)
    start, peak, end = rng.uniform(400, 600), rng.uniform(750, 1100), rng.uniform(350, 550)
    top = rng.uniform(0.3, 0.6)
    u = t / dur
    f0 = np.where(
        u < top, start + (peak - start) * u / top, peak + (end - peak) * (u - top) / (1 - top)
    )
    voice = _harmonics(_phase(f0, sr, t.size), 8, rolloff=1.0)
    voice = _band(voice, sr, 600, rng.uniform(2500, 3500))
    return _normalise(voice * np.sin(np.pi * u) ** 0.7)


def dishes(rng: np.random.Generator, sr: int, dur: float) -> np.ndarray:
    """2-6 short clinks: inharmonic high partials (2.5-6.5 kHz) decaying in 20-60 ms."""
    t = _time(sr, dur)
    x = np.zeros(t.size)
    onsets = np.sort(rng.uniform(0, max(dur - 0.1, 0.01), int(rng.integers(2, 7))))
    onsets[0] = 0.0
    for onset in onsets:
        tail = t[t >= onset] - onset
        partials = rng.uniform(2500, 6500, 3)
        tau = rng.uniform(0.02, 0.06)
        clink = sum(np.sin(2 * np.pi * f * tail + rng.uniform(0, 6.28)) for f in partials)
        x[t >= onset] += rng.uniform(0.5, 1.0) * clink * np.exp(-tail / tau)
    return _normalise(x)


def dog(rng: np.random.Generator, sr: int, dur: float) -> np.ndarray:
    """1-3 barks of 0.1-0.25 s: harmonic voice (300-600 Hz, falling) plus noise, sharp attack."""
    t = _time(sr, dur)
    x = np.zeros(t.size)
    n_barks = int(rng.integers(1, 4))
    for onset in np.linspace(0, max(dur - 0.25, 0), n_barks):
        length = rng.uniform(0.1, 0.25)
        span = (t >= onset) & (t < onset + length)
        local = t[span] - onset
        f0 = rng.uniform(300, 600) * (1 - 0.4 * local / length)
        bark = _harmonics(_phase(f0, sr, local.size), 12, rolloff=0.8)
        bark += 0.6 * rng.standard_normal(local.size)
        x[span] += bark * np.exp(-local / (length / 3)) * (1 - np.exp(-local / 0.005))
    return _normalise(_band(x, sr, 250, 3500))


def electric_shaver(rng: np.random.Generator, sr: int, dur: float) -> np.ndarray:
    """Buzzing sawtooth around 150 Hz (120-190 Hz), high-passed, with a slight tremolo."""
    t = _time(sr, dur)
    f0 = rng.uniform(120, 190)
    saw = signal.sawtooth(_phase(f0 * (1 + 0.01 * _smooth_random(rng, t.size, 4)), sr, t.size))
    buzz = _band(saw, sr, 300, 7000)
    return _normalise(buzz * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(3, 8) * t)))


def frying(rng: np.random.Generator, sr: int, dur: float) -> np.ndarray:
    """Crackle impulses (50-200 per second, high-passed clicks) over a > 2 kHz hiss."""
    n = _time(sr, dur).size
    impulses = np.zeros(n)
    n_clicks = rng.poisson(rng.uniform(50, 200) * dur)
    impulses[rng.integers(0, n, n_clicks)] = rng.uniform(-1, 1, n_clicks) * rng.pareto(
        2.0, n_clicks
    )
    crackle = _band(impulses, sr, 1500, 7500)
    hiss = _band(rng.standard_normal(n), sr, 2000, 7500)
    return _normalise(
        crackle / (np.std(crackle) + 1e-9) + rng.uniform(0.3, 0.8) * hiss / np.std(hiss)
    )


def running_water(rng: np.random.Generator, sr: int, dur: float) -> np.ndarray:
    """Band-passed noise (300-4000 Hz) in six bands whose levels flutter independently."""
    n = _time(sr, dur).size
    edges = np.geomspace(300, 4000, 7) * rng.uniform(0.9, 1.1)
    x = np.zeros(n)
    for low, high in zip(edges[:-1], edges[1:]):
        band = _band(rng.standard_normal(n), sr, low, high)
        flutter = 1 + 0.8 * _smooth_random(rng, n, max(4, int(dur * rng.uniform(8, 15))))
        x += band * flutter
    return _normalise(x)


_VOWEL_FORMANTS_HZ = ((730, 1090), (530, 1840), (270, 2290), (570, 840), (300, 870))


def speech(rng: np.random.Generator, sr: int, dur: float) -> np.ndarray:
    """Formant-filtered harmonic voice (f0 100-220 Hz, intonation), 3-6 syllables per second."""
    t = _time(sr, dur)
    f0 = rng.uniform(100, 220) * (1 + 0.15 * _smooth_random(rng, t.size, max(3, int(dur * 3))))
    source = _harmonics(_phase(f0, sr, t.size), 25, rolloff=1.0)
    syllable_s = 1 / rng.uniform(3, 6)
    x = np.zeros(t.size)
    for start in np.arange(0, dur, syllable_s):
        span = (t >= start) & (t < start + syllable_s)
        f1, f2 = _VOWEL_FORMANTS_HZ[int(rng.integers(len(_VOWEL_FORMANTS_HZ)))]
        vowel = _band(source[span], sr, f1 * 0.7, f1 * 1.3) + 0.6 * _band(
            source[span], sr, f2 * 0.8, f2 * 1.2
        )
        x[span] = vowel * np.sin(np.pi * (t[span] - start) / syllable_s)
    return _normalise(x)


def vacuum_cleaner(rng: np.random.Generator, sr: int, dur: float) -> np.ndarray:
    """Loud low-passed noise (cutoff 0.8-2 kHz) and a steady whine (0.8-2 kHz, 2 harmonics)."""
    t = _time(sr, dur)
    roar = _band(rng.standard_normal(t.size), sr, None, rng.uniform(800, 2000))
    whine = _harmonics(_phase(rng.uniform(800, 2000), sr, t.size), 2)
    return _normalise(roar / np.std(roar) + rng.uniform(0.2, 0.5) * whine)


CLASS_SYNTHS: dict[str, Synth] = {
    "Alarm_bell_ringing": alarm_bell,
    "Blender": blender,
    "Cat": cat,
    "Dishes": dishes,
    "Dog": dog,
    "Electric_shaver_toothbrush": electric_shaver,
    "Frying": frying,
    "Running_water": running_water,
    "Speech": speech,
    "Vacuum_cleaner": vacuum_cleaner,
}

# (min, max) duration in seconds of a complete event of each class
CLASS_DURATIONS_S: dict[str, tuple[float, float]] = {
    "Alarm_bell_ringing": (1.0, 4.0),
    "Blender": (2.0, 5.0),
    "Cat": (0.5, 1.5),
    "Dishes": (0.3, 1.2),
    "Dog": (0.3, 1.0),
    "Electric_shaver_toothbrush": (1.5, 5.0),
    "Frying": (2.0, 5.0),
    "Running_water": (2.0, 5.0),
    "Speech": (0.8, 3.0),
    "Vacuum_cleaner": (2.0, 5.0),
}

# stationary classes that also get _nOn / _nOff / _nOn_nOff files, as in the DESED soundbank
STATIONARY_CLASSES = (
    "Blender",
    "Electric_shaver_toothbrush",
    "Frying",
    "Running_water",
    "Vacuum_cleaner",
)


def apply_edges(
    x: np.ndarray, sr: int, fade_in: bool, fade_out: bool, ramp_s: float = 0.01
) -> np.ndarray:
    """Short raised-cosine ramps at the ends that have an onset/offset (none for ``_nOn``/``_nOff``)."""
    n = min(int(ramp_s * sr), x.size // 2)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))
    y = x.copy()
    if fade_in:
        y[:n] *= ramp
    if fade_out:
        y[-n:] *= ramp[::-1]
    return y


def pink_noise(rng: np.random.Generator, sr: int, dur: float) -> np.ndarray:
    """1/f noise (spectral shaping of white noise)."""
    n = _time(sr, dur).size
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    spectrum /= np.sqrt(np.maximum(freqs, 20.0))
    return _normalise(np.fft.irfft(spectrum, n))


def brown_noise(rng: np.random.Generator, sr: int, dur: float) -> np.ndarray:
    """Leaky-integrated white noise (1/f^2), high-passed at 40 Hz to stay audible."""
    n = _time(sr, dur).size
    x = signal.lfilter([1.0], [1.0, -0.995], rng.standard_normal(n))
    return _normalise(_band(x, sr, 40, None) + 0.05 * rng.standard_normal(n))


def mains_hum(rng: np.random.Generator, sr: int, dur: float) -> np.ndarray:
    """50 or 60 Hz hum with harmonics, over faint pink noise (a fridge / appliance room tone)."""
    t = _time(sr, dur)
    mains = 50.0 if rng.random() < 0.5 else 60.0
    hum = sum(rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * k * mains * t) for k in range(1, 6))
    return _normalise(hum / 3 + pink_noise(rng, sr, dur))


BACKGROUND_SYNTHS: dict[str, Synth] = {
    "pink_noise": pink_noise,
    "brown_noise": brown_noise,
    "mains_hum": mains_hum,
}
