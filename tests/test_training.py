"""The training pipeline end to end on a tiny demo dataset: train, validate, test, test from a
checkpoint, evaluate, resume after a kill, DDP on two CPU processes, and the no-data message."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from pipeline import REPO, tiny_config, write_config
from pipeline import run_cli as _run

pytestmark = pytest.mark.slow


def _script(args: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(REPO / "train_sed.py"), *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs,
    )


def test_train_then_test_from_checkpoint_reproduces(tiny_data, tmp_path, monkeypatch):
    from desed_task.training.mean_teacher import MeanTeacher

    seen: list[tuple[int, tuple[str, ...]]] = []  # (epoch, clips) of each batch training_step got
    training_step = MeanTeacher.training_step

    def recorded(self, batch, batch_idx):
        clips = zip(batch["label_type"].tolist(), batch["filename"])  # sets reuse names
        seen.append((self.current_epoch, tuple(f"{kind}/{name}" for kind, name in clips)))
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(MeanTeacher, "training_step", recorded)
    log_dir = tmp_path / "exp"
    conf = write_config(tiny_config(tiny_data, log_dir, n_epochs=3), tmp_path / "tiny.yaml")
    results = _run(conf)

    # every epoch draws new batches (as 2021's RandomSamplers): none repeats another, and
    # the clips seen grow epoch by epoch (2 batches an epoch cover part of each set)
    epochs = [[clips for e, clips in seen if e == epoch] for epoch in range(3)]
    assert all(len(batches) == 2 for batches in epochs)
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2] and epochs[0] != epochs[2]
    clips_seen = [len({c for batches in epochs[: e + 1] for clips in batches for c in clips}) for e in range(3)]
    assert clips_seen[0] < clips_seen[1] < clips_seen[2], clips_seen
    assert set(results) == {"student", "teacher"}
    for model in results.values():
        assert {"psds1", "psds2", "psds1_exact", "psds2_exact", "intersection_f1_macro",
                "collar_f1_macro", "collar_f1_micro", "segment_f1_macro"} <= set(model)
    version = log_dir / "version_0"
    best = log_dir / "best.ckpt"
    assert best.is_symlink() and (version / "checkpoints" / "last.ckpt").is_file()
    out = version / "metrics_test"
    assert (out / "summary.md").is_file()
    for model in ("student", "teacher"):
        assert len(list((out / model / "operating_points").glob("predictions_th_*.tsv"))) == 50
        assert list((out / model / "scores" / "raw").glob("*.tsv")) and list((out / model).glob("*.png"))
        assert list((out / model / "scores" / "filtered").glob("*.tsv"))
    assert list(version.glob("events.out.tfevents.*"))

    again = _run(conf, "--test_from_checkpoint", str(best), "--log_dir", str(tmp_path / "retest"))
    for model in results:
        for key, value in results[model].items():
            assert again[model][key] == pytest.approx(value, abs=1e-9), (model, key)


def test_eval_from_checkpoint_writes_predictions_only(tiny_data, tmp_path):
    conf = write_config(tiny_config(tiny_data, tmp_path / "exp", n_epochs=1), tmp_path / "tiny.yaml")
    _run(conf)
    _run(conf, "--eval_from_checkpoint", str(tmp_path / "exp" / "best.ckpt"), "--log_dir", str(tmp_path / "eval"))
    out = tmp_path / "eval" / "version_0" / "metrics_eval" / "teacher"
    predictions = pd.read_csv(out / "predictions_05_teacher.tsv", sep="\t")
    assert list(predictions.columns) == ["event_label", "onset", "offset", "filename"]  # as 2021 wrote them
    assert len(list(out.glob("predictions_th_*.tsv"))) == 50
    for folder in ("raw", "filtered"):
        assert len(list((out / "scores" / folder).glob("*.tsv"))) == 3


def _last_saves(last: Path, seen: set[int]) -> int:
    """How many distinct versions of `last.ckpt` were seen (it is rewritten every epoch)."""
    if last.is_file():
        seen.add(last.stat().st_mtime_ns)
    return len(seen)


def test_resume_after_a_sigkill_at_a_random_point_ends_as_an_uninterrupted_run(tiny_data, tmp_path):
    """SIGKILL a seeded random time after the first epoch's checkpoint (it may land in a step, a
    validation or a checkpoint write), resume from last.ckpt: the planned epochs are finished,
    no step is done twice, and weights, best checkpoint and test metrics equal those of an
    uninterrupted run (the random generators' states are restored with the checkpoint)."""
    rng = random.Random(10)
    n_epochs, steps_per_epoch = 2, 2
    straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"
    straight_conf = write_config(tiny_config(tiny_data, straight_dir, n_epochs=n_epochs), tmp_path / "straight.yaml")
    killed_conf = write_config(tiny_config(tiny_data, killed_dir, n_epochs=n_epochs), tmp_path / "killed.yaml")
    straight = _script(["--conf_file", str(straight_conf), "--gpus", "0"], tmp_path)  # meanwhile
    proc = _script(["--conf_file", str(killed_conf), "--gpus", "0"], tmp_path)
    last = killed_dir / "version_0" / "checkpoints" / "last.ckpt"
    kill_after_saves, delay = rng.randint(1, n_epochs - 1), rng.uniform(0.0, 2.0)
    seen: set[int] = set()
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and _last_saves(last, seen) < kill_after_saves:
        time.sleep(0.05)
    time.sleep(delay)
    assert proc.poll() is None, "the run ended before it could be killed:\n" + proc.stdout.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = torch.load(last, map_location="cpu", weights_only=True)  # whole: saves are atomic
    assert 0 < saved["global_step"] < n_epochs * steps_per_epoch

    resumed = _script(["--conf_file", str(killed_conf), "--gpus", "0", "--resume_from_checkpoint", str(last)], tmp_path)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "Restored all states from the checkpoint" in output and "| psds1 |" in output
    # what a user sees: our table and where it is, no Lightning table, tips or dependency noise
    assert f"results written to {killed_dir / 'version_1' / 'metrics_test'}" in output
    for noise in ("Test metric", "💡", "GPU available: False", "LeafSpec", "pkg_resources", "Traceback"):
        assert noise not in output, noise
    straight_output, _ = straight.communicate(timeout=600)
    assert straight.returncode == 0, straight_output

    final = torch.load(killed_dir / "version_1" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    reference = torch.load(straight_dir / "version_0" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert final["global_step"] == reference["global_step"] == n_epochs * steps_per_epoch
    assert final["epoch"] == reference["epoch"]
    for key, value in reference["state_dict"].items():
        assert torch.equal(final["state_dict"][key], value), key
    table = [line for line in straight_output.splitlines() if line.startswith("| ")]
    assert table and table == [line for line in output.splitlines() if line.startswith("| ")]


def _steps(path: Path, stage: str) -> list[dict]:
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["stage"] == stage]


def _by_set(clips: list[str]) -> dict[str, list[str]]:
    sets: dict[str, list[str]] = {}
    for clip in clips:
        sets.setdefault(clip.split("/")[0], []).append(clip)
    return sets


def test_ddp_on_two_cpu_processes(tiny_data, tmp_path):
    """train_sed.py --cpu_processes 2, each process recording its steps
    (tests/train_sed_recording_steps.py): in every epoch the two processes train on disjoint
    shards of each set, perm[rank::2] of the one permutation both draw from the global torch
    generator; their weights stay equal step by step; validation and test clips are split
    between them and the metrics are computed once, on the whole set: the DDP run's table and
    scores are those of its best checkpoint tested by one process."""
    sizes, epochs = {"strong": 12, "weak": 12, "unlabeled": 12}, 2  # pipeline.TINY_SIZES
    config = tiny_config(tiny_data, tmp_path / "exp", n_epochs=epochs, batch_size=[1, 1, 2], max_steps_per_epoch=None)
    conf = write_config(config, tmp_path / "tiny.yaml")
    records = tmp_path / "records"
    records.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "train_sed_recording_steps.py"), "--conf_file", str(conf),
         "--gpus", "0", "--cpu_processes", "2"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "DESED_RECORD_DIR": str(records)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    ranks = [records / "rank0.jsonl", records / "rank1.jsonl"]

    # training: 3 steps an epoch per process (unlabelled: 6 clips of each shard, 2 a batch)
    train = [_steps(path, "train") for path in ranks]
    assert [len(steps) for steps in train] == [epochs * 3] * 2
    assert [s["weights"] for s in train[0]] == [s["weights"] for s in train[1]]  # replicas stay equal
    assert len({s["weights"] for s in train[0]}) == epochs * 3  # and every step trains them
    shards = [[{kind: [] for kind in sizes} for _ in range(epochs)] for _ in ranks]
    for rank, steps in enumerate(train):
        for step in steps:
            for kind, clips in _by_set(step["clips"]).items():
                shards[rank][step["epoch"]][kind] += clips
    for epoch in range(epochs):
        for kind in sizes:
            mine, theirs = shards[0][epoch][kind], shards[1][epoch][kind]
            assert len(set(mine)) == len(mine) == len(theirs) == len(set(theirs))
            assert not set(mine) & set(theirs), (epoch, kind)
        assert len(set(shards[0][epoch]["unlabeled"]) | set(shards[1][epoch]["unlabeled"])) == sizes["unlabeled"]
    assert shards[0][0] != shards[0][1]  # a new permutation every epoch

    # both processes drew the same permutations (sets in order: strong, weak, unlabelled) and
    # process r took perm[r::2]: the unlabelled clips of epoch 0 name every index of the set,
    # and with those names epoch 1's shards are exactly its perm[r::2]
    draws = [[step["perm"] for step in _steps(path, "draw")] for path in ranks]
    assert draws[0] == draws[1] and len(draws[0]) == 3 * epochs and draws[0][2] != draws[0][5]
    name_of = {}
    for rank in (0, 1):
        name_of.update(zip(draws[rank][2][rank::2], shards[rank][0]["unlabeled"]))
    assert len(name_of) == sizes["unlabeled"]
    for rank in (0, 1):
        assert shards[rank][1]["unlabeled"] == [name_of[i] for i in draws[rank][3 + 2][rank::2]]

    # validation and test: the processes split each set (DistributedSampler pads an odd count
    # with a repeat, collapsed by name when the scores are gathered), metrics once on the whole
    synthetic_validation = pd.read_csv(tiny_data / "metadata/validation/synthetic_validation.tsv", sep="\t")
    trained_weak = {c for steps in train for s in steps for c in s["clips"] if c.startswith("weak/")}
    for epoch in range(epochs):
        seen = [[c for s in _steps(path, "val") if s["epoch"] == epoch for c in s["clips"]] for path in ranks]
        union = set(seen[0]) | set(seen[1])
        assert len(seen[0]) + len(seen[1]) - len(union) <= 1
        assert {c for c in union if c.startswith("strong/")} == {f"strong/{n}" for n in synthetic_validation.filename}
        assert {c for c in union if c.startswith("weak/")} and not union & trained_weak
    tested = [[c for s in _steps(path, "test") for c in s["clips"]] for path in ranks]
    assert not set(tested[0]) & set(tested[1])
    dev_test = {path.name for path in (tiny_data / "audio" / "validation" / "validation_44k").glob("*.wav")}
    assert {clip.split("/")[1] for clip in tested[0] + tested[1]} == dev_test
    assert output.count("| psds1 |") == 1
    ddp = tmp_path / "exp" / "version_0" / "metrics_test"
    _run(conf, "--test_from_checkpoint", str(tmp_path / "exp" / "best.ckpt"), "--log_dir", str(tmp_path / "alone"))
    alone = tmp_path / "alone" / "version_0" / "metrics_test"
    assert (ddp / "summary.md").read_text() == (alone / "summary.md").read_text()
    raw = sorted((ddp / "teacher" / "scores" / "raw").glob("*.tsv"))
    assert len(raw) == 8
    for path in raw:  # equal but for the float rounding of one thread per process against two
        ours = pd.read_csv(path, sep="\t").to_numpy()
        theirs = pd.read_csv(alone / "teacher" / "scores" / "raw" / path.name, sep="\t").to_numpy()
        assert ours.shape == theirs.shape and abs(ours - theirs).max() < 1e-6, path.name


def test_without_desed_data_the_script_says_how_to_get_it(tmp_path):
    proc = _script(["--conf_file", str(REPO / "confs" / "sed.yaml"), "--gpus", "0"], tmp_path)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in output
    assert "generate_dcase_task4_2021.py" in output and "confs/demo.yaml" in output


def test_sed_training_never_imports_tensorflow(tiny_data, tmp_path):
    conf = write_config(tiny_config(tiny_data, tmp_path / "exp", n_epochs=1), tmp_path / "tiny.yaml")
    code = (
        "import sys; from desed_task.training.cli import main; "
        f"main('t', 'x', 'y', argv=['--conf_file', r'{conf}', '--gpus', '0', '--fast_dev_run']); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_official_2021_checkpoint_tests_through_the_command_line(tiny_data, tmp_path):
    """A file in the official 2021 layout (Lightning 1.x keys, AttributeDict hyper-parameters,
    torchaudio feature buffers, here a zero mel filterbank that must be ignored) tests exactly
    as the same weights in train_sed.py's own layout: the same metrics and the same scores."""
    from conftest import SHARED
    from test_checkpoints import official_2021_checkpoint

    from desed_task.config import load_config
    from desed_task.data.classes import DESED_CLASSES
    from desed_task.nnet import build_network
    from desed_task.training.mean_teacher import MeanTeacher

    config = load_config(REPO / "confs" / "sed.yaml")
    config["training"]["n_test_thresholds"] = 5  # a shorter test; 50 in 2021's files
    golden = SHARED / "reference" / "crnn2021_golden.pt"
    torch.manual_seed(0)
    if golden.is_file():
        net_state = torch.load(golden, weights_only=True)["state_dict"]
    else:  # the same layout, random weights
        net_state = build_network(config["net"]).state_dict()
    official = official_2021_checkpoint(tmp_path / "epoch=178-step=21121.ckpt", net_state, config)
    module = MeanTeacher(config, build_network(config["net"]), list(DESED_CLASSES), 0.064)
    module.sed_student.load_state_dict(net_state)
    module.sed_teacher.load_state_dict(net_state)
    ours = tmp_path / "ours.ckpt"
    torch.save({"hyper_parameters": config, "state_dict": module.state_dict()}, ours)

    conf = write_config(tiny_config(tiny_data, tmp_path / "exp"), tmp_path / "tiny.yaml")
    results = {name: _run(conf, "--test_from_checkpoint", str(path), "--log_dir", str(tmp_path / name))
               for name, path in (("official", official), ("ours", ours))}
    assert results["official"] == results["ours"]
    raw = {name: tmp_path / name / "version_0" / "metrics_test" / "teacher" / "scores" / "raw" for name in results}
    files = sorted(path.name for path in raw["ours"].glob("*.tsv"))
    assert len(files) == 8 and files == sorted(path.name for path in raw["official"].glob("*.tsv"))
    for name in files:
        assert (raw["official"] / name).read_bytes() == (raw["ours"] / name).read_bytes(), name
    assert (tmp_path / "official" / "version_0" / "metrics_test" / "summary.md").is_file()
