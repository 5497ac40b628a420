"""The comparisons of ``benchmarks/oracle2021.py``: the 2021 recipe's records beside this
project's, value by value, and every difference beyond the tolerance listed.

Records (the same files on both sides, see ``../shared/oracle2021/README.md``): ``batches.jsonl``
(each training batch's dataset indices), ``index_names.json`` (index -> ``set/file``),
``steps.jsonl`` (every value logged at each training step), ``epochs.jsonl`` (the validation
values at each epoch end), ``init_student.pt`` and ``states_step.pt`` (named state dicts:
student and teacher after each of the first steps, batch-norm statistics included),
``weights_train_end.pt`` / ``weights_test.pt`` (both models when training ends and as tested),
``test_results.json`` (the test table) and ``modules.json`` (where each side's modules came from).

A value pair (a, b) differs when either is NaN or infinite, or when
``|a - b| > tolerance * max(|a|, |b|, 1e-3)``: relative for values of 1e-3 and more (learning
rates, losses, metrics, most weights), absolute (``tolerance * 1e-3``) near 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

NEAR_ZERO = 1e-3
# the 2021 recipe's names of the test values (its on_test_epoch_end and the harness's extras)
OFFICIAL_TEST_KEYS = {
    "psds1": "psds_score_scenario1",
    "psds2": "psds_score_scenario2",
    "intersection_f1_macro": "intersection_f1_macro",
    "collar_f1_macro": "event_f1_macro",
    "collar_f1_micro": "event_f1_micro",
    "segment_f1_macro": "segment_f1_macro",
}
TEST_KEYS = tuple(OFFICIAL_TEST_KEYS)
# 2021 logged its strong consistency loss under "tot_supervised" (local/sed_trainer.py); this
# project logs the supervised total under that name: 2021's value is paired with the same loss
STEP_ALIASES = {"train/student/tot_supervised": "train/student/strong_self_sup_loss"}
MODELS = ("student", "teacher")


@dataclass
class Report:
    """What a comparison found: every difference (in the order found) and the largest
    relative difference among the values that agree within the tolerance or not."""

    tolerance: float
    differences: list[str] = field(default_factory=list)
    largest: float = 0.0
    largest_at: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def differ(self, where: str, message: str) -> None:
        self.differences.append(f"{where}: {message}")

    def value(self, where: str, official: float, project: float) -> None:
        """Compare two scalars (NaN or infinity on either side is a difference)."""
        self.count("values")
        a, b = float(official), float(project)
        if not (math.isfinite(a) and math.isfinite(b)):
            self.differ(where, f"2021 {a!r}, project {b!r} (not finite)")
            self._largest(math.inf, where)
            return
        size = abs(a - b) / max(abs(a), abs(b), NEAR_ZERO)
        self._largest(size, where)
        if size > self.tolerance:
            self.differ(where, f"2021 {a!r}, project {b!r} (difference {b - a:+.3g}, relative {size:.3g})")

    def tensor(self, where: str, official, project) -> None:
        """Compare two tensors of the same name, element by element (shape and dtype first)."""
        import torch

        if tuple(official.shape) != tuple(project.shape):
            self.differ(where, f"shape {tuple(official.shape)} (2021) != {tuple(project.shape)} (project)")
            return
        self.count("tensor values", official.numel())
        if official.numel() == 0:
            return
        a, b = official.detach().double(), project.detach().double()
        finite = torch.isfinite(a) & torch.isfinite(b)
        if not bool(finite.all()):
            bad = int((~finite).flatten().nonzero()[0])
            self.differ(where, f"not finite at flat index {bad}: 2021 {float(a.flatten()[bad])!r}, "
                               f"project {float(b.flatten()[bad])!r}")
            self._largest(math.inf, where)
            return
        size = (a - b).abs() / torch.maximum(torch.maximum(a.abs(), b.abs()), torch.tensor(NEAR_ZERO, dtype=a.dtype))
        worst = int(size.flatten().argmax())
        largest = float(size.flatten()[worst])
        self._largest(largest, where)
        if largest > self.tolerance:
            n = int((size > self.tolerance).sum())
            self.differ(where, f"{n} of {a.numel()} values differ, largest at flat index {worst}: "
                               f"2021 {float(a.flatten()[worst])!r}, project {float(b.flatten()[worst])!r} "
                               f"(relative {largest:.3g})")

    def state(self, where: str, official: dict, project: dict) -> None:
        """Compare two state dicts by name (parameters and buffers)."""
        missing = sorted(set(official) - set(project))
        extra = sorted(set(project) - set(official))
        if missing or extra:
            self.differ(where, f"names differ: only in 2021 {missing[:5]}, only in the project {extra[:5]}")
        for name in official:
            if name in project:
                self.tensor(f"{where} {name}", official[name], project[name])

    def _largest(self, size: float, where: str) -> None:
        if size > self.largest or not self.largest_at:
            self.largest, self.largest_at = size, where

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self, shown: int = 10) -> str:
        """The verdict, the largest difference and the first `shown` differences."""
        counted = ", ".join(f"{n} {what}" for what, n in self.counts.items())
        lines = [f"compared {counted}; largest relative difference {self.largest:.3g} ({self.largest_at})"]
        if self.ok:
            lines.append(f"OK: no difference beyond {self.tolerance:g}")
        else:
            lines.append(f"DIFFERENT: {len(self.differences)} difference(s) beyond {self.tolerance:g}; the first:")
            lines += [f"  {line}" for line in self.differences[:shown]]
        return "\n".join(lines)


def jsonl(path: Path) -> list[dict]:
    """The records of a ``.jsonl`` file (none when absent)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _load(path: Path):
    import torch

    return torch.load(path, weights_only=True) if path.is_file() else None


def compare_batches(report: Report, official: Path, project: Path, n_steps: int | None) -> None:
    """The clips of every training batch (by name), in order."""
    names_o = json.loads((official / "index_names.json").read_text())
    names_p = json.loads((project / "index_names.json").read_text())
    batches_o = jsonl(official / "batches.jsonl")[:n_steps]
    batches_p = jsonl(project / "batches.jsonl")[:n_steps]
    if len(batches_o) != len(batches_p):
        report.differ("batches", f"{len(batches_o)} (2021) != {len(batches_p)} (project)")
    for step, (a, b) in enumerate(zip(batches_o, batches_p)):
        report.count("batches")
        clips_a, clips_b = [names_o[i] for i in a["indices"]], [names_p[i] for i in b["indices"]]
        if a["epoch"] != b["epoch"] or clips_a != clips_b:
            first = next((i for i, (x, y) in enumerate(zip(clips_a, clips_b)) if x != y), min(len(clips_a), len(clips_b)))
            report.differ(f"batch of step {step} (epoch {a['epoch']})",
                          f"other clips ({sum(x != y for x, y in zip(clips_a, clips_b))} of {len(clips_a)} differ; "
                          f"first at position {first}: 2021 {clips_a[first:first + 1]}, project {clips_b[first:first + 1]})")


def compare_steps(report: Report, official: Path, project: Path, n_steps: int | None) -> None:
    """Every value the recipe logged at each training step (losses, consistency weight,
    learning rate, step count, whether mixup ran), by name."""
    steps_o = jsonl(official / "steps.jsonl")[:n_steps]
    steps_p = jsonl(project / "steps.jsonl")[:n_steps]
    if len(steps_o) != len(steps_p):
        report.differ("steps", f"{len(steps_o)} (2021) != {len(steps_p)} (project)")
    for a, b in zip(steps_o, steps_p):
        where = f"step {a['step']} (epoch {a['epoch']})"
        for key, value in a.items():
            ours = STEP_ALIASES.get(key, key)
            if ours not in b:
                report.differ(f"{where} {key}", "not logged by the project")
            elif isinstance(value, bool) or isinstance(b[ours], bool):
                report.count("values")
                if value != b[ours]:
                    report.differ(f"{where} {key}", f"2021 {value}, project {b[ours]}")
            else:
                report.value(f"{where} {key}", value, b[ours])


def compare_epochs(report: Report, official: Path, project: Path, n_steps: int | None) -> None:
    """Every validation value of each epoch that ended within the first `n_steps` steps."""
    epochs_o = [e for e in jsonl(official / "epochs.jsonl") if n_steps is None or e["step"] <= n_steps]
    epochs_p = {e["epoch"]: e for e in jsonl(project / "epochs.jsonl")}
    for a in epochs_o:
        b = epochs_p.get(a["epoch"])
        if b is None:
            report.differ(f"validation of epoch {a['epoch']}", "not recorded by the project")
            continue
        for key, value in a.items():
            if key not in b:
                report.differ(f"validation of epoch {a['epoch']} {key}", "not logged by the project")
            else:
                report.value(f"validation of epoch {a['epoch']} {key}", value, b[key])
    extra = sorted(set(epochs_p) - {a["epoch"] for a in epochs_o})
    if n_steps is None and extra:
        report.differ("validation", f"epochs {extra} recorded by the project only")


def compare_weights(report: Report, official: Path, project: Path, n_steps: int | None) -> None:
    """The student's initial weights; student and teacher (parameters and buffers, by name)
    after each recorded step, when training ends and as tested."""
    report.state("initial student", _load(official / "init_student.pt"), _load(project / "init_student.pt"))
    states_o, states_p = _load(official / "states_step.pt") or [], _load(project / "states_step.pt") or []
    states_o, states_p = states_o[:n_steps], states_p[:n_steps]
    if len(states_o) != len(states_p):
        report.differ("weights after each step", f"{len(states_o)} steps recorded (2021) != {len(states_p)} (project)")
    for step, (a, b) in enumerate(zip(states_o, states_p)):
        for model in MODELS:
            report.state(f"{model} after step {step}", a[model], b[model])
    for name, what in (("weights_train_end.pt", "when training ends"), ("weights_test.pt", "as tested")):
        a, b = _load(official / name), _load(project / name)
        if a is None and b is None:
            continue
        if a is None or b is None:
            report.differ(f"weights {what}", f"recorded by {'the project' if a is None else '2021'} only")
            continue
        for model in MODELS:
            report.state(f"{model} {what}", a[model], b[model])


def compare_tests(report: Report, official: Path, project: Path) -> None:
    """The test table: every value of both models (both must have been recorded)."""
    path_o, path_p = official / "test_results.json", project / "test_results.json"
    if not path_o.is_file() or not path_p.is_file():
        report.differ("test table", f"not recorded: {[p.parent.name for p in (path_o, path_p) if not p.is_file()]}")
        return
    o, p = json.loads(path_o.read_text()), json.loads(path_p.read_text())
    for model in MODELS:
        for key, official_key in OFFICIAL_TEST_KEYS.items():
            a, b = o.get(f"test/{model}/{official_key}"), p.get(f"test/{model}/{key}")
            if a is None or b is None:
                report.differ(f"test {model} {key}", f"missing: 2021 {a}, project {b}")
            else:
                report.value(f"test {model} {key}", a, b)


def compare_folders(report: Report, official: Path, project: Path, tolerance: float) -> float:
    """Two folders of 16 kHz .wav files made from the same 44.1 kHz files: the same names and
    lengths, and the largest sample difference (returned; a difference beyond `tolerance`,
    absolute on samples in [-1, 1], is reported)."""
    import numpy as np
    import soundfile

    names_o = sorted(p.name for p in official.glob("*.wav"))
    names_p = sorted(p.name for p in project.glob("*.wav"))
    if names_o != names_p or not names_o:
        report.differ("dev-test 16 kHz files", f"{len(names_o)} (2021) and {len(names_p)} (project) files, "
                                                 f"names differ: {sorted(set(names_o) ^ set(names_p))[:5]}")
    largest, at = 0.0, ""
    for name in sorted(set(names_o) & set(names_p)):
        a, fs_a = soundfile.read(official / name, dtype="float64", always_2d=True)
        b, fs_b = soundfile.read(project / name, dtype="float64", always_2d=True)
        report.count("dev-test files")
        if a.shape != b.shape or fs_a != fs_b:
            report.differ(f"dev-test 16 kHz {name}", f"{a.shape} at {fs_a} Hz (2021) != {b.shape} at {fs_b} Hz (project)")
            continue
        difference = float(np.abs(a - b).max()) if a.size else 0.0
        if not np.isfinite(difference):
            difference = math.inf
        if difference > largest or not at:
            largest, at = difference, name
    if largest > tolerance:
        report.differ("dev-test 16 kHz samples", f"largest difference {largest:.3g} ({at}) beyond {tolerance:g}")
    return largest


def compare_origins(report: Report, modules: Path, home: Path, prefixes: tuple[str, ...], side: str) -> None:
    """Every module of `prefixes` that a side imported came from under `home`."""
    if not modules.is_file():
        report.differ(f"{side} modules", f"{modules} was not written")
        return
    origins = json.loads(modules.read_text())
    found = {name: path for name, path in origins.items() if name.split(".")[0] in prefixes}
    if not any(name.split(".")[0] == prefixes[0] for name in found):
        report.differ(f"{side} modules", f"no {prefixes[0]} module recorded")
    for name, path in sorted(found.items()):
        report.count(f"{side} modules")
        if path is None or not Path(path).resolve().is_relative_to(home.resolve()):
            report.differ(f"{side} module {name}", f"imported from {path}, not from {home}")


def same_files(report: Report, original: Path, copy: Path) -> None:
    """The copy of the recipe that ran holds the same Python files as the original."""
    originals = sorted(p.relative_to(original) for p in original.rglob("*.py"))
    for relative in originals:
        report.count("recipe files")
        if not (copy / relative).is_file() or (copy / relative).read_bytes() != (original / relative).read_bytes():
            report.differ(f"recipe file {relative}", f"the copy that ran differs from {original / relative}")
