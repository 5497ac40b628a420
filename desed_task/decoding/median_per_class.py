"""Method ``median`` of the post-processing file: the 2021 decoding with a median window and a
decision threshold per class (``decode.decode_at_class_thresholds``).

In the file::

    method: median
    median_window: {Alarm_bell_ringing: 9, ...}   # frames, in [1, 255]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from desed_task.decoding.decode import decode_at_class_thresholds
from desed_task.decoding.errors import PostProcessingError
from desed_task.decoding.method import PerClassReader, PerClassWriter

MEDIAN_WINDOW = "median_window"


class MedianPerClass:
    """A median filter per class, then a threshold per class (the 2021 decoding per class)."""

    name = "median"
    words = "per-class median filter"

    def require(self) -> None:
        """Nothing to install."""

    def read(
        self, data: Mapping, per_class: PerClassReader, class_names: Sequence[str], source: str
    ) -> dict[str, tuple]:
        """{"median_window": (n_classes,) frames}, each in [1, 255]."""
        windows = per_class(data, MEDIAN_WINDOW, int, "")
        bad = [name for name, window in zip(class_names, windows) if not 1 <= window <= 255]
        if bad:
            raise PostProcessingError(f"{source}: median window of {', '.join(bad)} must be in [1, 255] frames")
        return {MEDIAN_WINDOW: tuple(windows)}

    def write(self, parameters: Mapping[str, Sequence], per_class: PerClassWriter) -> dict:
        return {MEDIAN_WINDOW: per_class([int(w) for w in parameters[MEDIAN_WINDOW]])}

    def frame_decoding(
        self, parameters: Mapping[str, Sequence], threshold: Sequence[float]
    ) -> tuple[list[float], list[int]]:
        return list(threshold), list(parameters[MEDIAN_WINDOW])

    def events(
        self,
        scores: Mapping[str, np.ndarray],
        class_names: Sequence[str],
        parameters: Mapping[str, Sequence],
        threshold: Sequence[float],
        frame_step: float,
    ) -> pd.DataFrame:
        """Class c decoded at its threshold after its median window."""
        return decode_at_class_thresholds(scores, class_names, threshold, list(parameters[MEDIAN_WINDOW]), frame_step)

    def boxes(self, scores, class_names, parameters, frame_step) -> pd.DataFrame:
        raise NotImplementedError("method median is a frame decoding (frame_decoding): it has no boxes")

    def score_tables(self, boxes, class_names, duration_of) -> dict[str, pd.DataFrame]:
        raise NotImplementedError("method median is a frame decoding (frame_decoding): it has no boxes")
