"""Separate the DESED folders with the pre-trained separation model (2021 SSEP + SED, step 1).

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
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from desed_task.config import ConfigError, load_config
from desed_task.devices import DeviceError, torch_device
from desed_task.separation import format_reports
from desed_task.separation.backend import MODEL_ERRORS
from desed_task.separation.sets import separate_sets

log = logging.getLogger("run_separation")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Resample to 16 kHz where needed and separate every clip of the config's "
        "folders into the _sep folders."
    )
    parser.add_argument("--conf_file", type=Path, default=Path("confs/sep+sed.yaml"))
    parser.add_argument("--test_only", action="store_true", help="separate dev-test only")
    parser.add_argument("--gpus", default=None, help='"0": CPU; "N" or "i,j": the first GPU named; default: a GPU when CUDA is available (PyTorch backend)')
    parser.add_argument("--batch_size", type=int, default=None, help="clips of one length per forward pass (default: separation.batch_size, else 16 on a GPU and 1 on the CPU)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return separate(args)
    except (ConfigError, DeviceError, *MODEL_ERRORS) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def separate(args: argparse.Namespace) -> int:
    """Resample and separate every set of the config; the exit status of `main`."""
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
        log.error("%d clip(s) failed (listed above); run again to retry them", run.failed)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
