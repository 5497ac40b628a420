"""The project's own soundscape draws and rendering (the demo dataset, ``--fix_2021_quirks``).

The 2021 synthetic sets are drawn by
:mod:`desed_task.data_generation.dcase2021.soundscapes` instead, exactly as 2021 drew them.

Generation is split in two:

1. *planning* (:func:`plan_soundscapes`), sequential and cheap: for every clip, draw from one
   seeded ``numpy`` generator the background file and offset, the event classes (a
   :class:`~desed_task.data_generation.scaper.label_samplers.LabelSampler`), each event's source
   file, source offset, onset, duration, SNR and pitch shift. The DESED onset/offset variants are
   handled here (see :func:`event_timing`). A plan is fully concrete: rendering it needs no
   randomness.
2. *rendering* (:func:`render_soundscapes`), parallel and resumable: each plan becomes a scaper
   specification made only of ``const`` distributions, scaper mixes it (LUFS-normalised
   background at ``ref_db``, events at ``ref_db + snr``), and the wav (16-bit PCM) and JAMS are
   written under temporary names then renamed, the JAMS last. A clip whose JAMS exists is done and
   is not rendered again, so an interrupted run resumes where it stopped with identical output.

Metadata rows come from the JAMS scaper returns, so they are exactly what was mixed.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jams
import numpy as np
import scipy.stats
import soundfile as sf

from desed_task.data_generation.scaper.annotations import events_from_jams
from desed_task.data_generation.scaper.compat import import_scaper
from desed_task.data_generation.scaper.label_samplers import LabelSampler
from desed_task.data_generation.scaper.rendering import ClipJob, DrawMismatch, render_resumable
from desed_task.data_generation.scaper.soundbank import (
    OnsetOffsetVariant,
    SoundbankIndex,
    audio_duration_s,
    onset_offset_variant,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SoundscapeParams:
    """Generation parameters of a set of soundscapes (defaults: the DCASE 2021 synthetic sets).

    Attributes:
        duration_s: clip duration in seconds.
        sample_rate: output sample rate in Hz (2021: 44100, resampled to 16 kHz afterwards).
        ref_db: loudness of the background in LUFS; events are mixed at ``ref_db + snr``.
        snr_db: (min, max) of the uniform foreground-to-background SNR in dB.
        event_time_s: (mean, std, min, max) of the truncated normal onset of complete events, s.
        min_event_duration_s: shortest event placed in a clip, s (also bounds ``_nOff`` onsets).
        pitch_shift_semitones: (min, max) of a uniform pitch shift, or None for no pitch shift.
        reverb: scaper/sox reverberance in [0, 1] applied to the mixture, or None.
        fix_clipping: peak-normalise a clipping mixture (keeps the relative levels; the 16-bit wav
            would otherwise saturate).
    """

    duration_s: float = 10.0
    sample_rate: int = 44100
    ref_db: float = -50.0
    snr_db: tuple[float, float] = (6.0, 30.0)
    event_time_s: tuple[float, float, float, float] = (5.0, 2.0, 0.25, 10.0)
    min_event_duration_s: float = 0.25
    pitch_shift_semitones: tuple[float, float] | None = (-3.0, 3.0)
    reverb: float | None = 0.1
    fix_clipping: bool = True


@dataclass(frozen=True)
class PlannedEvent:
    """One foreground event, fully drawn. Times in seconds."""

    label: str  # soundbank folder label (may carry a _nOn/_nOff suffix)
    source_file: Path
    source_time: float
    event_time: float
    event_duration: float
    snr: float
    pitch_shift: float | None


@dataclass(frozen=True)
class PlannedBackground:
    """The background of a soundscape: ``duration_s`` seconds read from ``source_time``."""

    label: str
    source_file: Path
    source_time: float


@dataclass(frozen=True)
class SoundscapePlan:
    """Everything needed to render one soundscape, without randomness."""

    name: str  # file stem, e.g. "42"
    background: PlannedBackground
    events: tuple[PlannedEvent, ...] = field(default_factory=tuple)


def _truncnorm(rng: np.random.Generator, mean: float, std: float, low: float, high: float) -> float:
    a, b = (low - mean) / std, (high - mean) / std
    return float(scipy.stats.truncnorm.rvs(a, b, loc=mean, scale=std, random_state=rng))


def event_timing(
    variant: OnsetOffsetVariant,
    file_duration_s: float,
    params: SoundscapeParams,
    rng: np.random.Generator,
) -> tuple[float, float, float]:
    """Draw ``(source_time, event_time, event_duration)`` in seconds for one foreground file.

    - complete sound: the whole file (at most one clip long) from its start, onset drawn from
      the truncated normal ``params.event_time_s``, moved earlier if the event would overrun;
    - ``_nOn``: starts the clip (onset 0) from a random point of the file, lasts to the file end;
    - ``_nOff``: the file start, placed so that it lasts until the clip end (the sound has no
      offset in the file, so it must not end inside the clip);
    - ``_nOn_nOff``: a random clip-long excerpt covering the whole clip.

    (The 2021 recipe meant this; its code drew ``np.random.uniform(x)``, i.e. ``U(x, 1)``, and
    never recognised ``_nOff`` files. This implementation draws ``U(0, x)`` as documented.)
    """
    clip = params.duration_s
    if variant is OnsetOffsetVariant.COMPLETE:
        duration = min(file_duration_s, clip)
        onset = _truncnorm(rng, *params.event_time_s)
        return 0.0, min(onset, clip - duration), duration
    if variant in (OnsetOffsetVariant.NO_ONSET, OnsetOffsetVariant.NO_ONSET_NO_OFFSET):
        source_time = float(rng.uniform(0.0, max(file_duration_s - clip, 0.0)))
        return source_time, 0.0, min(clip, file_duration_s - source_time)
    # NO_OFFSET: the event reaches the clip end, it is at least min_event_duration_s long
    earliest = max(0.0, clip - file_duration_s)
    latest = max(earliest, clip - params.min_event_duration_s)
    onset = float(rng.uniform(earliest, latest))
    return 0.0, onset, min(clip - onset, file_duration_s)


def plan_event(
    class_name: str, soundbank: SoundbankIndex, params: SoundscapeParams, rng: np.random.Generator
) -> PlannedEvent:
    """Draw a source file of ``class_name`` and its timing, SNR and pitch shift."""
    candidates = soundbank.class_files(class_name)
    label, source_file = candidates[int(rng.integers(len(candidates)))]
    source_time, event_time, event_duration = event_timing(
        onset_offset_variant(source_file), audio_duration_s(source_file), params, rng
    )
    snr = float(rng.uniform(*params.snr_db))
    pitch = params.pitch_shift_semitones
    pitch_shift = float(rng.uniform(*pitch)) if pitch is not None else None
    return PlannedEvent(
        label, source_file, source_time, event_time, event_duration, snr, pitch_shift
    )


def plan_background(
    soundbank: SoundbankIndex, params: SoundscapeParams, rng: np.random.Generator
) -> PlannedBackground:
    """Draw a background label (uniform), a file of it (uniform) and a clip-long start offset."""
    labels = sorted(soundbank.background)
    label = labels[int(rng.integers(len(labels)))]
    files = soundbank.background[label]
    source_file = files[int(rng.integers(len(files)))]
    spare_s = max(audio_duration_s(source_file) - params.duration_s, 0.0)
    return PlannedBackground(label, source_file, float(rng.uniform(0.0, spare_s)))


def plan_soundscapes(
    n_clips: int,
    soundbank: SoundbankIndex,
    label_sampler: LabelSampler,
    params: SoundscapeParams,
    seed: int,
    first_index: int = 0,
) -> list[SoundscapePlan]:
    """Plan ``n_clips`` soundscapes named ``first_index, first_index + 1, ...`` from one seed."""
    rng = np.random.default_rng(seed)
    plans = []
    for index in range(first_index, first_index + n_clips):
        classes = label_sampler(rng)
        background = plan_background(soundbank, params, rng)
        events = tuple(plan_event(c, soundbank, params, rng) for c in classes)
        plans.append(SoundscapePlan(str(index), background, events))
    return plans


def _scaper_for(plan: SoundscapePlan, soundbank: SoundbankIndex, params: SoundscapeParams):
    scaper = import_scaper()
    sc = scaper.Scaper(
        params.duration_s,
        str(soundbank.foreground_dir),
        str(soundbank.background_dir),
        random_state=0,  # every distribution below is "const": nothing is drawn by scaper
    )
    sc.sr = params.sample_rate
    sc.ref_db = params.ref_db
    sc.protected_labels = []
    bg = plan.background
    sc.add_background(
        label=("const", bg.label),
        source_file=("const", str(bg.source_file)),
        source_time=("const", bg.source_time),
    )
    for event in plan.events:
        sc.add_event(
            label=("const", event.label),
            source_file=("const", str(event.source_file)),
            source_time=("const", event.source_time),
            event_time=("const", event.event_time),
            event_duration=("const", event.event_duration),
            snr=("const", event.snr),
            pitch_shift=("const", event.pitch_shift) if event.pitch_shift is not None else None,
            time_stretch=None,
        )
    return sc


def render_soundscape(
    plan: SoundscapePlan,
    soundbank: SoundbankIndex,
    params: SoundscapeParams,
    out_dir: Path,
    jams_dir: Path | None = None,
) -> list[tuple[float, float, str]]:
    """Render one planned soundscape to ``out_dir/<name>.wav`` and ``jams_dir/<name>.jams``.

    ``jams_dir`` defaults to ``out_dir``. Files are written as ``.<name>.tmp.*`` and renamed,
    the JAMS last: a JAMS on disk means the clip is complete.

    Returns:
        The clip's raw foreground events ``(onset_s, offset_s, class)``, before cleaning.
    """
    out_dir = Path(out_dir)
    jams_dir = Path(jams_dir) if jams_dir is not None else out_dir
    wav_path, jams_path = out_dir / f"{plan.name}.wav", jams_dir / f"{plan.name}.jams"
    tmp_wav, tmp_jams = out_dir / f".{plan.name}.tmp.wav", jams_dir / f".{plan.name}.tmp.jams"
    sc = _scaper_for(plan, soundbank, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scaper warns on every clipping fix / short event
        audio, jam, _, _ = sc.generate(
            audio_path=None,
            jams_path=None,
            allow_repeated_label=True,
            allow_repeated_source=True,
            reverb=params.reverb,
            fix_clipping=params.fix_clipping,
            disable_sox_warnings=True,
            disable_instantiation_warnings=True,
        )
    annotation = jam.annotations.search(namespace="scaper")[0]
    annotation.sandbox.scaper.audio_path = str(wav_path)
    annotation.sandbox.scaper.jams_path = str(jams_path)
    sf.write(tmp_wav, np.clip(audio, -1.0, 1.0), params.sample_rate, subtype="PCM_16")
    jam.save(str(tmp_jams))
    os.replace(tmp_wav, wav_path)
    os.replace(tmp_jams, jams_path)
    return events_from_jams(jam)


def _sources(jam: jams.JAMS) -> list[tuple[str, str]]:
    """Sorted ``(label, source file name)`` of every event and background of a scaper JAMS."""
    annotation = jam.annotations.search(namespace="scaper")[0]
    return sorted((o.value["label"], Path(o.value["source_file"]).name) for o in annotation.data)


def _render_planned(
    job: tuple[SoundscapePlan, SoundbankIndex, SoundscapeParams, Path, Path],
) -> list[tuple[float, float, str]]:
    return render_soundscape(*job)


def _reuse_planned(clip: ClipJob) -> list[tuple[float, float, str]]:
    plan = clip.payload[0]
    jam = jams.load(str(clip.files[0]))
    if _sources(jam) != sorted(
        (e.label, Path(e.source_file).name) for e in (plan.background, *plan.events)
    ):
        raise DrawMismatch(
            f"{clip.files[0]} was drawn with other options (seed, soundbank, counts, or without "
            f"--fix_2021_quirks): delete {clip.files[0].parent} or choose another output folder"
        )
    return events_from_jams(jam)


def render_soundscapes(
    plans: Sequence[SoundscapePlan],
    soundbank: SoundbankIndex,
    params: SoundscapeParams,
    out_dir: Path,
    jams_dir: Path | None = None,
    jobs: int = 1,
    keep_classes: Sequence[str] | None = None,
    description: str = "soundscapes",
) -> dict[str, list[tuple[float, float, str]]]:
    """Render (or, when already complete, read back) every planned soundscape.

    A clip is complete when its JAMS and wav are on disk (:func:`render_resumable`).

    Args:
        plans: from :func:`plan_soundscapes`.
        soundbank: the soundbank the plans were drawn from.
        params: generation parameters (sample rate, ``ref_db``, reverb ...).
        out_dir: folder of the ``<name>.wav`` files.
        jams_dir: folder of the ``<name>.jams`` files (default: ``out_dir``).
        jobs: worker processes (1: render in this process).
        keep_classes: classes kept in the returned events (e.g. the 10 DESED targets, to leave
            out non-target foregrounds), or None for all.
        description: progress bar label.

    Returns:
        ``{"<name>.wav": [(onset_s, offset_s, class), ...]}``, cleaned as DESED annotations
        (:func:`~desed_task.data_generation.scaper.annotations.clean_clip_events`).
    """
    out_dir = Path(out_dir)
    jams_dir = Path(jams_dir) if jams_dir is not None else out_dir
    clips = [
        ClipJob(
            plan.name,
            (jams_dir / f"{plan.name}.jams", out_dir / f"{plan.name}.wav"),
            (plan, soundbank, params, out_dir, jams_dir),
        )
        for plan in plans
    ]
    return render_resumable(
        clips, [clip.files for clip in clips], [out_dir, jams_dir], _render_planned, _reuse_planned,
        params.duration_s, jobs=jobs, keep_classes=keep_classes, description=description,
    )  # fmt: skip
