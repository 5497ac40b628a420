"""Fetch the real DESED clips (AudioSet segments on YouTube) behind one small boundary.

A *clip fetcher* is a callable ``fetcher(filename, dest)`` that writes the AudioSet segment named
by ``filename`` (``Y<11-char YouTube id>_<start s>_<end s>.wav``) to ``dest`` as a 44.1 kHz wav,
or raises :class:`ClipUnavailable`. :class:`YtDlpFetcher` is the real one (the ``desed`` package
is not installable here, so it drives yt-dlp directly); tests pass a fake.

:func:`fetch_clips` never stops on a missing clip: it returns the ``(filename, error)`` rows of
the clips it could not fetch, and a clip already on disk is not fetched again, so re-running
retries only the missing ones.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from pathlib import Path

import pandas as pd
import soundfile as sf
from tqdm import tqdm

from desed_task.data.resample import resample_audio

logger = logging.getLogger(__name__)

ClipFetcher = Callable[[str, Path], None]
MISSING_COLUMNS = ["filename", "error"]


class ClipUnavailable(RuntimeError):
    """The clip cannot be fetched (video removed, private, no audio, network error...)."""


def parse_audioset_filename(filename: str) -> tuple[str, float, float]:
    """``Y<id>_<start>_<end>.wav`` -> ``(youtube_id, start_s, end_s)``; ids may contain ``_``."""
    stem = Path(filename).stem
    if not stem.startswith("Y"):
        raise ValueError(f"not an AudioSet filename: {filename}")
    youtube_id, start, end = stem[1:].rsplit("_", 2)
    return youtube_id, float(start), float(end)


@dataclass(frozen=True)
class YtDlpFetcher:
    """Download the best audio stream with yt-dlp (needs ffmpeg), cut the segment, 44.1 kHz wav.

    As the 2021 ``desed`` package (dcase_util's ``AudioContainer.load(fs=44100,
    res_type="kaiser_best", start, stop)``): the segment is cut at the stream's rate, resampled
    with kaiser_best and written as a 16-bit wav, each channel kept."""

    sample_rate: int = 44100

    def __call__(self, filename: str, dest: Path) -> None:
        try:
            import yt_dlp
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ClipUnavailable("yt-dlp is not installed (pip install yt-dlp)") from error
        youtube_id, start_s, end_s = parse_audioset_filename(filename)
        with tempfile.TemporaryDirectory(prefix="desed_yt_") as tmp:
            options = {
                "format": "bestaudio/best",
                "outtmpl": f"{tmp}/%(id)s.%(ext)s",
                "noplaylist": True,
                "quiet": True,
                "no_warnings": True,
                "postprocessors": [{"key": "FFmpegExtractAudio", "preferredcodec": "wav"}],
            }
            try:
                with yt_dlp.YoutubeDL(options) as ydl:
                    ydl.download([f"https://www.youtube.com/watch?v={youtube_id}"])
            except Exception as error:  # yt-dlp raises many types; all mean "unavailable"
                raise ClipUnavailable(str(error).splitlines()[0]) from error
            wavs = list(Path(tmp).glob("*.wav"))
            if not wavs:
                raise ClipUnavailable("no audio stream")
            audio, sr = sf.read(wavs[0], dtype="float32", always_2d=True)
        segment = audio[int(start_s * sr) : int(end_s * sr)]
        if segment.shape[0] == 0:
            raise ClipUnavailable(f"video shorter than the segment start ({start_s} s)")
        segment = resample_audio(segment, sr, self.sample_rate, "kaiser_best")
        sf.write(dest, segment, self.sample_rate, subtype="PCM_16")


def _fetch_one(fetcher: ClipFetcher, filename: str, out_dir: Path) -> tuple[str, str | None]:
    dest = out_dir / filename
    if dest.is_file():
        return filename, None
    part = out_dir / f".{Path(filename).stem}.part.wav"
    try:
        fetcher(filename, part)
        part.replace(dest)
        return filename, None
    except (KeyboardInterrupt, SystemExit):
        part.unlink(missing_ok=True)
        raise
    except Exception as error:  # one clip must never stop the others
        part.unlink(missing_ok=True)
        return filename, f"{type(error).__name__}: {error}"


def fetch_clips(
    filenames: Sequence[str],
    out_dir: Path,
    fetcher: ClipFetcher,
    jobs: int = 3,
    chunk_size: int = 10,
    description: str = "fetch",
) -> pd.DataFrame:
    """Fetch every clip not yet in ``out_dir``; return the missing ones (``filename``, ``error``).

    Args:
        filenames: AudioSet filenames (duplicates ignored).
        out_dir: destination folder.
        fetcher: the clip fetcher (see module docstring).
        jobs: parallel downloads (threads).
        chunk_size: clips handed to a thread at a time (bigger: less overhead, coarser progress).
        description: progress bar label.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".*.part.wav"):
        stale.unlink()
    unique = list(dict.fromkeys(filenames))

    def fetch(name: str) -> tuple[str, str | None]:
        return _fetch_one(fetcher, name, out_dir)

    with ThreadPool(max(1, jobs)) as pool:
        results = list(
            tqdm(
                pool.imap_unordered(fetch, unique, chunksize=max(1, chunk_size)),
                total=len(unique),
                desc=description,
            )
        )
    missing = sorted((name, error) for name, error in results if error is not None)
    return pd.DataFrame(missing, columns=MISSING_COLUMNS)
