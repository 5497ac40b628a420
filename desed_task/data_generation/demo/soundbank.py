"""A tiny procedural soundbank laid out like the DCASE 2021 one (16 kHz, 16-bit wav).

``<folder>/foreground/<Class>/<class>_<i>[_nOn|_nOff|_nOn_nOff].wav`` and
``<folder>/background/<kind>/<kind>_<i>.wav``. Complete events are 0.3-5 s long (per-class range
in :data:`.procedural_sounds.CLASS_DURATIONS_S`); the stationary classes
also get one file of each onset/offset variant (``_nOn``/``_nOff`` 3-8 s, ``_nOn_nOff`` 10-12 s);
backgrounds are 11-15 s long.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from desed_task.data_generation.demo.procedural_sounds import (
    BACKGROUND_SYNTHS,
    CLASS_DURATIONS_S,
    CLASS_SYNTHS,
    STATIONARY_CLASSES,
    apply_edges,
)
from desed_task.data_generation.scaper.soundbank import OnsetOffsetVariant

SOUNDBANK_SAMPLE_RATE = 16000

_VARIANT_DURATIONS_S = {
    OnsetOffsetVariant.NO_ONSET: (3.0, 8.0),
    OnsetOffsetVariant.NO_OFFSET: (3.0, 8.0),
    OnsetOffsetVariant.NO_ONSET_NO_OFFSET: (10.0, 12.0),
}


def _write(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sample_rate, subtype="PCM_16")


def synthesize_soundbank(
    folder: Path,
    seed: int,
    clips_per_class: int = 8,
    backgrounds_per_kind: int = 3,
    sample_rate: int = SOUNDBANK_SAMPLE_RATE,
) -> tuple[Path, Path]:
    """Write a procedural soundbank under ``folder``; return its (foreground, background) folders.

    Args:
        folder: output folder (created).
        seed: seed of every random choice (same seed, same files).
        clips_per_class: complete events per class (plus 3 variant files per stationary class).
        backgrounds_per_kind: files per background kind (pink noise, brown noise, mains hum).
        sample_rate: Hz.
    """
    rng = np.random.default_rng(seed)
    foreground, background = Path(folder) / "foreground", Path(folder) / "background"
    for class_name, synth in CLASS_SYNTHS.items():
        stem = class_name.lower()
        for i in range(clips_per_class):
            duration = rng.uniform(*CLASS_DURATIONS_S[class_name])
            audio = apply_edges(synth(rng, sample_rate, duration), sample_rate, True, True)
            _write(foreground / class_name / f"{stem}_{i:03d}.wav", audio, sample_rate)
        if class_name in STATIONARY_CLASSES:
            for variant, (low, high) in _VARIANT_DURATIONS_S.items():
                audio = synth(rng, sample_rate, rng.uniform(low, high))
                has_onset = variant is OnsetOffsetVariant.NO_OFFSET
                has_offset = variant is OnsetOffsetVariant.NO_ONSET
                audio = apply_edges(audio, sample_rate, has_onset, has_offset)
                name = f"{stem}_{clips_per_class:03d}{variant.value}.wav"
                _write(foreground / class_name / name, audio, sample_rate)
    for kind, synth in BACKGROUND_SYNTHS.items():
        for i in range(backgrounds_per_kind):
            audio = synth(rng, sample_rate, rng.uniform(11.0, 15.0))
            _write(background / kind / f"{kind}_{i:03d}.wav", audio, sample_rate)
    return foreground, background
