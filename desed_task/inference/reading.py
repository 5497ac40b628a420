"""Reading audio files of any rate, channel count and length in blocks, at the model's rate.

Channels are averaged to mono as in training (``desed_task.data.audio.read_audio``), then the
signal is resampled block by block by the resampler chosen (``desed_task.data.resample``: 2021's
kaiser_best by default, or soxr HQ): the output equals a one-shot resampling of the whole file,
and memory stays bounded by the block size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from desed_task.data.audio import AudioError
from desed_task.data.resample import check_resampler, resample_stream
from desed_task.errors import UserError

BLOCK_SECONDS = 30.0  # seconds of source audio read at once


class NoAudioFilesError(UserError):
    """No audio file under the given paths; the message names them."""


def audio_extensions() -> set[str]:
    """Lower-case suffixes (".wav", ...) of the formats libsndfile reads here."""
    return {f".{ext.lower()}" for ext in sf.available_formats()} | {".oga", ".opus", ".aif"}


def list_audio_files(paths: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """Files given by name, and the audio files under folders (recursively, sorted).

    Returns:
        (file, name) pairs: the name is the path below the folder given, or the file's name;
        outputs are written under it.

    Raises:
        NoAudioFilesError: a path does not exist, or a folder holds no audio file.
    """
    extensions = audio_extensions()
    found: dict[Path, Path] = {}
    for given in map(Path, paths):
        if given.is_dir():
            files = sorted(p for p in given.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
            if not files:
                raise NoAudioFilesError(
                    f"{given}: no audio file in this folder or below (looked for "
                    f"{', '.join(sorted(extensions))}); give audio files or a folder holding some"
                )
            found.update((f, f.relative_to(given)) for f in files)
        elif given.is_file():
            found[given] = Path(given.name)
        else:
            raise NoAudioFilesError(f"{given}: no such file or folder")
    return list(found.items())


def to_mono(block: np.ndarray) -> np.ndarray:
    """(samples, channels) -> (samples,) float32 channel average (the training mixdown)."""
    block = np.asarray(block, dtype=np.float32)
    return block if block.ndim == 1 else block.mean(axis=1, dtype=np.float32)


class AudioFile:
    """One file opened for block reading.

    Args:
        path: the file.
        target_rate: the model's sample rate in Hz.
        resampler: kaiser_best (2021, the default) or soxr_hq.

    Raises:
        AudioError: the file cannot be read or holds no sample (the message names it).
    """

    def __init__(self, path: str | Path, target_rate: int, resampler: str | None = None) -> None:
        self.path = Path(path)
        self.target_rate = int(target_rate)
        self.resampler = check_resampler(resampler)
        try:
            info = sf.info(str(self.path))
        except (RuntimeError, sf.LibsndfileError) as err:
            raise AudioError(f"{self.path}: not readable audio ({err})") from err
        self.sample_rate = int(info.samplerate)
        self.channels = int(info.channels)
        self.frames = int(info.frames)
        if self.frames <= 0 or self.sample_rate <= 0:
            raise AudioError(f"{self.path}: empty audio file (0 samples)")

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate

    def _blocks(self) -> Iterator[np.ndarray]:
        block = max(1, int(BLOCK_SECONDS * self.sample_rate))
        try:
            with sf.SoundFile(str(self.path)) as handle:
                while True:
                    data = handle.read(block, dtype="float32", always_2d=True)
                    if not len(data):
                        return
                    yield to_mono(data)
        except (RuntimeError, sf.LibsndfileError) as err:
            raise AudioError(f"{self.path}: reading failed ({err})") from err

    def chunks(self) -> Iterator[np.ndarray]:
        """Consecutive mono blocks at the model's rate, (samples,) float32 each."""
        return resample_stream(self._blocks(), self.sample_rate, self.target_rate, self.resampler)
