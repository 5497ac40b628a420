"""Resample a folder of clips once (44.1 kHz DESED to 16 kHz), resumably."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from desed_task.data.audio import AudioError, audio_info

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac")


@dataclass
class ResampleReport:
    """What one `resample_folder` call did."""

    resampled: int = 0
    already_done: int = 0
    failed: list[Path] = field(default_factory=list)


def _is_complete(dst: Path, src_info, target_fs: int) -> bool:
    try:
        info = audio_info(dst)
    except AudioError:
        return False
    expected = round(src_info.frames * target_fs / src_info.sample_rate)
    return info.sample_rate == target_fs and abs(info.frames - expected) <= 1


def resample_file(src: Path, dst: Path, target_fs: int) -> None:
    """Resample one file (all channels) with soxr's high quality filter, written atomically."""
    data, fs = sf.read(str(src), dtype="float32", always_2d=True)
    if fs != target_fs:
        data = soxr.resample(data, fs, target_fs, quality="HQ")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.partial{dst.suffix}")
    sf.write(str(tmp), np.asarray(data, dtype=np.float32), target_fs, subtype="FLOAT")
    os.replace(tmp, dst)


def resample_folder(
    src: str | Path, dst: str | Path, target_fs: int = 16000, *, progress: bool = True
) -> ResampleReport:
    """Resample every audio file below `src` into the same layout below `dst`.

    Files already complete in `dst` (right rate and length) are skipped, so an interrupted run
    resumes where it stopped. An unreadable source file is logged by name and counted in the
    report's `failed`; it never stops the run.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: folder to resample does not exist")
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    report = ResampleReport()
    for path in tqdm(files, desc=f"resample {src.name} -> {target_fs} Hz", disable=not progress):
        out = dst / path.relative_to(src)
        try:
            info = audio_info(path)
            if out.exists() and _is_complete(out, info, target_fs):
                report.already_done += 1
                continue
            resample_file(path, out, target_fs)
            report.resampled += 1
        except (AudioError, RuntimeError, sf.LibsndfileError) as err:
            log.warning("resample: skipping %s (%s)", path, err)
            report.failed.append(path)
    log.info(
        "resampled %s -> %s: %d new, %d already done, %d failed",
        src, dst, report.resampled, report.already_done, len(report.failed),
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
