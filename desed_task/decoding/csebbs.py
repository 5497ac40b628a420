"""Method ``sebbs`` of the post-processing file: cSEBBs per class (``sebbs_boxes``), the boxes
above their class's threshold as events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from desed_task.decoding.boxes import boxes_above
from desed_task.decoding.errors import PostProcessingError
from desed_task.decoding.method import PerClassReader, PerClassWriter
from desed_task.decoding.sebbs_boxes import (
    SEBBS_KEYS,
    require_sebbs,
    sebbs_boxes,
    sebbs_score_tables,
)


class CSEBBs:
    """cSEBBs per class (``sebbs_boxes``), the boxes above their class's threshold as events.

    In the file::

        method: sebbs
        sebbs:
          step_filter_length: {Alarm_bell_ringing: 0.48, ...}   # seconds
          merge_threshold_abs: {Alarm_bell_ringing: 0.2, ...}
          merge_threshold_rel: {Alarm_bell_ringing: .inf, ...}
    """

    name = "sebbs"
    words = "cSEBBs"

    def require(self) -> None:
        require_sebbs()

    def read(
        self, data: Mapping, per_class: PerClassReader, class_names: Sequence[str], source: str
    ) -> dict[str, tuple]:
        """{key of SEBBS_KEYS: (n_classes,) values} of the file's ``sebbs`` mapping."""
        section = data.get("sebbs")
        if not isinstance(section, dict):
            raise PostProcessingError(f"{source}: method sebbs needs a 'sebbs' mapping with {', '.join(SEBBS_KEYS)}")
        return {key: tuple(per_class(section, key, float, "sebbs.")) for key in SEBBS_KEYS}

    def write(self, parameters: Mapping[str, Sequence], per_class: PerClassWriter) -> dict:
        return {"sebbs": {key: per_class([float(v) for v in parameters[key]]) for key in SEBBS_KEYS}}

    def frame_decoding(self, parameters: Mapping[str, Sequence], threshold: Sequence[float]) -> None:
        """None: cSEBBs segment whole recordings."""
        return None

    def events(
        self,
        scores: Mapping[str, np.ndarray],
        class_names: Sequence[str],
        parameters: Mapping[str, Sequence],
        threshold: Sequence[float],
        frame_step: float,
    ) -> pd.DataFrame:
        """The boxes whose confidence exceeds their class's threshold."""
        return boxes_above(self.boxes(scores, class_names, parameters, frame_step), threshold, class_names)

    def boxes(
        self,
        scores: Mapping[str, np.ndarray],
        class_names: Sequence[str],
        parameters: Mapping[str, Sequence],
        frame_step: float,
    ) -> pd.DataFrame:
        return sebbs_boxes(scores, class_names, parameters, frame_step)

    def score_tables(
        self, boxes: pd.DataFrame, class_names: Sequence[str], duration_of: Mapping[str, float]
    ) -> dict[str, pd.DataFrame]:
        return sebbs_score_tables(boxes, class_names, duration_of)
