"""The command lines of the separation package (`desed_task.command_line.run_command` ends them).

``run_separation.py`` (`separate_main`): resample and separate the folders of a config.

    python run_separation.py [--conf_file confs/sep+sed.yaml] [--test_only] [--gpus 0] [--batch_size N]

For each set of the config (synthetic train, synthetic validation, weak, unlabelled, dev-test;
dev-test only with --test_only): resample ``<set>_folder_44k`` into ``<set>_folder_16k`` when
the former is set, then write into ``<set>_folder_sep`` one wav per clip with one channel per
separated source, mirroring the folder layout. Resumable: start it again after a crash (even a
SIGKILL) and it only does what is missing.

The model (`desed_task.separation.backend`): by default the PyTorch TDCN++ of the converted file
``training.sep_model`` (python -m desed_task.separation convert), batches of clips on the GPU of
--gpus when there is one; without that file, the TensorFlow model ``training.sep_graph`` /
``sep_checkpoint`` converted on the fly (TensorFlow needed). ``separation.backend: tensorflow``
runs 2021's TensorFlow session instead (the reference; pip install -e ".[separation]").

With a demo config (a `demo:` section, e.g. confs/demo_sep+sed.yaml) the demo dataset and the
STAND-IN separation model (a small random PyTorch TDCN++) are written first when absent; it
separates nothing meaningful.

Exit status 0 when every clip is separated, 1 when some failed (listed; running again retries
only them), 2 on a config, device or model-file error, or without TensorFlow where it is needed.

``python -m desed_task.separation convert`` (`main`): Google's TensorFlow TDCN++ checkpoint
(``DIR`` = the downloaded ``yfcc100m_mixit_model_checkpoint`` folder: ``inference.meta``,
``checkpoint``, ``model.ckpt-3547330.*``) -> the PyTorch file every separating command takes.
TensorFlow is not needed. Exit status 2 with one ``error:`` line when the checkpoint does not fit
the model.

    python -m desed_task.separation convert --tf_model DIR --out separation.pt [--tf_checkpoint PREFIX]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from desed_task.command_line import run_command
from desed_task.config import ConfigError, load_config
from desed_task.devices import torch_device
from desed_task.separation.report import format_reports

log = logging.getLogger("desed_task.separation")
run_log = logging.getLogger("run_separation")  # the name its lines had when the script held the code


# ---------------------------------------------------------------------- run_separation.py
def parse_separate_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run_separation.py",
        description="Resample to 16 kHz where needed and separate every clip of the config's "
        "folders into the _sep folders."
    )
    parser.add_argument("--conf_file", type=Path, default=Path("confs/sep+sed.yaml"))
    parser.add_argument("--test_only", action="store_true", help="separate dev-test only")
    parser.add_argument("--gpus", default=None, help='"0": CPU; "N" or "i,j": the first GPU named; default: a GPU when CUDA is available (PyTorch backend)')
    parser.add_argument("--batch_size", type=int, default=None, help="clips per forward pass (default: separation.batch_size, else 16 on a GPU and 1 on the CPU)")
    return parser.parse_args(argv)


def separate_main(argv: list[str] | None = None) -> int:
    """``run_separation.py``: the exit status (0, 1 when clips failed, 2 on a user error)."""
    args = parse_separate_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_command(lambda: separate(args))


def separate(args: argparse.Namespace) -> int:
    """Resample and separate every set of the config; the exit status of `separate_main`."""
    from desed_task.separation.sets import separate_sets

    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch_size {args.batch_size}: give 1 or more clips")
    config = load_config(args.conf_file)
    device = torch_device(args.gpus)
    if "demo" in config:
        from desed_task.data_generation.demo import ensure_demo_dataset  # scaper: the demo extra

        ensure_demo_dataset(config["demo"])
    run = separate_sets(config, str(args.conf_file), test_only=args.test_only, device=device, batch_size=args.batch_size)
    print(format_reports(run.reports))
    if run.failed:
        run_log.error("%d clip(s) failed (listed above); run again to retry them", run.failed)
        return 1
    return 0


# ---------------------------------------------------------------------- python -m desed_task.separation
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m desed_task.separation",
                                     description="Command line of the separation package.")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser(
        "convert", help="convert Google's TensorFlow TDCN++ checkpoint to a PyTorch separation.pt"
    )
    convert.add_argument("--tf_model", type=Path, required=True,
                         help="folder of the TensorFlow model (inference.meta, checkpoint, model.ckpt-*)")
    convert.add_argument("--out", type=Path, required=True, help="the PyTorch file to write")
    convert.add_argument("--tf_checkpoint", type=Path, default=None,
                         help="checkpoint prefix (default: the one the folder's `checkpoint` file names)")
    return parser.parse_args(argv)


def convert(args: argparse.Namespace) -> int:
    """Convert, save and print where the file is; the exit status."""
    from desed_task.embeddings.extract import file_sha256
    from desed_task.separation.convert import convert_checkpoint, resolve_prefix, source_files
    from desed_task.separation.separator_file import save_separator

    prefix = resolve_prefix(args.tf_model, args.tf_checkpoint)
    model = convert_checkpoint(prefix)
    files = source_files(args.tf_model, prefix)
    source = {
        "checkpoint": prefix.name,
        "files": {path.name: file_sha256(path) for path in files},
    }
    save_separator(model, args.out, source)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("converted %s (%d parameters) -> %s", prefix, n_params, args.out)
    print(f"separation model written to {args.out} ({n_params} parameters from {prefix})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m desed_task.separation``: the exit status (2 on a user error)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_command(lambda: convert(args))
