"""Detection on a live stream: audio pushed in chunks of any size, events returned as they
become final, equal to the offline sliding-window inference of the same audio.

    stream = detector.stream(44100, window=2.0, hop=1.0)   # SoundEventDetector.stream
    for chunk in chunks:                                   # (samples,) or (samples, channels)
        print(stream.push(chunk))                          # events final since the last push
    print(stream.close())                                  # the rest, at the end of the stream

The stream runs the offline path's pieces in push form, so its numbers are the offline ones:
``StreamResampler`` (the rate, as ``resample_stream``), ``WindowCutter`` (where windows start
and end), ``LongFormScorer.add_windows`` (the forward passes) and ``FrameAverager`` (window
scores averaged over the frame grid), then the 2021 decoding (``median_filter_scores``, score >
threshold, the regions of ``threshold_regions``, times by ``regions_in_seconds``).

Finality and latency. With windows of W samples every hop H (both multiples of the output frame
of F samples, 1024 = 64 ms at 16 kHz), a frame is final once the next window to be scored starts
after it: no later window covers it, so its average will not change. Frame f is final once the
window starting at floor(f F / H) H has been scored, i.e. once the stream holds
floor(f F / H) H + W samples. The median filter of m frames (per class: the longest) reads
r = m - 1 - m // 2 frames to the right (3 for 2021's 7), so filtered frame g is final once raw
frame g + r is. An event of frames [a, b) ends where filtered frame b is inactive: it is final
once frame b + r is, i.e. when the stream holds floor((b + r) F / H) H + W <= b F + r F + W
samples. Its offset is b F, so every event is returned by the first push after which the stream
holds at least

    offset + W + r F    (the latency bound, ``DetectionStream.latency_bound``)

of audio at 16 kHz (10.192 s for 10 s windows and the 2021 median filter of 7, 1.192 s for 1 s
windows); the bound is reached when (b + r) F is a multiple of H. A stream at another rate adds
the resampler's look-ahead (kaiser_best: its reach, 177 input samples = 4 ms at 44.1 kHz; soxr_hq:
its internal blocks, up to 40 ms measured). `close` scores the last window up to the end of the
stream and filters its end as the offline path filters the end of a recording.

Memory. The stream keeps the audio of one window (plus the last chunk), the averaged frames of
the windows not final yet, the m - 1 + r raw frames the median filter still needs and, per class,
where the open event began: nothing grows with the stream's length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from desed_task.data.resample import StreamResampler
from desed_task.decoding.decode import regions_in_seconds, threshold_regions
from desed_task.decoding.median_filter import median_filter_scores, windows_per_class
from desed_task.inference.reading import to_mono
from desed_task.inference.windows import LongFormScorer

EVENT_COLUMNS = ["filename", "onset", "offset", "event_label"]


def chunk_to_mono(chunk: np.ndarray, channels: int | None) -> np.ndarray:
    """One pushed chunk -> (samples,) float32 mono (the channel average, as in training).

    Args:
        chunk: (samples,) mono or (samples, channels) (soundfile's layout; a stream's chunks
            can be shorter than their channel count, so the layout is not guessed). Integer PCM
            is scaled to [-1, 1) by its type's range, as soundfile reads it.
        channels: the channel count of the stream's earlier chunks (None: the first chunk).

    Raises:
        ValueError: more than 2 dimensions, another channel count than before, or non-finite values.
    """
    array = np.asarray(chunk)
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32) / float(-np.iinfo(array.dtype).min)
    array = array.astype(np.float32, copy=False)
    if array.ndim not in (1, 2):
        raise ValueError(f"chunk of shape {array.shape}: push (samples,) mono or (samples, channels)")
    n_channels = 1 if array.ndim == 1 else array.shape[1]
    if channels is not None and n_channels != channels:
        raise ValueError(
            f"chunk of shape {array.shape}: {n_channels} channel(s), the stream's earlier chunks had "
            f"{channels}; push (samples, channels) with the same channels throughout"
        )
    if not np.isfinite(array).all():
        raise ValueError("chunk holds NaN or infinite values")
    return to_mono(array)


class DetectionStream:
    """Events of audio pushed chunk by chunk (see the module docstring); made by
    ``SoundEventDetector.stream``.

    Args:
        scorer: the sliding windows and forward passes (the detector's network, the stream's
            window and hop).
        class_names: (n_classes,) labels.
        sample_rate: the stream's rate in Hz; resampled to ``model_rate`` as the offline path.
        model_rate: the model's rate in Hz (16000).
        resampler: kaiser_best or soxr_hq.
        threshold: one, or (n_classes,) decision thresholds (a frame is active where score > it).
        median_window: frames, one or (n_classes,).
        frame_step: seconds per output frame (0.064).
        filename: the ``filename`` column of the events.
    """

    def __init__(
        self,
        scorer: LongFormScorer,
        class_names: Sequence[str],
        sample_rate: int,
        model_rate: int,
        resampler: str,
        threshold: float | Sequence[float],
        median_window: int | Sequence[int],
        frame_step: float,
        filename: str = "",
    ) -> None:
        if scorer.window is None:
            raise ValueError("a stream is scored in sliding windows: give window= (seconds)")
        self.scorer = scorer
        self.class_names = list(class_names)
        n_classes = len(self.class_names)
        self.sample_rate, self.model_rate = int(sample_rate), int(model_rate)
        self.thresholds = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (n_classes,)).copy()
        self.windows = windows_per_class(median_window, n_classes)
        self.left = int((self.windows // 2).max())  # frames the filter reads before a frame
        self.right = int((self.windows - 1 - self.windows // 2).max())  # and after it
        self.frame_step = float(frame_step)
        self.filename = filename
        self.resampler = StreamResampler(self.sample_rate, self.model_rate, resampler)
        self.cutter = scorer.cutter()
        self.averager = scorer.averager()
        self.channels: int | None = None
        self.received = 0  # input samples pushed
        self.raw = np.zeros((n_classes, 0), dtype=np.float32)  # final raw frames [raw_first, n_final)
        self.raw_first = 0
        self.n_final = 0  # raw frames final so far
        self.n_filtered = 0  # filtered frames decided so far
        self.open_start = np.full(n_classes, -1, dtype=np.int64)  # first frame of each open event
        self.closed = False
        self.last_scores = np.zeros((n_classes, 0), dtype=np.float32)
        """(n_classes, n) the raw frame scores that became final in the last push or close,
        frames ``last_scores_first`` onwards (the offline path's scores of those frames)."""
        self.last_scores_first = 0
        self._empty = pd.DataFrame({
            "filename": np.zeros(0, object), "onset": np.zeros(0), "offset": np.zeros(0), "event_label": np.zeros(0, object),
        })

    # ------------------------------------------------------------------ facts
    @property
    def time(self) -> float:
        """Seconds of audio pushed so far (the stream time)."""
        return self.received / self.sample_rate

    @property
    def latency_bound(self) -> float:
        """Seconds: every event is returned by the first push after which the stream holds
        ``offset + latency_bound`` (window + median filter's right half; at 16 kHz, see the
        module docstring)."""
        return (self.scorer.window + self.right * self.scorer.frame_samples) / self.model_rate

    def buffer_sizes(self) -> dict[str, int]:
        """What the stream holds now: audio samples, averaged frames not final, raw frames kept
        for the median filter (all bounded, whatever the stream's length)."""
        sums = self.averager.sums
        return {
            "audio_samples": len(self.cutter.buffer),
            "pending_frames": 0 if sums is None else sums.shape[1],  # allocated, not final yet
            "filter_frames": self.raw.shape[1],
        }

    # ------------------------------------------------------------------ pushing
    def push(self, chunk: np.ndarray) -> pd.DataFrame:
        """Add a chunk of audio of any length.

        Args:
            chunk: (samples,) mono or (samples, channels) at the stream's rate, float in [-1, 1]
                or integer PCM.

        Returns:
            The events final since the last push: filename, onset, offset (seconds of stream
            time), event_label, ordered by onset then label.
        """
        if self.closed:
            raise ValueError("this stream is closed: start another with detector.stream(...)")
        mono = chunk_to_mono(chunk, self.channels)
        self.channels = 1 if np.ndim(chunk) == 1 else np.shape(chunk)[1]
        self.received += len(mono)
        windows = self.cutter.push(self.resampler.push(mono))
        self.scorer.add_windows(windows, self.averager)
        final = self.cutter.next_start // self.scorer.frame_samples
        return self._advance(self.averager.take(final), end=False)

    def close(self) -> pd.DataFrame:
        """End the stream: the last window (from the next start to the end) is scored, the end
        filtered as the offline path filters the end of a recording, and the events left are
        returned, clipped to the stream's duration."""
        if self.closed:
            return self._events(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), None)
        self.closed = True
        tail = self.resampler.finish()
        windows = self.cutter.push(tail) if len(tail) else []
        if self.cutter.received == 0:
            return self._events(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), None)
        self.scorer.add_windows([*windows, *self.cutter.finish()], self.averager)
        return self._advance(self.averager.take(self.averager.n_total), end=True)

    # ------------------------------------------------------------------ decoding
    def _advance(self, new_frames: np.ndarray, end: bool) -> pd.DataFrame:
        """Add final raw frames (n_classes, n); decide the filtered frames they make final and
        return the events that closed."""
        self.last_scores_first = self.n_final
        self.last_scores = new_frames if new_frames.size else np.zeros((len(self.class_names), 0), np.float32)
        if new_frames.size:
            self.raw = np.concatenate([self.raw, new_frames], axis=1)
            self.n_final += new_frames.shape[1]
        first = self.n_filtered
        until = max(first, self.n_final if end else self.n_final - self.right)  # filtered frames now final
        label = start = stop = np.zeros(0, np.int64)
        if until == first and not end:
            return self._events(label, start, stop, None)
        if until > first:
            # the filter on raw frames [lo, n_final): exact on frames whose window lies inside,
            # and at the stream's start (lo = 0) and end (close) the offline filter's reflection
            lo = max(0, first - self.left)
            segment = self.raw[:, lo - self.raw_first :].astype(np.float64)
            filtered = median_filter_scores(segment, self.windows)[:, first - lo : until - lo]
            active = (filtered > self.thresholds[:, None]).astype(np.float64)
            _, _, label, start, stop = threshold_regions(active[None], [0.5], np.ones(len(self.class_names), np.int64))
            start, stop = start + first, stop + first
        # an open event goes on in a region at the segment's start, else it ended at `first`
        continues = (start == first) & (self.open_start[label] >= 0)
        start = np.where(continues, self.open_start[label], start)
        ended = np.flatnonzero(self.open_start >= 0)
        ended = ended[~np.isin(ended, label[continues])]
        label = np.concatenate([label, ended])
        start = np.concatenate([start, self.open_start[ended]])
        stop = np.concatenate([stop, np.full(len(ended), first, np.int64)])
        open_now = (stop == until) & (stop > first) if not end else np.zeros(len(stop), bool)
        self.open_start[:] = -1
        self.open_start[label[open_now]] = start[open_now]
        self.n_filtered = until
        keep_from = max(0, until - self.left)  # what the next filter reads
        self.raw = self.raw[:, keep_from - self.raw_first :]
        self.raw_first = keep_from
        done = ~open_now
        duration = self.received / self.sample_rate if end else None
        return self._events(label[done], start[done], stop[done], duration)

    def _events(self, label: np.ndarray, start: np.ndarray, stop: np.ndarray, duration: float | None) -> pd.DataFrame:
        """Regions of frames [start, stop) -> the event table of ``detector.events`` (ordered by
        onset, then label)."""
        if not len(start):  # most pushes: no pandas work
            return self._empty.copy()
        kept, onset, offset = regions_in_seconds(
            np.zeros(len(start), np.int64), start, stop, self.frame_step,
            None if duration is None else np.array([duration]),
        )
        labels = np.asarray(self.class_names)[label[kept]]
        onset, offset = onset[kept].astype(np.float64), offset[kept].astype(np.float64)
        order = np.lexsort((labels, onset))
        return pd.DataFrame({
            "filename": np.full(len(order), self.filename, dtype=object),
            "onset": onset[order],
            "offset": offset[order],
            "event_label": labels[order].astype(object),
        })
