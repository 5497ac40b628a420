"""What confs/pretrained.yaml does as the 2023 recipe (DESED_task 28fbfe9) did, behind keys whose
default is 2021's: the dev-test clips without any event left out (``data.drop_clips_without_events``),
the first optimizer step at ``opt.lr`` (``opt.first_step_at_lr``), soxr_hq resampling into
16 kHz folders of its own (``data.resampler``). Checked through train_sed.py where they act."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from conftest import Records
from pipeline import REPO, run_cli, tiny_config, write_config
from test_bad_inputs import exits_with_one_error_line

from desed_task.config import load_config
from desed_task.embeddings.extract import EmbeddingSet, prepare_folders
from desed_task.evaluation import evaluate_scores
from desed_task.training.cli import main

CLASSES = ["Dog", "Speech"]


def test_pretrained_yaml_sets_the_2023_keys_and_its_own_16k_folders():
    sed, pretrained = load_config(REPO / "confs" / "sed.yaml"), load_config(REPO / "confs" / "pretrained.yaml")
    assert pretrained["data"]["resampler"] == "soxr_hq" and sed["data"].get("resampler") in (None, "kaiser_best")
    assert pretrained["data"]["drop_clips_without_events"] is True
    assert pretrained["opt"]["first_step_at_lr"] is True and not pretrained["opt"].get("warmup_first_step")
    for conf in ("sed.yaml", "demo.yaml", "sep+sed.yaml", "demo_pretrained.yaml", "demo_sep+sed.yaml"):
        config = load_config(REPO / "confs" / conf)  # 2021 everywhere else
        assert not config["data"].get("drop_clips_without_events") and not config["opt"].get("first_step_at_lr"), conf
    for key, folder in pretrained["data"].items():
        # a folder resampled with soxr_hq must not be one that sed.yaml makes with kaiser_best
        if key.endswith("_folder") and folder and f"{key}_44k" in pretrained["data"]:
            assert folder != sed["data"][key] and folder.rstrip("/").endswith("_16k_soxr_hq"), key
            assert pretrained["data"][f"{key}_44k"] == sed["data"][f"{key}_44k"], key


# ---------------------------------------------------------------- clips without events
def _with_empty_clips(tiny_data: Path, tmp_path: Path, log_dir: Path, drop: bool | None) -> tuple[Path, list[str]]:
    """The tiny config with a dev-test table in which two clips have no event: one with an
    empty-label row (DESED's form), one listed only in the durations table."""
    config = tiny_config(tiny_data, log_dir, n_epochs=1, max_steps_per_epoch=1)
    events = pd.read_csv(config["data"]["test_tsv"], sep="\t")
    durations = pd.read_csv(config["data"]["test_dur"], sep="\t")
    with_events = list(dict.fromkeys(events.loc[events["event_label"].notna(), "filename"]))
    assert len(with_events) >= 4, "the tiny dev-test needs clips with events"
    blank_row, no_row = with_events[0], with_events[1]
    kept = events[~events["filename"].isin([blank_row, no_row])]
    blank = pd.DataFrame({"filename": [blank_row], "onset": [np.nan], "offset": [np.nan], "event_label": [np.nan]})
    table = pd.concat([blank, kept], ignore_index=True)
    table.to_csv(tmp_path / "validation.tsv", sep="\t", index=False)
    config["data"]["test_tsv"] = str(tmp_path / "validation.tsv")
    labelled = set(kept.loc[kept["event_label"].notna(), "filename"])
    empty = [name for name in durations["filename"] if name not in labelled]  # the tiny set's own too
    assert {blank_row, no_row} <= set(empty)
    if drop is not None:
        config["data"]["drop_clips_without_events"] = drop
    return write_config(config, tmp_path / "tiny.yaml"), empty


@pytest.mark.slow
@pytest.mark.parametrize("drop", [None, True])
def test_clips_without_events_are_scored_and_written_unless_the_2023_key_drops_them(tiny_data, tmp_path, drop):
    log_dir = tmp_path / "exp"
    conf, empty = _with_empty_clips(tiny_data, tmp_path, log_dir, drop)
    all_clips = set(pd.read_csv(load_config(conf)["data"]["test_dur"], sep="\t")["filename"])
    records, logger = Records(), logging.getLogger("desed_task")
    logger.addHandler(records)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        results = run_cli(conf)
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
    expected = all_clips - set(empty) if drop else all_clips
    out = log_dir / "version_0" / "metrics_test"
    for model in ("student", "teacher"):
        for kind in ("raw", "filtered"):  # the score files written: one per clip scored
            written = {p.stem + ".wav" for p in (out / model / "scores" / kind).glob("*.tsv")}
            assert written == expected, (model, kind, sorted(written ^ expected))
        predictions = pd.concat(
            [pd.read_csv(p, sep="\t") for p in (out / model / "operating_points").glob("predictions_th_*.tsv")]
        )
        assert set(predictions["filename"]) <= expected
        assert np.isfinite(list(results[model].values())).all()
    left_out = [line for line in records.lines if "without any event left out" in line]
    if drop:
        assert len(left_out) == 1 and left_out[0].startswith(f"test: {len(empty)} clip(s) without any event"), left_out
        assert left_out[0].removesuffix(")").rsplit("first: ", 1)[1] in empty
    else:
        assert not left_out


def test_unscored_clips_without_events_count_in_the_psds_eval_duration_only():
    """2023's psds_eval got the whole durations table (the dropped clips: duration, no
    detection), sed_scores_eval and the F1s only the clips scored: ``unscored_durations`` gives
    the psds_eval-style PSDS what an all-zero score of those clips gives it (no detection at any
    threshold), and leaves the exact PSDS and the F1s to the clips scored."""
    clips = [f"c{i}.wav" for i in range(6)]
    ground_truth = pd.DataFrame(
        [(name, 0.32 * (i % 3), 0.32 * (i % 3) + 1.28, CLASSES[i % 2]) for i, name in enumerate(clips)],
        columns=["filename", "onset", "offset", "event_label"],
    )
    scores = {}
    for i, name in enumerate(clips):  # 40 frames of 64 ms: the events found, a false alarm
        clip = np.full((2, 40), 0.05, np.float32)
        clip[i % 2, 5 * (i % 3) : 5 * (i % 3) + 20] = 0.9
        scores[name] = clip
    scores["c0.wav"][1, 30:36] = 0.5
    scores["c1.wav"][1, 5:25] = 0.3  # found only below the false alarm's threshold
    durations = pd.DataFrame({"filename": clips, "duration": 2.56})
    # long enough for the false alarm's rate per hour to fall below max_efpr (100)
    dropped = pd.DataFrame({"filename": ["e0.wav", "e1.wav", "e2.wav"], "duration": [3600.0, 3600.0, 1800.0]})
    kwargs = {"n_thresholds": 10, "median_window": 1, "frame_step": 0.064}
    scored = evaluate_scores(scores, CLASSES, ground_truth, durations, **kwargs)
    with_dropped = evaluate_scores(scores, CLASSES, ground_truth, durations, unscored_durations=dropped, **kwargs)
    zero = {name: np.zeros((2, 40), np.float32) for name in dropped["filename"]}
    as_zero = evaluate_scores(
        scores | zero, CLASSES, ground_truth, pd.concat([durations, dropped], ignore_index=True), **kwargs
    )
    for name in ("psds1", "psds2"):
        assert with_dropped[name] == pytest.approx(as_zero[name], rel=1e-12, abs=1e-15)
        assert with_dropped[name] != pytest.approx(scored[name], rel=1e-6)  # the durations count
    for name in scored:
        if name not in ("psds1", "psds2"):
            assert with_dropped[name] == scored[name], name


# ---------------------------------------------------------------- the first optimizer step
def _logged_lr(log_dir: Path) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logged = {}
    for path in sorted((log_dir / "version_0").glob("events.out.tfevents.*")):  # training's and the test's
        events = EventAccumulator(str(path))
        events.Reload()
        if "train/lr" in events.Tags()["scalars"]:
            logged |= {event.step: event.value for event in events.Scalars("train/lr")}
    return logged


@pytest.mark.slow
def test_the_first_step_runs_at_opt_lr_with_the_2023_key_and_at_1e_3_without(tiny_data, tmp_path):
    """train_sed.py with opt.lr 0.002 (the demo's): train/lr as logged at each step (the rate
    of that step's update: logged before it). 2021: the first step at 1e-3; 2023
    (opt.first_step_at_lr): at opt.lr; the warm-up's rate from the second step on, alike."""
    logged = {}
    for name, key in (("2021", None), ("2023", True)):
        # one step an epoch: Lightning logs every step (log_every_n_steps = max_steps_per_epoch)
        config = tiny_config(tiny_data, tmp_path / name, n_epochs=2, max_steps_per_epoch=1, n_epochs_warmup=3)
        config["opt"]["lr"] = 0.002
        if key is not None:
            config["opt"]["first_step_at_lr"] = key
        run_cli(write_config(config, tmp_path / f"{name}.yaml"))
        logged[name] = _logged_lr(tmp_path / name)
    assert sorted(logged["2021"]) == sorted(logged["2023"]) == [0, 1]
    assert logged["2021"][0] == pytest.approx(1e-3, rel=1e-6)
    assert logged["2023"][0] == pytest.approx(0.002, rel=1e-6)
    # the second step: the warm-up's rate, 3 epochs of 1 step (max_steps_per_epoch), at step 2
    warmup = 0.002 * math.exp(-5 * (1 - 2 / 3) ** 2)
    assert logged["2023"][1] == logged["2021"][1] == pytest.approx(warmup, rel=1e-6)


def test_the_two_first_step_keys_together_are_refused(tmp_path, capsys):
    config = tiny_config(tmp_path / "absent", tmp_path / "exp")
    del config["demo"]
    config["opt"].update(warmup_first_step=True, first_step_at_lr=True)
    conf = write_config(config, tmp_path / "both.yaml")
    exits_with_one_error_line(
        capsys, lambda: main("t", "unused.yaml", str(tmp_path / "exp"), argv=["--conf_file", str(conf)]),
        "both.yaml: 'opt.warmup_first_step' and 'opt.first_step_at_lr'", "keep one",
    )


# ---------------------------------------------------------------- the resampler
def test_embeddings_extraction_resamples_with_the_configs_resampler(tmp_path):
    """python -m desed_task.embeddings --conf_file resamples the _44k twins first: with the
    config's data.resampler, so that training finds the folder made as it wants it (and the
    embeddings describe the clips it reads) instead of making it again."""
    src, dst = tmp_path / "dev_44k", tmp_path / "dev_16k_soxr_hq"
    src.mkdir()
    t = np.arange(44100) / 44100
    sf.write(str(src / "a.wav"), (0.1 * np.sin(2 * np.pi * 7900 * t)).astype(np.float32), 44100)
    config = yaml.safe_load((REPO / "confs" / "pretrained.yaml").read_text())
    config["data"].update(test_folder=str(dst), test_folder_44k=str(src))
    prepare_folders(config, [EmbeddingSet("devtest", dst, tmp_path / "devtest.hdf5")])
    assert (dst / ".resampler").read_text().strip() == "soxr_hq"
    audio, rate = sf.read(str(dst / "a.wav"), dtype="float32")
    assert rate == 16000 and len(audio) == 16000
