"""Scoring a clip of any length: sliding windows, frame scores averaged where windows overlap.

The one implementation of "score a clip of any length" of the project: the inference CLI, the
Python API and ``train_sed.py --eval_from_checkpoint`` all go through :class:`LongFormScorer`.

Timing. An output frame of the 2021 CRNN is ``frame_samples = hop_length * net_pooling`` samples
(1024 at 16 kHz: 64 ms); frame ``i`` covers [i, i + 1) * frame_samples. Windows start on
multiples of ``frame_samples`` (the hop is rounded to whole output frames), so the frames of every
window fall on the file's frame grid. A window of ``n`` samples gives ``(1 + n // hop_length) //
net_pooling`` frames, as one pass of the network over those ``n`` samples does; the file gets
as many frames as one pass over the whole file would.

Windows. They start at 0, hop, 2 hop, ... and go on while the previous window ended before the
end of the audio; every window is ``window`` samples long but the last, which stops at the end
of the audio (the DESED 2024 recipe's long-form split). A window shorter than ``min_samples``
(the whole clip of a file under a second) is zero-padded to it and its frames cut back to the
real length. ``window=None`` scores the audio in one pass (2021's evaluation set).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

# (batch, samples) -> (batch, n_classes, n_frames) frame probabilities
StrongForward = Callable[[torch.Tensor], torch.Tensor]


class LongFormScorer:
    """Frame scores of audio of any length with a network trained on fixed-length clips.

    Args:
        forward: (batch, samples) waveform at the model's rate -> (batch, n_classes, n_frames)
            frame probabilities (features, scaler and network).
        hop_length: STFT hop in samples (256).
        net_pooling: time pooling of the network (4).
        window: window length in samples, or None to score everything in one pass.
        hop: window hop in samples, rounded to whole output frames (at least one).
        min_samples: shorter windows are zero-padded to this length (>= the FFT size).
        batch_size: full windows per forward pass.
    """

    def __init__(
        self,
        forward: StrongForward,
        hop_length: int,
        net_pooling: int,
        window: int | None,
        hop: int | None = None,
        min_samples: int = 16000,
        batch_size: int = 8,
    ) -> None:
        self.forward = forward
        self.hop_length = int(hop_length)
        self.net_pooling = int(net_pooling)
        self.frame_samples = self.hop_length * self.net_pooling
        self.min_samples = int(min_samples)
        self.batch_size = max(1, int(batch_size))
        self.window = None if window is None else max(int(window), self.min_samples)
        if self.window is not None:
            hop = self.window if hop is None else int(hop)
            if hop > self.window:
                raise ValueError(
                    f"window hop {hop} samples is longer than the window ({self.window} samples): "
                    "frames between windows would get no score"
                )
            # whole frames, and no more than a window's frames so that no frame is left unscored
            hop_frames = min(max(1, round(hop / self.frame_samples)), self.n_frames(self.window))
            self.hop = hop_frames * self.frame_samples
        else:
            self.hop = None

    def n_frames(self, n_samples: int) -> int:
        """Output frames of one pass over ``n_samples`` samples (at least one)."""
        return max(1, (1 + n_samples // self.hop_length) // self.net_pooling)

    # ------------------------------------------------------------------ windows
    def windows(self, chunks: Iterable[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
        """Cut a stream of audio into windows.

        Args:
            chunks: consecutive pieces of one mono waveform, each (samples,) float32.

        Yields:
            (start sample, (samples,) window); a window may share its memory with the buffer.
        """
        buffer = np.zeros(0, dtype=np.float32)
        buffer_start = 0  # absolute index of buffer[0]
        start = 0  # next window's start
        previous_end = None
        for chunk in chunks:
            buffer = np.concatenate([buffer, np.asarray(chunk, dtype=np.float32).reshape(-1)])
            if self.window is None:
                continue
            while buffer_start + len(buffer) >= start + self.window:
                offset = start - buffer_start
                yield start, buffer[offset : offset + self.window]
                previous_end = start + self.window
                start += self.hop
                drop = min(start - buffer_start, len(buffer))
                buffer, buffer_start = buffer[drop:], buffer_start + drop
        total = buffer_start + len(buffer)
        if previous_end is None or previous_end < total:
            yield start, buffer[start - buffer_start :]

    # ------------------------------------------------------------------ scores
    def _forward(self, batch: list[np.ndarray]) -> np.ndarray:
        tensor = torch.from_numpy(np.stack(batch))
        with torch.inference_mode():
            return self.forward(tensor).float().cpu().numpy()

    def _pad(self, audio: np.ndarray) -> np.ndarray:
        if len(audio) >= self.min_samples:
            return audio
        return np.pad(audio, (0, self.min_samples - len(audio)))

    def score_windows(
        self, windows: Iterable[tuple[int, np.ndarray]], on_window: Callable[[int, np.ndarray], None] | None = None
    ) -> np.ndarray:
        """Average the frame scores of windows over the file's frame grid.

        Args:
            windows: (start sample, (samples,) audio) with starts on multiples of frame_samples.
            on_window: called with (start, audio) of every window before it is scored (plots).

        Returns:
            (n_classes, n_frames) float32 scores of the whole file.
        """
        sums: np.ndarray | None = None
        counts = np.zeros(0, dtype=np.float32)
        n_total = 0
        pending: list[tuple[int, int, np.ndarray]] = []

        def flush() -> None:
            nonlocal sums, counts, n_total
            if not pending:
                return
            scores = self._forward([audio for _, _, audio in pending])
            for (start, n_real, _), window_scores in zip(pending, scores):
                first = start // self.frame_samples
                n = min(self.n_frames(n_real), window_scores.shape[-1])
                end = first + n
                if sums is None:
                    sums = np.zeros((window_scores.shape[0], max(end, 1024)), dtype=np.float64)
                if end > sums.shape[1]:
                    grown = max(end, 2 * sums.shape[1])
                    sums = np.pad(sums, ((0, 0), (0, grown - sums.shape[1])))
                if end > len(counts):
                    counts = np.pad(counts, (0, sums.shape[1] - len(counts)))
                sums[:, first:end] += window_scores[:, :n]
                counts[first:end] += 1
                n_total = max(n_total, end)
            pending.clear()

        for start, audio in windows:
            if start % self.frame_samples:
                raise ValueError(f"window start {start} is not on the frame grid ({self.frame_samples} samples)")
            if on_window is not None:
                on_window(start, audio)
            padded = self._pad(audio)
            if pending and len(padded) != len(pending[0][2]):
                flush()
            pending.append((start, len(audio), padded))
            if len(pending) >= self.batch_size:
                flush()
        flush()
        if sums is None:
            raise ValueError("no audio to score")
        return (sums[:, :n_total] / np.maximum(counts[:n_total], 1)).astype(np.float32)

    def score(self, waveform: np.ndarray | torch.Tensor) -> np.ndarray:
        """(samples,) mono waveform at the model's rate -> (n_classes, n_frames) scores."""
        if isinstance(waveform, torch.Tensor):
            waveform = waveform.detach().cpu().numpy()
        waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
        if waveform.size == 0:
            raise ValueError("no audio to score (0 samples)")
        return self.score_windows(self.windows([waveform]))
