"""The three kinds of DESED clip sets: strongly labelled, weakly labelled, unlabelled.

Every item is a dict:
    audio: (samples,) mono float32, or (1 + n_sources, samples) with the mixture first when the
        set reads separated sources too (zeros with ``read_mixture=False``: the 2021 ensemble
        input, the sum of the sources' mels, needs only the sources).
    strong_targets: (n_classes, n_frames) frame labels (zeros for weak and unlabelled clips).
    weak_targets: (n_classes,) clip labels (the union of the events for strong clips).
    label_type: LabelType of the set, so batches are split by what a clip is, not by its path.
    valid_fraction: share of the fixed length that is real signal (1.0 unless padded).
    filename: the clip's file name.
    embeddings: only for a set given an embeddings reader (the 2023 CRNN): the clip's
        pretrained embeddings, (dim, tokens) frame or (dim,) global, float32.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from desed_task.data.audio import AudioError, audio_info, list_wav_clips, read_audio
from desed_task.data.embeddings_reader import EmbeddingsReader
from desed_task.errors import UserError
from desed_task.sets import LabelType

log = logging.getLogger(__name__)


class EmptySetError(UserError):
    """A set has no usable clip left; the message names the folder and the fix."""


class ClipSet(Dataset):
    """Clips of one folder, read at `sample_rate`, padded or cropped to `clip_seconds` (None:
    at their own length).

    Clips listed but absent from the folder are dropped and kept in `missing`; with
    `check_audio`, clips whose header cannot be read are dropped into `unreadable`, clips not
    longer than `shortest_seconds[name]` (what their metadata says, see
    `tables.shortest_audio_seconds`) into `truncated`, multi-channel clips are counted in
    `mixed_down` (averaged to mono as in 2021), and a wrong sample rate stops with an
    `AudioError` naming the file. With `embeddings` (a reader of the set's file) each item
    also holds the clip's embeddings; a kept clip without any stops with an `EmbeddingsError`
    naming it and the file.
    """

    label_type: LabelType

    def __init__(
        self,
        name: str,
        folder: str | Path,
        filenames: Sequence[str],
        n_classes: int,
        n_frames: int,
        *,
        sample_rate: int = 16000,
        clip_seconds: float | None = 10.0,
        sources_folder: str | Path | None = None,
        read_mixture: bool = True,
        check_audio: bool = False,
        shortest_seconds: Mapping[str, float] | None = None,
        embeddings: EmbeddingsReader | None = None,
    ) -> None:
        self.name = name
        self.folder = Path(folder)
        self.sources_folder = Path(sources_folder) if sources_folder else None
        self.read_mixture = read_mixture
        self.sample_rate = sample_rate
        # None: clips keep their own length (2021's evaluation set, one clip per batch)
        self.target_len = None if clip_seconds is None else int(round(clip_seconds * sample_rate))
        self.n_classes = n_classes
        self.n_frames = n_frames
        if not self.folder.is_dir():
            raise EmptySetError(f"{name}: audio folder {self.folder} does not exist")
        on_disk = set(os.listdir(self.folder))
        if self.sources_folder is not None:
            on_disk &= set(os.listdir(self.sources_folder)) if self.sources_folder.is_dir() else set()
        self.missing = [f for f in filenames if f not in on_disk]
        kept = [f for f in filenames if f in on_disk]
        self.unreadable: list[str] = []
        self.truncated: dict[str, str] = {}  # name -> what is too short
        self.mixed_down = 0
        if check_audio:
            kept = self._check_headers(kept, shortest_seconds or {})
        if not kept:
            raise EmptySetError(
                f"{name}: no usable clip in {self.folder} ({len(self.missing)} listed clips are "
                f"missing, {len(self.unreadable)} unreadable, {len(self.truncated)} truncated); "
                f"check the config's data paths or run generate_dcase_task4_2021.py"
            )
        self.filenames = kept
        self.embeddings = embeddings
        if embeddings is not None:
            embeddings.check_covers(kept, name)

    def _check_headers(self, filenames: list[str], shortest_seconds: Mapping[str, float]) -> list[str]:
        kept = []
        for name in filenames:
            try:
                info = audio_info(self.folder / name)
            except AudioError as err:
                log.warning("%s: skipping %s", self.name, err)
                self.unreadable.append(name)
                continue
            if info.sample_rate != self.sample_rate:
                raise AudioError(
                    f"{info.path}: sample rate {info.sample_rate} Hz, expected {self.sample_rate} Hz; "
                    f"point the config at the 16 kHz folder or give its `_44k` twin so it is resampled"
                )
            if name in shortest_seconds and info.duration <= shortest_seconds[name]:
                self.truncated[name] = f"{info.duration:g} s of audio, its metadata needs more than {shortest_seconds[name]:g} s"
                continue
            self.mixed_down += info.channels > 1
            kept.append(name)
        return kept

    def __len__(self) -> int:
        return len(self.filenames)

    def _audio(self, filename: str) -> tuple[torch.Tensor, float]:
        if self.sources_folder is None:
            return read_audio(self.folder / filename, sample_rate=self.sample_rate, target_len=self.target_len)
        sources, valid = read_audio(
            self.sources_folder / filename,
            sample_rate=self.sample_rate,
            target_len=self.target_len,
            multisrc=True,
        )
        if not self.read_mixture:  # 2021 read the separated files only: the mixture channel stays empty
            return torch.cat([torch.zeros_like(sources[:1]), sources], 0), valid
        audio, valid = read_audio(
            self.folder / filename, sample_rate=self.sample_rate, target_len=self.target_len
        )
        return torch.cat([audio[None], sources], 0), valid

    def _targets(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(self.n_classes, self.n_frames), torch.zeros(self.n_classes)

    def __getitem__(self, index: int) -> dict:
        filename = self.filenames[index]
        audio, valid = self._audio(filename)
        strong, weak = self._targets(index)
        item = {
            "audio": audio,
            "strong_targets": strong,
            "weak_targets": weak,
            "label_type": int(self.label_type),
            "valid_fraction": valid,
            "filename": filename,
        }
        if self.embeddings is not None:
            item["embeddings"] = self.embeddings.row(filename)
        return item


class StronglyLabeledSet(ClipSet):
    """Clips with timed events (synthetic soundscapes, the dev-test set).

    Args:
        events: table with filename, onset, offset, event_label (see `tables.read_strong_table`).
        encoder: a `ManyHotEncoder` giving the frame targets.
        extra_clips: clips without events that `events` does not list (e.g. listed only in
            the durations table), after those of `events`.
    """

    label_type = LabelType.STRONG

    def __init__(
        self, name: str, folder: str | Path, events: pd.DataFrame, encoder, extra_clips: Sequence[str] = (), **kwargs
    ) -> None:
        filenames = list(dict.fromkeys([*events["filename"], *extra_clips]))
        super().__init__(name, folder, filenames, len(encoder.labels), encoder.n_frames, **kwargs)
        labelled = events[events["event_label"].notna()]
        by_clip = dict(tuple(labelled.groupby("filename", sort=False)))
        empty = np.zeros((encoder.n_frames, len(encoder.labels)), dtype=np.float32)
        self._strong = [
            torch.from_numpy(
                np.asarray(encoder.encode_strong_df(by_clip[f]), dtype=np.float32).T.copy()
                if f in by_clip
                else empty.T.copy()
            )
            for f in self.filenames
        ]

    def _targets(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        strong = self._strong[index]
        return strong, strong.amax(-1)


class WeaklyLabeledSet(ClipSet):
    """Clips with clip-level labels only (DESED weak set).

    Args:
        clips: table with filename, event_labels (list of class names per clip).
    """

    label_type = LabelType.WEAK

    def __init__(self, name: str, folder: str | Path, clips: pd.DataFrame, encoder, **kwargs) -> None:
        super().__init__(
            name, folder, list(clips["filename"]), len(encoder.labels), encoder.n_frames, **kwargs
        )
        labels = dict(zip(clips["filename"], clips["event_labels"]))
        self._weak = [
            torch.as_tensor(np.asarray(encoder.encode_weak(labels[f]), dtype=np.float32))
            for f in self.filenames
        ]

    def _targets(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(self.n_classes, self.n_frames), self._weak[index]


class UnlabeledSet(ClipSet):
    """Every audio file of a folder, without labels (in-domain unlabelled, evaluation set).

    The clips are sorted by name (``sort=True``, ``data.sort_unlabeled``'s default): a seeded
    permutation then picks the same clips on every disk. ``sort=False`` keeps the folder's
    listing order, as 2021's ``glob`` gave them; that order is the file system's (on ext4 a
    per-file-system hash), so the same files on another disk gave 2021 other batches.
    """

    label_type = LabelType.UNLABELED

    def __init__(self, name: str, folder: str | Path, encoder, sort: bool = True, **kwargs) -> None:
        folder = Path(folder)
        filenames = list_wav_clips(folder, sort=sort)
        super().__init__(name, folder, filenames, len(encoder.labels), encoder.n_frames, **kwargs)
