"""ManyHotEncoder: 2021 frame grid, weak/strong encoding and decoding."""

import numpy as np
import pandas as pd
import pytest

from desed_task.data.classes import DESED_CLASSES
from desed_task.data.label_encoder import ManyHotEncoder


@pytest.fixture
def encoder() -> ManyHotEncoder:
    return ManyHotEncoder(
        list(DESED_CLASSES), audio_len=10, frame_len=2048, frame_hop=256, net_pooling=4, fs=16000
    )


def test_2021_frame_grid(encoder):
    assert encoder.n_frames == 156
    assert encoder.frame_step == pytest.approx(0.064)
    assert encoder.labels == list(DESED_CLASSES)
    assert ManyHotEncoder().state_dict() == encoder.state_dict()


def test_encode_weak(encoder):
    expected = np.zeros(10, dtype=np.float32)
    expected[[4, 8]] = 1
    np.testing.assert_array_equal(encoder.encode_weak(["Dog", "Speech", "Dog"]), expected)
    np.testing.assert_array_equal(encoder.encode_weak("Dog,Speech"), expected)
    frame = pd.DataFrame({"event_label": ["Speech", "Dog", np.nan]})
    np.testing.assert_array_equal(encoder.encode_weak(frame), expected)
    np.testing.assert_array_equal(encoder.encode_weak([]), np.zeros(10))
    assert encoder.decode_weak(expected) == ["Dog", "Speech"]


def _loop_encode_2021(encoder, df):
    """The 2021 per-row algorithm, as the reference for the vectorised one."""
    y = np.zeros((encoder.n_frames, len(encoder.labels)))
    for _, row in df.iterrows():
        if pd.isna(row["event_label"]):
            continue
        i = encoder.labels.index(row["event_label"])
        on = int(
            np.clip(row["onset"] * encoder.fs / encoder.frame_hop / encoder.net_pooling, 0, 156)
        )
        off = int(
            np.ceil(
                np.clip(
                    row["offset"] * encoder.fs / encoder.frame_hop / encoder.net_pooling, 0, 156
                )
            )
        )
        y[on:off, i] = 1
    return y


def test_encode_strong_frame_rounding(encoder):
    df = pd.DataFrame(
        {
            "onset": [0.0, 0.1, 9.5, 3.0],
            "offset": [0.064, 0.13, 12.0, 3.001],
            "event_label": ["Cat", "Cat", "Blender", "Dishes"],
        }
    )
    y = encoder.encode_strong_df(df)
    assert y.shape == (156, 10) and y.dtype == np.float32
    cat = np.flatnonzero(y[:, DESED_CLASSES.index("Cat")])
    # [0, 1) and int(1.5625)=1 .. ceil(2.03)=3 -> frames 0, 1, 2
    np.testing.assert_array_equal(cat, [0, 1, 2])
    blender = np.flatnonzero(y[:, DESED_CLASSES.index("Blender")])
    np.testing.assert_array_equal(blender, np.arange(148, 156))  # offset clipped to n_frames
    dishes = np.flatnonzero(y[:, DESED_CLASSES.index("Dishes")])
    np.testing.assert_array_equal(dishes, [46])  # 46.875 -> 46, ceil(46.89) = 47 excluded


def test_encode_strong_matches_2021_loop_on_random_events(encoder):
    rng = np.random.default_rng(0)
    onsets = rng.uniform(-0.5, 10, 200).round(3)
    df = pd.DataFrame(
        {
            "onset": onsets,
            "offset": onsets + rng.uniform(0, 3, 200).round(3),
            "event_label": rng.choice(list(DESED_CLASSES), 200),
        }
    )
    np.testing.assert_array_equal(encoder.encode_strong_df(df), _loop_encode_2021(encoder, df))


def test_encode_strong_empty_and_missing_labels(encoder):
    empty = pd.DataFrame({"onset": [np.nan], "offset": [np.nan], "event_label": [np.nan]})
    assert not encoder.encode_strong_df(empty).any()
    no_rows = pd.DataFrame(columns=["onset", "offset", "event_label"])
    assert not encoder.encode_strong_df(no_rows).any()


def test_unknown_labels_are_named(encoder):
    with pytest.raises(ValueError, match="Doorbell"):
        encoder.encode_weak(["Dog", "Doorbell"])
    df = pd.DataFrame({"onset": [0.0], "offset": [1.0], "event_label": ["Doorbell"]})
    with pytest.raises(ValueError, match="Doorbell"):
        encoder.encode_strong_df(df)


def test_decode_strong_round_trip(encoder):
    y = np.zeros((156, 10))
    y[0:3, 2] = 1
    y[10:20, 2] = 1
    y[150:156, 9] = 1
    y[5:6, 0] = 1
    events = encoder.decode_strong(y)
    assert events == [
        ("Alarm_bell_ringing", pytest.approx(0.32), pytest.approx(0.384)),
        ("Cat", 0.0, pytest.approx(0.192)),
        ("Cat", pytest.approx(0.64), pytest.approx(1.28)),
        ("Vacuum_cleaner", pytest.approx(9.6), pytest.approx(9.984)),
    ]
    df = pd.DataFrame(events, columns=["event_label", "onset", "offset"])
    np.testing.assert_array_equal(encoder.encode_strong_df(df), y)
    assert encoder.decode_strong(np.zeros((156, 10))) == []


def test_state_dict_round_trip(encoder):
    restored = ManyHotEncoder.from_state_dict(encoder.state_dict())
    assert restored.state_dict() == encoder.state_dict()
    assert restored.n_frames == encoder.n_frames
