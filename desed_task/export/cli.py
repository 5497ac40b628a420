"""``python -m desed_task.export``: a checkpoint to an ONNX (or TorchScript) model with its features
inside."""

from __future__ import annotations

import argparse
import copy
import json
import logging
from pathlib import Path

from desed_task.checkpoints import MODELS
from desed_task.command_line import run_command
from desed_task.errors import MissingPackage, OptionError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m desed_task.export",
        description="Export a SED checkpoint to ONNX: 16 kHz mono audio (batch, samples) in, "
        "strong (batch, classes, frames) and weak (batch, classes) scores out. An SSEP + SED "
        "checkpoint exports one graph with its separation model inside (the PyTorch TDCN++ of the "
        "converted separation.pt, --separation_model): mixtures (batch, samples) in, scores out. A checkpoint of the 2023 CRNN fed "
        "BEATs embeddings exports BEATs inside the graph (--beats), which then takes (batch, 160000): "
        "windows of the 10 s training clips, a shorter one zero-padded.",
    )
    parser.add_argument("--checkpoint", required=True, help="a checkpoint of train_sed.py or finetune_on_separated.py, or an official 2021 one")
    parser.add_argument("--model", choices=MODELS, default="teacher", help="which network (default: %(default)s)")
    parser.add_argument("--beats", metavar="BEATS.pt", help="for a checkpoint of the 2023 CRNN (net.use_embeddings): the BEATs checkpoint its embeddings were extracted with (default: the checkpoint's pretrained.checkpoint)")
    parser.add_argument("--separation_model", metavar="FILE", help="for an SSEP + SED checkpoint: the converted separation model put inside the graph (separation.pt of python -m desed_task.separation convert; a TensorFlow model's folder is converted on the fly); default: the checkpoint's training.sep_model (or sep_graph / sep_checkpoint)")
    parser.add_argument("--onnx", metavar="FILE", help="the .onnx file to write")
    parser.add_argument("--torchscript", metavar="FILE", help="also (or instead) a traced TorchScript file (.pt)")
    return parser


def main(argv: list[str] | None = None) -> None:
    """The command line; returns when the files are written, else exits with the status of
    `run_command` (2 on a user error)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.onnx or args.torchscript):
        parser.error("give --onnx FILE and/or --torchscript FILE")
    status = run_command(lambda: export(args))
    if status:
        raise SystemExit(status)


def export(args: argparse.Namespace) -> None:
    """Write the files the options ask for; print them as one JSON line."""
    try:
        if args.onnx:
            import onnx  # noqa: F401
    except ImportError:
        raise MissingPackage("the onnx package is missing; in the clone: pip install -e '.[export]' (onnx, onnxruntime, onnxscript)") from None
    from desed_task.export.onnx import (
        CLIP_INPUT,
        SEPARATING_INPUT,
        export_onnx,
        export_torchscript,
        model_metadata,
    )
    from desed_task.inference.detector import SoundEventDetector, separation_model_of

    detector = SoundEventDetector.from_checkpoint(args.checkpoint, model=args.model, separate=False, beats=args.beats)
    if args.onnx and not detector.pipeline.needs.onnx:
        raise OptionError(f"{args.checkpoint}: its network (net.type {detector.pipeline.needs.type}) does not "
                          "export to ONNX: export it with --torchscript FILE only")
    separator = None
    if detector.pipeline.takes_sources:  # the separation goes inside the graph: PyTorch whatever the backend
        config = copy.deepcopy(detector.config)
        config["separation"] = {**(config.get("separation") or {}), "backend": "pytorch"}
        separator = separation_model_of(config, args.separation_model, args.checkpoint).model
    # the file's own name, not a link's (exp/demo/best.ckpt -> best-epoch=...-step=....ckpt)
    extra = {"checkpoint": Path(args.checkpoint).resolve().name, "model": args.model}
    if separator is not None:
        extra.update(input=SEPARATING_INPUT, separation="inside", separation_sources=str(separator.hparams["num_sources"]),
                     mixture_input=detector.pipeline.mixture_input or "sum_of_sources")
    clip_samples = None
    if detector.pipeline.takes_embeddings:  # the graph takes windows of the training clip length
        clip_samples = detector.scorer.min_samples
        extra.update(input=CLIP_INPUT.format(samples=clip_samples, seconds=clip_samples / detector.sample_rate),
                     clip_samples=str(clip_samples))
    facts = (detector.class_names, detector.sample_rate, detector.hop_length, detector.net_pooling)
    written = {}
    if args.onnx:
        written["onnx"] = str(export_onnx(detector.pipeline, args.onnx, *facts, extra, clip_samples, separator))
    if args.torchscript:
        written["torchscript"] = str(export_torchscript(
            detector.pipeline, args.torchscript, model_metadata(*facts, extra), clip_samples, separator
        ))
    print(json.dumps({**written, "classes": len(detector.class_names), "frame_step": detector.frame_step}))
