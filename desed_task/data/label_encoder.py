"""Many-hot encoding of weak (clip) and strong (onset/offset) labels on the network's frame grid."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .classes import DESED_CLASSES


class ManyHotEncoder:
    """Encode event labels as many-hot vectors (weak) or frame x class matrices (strong).

    The strong grid is the CRNN's output grid: one frame every ``frame_hop * net_pooling``
    samples, ``n_frames = int(int(audio_len * fs / frame_hop) / net_pooling)`` frames
    (156 for the 2021 settings, 0.064 s each). As in 2021, an event covers the frames from
    ``int(onset / frame_step)`` up to, not including, ``ceil(offset / frame_step)``, both
    clipped to [0, n_frames].

    Args:
        labels: class names, in the order of the network outputs.
        audio_len: clip length in seconds.
        frame_len: STFT window length in samples (kept for the record, unused as in 2021).
        frame_hop: STFT hop in samples.
        net_pooling: time pooling factor of the network.
        fs: sample rate in Hz.
    """

    def __init__(
        self,
        labels: Sequence[str] = DESED_CLASSES,
        audio_len: float = 10,
        frame_len: int = 2048,
        frame_hop: int = 256,
        net_pooling: int = 4,
        fs: int = 16000,
    ):
        self.labels = [str(label) for label in labels]
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"ManyHotEncoder: duplicate labels in {self.labels}")
        self._index = {label: i for i, label in enumerate(self.labels)}
        self.audio_len = audio_len
        self.frame_len = frame_len
        self.frame_hop = frame_hop
        self.net_pooling = net_pooling
        self.fs = fs
        self.n_frames = int(int(audio_len * fs / frame_hop) / net_pooling)

    @classmethod
    def from_config(cls, config: dict) -> ManyHotEncoder:
        """The encoder of a training config, as the 2021 recipe built it (the DESED classes)."""
        return cls(
            labels=list(DESED_CLASSES),
            audio_len=config["data"]["audio_max_len"],
            frame_len=config["feats"]["n_filters"],
            frame_hop=config["feats"]["hop_length"],
            net_pooling=config["data"]["net_subsample"],
            fs=config["data"]["fs"],
        )

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def frame_step(self) -> float:
        """Duration of one output frame in seconds (0.064 for the 2021 settings)."""
        return self.frame_hop * self.net_pooling / self.fs

    # ------------------------------------------------------------------------------ helpers
    def class_indices(self, labels: Iterable[str]) -> np.ndarray:
        """Indices of ``labels`` in :attr:`labels`; ValueError naming any unknown label."""
        labels = list(labels)
        unknown = sorted({label for label in labels if label not in self._index})
        if unknown:
            raise ValueError(
                f"ManyHotEncoder: unknown event label(s) {unknown}; known: {self.labels}"
            )
        return np.array([self._index[label] for label in labels], dtype=np.int64)

    def _time_to_frame(self, seconds: np.ndarray) -> np.ndarray:
        # same operation order as 2021 so that float rounding at frame edges agrees
        frames = np.asarray(seconds, dtype=np.float64) * self.fs / self.frame_hop
        return np.clip(frames / self.net_pooling, 0, self.n_frames)

    def _frame_to_time(self, frames: np.ndarray) -> np.ndarray:
        seconds = (
            np.asarray(frames, dtype=np.float64) * self.net_pooling / (self.fs / self.frame_hop)
        )
        return np.clip(seconds, 0, self.audio_len)

    # ---------------------------------------------------------------------------- encoding
    def encode_weak(self, labels: Iterable[str] | str | pd.DataFrame) -> np.ndarray:
        """Clip-level many-hot vector.

        Args:
            labels: event labels (repeats allowed), a comma-separated string
                ("Dog,Speech"), or a DataFrame with an ``event_label`` column. Missing
                values (NaN/None) and empty strings are skipped.

        Returns:
            (n_classes,) float32, 1 for each present class.
        """
        if isinstance(labels, pd.DataFrame):
            labels = labels["event_label"] if "event_label" in labels.columns else []
        elif isinstance(labels, str):
            labels = labels.split(",")
        present = [label for label in labels if not _is_missing(label)]
        encoded = np.zeros(self.n_classes, dtype=np.float32)
        encoded[self.class_indices(present)] = 1.0
        return encoded

    def encode_strong_df(self, label_df: pd.DataFrame) -> np.ndarray:
        """Frame-level many-hot matrix of one clip's events.

        Args:
            label_df: rows with ``onset`` and ``offset`` in seconds and ``event_label``;
                rows whose event_label is missing are skipped (clips without events).

        Returns:
            (n_frames, n_classes) float32, 1 where a class is active.
        """
        missing = {"onset", "offset", "event_label"} - set(label_df.columns)
        if missing:
            raise ValueError(
                f"ManyHotEncoder.encode_strong_df: missing column(s) {sorted(missing)}"
            )
        events = label_df[label_df["event_label"].notna()]
        encoded = np.zeros((self.n_frames, self.n_classes), dtype=np.float32)
        if events.empty:
            return encoded
        classes = self.class_indices(events["event_label"])
        onsets = self._time_to_frame(events["onset"].to_numpy()).astype(np.int64)
        offsets = np.ceil(self._time_to_frame(events["offset"].to_numpy())).astype(np.int64)
        frames = np.arange(self.n_frames)
        # (n_events, n_frames): frames covered by each event, offset frame excluded
        active = (frames >= onsets[:, None]) & (frames < offsets[:, None])
        one_hot = np.eye(self.n_classes, dtype=np.float32)[classes]  # (n_events, n_classes)
        encoded[(active.T.astype(np.float32) @ one_hot) > 0] = 1.0
        return encoded

    # ---------------------------------------------------------------------------- decoding
    def decode_weak(self, encoded: Sequence[float] | np.ndarray) -> list[str]:
        """Class names whose entry of a (n_classes,) binary vector is 1."""
        encoded = np.asarray(encoded)
        return [self.labels[i] for i in np.flatnonzero(encoded == 1)]

    def decode_strong(self, encoded: np.ndarray) -> list[tuple[str, float, float]]:
        """Events of a binary (n_frames, n_classes) matrix.

        Each run of consecutive non-zero frames of a class becomes
        ``(label, onset_s, offset_s)`` with times = frame index * frame_step, clipped to
        [0, audio_len]. Events are ordered by class, then by onset, as in 2021.
        """
        active = np.asarray(encoded).astype(bool)
        if active.ndim != 2 or active.shape[1] != self.n_classes:
            raise ValueError(
                f"ManyHotEncoder.decode_strong: expected (frames, {self.n_classes}), "
                f"got {active.shape}"
            )
        # pad with inactive frames so that every run has a rising and a falling edge
        padded = np.pad(active.T.astype(np.int8), ((0, 0), (1, 1)))
        edges = np.diff(padded, axis=1)  # (n_classes, n_frames + 1)
        on_class, on_frame = np.nonzero(edges == 1)
        _, off_frame = np.nonzero(edges == -1)  # same class order, one falling edge per run
        onsets = self._frame_to_time(on_frame)
        offsets = self._frame_to_time(off_frame)
        return [
            (self.labels[c], float(on), float(off)) for c, on, off in zip(on_class, onsets, offsets)
        ]

    # -------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Constructor arguments, plain Python types (fits in a checkpoint or yaml)."""
        return {
            "labels": list(self.labels),
            "audio_len": self.audio_len,
            "frame_len": self.frame_len,
            "frame_hop": self.frame_hop,
            "net_pooling": self.net_pooling,
            "fs": self.fs,
        }

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, Any]) -> ManyHotEncoder:
        """Rebuild an encoder saved with :meth:`state_dict`."""
        return cls(**state_dict)

    def __repr__(self) -> str:
        return (
            f"ManyHotEncoder(n_classes={self.n_classes}, n_frames={self.n_frames}, "
            f"frame_step={self.frame_step:g} s)"
        )


def _is_missing(label: Any) -> bool:
    if isinstance(label, str):
        return label == ""
    return bool(pd.isna(label))
