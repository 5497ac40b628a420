"""Scored events ("boxes": filename, onset, offset, event_label, confidence), the output of a
post-processing method that is no frame decoding (``method.PostProcessingMethod.boxes``), and
the events they give at per-class thresholds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def boxes_above(
    boxes: pd.DataFrame, thresholds: Sequence[float] | float, class_names: Sequence[str]
) -> pd.DataFrame:
    """The boxes whose confidence exceeds their class's threshold, as events.

    Args:
        boxes: table with columns filename, onset, offset (seconds), event_label, confidence.
        thresholds: one, or (n_classes,) confidence thresholds.
        class_names: (n_classes,) the classes of ``thresholds``.

    Returns:
        Event table (filename, onset, offset, event_label), in the order of ``boxes``.
    """
    per_class = dict(zip(class_names, np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(class_names),))))
    kept = boxes["confidence"].to_numpy() > boxes["event_label"].map(per_class).to_numpy(dtype=np.float64)
    return boxes.loc[kept, ["filename", "onset", "offset", "event_label"]].reset_index(drop=True)
