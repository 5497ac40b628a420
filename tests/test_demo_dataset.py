"""The demo dataset: layout, audio format, metadata agreeing with the audio, determinism."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from desed_task.data.classes import DESED_CLASSES
from desed_task.data_generation.demo import DemoSizes, build_demo_dataset

REPO = Path(__file__).resolve().parents[1]

SIZES = DemoSizes(
    synthetic_train=6,
    weak=4,
    unlabel_in_domain=3,
    synthetic_validation=4,
    validation=8,
    eval=2,
    clips_per_class=(2, 1),
    backgrounds_per_kind=(1, 1),
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo_dataset(tmp_path_factory.mktemp("demo") / "demo", seed=3, sizes=SIZES, jobs=1)


def _tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t")


def _tree_digest(root: Path) -> dict[str, str]:
    """sha1 of every wav and tsv under root, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.suffix in (".wav", ".tsv")
    }


def test_layout(demo):
    for name, path in demo.as_dict().items():
        assert path.exists(), name
    assert not demo.root.with_name(demo.root.name + ".partial").exists()
    counts = {
        demo.synthetic_train: SIZES.synthetic_train,
        demo.weak: SIZES.weak,
        demo.unlabel_in_domain: SIZES.unlabel_in_domain,
        demo.synthetic_validation: SIZES.synthetic_validation,
        demo.validation: SIZES.validation,
        demo.eval: SIZES.eval,
    }
    for folder, n_clips in counts.items():
        assert len(list(folder.glob("*.wav"))) == n_clips, folder
        assert not list(folder.glob("*.jams")), "JAMS are kept out of the audio folders"
    marker = json.loads(demo.complete_marker.read_text())
    assert marker["build"]["seed"] == 3


def test_audio_format(demo):
    for folder in (
        demo.synthetic_train,
        demo.weak,
        demo.unlabel_in_domain,
        demo.eval,
        demo.validation,
    ):
        expected_sr = 44100 if folder == demo.validation else 16000
        for wav in folder.glob("*.wav"):
            info = sf.info(wav)
            assert info.samplerate == expected_sr, wav
            assert info.channels == 1
            assert info.frames == 10 * expected_sr


def test_metadata_tables(demo):
    strong = _tsv(demo.synthetic_train_tsv)
    assert list(strong.columns) == ["filename", "onset", "offset", "event_label"]
    assert set(strong.filename) == {p.name for p in demo.synthetic_train.glob("*.wav")}
    assert set(strong.event_label) <= set(DESED_CLASSES)
    assert (strong.onset >= 0).all() and (strong.offset <= 10).all()
    assert (strong.offset - strong.onset >= 0.25 - 1e-6).all()

    weak = _tsv(demo.weak_tsv)
    assert list(weak.columns) == ["filename", "event_labels"]
    assert set(weak.filename) == {p.name for p in demo.weak.glob("*.wav")}
    for labels in weak.event_labels:
        assert labels and set(labels.split(",")) <= set(DESED_CLASSES)

    for tsv, durations, folder in (
        (
            demo.synthetic_validation_tsv,
            demo.synthetic_validation_durations,
            demo.synthetic_validation,
        ),
        (demo.validation_tsv, demo.validation_durations, demo.validation),
    ):
        files = {p.name for p in folder.glob("*.wav")}
        assert set(_tsv(tsv).filename) == files
        table = _tsv(durations)
        assert set(table.filename) == files and np.allclose(table.duration, 10.0)


def test_dev_test_has_clips_without_events(demo):
    dev_test = _tsv(demo.validation_tsv)
    assert dev_test.event_label.isna().any()
    assert dev_test.event_label.notna().any()


def test_listed_events_are_audible(demo):
    """Energy in every listed event's span is above the clip's background-only parts."""
    n_checked = 0
    for tsv, folder in (
        (demo.synthetic_train_tsv, demo.synthetic_train),
        (demo.validation_tsv, demo.validation),
    ):
        for filename, rows in _tsv(tsv).groupby("filename"):
            audio, sr = sf.read(folder / filename)
            events = rows.dropna()
            covered = np.zeros(audio.size, dtype=bool)
            for onset, offset in zip(events.onset, events.offset):
                covered[int(onset * sr) : int(offset * sr)] = True
            if (~covered).sum() < sr // 2:
                continue  # less than 0.5 s of background alone
            background_rms = np.sqrt(np.mean(audio[~covered] ** 2))
            for onset, offset in zip(events.onset, events.offset):
                span = audio[int(onset * sr) : int(offset * sr)]
                gain_db = 20 * np.log10(np.sqrt(np.mean(span**2)) / background_rms)
                assert gain_db > 3.0, (filename, onset, offset, gain_db)
                n_checked += 1
    assert n_checked >= 5


def test_same_seed_same_bytes_and_rerun_is_a_no_op(demo, tmp_path):
    again = build_demo_dataset(tmp_path / "demo", seed=3, sizes=SIZES, jobs=2)
    assert _tree_digest(again.root) == _tree_digest(demo.root)
    stamp = again.complete_marker.stat().st_mtime_ns
    build_demo_dataset(tmp_path / "demo", seed=3, sizes=SIZES, jobs=2)
    assert again.complete_marker.stat().st_mtime_ns == stamp


def test_interrupted_build_is_redone(tmp_path, monkeypatch):
    """A build killed midway leaves no root; the next run completes it with the same output."""
    from desed_task.data_generation.demo import dataset as demo_module

    sizes = DemoSizes(1, 1, 1, 1, 2, 1, clips_per_class=(1, 1), backgrounds_per_kind=(1, 1))
    real_build_set = demo_module._build_set

    def failing_build_set(spec, *args, **kwargs):
        if spec.demo_name == "validation":
            raise KeyboardInterrupt
        return real_build_set(spec, *args, **kwargs)

    monkeypatch.setattr(demo_module, "_build_set", failing_build_set)
    with pytest.raises(KeyboardInterrupt):
        build_demo_dataset(tmp_path / "a", seed=1, sizes=sizes, jobs=1)
    assert not (tmp_path / "a").exists()
    assert (tmp_path / "a.partial").exists()
    monkeypatch.setattr(demo_module, "_build_set", real_build_set)
    resumed = build_demo_dataset(tmp_path / "a", seed=1, sizes=sizes, jobs=1)
    fresh = build_demo_dataset(tmp_path / "b", seed=1, sizes=sizes, jobs=1)
    assert _tree_digest(resumed.root) == _tree_digest(fresh.root)


def test_different_seed_different_audio(demo, tmp_path):
    sizes = DemoSizes(1, 1, 1, 1, 1, 1, clips_per_class=(1, 1), backgrounds_per_kind=(1, 1))
    other = build_demo_dataset(tmp_path / "other", seed=4, sizes=sizes, jobs=1)
    a = (demo.synthetic_train / "0.wav").read_bytes()
    b = (other.synthetic_train / "0.wav").read_bytes()
    assert a != b


def test_the_command_line_builds_what_the_api_builds(tmp_path):
    """`python -m desed_task.data_generation.demo` (the README's and the 2021 oracle's command)
    builds the dataset `build_demo_dataset` builds: the API finds it complete and does nothing."""
    counts = [f"--n_{name}=1" for name in ("synthetic_train", "weak", "unlabel_in_domain",
                                             "synthetic_validation", "validation", "eval")]
    proc = subprocess.run(
        [sys.executable, "-m", "desed_task.data_generation.demo", "--root", str(tmp_path / "demo"),
         "--seed", "2", "--jobs", "1", *counts],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"complete_marker                  {tmp_path / 'demo' / '.complete'}" in proc.stdout
    marker = tmp_path / "demo" / ".complete"
    stamp = marker.stat().st_mtime_ns
    build_demo_dataset(tmp_path / "demo", seed=2, sizes=DemoSizes(1, 1, 1, 1, 1, 1), jobs=1)
    assert marker.stat().st_mtime_ns == stamp
