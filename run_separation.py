"""Separate the DESED folders with the pre-trained separation model (2021 SSEP + SED, step 1).

    python run_separation.py [--conf_file confs/sep+sed.yaml] [--test_only]

For each set of the config (synthetic train, synthetic validation, weak, unlabelled, dev-test;
dev-test only with --test_only): resample ``<set>_folder_44k`` into ``<set>_folder_16k`` when
the former is set, then write into ``<set>_folder_sep`` one wav per clip with one channel per
separated source, mirroring the folder layout. Resumable: start it again after a crash and it
only does what is missing. The model is the TF1 graph ``training.sep_graph`` with checkpoint
``training.sep_checkpoint`` (TensorFlow is needed here only: pip install -e ".[separation]").

With a demo config (a `demo:` section, e.g. confs/demo_sep+sed.yaml) the demo dataset and the
STAND-IN separation model are built first when absent (it separates nothing meaningful).

Exit status 0 when every clip is separated, 1 when some failed (listed; running again retries
only them), 2 on a config or model-file error or without TensorFlow.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from desed_task.config import ConfigError, load_config
from desed_task.separation import format_reports, separate_folder
from desed_task.separation.demo import ensure_standin_model
from desed_task.separation.jobs import prepare_16k, separation_jobs
from desed_task.separation.model import TensorFlowMissing  # plain Python: no TensorFlow yet

log = logging.getLogger("run_separation")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Resample to 16 kHz where needed and separate every clip of the config's "
        "folders into the _sep folders."
    )
    parser.add_argument("--conf_file", type=Path, default=Path("confs/sep+sed.yaml"))
    parser.add_argument("--test_only", action="store_true", help="separate dev-test only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return separate(args)
    except (ConfigError, FileNotFoundError, TensorFlowMissing) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def separate(args: argparse.Namespace) -> int:
    """Resample and separate every set of the config; the exit status of `main`."""
    config = load_config(args.conf_file)
    data, training = config["data"], config["training"]
    if not training.get("sep_graph") or not training.get("sep_checkpoint"):
        raise ConfigError(f"{args.conf_file}: set training.sep_graph and training.sep_checkpoint")
    if "demo" in config:
        from desed_task.data_generation.demo import ensure_demo_dataset  # scaper: the demo extra

        ensure_demo_dataset(config["demo"])
        ensure_standin_model(training["sep_graph"], training["sep_checkpoint"])
    jobs = separation_jobs(data, test_only=args.test_only)

    resample_failures = 0
    for job in jobs:
        resampled = prepare_16k(job, data.get("fs", 16000), data.get("resampler"))
        resample_failures += len(resampled.failed) if resampled else 0

    from desed_task.separation.model import TFSeparationModel  # imports TensorFlow

    with TFSeparationModel(training["sep_graph"], training["sep_checkpoint"]) as model:
        reports = {
            job.name: separate_folder(
                model, job.audio_16k, job.separated, expected_sample_rate=data.get("fs", 16000)
            )
            for job in jobs
        }

    print(format_reports(reports))
    n_failed = sum(len(r.failed) for r in reports.values()) + resample_failures
    if n_failed:
        log.error("%d clip(s) failed (listed above); run again to retry them", n_failed)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
