"""Reading clips for training and inference: soundfile, mono (or all channels), fixed length.

The 2021 baseline read with torchaudio, averaged channels to mono and padded short clips with
zeros; a clip longer than 10 s made the batch collation crash. Here long clips are cropped and
every failure names the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from desed_task.errors import UserError

log = logging.getLogger(__name__)


class AudioError(UserError):
    """A clip cannot be used as it is; the message names the file and the fix."""


class AudioFolderMissing(UserError):
    """A folder of clips to read (resample, separate) does not exist; the message names it."""


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of one file: sample rate (Hz), length (samples), channels."""

    path: Path
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def audio_info(path: str | Path) -> AudioInfo:
    """Read a file's header; raises `AudioError` naming the file when it is not readable audio."""
    path = Path(path)
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as err:
        raise AudioError(f"{path}: not readable audio ({err}); re-download or remove it") from err
    return AudioInfo(path, int(info.samplerate), int(info.frames), int(info.channels))


def list_wav_clips(folder: str | Path, sort: bool = True) -> list[str]:
    """File names of the folder's `.wav` clips, sorted (or in the folder's listing order, as
    2021's ``glob``); none when the folder is absent. Hidden files are the temporary outputs
    of a killed resampling or separation and are left out."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names = [p.name for p in folder.glob("*.wav") if not p.name.startswith(".")]
    return sorted(names) if sort else names


def fit_length(audio: torch.Tensor, target_len: int) -> tuple[torch.Tensor, float]:
    """Zero-pad or crop the last axis to `target_len` samples.

    Returns the audio and the fraction of `target_len` that holds real signal (1.0 when the
    clip was long enough), as the 2021 `padded_indx`.
    """
    n = audio.shape[-1]
    if n < target_len:
        audio = torch.nn.functional.pad(audio, (0, target_len - n))
        return audio, n / target_len
    return audio[..., :target_len], 1.0


def read_audio(
    path: str | Path,
    *,
    sample_rate: int | None = None,
    target_len: int | None = None,
    multisrc: bool = False,
) -> tuple[torch.Tensor, float]:
    """Read one clip as float32.

    Args:
        path: audio file.
        sample_rate: expected rate in Hz; another rate raises `AudioError` (resample the folder
            first: the training script does it for folders listed with a `_44k` twin).
        target_len: pad or crop to this many samples (None: keep the length).
        multisrc: keep all channels (separated sources) instead of averaging to mono.

    Returns:
        audio: (samples,) mono, or (channels, samples) when `multisrc`.
        valid_fraction: share of `target_len` that is real signal (1.0 when not padded).
    """
    path = Path(path)
    try:
        data, fs = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise AudioError(f"{path}: cannot read audio ({err}); re-download or remove it") from err
    if sample_rate is not None and fs != sample_rate:
        raise AudioError(
            f"{path}: sample rate {fs} Hz, expected {sample_rate} Hz; resample the folder "
            f"(desed_task.data.resample.resample_folder) or fix the config's folder"
        )
    audio = torch.from_numpy(np.ascontiguousarray(data.T))  # (channels, samples)
    if not multisrc:
        audio = audio.mean(0)
    if target_len is None:
        return audio, 1.0
    return fit_length(audio, target_len)
