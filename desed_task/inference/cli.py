"""``python -m desed_task.inference``: detect events in audio files of any rate, channels, length.

Writes under --out_dir: ``events.tsv`` (filename, onset, offset, event_label), ``scores/<name>.tsv``
(raw frame scores, sed_scores_eval layout) and with --plot ``plots/<name>.png``, where <name> is
the file's path relative to its PATH argument, extension included (see ``outputs.input_names``). The last stdout
line is one JSON object: files given (``inputs``), ``scored``, ``failed``, ``upsampled`` (files
below the model's 16 kHz, each also named in one warning), events and time. Exit status 0 when
every file was scored, 2 otherwise.

``--stream`` detects on a live stream instead (``stream_cli``): raw PCM from standard input, a
file (at real time with ``--realtime``) or ``--microphone``; each event is printed as it
becomes final.

A checkpoint of the 2023 CRNN fed BEATs embeddings takes --beats BEATS.pt (or its config's
pretrained.checkpoint): each window's embeddings are computed on the fly.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from desed_task.checkpoints import MODELS
from desed_task.command_line import run_command
from desed_task.data.audio import AudioError
from desed_task.data.resample import RESAMPLERS
from desed_task.decoding.class_values import read_class_values
from desed_task.decoding.postprocessing_file import PostProcessing, load_postprocessing
from desed_task.decoding.score_files import write_score_table
from desed_task.devices import torch_device
from desed_task.errors import MissingPackage, OptionError
from desed_task.features.mel import log_mel
from desed_task.inference.detector import SoundEventDetector
from desed_task.inference.outputs import DurationsFile, EventsFile, input_names
from desed_task.inference.stream_cli import add_stream_arguments, run_stream

log = logging.getLogger("desed_task.inference")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m desed_task.inference",
        description="Detect sound events in recordings with a trained SED checkpoint.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="audio files or folders (searched recursively); with --stream: one file to stream, or none (or -) for raw PCM on standard input")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint of train_sed.py or finetune_on_separated.py, or an official 2021 one")
    parser.add_argument("--model", choices=MODELS, default="teacher", help="which network of the mean teacher (default: %(default)s)")
    parser.add_argument("--out_dir", default="detections", help="output folder (default: %(default)s)")
    parser.add_argument("--window", type=float, default=10.0, help="sliding window, seconds (default: %(default)s, the training clip length)")
    parser.add_argument("--hop", type=float, default=5.0, help="window hop, seconds, rounded to whole output frames (default: %(default)s)")
    threshold = parser.add_mutually_exclusive_group()
    threshold.add_argument("--threshold", type=float, default=0.5, help="decision threshold for every class (default: %(default)s)")
    threshold.add_argument("--thresholds", metavar="FILE", help="per-class thresholds: YAML 'class: value' or TSV event_label<TAB>value")
    median = parser.add_mutually_exclusive_group()
    median.add_argument("--median_window", type=int, default=None, help="median filter in frames for every class (default: the checkpoint's, 7 in 2021)")
    median.add_argument("--median_windows", metavar="FILE", help="per-class median windows in frames (YAML or TSV)")
    parser.add_argument("--postprocessing", metavar="FILE", help="a file of `python -m desed_task.postprocessing tune` (per-class median windows and thresholds, or cSEBBs); replaces the four options above")
    parser.add_argument("--batch_size", type=int, default=8, help="windows per forward pass (default: %(default)s)")
    parser.add_argument("--gpus", default=None, help='"0": CPU; "N" or "i,j": the first GPU named; default: a GPU when CUDA is available')
    parser.add_argument("--plot", action="store_true", help="also write plots/<name>.png (log-mel, scores, events); <name>: the file's path below its PATH, extension included")
    parser.add_argument("--resampler", choices=RESAMPLERS, default=None, help="for recordings not at the model's rate: kaiser_best (2021's resampler) or soxr_hq (default: the checkpoint's data.resampler, kaiser_best when unset)")
    parser.add_argument("--onnx", metavar="FILE", help="run the network with ONNX Runtime from this export of the checkpoint (python -m desed_task.export); CPU only")
    parser.add_argument("--beats", metavar="BEATS.pt", help="for a checkpoint of the 2023 CRNN fed BEATs embeddings (net.use_embeddings): the BEATs checkpoint its embeddings were extracted with, e.g. BEATs_iter3_plus_AS2M.pt; default: the checkpoint's pretrained.checkpoint. Not needed with --onnx (BEATs is in the graph)")
    parser.add_argument("--separation_model", metavar="FILE", help="for an SSEP + SED checkpoint (finetune_on_separated.py): the converted separation model (separation.pt of python -m desed_task.separation convert), or the TensorFlow model's folder (inference.meta and model.ckpt-*, converted on the fly: TensorFlow needed); default: the checkpoint's training.sep_model (or sep_graph / sep_checkpoint). Not needed with --onnx of an SSEP + SED export (the separation is in the graph)")
    add_stream_arguments(parser)
    return parser


def build_detector(args: argparse.Namespace) -> tuple[SoundEventDetector, torch.nn.Module]:
    """The detector of the command's options, and its PyTorch mel spectrogram (for plots)."""
    check_thresholds(args.threshold, "--threshold")
    if not 0 < args.hop <= args.window:
        raise OptionError(f"--hop {args.hop:g} must be in (0, --window {args.window:g}] seconds, or some frames get no score")
    if args.postprocessing and (args.thresholds or args.median_windows or args.median_window is not None):
        raise OptionError("--postprocessing replaces --thresholds and --median_window(s): give one or the other")
    device = torch.device("cpu") if args.onnx else torch_device(args.gpus)
    onnx = None
    if args.onnx:
        from desed_task.inference.onnx_runtime import OnnxPipeline

        if not Path(args.onnx).is_file():
            raise OptionError(f"--onnx {args.onnx}: no such file; write it with python -m desed_task.export "
                              "--checkpoint CKPT --onnx FILE")
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise MissingPackage("--onnx needs the onnxruntime package; in the clone: pip install -e '.[export]'") from None
        onnx = OnnxPipeline(args.onnx)
    detector = SoundEventDetector.from_checkpoint(
        args.checkpoint, model=args.model, window=args.window, hop=args.hop, batch_size=args.batch_size, device=device,
        resampler=args.resampler, separation_model=args.separation_model,
        separate=not (onnx is not None and onnx.separates),  # an SSEP + SED export separates inside
        beats=False if args.onnx else args.beats,  # an export holds its BEATs
    )
    mel = detector.pipeline.mel
    if onnx is not None:
        onnx.takes_sources = detector.pipeline.takes_sources and not onnx.separates
        detector.pipeline = onnx
    return detector, mel


def decoding_values(args: argparse.Namespace, names: list[str]) -> tuple[object, object, PostProcessing | None]:
    """(thresholds, median windows, post-processing file or None) of the command's options:
    one value or (n_classes,) values each."""
    thresholds = read_class_values(args.thresholds, names, float, "threshold") if args.thresholds else args.threshold
    if args.thresholds:
        check_thresholds(thresholds, args.thresholds)
    windows = (
        read_class_values(args.median_windows, names, int, "median window") if args.median_windows
        else None if args.median_window is None else args.median_window
    )
    postprocessing = load_postprocessing(args.postprocessing, names) if args.postprocessing else None
    decoding = None if postprocessing is None else postprocessing.frame_decoding()
    if decoding is not None:  # a frame decoding per class: run by the detector (and streams)
        thresholds, windows = decoding
    return thresholds, windows, postprocessing


class LogMelCollector:
    """The log-mel of a recording at the output frame rate, filled window by window (--plot).

    Args:
        detector: the detector scoring the recording.
        mel: its PyTorch mel spectrogram (also with --onnx).
    """

    def __init__(self, detector: SoundEventDetector, mel: torch.nn.Module) -> None:
        self.detector = detector
        self.mel = mel
        self.columns: dict[int, np.ndarray] = {}

    def __call__(self, start: int, audio: np.ndarray) -> None:
        pool = self.detector.net_pooling
        padded = audio if len(audio) > self.detector.scorer.min_samples else np.pad(audio, (0, self.detector.scorer.min_samples - len(audio)))
        with torch.inference_mode():
            db = log_mel(self.mel(torch.from_numpy(np.ascontiguousarray(padded))[None].to(self.detector.device)))[0]
        n = db.shape[-1] // pool
        pooled = db[:, : n * pool].reshape(db.shape[0], n, pool).mean(-1).cpu().numpy()
        first = start // self.detector.scorer.frame_samples
        for i in range(n):
            self.columns.setdefault(first + i, pooled[:, i])

    def image(self, n_frames: int) -> np.ndarray:
        n_mels = next(iter(self.columns.values())).shape[0]
        image = np.full((n_mels, n_frames), np.nan, dtype=np.float32)
        for i, column in self.columns.items():
            if i < n_frames:
                image[:, i] = column
        return image


def check_thresholds(values: float | list[float], source: str) -> None:
    """Decision thresholds must lie in (0, 1): scores are probabilities, so 0 would detect
    everything and 1 nothing. Raises OptionError naming `source` and the value."""
    for value in np.atleast_1d(values):
        if not 0 < value < 1:
            raise OptionError(f"{source}: threshold {value:g} is outside (0, 1); scores are probabilities: give e.g. 0.5")


def run(args: argparse.Namespace) -> int:
    if args.stream or args.microphone:
        return run_stream(args, build_detector, decoding_values)
    if not args.paths:
        raise OptionError("give audio files or folders (PATH ...), or --stream to read raw PCM from standard input")
    inputs = input_names(args.paths)
    detector, mel = build_detector(args)
    band_edges = (float(mel.f_min), float(mel.f_max))  # the plot's frequency axis
    names = detector.class_names
    thresholds, windows, postprocessing = decoding_values(args, names)
    windows = detector.median_window if windows is None else windows
    out_dir = Path(args.out_dir)
    events_file = EventsFile(out_dir / "events.tsv")
    durations_file = DurationsFile(out_dir / "durations.tsv")
    failed: list[str] = []
    upsampled = 0  # files below the model's rate (each named in a warning by score_file)
    audio_seconds = 0.0
    started = time.perf_counter()
    for path, name in tqdm(inputs, desc="detect", unit="file", file=sys.stderr):
        collector = LogMelCollector(detector, mel) if args.plot else None
        try:
            scores, audio = detector.score_file(path, on_window=collector)
        except AudioError as err:
            tqdm.write(err.error_line(), file=sys.stderr)  # the file is skipped, the run goes on
            failed.append(str(path))
            continue
        audio_seconds += audio.duration
        upsampled += audio.sample_rate < detector.sample_rate
        if postprocessing is not None and postprocessing.frame_decoding() is None:  # e.g. cSEBBs
            events = postprocessing.events({name: scores}, detector.frame_step)
        else:
            events = detector.events(scores, name, thresholds, windows, duration=audio.duration)
        events_file.append(events)
        durations_file.append(name, audio.duration)
        write_score_table(scores, names, detector.frame_step, out_dir / "scores" / f"{name}.tsv")
        if collector is not None:
            from desed_task.inference.plots import plot_detection

            plot_detection(
                collector.image(scores.shape[1]), scores, events, names, detector.frame_step,
                audio.duration, out_dir / "plots" / f"{name}.png",
                title=f"{name} ({args.model}, {audio.duration:.1f} s)",
                thresholds=list(np.broadcast_to(thresholds, (len(names),))), band_edges=band_edges,
            )
    seconds = time.perf_counter() - started
    log.info("%d file(s) scored, %d failed; outputs in %s", len(inputs) - len(failed), len(failed), out_dir)
    summary = {
        "inputs": len(inputs),
        "scored": len(inputs) - len(failed),
        "failed": len(failed),
        "upsampled": upsampled,
        "events": events_file.count,
        "audio_seconds": round(audio_seconds, 3),
        "seconds": round(seconds, 3),
        "realtime_factor": round(audio_seconds / seconds, 1) if seconds > 0 else None,
    }
    print(json.dumps(summary), flush=True)
    return 2 if failed else 0


def main(argv: list[str] | None = None) -> None:
    """The command line; exits with the status of `run_command` (2 on a user error or when a
    file could not be scored)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    raise SystemExit(run_command(lambda: run(args)))
