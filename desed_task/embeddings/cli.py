"""``python -m desed_task.embeddings``: BEATs embeddings of a folder, or of every set of a config.

    python -m desed_task.embeddings --beats BEATS.pt --folder AUDIO_DIR --out EMB.hdf5
    python -m desed_task.embeddings --beats BEATS.pt --conf_file CONF.yaml

The second writes ``<pretrained.extracted_embeddings_dir>/beats/<set>.hdf5`` for the 2023 sets
(synth_train, weak_train, unlabeled_train, synth_val, weak_val, devtest, eval when
``data.eval_folder`` is on disk, strong_train with ``training.strong_real``), which training
reads (`desed_task.data.embeddings_reader`). A killed run resumes where it stopped when run again.
Exit status 0 (unreadable clips are named in a warning), 2 on a user error (one ``error:`` line).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from desed_task.command_line import run_command
from desed_task.config import ConfigError, load_config
from desed_task.data.embeddings_store import EmbeddingsError
from desed_task.data.resample import check_config_resampler
from desed_task.devices import torch_device
from desed_task.embeddings.extract import extract_config, extract_folder, file_sha256
from desed_task.nnet.beats import load_beats
from desed_task.threads import set_cpu_threads

log = logging.getLogger("desed_task.embeddings")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m desed_task.embeddings",
        description="Extract BEATs frame and global embeddings (the DCASE 2023 HDF5 layout).",
    )
    parser.add_argument("--beats", help="BEATs checkpoint, e.g. BEATs_iter3_plus_AS2M.pt (default with "
                        "--conf_file: its pretrained.checkpoint)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--folder", help="folder of 16 kHz .wav clips")
    source.add_argument("--conf_file", help="a config with a pretrained: section: extract every set")
    parser.add_argument("--out", help="output .hdf5 file (with --folder)")
    parser.add_argument("--batch_size", type=int, default=8, help="clips per forward pass (default: %(default)s)")
    parser.add_argument("--num_workers", type=int, default=0, help="audio reading processes (default: %(default)s)")
    parser.add_argument("--gpus", default=None, help='"0": CPU; "N" or "i,j": the first GPU named; '
                        "default: a GPU when CUDA is available")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.folder is not None and not args.out:
        parser.error("--folder needs --out EMB.hdf5")
    if args.conf_file is not None and args.out:
        parser.error("--out goes with --folder; with --conf_file the files go to pretrained.extracted_embeddings_dir")
    if args.batch_size < 1 or args.num_workers < 0:
        parser.error("--batch_size must be >= 1 and --num_workers >= 0")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.conf_file) if args.conf_file else None
    if config is not None:
        check_config_resampler(config, args.conf_file)
    beats = args.beats or ((config or {}).get("pretrained") or {}).get("checkpoint")
    if not beats:
        raise ConfigError("give --beats BEATS.pt (or pretrained.checkpoint in the config)")
    device = torch_device(args.gpus)
    if device.type == "cpu":
        set_cpu_threads(loader_workers=args.num_workers)
    try:  # the one GPU error a user fixes: a smaller batch
        model = load_beats(beats).to(device)
        options = dict(checkpoint_sha256=file_sha256(beats), device=device, batch_size=args.batch_size,
                       num_workers=args.num_workers, progress=not args.no_progress)
        if config is None:
            extract_folder(model, args.folder, Path(args.out), **options)
        else:
            extract_config(model, config, args.conf_file, **options)
    except torch.cuda.OutOfMemoryError:
        raise EmbeddingsError(f"the GPU ran out of memory; lower --batch_size (now {args.batch_size})") from None
    return 0


def main(argv: list[str] | None = None) -> None:
    """The command line; exits with the status of `run_command` (2 on a user error)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    raise SystemExit(run_command(lambda: run(args)))
