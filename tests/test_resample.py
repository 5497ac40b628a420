"""Resampling as 2021 did (resampy 0.2.2's kaiser_best through librosa 0.8), soxr HQ behind
``data.resampler`` / ``--resampler``: the numbers, block-by-block reading, the resampled folders
and the entry points that resample (train_sed.py, run_separation.py is in test_separation.py,
the inference CLI)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr

from desed_task.config import ConfigError, validate_config
from desed_task.data.kaiser_best import KaiserBestStream, reach
from desed_task.data.resample import (
    MARKER,
    check_config_resampler,
    resample_audio,
    resample_folder,
    resample_stream,
)

GOLDEN_DIR = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN_DIR))
from make_resample_golden import CASES  # noqa: E402

GOLDEN = np.load(GOLDEN_DIR / "resample_2021_golden.npz")


def golden_input(name: str) -> np.ndarray:
    """(samples, channels) float32 input of a golden case, as a 16-bit wav reads."""
    _, _, n, channels = CASES[name]
    return (GOLDEN["input"][: n * channels].astype(np.float32) / 32768).reshape(n, channels)


@pytest.mark.parametrize("name", list(CASES))
def test_kaiser_best_gives_the_numbers_of_2021(name):
    """Equal to librosa 0.8 + resampy 0.2.2 (tests/golden/make_resample_golden.py), the length
    librosa's (ceil: the 44.1 kHz case gets resampy's 1600 samples and a zero)."""
    orig, target, _, channels = CASES[name]
    x = golden_input(name)
    y = resample_audio(x if channels > 1 else x[:, 0], orig, target)
    assert y.dtype == np.float32 and y.shape == (GOLDEN[name].shape if channels > 1 else GOLDEN[name].shape[:1])
    np.testing.assert_allclose(y.reshape(GOLDEN[name].shape), GOLDEN[name], rtol=0, atol=1e-6)


@pytest.mark.parametrize("orig", [44100, 48000, 22050, 8000, 44099])
def test_kaiser_best_blocks_equal_the_whole_signal_at_every_block_edge(orig):
    rng = np.random.default_rng(orig)
    x = (0.1 * rng.standard_normal(int(2.3 * orig))).astype(np.float32)
    whole = resample_audio(x, orig, 16000)
    cuts = [0, 1, 1, 300, 301, orig // 2, orig // 2 + 177, orig, orig + 5, len(x)]  # 1-sample and empty blocks too
    stream, parts = KaiserBestStream(orig, 16000), []
    for a, b in zip(cuts, cuts[1:]):
        parts.append(stream.push(x[a:b])[:, 0])
        assert len(stream.buffer) <= (b - a) + 2 * reach(orig, 16000) + 2  # memory bounded by the block
    parts.append(stream.finish()[:, 0])
    blocks = np.concatenate(parts)
    assert blocks.shape == whole.shape
    np.testing.assert_allclose(blocks, whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize("resampler", ["kaiser_best", "soxr_hq"])
def test_a_file_read_in_blocks_is_resampled_as_the_whole_file(tmp_path, monkeypatch, resampler):
    """The inference reader (desed_task.inference.reading.AudioFile), blocks of 0.25 s here
    (30 s in use): the concatenated blocks equal one resampling of the whole mono signal."""
    from desed_task.inference import reading

    monkeypatch.setattr(reading, "BLOCK_SECONDS", 0.25)
    stereo = (0.1 * np.random.default_rng(3).standard_normal((int(1.37 * 44100), 2))).astype(np.float32)
    sf.write(str(tmp_path / "a.wav"), stereo, 44100, subtype="FLOAT")
    chunks = list(reading.AudioFile(tmp_path / "a.wav", 16000, resampler).chunks())
    assert len(chunks) >= 5
    whole = resample_audio(reading.to_mono(stereo), 44100, 16000, resampler)
    np.testing.assert_allclose(np.concatenate(chunks), whole, rtol=0, atol=1e-6)


def test_soxr_hq_is_soxr():
    x = golden_input("44k_to_16k")[:, 0]
    expected = soxr.resample(x, 44100, 16000, quality="HQ")
    np.testing.assert_allclose(resample_audio(x, 44100, 16000, "soxr_hq"), expected, rtol=0, atol=1e-6)
    streamed = np.concatenate(list(resample_stream([x[:1000], x[1000:]], 44100, 16000, "soxr_hq")))
    np.testing.assert_allclose(streamed, expected, rtol=0, atol=1e-6)


def test_an_unknown_resampler_is_refused_by_the_config_check():
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "confs" / "sed.yaml").read_text())
    config["data"]["resampler"] = "sinc_best"
    with pytest.raises(ConfigError, match=r"x.yaml: 'data.resampler' must be kaiser_best \(2021\) or soxr_hq, got 'sinc_best'"):
        check_config_resampler(validate_config(config, "x.yaml"), "x.yaml")
    with pytest.raises(ValueError, match="resampler must be one of kaiser_best, soxr_hq"):
        resample_audio(np.zeros(10, np.float32), 44100, 16000, "sinc_best")


def write_int16(path: Path, audio: np.ndarray, fs: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, fs, subtype="PCM_16")
    return path


def test_resampled_folder_is_2021s_float32_wav_and_the_key_switches_to_soxr(tmp_path, caplog):
    x = golden_input("44k_to_16k")[:, 0]
    write_int16(tmp_path / "44k" / "a.wav", x, 44100)
    write_int16(tmp_path / "44k" / "sub" / "b.flac", x[::-1], 44100)
    dst = tmp_path / "16k"

    report = resample_folder(tmp_path / "44k", dst, 16000, progress=False)
    assert report.resampled == 2 and not report.failed
    assert sf.info(str(dst / "a.wav")).subtype == "FLOAT"  # what 2021's torchaudio.save wrote
    assert sf.info(str(dst / "sub" / "b.flac")).subtype == "PCM_24"
    out, fs = sf.read(str(dst / "a.wav"), dtype="float32")
    assert fs == 16000
    np.testing.assert_allclose(out, GOLDEN["44k_to_16k"][:, 0], rtol=0, atol=1e-6)
    assert (dst / MARKER).read_text().strip() == "kaiser_best"

    with caplog.at_level(logging.WARNING):
        report = resample_folder(tmp_path / "44k", dst, 16000, resampler="soxr_hq", progress=False)
    assert report.resampled == 2 and "resampled with kaiser_best: resampling it again with soxr_hq" in caplog.text
    out, _ = sf.read(str(dst / "a.wav"), dtype="float32")
    np.testing.assert_allclose(out, soxr.resample(x, 44100, 16000, quality="HQ"), rtol=0, atol=1e-6)
    assert (dst / MARKER).read_text().strip() == "soxr_hq"
    again = resample_folder(tmp_path / "44k", dst, 16000, resampler="soxr_hq", progress=False)
    assert (again.resampled, again.already_done) == (0, 2)


@pytest.mark.slow  # imports Lightning, tests a checkpoint
@pytest.mark.parametrize("resampler", [None, "soxr_hq"])
def test_train_sed_resamples_the_44k_folder_with_data_resampler(tmp_path, tiny_checkpoint, resampler):
    """``train_sed.py --test_from_checkpoint`` on a config with ``data.test_folder_44k``: the
    16 kHz folder is made with kaiser_best (2021) unless ``data.resampler: soxr_hq``."""
    from pipeline import run_cli, tiny_detector_config, write_config

    rng = np.random.default_rng(0)
    clips = {f"{name}.wav": (0.1 * rng.standard_normal(44100 * 2)).astype(np.float32) for name in ("a", "b")}
    for name, audio in clips.items():
        write_int16(tmp_path / "test_44k" / name, audio, 44100)
    (tmp_path / "test.tsv").write_text("filename\tonset\toffset\tevent_label\na.wav\t0.5\t1.5\tDog\nb.wav\t0.0\t1.0\tCat\n")
    (tmp_path / "test_dur.tsv").write_text("filename\tduration\na.wav\t2.0\nb.wav\t2.0\n")
    config = tiny_detector_config()
    for key in [k for k in config["data"] if k.endswith(("_folder", "_folder_44k", "_tsv", "_dur"))]:
        config["data"][key] = None
    config["data"].update(test_folder_44k=str(tmp_path / "test_44k"), test_folder=str(tmp_path / "test_16k"),
                          test_tsv=str(tmp_path / "test.tsv"), test_dur=str(tmp_path / "test_dur.tsv"))
    if resampler:
        config["data"]["resampler"] = resampler
    conf = write_config(config, tmp_path / "conf.yaml")

    run_cli(conf, "--test_from_checkpoint", str(tiny_checkpoint), "--log_dir", str(tmp_path / "exp"))

    for name in clips:
        source, _ = sf.read(str(tmp_path / "test_44k" / name), dtype="float32")
        made, fs = sf.read(str(tmp_path / "test_16k" / name), dtype="float32")
        expected = resample_audio(source, 44100, 16000, resampler)
        assert fs == 16000 and made.shape == expected.shape
        np.testing.assert_allclose(made, expected, rtol=0, atol=1e-6)
    other = resample_audio(source, 44100, 16000, "soxr_hq" if resampler is None else "kaiser_best")
    assert np.abs(made - other).max() > 1e-3  # the two resamplers are told apart


@pytest.mark.slow  # the CLI on a tiny checkpoint
def test_inference_cli_resamples_a_44k_recording_with_kaiser_best_unless_told(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    """``python -m desed_task.inference`` on a 44.1 kHz file reads it through kaiser_best and
    scores the kaiser_best-resampled audio; ``--resampler soxr_hq`` switches to soxr. (The tiny
    random network barely tells the two apart, so the reader's resampler is recorded too.)"""
    from desed_task.inference import SoundEventDetector, reading
    from desed_task.inference.cli import main

    used = []
    real_stream = reading.resample_stream

    def recording_stream(blocks, orig_rate, target_rate, resampler=None):
        used.append((orig_rate, target_rate, resampler))
        return real_stream(blocks, orig_rate, target_rate, resampler)

    monkeypatch.setattr(reading, "resample_stream", recording_stream)
    audio = (0.1 * np.random.default_rng(5).standard_normal(44100 * 12)).astype(np.float32)
    sf.write(str(tmp_path / "rec.wav"), audio, 44100, subtype="FLOAT")
    detector = SoundEventDetector.from_checkpoint(tiny_checkpoint)
    assert detector.resampler == "kaiser_best"  # the checkpoint's config has no data.resampler

    for flag, resampler in [([], "kaiser_best"), (["--resampler", "soxr_hq"], "soxr_hq")]:
        used.clear()
        out = tmp_path / resampler
        with pytest.raises(SystemExit) as exit_info:
            main(["--checkpoint", str(tiny_checkpoint), "--out_dir", str(out), "--gpus", "0", *flag, str(tmp_path / "rec.wav")])
        assert exit_info.value.code == 0 and json.loads(capsys.readouterr().out.strip().splitlines()[-1])["scored"] == 1
        assert used == [(44100, 16000, resampler)]
        expected = detector.scores(resample_audio(audio, 44100, 16000, resampler), 16000)
        table = pd.read_csv(out / "scores" / "rec.wav.tsv", sep="\t")
        np.testing.assert_allclose(table.iloc[:, 2:].to_numpy().T, expected, rtol=1e-5, atol=1e-6)


def test_a_checkpoint_trained_with_soxr_resamples_recordings_with_soxr():
    from pipeline import tiny_detector_config

    from desed_task.inference import SoundEventDetector

    config = tiny_detector_config()
    config["data"]["resampler"] = "soxr_hq"
    assert SoundEventDetector.from_config(config).resampler == "soxr_hq"
    assert SoundEventDetector.from_config(config, resampler="kaiser_best").resampler == "kaiser_best"


def test_train_sed_refuses_an_unknown_resampler_before_any_work(tmp_path, capsys):
    """``data.resampler``'s values live in desed_task.data.resample: the training command checks
    them where it assembles its config, before the network, the data or the log folder."""
    from pipeline import tiny_config, write_config

    from desed_task.training.cli import main

    config = tiny_config(tmp_path / "absent", tmp_path / "exp")
    config["data"]["resampler"] = "sinc_best"
    conf = write_config(config, tmp_path / "tiny.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main("t", "x", "x", argv=["--conf_file", str(conf), "--gpus", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {conf}: 'data.resampler' must be kaiser_best (2021) or soxr_hq, got 'sinc_best'")
    assert not (tmp_path / "absent").exists() and not (tmp_path / "exp").exists()
