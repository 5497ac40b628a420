"""The one interface of a post-processing method (scores -> events), as the post-processing
file names it (``method: median`` / ``method: sebbs``).

A method object is stateless: its per-class values (``parameters``, each (n_classes,) in the
order of the file's classes) and the per-class decision thresholds travel in a
``postprocessing_file.PostProcessing``. The table of methods is ``methods.METHODS``; the
evaluation, inference and the file reader reach a method only through it (the tuning too,
and its own table of tuners, ``desed_task.postprocessing.cli.TUNERS``, one floor up).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

# reads one 'class: value' mapping of the file: (section, key, kind, where) -> (n_classes,)
# values of ``kind`` in class order, raising PostProcessingError that names the file and key
PerClassReader = Callable[[Mapping, str, type, str], list]
# writes (n_classes,) values as the file's 'class: value' mapping
PerClassWriter = Callable[[Sequence], dict]


class PostProcessingMethod(Protocol):
    """A post-processing method: how the file holds its values, and scores -> events.

    Attributes:
        name: its ``method`` value in the post-processing file.
        words: how result tables name it ("per-class median filter", "cSEBBs").
    """

    name: str
    words: str

    def require(self) -> None:
        """Raise PostProcessingError (saying what to install) when the method cannot run here."""

    def read(
        self, data: Mapping, per_class: PerClassReader, class_names: Sequence[str], source: str
    ) -> dict[str, tuple]:
        """Its parameters from the file's mapping ``data``: {key: (n_classes,) values in the
        order of ``class_names``}; errors name ``source`` (the file)."""

    def write(self, parameters: Mapping[str, Sequence], per_class: PerClassWriter) -> dict:
        """Its entries of the file's mapping (``read``'s inverse)."""

    def frame_decoding(
        self, parameters: Mapping[str, Sequence], threshold: Sequence[float]
    ) -> tuple[list[float], list[int]] | None:
        """The method as the 2021 frame decoding, (n_classes,) thresholds and median windows
        (frames), which streams, the detector and the fast evaluation run; None when it is not
        one (it then runs on whole recordings: ``events``, and is evaluated on its ``boxes``)."""

    def events(
        self,
        scores: Mapping[str, np.ndarray],
        class_names: Sequence[str],
        parameters: Mapping[str, Sequence],
        threshold: Sequence[float],
        frame_step: float,
    ) -> pd.DataFrame:
        """Events of frame scores ({filename: (n_classes, n_frames) probabilities}, frames of
        ``frame_step`` seconds) at the (n_classes,) thresholds: a table with columns filename,
        onset, offset (seconds), event_label."""

    def boxes(
        self,
        scores: Mapping[str, np.ndarray],
        class_names: Sequence[str],
        parameters: Mapping[str, Sequence],
        frame_step: float,
    ) -> pd.DataFrame:
        """Scored events before any threshold: filename, onset, offset (seconds), event_label,
        confidence; the events above a class's threshold are ``events``. Needed only of a
        method without ``frame_decoding``."""

    def score_tables(
        self, boxes: pd.DataFrame, class_names: Sequence[str], duration_of: Mapping[str, float]
    ) -> dict[str, pd.DataFrame]:
        """sed_scores_eval score tables of ``boxes`` ({clip id: onset, offset, one column per
        class}, every clip of ``duration_of``, {clip id: seconds}), on which the exact PSDS of
        the boxes is computed. Needed only of a method without ``frame_decoding``."""
