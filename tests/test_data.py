import logging

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from conftest import write_wav

from desed_task.data.audio import AudioError, read_audio
from desed_task.data.classes import DESED_CLASSES
from desed_task.data.datasets import (
    EmptySetError,
    StronglyLabeledSet,
    UnlabeledSet,
    WeaklyLabeledSet,
)
from desed_task.data.label_encoder import ManyHotEncoder
from desed_task.data.resample import resample_folder, write_durations
from desed_task.data.sampler import MixedBatchSampler
from desed_task.data.tables import MetadataError, read_strong_table, read_weak_table
from desed_task.sets import LabelType


@pytest.fixture
def encoder():
    return ManyHotEncoder(list(DESED_CLASSES), audio_len=10, frame_len=2048, frame_hop=256, net_pooling=4, fs=16000)


def test_read_audio_pads_crops_and_mixes_down(tmp_path):
    short = write_wav(tmp_path / "short.wav", seconds=4.0)
    audio, valid = read_audio(short, sample_rate=16000, target_len=160000)
    assert audio.shape == (160000,) and valid == pytest.approx(0.4) and torch.all(audio[64000:] == 0)
    long = write_wav(tmp_path / "long.wav", seconds=12.0, channels=2)
    audio, valid = read_audio(long, sample_rate=16000, target_len=160000)
    assert audio.shape == (160000,) and valid == 1.0
    sources, _ = read_audio(long, sample_rate=16000, target_len=160000, multisrc=True)
    assert sources.shape == (2, 160000)
    torch.testing.assert_close(sources.mean(0), audio)


def test_read_audio_errors_name_the_file(tmp_path):
    wrong_rate = write_wav(tmp_path / "rate.wav", seconds=1.0, fs=44100)
    with pytest.raises(AudioError, match="rate.wav.*44100"):
        read_audio(wrong_rate, sample_rate=16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....not audio")
    with pytest.raises(AudioError, match="corrupt.wav"):
        read_audio(corrupt)


def test_strong_table_errors(tmp_path):
    good = tmp_path / "ok.tsv"
    good.write_text("filename\tonset\toffset\tevent_label\na.wav\t0.5\t1.0\tDog\nb.wav\t\t\t\n")
    df = read_strong_table(good, DESED_CLASSES)
    assert len(df) == 2 and df["event_label"].isna().sum() == 1
    for body, message in [
        ("a.wav\t1.0\t0.5\tDog\n", "line 2: offset before onset"),
        ("a.wav\tx\t0.5\tDog\n", "line 2: onset 'x' is not a number"),
        ("a.wav\t0.1\t0.5\tCow\n", "unknown event label 'Cow'"),
    ]:
        bad = tmp_path / "bad.tsv"
        bad.write_text("filename\tonset\toffset\tevent_label\n" + body)
        with pytest.raises(MetadataError, match=message):
            read_strong_table(bad, DESED_CLASSES)
    no_header = tmp_path / "nohead.tsv"
    no_header.write_text("a.wav\t0.1\t0.5\tDog\n")
    with pytest.raises(MetadataError, match="missing column"):
        read_strong_table(no_header, DESED_CLASSES)


def test_datasets_targets_and_missing_clips(tmp_path, encoder, caplog):
    for name in ("a.wav", "b.wav", "c.wav"):
        write_wav(tmp_path / "strong" / name)
    events = pd.DataFrame(
        {"filename": ["a.wav", "a.wav", "b.wav", "gone.wav"], "onset": [0.0, 2.0, np.nan, 1.0],
         "offset": [1.0, 10.0, np.nan, 2.0], "event_label": ["Dog", "Speech", np.nan, "Cat"]}
    )
    strong = StronglyLabeledSet("synth", tmp_path / "strong", events, encoder, check_audio=True)
    assert strong.missing == ["gone.wav"] and len(strong) == 2
    item = strong[0]
    assert item["audio"].shape == (160000,) and item["label_type"] == LabelType.STRONG
    dog, speech = DESED_CLASSES.index("Dog"), DESED_CLASSES.index("Speech")
    assert item["strong_targets"].shape == (10, 156)
    assert item["strong_targets"][dog, :16].all() and not item["strong_targets"][dog, 17:].any()
    assert item["strong_targets"][speech, 31:].all()
    assert item["weak_targets"][[dog, speech]].tolist() == [1.0, 1.0]
    assert not strong[1]["strong_targets"].any()

    weak = WeaklyLabeledSet(
        "weak", tmp_path / "strong", pd.DataFrame({"filename": ["c.wav"], "event_labels": [["Cat", "Dishes"]]}), encoder
    )
    assert weak[0]["weak_targets"].sum() == 2 and weak[0]["label_type"] == LabelType.WEAK
    unlabeled = UnlabeledSet("unlabeled", tmp_path / "strong", encoder)
    assert len(unlabeled) == 3 and unlabeled[0]["label_type"] == LabelType.UNLABELED

    with pytest.raises(EmptySetError, match="no usable clip"):
        StronglyLabeledSet("synth", tmp_path / "strong", events[events.filename == "gone.wav"], encoder)


def test_wrong_sample_rate_is_refused_up_front(tmp_path, encoder):
    write_wav(tmp_path / "x" / "a.wav", seconds=1.0, fs=44100)
    with pytest.raises(AudioError, match="a.wav.*44100"):
        UnlabeledSet("unlabeled", tmp_path / "x", encoder, check_audio=True)


def test_mixed_batch_sampler_proportions_and_shards():
    torch.manual_seed(1)
    sampler = MixedBatchSampler([30, 40, 100], [3, 3, 6])
    batches = list(sampler)
    assert len(batches) == len(sampler) == 10
    for batch in batches:
        assert all(i < 30 for i in batch[:3]) and all(30 <= i < 70 for i in batch[3:6])
        assert all(70 <= i for i in batch[6:])
    assert list(sampler) != batches  # every iteration is a new epoch
    shards = []
    for rank in (0, 1):  # every process seeds alike: the same permutation, disjoint shards
        torch.manual_seed(1)
        shards.append({i for b in MixedBatchSampler([30, 40, 100], [3, 3, 6], num_replicas=2, rank=rank) for i in b})
    assert not shards[0] & shards[1]


def test_mixed_batch_sampler_draws_as_2021s_random_samplers():
    """2021: ConcatDatasetBatchSampler over one RandomSampler per set, drawn from the global
    torch generator; the same seed gives the same batches, epoch after epoch."""
    sets = [torch.utils.data.TensorDataset(torch.zeros(n)) for n in (30, 40, 100)]
    sizes, offsets = [3, 3, 6], [0, 30, 70]
    torch.manual_seed(5)
    ours = [list(MixedBatchSampler([30, 40, 100], sizes)) for _ in range(3)]
    torch.manual_seed(5)
    samplers = [torch.utils.data.RandomSampler(s) for s in sets]
    for epoch in range(3):
        iterators = [iter(s) for s in samplers]
        for batch in ours[epoch]:
            expected = [offset + next(it) for it, size, offset in zip(iterators, sizes, offsets) for _ in range(size)]
            assert batch == expected


def test_resample_folder_is_resumable(tmp_path, caplog):
    for i in range(3):
        write_wav(tmp_path / "44k" / "sub" / f"{i}.wav", seconds=1.0, fs=44100, seed=i)
    (tmp_path / "44k" / "broken.wav").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        report = resample_folder(tmp_path / "44k", tmp_path / "16k", 16000, progress=False)
    assert report.resampled == 3 and len(report.failed) == 1 and "broken.wav" in caplog.text
    info = sf.info(str(tmp_path / "16k" / "sub" / "0.wav"))
    assert info.samplerate == 16000 and info.frames == 16000
    (tmp_path / "16k" / "sub" / "1.wav").write_bytes(b"half written")
    again = resample_folder(tmp_path / "44k", tmp_path / "16k", 16000, progress=False)
    assert again.resampled == 1 and again.already_done == 2
    assert not list((tmp_path / "16k").rglob(".*partial*"))
    durations = pd.read_csv(write_durations(tmp_path / "16k" / "sub", tmp_path / "d.tsv"), sep="\t")
    assert durations["duration"].tolist() == [1.0, 1.0, 1.0]


def test_weak_table(tmp_path):
    path = tmp_path / "weak.tsv"
    path.write_text("filename\tevent_labels\na.wav\tDog,Cat\nb.wav\tSpeech\n")
    df = read_weak_table(path, DESED_CLASSES)
    assert df["event_labels"].tolist() == [["Dog", "Cat"], ["Speech"]]


def test_separated_sources_read_the_mixture_only_when_asked(tmp_path, encoder):
    write_wav(tmp_path / "mix" / "a.wav", seed=1)
    sources = write_wav(tmp_path / "sep" / "a.wav", channels=3, seed=2)
    expected, _ = read_audio(sources, multisrc=True)
    with_mixture = UnlabeledSet("u", tmp_path / "mix", encoder, sources_folder=tmp_path / "sep")[0]["audio"]
    assert with_mixture.shape == (4, 160000)
    torch.testing.assert_close(with_mixture[0], read_audio(tmp_path / "mix" / "a.wav")[0])
    # the 2021 ensemble input (sum of the sources' mels) needs no mixture: it is not read
    (tmp_path / "mix" / "a.wav").write_bytes(b"not audio any more")
    without = UnlabeledSet("u", tmp_path / "mix", encoder, sources_folder=tmp_path / "sep", read_mixture=False)[0]["audio"]
    torch.testing.assert_close(without[1:], expected)
    assert not without[0].any()
