"""``python -m desed_task.inference --stream``: detection on a live stream, each event printed as
it becomes final (``SoundEventDetector.stream``; the latency bound is in ``stream``'s docstring).

Sources: raw PCM on standard input (``--rate``, ``--channels``, ``--format``; e.g. from
``ffmpeg -i URL -f s16le -ac 1 -ar 16000 -`` or ``arecord -f S16_LE -r 16000 -c 1``), one audio
file (pushed as fast as it is read, or at real time with ``--realtime``), or ``--microphone``
(the ``sounddevice`` package). Standard output: a header and one TSV line per event
(``onset offset event_label time``, seconds of stream time; ``time`` is the stream time at
which the event became final), or one JSON object per line with ``--events_format jsonl``.
Standard error: what is streamed, the latency bound and a summary at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from desed_task.errors import UserError
from desed_task.inference.stream import DetectionStream

log = logging.getLogger("desed_task.inference")

PCM_FORMATS = {"s16le": "<i2", "s32le": "<i4", "f32le": "<f4", "f64le": "<f8"}
"""``--format``: raw sample formats read from standard input (ffmpeg's names), little-endian."""


class StreamInputError(UserError):
    """A stream source that cannot be read as asked; the message says what to change."""


def add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    """The --stream options of ``python -m desed_task.inference``."""
    group = parser.add_argument_group("live stream (--stream)")
    group.add_argument("--stream", action="store_true", help="detect on a stream: raw PCM from standard input (no PATH, or -), or one audio file; print each event as it becomes final")
    group.add_argument("--rate", type=int, help="standard input: sample rate in Hz (required); --microphone: default the device's")
    group.add_argument("--channels", type=int, default=1, help="standard input / microphone: interleaved channels, averaged to mono (default: %(default)s)")
    group.add_argument("--format", choices=sorted(PCM_FORMATS), default="s16le", help="standard input: sample format, little-endian (default: %(default)s)")
    group.add_argument("--realtime", action="store_true", help="a file given: push it at the pace of real time (as a live source would)")
    group.add_argument("--microphone", action="store_true", help="stream from the default microphone (needs: pip install sounddevice); ends on Ctrl-C")
    group.add_argument("--block", type=float, default=0.064, help="seconds of audio per push at most (default: %(default)s, one output frame)")
    group.add_argument("--events_format", choices=("tsv", "jsonl"), default="tsv", help="standard output: TSV with a header, or JSON lines (default: %(default)s)")


# ---------------------------------------------------------------------- sources
def pcm_blocks(stream, rate: int, channels: int, sample_format: str, block_seconds: float) -> Iterator[np.ndarray]:
    """Raw interleaved PCM read from a binary stream -> (samples, channels) arrays of at most
    ``block_seconds``, as soon as the bytes arrive (a trailing partial sample is dropped)."""
    dtype = np.dtype(PCM_FORMATS[sample_format])
    frame_bytes = dtype.itemsize * channels
    want = max(1, round(block_seconds * rate)) * frame_bytes
    read = getattr(stream, "read1", stream.read)
    pending = b""
    while True:
        data = read(want)
        if not data:
            break
        pending += data
        usable = len(pending) - len(pending) % frame_bytes
        if usable:
            yield np.frombuffer(pending[:usable], dtype=dtype).reshape(-1, channels)
            pending = pending[usable:]
    if pending:
        log.warning("standard input ended inside a sample: %d byte(s) left out", len(pending))


def file_blocks(path: Path, block_seconds: float, realtime: bool) -> tuple[int, Iterator[np.ndarray]]:
    """(the file's rate, its (samples, channels) blocks), at real time when asked."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as err:
        raise StreamInputError(f"{path}: not readable audio ({err}); give an audio file soundfile reads") from None

    def blocks() -> Iterator[np.ndarray]:
        started = time.perf_counter()
        pushed = 0
        with sf.SoundFile(str(path)) as handle:
            while True:
                data = handle.read(max(1, round(block_seconds * info.samplerate)), dtype="float32", always_2d=True)
                if not len(data):
                    return
                pushed += len(data)
                if realtime:  # the block is there once its last sample has been "recorded"
                    time.sleep(max(0.0, started + pushed / info.samplerate - time.perf_counter()))
                yield data

    return int(info.samplerate), blocks()


def microphone_blocks(rate: int | None, channels: int, block_seconds: float) -> tuple[int, Iterator[np.ndarray]]:
    """(the rate, (samples, channels) float32 blocks of the default input device until Ctrl-C)."""
    try:
        import sounddevice
    except (ImportError, OSError) as err:  # OSError: the package without the PortAudio library
        raise StreamInputError(
            f"--microphone needs the sounddevice package and the PortAudio library: pip install sounddevice "
            f"(on Debian/Ubuntu also apt-get install libportaudio2) ({err})"
        ) from None
    rate = int(rate or sounddevice.query_devices(kind="input")["default_samplerate"])
    arrived: queue.Queue[np.ndarray] = queue.Queue()

    def blocks() -> Iterator[np.ndarray]:
        with sounddevice.InputStream(samplerate=rate, channels=channels, dtype="float32",
                                     blocksize=max(1, round(block_seconds * rate)),
                                     callback=lambda data, *_: arrived.put(data.copy())):
            try:
                while True:
                    yield arrived.get()
            except KeyboardInterrupt:
                return

    return rate, blocks()


def open_source(args: argparse.Namespace) -> tuple[str, int, Iterator[np.ndarray]]:
    """(what is streamed, its rate in Hz, its (samples, channels) blocks) of the options."""
    if args.block <= 0:
        raise StreamInputError(f"--block {args.block:g} must be a positive number of seconds")
    if args.channels < 1:
        raise StreamInputError(f"--channels {args.channels} must be 1 or more")
    if args.microphone:
        rate, blocks = microphone_blocks(args.rate, args.channels, args.block)
        return "the microphone", rate, blocks
    paths = [p for p in args.paths if p != "-"]
    if len(args.paths) > 1:
        raise StreamInputError(f"--stream takes one source: one file, or none (or -) for standard input; got {len(args.paths)} PATHs")
    if paths:
        path = Path(paths[0])
        if not path.is_file():
            raise StreamInputError(f"{path}: no such file (--stream streams one audio file, or standard input without PATH)")
        rate, blocks = file_blocks(path, args.block, args.realtime)
        return f"{path}{' at real time' if args.realtime else ''}", rate, blocks
    if args.realtime:
        raise StreamInputError("--realtime paces a file given as PATH; standard input arrives at its own pace")
    if not args.rate or args.rate <= 0:
        raise StreamInputError(
            "--stream reads raw PCM from standard input: give its --rate HZ (and --channels N, --format "
            f"{'|'.join(sorted(PCM_FORMATS))} when not mono s16le), e.g. ffmpeg -i IN -f s16le -ac 1 -ar 16000 - | "
            "python -m desed_task.inference --stream --rate 16000 --checkpoint CKPT"
        )
    blocks = pcm_blocks(sys.stdin.buffer, args.rate, args.channels, args.format, args.block)
    return f"standard input ({args.format}, {args.channels} channel(s), {args.rate} Hz)", args.rate, blocks


# ---------------------------------------------------------------------- output
class EventPrinter:
    """Prints events on standard output as they come: TSV (with a header) or JSON lines."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.count = 0
        if kind == "tsv":
            print("onset\toffset\tevent_label\ttime", flush=True)

    def __call__(self, events: pd.DataFrame, stream_time: float) -> None:
        for onset, offset, label in zip(events["onset"], events["offset"], events["event_label"]):
            if self.kind == "tsv":
                print(f"{onset:.3f}\t{offset:.3f}\t{label}\t{stream_time:.3f}", flush=True)
            else:
                row = {"onset": round(float(onset), 3), "offset": round(float(offset), 3), "event_label": label,
                       "time": round(stream_time, 3)}
                print(json.dumps(row), flush=True)
            self.count += 1


def run_stream(
    args: argparse.Namespace,
    build_detector: Callable[[argparse.Namespace], tuple],
    decoding_values: Callable[[argparse.Namespace, list[str]], tuple],
) -> int:
    """The --stream mode of the command: returns the exit status (0)."""
    if args.plot:
        raise StreamInputError("--plot draws whole recordings: it does not go with --stream")
    source, rate, blocks = open_source(args)
    detector, _ = build_detector(args)
    thresholds, windows, postprocessing = decoding_values(args, detector.class_names)
    if postprocessing is not None and postprocessing.frame_decoding() is None:
        raise StreamInputError(
            f"{args.postprocessing}: method {postprocessing.method} ({postprocessing.words}) segments whole recordings; --stream "
            "takes median-filter post-processing (method: median) or --threshold(s) and --median_window(s)"
        )
    stream: DetectionStream = detector.stream(rate, threshold=thresholds, median_window=windows)
    log.info(
        "streaming %s: windows of %g s every %g s, each event printed at most %.3f s of audio after its "
        "offset%s", source, stream.scorer.window / detector.sample_rate, stream.scorer.hop / detector.sample_rate,
        stream.latency_bound, "" if rate == detector.sample_rate else " (plus the resampler's look-ahead)",
    )
    printer = EventPrinter(args.events_format)
    started = time.perf_counter()
    try:
        for block in blocks:
            printer(stream.push(block), stream.time)
    except KeyboardInterrupt:
        log.info("interrupted: closing the stream")
    printer(stream.close(), stream.time)
    seconds = time.perf_counter() - started
    log.info(
        "stream closed: %.3f s of audio, %d event(s), %.1f s (%s)", stream.time, printer.count, seconds,
        f"{stream.time / seconds:.1f}x real time" if seconds > 0 and not args.realtime else "paced",
    )
    return 0
