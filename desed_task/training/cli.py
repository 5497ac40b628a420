"""Command-line options and wiring shared by train_sed.py and finetune_on_separated.py."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import lightning as L
from torch import nn

from desed_task.checkpoints import (
    OPTIMIZER_STATES,
    CheckpointError,
    config_from_checkpoint,
    load_checkpoint,
    load_network_weights,
)
from desed_task.command_line import Interrupted, run_command
from desed_task.config import ConfigError, load_config, merge_for_test
from desed_task.data.datamodule import DESEDDataModule
from desed_task.data.label_encoder import ManyHotEncoder
from desed_task.data.resample import check_config_resampler
from desed_task.devices import parse_gpus, torch_device
from desed_task.errors import UserError
from desed_task.nnet import build_network, network_needs
from desed_task.sets import MODES, sets_read_in
from desed_task.training.mean_teacher import MeanTeacher
from desed_task.training.scaler_fit import DatasetScalerFit
from desed_task.training.scoring import TestScoring, ValidationScoring
from desed_task.training.trainer import LAST_CHECKPOINT, build_trainer, preserved_random_states

log = logging.getLogger("desed_task")

def build_parser(description: str, default_conf: str, default_log_dir: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--conf_file", default=default_conf, help="YAML config (default: %(default)s)")
    parser.add_argument("--log_dir", default=None, help=f"TensorBoard logs and checkpoints go to LOG_DIR/version_N (default: the config's demo.log_dir, else {default_log_dir})")
    parser.add_argument("--resume_from_checkpoint", default=None, help="continue an interrupted training run from this checkpoint (e.g. .../checkpoints/last.ckpt)")
    parser.add_argument("--test_from_checkpoint", default=None, help="only test this checkpoint on the dev-test set (network and training settings from the checkpoint, data paths from --conf_file)")
    parser.add_argument("--eval_from_checkpoint", default=None, help="only write predictions and scores of this checkpoint on the unlabelled evaluation folder (data.eval_folder)")
    parser.add_argument("--gpus", default=None, help='"0": CPU; "N": N GPUs; "i,j": those GPU indices; default: one GPU if CUDA is available, else the CPU')
    parser.add_argument("--cpu_processes", type=int, default=1, help="with --gpus 0: number of DDP processes on the CPU (gloo)")
    parser.add_argument("--num_nodes", type=int, default=1, help="number of machines for multi-node DDP")
    parser.add_argument("--fast_dev_run", action="store_true", help="one batch of train, validation and test, to check the wiring")
    return parser


def _is_main_process() -> bool:
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0


def ensure_demo_data(config: dict) -> None:
    """Build the demo dataset the first time a config with a `demo:` section is used."""
    if "demo" not in config or not _is_main_process():
        return
    from desed_task.data_generation.demo import ensure_demo_dataset

    ensure_demo_dataset(config["demo"])


def ensure_demo_embeddings(config: dict, source: str, gpus: str | None) -> None:
    """For a demo config of a network fed embeddings (a `demo:` section; the 2023 CRNN,
    ``net.use_embeddings``, see `desed_task.nnet.network_needs`): write the
    stand-in BEATs at ``pretrained.checkpoint`` when ``demo.beats_standin`` asks for it and it
    is absent, then extract the embeddings files that are missing with that checkpoint (as
    ``python -m desed_task.embeddings --conf_file``). Other configs extract with that command."""
    if "demo" not in config or not network_needs(config).embeddings or not _is_main_process():
        return
    from desed_task.embeddings.extract import config_sets, extract_config, file_sha256
    from desed_task.nnet.beats import load_beats

    beats = (config.get("pretrained") or {}).get("checkpoint")
    if not beats:
        raise ConfigError(f"{source}: a demo of the 2023 CRNN needs pretrained.checkpoint (the BEATs file)")
    if config["demo"].get("beats_standin") and not Path(beats).is_file():
        from desed_task.embeddings.standin import write_standin_beats

        log.warning("writing a STAND-IN BEATs with random weights to %s (demo.beats_standin): its "
                    "embeddings show the plumbing, not what BEATs gives", beats)
        write_standin_beats(beats, seed=int(config["demo"].get("seed", 0)))
    if all(item.out.is_file() for item in config_sets(config, source)):
        return
    device = torch_device(gpus)
    extract_config(load_beats(beats).to(device), config, source, checkpoint_sha256=file_sha256(beats),
                   device=device, progress=_is_main_process())


SEPARATED_SETS_OF_MODE = {
    mode: tuple(spec.name for spec in sets_read_in(mode) if spec.separation_rank is not None) for mode in MODES
}
"""The sets whose ``_sep`` folders finetune_on_separated.py reads in each mode."""


def ensure_separated_sets(config: dict, source: str, mode: str, gpus: str | None) -> None:
    """SSEP + SED: separate the clips missing from the ``_sep`` folders this mode reads, in this
    process, on the ``--gpus`` device, with the config's separation model (the converted
    ``training.sep_model`` by default; `desed_task.separation.sets.separate_sets`); nothing is
    loaded when they are all there (as after run_separation.py). A config without the ``_sep``
    folder keys is left to the data module's check."""
    if not _is_main_process():
        return
    from desed_task.separation.jobs import separation_jobs
    from desed_task.separation.sets import separate_sets

    names = SEPARATED_SETS_OF_MODE[mode]
    data = config["data"]
    if any(not data.get(f"{name}_folder_sep") for name in names):
        return
    try:
        separation_jobs(data, names=names)
    except ConfigError:
        return  # an absent audio folder: the data module names it
    from desed_task.separation.backend import MODEL_ERRORS

    try:
        run = separate_sets(config, source, names=names, only_missing=True, device=torch_device(gpus))
    except MODEL_ERRORS as err:
        raise ConfigError(f"{source}: the separation model: {err}") from None
    if run.failed:
        raise ConfigError(f"{source}: {run.failed} clip(s) could not be separated (named above); "
                          f"fix or remove them, then run again (python run_separation.py --conf_file {source})")


def check_package_keys(config: dict, source: str) -> None:
    """The keys whose allowed values live in their floor-2 package (config.py cannot import
    them): ``data.resampler`` (`desed_task.data.resample`) and ``separation.backend``
    (`desed_task.separation.backend`), refused before any work."""
    from desed_task.separation.backend import separation_settings

    check_config_resampler(config, source)
    separation_settings(config, source)


def sed_student(config: dict, checkpoint: dict | None) -> nn.Module:
    """The network of the config's `net:` section (``net.type``, `desed_task.nnet.build_network`)."""
    return build_network(config["net"])


def run(
    args: argparse.Namespace,
    default_log_dir: str,
    build_student: Callable[[dict, dict | None], nn.Module] = sed_student,
    separated_sources: bool = False,
) -> dict:
    """Train then test, or only test / evaluate a checkpoint. Returns the test results."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.conf_file)
    parse_gpus(args.gpus)  # a bad --gpus is refused before any work
    checkpoint = None
    from_checkpoint = args.test_from_checkpoint or args.eval_from_checkpoint
    if from_checkpoint:
        checkpoint = load_checkpoint(from_checkpoint)
        config = merge_for_test(config_from_checkpoint(checkpoint, from_checkpoint), config)
    check_package_keys(config, args.conf_file)
    log_dir = Path(args.log_dir or config.get("demo", {}).get("log_dir") or default_log_dir)
    mode = "eval" if args.eval_from_checkpoint else "test" if args.test_from_checkpoint else "fit"
    resume = load_checkpoint(args.resume_from_checkpoint) if mode == "fit" and args.resume_from_checkpoint else None
    L.seed_everything(int(config["training"]["seed"]), workers=True)

    # the network first: a checkpoint that does not fit it is refused before any data is made
    encoder = ManyHotEncoder.from_config(config)
    module = MeanTeacher(
        config,
        build_student(config, checkpoint),
        list(encoder.labels),
        encoder.frame_step,
        evaluation=mode == "eval",
    )
    test_scoring = TestScoring(config, module.class_names)  # a wrong post-processing file stops here
    if checkpoint is not None:
        load_network_weights(module, checkpoint, from_checkpoint)
    if resume is not None:
        check_resumable(module, resume, args.resume_from_checkpoint)
        del resume

    with preserved_random_states():  # built on the first run only: no draw may depend on it
        ensure_demo_data(config)
        ensure_demo_embeddings(config, args.conf_file, args.gpus)
        if separated_sources:
            ensure_separated_sets(config, args.conf_file, mode, args.gpus)
    datamodule = DESEDDataModule(config, encoder, mode=mode, separated_sources=separated_sources)
    datamodule.check_sources()
    # read and check every table and audio header now: a bad input stops the run here, before
    # the trainer makes its version_N folder (Lightning calls both again: they do nothing then)
    if _is_main_process():
        datamodule.prepare_data()
    datamodule.setup(mode)
    trainer = build_trainer(
        config,
        log_dir,
        args.gpus,
        cpu_processes=args.cpu_processes,
        num_nodes=args.num_nodes,
        fast_dev_run=args.fast_dev_run,
        recipe_callbacks=[DatasetScalerFit(), ValidationScoring(), test_scoring],
    )
    stage = mode
    try:
        if mode == "fit":
            trainer.fit(module, datamodule, ckpt_path=args.resume_from_checkpoint)
            if trainer.received_sigterm:  # came after Lightning's last look at it
                raise Interrupted(signal.SIGTERM, how_to_go_on(args, trainer, stage, signal.SIGTERM)
                                  if _is_main_process() else "")
            stage = "test"
            best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            if best and not args.fast_dev_run:
                log.info("testing the best checkpoint %s", best)
                load_network_weights(module, load_checkpoint(best), best)
                if trainer.is_global_zero:
                    link = log_dir / "best.ckpt"  # a stable name for finetune_on_separated.py
                    link.unlink(missing_ok=True)
                    # relative: the link survives moving or copying the experiment folder
                    link.symlink_to(os.path.relpath(Path(best).resolve(), link.parent.resolve()))
        trainer.test(module, datamodule, verbose=False)  # our table is printed; not Lightning's
    except UserError:
        remove_unused_version_dir(trainer)
        raise
    except (KeyboardInterrupt, SystemExit) as err:
        # Lightning ends a SIGTERMed fit or test with SystemExit() (status 0) and a Ctrl-C with
        # sys.exit(1), after stopping at a batch boundary; the checkpoints written are whole
        if not trainer.interrupted and not isinstance(err, KeyboardInterrupt):
            raise
        signum = signal.SIGTERM if trainer.received_sigterm else signal.SIGINT
        raise Interrupted(signum, how_to_go_on(args, trainer, stage, signum) if _is_main_process() else "") from None
    output_dir = test_scoring.output_dir(trainer, module.evaluation)  # a collective under DDP: every process asks
    if trainer.is_global_zero:
        if not args.fast_dev_run:
            link_latest(output_dir, log_dir)
        print(f"results written to {output_dir}", flush=True)
    return test_scoring.results


def link_latest(output_dir: Path, log_dir: Path) -> None:
    """Link ``LOG_DIR/metrics_test`` (or ``metrics_eval``) to this run's
    ``LOG_DIR/version_N/metrics_test``: a path that names the latest test whatever N is (a
    resumed run, or a second test, writes a new version_N). Relative, as ``best.ckpt``; a real
    folder of that name (written by an older version) is left alone, with a warning."""
    link = log_dir / output_dir.name
    if link.exists() and not link.is_symlink():
        log.warning("%s is a folder, not a link: left as it is; this run's results are in %s", link, output_dir)
        return
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(output_dir.resolve(), link.parent.resolve()), target_is_directory=True)


def command_line(args: argparse.Namespace, **checkpoint: str) -> str:
    """The command the user ran, with the same --conf_file, --log_dir and devices, and the
    checkpoint options given here (e.g. resume_from_checkpoint=PATH)."""
    script = sys.argv[0] if sys.argv[0].endswith(".py") else "train_sed.py"
    words = ["python", script, "--conf_file", args.conf_file]
    if args.log_dir:
        words += ["--log_dir", args.log_dir]
    if args.gpus is not None:
        words += ["--gpus", args.gpus]
    if args.cpu_processes != 1:
        words += ["--cpu_processes", str(args.cpu_processes)]
    if args.num_nodes != 1:
        words += ["--num_nodes", str(args.num_nodes)]
    for option, value in checkpoint.items():
        words += [f"--{option}", value]
    return shlex.join(words)


def how_to_go_on(args: argparse.Namespace, trainer: L.Trainer, stage: str, signum: int) -> str:
    """One line: what stopped the run, which checkpoint is kept, the command that goes on."""
    cause = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C (SIGINT)"
    if stage == "fit":
        folders = [Path(cb.dirpath) for cb in trainer.checkpoint_callbacks
                   if cb.dirpath and cb.filename == LAST_CHECKPOINT]
        last = next((str(f / f"{LAST_CHECKPOINT}.ckpt") for f in folders if (f / f"{LAST_CHECKPOINT}.ckpt").is_file()),
                    args.resume_from_checkpoint)
        if last:
            return (f"interrupted by {cause} while training; the last checkpoint {last} is kept - go "
                    f"on with: {command_line(args, resume_from_checkpoint=last)}")
        return (f"interrupted by {cause} while training, before the first epoch ended: no "
                f"checkpoint was written - start again with: {command_line(args)}")
    option = "eval_from_checkpoint" if stage == "eval" else "test_from_checkpoint"
    tested = getattr(args, option) or (trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else "")
    return (f"interrupted by {cause} while testing; test again with: "
            f"{command_line(args, **{option: tested})}")


def check_resumable(module: nn.Module, checkpoint: dict, path: str) -> None:
    """Refuse, before any training, a --resume_from_checkpoint file that is not of a training
    run or of another network (an unreadable one was refused by `load_checkpoint`)."""
    if OPTIMIZER_STATES not in checkpoint:
        raise CheckpointError(
            f"{path}: not a checkpoint of a training run (no optimizer state) - resume from "
            f"LOG_DIR/version_N/checkpoints/last.ckpt, or test it with --test_from_checkpoint"
        )
    load_network_weights(module, checkpoint, path)


def remove_unused_version_dir(trainer: L.Trainer) -> None:
    """Delete the logger's version_N folder of a run that stopped on a user error before it
    saved anything (it holds only an empty event file and hparams.yaml)."""
    log_dir = trainer.log_dir
    if not trainer.is_global_zero or not log_dir or not Path(log_dir).is_dir():
        return
    if not any(p.is_dir() for p in Path(log_dir).iterdir()):  # no checkpoints/, no metrics_*/
        shutil.rmtree(log_dir, ignore_errors=True)


def main(
    description: str,
    default_conf: str,
    default_log_dir: str,
    build_student: Callable[[dict, dict | None], nn.Module] = sed_student,
    separated_sources: bool = False,
    argv: list[str] | None = None,
) -> None:
    """Entry point: returns when the run succeeded, else exits with the status of `run_command`
    (2 on a user error, 128 + the signal number when SIGTERM or Ctrl-C stopped the run; the
    message says how to go on)."""
    args = build_parser(description, default_conf, default_log_dir).parse_args(argv)

    def train_and_test() -> None:  # the test results stay with `run`'s callers
        run(args, default_log_dir, build_student, separated_sources)

    status = run_command(
        train_and_test,
        ctrl_c_message="interrupted by Ctrl-C (SIGINT) before training started: nothing was written",
    )
    if status:
        raise SystemExit(status)
