"""Resampling: the one place that chooses the resampler, and folders resampled once, resumably.

``data.resampler`` (``--resampler`` for inference) picks it: ``kaiser_best`` (default), the
filter 2021 resampled with (``librosa.resample`` of librosa 0.8, resampy 0.2.2's kaiser_best; see
``kaiser_best.py``), or ``soxr_hq``, soxr's high-quality filter (faster, cut-off nearer 8 kHz).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from desed_task.config import ConfigError
from desed_task.data.audio import AudioError, AudioFolderMissing, audio_info
from desed_task.data.kaiser_best import KaiserBestStream, resample_kaiser_best
from desed_task.threads import available_cores

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac")
MARKER = ".resampler"
"""File of a resampled folder naming the resampler its clips were made with."""
SOXR_QUALITY = "HQ"


RESAMPLERS = ("kaiser_best", "soxr_hq")
"""Values of ``data.resampler`` and ``--resampler``: resampy 0.2.2's kaiser_best, as 2021
resampled (the default, also for null), or soxr's high-quality filter."""
DEFAULT_RESAMPLER = "kaiser_best"


def check_config_resampler(config: dict, source: str) -> None:
    """Refuse a config whose ``data.resampler`` is none of `RESAMPLERS` (null: the default).
    Every command that reads the key calls this before any work.

    Raises:
        ConfigError: naming the file and the key.
    """
    name = (config.get("data") or {}).get("resampler")
    if name not in (None, *RESAMPLERS):
        raise ConfigError(f"{source}: 'data.resampler' must be kaiser_best (2021) or soxr_hq, got {name!r}")


def check_resampler(name: str | None) -> str:
    """The resampler's name (None: the default, kaiser_best); raises ValueError for another."""
    name = DEFAULT_RESAMPLER if name is None else name
    if name not in RESAMPLERS:
        raise ValueError(f"resampler must be one of {', '.join(RESAMPLERS)}, got {name!r}")
    return name


def upsampling_note(source: str | Path, rate: int, model_rate: int) -> str | None:
    """The one line logged for audio below the model's rate (None at or above it): upsampled
    audio has an empty band above ``rate / 2`` Hz, where the model, trained on ``model_rate``
    content, expects sound (an 8 kHz recording can be scored as a class whose energy lies there).

    Args:
        source: the file (or the array's name), for the message.
        rate: the audio's sample rate, Hz.
        model_rate: the model's (the training audio's) sample rate, Hz.
    """
    if int(rate) >= int(model_rate):
        return None
    return (
        f"{source}: sampled at {int(rate)} Hz, below the {int(model_rate)} Hz the model was trained on: "
        f"upsampled, it has nothing above {rate / 2000:g} kHz where the training audio had sound "
        f"(up to {model_rate / 2000:g} kHz), which can change the detections; record at {int(model_rate)} Hz "
        f"or more when you can"
    )


def resample_audio(
    audio: np.ndarray, orig_rate: int, target_rate: int, resampler: str | None = None
) -> np.ndarray:
    """Resample along the first axis.

    Args:
        audio: (samples,) or (samples, channels) float.
        orig_rate, target_rate: Hz.
        resampler: see :data:`RESAMPLERS` (None: kaiser_best).

    Returns:
        float32 of the same layout at ``target_rate`` (a copy when the rates are equal).
    """
    resampler = check_resampler(resampler)
    audio = np.asarray(audio, dtype=np.float32)
    if orig_rate == target_rate:
        return audio.copy()
    if resampler == "kaiser_best":
        return resample_kaiser_best(audio, orig_rate, target_rate)
    import soxr

    return np.asarray(soxr.resample(audio, orig_rate, target_rate, quality=SOXR_QUALITY), dtype=np.float32)


class StreamResampler:
    """Resample a mono signal pushed in blocks of any size (a live stream): the outputs of
    `push` and `finish`, concatenated, equal :func:`resample_audio` of the whole signal.

    Args:
        orig_rate, target_rate: Hz (equal rates pass the blocks through).
        resampler: see :data:`RESAMPLERS` (None: kaiser_best).

    Shapes:
        push: (samples,) float at ``orig_rate`` -> (outputs,) float32 at ``target_rate``, the
        outputs it completes (maybe none; kaiser_best holds back the filter's reach, 177 input
        samples at 44.1 -> 16 kHz, soxr its own internal block).
    """

    def __init__(self, orig_rate: int, target_rate: int, resampler: str | None = None) -> None:
        self.resampler = check_resampler(resampler)
        self.orig_rate, self.target_rate = int(orig_rate), int(target_rate)
        self._kaiser = self._soxr = None
        if self.orig_rate == self.target_rate:
            return
        if self.resampler == "kaiser_best":
            self._kaiser = KaiserBestStream(self.orig_rate, self.target_rate)
        else:
            import soxr

            self._soxr = soxr.ResampleStream(self.orig_rate, self.target_rate, 1, dtype="float32", quality=SOXR_QUALITY)

    def push(self, block: np.ndarray) -> np.ndarray:
        """(samples,) input -> the (outputs,) float32 samples it completes."""
        block = np.ascontiguousarray(block, dtype=np.float32).reshape(-1)
        if self._kaiser is not None:
            return self._kaiser.push(block)[:, 0]
        if self._soxr is not None:
            return np.asarray(self._soxr.resample_chunk(block, last=False), dtype=np.float32)
        return block

    def finish(self) -> np.ndarray:
        """The remaining (outputs,) float32 samples at the end of the signal."""
        if self._kaiser is not None:
            return self._kaiser.finish()[:, 0]
        if self._soxr is not None:
            return np.asarray(self._soxr.resample_chunk(np.zeros(0, dtype=np.float32), last=True), dtype=np.float32)
        return np.zeros(0, dtype=np.float32)


def resample_stream(
    blocks: Iterable[np.ndarray], orig_rate: int, target_rate: int, resampler: str | None = None
) -> Iterator[np.ndarray]:
    """Resample a signal read in mono (samples,) blocks; the blocks yielded (float32, none
    empty) concatenate to :func:`resample_audio` of the whole signal, and memory stays bounded
    by the block size."""
    if orig_rate == target_rate:
        check_resampler(resampler)
        yield from blocks
        return
    stream = StreamResampler(orig_rate, target_rate, resampler)
    for block in blocks:
        out = stream.push(block)
        if len(out):
            yield out
    tail = stream.finish()
    if len(tail):
        yield tail


@dataclass
class ResampleReport:
    """What one `resample_folder` call did."""

    resampled: int = 0
    already_done: int = 0
    failed: list[Path] = field(default_factory=list)
    upsampled: list[Path] = field(default_factory=list)
    """Source files below the target rate (see `upsampling_note`), each logged once."""


def _is_complete(dst: Path, src_info, target_fs: int) -> bool:
    try:
        info = audio_info(dst)
    except AudioError:
        return False
    expected = round(src_info.frames * target_fs / src_info.sample_rate)
    return info.sample_rate == target_fs and abs(info.frames - expected) <= 1


def resample_file(src: Path, dst: Path, target_fs: int, resampler: str | None = None) -> None:
    """Resample one file (each channel), written atomically: a wav as 32-bit float, as 2021's
    ``torchaudio.save`` of a float32 tensor (a flac as 24-bit, flac's most)."""
    data, fs = sf.read(str(src), dtype="float32", always_2d=True)
    data = resample_audio(data, fs, target_fs, resampler)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.partial{dst.suffix}")
    subtype = "PCM_24" if dst.suffix.lower() == ".flac" else "FLOAT"
    sf.write(str(tmp), data, target_fs, subtype=subtype)
    os.replace(tmp, dst)


def _made_with(dst: Path) -> str | None:
    try:
        return (dst / MARKER).read_text().strip() or None
    except OSError:
        return None


def _write_marker(dst: Path, resampler: str) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    (dst / MARKER).write_text(f"{resampler}\n")


def resample_folder(
    src: str | Path,
    dst: str | Path,
    target_fs: int = 16000,
    *,
    resampler: str | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> ResampleReport:
    """Resample every audio file below `src` into the same layout below `dst`.

    Files already complete in `dst` (right rate and length, made with the same resampler: the
    folder's ``.resampler`` file says which) are skipped, so an interrupted run resumes where
    it stopped; clips made with another resampler, or an unknown one, are all made again. An
    unreadable source file is logged by name and counted in the report's `failed`; it never
    stops the run. Files are resampled in `workers` threads (default: the cores available).
    """
    src, dst = Path(src), Path(dst)
    resampler = check_resampler(resampler)
    if not src.is_dir():
        raise AudioFolderMissing(f"{src}: folder to resample does not exist")
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    made_with = _made_with(dst)
    has_clips = dst.is_dir() and any(
        p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".") for p in dst.rglob("*")
    )
    redo = has_clips and made_with != resampler
    if redo:
        log.warning(
            "%s was resampled with %s: resampling it again with %s (data.resampler)",
            dst, made_with or "an unknown resampler", resampler,
        )
    elif made_with != resampler:
        _write_marker(dst, resampler)
    def one_file(path: Path) -> tuple[str | Exception, int | None]:
        out = dst / path.relative_to(src)
        try:
            info = audio_info(path)
            if not redo and out.exists() and _is_complete(out, info, target_fs):
                return "done", info.sample_rate
            resample_file(path, out, target_fs, resampler)
            return "new", info.sample_rate
        except (AudioError, RuntimeError, sf.LibsndfileError) as err:
            return err, None

    report = ResampleReport()
    # files in parallel threads: the kaiser_best loop and soxr release the GIL, each file's
    # numbers are those of a sequential run
    with ThreadPoolExecutor(max_workers=workers or available_cores()) as pool:
        outcomes = pool.map(one_file, files)
        for path, (outcome, rate) in tqdm(
            zip(files, outcomes), total=len(files), desc=f"resample {src.name} -> {target_fs} Hz",
            disable=not progress,
        ):
            note = None if rate is None else upsampling_note(path, rate, target_fs)
            if note is not None:
                log.warning("%s", note)
                report.upsampled.append(path)
            if outcome == "done":
                report.already_done += 1
            elif outcome == "new":
                report.resampled += 1
            else:
                log.warning("resample: skipping %s (%s)", path, outcome)
                report.failed.append(path)
    if redo:
        _write_marker(dst, resampler)
    log.info(
        "resampled %s -> %s: %d new, %d already done, %d failed%s",
        src, dst, report.resampled, report.already_done, len(report.failed),
        f", {len(report.upsampled)} below {target_fs} Hz (upsampled)" if report.upsampled else "",
    )
    return report


def write_durations(folder: str | Path, out_tsv: str | Path) -> Path:
    """Write `filename<TAB>duration` (seconds) for every audio file of `folder`, atomically
    (a killed run leaves the previous file or none, never half of one). Hidden files (the
    temporary outputs of a killed run) are left out."""
    import pandas as pd

    folder, out_tsv = Path(folder), Path(out_tsv)
    rows = [
        (p.name, audio_info(p).duration)
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
    ]
    out_tsv.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_tsv.with_name(f".{out_tsv.name}.partial")
    pd.DataFrame(rows, columns=["filename", "duration"]).to_csv(tmp, sep="\t", index=False)
    os.replace(tmp, out_tsv)
    return out_tsv
