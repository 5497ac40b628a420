"""Scoring recordings of any length, rate and channel count: the long-form windows, the Python
API, the CLI (``python -m desed_task.inference``) and the full-length evaluation of train_sed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from conftest import write_wav
from pipeline import REPO, tiny_detector_config, write_config
from torch import nn

from desed_task.data.resample import resample_audio
from desed_task.evaluation import intersection_f1_macro
from desed_task.features.mel import log_mel
from desed_task.inference import LongFormScorer, SEDPipeline, SoundEventDetector
from desed_task.inference.cli import main as inference_main
from desed_task.nnet import build_network
from desed_task.training.cli import build_parser, run
from desed_task.training.mean_teacher import MeanTeacher

FRAME = 1024  # samples per output frame at 16 kHz (hop 256 x pooling 4)


def frame_sums(audio: torch.Tensor, hop_length: int = 256, pooling: int = 4) -> torch.Tensor:
    """A stand-in network output that depends only on absolute audio content: frame j is the sum
    of samples [j, j + 1) * FRAME (zero padding adds nothing), with the CRNN's frame count."""
    n_frames = (1 + audio.shape[-1] // hop_length) // pooling
    padded = nn.functional.pad(audio, (0, n_frames * FRAME))
    return padded[:, : n_frames * FRAME].reshape(audio.shape[0], 1, n_frames, FRAME).sum(-1)


@pytest.mark.parametrize("seconds", [0.3, 7.0, 10.0, 23.3, 61.7])
@pytest.mark.parametrize("window, hop", [(10.0, 5.0), (10.0, 10.0), (4.0, 1.0), (2.6, 2.6)])
def test_overlapping_windows_land_on_the_absolute_frame_grid(seconds, window, hop):
    audio = torch.from_numpy(np.random.default_rng(0).standard_normal(int(seconds * 16000)).astype(np.float32))
    scorer = LongFormScorer(frame_sums, 256, 4, window=round(window * 16000), hop=round(hop * 16000), batch_size=3)
    expected = frame_sums(nn.functional.pad(audio, (0, max(0, 16000 - len(audio))))[None])[0]
    n_frames = max(1, (1 + len(audio) // 256) // 4)
    scores = scorer.score(audio)
    assert scores.shape == (1, n_frames)
    np.testing.assert_allclose(scores, expected[:, :n_frames].numpy(), rtol=1e-5, atol=1e-4)


def test_windows_do_not_depend_on_how_the_stream_is_chunked():
    audio = np.random.default_rng(1).standard_normal(16000 * 27 + 123).astype(np.float32)
    scorer = LongFormScorer(frame_sums, 256, 4, window=160000, hop=80000)
    whole = [(s, w.copy()) for s, w in scorer.windows([audio])]
    cuts = [0, 5, 70000, 70001, 300000, len(audio)]
    chunked = [(s, w.copy()) for s, w in scorer.windows(audio[a:b] for a, b in zip(cuts, cuts[1:]))]
    assert [s for s, _ in whole] == [s for s, _ in chunked] == [0, 79872, 159744, 239616, 319488]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(whole, chunked))
    assert whole[-1][0] + len(whole[-1][1]) == len(audio)


def test_scores_match_one_pass_of_the_network_for_a_training_length_clip(tiny_checkpoint):
    detector = SoundEventDetector.from_checkpoint(tiny_checkpoint, window=10, hop=5)
    audio = 0.1 * torch.randn(160000)
    with torch.no_grad():
        expected = detector.pipeline(audio[None])[0][0].numpy()
    np.testing.assert_allclose(detector.scores(audio, 16000), expected, atol=1e-6)


def test_rate_and_channels_are_converted_as_in_training(tiny_checkpoint):
    detector = SoundEventDetector.from_checkpoint(tiny_checkpoint)
    stereo = 0.1 * np.random.default_rng(2).standard_normal((2, 44100 * 12)).astype(np.float32)
    mono_16k = resample_audio(stereo.mean(0), 44100, 16000)  # kaiser_best, as 2021 resampled
    np.testing.assert_allclose(detector.scores(stereo, 44100), detector.scores(mono_16k, 16000), atol=1e-6)


def _cli(args: list[str], capsys) -> tuple[int, dict, str]:
    with pytest.raises(SystemExit) as exit_info:
        inference_main(args)
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    return exit_info.value.code, json.loads(lines[-1]) if lines else {}, err


def test_cli_scores_short_long_stereo_8k_48k_and_reports_a_bad_file(tiny_checkpoint, tmp_path, capsys):
    inputs = tmp_path / "in"
    write_wav(inputs / "short.wav", seconds=0.4)
    write_wav(inputs / "long.flac", seconds=75.0)
    write_wav(inputs / "stereo.wav", seconds=10.0, channels=2)
    write_wav(inputs / "sub" / "rate8k.wav", seconds=6.0, fs=8000)
    write_wav(inputs / "sub" / "rate48k.ogg", seconds=3.7, fs=48000, channels=3)
    (inputs / "broken.wav").write_bytes(b"RIFF not audio")
    (inputs / "empty.wav").write_bytes(b"")
    out = tmp_path / "out"
    code, summary, err = _cli(["--checkpoint", str(tiny_checkpoint), "--out_dir", str(out), "--gpus", "0", str(inputs)], capsys)
    assert code == 2
    assert summary["inputs"] == 7 and summary["scored"] == 5 and summary["failed"] == 2
    assert summary["upsampled"] == 1  # sub/rate8k.wav
    assert summary["audio_seconds"] == pytest.approx(0.4 + 75 + 10 + 6 + 3.7, abs=1e-3)
    assert "error:" in err and "broken.wav" in err and "empty.wav" in err
    seconds = {"short.wav": 0.4, "long.flac": 75, "stereo.wav": 10, "sub/rate8k.wav": 6, "sub/rate48k.ogg": 3.7}
    for name, length in seconds.items():
        n = (1 + round(length * 16000) // 256) // 4  # one pass of the network over the file
        table = pd.read_csv(out / "scores" / f"{name}.tsv", sep="\t")
        assert list(table.columns[:2]) == ["onset", "offset"] and table.shape == (n, 12), name
        assert np.isfinite(table.to_numpy()).all()
    events = pd.read_csv(out / "events.tsv", sep="\t")
    assert list(events.columns) == ["filename", "onset", "offset", "event_label"]
    assert len(events) == summary["events"]


def test_cli_per_class_values_and_plot(tiny_checkpoint, tmp_path, capsys):
    clip = write_wav(tmp_path / "clip.wav", seconds=10.0)
    classes = SoundEventDetector.from_checkpoint(tiny_checkpoint).class_names
    (tmp_path / "th.yaml").write_text("".join(f"{c}: {0.3 + 0.02 * i}\n" for i, c in enumerate(classes)))
    (tmp_path / "mw.tsv").write_text("".join(f"{c}\t{1 + 2 * (i % 3)}\n" for i, c in enumerate(classes)))
    args = ["--checkpoint", str(tiny_checkpoint), "--out_dir", str(tmp_path / "out"), "--gpus", "0",
            "--thresholds", str(tmp_path / "th.yaml"), "--median_windows", str(tmp_path / "mw.tsv"), "--plot", str(clip)]
    code, summary, _ = _cli(args, capsys)
    assert code == 0 and summary["scored"] == 1 and summary["failed"] == 0
    assert (tmp_path / "out" / "plots" / "clip.wav.png").stat().st_size > 10000

    # the same values from a post-processing file (python -m desed_task.postprocessing tune)
    lines = ["method: median", "median_window:"] + [f"  {c}: {1 + 2 * (i % 3)}" for i, c in enumerate(classes)]
    lines += ["threshold:"] + [f"  {c}: {0.3 + 0.02 * i}" for i, c in enumerate(classes)]
    (tmp_path / "pp.yaml").write_text("\n".join(lines) + "\n")
    args = ["--checkpoint", str(tiny_checkpoint), "--out_dir", str(tmp_path / "out_pp"), "--gpus", "0",
            "--postprocessing", str(tmp_path / "pp.yaml"), str(clip)]
    code, _, _ = _cli(args, capsys)
    assert code == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out_pp" / "events.tsv", sep="\t"),
                                  pd.read_csv(tmp_path / "out" / "events.tsv", sep="\t"))
    code, _, err = _cli([*args, "--median_window", "3"], capsys)
    assert code == 2 and "--postprocessing replaces" in err


def test_cli_empty_folder_and_bad_checkpoint_are_clear_errors(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = _cli(["--checkpoint", str(tiny_checkpoint), "--gpus", "0", str(tmp_path / "empty")], capsys)
    assert code == 2 and err.startswith("error: ") and "no audio file" in err and "Traceback" not in err
    clip = write_wav(tmp_path / "clip.wav", seconds=1.0)
    code, _, err = _cli(["--checkpoint", str(tmp_path / "missing.ckpt"), "--gpus", "0", str(clip)], capsys)
    assert code == 2 and "missing.ckpt" in err and "not found" in err


# ---------------------------------------------------------------------- a long recording
TONES = (440.0, 3000.0)  # Hz of the two "classes" of the oracle network


class ToneNetwork(nn.Module):
    """An oracle CRNN stand-in: class k is active where the mel bands around TONES[k] dominate."""

    def __init__(self, bands: list[slice]) -> None:
        super().__init__()
        self.bands = bands

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = features.shape[-1] // 4
        pooled = features[..., : 4 * n].reshape(*features.shape[:2], n, 4).mean(-1)
        strong = torch.stack([torch.sigmoid(40 * (pooled[:, b].amax(1) - 0.7)) for b in self.bands], 1)
        return strong, strong.amax(-1)


def _tone_clip(rng, fs: int) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    audio = 0.003 * rng.standard_normal(10 * fs)
    events = []
    for k, freq in enumerate(TONES):
        onset = round(rng.uniform(0.2, 5.0), 2)
        offset = round(min(onset + rng.uniform(1.0, 4.0), 9.8), 2)
        t = np.arange(int(onset * fs), int(offset * fs))
        audio[t] += 0.3 * np.sin(2 * np.pi * freq * t / fs)
        events.append((onset, offset, f"tone{k}"))
    return audio.astype(np.float32), events


def test_long_recording_detections_land_at_absolute_times(tmp_path):
    config = tiny_detector_config()
    mel_bands = [slice(20, 30), slice(78, 90)]  # 440 Hz and 3 kHz on the 128-band HTK scale
    reference = SoundEventDetector.from_config(config)
    pipeline = SEDPipeline(reference.pipeline.mel, reference.pipeline.scaler, ToneNetwork(mel_bands))
    detector = SoundEventDetector(pipeline, ["tone0", "tone1"], window=10, hop=5, median_window=7)
    rng = np.random.default_rng(0)
    fs = 44100
    clips, rows = [], []
    for i in range(6):
        audio, events = _tone_clip(rng, fs)
        clips.append(audio)
        rows += [(f"clip{i}.wav", on, off, label) for on, off, label in events]
    clip_events = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])
    separate = pd.concat(
        [detector.events(detector.scores(audio, fs), f"clip{i}.wav") for i, audio in enumerate(clips)]
    )
    clip_durations = pd.DataFrame({"filename": [f"clip{i}.wav" for i in range(6)], "duration": 10.0})
    f1_separate = intersection_f1_macro(separate, clip_events, clip_durations)

    long_path = tmp_path / "long.wav"
    stereo = np.stack([np.concatenate(clips), 0.5 * np.concatenate(clips)], 1)  # 60 s, 44.1 kHz stereo
    sf.write(str(long_path), stereo, fs, subtype="FLOAT")
    scores, audio_file = detector.score_file(long_path)
    long_events = detector.events(scores, "long.wav", duration=audio_file.duration)
    shifted = clip_events.assign(
        onset=clip_events.onset + 10 * clip_events.filename.str[4].astype(int),
        offset=clip_events.offset + 10 * clip_events.filename.str[4].astype(int),
        filename="long.wav",
    )
    f1_long = intersection_f1_macro(long_events, shifted, pd.DataFrame({"filename": ["long.wav"], "duration": [60.0]}))
    assert f1_separate > 0.9
    assert f1_long == pytest.approx(f1_separate, abs=0.05)
    # onsets within two frames of the truth
    for _, event in shifted.iterrows():
        same = long_events[long_events.event_label == event.event_label]
        assert np.min(np.abs(same.onset - event.onset)) < 0.13


@pytest.mark.slow
def test_a_trained_checkpoint_scores_a_long_recording_of_demo_clips_as_the_clips(trained, tiny_data, tmp_path):
    """A checkpoint of train_sed.py (the tiny demo's, `trained`) on the demo's 44.1 kHz dev-test
    clips joined into one stereo recording: the events of the long recording (sliding windows)
    are those of the clips scored one by one, shifted to their place. Agreement with the ground
    truth needs a well trained model; agreement between the two paths holds for any model."""
    detector = SoundEventDetector.from_checkpoint(trained[0], resampler="soxr_hq")  # fast; either will do
    folder = tiny_data / "audio" / "validation" / "validation_44k"
    names = sorted(path.name for path in folder.glob("*.wav"))
    clips = [sf.read(str(folder / name), dtype="float32", always_2d=True) for name in names]
    fs = clips[0][1]
    assert fs == 44100 and len(names) == 8
    separate = pd.concat([detector.events(detector.scores(audio.T, fs), name) for name, (audio, _) in zip(names, clips)])
    long_audio = np.concatenate([audio.mean(1) for audio, _ in clips])
    sf.write(str(tmp_path / "long.wav"), np.stack([long_audio, long_audio], 1), fs)
    scores, _ = detector.score_file(tmp_path / "long.wav")
    long_events = detector.events(scores, "long.wav")

    offsets = separate.filename.map({name: 10.0 * i for i, name in enumerate(names)})
    shifted = separate.assign(onset=separate.onset + offsets, offset=separate.offset + offsets, filename="long.wav")
    assert len(long_events) > 0 and separate.event_label.nunique() > 1  # the test can fail
    long_duration = pd.DataFrame({"filename": ["long.wav"], "duration": [10.0 * len(names)]})
    assert intersection_f1_macro(long_events, shifted, long_duration) > 0.85


# ---------------------------------------------------------------------- train_sed.py eval mode
def test_eval_from_checkpoint_scores_clips_at_their_own_length(tiny_checkpoint, tmp_path):
    eval_folder = tmp_path / "eval"
    seven = write_wav(eval_folder / "seven.wav", seconds=7.0, seed=1)
    twelve = write_wav(eval_folder / "twelve.wav", seconds=12.0, seed=2)
    config = tiny_detector_config()
    config["data"]["eval_folder"] = str(eval_folder)
    conf = write_config(config, tmp_path / "tiny.yaml")
    args = build_parser("eval", str(conf), "unused").parse_args(
        ["--conf_file", str(conf), "--gpus", "0", "--eval_from_checkpoint", str(tiny_checkpoint), "--log_dir", str(tmp_path / "log")]
    )
    run(args, "unused")
    detector = SoundEventDetector.from_checkpoint(tiny_checkpoint, window=None)
    for path, n_frames in ((seven, 109), (twelve, 187)):
        table = pd.read_csv(tmp_path / "log/version_0/metrics_eval/teacher/scores/raw" / f"{path.stem}.tsv", sep="\t")
        audio, _ = sf.read(str(path), dtype="float32")
        with torch.no_grad():  # 2021: the network over the whole, unpadded clip
            expected = detector.pipeline(torch.from_numpy(audio)[None])[0][0].numpy()
        assert table.shape[0] == n_frames == expected.shape[1]
        np.testing.assert_allclose(table.iloc[:, 2:].to_numpy().T, expected, atol=1e-5)


def _decode_2021_per_clip(raw_folder: Path, threshold: float) -> pd.DataFrame:
    """2021's eval decoding (utils.batched_decode_preds, one clip per batch) of the raw score
    files: binarise, scipy median filter of 7, contiguous regions, times clamped to [0, 10]."""
    from test_evaluation import decode_2021

    tables = []
    for path in sorted(raw_folder.glob("*.tsv")):
        table = pd.read_csv(path, sep="\t", float_precision="round_trip")
        classes = list(table.columns[2:])
        tables.append(decode_2021(table[classes].to_numpy().T[None], [path.stem + ".wav"], classes, threshold, 7))
    return pd.concat(tables, ignore_index=True)


def test_eval_from_checkpoint_writes_the_2021_files_of_each_model(tmp_path):
    """Issue 16: per model, predictions_05_<model>.tsv and the 50 predictions_th_<t>.tsv
    (columns event_label, onset, offset, filename; 2021's loop on that model's scores, event
    times clamped to 10 s), each model its own; the clamp off with
    training.clamp_events_to_audio_max_len: false."""
    torch.manual_seed(0)
    config = tiny_detector_config()
    module = MeanTeacher(config, build_network(config["net"]), [f"c{i}" for i in range(10)], 0.064)
    with torch.no_grad():  # a student unlike its teacher
        for param in module.sed_student.parameters():
            param.add_(0.5 * torch.randn_like(param))
    checkpoint = tmp_path / "tiny.ckpt"
    torch.save({"hyper_parameters": config, "state_dict": module.state_dict()}, checkpoint)
    write_wav(tmp_path / "eval" / "seven.wav", seconds=7.0, seed=1)
    write_wav(tmp_path / "eval" / "twelve.wav", seconds=12.0, seed=2)
    config["data"]["eval_folder"] = str(tmp_path / "eval")

    def evaluate(name: str, **training) -> Path:
        config["training"].update(training)
        conf = write_config(config, tmp_path / f"{name}.yaml")
        args = build_parser("eval", str(conf), "unused").parse_args(
            ["--conf_file", str(conf), "--gpus", "0", "--eval_from_checkpoint", str(checkpoint),
             "--log_dir", str(tmp_path / name)]
        )
        run(args, "unused")
        return tmp_path / name / "version_0" / "metrics_eval"

    out = evaluate("clamped")
    thresholds = [f"{t:.2f}" for t in np.arange(1, 100, 2) / 100]
    tables = {}
    for model in ("student", "teacher"):
        folder = out / model
        expected = {f"predictions_05_{model}.tsv"} | {f"predictions_th_{t}.tsv" for t in thresholds}
        assert {p.name for p in folder.glob("*.tsv")} == expected
        for threshold in [0.5, *map(float, thresholds)]:
            name = f"predictions_05_{model}.tsv" if threshold == 0.5 else f"predictions_th_{threshold:.2f}.tsv"
            table = pd.read_csv(folder / name, sep="\t", float_precision="round_trip")
            assert list(table.columns) == ["event_label", "onset", "offset", "filename"]
            reference = _decode_2021_per_clip(folder / "scores" / "raw", threshold)
            pd.testing.assert_frame_equal(table, reference[list(table.columns)], check_dtype=False)
            tables[model, threshold] = table
    low = tables["teacher", 0.01]
    assert low[low.filename == "twelve.wav"].offset.max() == 10.0  # 187 frames = 11.968 s, clamped
    assert low[low.filename == "seven.wav"].offset.max() <= 7.0
    assert not tables["student", 0.5].equals(tables["teacher", 0.5])

    unclamped = evaluate("unclamped", clamp_events_to_audio_max_len=False)
    low = pd.read_csv(unclamped / "teacher" / "predictions_th_0.01.tsv", sep="\t")
    assert low[low.filename == "twelve.wav"].offset.max() > 10.0


def test_an_official_2021_checkpoint_scores_a_recording(tmp_path):
    from test_checkpoints import official_2021_checkpoint

    from desed_task.config import load_config

    config = load_config(REPO / "confs" / "sed.yaml")
    torch.manual_seed(0)
    network = build_network(config["net"]).eval()
    path = official_2021_checkpoint(tmp_path / "epoch=178-step=21121.ckpt", network.state_dict(), config)
    detector = SoundEventDetector.from_checkpoint(path, model="student")
    audio = 0.1 * torch.randn(160000)
    with torch.no_grad():
        expected = network(detector.pipeline.scaler(log_mel(detector.pipeline.mel(audio[None]))))[0][0].numpy()
    np.testing.assert_allclose(detector.scores(audio.numpy(), 16000), expected, atol=1e-6)
    assert detector.class_names[0] == "Alarm_bell_ringing" and detector.median_window == 7
