"""Separate every clip of a folder tree into multi-channel wavs, resumably.

Each output is written to a temporary name in its destination folder and renamed when
complete (an atomic `os.replace` on one file system), so an output under its final name is
always whole: a run killed at any point and started again skips the finished clips,
removes the stale temporary file and separates the rest, each clip once.

Differences from the 2021 `separate_folder`: it listed ``in_dir/*wav`` without recursion and
skipped the whole folder when the file counts matched (a killed run started again redid
everything, and a half-written file counted as done); a clip that could not be read stopped
the run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import soundfile as sf
from tqdm import tqdm

from desed_task.data.audio import AudioFolderMissing
from desed_task.separation.report import SeparationReport

log = logging.getLogger(__name__)

INPUT_SUFFIXES = (".wav", ".flac")
TEMP_MARKER = ".separating"


@runtime_checkable
class Separator(Protocol):
    """Anything that separates one mono waveform (`TFSeparationModel`, a test double)."""

    def separate(self, waveform: np.ndarray) -> np.ndarray:
        """(samples,) float32 -> (sources, samples) float32."""
        ...


def output_path(src_dir: Path, dst_dir: Path, clip: Path) -> Path:
    """Where the separated version of `clip` goes: same relative path below `dst_dir`, .wav."""
    return (dst_dir / clip.relative_to(src_dir)).with_suffix(".wav")


def temporary_path(final: Path) -> Path:
    """The hidden name an output is written under before it is renamed to `final`."""
    return final.with_name(f".{final.stem}{TEMP_MARKER}{final.suffix}")


def remove_stale_temporaries(dst_dir: Path) -> int:
    """Delete temporary outputs left by a killed run below `dst_dir`; returns how many.

    Only one run may write into a destination folder at a time.
    """
    if not dst_dir.is_dir():
        return 0
    stale = list(dst_dir.rglob(f".*{TEMP_MARKER}.wav"))
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d unfinished output(s) of an interrupted run in %s", len(stale), dst_dir)
    return len(stale)


def is_complete(clip: Path, out: Path, n_sources: int | None) -> bool:
    """Whether `out` is a finished separation of `clip`: readable, same length, and
    `n_sources` channels when the separator says how many it makes."""
    if not out.is_file():
        return False
    try:
        out_info, clip_info = sf.info(str(out)), sf.info(str(clip))
    except (RuntimeError, sf.LibsndfileError):
        return False
    if out_info.frames != clip_info.frames or out_info.samplerate != clip_info.samplerate:
        return False
    return n_sources is None or out_info.channels == n_sources


def read_mono(clip: Path, expected_sample_rate: int | None) -> tuple[np.ndarray, int]:
    """Read `clip` as float32 (samples,), channels averaged as in 2021; returns (audio, Hz)."""
    data, fs = sf.read(str(clip), dtype="float32", always_2d=True)
    if expected_sample_rate is not None and fs != expected_sample_rate:
        raise ValueError(
            f"sample rate {fs} Hz, the separation model expects {expected_sample_rate} Hz "
            f"(resample the folder first)"
        )
    if data.shape[0] == 0:
        raise ValueError("empty file (0 samples)")
    return data.mean(axis=1), fs


def write_sources(out: Path, sources: np.ndarray, fs: int, n_samples: int) -> None:
    """Write (sources, samples) as a (samples, sources) float wav at `out`, atomically (a
    temporary name in the same folder, renamed when whole)."""
    sources = np.asarray(sources, dtype=np.float32)
    if sources.ndim != 2 or sources.shape[1] != n_samples:
        raise ValueError(f"separator returned shape {sources.shape}, expected (sources, {n_samples})")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(out)
    try:
        sf.write(str(tmp), sources.T, fs, format="WAV", subtype="FLOAT")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def separate_clip(separator: Separator, clip: Path, out: Path, expected_sample_rate: int | None):
    """Separate one clip and write (samples, sources) float wav at `out`, atomically."""
    mono, fs = read_mono(clip, expected_sample_rate)
    write_sources(out, separator.separate(mono), fs, mono.shape[0])


def short_reason(err: BaseException, limit: int = 300) -> str:
    """First line of an error (TensorFlow's run into pages), with its type."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:limit] if lines else ''}"


def list_clips(src_dir: Path) -> list[Path]:
    """Audio files below `src_dir`, sorted, hidden (temporary) files left out."""
    return sorted(
        p
        for p in src_dir.rglob("*")
        if p.suffix.lower() in INPUT_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def separate_folder(
    separator: Separator,
    src_dir: str | Path,
    dst_dir: str | Path,
    *,
    expected_sample_rate: int | None = 16000,
    progress: bool = True,
    batch_size: int | None = None,
) -> SeparationReport:
    """Separate every clip below `src_dir` into the same layout below `dst_dir`.

    Args:
        separator: has `separate((samples,)) -> (sources, samples)`; its `n_sources`
            attribute, when present, is used to check existing outputs; with
            `separate_batch((batch, samples)) -> (batch, sources, samples)` consecutive clips of
            one length are separated together.
        src_dir: folder of mono (or multi-channel, averaged) clips at `expected_sample_rate`.
        dst_dir: created if needed; gets one float32 wav per clip, one channel per source, same
            sample rate and length as the clip.
        expected_sample_rate: a clip at another rate fails (None: accept any rate).
        progress: show a tqdm progress bar.
        batch_size: clips per `separate_batch` call (None: the separator's `batch_size`, else 1).
            Each clip's output is still written on its own, atomically.

    Returns:
        The counts; a clip that fails is logged by name, counted in `failed` and skipped.
    """
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    if not src_dir.is_dir():
        raise AudioFolderMissing(f"{src_dir}: folder to separate does not exist")
    remove_stale_temporaries(dst_dir)
    n_sources = getattr(separator, "n_sources", None)
    batch_size = max(1, int(batch_size or getattr(separator, "batch_size", 1) or 1))
    batched = batch_size > 1 and hasattr(separator, "separate_batch")
    report = SeparationReport()
    clips = list_clips(src_dir)
    bar = tqdm(clips, desc=f"separate {src_dir.name}", unit="clip", disable=not progress)
    pending: list[tuple[Path, Path, np.ndarray, int]] = []  # clip, output, mono, Hz

    def fail(clip: Path, err: BaseException) -> None:
        reason = short_reason(err)
        log.warning("separation: skipping %s (%s)", clip, reason)
        report.failed[clip] = reason
        bar.set_postfix(failed=len(report.failed))

    def flush() -> None:
        if not pending:
            return
        try:
            separated = separator.separate_batch(np.stack([mono for _, _, mono, _ in pending]))
        except Exception as err:  # noqa: BLE001 - the batch's clips fail, the run goes on
            for clip, *_ in pending:
                fail(clip, err)
            pending.clear()
            return
        for (clip, out, mono, fs), sources in zip(pending, separated):
            try:
                write_sources(out, sources, fs, mono.shape[0])
                report.separated += 1
            except Exception as err:  # noqa: BLE001
                fail(clip, err)
        pending.clear()

    for clip in bar:
        out = output_path(src_dir, dst_dir, clip)
        try:
            if is_complete(clip, out, n_sources):
                report.already_done += 1
                continue
            if not batched:
                separate_clip(separator, clip, out, expected_sample_rate)
                report.separated += 1
                continue
            mono, fs = read_mono(clip, expected_sample_rate)
        except Exception as err:  # noqa: BLE001 - one bad clip must not stop the run
            fail(clip, err)
            continue
        if pending and (mono.shape[0] != pending[0][2].shape[0]):
            flush()
        pending.append((clip, out, mono, fs))
        if len(pending) >= batch_size:
            flush()
    flush()
    log.info(
        "separated %s -> %s: %d new, %d already done, %d failed",
        src_dir,
        dst_dir,
        report.separated,
        report.already_done,
        len(report.failed),
    )
    return report
