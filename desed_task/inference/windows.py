"""Scoring a clip of any length: sliding windows, frame scores averaged where windows overlap.

The one implementation of "score a clip of any length" of the project: the inference CLI, the
Python API and ``train_sed.py --eval_from_checkpoint`` all go through :class:`LongFormScorer`,
and a live stream (``stream.py``) through its pieces: :class:`WindowCutter` (where windows start
and end, for audio pushed in pieces of any size) and :class:`FrameAverager` (how window scores
are merged, handed out as frames become final).

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


class WindowCutter:
    """Cuts audio pushed in pieces of any size into the sliding windows (see the module's
    docstring): the one home of where windows start and end.

    Args:
        window: window length in samples (None: one window of everything, at `finish`).
        hop: window hop in samples (a multiple of the frame grid; ignored without window).

    The buffer holds at most ``window + chunk`` samples: what the next window needs, and the
    piece just pushed.
    """

    def __init__(self, window: int | None, hop: int | None) -> None:
        self.window = window
        self.hop = hop
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = 0  # absolute index of buffer[0]
        self.next_start = 0  # the next window's start: no window to come covers a sample before it
        self.previous_end: int | None = None

    @property
    def received(self) -> int:
        """Samples pushed so far."""
        return self.buffer_start + len(self.buffer)

    def push(self, chunk: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add (samples,) audio; returns the (start sample, (window,) audio) windows it completes."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        self.buffer = np.concatenate([self.buffer, chunk]) if len(self.buffer) else chunk
        done: list[tuple[int, np.ndarray]] = []
        if self.window is None:
            return done
        while self.received >= self.next_start + self.window:
            offset = self.next_start - self.buffer_start
            done.append((self.next_start, self.buffer[offset : offset + self.window]))
            self.previous_end = self.next_start + self.window
            self.next_start += self.hop
            drop = min(self.next_start - self.buffer_start, len(self.buffer))
            self.buffer, self.buffer_start = self.buffer[drop:], self.buffer_start + drop
        return done

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """The last window at the end of the audio: from the next start to the end, when the
        previous window stopped before the end (or there was none)."""
        if self.previous_end is not None and self.previous_end >= self.received:
            return []
        return [(self.next_start, self.buffer[self.next_start - self.buffer_start :])]


class FrameAverager:
    """Frame scores of windows averaged over the recording's frame grid, handed out from the
    start as frames become final: the one home of how window scores are merged (sums in
    float64, divided by the number of windows that scored each frame, as float32).

    Args:
        frame_samples: samples per output frame (hop_length x net_pooling).
        n_frames: output frames of one pass over n samples (``LongFormScorer.n_frames``).

    Memory: the frames not handed out yet (a window's worth while streaming).
    """

    def __init__(self, frame_samples: int, n_frames: Callable[[int], int]) -> None:
        self.frame_samples = int(frame_samples)
        self.n_frames = n_frames
        self.first = 0  # absolute index of the first frame not handed out (sums[:, 0])
        self.sums: np.ndarray | None = None  # (n_classes, frames) float64
        self.counts = np.zeros(0, dtype=np.float32)
        self.n_total = 0  # frames scored so far (absolute)

    def add(self, start: int, n_real: int, window_scores: np.ndarray) -> None:
        """Add one window's (n_classes, n_frames) scores; ``start``: its first sample (on the
        frame grid), ``n_real``: its samples before padding (frames past them are dropped)."""
        first = start // self.frame_samples
        if first < self.first:
            raise ValueError(f"window at frame {first} scores frames already handed out (before {self.first})")
        n = min(self.n_frames(n_real), window_scores.shape[-1])
        begin, end = first - self.first, first - self.first + n
        if self.sums is None:
            self.sums = np.zeros((window_scores.shape[0], max(end, 1024)), dtype=np.float64)
        if end > self.sums.shape[1]:
            grown = max(end, 2 * self.sums.shape[1])
            self.sums = np.pad(self.sums, ((0, 0), (0, grown - self.sums.shape[1])))
        if end > len(self.counts):
            self.counts = np.pad(self.counts, (0, self.sums.shape[1] - len(self.counts)))
        self.sums[:, begin:end] += window_scores[:, :n]
        self.counts[begin:end] += 1
        self.n_total = max(self.n_total, first + n)

    def take(self, until: int) -> np.ndarray:
        """Hand out the averaged scores of frames [first, until) (until clipped to the frames
        scored) and forget them: (n_classes, frames) float32."""
        until = min(until, self.n_total)
        n = max(0, until - self.first)
        if self.sums is None:
            return np.zeros((0, 0), dtype=np.float32)
        scores = (self.sums[:, :n] / np.maximum(self.counts[:n], 1)).astype(np.float32)
        if n:
            self.sums, self.counts = self.sums[:, n:], self.counts[n:]
            self.first += n
        return scores


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
    def cutter(self) -> WindowCutter:
        """A :class:`WindowCutter` of this scorer's window and hop."""
        return WindowCutter(self.window, self.hop)

    def windows(self, chunks: Iterable[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
        """Cut a stream of audio into windows.

        Args:
            chunks: consecutive pieces of one mono waveform, each (samples,) float32.

        Yields:
            (start sample, (samples,) window); a window may share its memory with the buffer.
        """
        cutter = self.cutter()
        for chunk in chunks:
            yield from cutter.push(chunk)
        yield from cutter.finish()

    # ------------------------------------------------------------------ scores
    def _forward(self, batch: list[np.ndarray]) -> np.ndarray:
        tensor = torch.from_numpy(np.stack(batch))
        with torch.inference_mode():
            return self.forward(tensor).float().cpu().numpy()

    def _pad(self, audio: np.ndarray) -> np.ndarray:
        if len(audio) >= self.min_samples:
            return audio
        return np.pad(audio, (0, self.min_samples - len(audio)))

    def averager(self) -> FrameAverager:
        """An empty :class:`FrameAverager` on this scorer's frame grid."""
        return FrameAverager(self.frame_samples, self.n_frames)

    def add_windows(
        self,
        windows: Iterable[tuple[int, np.ndarray]],
        averager: FrameAverager,
        on_window: Callable[[int, np.ndarray], None] | None = None,
    ) -> None:
        """Score windows, ``batch_size`` consecutive ones of one padded length per forward pass,
        and add their frame scores to ``averager``.

        Args:
            windows: (start sample, (samples,) audio) with starts on multiples of frame_samples.
            averager: where the scores go (:meth:`averager`).
            on_window: called with (start, audio) of every window before it is scored (plots).
        """
        pending: list[tuple[int, int, np.ndarray]] = []

        def flush() -> None:
            if pending:
                scores = self._forward([audio for _, _, audio in pending])
                for (start, n_real, _), window_scores in zip(pending, scores):
                    averager.add(start, n_real, window_scores)
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
        averager = self.averager()
        self.add_windows(windows, averager, on_window)
        if averager.n_total == 0:
            raise ValueError("no audio to score")
        return averager.take(averager.n_total)

    def score(self, waveform: np.ndarray | torch.Tensor) -> np.ndarray:
        """(samples,) mono waveform at the model's rate -> (n_classes, n_frames) scores."""
        if isinstance(waveform, torch.Tensor):
            waveform = waveform.detach().cpu().numpy()
        waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
        if waveform.size == 0:
            raise ValueError("no audio to score (0 samples)")
        return self.score_windows(self.windows([waveform]))
