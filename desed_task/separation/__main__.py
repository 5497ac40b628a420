"""Command line of the separation package.

    python -m desed_task.separation convert --tf_model DIR --out separation.pt [--tf_checkpoint PREFIX]

``convert``: Google's TensorFlow TDCN++ checkpoint (``DIR`` = the downloaded
``yfcc100m_mixit_model_checkpoint`` folder: ``inference.meta``, ``checkpoint``,
``model.ckpt-3547330.*``) -> the PyTorch file every separating command takes. TensorFlow is not
needed. Exit status 2 with one ``error:`` line when the checkpoint does not fit the model.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("desed_task.separation")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m desed_task.separation", description=__doc__.split("\n")[0])
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
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from desed_task.separation.convert import ConversionError
    from desed_task.separation.separator_file import SeparatorFileError
    from desed_task.separation.tf_checkpoint import CheckpointFormatError

    try:
        return convert(args)
    except (ConversionError, CheckpointFormatError, SeparatorFileError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
