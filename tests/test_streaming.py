"""Detection on a live stream (issue 25): `SoundEventDetector.stream` equals the offline
sliding-window inference whatever the chunk sizes, returns every event within the stated latency
bound, keeps bounded buffers over an hour, takes every checkpoint kind, and
``python -m desed_task.inference --stream`` prints the same events from standard input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from pipeline import REPO
from torch import nn

from desed_task.inference import SoundEventDetector
from desed_task.inference.cli import main as inference_main
from desed_task.inference.detector import SeparationModelMissing

FRAME = 1024  # samples per output frame at 16 kHz


def chunk_sizes(rng: np.random.Generator, total: int, largest: int, singles: int = 20) -> list[int]:
    """Random chunk sizes from 1 sample to ``largest`` covering ``total`` samples, with
    ``singles`` chunks of exactly one sample among them."""
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(1 if len(sizes) < 2 * singles and rng.random() < 0.5 else int(rng.integers(1, largest + 1)))
    sizes[-1] -= sum(sizes) - total
    return [n for n in sizes if n > 0]


def between_scores(scores: np.ndarray) -> float:
    """A threshold in the widest gap between the middle half of the scores: the scores of the two
    paths are equal within 1e-6 (batches of windows differ), not bit for bit, so no score may
    lie near the threshold."""
    values = np.unique(scores)
    middle = values[len(values) // 4 : max(len(values) * 3 // 4, len(values) // 4 + 2)]
    i = int(np.argmax(np.diff(middle)))
    assert middle[i + 1] - middle[i] > 1e-5
    return float((middle[i] + middle[i + 1]) / 2)


def class_thresholds(scores: np.ndarray) -> list[float]:
    """(n_classes,) thresholds that give events in every class, see `between_scores`."""
    return [between_scores(row) for row in scores]


def streamed(stream, audio: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, pd.DataFrame, list[tuple[int, int, pd.DataFrame]]]:
    """Push ``audio`` in chunks of ``sizes``, then close: (the final scores in order, all events
    sorted as ``detector.events``, [(samples before the push, samples after it, its events)])."""
    scores, pushes, position = [], [], 0
    for n in sizes:
        events = stream.push(audio[position : position + n])
        pushes.append((position, position + n, events))
        position += n
        assert stream.last_scores_first == sum(s.shape[1] for s in scores)  # nothing lost or doubled
        scores.append(stream.last_scores)
    events = stream.close()
    pushes.append((position, position, events))
    scores.append(stream.last_scores)
    table = pd.concat([p[2] for p in pushes], ignore_index=True)
    table = table.sort_values(["onset", "event_label"], kind="stable").reset_index(drop=True)
    return np.concatenate(scores, axis=1), table, pushes


def offline(detector: SoundEventDetector, audio: np.ndarray, rate: int, **decoding) -> tuple[np.ndarray, pd.DataFrame]:
    scores = detector.scores(audio, rate)
    return scores, detector.events(scores, "rec", duration=len(audio) / rate, **decoding)


def assert_same(stream_scores, stream_events, offline_scores, offline_events) -> None:
    assert stream_scores.shape == offline_scores.shape
    np.testing.assert_allclose(stream_scores, offline_scores, atol=1e-6, rtol=0)
    assert len(offline_events) > 3  # the comparison can fail
    pd.testing.assert_frame_equal(stream_events, offline_events, check_dtype=False)


def assert_streams_as_offline(detector: SoundEventDetector, audio: np.ndarray, sizes: list[int]) -> None:
    """16 kHz ``audio`` streamed in chunks of ``sizes``, at thresholds that give events in every
    class, gives the offline path's scores and events."""
    scores = detector.scores(audio, 16000)
    thresholds = class_thresholds(scores)
    stream = detector.stream(16000, threshold=thresholds, filename="rec")
    offline_events = detector.events(scores, "rec", duration=len(audio) / 16000, threshold=thresholds)
    assert_same(*streamed(stream, audio, sizes)[:2], scores, offline_events)


# ---------------------------------------------------------------------- the CRNN of train_sed.py
@pytest.mark.parametrize("window, hop, seconds", [(10.0, 5.0, 23.3), (2.0, 1.0, 17.77), (1.0, 0.5, 9.1)])
def test_random_chunks_give_the_offline_scores_and_events(tiny_checkpoint, window, hop, seconds):
    detector = SoundEventDetector.from_checkpoint(tiny_checkpoint, window=window, hop=hop)
    rng = np.random.default_rng(round(seconds * 100))
    audio = (0.1 * rng.standard_normal(round(seconds * 16000))).astype(np.float32)
    audio[len(audio) // 3 : len(audio) // 2] *= 8  # something to detect
    scores = detector.scores(audio, 16000)
    names = detector.class_names
    thresholds = class_thresholds(scores)  # events in every class
    medians = [1 + 2 * (c % 4) for c in range(len(names))]  # 1 to 7 frames, per class
    for decoding in ({"threshold": thresholds}, {"threshold": thresholds, "median_window": medians}):
        stream = detector.stream(16000, window, hop, filename="rec", **decoding)
        sizes = chunk_sizes(rng, len(audio), 3 * round(window * 16000))
        assert_same(*streamed(stream, audio, sizes)[:2], *offline(detector, audio, 16000, **decoding))


def test_a_stream_shorter_than_a_window_or_ending_on_one_is_the_offline_recording(tiny_checkpoint):
    detector = SoundEventDetector.from_checkpoint(tiny_checkpoint, window=4, hop=2)
    rng = np.random.default_rng(3)
    for samples in (6400, 16000 * 4 - 7, 2048 * 31 + 64000):  # 0.4 s, just under a window, on a window's end
        audio = (0.1 * rng.standard_normal(samples)).astype(np.float32)
        scores = detector.scores(audio, 16000)
        stream = detector.stream(16000, threshold=class_thresholds(scores))
        got_scores, got_events, _ = streamed(stream, audio, chunk_sizes(rng, samples, 20000, singles=3))
        np.testing.assert_allclose(got_scores, scores, atol=1e-6, rtol=0)
        pd.testing.assert_frame_equal(
            got_events, detector.events(scores, threshold=class_thresholds(scores), duration=samples / 16000),
            check_dtype=False,
        )
    stream = detector.stream(16000)
    assert stream.close().empty and stream.close().empty  # nothing pushed: no event, closing twice is harmless
    with pytest.raises(ValueError, match="closed"):
        stream.push(np.zeros(10, np.float32))


@pytest.mark.parametrize("resampler", ["kaiser_best", "soxr_hq"])
def test_a_44k_stereo_integer_stream_is_resampled_as_offline(tiny_checkpoint, resampler):
    detector = SoundEventDetector.from_checkpoint(tiny_checkpoint, window=2, hop=1, resampler=resampler)
    rng = np.random.default_rng(4)
    pcm = (3000 * rng.standard_normal((round(7.3 * 44100), 2))).astype(np.int16)
    scores = detector.scores(pcm, 44100)
    threshold = class_thresholds(scores)
    stream = detector.stream(44100, threshold=threshold, filename="rec")
    got_scores, got_events, _ = streamed(stream, pcm, chunk_sizes(rng, len(pcm), 3 * 88200, singles=5))
    assert_same(got_scores, got_events, scores, detector.events(scores, "rec", threshold=threshold, duration=len(pcm) / 44100))
    stream = detector.stream(44100)
    stream.push(np.zeros((5, 2), np.float32))
    with pytest.raises(ValueError, match="earlier chunks had 2"):
        stream.push(np.zeros((5, 3), np.float32))


# ---------------------------------------------------------------------- latency and memory
class Loudness(nn.Module):
    """A stand-in SED pipeline with well-defined events: class k is active in the output frames
    whose rms exceeds 0.05 x 2**k (scores rms / (0.1 x 2**k) clipped to [0, 1])."""

    takes_sources = False

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n_frames = (1 + audio.shape[-1] // 256) // 4
        padded = nn.functional.pad(audio, (0, n_frames * FRAME))[:, : n_frames * FRAME]
        rms = padded.reshape(audio.shape[0], n_frames, FRAME).pow(2).mean(-1).sqrt()
        strong = torch.stack([(rms / (0.1 * 2**k)).clamp(0, 1) for k in range(3)], 1)
        return strong, strong.amax(-1)


def bursts(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Quiet noise with loud bursts of 0.1 to 3 s every 0.2 to 4 s, at three levels."""
    audio = 0.01 * rng.standard_normal(round(seconds * 16000))
    position = 0
    while position < len(audio):
        position += int(rng.uniform(0.2, 4.0) * 16000)
        length = int(rng.uniform(0.1, 3.0) * 16000)
        audio[position : position + length] *= rng.choice([8, 16, 32])
        position += length
    return audio.astype(np.float32)


def loudness_detector(**kwargs) -> SoundEventDetector:
    return SoundEventDetector(Loudness(), ["soft", "loud", "louder"], **kwargs)


@pytest.mark.parametrize("window, hop, median", [(1.0, 0.5, 7), (2.0, 2.0, 1), (10.0, 5.0, 7)])
def test_every_event_comes_within_the_latency_bound(window, hop, median):
    detector = loudness_detector(window=window, hop=hop, median_window=median)
    rng = np.random.default_rng(5)
    audio = bursts(rng, 50.0)
    stream = detector.stream(16000, filename="rec")
    right = median - 1 - median // 2
    assert stream.latency_bound == pytest.approx(window + right * 0.064)  # the README's bound
    bound = round(stream.latency_bound * 16000)
    scores, events, pushes = streamed(stream, audio, [256] * (len(audio) // 256) + [len(audio) % 256])
    assert_same(scores, events, *offline(detector, audio, 16000))
    latencies = []
    for before, after, returned in pushes:
        for offset in returned["offset"]:
            due = round(offset * 16000) + bound  # the event had to come by the push that reaches this
            assert before < due, f"event ending at {offset} s came {(before - due) / 16000} s late"
            latencies.append((after - offset * 16000) / 16000)
    # the bound is reached (by an event whose offset + r frames falls on a hop), or within a hop
    assert max(latencies) > stream.latency_bound - stream.scorer.hop / 16000
    assert len(latencies) > 20


def test_memory_stays_flat_over_an_hour():
    detector = loudness_detector(window=10, hop=5)
    stream = detector.stream(16000)
    quiet = (0.01 * np.random.default_rng(6).standard_normal(16000)).astype(np.float32)
    burst = 12 * quiet  # rms 0.12: "soft" and "loud", not "louder"
    largest: dict[str, list[int]] = {}
    n_events = 0
    for second in range(3600):
        n_events += len(stream.push(burst if second % 7 == 0 else quiet))
        for key, size in stream.buffer_sizes().items():
            part = largest.setdefault(key, [0, 0])
            part[second >= 600] = max(part[second >= 600], size)
    n_events += len(stream.close())
    assert n_events == 2 * (3600 // 7 + 1)  # two events per burst, none lost or doubled
    bounds = {"audio_samples": 160000 + 16000,  # one window and the chunk just pushed
              "filter_frames": 6,  # the median filter's 3 + 3 frames
              "pending_frames": 1024 + 2 * 157}  # averaged frames of windows not final yet
    for key, (first_10_min, last_50_min) in largest.items():
        assert 0 < first_10_min <= bounds[key] and 0 < last_50_min <= bounds[key], (key, first_10_min, last_50_min)


# ---------------------------------------------------------------------- every checkpoint kind
def test_onnx_runtime_streams_as_its_offline_path(tiny_checkpoint, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from desed_task.export.cli import main as export_main
    from desed_task.inference.onnx_runtime import OnnxPipeline

    export_main(["--checkpoint", str(tiny_checkpoint), "--onnx", str(tmp_path / "m.onnx")])
    capsys.readouterr()
    detector = SoundEventDetector.from_checkpoint(tiny_checkpoint, window=2, hop=1)
    detector.pipeline = OnnxPipeline(tmp_path / "m.onnx", detector.pipeline)
    rng = np.random.default_rng(7)
    audio = (0.1 * rng.standard_normal(16000 * 9 + 11)).astype(np.float32)
    assert_streams_as_offline(detector, audio, chunk_sizes(rng, len(audio), 50000))


def test_the_2023_crnn_streams_with_beats_and_refuses_longer_windows(tmp_path):
    from test_network_kinds import checkpoint_of, tiny

    from desed_task.config import load_config
    from desed_task.embeddings.standin import write_standin_beats

    config = tiny(load_config(REPO / "confs" / "demo_pretrained.yaml"))
    path, beats = checkpoint_of(config, tmp_path / "fused.ckpt"), write_standin_beats(tmp_path / "beats.pt", notice=False)
    detector = SoundEventDetector.from_checkpoint(path, beats=beats, window=10, hop=5)
    with pytest.raises(ValueError, match="windows of at most 10 s"):
        detector.stream(16000, window=12)
    rng = np.random.default_rng(8)
    audio = (0.1 * rng.standard_normal(16000 * 13)).astype(np.float32)
    assert_streams_as_offline(detector, audio, chunk_sizes(rng, len(audio), 60000, singles=2))


def test_ssep_sed_streams_each_window_separated_and_refuses_without_its_model(tmp_path):
    from test_network_kinds import checkpoint_of, tiny

    from desed_task.config import load_config
    from desed_task.separation.demo import write_standin_separator

    separator = write_standin_separator(tmp_path / "standin" / "separation.pt", num_sources=3)
    config = tiny(load_config(REPO / "confs" / "demo_sep+sed.yaml"))
    config["training"].update(sep_model=str(separator))
    path = checkpoint_of(config, tmp_path / "ssep.ckpt")
    with pytest.raises(SeparationModelMissing, match="separation_model=FILE"):
        SoundEventDetector.from_checkpoint(path, separate=False).stream(16000)
    detector = SoundEventDetector.from_checkpoint(path, window=4, hop=2)
    rng = np.random.default_rng(9)
    audio = (0.1 * rng.standard_normal(16000 * 9)).astype(np.float32)
    assert_streams_as_offline(detector, audio, chunk_sizes(rng, len(audio), 40000, singles=2))


def test_a_detector_scoring_in_one_pass_needs_a_window_to_stream(tiny_checkpoint):
    detector = SoundEventDetector.from_checkpoint(tiny_checkpoint, window=None)
    with pytest.raises(ValueError, match="give window="):
        detector.stream(16000)
    assert detector.stream(16000, window=2).scorer.hop == 16 * FRAME  # half the window, on the frame grid


# ---------------------------------------------------------------------- the command line
def _stream_cli(args: list[str], stdin: bytes) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "desed_task.inference", "--stream", *args], input=stdin,
                          capture_output=True, env=env, cwd=REPO, timeout=300)


@pytest.mark.parametrize("pcm_format, rate, channels, events_format", [
    ("s16le", 16000, 1, "tsv"), ("f32le", 44100, 2, "jsonl")])
def test_cli_prints_the_offline_events_from_raw_pcm_on_stdin(tiny_checkpoint, pcm_format, rate, channels, events_format):
    rng = np.random.default_rng(10)
    audio = 0.1 * rng.standard_normal((round(4.3 * rate), channels))
    audio[len(audio) // 3 : len(audio) // 2] *= 6
    samples = (audio * 32767).astype("<i2") if pcm_format == "s16le" else audio.astype("<f4")
    detector = SoundEventDetector.from_checkpoint(tiny_checkpoint, window=2, hop=1)
    _, expected = offline(detector, samples, rate, threshold=0.45)
    done = _stream_cli(["--checkpoint", str(tiny_checkpoint), "--gpus", "0", "--window", "2", "--hop", "1",
                        "--threshold", "0.45", "--rate", str(rate), "--channels", str(channels), "--format", pcm_format,
                        "--events_format", events_format], samples.tobytes())
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    if events_format == "tsv":
        assert lines[0] == "onset\toffset\tevent_label\ttime"
        rows = [dict(zip(("onset", "offset", "event_label", "time"), line.split("\t"))) for line in lines[1:]]
    else:
        rows = [json.loads(line) for line in lines]
    got = pd.DataFrame(rows).astype({"onset": float, "offset": float, "time": float})
    assert len(expected) > 3 and len(got) == len(expected)
    got = got.sort_values(["onset", "event_label"], kind="stable").reset_index(drop=True)
    np.testing.assert_allclose(got[["onset", "offset"]], expected[["onset", "offset"]].round(3), atol=1e-9)
    assert list(got.event_label) == list(expected.event_label)
    assert (got.time >= got.offset - 1e-3).all() and "latency" not in got  # printed once final, with the stream time
    assert b"at most 2.192 s of audio after its offset" in done.stderr


def test_cli_streams_a_file_at_real_time_and_refuses_what_it_cannot_do(tiny_checkpoint, tmp_path, capsys):
    path = tmp_path / "rec.wav"
    sf.write(str(path), (0.1 * np.random.default_rng(11).standard_normal(24000)).astype(np.float32), 16000)
    argv = ["--stream", "--checkpoint", str(tiny_checkpoint), "--gpus", "0", "--window", "1", "--hop", "0.5",
            "--threshold", "0.45", "--events_format", "jsonl"]
    import time

    started = time.perf_counter()
    with pytest.raises(SystemExit) as exit_info:
        inference_main([*argv, "--realtime", str(path)])
    assert exit_info.value.code == 0 and time.perf_counter() - started >= 1.5  # 1.5 s of audio, paced
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    detector = SoundEventDetector.from_checkpoint(tiny_checkpoint, window=1, hop=0.5)
    audio, _ = sf.read(str(path), dtype="float32")
    _, expected = offline(detector, audio, 16000, threshold=0.45)
    assert len(expected) > 3
    assert sorted((r["onset"], r["offset"], r["event_label"]) for r in rows) == sorted(
        (round(on, 3), round(off, 3), label) for on, off, label in zip(expected.onset, expected.offset, expected.event_label))

    def error_of(extra: list[str]) -> str:
        with pytest.raises(SystemExit) as exit_info:
            inference_main([*argv, *extra])
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert exit_info.value.code == 2 and len(errors) == 1 and "Traceback" not in err, err
        return errors[0]

    assert "give its --rate HZ" in error_of([])
    assert "--realtime paces a file" in error_of(["--realtime", "--rate", "16000"])
    (tmp_path / "broken.wav").write_bytes(b"RIFF nothing")
    assert "broken.wav: not readable audio" in error_of([str(tmp_path / "broken.wav")])
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError):
        assert "pip install sounddevice" in error_of(["--microphone"])
