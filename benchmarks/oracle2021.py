"""This project's training beside the 2021 recipe itself (``../shared/oracle2021``).

The oracle harness runs the DCASE 2021 recipe (DESED_task 367e88c, Lightning 1.2.10) on this
machine's CPU and records every training batch, every logged loss term and learning rate per
step, the weights after the first steps and the test table. This script records the same from
this project's ``train_sed.py`` (read-only wrappers: no random draw, no numeric change) and
compares the two on the same data, seed and thread count.

    python benchmarks/oracle2021.py steps [--data_root ROOT] [--steps 20]
        both codes for the first N steps on the same demo-shaped data (default: a tiny one
        built here): batches, loss terms, learning rate, student and teacher weights; exit 1
        when a value differs by more than --tolerance (1e-5)
    python benchmarks/oracle2021.py run --data_root ROOT [--official_records DIR]
        both whole runs of confs/demo.yaml (12 epochs and the test, about 20 minutes each on
        2 cores): per-epoch losses, validation, and the test tables side by side
    python benchmarks/oracle2021.py record --conf_file CONF --out DIR [--exit_after N]
        only the project's records (used by the two commands above, in a subprocess)

The oracle's environment (torch 2.13 CPU, pytorch-lightning 1.2.10, psds_eval...) is built by
``../shared/oracle2021/setup_env.sh`` on first use (about 3 minutes) in
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
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ORACLE = REPO.parent / "shared" / "oracle2021"
STEP_KEYS = (
    "train/student/loss_strong",
    "train/student/loss_weak",
    "train/student/strong_self_sup_loss",
    "train/student/weak_self_sup_loss",
    "train/weight",
    "loss",
    "lr_used",
)
TEST_KEYS = ("psds1", "psds2", "intersection_f1_macro", "collar_f1_macro", "collar_f1_micro", "segment_f1_macro")
# the 2021 recipe's names of the test values
OFFICIAL_TEST_KEYS = {
    "psds1": "psds_score_scenario1",
    "psds2": "psds_score_scenario2",
    "intersection_f1_macro": "intersection_f1_macro",
    "collar_f1_macro": "event_f1_macro",
    "collar_f1_micro": "event_f1_micro",
    "segment_f1_macro": "segment_f1_macro",
}


# ---------------------------------------------------------------------------- the project side
def record(conf_file: Path, out: Path, log_dir: Path, exit_after: int = 0, param_steps: int = 0) -> None:
    """Run ``train_sed.py --conf_file CONF`` in this process with read-only recorders writing
    the oracle's record files under `out` (batches.jsonl, steps.jsonl, epochs.jsonl,
    index_names.json, init_student.pt, params_step.pt, test_results.json)."""
    import torch

    import desed_task.training.mean_teacher as mt
    from desed_task.data import datamodule as dm
    from desed_task.data import sampler as sampler_module
    from desed_task.training.cli import main

    out.mkdir(parents=True, exist_ok=True)
    state: dict = {"epoch": -1, "step": 0, "records": {}, "params": [], "mixups": 0}
    batches = open(out / "batches.jsonl", "w")
    steps = open(out / "steps.jsonl", "w")
    epochs = open(out / "epochs.jsonl", "w")

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
            tags = ("synth", "weak", "unlabeled")
            names = [f"{tag}/{name}" for tag, s in zip(tags, self.train_sets) for name in s.filenames]
            (out / "index_names.json").write_text(json.dumps(names))

    dm.DESEDDataModule.setup = setup_recorded

    fit_start = mt.MeanTeacher.on_fit_start

    def fit_start_recorded(self):  # the weights as built (__init__ cannot be wrapped: Lightning reads its frame)
        torch.save({k: v.clone() for k, v in self.sed_student.state_dict().items()}, out / "init_student.pt")
        fit_start(self)

    mt.MeanTeacher.on_fit_start = fit_start_recorded

    log = mt.MeanTeacher.log

    def log_recorded(self, name, value, *args, **kwargs):
        state["records"][name] = float(value.detach()) if torch.is_tensor(value) else float(value)
        return log(self, name, value, *args, **kwargs)

    mt.MeanTeacher.log = log_recorded
    log_dict = mt.MeanTeacher.log_dict

    def log_dict_recorded(self, values, *args, **kwargs):
        for name, value in values.items():
            state["records"][name] = float(value.detach()) if torch.is_tensor(value) else float(value)
        return log_dict(self, values, *args, **kwargs)

    mt.MeanTeacher.log_dict = log_dict_recorded

    mixup = mt.mixup

    def mixup_recorded(*args, **kwargs):
        state["mixups"] += 1
        return mixup(*args, **kwargs)

    mt.mixup = mixup_recorded
    training_step = mt.MeanTeacher.training_step

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

    mt.MeanTeacher.training_step = training_step_recorded

    def on_train_batch_end(self, *args, **kwargs):
        if len(state["params"]) < param_steps:
            def vector(model):
                return torch.cat([p.detach().flatten().clone() for p in model.parameters()])

            state["params"].append({"student": vector(self.sed_student), "teacher": vector(self.sed_teacher),
                                    "lr_after": self.optimizers().param_groups[-1]["lr"]})
            torch.save(state["params"], out / "params_step.pt")
        if exit_after and state["step"] >= exit_after:
            for file in (steps, batches, epochs):
                file.flush()
            os._exit(0)

    mt.MeanTeacher.on_train_batch_end = on_train_batch_end
    epoch_end = mt.MeanTeacher.on_validation_epoch_end

    def epoch_end_recorded(self):
        state["records"] = {}
        epoch_end(self)
        values = dict(state["records"], epoch=self.current_epoch, step=state["step"])
        epochs.write(json.dumps(values) + "\n")
        epochs.flush()

    mt.MeanTeacher.on_validation_epoch_end = epoch_end_recorded
    test_end = mt.MeanTeacher.on_test_epoch_end

    def test_end_recorded(self):
        test_end(self)
        flat = {f"test/{m}/{k}": v for m, values in self.test_results.items() for k, v in values.items()}
        (out / "test_results.json").write_text(json.dumps(flat, indent=1))

    mt.MeanTeacher.on_test_epoch_end = test_end_recorded
    main("record", str(conf_file), str(log_dir),
         argv=["--conf_file", str(conf_file), "--log_dir", str(log_dir), "--gpus", "0"])


# ---------------------------------------------------------------------------- the oracle side
def oracle_python() -> Path:
    """The oracle environment's Python, built with the harness's setup_env.sh when absent."""
    venv = Path(os.environ.get("ORACLE2021_VENV") or Path.home() / ".cache" / "oracle2021" / "venv")
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import pytorch_lightning, psds_eval, asteroid.engine.schedulers"]
    if python.is_file() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"building the 2021 recipe's environment in {venv} (about 3 minutes)", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run(["bash", str(ORACLE / "setup_env.sh"), str(venv)], check=True)
    return python


def config_2021(config: dict) -> dict:
    """A project config in the 2021 format (what ``demo2021.yaml.in`` spells out by hand):
    no keys 2021 did not know, ``*_44k`` keys for every folder (an already 16 kHz folder
    points at itself: 2021 leaves it alone), an empty ``backend``."""
    config = copy.deepcopy(config)
    config.pop("demo", None)
    config["training"]["backend"] = None
    for key in ("max_steps_per_epoch", "persistent_workers", "precision", "clip_events_to_durations"):
        config["training"].pop(key, None)
    config["opt"].pop("warmup_first_step", None)
    config["net"].pop("uniform_dropout", None)
    data = config["data"]
    for key in ("check_audio", "sort_unlabeled"):
        data.pop(key, None)
    for name in ("synth", "weak", "unlabeled", "synth_val", "test", "eval"):
        if not data.get(f"{name}_folder_44k"):
            data[f"{name}_folder_44k"] = data[f"{name}_folder"]
    config["scaler"].setdefault("savepath", "./scaler.ckpt")
    return config


def run_oracle(config: dict, out: Path, exit_after: int = 0, param_steps: int = 0) -> Path:
    """The 2021 recipe on `config` (data paths absolute), records in ``out/records``."""
    python = oracle_python()
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ORACLE / "ref", work / "ref")
    for path in work.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    conf = out / "conf2021.yaml"
    conf.write_text(yaml.safe_dump(config_2021(config)))
    env = dict(os.environ, ORACLE_REF_PARENT=str(work), ORACLE_OUT=str(out / "records"),
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    env.pop("PYTHONPATH", None)  # the recipe's desed_task (a namespace package) must not meet ours
    if exit_after:
        env["DIAG_EXIT_AFTER"] = str(exit_after)
    if param_steps:
        env["DIAG_PARAM_STEPS"] = str(param_steps)
    with open(out / "official.log", "w") as log:
        subprocess.run([str(python), str(ORACLE / "run_official.py"), "--conf_file", str(conf),
                        "--log_dir", str(out / "exp"), "--gpus", "cpu"], env=env, stdout=log,
                       stderr=subprocess.STDOUT, check=True)
    return out / "records"


def run_project(config: dict, out: Path, exit_after: int = 0, param_steps: int = 0) -> Path:
    """This project's train_sed.py on `config`, records in ``out/records``."""
    conf = out / "conf.yaml"
    conf.write_text(yaml.safe_dump(config))
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, str(Path(__file__).resolve()), "record", "--conf_file", str(conf),
               "--out", str(out / "records"), "--log_dir", str(out / "exp"),
               "--exit_after", str(exit_after), "--param_steps", str(param_steps)]
    with open(out / "project.log", "w") as log:
        subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=True, cwd=REPO)
    return out / "records"


# ---------------------------------------------------------------------------- comparisons
def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def compare_steps(official: Path, project: Path, n_steps: int) -> dict:
    """Largest differences over the first `n_steps` steps: batches (clip names), each loss
    term, the learning rate, the student and teacher weights after each step."""
    import torch

    names_o = json.loads((official / "index_names.json").read_text())
    names_p = json.loads((project / "index_names.json").read_text())
    batches_o = [[names_o[i] for i in b["indices"]] for b in _jsonl(official / "batches.jsonl")][:n_steps]
    batches_p = [[names_p[i] for i in b["indices"]] for b in _jsonl(project / "batches.jsonl")][:n_steps]
    steps_o = _jsonl(official / "steps.jsonl")[:n_steps]
    steps_p = _jsonl(project / "steps.jsonl")[:n_steps]
    report: dict = {
        "steps": min(len(steps_o), len(steps_p)),
        "same_batches": batches_o == batches_p,
        "same_mixup": [s["mixup"] for s in steps_o] == [s["mixup"] for s in steps_p],
    }
    for key in STEP_KEYS:
        report[key] = max(abs(a[key] - b[key]) for a, b in zip(steps_o, steps_p))
    params_o = torch.load(official / "params_step.pt", weights_only=True)[:n_steps]
    params_p = torch.load(project / "params_step.pt", weights_only=True)[:n_steps]
    for model in ("student", "teacher"):
        report[f"{model}_weights"] = max(
            float((a[model] - b[model]).abs().max()) for a, b in zip(params_o, params_p)
        )
    report["initial_weights"] = max(
        float((a - b).abs().max())
        for a, b in zip(torch.load(official / "init_student.pt", weights_only=True).values(),
                        torch.load(project / "init_student.pt", weights_only=True).values())
    )
    return report


def test_table(official: Path, project: Path) -> str:
    """The two test tables side by side (official / project) and their differences."""
    o = json.loads((official / "test_results.json").read_text())
    p = json.loads((project / "test_results.json").read_text())
    lines = ["| metric | model | 2021 recipe | this project | difference |", "|---|---|---|---|---|"]
    for model in ("student", "teacher"):
        for key in TEST_KEYS:
            a, b = o.get(f"test/{model}/{OFFICIAL_TEST_KEYS[key]}"), p.get(f"test/{model}/{key}")
            if a is None or b is None:
                continue
            lines.append(f"| {key} | {model} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
    return "\n".join(lines)


def epoch_table(official: Path, project: Path) -> str:
    """Per-epoch mean training loss and validation objective (official / project)."""
    steps_o, steps_p = _jsonl(official / "steps.jsonl"), _jsonl(project / "steps.jsonl")
    val_o, val_p = _jsonl(official / "epochs.jsonl"), _jsonl(project / "epochs.jsonl")
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


# ---------------------------------------------------------------------------- data and configs
def demo_config(data_root: Path, tiny: bool) -> dict:
    """confs/demo.yaml on `data_root`; `tiny`: the tests' tiny data and network, 3 steps an
    epoch, every set's clips used (no step cap: 2021 had none)."""
    config = yaml.safe_load((REPO / "confs" / "demo.yaml").read_text())
    for key, value in config["data"].items():
        if isinstance(value, str) and value.startswith("data/demo/"):
            config["data"][key] = str(data_root / value[len("data/demo/"):])
    config["demo"]["root"] = str(data_root)
    # both codes read the one 16 kHz dev-test made by the 2021 function (build_data)
    config["data"]["test_folder_44k"] = None
    if tiny:
        config["demo"]["sizes"] = TINY_SIZES
        config["training"].update(batch_size=[2, 2, 4], batch_size_val=4, n_epochs=7, n_epochs_warmup=1)
        config["net"].update(nb_filters=[4, 8, 8, 8, 8, 8, 8], n_RNN_cell=8)
    return config


TINY_SIZES = {"synthetic_train": 12, "weak": 12, "unlabel_in_domain": 12, "synthetic_validation": 6,
              "validation": 8, "eval": 3, "clips_per_class": [2, 1], "backgrounds_per_kind": [1, 1]}


def build_data(data_root: Path, tiny: bool) -> None:
    """The demo dataset (tiny: the tests' sizes) and its 16 kHz dev-test made by the 2021
    resampling function, so that both codes read the same files."""
    sys.path.insert(0, str(REPO))
    from desed_task.data_generation.demo import DemoSizes, build_demo_dataset

    build_demo_dataset(data_root, seed=0, sizes=DemoSizes(**TINY_SIZES) if tiny else DemoSizes())
    test_16k = data_root / "audio" / "validation" / "validation_16k"
    if not test_16k.is_dir():
        env = dict(os.environ, ORACLE_REF_PARENT=str(ORACLE))
        env.pop("PYTHONPATH", None)
        subprocess.run([str(oracle_python()), str(ORACLE / "resample_test_2021.py"),
                        str(data_root / "audio" / "validation" / "validation_44k") + "/", str(test_16k) + "/"],
                       env=env, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record")
    rec.add_argument("--conf_file", type=Path, required=True)
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--log_dir", type=Path, required=True)
    rec.add_argument("--exit_after", type=int, default=0)
    rec.add_argument("--param_steps", type=int, default=0)
    steps = commands.add_parser("steps")
    steps.add_argument("--data_root", type=Path, default=None, help="default: a tiny demo dataset under --work")
    steps.add_argument("--steps", type=int, default=20)
    steps.add_argument("--tolerance", type=float, default=1e-5)
    steps.add_argument("--work", type=Path, default=Path("exp/oracle2021_steps"))
    run = commands.add_parser("run")
    run.add_argument("--data_root", type=Path, required=True)
    run.add_argument("--work", type=Path, default=Path("exp/oracle2021_run"))
    run.add_argument("--official_records", type=Path, default=None, help="records of an earlier oracle run")
    args = parser.parse_args()

    if args.command == "record":
        record(args.conf_file, args.out, args.log_dir, args.exit_after, args.param_steps)
        return
    if not ORACLE.is_dir():
        raise SystemExit(f"error: {ORACLE} is absent: the 2021 recipe harness is needed")
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    if args.command == "steps":
        tiny = args.data_root is None
        data_root = (work / "data" if tiny else args.data_root).resolve()
        build_data(data_root, tiny)
        config = demo_config(data_root, tiny)
        (work / "official").mkdir(parents=True)
        (work / "project").mkdir(parents=True)
        official = run_oracle(config, work / "official", args.steps, args.steps)
        project = run_project(config, work / "project", args.steps, args.steps)
        report = compare_steps(official, project, args.steps)
        print(json.dumps(report, indent=1))
        worst = max(v for k, v in report.items() if isinstance(v, float))
        ok = report["same_batches"] and report["same_mixup"] and worst <= args.tolerance
        print(f"largest difference {worst:.3g} over {report['steps']} steps: {'OK' if ok else 'DIFFERENT'}")
        raise SystemExit(0 if ok else 1)
    data_root = args.data_root.resolve()
    build_data(data_root, tiny=False)
    config = demo_config(data_root, tiny=False)
    (work / "project").mkdir(parents=True)
    official = args.official_records
    if official is None:
        (work / "official").mkdir(parents=True)
        official = run_oracle(config, work / "official")
    project = run_project(config, work / "project")
    print(epoch_table(official, project) + "\n\n" + test_table(official, project))


if __name__ == "__main__":
    main()
