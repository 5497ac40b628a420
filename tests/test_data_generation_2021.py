"""The DCASE 2021 generator, run whole and offline.

A local HTTP server (127.0.0.1) serves small archives shaped like the Zenodo ones, the YouTube
fetcher is replaced at its boundary by a fake that fails for some ids, and real scaper
soundscapes are rendered from the tiny soundbank. The 2021 draws are checked against the JAMS
the 2021 generator wrote (``../shared``), and the command is killed and resumed for real.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import random
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import jams
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from desed_task.data_generation.dcase2021 import soundscapes as soundscapes_2021_module
from desed_task.data_generation.dcase2021.downloads import DownloadError, download_and_unpack
from desed_task.data_generation.dcase2021.generate import (
    Dcase2021Config,
    format_report,
    generate_dcase2021,
    sed_yaml_paths,
)
from desed_task.data_generation.dcase2021.raw_datasets import ZenodoSources
from desed_task.data_generation.dcase2021.real_audio import ClipUnavailable
from desed_task.data_generation.dcase2021.soundscapes import event_records, same_events
from desed_task.data_generation.scaper.rendering import DrawMismatch

REPO = Path(__file__).resolve().parents[1]

SR = 16000
WEAK = [
    "Yaaaaaaaaaaa_0.000_10.000.wav",
    "Ybbbbbbbbbbb_30.000_40.000.wav",
    "Yccc_ccccccc_5.000_15.000.wav",
]
UNLABEL = ["Yddddddddddd_0.000_10.000.wav", "Yeeeeeeeeeee_0.000_10.000.wav"]
VALIDATION = ["Yfffffffffff_0.000_10.000.wav", "Yggggggggggg_20.000_30.000.wav"]
UNAVAILABLE = {"bbbbbbbbbbb", "eeeeeeeeeee"}


def _wav_bytes(seconds: float, kind: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    if kind == "noise":
        x = 0.1 * rng.standard_normal(t.size)
    else:
        x = 0.5 * np.sin(2 * np.pi * rng.uniform(300, 3000) * t) * np.hanning(t.size) ** 0.1
    buffer = io.BytesIO()
    sf.write(buffer, x.astype(np.float32), SR, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _tsv_bytes(table: pd.DataFrame) -> bytes:
    return table.to_csv(sep="\t", index=False).encode()


def _tar_gz(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def _zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _make_zenodo(root: Path) -> None:
    """Small archives at record/<id>/files/<name>, with the structure of the real ones."""
    s = ZenodoSources()

    def at(entry: tuple[int, str]) -> Path:
        path = root / "record" / str(entry[0]) / "files" / entry[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    _tar_gz(
        at(s.real_metadata),
        {
            "metadata/train/weak.tsv": _tsv_bytes(
                pd.DataFrame({"filename": WEAK, "event_labels": ["Dog", "Speech,Dog", "Blender"]})
            ),
            "metadata/train/unlabel_in_domain.tsv": _tsv_bytes(pd.DataFrame({"filename": UNLABEL})),
            "metadata/validation/validation.tsv": _tsv_bytes(
                pd.DataFrame(
                    {
                        "filename": VALIDATION,
                        "onset": [1.0, 2.0],
                        "offset": [3.0, 4.0],
                        "event_label": ["Dog", "Speech"],
                    }
                )
            ),
        },
    )
    fg = "audio/train/soundbank/foreground"
    members = {}
    for c, cls in enumerate(("Dog", "Speech", "Blender", "Blender_nOn", "Blender_nOff")):
        for i in range(2):
            seconds = 12.0 if cls.startswith("Blender_") else 1.5
            members[f"{fg}/{cls}/{cls.lower()}_{i}.wav"] = _wav_bytes(seconds, "tone", 10 * c + i)
    _tar_gz(at(s.desed_foregrounds), members)
    _zip(
        at(s.sins_meta),
        {
            "DCASE2018-task5-dev/meta.txt": b"audio/s1.wav\tother\tx\naudio/s2.wav\tother\tx\naudio/s3.wav\tcooking\tx\n"
        },
    )
    _zip(
        at(s.sins_audio()[0]),
        {
            f"DCASE2018-task5-dev/audio/s{i}.wav": _wav_bytes(11.0, "noise", 100 + i)
            for i in (1, 2, 3)
        },
    )
    top = "TUT-acoustic-scenes-2017-development"
    _zip(at(s.tut_meta), {f"{top}/meta.txt": b"audio/t1.wav\thome\tx\naudio/t2.wav\tbeach\tx\n"})
    _zip(
        at(s.tut_audio()[0]),
        {f"{top}/audio/t{i}.wav": _wav_bytes(10.5, "noise", 200 + i) for i in (1, 2)},
    )
    validation_paths = [
        "audio/validation/soundbank/foreground/Dog/dog_1.wav",
        "audio/validation/soundbank/foreground/Speech/speech_1.wav",
        "audio/validation/soundbank/foreground/Blender/blender_1.wav",
        "audio/validation/soundbank/background/sins/s2.wav",
    ]
    at(s.soundbank_validation_split).write_bytes(
        _tsv_bytes(pd.DataFrame({"filepath": validation_paths}))
    )
    _zip(
        at(s.fsd50k_ground_truth),
        {
            "FSD50K.ground_truth/dev.csv": b"fname,labels,mids,split\n"
            b"11,Door,/m/door,train\n12,Door,/m/door,val\n13,Guitar,/m/guitar,train\n"
        },
    )
    _tar_gz(
        at(s.fuss_data),
        {
            "fsd_data/train/sound/11.wav": _wav_bytes(1.0, "tone", 300),
            "fsd_data/train/sound/13.wav": _wav_bytes(1.0, "tone", 301),
            "fsd_data/validation/sound/12.wav": _wav_bytes(1.0, "tone", 302),
        },
    )
    _tar_gz(at(s.fuss_license), {"FUSS_license_doc/README.md": b"licenses\n"})
    classes = ["Dog", "Speech", "Blender", "Door"]
    cooc = pd.DataFrame(
        [[c, *[1.0 for _ in classes]] for c in classes], columns=["label", *classes]
    )
    _tar_gz(
        at(s.meta_infos),
        {
            "target_nb.tsv": _tsv_bytes(
                pd.DataFrame(
                    {
                        "event_class": ["Dog", "Speech", "Blender"],
                        "mean": [2.0, 2.0, 1.5],
                        "std": [1.0, 1.0, 0.5],
                        "min": [1, 1, 1],
                        "max": [3, 3, 2],
                    }
                )
            ),
            "event_cooc.tsv": _tsv_bytes(cooc),
            "non_target_classes.tsv": _tsv_bytes(pd.DataFrame({"id": [0], "mid": ["/m/door"]})),
            "mid_to_class_name.tsv": _tsv_bytes(
                pd.DataFrame({"mids": ["/m/door", "/m/guitar"], "labels": ["Door", "Guitar"]})
            ),
        },
    )


@pytest.fixture(scope="module")
def zenodo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zenodo")
    _make_zenodo(root)
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield (
        root,
        ZenodoSources(
            base_url=f"http://127.0.0.1:{server.server_port}", sins_audio_parts=1, tut_audio_parts=1
        ),
    )
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def fake_fetcher(filename: str, dest: Path) -> None:
    """Succeeds for most ids, fails for the UNAVAILABLE ones, like a removed video."""
    youtube_id = Path(filename).stem[1:].rsplit("_", 2)[0]
    if youtube_id in UNAVAILABLE:
        raise ClipUnavailable("Video unavailable")
    rng = np.random.default_rng(sum(map(ord, youtube_id)))
    sf.write(dest, (0.1 * rng.standard_normal(441000)).astype(np.float32), 44100)


def _config(basedir: Path, **kwargs) -> Dcase2021Config:
    return Dcase2021Config(
        basedir=basedir, n_train=4, n_validation=2, jobs=2, chunk_size=1, **kwargs
    )


def _digest(out_dir: Path) -> dict[str, str]:
    """sha1 of every TSV's bytes and every wav's samples and rate (float wav headers hold a
    timestamp, so their bytes differ between identical runs)."""
    digests = {}
    for p in sorted(out_dir.rglob("*")):
        if p.suffix == ".tsv":
            digests[str(p.relative_to(out_dir))] = hashlib.sha1(p.read_bytes()).hexdigest()
        elif p.suffix == ".wav":
            audio, sr = sf.read(p, dtype="float32")
            digests[str(p.relative_to(out_dir))] = hashlib.sha1(
                audio.tobytes() + str(sr).encode()
            ).hexdigest()
    return digests


@pytest.fixture(scope="module")
def generated(zenodo, tmp_path_factory):
    _, sources = zenodo
    basedir = tmp_path_factory.mktemp("data")
    config = _config(basedir)
    report = generate_dcase2021(config, sources=sources, fetcher=fake_fetcher)
    return config, report


def test_layout_expected_by_sed_yaml(generated):
    config, _ = generated
    for key, path in sed_yaml_paths(config.out_dir).items():
        if key == "eval_folder":
            continue  # eval21 is not distributed by this script
        assert path.exists(), (key, path)
    paths = sed_yaml_paths(config.out_dir)
    for key in ("synth_folder", "synth_val_folder", "weak_folder", "test_folder"):
        wavs = list(paths[key].glob("*.wav"))
        assert wavs and all(sf.info(w).samplerate == 16000 for w in wavs), key
    assert len(list(paths["synth_folder"].glob("*.wav"))) == 4
    assert len(list(paths["synth_val_folder"].glob("*.wav"))) == 2


def test_soundbank_2021(generated):
    config, _ = generated
    train = Path(config.out_soundbank) / "audio" / "train" / "soundbank"
    assert (train / "fg_target" / "Blender" / "blender_non_0_nOn.wav").is_symlink()
    assert (train / "fg_target" / "Blender" / "blender_noff_1_nOff.wav").exists()
    assert sorted(p.name for p in (train / "non_target_fg" / "Door").iterdir()) == ["11.wav"]
    assert not (train / "non_target_fg" / "Guitar").exists()
    assert (train / "fg_tgt_ntgt" / "Door").is_symlink()
    assert (train / "fg_tgt_ntgt" / "Door" / "11.wav").is_file()  # the link survives the rename
    validation = Path(config.out_soundbank) / "audio" / "validation" / "soundbank"
    assert sorted(p.name for p in (validation / "non_target_fg" / "Door").iterdir()) == ["12.wav"]
    assert sorted(p.name for p in (validation / "background").iterdir()) == ["sins"]
    assert sorted(p.name for p in (train / "background").iterdir()) == [
        "sins",
        "tut-scenes-2017-dev",
    ]


def test_synthetic_metadata_agrees_with_audio(generated):
    config, _ = generated
    paths = sed_yaml_paths(config.out_dir)
    table = pd.read_csv(paths["synth_tsv"], sep="\t")
    soundscapes = paths["synth_folder"].with_name("soundscapes")
    assert set(table.filename) == {p.name for p in soundscapes.glob("*.wav")}
    assert set(table.event_label.dropna()) <= {"Dog", "Speech", "Blender"}  # no non-target
    for filename, rows in table.dropna().groupby("filename"):
        audio, sr = sf.read(soundscapes / filename)
        assert sr == 44100 and audio.shape[0] == 441000
        for onset, offset in zip(rows.onset, rows.offset):
            span = audio[int(onset * sr) : int(offset * sr)]
            assert np.sqrt(np.mean(span**2)) > 1e-4, (filename, onset)
        assert (soundscapes / filename).with_suffix(".jams").is_file()
    durations = pd.read_csv(paths["synth_val_dur"], sep="\t")
    assert np.allclose(durations.duration, 10.0)


def test_missing_youtube_files_are_reported(generated):
    config, report = generated
    assert report.fetched == {"weak": 2, "unlabel_in_domain": 1, "validation": 2}
    assert report.missing == {"weak": 1, "unlabel_in_domain": 1, "validation": 0}
    weak_missing = pd.read_csv(report.missing_tsvs["weak"], sep="\t")
    assert weak_missing.filename.tolist() == ["Ybbbbbbbbbbb_30.000_40.000.wav"]
    assert "Video unavailable" in weak_missing.error[0]
    assert "validation" not in report.missing_tsvs
    text = format_report(config, report)
    assert (
        "--only_real" in text and "missing_files_weak.tsv" in text and "python train_sed.py" in text
    )
    real_weak = Path(config.out_dir) / "audio" / "train" / "weak"
    assert sorted(p.name for p in real_weak.iterdir()) == sorted(set(WEAK) - {WEAK[1]})


def test_interrupted_run_completes_with_the_same_result(zenodo, generated, tmp_path, monkeypatch):
    _, sources = zenodo
    real_render = soundscapes_2021_module._render
    calls = {"n": 0}

    def interrupted_render(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_render(*args, **kwargs)

    monkeypatch.setattr(soundscapes_2021_module, "_render", interrupted_render)
    with pytest.raises(KeyboardInterrupt):
        generate_dcase2021(_config(tmp_path), sources=sources, fetcher=fake_fetcher)
    monkeypatch.setattr(soundscapes_2021_module, "_render", real_render)
    config = _config(tmp_path)
    generate_dcase2021(config, sources=sources, fetcher=fake_fetcher)
    reference, _ = generated
    assert _digest(Path(config.out_dir)) == _digest(Path(reference.out_dir))


def test_given_paths_are_not_downloaded(generated, tmp_path):
    config, _ = generated
    again = Dcase2021Config(
        basedir=tmp_path,
        desed_real=config.desed_real,
        desed_soundbank=config.desed_soundbank,
        fsd50k=config.fsd50k,
        fuss=config.fuss,
        meta_infos=config.meta_infos,
        n_train=1,
        n_validation=1,
        resample=False,
    )
    sources = ZenodoSources(base_url="http://127.0.0.1:9")  # nothing listens there

    def no_fetch(filename, dest):
        raise AssertionError("nothing should be fetched")

    report = generate_dcase2021(again, sources=sources, fetcher=no_fetch)
    assert report.synthetic == {"train": 1, "validation": 1}
    assert (Path(again.out_dir) / "audio" / "train" / "weak").is_symlink()


def test_corrupt_archive_stops_with_url_and_file(zenodo, tmp_path):
    root, sources = zenodo
    bad = root / "record" / "1" / "files" / "broken.tar.gz"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(b"this is not a tar archive" * 10)
    url = sources.url(1, "broken.tar.gz")
    with pytest.raises(DownloadError) as error:
        download_and_unpack(url, tmp_path / "dest", "broken.tar.gz", tmp_path / "downloads")
    assert url in str(error.value) and "broken.tar.gz" in str(error.value)
    assert not list((tmp_path / "dest").iterdir())
    assert not list((tmp_path / "downloads").iterdir())


def test_failed_download_leaves_nothing(zenodo, tmp_path):
    _, sources = zenodo
    url = sources.url(1, "does_not_exist.zip")
    with pytest.raises(DownloadError, match="does_not_exist.zip"):
        download_and_unpack(url, tmp_path / "dest", "does_not_exist.zip", tmp_path / "downloads")
    assert not (tmp_path / "dest").exists() or not list((tmp_path / "dest").iterdir())
    assert not list((tmp_path / "downloads").glob("*"))


def _generate(*args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    """Start ``generate_dcase_task4_2021.py --only_synth --no_resample ARGS`` in its own session."""
    command = [sys.executable, str(REPO / "generate_dcase_task4_2021.py"), "--only_synth"]
    return subprocess.Popen(
        [*command, "--no_resample", *args],
        cwd=REPO,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **popen,
    )


def _run(*args: str) -> str:
    process = _generate(*args)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return output


@pytest.mark.slow
def test_2021_draws_match_the_2021_generator(shared_reference, tmp_path):
    """The issue's command on the golden soundbank writes the JAMS events 2021 wrote."""
    golden = shared_reference / "soundscapes2021"
    _run(
        "--basedir", str(tmp_path / "base"),
        "--out_soundbank", str(golden / "soundbank"),
        "--meta_infos", str(golden / "meta_infos"),
        "--out_dir", str(tmp_path / "out"),
        "--n_train", "24", "--n_validation", "8",
    )  # fmt: skip
    assert not (tmp_path / "base" / "raw_datasets").exists()  # nothing downloaded
    for split, n_clips in (("train", 24), ("validation", 8)):
        folder = tmp_path / "out" / "audio" / split / f"synthetic21_{split}" / "soundscapes"
        assert sorted(p.name for p in folder.glob("*.jams")) == sorted(
            p.name for p in (golden / "jams" / split).glob("*.jams")
        )
        for i in range(n_clips):
            ours = event_records(jams.load(str(folder / f"{i}.jams")))
            theirs = event_records(jams.load(str(golden / "jams" / split / f"{i}.jams")))
            assert same_events(ours, theirs, atol=1e-6), (split, i, ours, theirs)


def _build_from_raw(
    raw: Path, base: Path, *extra: str, n_train: int = 24, n_validation: int = 8
) -> list[str]:
    """The issue's command (``--only_synth --no_resample``, see :func:`_generate`) on the fake raw
    inputs of ``soundbank2021``; returns its other arguments."""
    args = [
        "--basedir", str(base / "B"),
        "--desed_soundbank", str(raw / "desed_soundbank"), "--fsd50k", str(raw / "fsd50k"),
        "--fuss", str(raw / "fuss"), "--meta_infos", str(raw / "meta_infos"),
        "--out_soundbank", str(base / "SB"), "--out_dir", str(base / "OUT"),
        "--n_train", str(n_train), "--n_validation", str(n_validation), *extra,
    ]  # fmt: skip
    _run(*args)
    return args


def _soundbank_links(out_soundbank: Path, raw: Path) -> set[tuple[str, str, str]]:
    """``(split, "<Class>/<name>", raw file relative to raw)`` of every file under
    ``fg_tgt_ntgt`` (class folders that are links followed)."""
    found = set()
    for split in ("train", "validation"):
        fg = out_soundbank / "audio" / split / "soundbank" / "fg_tgt_ntgt"
        for folder, _, names in os.walk(fg, followlinks=True):
            for name in names:
                path = Path(folder) / name
                found.add(
                    (split, path.relative_to(fg).as_posix(), os.path.relpath(path.resolve(), raw))
                )
    return found


def _golden_links(golden: Path) -> set[tuple[str, str, str]]:
    table = pd.read_csv(golden / "links.tsv", sep="\t")
    return set(zip(table["split"], table["link"], table["raw_file"]))


@pytest.mark.slow
def test_2021_soundbank_builder_matches_the_2021_generator(shared_reference, tmp_path):
    """From the raw DESED/FUSS/FSD50K inputs, the same links as the 2021 builder (its quirks:
    _nOn_nOff files named _nOn, non-target FUSS files of either FSD50K split), then the same
    JAMS events as the 2021 generator drew from them."""
    golden = shared_reference / "soundbank2021"
    raw = (golden / "raw").resolve()
    _build_from_raw(raw, tmp_path)
    assert _soundbank_links(tmp_path / "SB", raw) == _golden_links(golden)
    for split, n_clips in (("train", 24), ("validation", 8)):
        folder = tmp_path / "OUT" / "audio" / split / f"synthetic21_{split}" / "soundscapes"
        assert len(list(folder.glob("*.jams"))) == n_clips
        for i in range(n_clips):
            ours = event_records(jams.load(str(folder / f"{i}.jams")))
            theirs = event_records(jams.load(str(golden / "jams" / split / f"{i}.jams")))
            assert same_events(ours, theirs, atol=1e-6), (split, i, ours, theirs)


@pytest.mark.slow
def test_fixed_soundbank_builder(shared_reference, tmp_path, capsys):
    """--fix_2021_quirks: _nOn_nOff files keep their suffix and a non-target class gets only
    the FUSS files of the matching FSD50K split; a later 2021 run refuses that soundbank."""
    golden = shared_reference / "soundbank2021"
    raw = (golden / "raw").resolve()
    args = _build_from_raw(raw, tmp_path, "--fix_2021_quirks", n_train=2, n_validation=1)
    fsd = pd.read_csv(raw / "fsd50k" / "FSD50K.ground_truth" / "dev.csv", dtype=str)
    fsd_split = dict(zip(fsd["fname"], fsd["split"]))
    expected = set()
    for split, link, raw_file in _golden_links(golden):
        source = Path(raw_file)
        if raw_file.startswith("fuss/"):
            if fsd_split[source.stem] != {"train": "train", "validation": "val"}[split]:
                continue
        elif source.parent.name.endswith("_nOn_nOff"):
            link = link.replace("_nOn.wav", "_nOn_nOff.wav")
        expected.add((split, link, raw_file))
    found = _soundbank_links(tmp_path / "SB", raw)
    assert found == expected
    assert any(link.endswith("_nOn_nOff.wav") for _, link, _ in found)
    assert len(found) < len(_golden_links(golden))  # FUSS files of the other FSD50K split left out

    from desed_task.data_generation.dcase2021.cli import main

    capsys.readouterr()
    without_fix = [a for a in args if a != "--fix_2021_quirks"]
    without_fix[without_fix.index("--out_dir") + 1] = str(tmp_path / "OUT_2021")
    assert main("generate", [*without_fix, "--only_synth", "--no_resample"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(errors) == 1
    assert "fix_2021_quirks soundbank builder" in errors[0]
    assert str(tmp_path / "SB" / "audio") in errors[0]


def _tiny_2021_soundbank(root: Path) -> tuple[Path, Path]:
    """A small 2021-layout soundbank (8 kHz tones, noise backgrounds) and its meta infos."""
    rng = np.random.default_rng(0)
    sr = 8000

    def tone(path: Path, seconds: float, noise: bool = False) -> None:
        t = np.arange(int(seconds * sr)) / sr
        if noise:
            x = 0.1 * rng.standard_normal(t.size)
        else:
            x = 0.5 * np.sin(2 * np.pi * rng.uniform(200, 3000) * t)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, x.astype(np.float32), sr, subtype="PCM_16")

    files = {
        "Dog": [("a.wav", 1.5), ("b.wav", 0.8)],
        "Speech": [("a.wav", 2.0), ("c_nOn.wav", 4.0)],
        "Blender": [("a.wav", 3.0), ("d_nOn_nOff.wav", 12.0), ("e_nOff.wav", 2.5)],
        "Door": [("a.wav", 1.0)],
    }
    bank = root / "soundbank"
    for split in ("train", "validation"):
        split_dir = bank / "audio" / split / "soundbank"
        for label, entries in files.items():
            for name, seconds in entries:
                tone(split_dir / "fg_tgt_ntgt" / label / name, seconds)
        for label in ("sins", "tut"):
            tone(split_dir / "background" / label / "bg.wav", 11.0, noise=True)
    meta = root / "meta_infos"
    meta.mkdir()
    classes = list(files)
    target_nb = pd.DataFrame(
        {"event_class": classes[:3], "mean": [2.0, 2.5, 1.5], "std": [1.0, 1.0, 0.5],
         "min": [1, 1, 1], "max": [4, 4, 3]}
    )  # fmt: skip
    target_nb.to_csv(meta / "target_nb.tsv", sep="\t", index=False)
    weights = rng.uniform(0.1, 1.0, (len(classes), len(classes)))
    cooc = pd.DataFrame(weights, columns=classes).assign(label=classes)[["label", *classes]]
    cooc.to_csv(meta / "event_cooc.tsv", sep="\t", index=False)
    return bank, meta


def _outputs(out_dir: Path) -> dict[str, object]:
    """Every soundscape's JAMS events and audio samples, and every TSV's bytes."""
    found: dict[str, object] = {}
    for path in sorted(out_dir.rglob("*")):
        key = str(path.relative_to(out_dir))
        if path.suffix == ".jams":
            found[key] = event_records(jams.load(str(path)))
        elif path.suffix == ".wav":
            audio, sr = sf.read(path, dtype="int32")
            found[key] = hashlib.sha1(audio.tobytes() + str(sr).encode()).hexdigest()
        elif path.suffix in (".tsv", ".txt"):
            found[key] = path.read_bytes()
        elif path.is_file():
            found[key] = "unexpected file"
    return found


@pytest.mark.slow
def test_killed_generator_resumes_without_rendering_twice(tmp_path):
    """SIGKILL the real command (with its workers) at a seeded random point, start it again:
    the result equals an uninterrupted run, and no clip complete at the kill is rendered again."""
    bank, meta = _tiny_2021_soundbank(tmp_path)
    common = ["--out_soundbank", str(bank), "--meta_infos", str(meta), "--n_train", "5",
              "--n_validation", "3"]  # fmt: skip
    uninterrupted = Dcase2021Config(
        basedir=tmp_path / "a", out_dir=tmp_path / "a" / "out", out_soundbank=bank,
        meta_infos=meta, n_train=5, n_validation=3, only_synth=True, resample=False,
    )  # fmt: skip
    generate_dcase2021(uninterrupted)
    reference = _outputs(tmp_path / "a" / "out")
    assert sum(key.endswith(".wav") for key in reference) == 8

    out = tmp_path / "b" / "out"
    args = ["--basedir", str(tmp_path / "b"), "--out_dir", str(out), *common, "--render_jobs", "2"]
    draw = random.Random(2021)
    kill_after, extra_s = draw.randint(1, 3), draw.uniform(0.0, 0.1)
    process = _generate(*args)
    deadline = time.monotonic() + 240
    while len(list(out.rglob("*.jams"))) < kill_after and process.poll() is None:
        assert time.monotonic() < deadline, "the generator did not progress"
        time.sleep(0.02)
    time.sleep(extra_s)
    os.killpg(process.pid, signal.SIGKILL)  # the command and its rendering workers
    process.communicate()
    assert process.returncode == -signal.SIGKILL

    complete = sorted(out.rglob("*.jams"))
    assert 0 < len(complete) < 8
    for jams_path in complete:  # a JAMS is written last: its clip is whole
        assert jams_path.with_suffix(".wav").is_file() and jams_path.with_suffix(".txt").is_file()
    stamps = {
        p: (p.stat().st_ino, p.stat().st_mtime_ns)
        for j in complete
        for p in (j, j.with_suffix(".wav"))
    }
    output = _run(*args)
    counts = [
        tuple(map(int, m)) for m in re.findall(r"(\d+) clips to render \((\d+) already", output)
    ]
    assert len(counts) == 2  # train, validation
    assert sum(done for _, done in counts) == len(complete)
    assert sum(todo for todo, _ in counts) == 8 - len(complete)
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in stamps} == stamps
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temporary file left
    assert _outputs(out) == reference  # same JAMS, audio, TSVs; render_jobs changed nothing


@pytest.mark.parametrize("first_fixed", [True, False])
def test_resuming_with_the_other_draws_stops(tmp_path, first_fixed):
    """Clips drawn with(out) --fix_2021_quirks are never silently reused by the other mode."""
    bank, meta = _tiny_2021_soundbank(tmp_path)

    def config(fixed: bool) -> Dcase2021Config:
        return Dcase2021Config(
            basedir=tmp_path, out_dir=tmp_path / "out", out_soundbank=bank, meta_infos=meta,
            n_train=1, n_validation=1, only_synth=True, resample=False, fix_2021_quirks=fixed,
        )  # fmt: skip

    generate_dcase2021(config(first_fixed))
    with pytest.raises(DrawMismatch, match="0.jams"):
        generate_dcase2021(config(not first_fixed))


def test_bad_meta_infos_is_one_error_line(tmp_path, capsys):
    from desed_task.data_generation.dcase2021.cli import main

    bank, meta = _tiny_2021_soundbank(tmp_path)
    (meta / "target_nb.tsv").unlink()
    argv = ["--basedir", str(tmp_path), "--only_synth", "--out_soundbank", str(bank),
            "--meta_infos", str(meta), "--no_resample"]  # fmt: skip
    assert main("generate", argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    error = [line for line in err.splitlines() if line.startswith("error")]
    assert error == [f"error: {meta / 'target_nb.tsv'}: missing; give the 2021 meta infos "
                     "folder with --meta_infos (or leave it out to download it)"]  # fmt: skip
