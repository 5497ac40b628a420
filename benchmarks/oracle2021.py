"""This project's training beside the 2021 recipe itself (``../shared/oracle2021``), value by value.

The oracle harness runs the DCASE 2021 recipe (DESED_task 367e88c, Lightning 1.2.10) on this
machine's CPU and records every training batch, every value logged at each step, the validation
values of every epoch, the weights and the test table. This script records the same from this
project's ``train_sed.py`` (read-only wrappers: no random draw, no numeric change), runs both on
the same data, seed and thread count, and compares them (``benchmarks/oracle2021_compare.py``):
the clips of every batch, every logged step value, every epoch's validation values, the student's
and teacher's parameters and buffers by name (batch-norm statistics included) and the test table.
It exits 1 on any difference beyond ``--tolerance`` (1e-12, relative where the value is not near
0; NaN is a difference) and prints the first differences found.

Each side resamples the 44.1 kHz dev-test its own default way (the recipe's ``train_sed.py`` with
resampy 0.2.2, this project with its ``kaiser_best``) into its own folder; the two folders are
compared first (largest sample difference, beyond ``--audio_tolerance`` a difference). The recipe
lists the unlabelled folder sorted (``ORACLE_LISTING=sorted``), as this project does by default
(``data.sort_unlabeled``), and runs with no ``DIAG_*`` switch of the caller's environment; where
its modules came from (the copy of ``../shared/oracle2021/ref`` it ran) is checked.

    python benchmarks/oracle2021.py steps [--data_root ROOT] [--steps 20] [--set KEY=VALUE ...]
        both codes for the first N steps on a tiny demo dataset (built under ROOT, default
        WORK/data; --size demo: the demo's sizes), the project's config changed by --set
        (e.g. --set opt.warmup_first_step=true); --official_records DIR reuses a recipe run
    python benchmarks/oracle2021.py recipe --data_root ROOT --out DIR [--steps 20]
        only the recipe's side of `steps` (records in DIR/records, for --official_records)
    python benchmarks/oracle2021.py run --data_root ROOT [--official_records DIR]
        both whole runs of confs/demo.yaml (12 epochs and the test, side by side in two
        processes): per-epoch losses, validation and the test tables, then the comparison
    python benchmarks/oracle2021.py record --conf_file CONF --out DIR [--exit_after N]
        only the project's records (used by the commands above, in a subprocess)

The oracle's environment (torch 2.13 CPU, pytorch-lightning 1.2.10, psds_eval, resampy 0.2.2...)
is built by ``../shared/oracle2021/setup_env.sh`` on first use (about 3 minutes) in
``$ORACLE2021_VENV`` (default ``~/.cache/oracle2021/venv``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from oracle2021_compare import (
    OFFICIAL_TEST_KEYS,
    TEST_KEYS,
    Report,
    compare_batches,
    compare_epochs,
    compare_folders,
    compare_origins,
    compare_steps,
    compare_tests,
    compare_weights,
    jsonl,
    same_files,
)

REPO = Path(__file__).resolve().parents[1]
ORACLE = REPO.parent / "shared" / "oracle2021"
RECIPE_SIDE = Path(__file__).resolve().with_name("oracle2021_recipe.py")
DEVTEST = "devtest_16k"  # each side's own 16 kHz dev-test, in its output folder
PL_VERSION = "1.2.10"


# ---------------------------------------------------------------------------- the project side
def _named(module) -> dict:
    """Both models' state dicts, cloned: {"student": {name: tensor}, "teacher": {...}}."""
    return {model: {k: v.detach().clone() for k, v in getattr(module, f"sed_{model}").state_dict().items()}
            for model in ("student", "teacher")}


def record(conf_file: Path, out: Path, log_dir: Path, exit_after: int = 0, param_steps: int = 0) -> None:
    """Run ``train_sed.py --conf_file CONF`` in this process with read-only recorders writing
    the oracle's record files under `out` (batches.jsonl, steps.jsonl, epochs.jsonl,
    index_names.json, init_student.pt, states_step.pt, weights_train_end.pt, weights_test.pt,
    test_results.json, modules.json)."""
    import torch

    import desed_task.training.mean_teacher as mt
    from desed_task.data import datamodule as dm
    from desed_task.data import sampler as sampler_module
    from desed_task.sets import BATCH_PARTS
    from desed_task.training.cli import main
    from desed_task.training.scoring import TestScoring, ValidationScoring

    out.mkdir(parents=True, exist_ok=True)
    state: dict = {"epoch": -1, "step": 0, "records": {}, "states": [], "mixups": 0}
    batches = open(out / "batches.jsonl", "w")
    steps = open(out / "steps.jsonl", "w")
    epochs = open(out / "epochs.jsonl", "w")
    cls = mt.MeanTeacher

    iterate = sampler_module.MixedBatchSampler.__iter__

    def iterate_recorded(self):
        state["epoch"] += 1
        for batch in iterate(self):
            batches.write(json.dumps({"epoch": state["epoch"], "indices": list(map(int, batch))}) + "\n")
            batches.flush()
            yield batch

    sampler_module.MixedBatchSampler.__iter__ = iterate_recorded

    setup = dm.DESEDDataModule.setup

    def setup_recorded(self, stage=None):
        setup(self, stage)
        if self.train_sets:
            names = [f"{tag}/{name}" for tag, s in zip(BATCH_PARTS, self.train_sets) for name in s.filenames]
            (out / "index_names.json").write_text(json.dumps(names))

    dm.DESEDDataModule.setup = setup_recorded

    fit_start = cls.on_fit_start

    # the weights as built (__init__ cannot be wrapped: Lightning reads its frame); the module's
    # hook runs after the scaler-fit callback's, which leaves the networks as they are
    def fit_start_recorded(self):
        torch.save({k: v.clone() for k, v in self.sed_student.state_dict().items()}, out / "init_student.pt")
        origins = {name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())
                   if name.split(".")[0] == "desed_task"}
        (out / "modules.json").write_text(json.dumps(origins, indent=1))
        fit_start(self)

    cls.on_fit_start = fit_start_recorded

    def keep(values: dict) -> None:
        for name, value in values.items():
            state["records"][name] = float(value.detach()) if torch.is_tensor(value) else float(value)

    log, log_dict = cls.log, cls.log_dict

    def log_recorded(self, name, value, *args, **kwargs):
        keep({name: value})
        return log(self, name, value, *args, **kwargs)

    def log_dict_recorded(self, values, *args, **kwargs):
        keep(values)
        return log_dict(self, values, *args, **kwargs)

    cls.log, cls.log_dict = log_recorded, log_dict_recorded

    mixup = mt.mixup

    def mixup_recorded(*args, **kwargs):
        state["mixups"] += 1
        return mixup(*args, **kwargs)

    mt.mixup = mixup_recorded
    training_step = cls.training_step

    def training_step_recorded(self, batch, batch_idx):
        state["records"] = {}
        mixups = state["mixups"]
        lr_used = self.optimizers().param_groups[-1]["lr"]
        loss = training_step(self, batch, batch_idx)
        values = dict(state["records"])
        values["loss"] = values.pop("train/loss", float(loss.detach()))
        values.update(step=state["step"], epoch=self.current_epoch, batch_idx=int(batch_idx),
                      mixup=state["mixups"] > mixups, lr_used=lr_used)
        steps.write(json.dumps(values) + "\n")
        steps.flush()
        state["step"] += 1
        return loss

    cls.training_step = training_step_recorded
    batch_end = cls.on_train_batch_end

    def batch_end_recorded(self, *args, **kwargs):
        if len(state["states"]) < param_steps:
            state["states"].append(_named(self))
            torch.save(state["states"], out / "states_step.pt")
        if exit_after and state["step"] >= exit_after:
            for file in (steps, batches, epochs):
                file.flush()
            os._exit(0)
        return batch_end(self, *args, **kwargs)

    cls.on_train_batch_end = batch_end_recorded
    epoch_end = ValidationScoring.on_validation_epoch_end  # logs the validation values

    def epoch_end_recorded(self, trainer, module):
        state["records"] = {}
        epoch_end(self, trainer, module)
        values = dict(state["records"], epoch=module.current_epoch, step=state["step"])
        epochs.write(json.dumps(values) + "\n")
        epochs.flush()

    ValidationScoring.on_validation_epoch_end = epoch_end_recorded
    train_end, test_start, test_end = cls.on_train_end, cls.on_test_start, TestScoring.on_test_epoch_end

    def train_end_recorded(self):
        torch.save(_named(self), out / "weights_train_end.pt")
        return train_end(self)

    def test_start_recorded(self):
        torch.save(_named(self), out / "weights_test.pt")
        return test_start(self)

    def test_end_recorded(self, trainer, module):
        test_end(self, trainer, module)
        flat = {f"test/{m}/{k}": v for m, values in self.results.items() for k, v in values.items()}
        (out / "test_results.json").write_text(json.dumps(flat, indent=1))

    cls.on_train_end, cls.on_test_start = train_end_recorded, test_start_recorded
    TestScoring.on_test_epoch_end = test_end_recorded
    main("record", str(conf_file), str(log_dir),
         argv=["--conf_file", str(conf_file), "--log_dir", str(log_dir), "--gpus", "0"])


# ---------------------------------------------------------------------------- the two processes
def oracle_python() -> Path:
    """The oracle environment's Python, built with the harness's setup_env.sh when absent."""
    venv = Path(os.environ.get("ORACLE2021_VENV") or Path.home() / ".cache" / "oracle2021" / "venv")
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import pytorch_lightning, psds_eval, resampy, asteroid.engine.schedulers"]
    if python.is_file() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"building the 2021 recipe's environment in {venv} (about 3 minutes)", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run(["bash", str(ORACLE / "setup_env.sh"), str(venv)], check=True)
    return python


def config_2021(config: dict, out: Path) -> dict:
    """A project config in the 2021 format (what ``demo2021.yaml.in`` spells out by hand):
    no keys 2021 did not know, ``*_44k`` keys for every folder (an already 16 kHz folder
    points at itself: 2021 leaves it alone), an empty ``backend``; the dev-test resampled by
    the recipe into ``out/devtest_16k``, its durations files copied into `out` (the recipe
    rewrites them after resampling)."""
    config = copy.deepcopy(config)
    config.pop("demo", None)
    config["training"]["backend"] = None
    for key in ("max_steps_per_epoch", "persistent_workers", "precision", "clip_events_to_durations"):
        config["training"].pop(key, None)
    config["opt"].pop("warmup_first_step", None)
    config["net"].pop("uniform_dropout", None)
    data = config["data"]
    for key in ("check_audio", "sort_unlabeled", "resampler"):
        data.pop(key, None)
    data["test_folder"] = str(out / DEVTEST)
    for name in ("synth", "weak", "unlabeled", "synth_val", "test", "eval"):
        if not data.get(f"{name}_folder_44k"):
            data[f"{name}_folder_44k"] = data[f"{name}_folder"]
    for key in ("synth_val_dur", "test_dur"):
        copied = out / Path(data[key]).name
        shutil.copyfile(data[key], copied)
        data[key] = str(copied)
    config["scaler"].setdefault("savepath", "./scaler.ckpt")
    return config


def start_recipe(config: dict, out: Path, exit_after: int, param_steps: int, listing: str) -> subprocess.Popen:
    """Start the 2021 recipe on `config` (data paths absolute) in a copy of the harness's
    ``ref/``; records in ``out/records``, its output in ``out/official.log``."""
    python = oracle_python()
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ORACLE / "ref", work / "ref")
    for path in work.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    conf = out / "conf2021.yaml"
    conf.write_text(yaml.safe_dump(config_2021(config, out)))
    # nothing of the caller's diagnostics or harness switches: only what this comparison sets
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIAG_", "ORACLE_")) and k != "PYTHONPATH"}
    env.update(ORACLE_REF_PARENT=str(work), ORACLE_OUT=str(out / "records"), ORACLE_LISTING=listing,
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    if exit_after:
        env["DIAG_EXIT_AFTER"] = str(exit_after)
    if param_steps:
        env["DIAG_PARAM_STEPS"] = str(param_steps)
    command = [str(python), str(RECIPE_SIDE), str(ORACLE / "run_official.py"), "--conf_file", str(conf),
               "--log_dir", str(out / "exp"), "--gpus", "cpu"]
    return subprocess.Popen(command, env=env, stdout=open(out / "official.log", "w"), stderr=subprocess.STDOUT)


def start_project(config: dict, out: Path, exit_after: int, param_steps: int) -> subprocess.Popen:
    """Start this project's train_sed.py on `config`, its dev-test resampled into
    ``out/devtest_16k``; records in ``out/records``, its output in ``out/project.log``."""
    config = copy.deepcopy(config)
    config["data"]["test_folder"] = str(out / DEVTEST)
    conf = out / "conf.yaml"
    conf.write_text(yaml.safe_dump(config))
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, str(Path(__file__).resolve()), "record", "--conf_file", str(conf),
               "--out", str(out / "records"), "--log_dir", str(out / "exp"),
               "--exit_after", str(exit_after), "--param_steps", str(param_steps)]
    return subprocess.Popen(command, env=env, stdout=open(out / "project.log", "w"),
                            stderr=subprocess.STDOUT, cwd=REPO)


def finish(runs: dict[str, tuple[subprocess.Popen, Path]]) -> None:
    """Wait for every started side; one that failed ends this command with its log's tail."""
    started = time.perf_counter()
    for name, (process, log) in runs.items():
        code = process.wait()
        print(f"{name}: done after {time.perf_counter() - started:.0f} s (exit {code}, log {log})", flush=True)
        if code != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise SystemExit(f"error: the {name} run failed (exit {code}); the end of {log}:\n{tail}")


def recipe_run(config: dict, out: Path, exit_after: int = 0, param_steps: int = 0, listing: str = "sorted") -> Path:
    """Only the recipe's side; returns its records folder."""
    out.mkdir(parents=True, exist_ok=True)
    finish({"2021 recipe": (start_recipe(config, out, exit_after, param_steps, listing), out / "official.log")})
    return out / "records"


# ---------------------------------------------------------------------------- data and configs
TINY_SIZES = {"synthetic_train": 12, "weak": 12, "unlabel_in_domain": 12, "synthetic_validation": 6,
              "validation": 8, "eval": 3, "clips_per_class": [2, 1], "backgrounds_per_kind": [1, 1]}


def demo_config(data_root: Path, tiny: bool) -> dict:
    """confs/demo.yaml on `data_root`; `tiny`: the tests' tiny data and network, 3 steps an
    epoch, every set's clips used (no step cap: 2021 had none)."""
    config = yaml.safe_load((REPO / "confs" / "demo.yaml").read_text())
    for key, value in config["data"].items():
        if isinstance(value, str) and value.startswith("data/demo/"):
            config["data"][key] = str(data_root / value[len("data/demo/"):])
    config["demo"]["root"] = str(data_root)
    if tiny:
        config["demo"]["sizes"] = TINY_SIZES
        config["training"].update(batch_size=[2, 2, 4], batch_size_val=4, n_epochs=7, n_epochs_warmup=1)
        config["net"].update(nb_filters=[4, 8, 8, 8, 8, 8, 8], n_RNN_cell=8)
    return config


def build_data(data_root: Path, tiny: bool) -> None:
    """The demo dataset (tiny: the tests' sizes); nothing is done when it is complete."""
    sys.path.insert(0, str(REPO))
    from desed_task.data_generation.demo import DemoSizes, build_demo_dataset

    build_demo_dataset(data_root, seed=0, sizes=DemoSizes(**TINY_SIZES) if tiny else DemoSizes())


def with_settings(config: dict, settings: list[str]) -> dict:
    """`config` with each ``KEY=VALUE`` of `settings` (dotted key, YAML value) applied."""
    config = copy.deepcopy(config)
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep or "." not in key:
            raise SystemExit(f"error: --set {setting!r}: write SECTION.KEY=VALUE, e.g. opt.warmup_first_step=true")
        section, name = key.split(".", 1)
        config.setdefault(section, {})[name] = yaml.safe_load(value)
    return config


# ---------------------------------------------------------------------------- the comparison
def compare(official: Path, project: Path, n_steps: int | None, tolerance: float, audio_tolerance: float) -> Report:
    """Every comparison of the two records folders (`n_steps`: the first steps only, no test
    table; None: the whole run). The dev-test folders are the records' siblings."""
    report = Report(tolerance)
    work = official.parent / "work"
    compare_origins(report, official / "modules.json", work / "ref", ("desed_task", "local"), "2021 recipe")
    same_files(report, ORACLE / "ref", work / "ref")
    origins = json.loads((official / "modules.json").read_text()) if (official / "modules.json").is_file() else {}
    if origins.get("version:pytorch_lightning") != PL_VERSION:
        report.differ("2021 recipe", f"ran pytorch_lightning {origins.get('version:pytorch_lightning')}, not {PL_VERSION}")
    compare_origins(report, project / "modules.json", REPO / "desed_task", ("desed_task",), "project")
    largest = compare_folders(report, official.parent / DEVTEST, project.parent / DEVTEST, audio_tolerance)
    print(f"dev-test at 16 kHz, each side's own resampling: largest sample difference {largest:.3g}", flush=True)
    compare_batches(report, official, project, n_steps)
    compare_steps(report, official, project, n_steps)
    compare_epochs(report, official, project, n_steps)
    compare_weights(report, official, project, n_steps)
    if n_steps is None:
        compare_tests(report, official, project)
    return report


def test_table(official: Path, project: Path) -> str:
    """The two test tables side by side (official / project) and their differences."""
    if not (official / "test_results.json").is_file() or not (project / "test_results.json").is_file():
        return "(no test table: a side did not record one)"
    o = json.loads((official / "test_results.json").read_text())
    p = json.loads((project / "test_results.json").read_text())
    lines = ["| metric | model | 2021 recipe | this project | difference |", "|---|---|---|---|---|"]
    for model in ("student", "teacher"):
        for key in TEST_KEYS:
            a, b = o.get(f"test/{model}/{OFFICIAL_TEST_KEYS[key]}"), p.get(f"test/{model}/{key}")
            if a is None or b is None:
                continue
            lines.append(f"| {key} | {model} | {a:.4f} | {b:.4f} | {b - a:+.2g} |")
    return "\n".join(lines)


def epoch_table(official: Path, project: Path) -> str:
    """Per-epoch mean training loss and validation objective (official / project)."""
    steps_o, steps_p = jsonl(official / "steps.jsonl"), jsonl(project / "steps.jsonl")
    val_o, val_p = jsonl(official / "epochs.jsonl"), jsonl(project / "epochs.jsonl")
    lines = ["| epoch | loss (2021 / ours) | val/obj_metric (2021 / ours) |", "|---|---|---|"]
    for epoch in range(max(s["epoch"] for s in steps_o + steps_p) + 1):
        a = [s["loss"] for s in steps_o if s["epoch"] == epoch]
        b = [s["loss"] for s in steps_p if s["epoch"] == epoch]
        va = next((v.get("val/obj_metric") for v in val_o if v["epoch"] == epoch), None)
        vb = next((v.get("val/obj_metric") for v in val_p if v["epoch"] == epoch), None)
        mean = lambda x: f"{sum(x) / len(x):.4f}" if x else "-"  # noqa: E731
        value = lambda x: f"{x:.4f}" if x is not None else "-"  # noqa: E731
        lines.append(f"| {epoch} | {mean(a)} / {mean(b)} | {value(va)} / {value(vb)} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record")
    rec.add_argument("--conf_file", type=Path, required=True)
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--log_dir", type=Path, required=True)
    rec.add_argument("--exit_after", type=int, default=0)
    rec.add_argument("--param_steps", type=int, default=0)
    for name in ("steps", "recipe", "run"):
        sub = commands.add_parser(name)
        sub.add_argument("--data_root", type=Path, default=None, required=name == "run",
                         help="the demo dataset (built there when absent; steps: default WORK/data)")
        sub.add_argument("--listing", choices=("sorted", "glob"), default="sorted",
                         help="the recipe's listing of the unlabelled folder (ORACLE_LISTING; default sorted, "
                              "as the project's default data.sort_unlabeled: true)")
        if name == "recipe":
            sub.add_argument("--out", type=Path, required=True)
        else:
            sub.add_argument("--work", type=Path, default=Path(f"exp/oracle2021_{name}"))
            sub.add_argument("--official_records", type=Path, default=None,
                             help="records of an earlier recipe run (`recipe`, or OUT/official/records)")
            sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                             help="change the project's config (not the recipe's), e.g. opt.warmup_first_step=true")
            sub.add_argument("--tolerance", type=float, default=1e-12)
            sub.add_argument("--audio_tolerance", type=float, default=1e-8,
                             help="largest sample difference allowed between the two 16 kHz dev-test folders")
        if name != "run":
            sub.add_argument("--steps", type=int, default=20)
            sub.add_argument("--size", choices=("tiny", "demo"), default="tiny")
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args.command == "record":
        record(args.conf_file, args.out, args.log_dir, args.exit_after, args.param_steps)
        return
    if not ORACLE.is_dir():
        raise SystemExit(f"error: {ORACLE} is absent: the 2021 recipe harness is needed")
    tiny = args.command != "run" and args.size == "tiny"
    steps = args.steps if args.command != "run" else 0
    if args.command == "recipe":
        data_root = args.data_root.resolve()
        build_data(data_root, tiny)
        shutil.rmtree(args.out, ignore_errors=True)
        records = recipe_run(demo_config(data_root, tiny), args.out.resolve(), steps, steps, args.listing)
        print(f"records in {records}")
        return
    work = args.work.resolve()
    shutil.rmtree(work / "project", ignore_errors=True)
    data_root = (args.data_root or work / "data").resolve()
    build_data(data_root, tiny)
    config = demo_config(data_root, tiny)
    runs = {}
    official = args.official_records.resolve() if args.official_records else None
    if official is None:
        shutil.rmtree(work / "official", ignore_errors=True)
        (work / "official").mkdir(parents=True)
        runs["2021 recipe"] = (start_recipe(config, work / "official", steps, steps, args.listing),
                               work / "official" / "official.log")
        official = work / "official" / "records"
    elif steps and len(jsonl(official / "steps.jsonl")) < steps:
        raise SystemExit(f"error: {official} holds fewer than {steps} steps: run `recipe --steps {steps}` again")
    (work / "project").mkdir(parents=True)
    runs["project"] = (start_project(with_settings(config, args.set), work / "project", steps, steps),
                       work / "project" / "project.log")
    finish(runs)
    project = work / "project" / "records"
    report = compare(official, project, steps or None, args.tolerance, args.audio_tolerance)
    if args.command == "run":
        print(epoch_table(official, project) + "\n\n" + test_table(official, project), flush=True)
    print(report.summary(), flush=True)
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
