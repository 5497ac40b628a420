"""The post-processing file: per-class settings tuned on validation scores.

Written by ``python -m desed_task.postprocessing tune``, read by ``--postprocessing FILE``
of the evaluation command line, by the test step (``training.postprocessing``) and by
``python -m desed_task.inference``; applied by its method (``methods.METHODS``: the section of
each method is its class's to read and write). YAML::

    method: median                  # median | sebbs
    objective: psds1                # psds1 | psds2 | f1: what the tuning maximised
    median_window:                  # method median: window of the median filter, in frames
      Alarm_bell_ringing: 9
      ...                           # one entry per class of the model, no other
    threshold:                      # optional: per-class decision threshold of the F1 output
      Alarm_bell_ringing: 0.45      # (default 0.5, the 2021 value); tuned for objective f1
      ...
    sebbs:                          # method sebbs: cSEBBs parameters, one mapping per key
      step_filter_length: {Alarm_bell_ringing: 0.48, ...}   # seconds
      merge_threshold_abs: {Alarm_bell_ringing: 0.2, ...}
      merge_threshold_rel: {Alarm_bell_ringing: .inf, ...}
    validation:                     # informative, not read back
      scores: exp/.../scores
      clips: 100
      before: 0.412                 # the objective with the 2021 post-processing
      after: 0.455                  # with the tuned one

The PSDS (exact and from operating points) is computed on the post-processed scores; the F1
metrics on the output decoded at ``threshold`` (median) or on the boxes whose confidence
exceeds it (sebbs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from desed_task.decoding.class_values import class_values_from_mapping
from desed_task.decoding.decode import FRAME_STEP
from desed_task.decoding.errors import ClassValuesError, PostProcessingError
from desed_task.decoding.method import PostProcessingMethod
from desed_task.decoding.methods import METHODS

OBJECTIVES = ("psds1", "psds2", "f1")
DEFAULT_THRESHOLD = 0.5  # the 2021 decision threshold of the F1 output


@dataclass(frozen=True)
class PostProcessing:
    """Per-class post-processing of frame scores, in the order of ``class_names``.

    Attributes:
        method: the file's ``method``, a key of ``methods.METHODS`` ("median", "sebbs").
        class_names: (n_classes,) the classes the values are given for.
        parameters: {key: (n_classes,) values} of the method, e.g. {"median_window": frames}
            (method median) or {key of ``sebbs_boxes.SEBBS_KEYS``: values} (method sebbs).
        threshold: (n_classes,) decision thresholds of the F1 output (0.5 when not tuned).
        objective: what the tuning maximised ("" when unknown).
        source: the file read ("" when built in memory).
        validation: the informative ``validation`` entry of the file.
    """

    method: str
    class_names: tuple[str, ...]
    parameters: dict[str, tuple] = field(default_factory=dict)
    threshold: tuple[float, ...] = ()
    objective: str = ""
    source: str = ""
    validation: dict = field(default_factory=dict)

    @property
    def kind(self) -> PostProcessingMethod:
        """The method object of ``method``."""
        return METHODS[self.method]

    @property
    def words(self) -> str:
        """How result tables name the method, e.g. "cSEBBs"."""
        return self.kind.words

    def thresholds(self) -> list[float]:
        """(n_classes,) decision thresholds: the file's, 0.5 (2021) when it gives none."""
        return list(self.threshold) if self.threshold else [DEFAULT_THRESHOLD] * len(self.class_names)

    def for_classes(self, class_names: Sequence[str]) -> PostProcessing:
        """The same settings restricted to (and reordered as) ``class_names``, a subset of ours."""
        index = [self.class_names.index(name) for name in class_names]
        pick = lambda values: tuple(values[i] for i in index) if values else ()  # noqa: E731
        return PostProcessing(
            self.method, tuple(class_names), {key: pick(values) for key, values in self.parameters.items()},
            pick(self.threshold), self.objective, self.source, self.validation,
        )

    def frame_decoding(self) -> tuple[list[float], list[int]] | None:
        """(n_classes,) thresholds and median windows when the method is the 2021 frame decoding
        per class (streams and the detector run it), else None (``PostProcessingMethod``)."""
        return self.kind.frame_decoding(self.parameters, self.thresholds())

    def events(self, scores: Mapping[str, np.ndarray], frame_step: float = FRAME_STEP) -> pd.DataFrame:
        """Events of {filename: (n_classes, n_frames) probabilities} whose rows are our classes:
        a table with columns filename, onset, offset (seconds), event_label."""
        return self.kind.events(scores, self.class_names, self.parameters, self.thresholds(), frame_step)

    def boxes(self, scores: Mapping[str, np.ndarray], frame_step: float = FRAME_STEP) -> pd.DataFrame:
        """Scored events of a method without frame decoding (``PostProcessingMethod.boxes``)."""
        return self.kind.boxes(scores, self.class_names, self.parameters, frame_step)

    def describe(self) -> str:
        """One line for result tables, e.g. "per-class median filter (tuned for psds1: pp.yaml)"."""
        what = self.words
        if self.threshold and any(t != DEFAULT_THRESHOLD for t in self.threshold):
            what += " and thresholds"
        tuned = f"tuned for {self.objective}" if self.objective else "from file"
        return f"{what} ({tuned}: {self.source})" if self.source else f"{what} ({tuned})"

    def to_yaml(self) -> dict:
        """The YAML mapping of the file (see the module docstring)."""
        per_class = lambda values: {n: v for n, v in zip(self.class_names, values)}  # noqa: E731
        data: dict = {"method": self.method, "objective": self.objective}
        data |= self.kind.write(self.parameters, per_class)
        if self.threshold:
            data["threshold"] = per_class([round(float(t), 6) for t in self.threshold])
        if self.validation:
            data["validation"] = dict(self.validation)
        return data


def default_description(median_window: int = 7, threshold: float = DEFAULT_THRESHOLD) -> str:
    """The 2021 post-processing in the words of ``PostProcessing.describe``."""
    return f"median filter of {median_window} frames, threshold {threshold} (2021)"


def write_postprocessing(postprocessing: PostProcessing, path: str | Path) -> Path:
    """Write ``postprocessing`` as YAML (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(postprocessing.to_yaml(), sort_keys=False))
    return path


def load_postprocessing(path: str | Path, class_names: Sequence[str]) -> PostProcessing:
    """Read a post-processing file for a model with ``class_names``.

    Args:
        path: the YAML file (module docstring).
        class_names: (n_classes,) the model's classes, in output order.

    Returns:
        The settings, values in the order of ``class_names``.

    Raises:
        PostProcessingError: unreadable file, unknown method, a class of another model or a
            missing class (named), a value that is not a number or out of range.
    """
    path = Path(path)
    if not path.is_file():
        raise PostProcessingError(f"{path}: no such post-processing file (write one with `python -m desed_task.postprocessing tune`)")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise PostProcessingError(f"{path}: not valid YAML ({error})") from None
    names = " or ".join(METHODS)
    if not isinstance(data, dict):
        raise PostProcessingError(f"{path}: expected a mapping with 'method' ({names}) and per-class values")
    method = data.get("method")
    if method not in METHODS:
        raise PostProcessingError(f"{path}: 'method' must be one of {', '.join(METHODS)}, got {method!r}")
    objective = str(data.get("objective") or "")
    class_names = [str(name) for name in class_names]

    def per_class(section: Mapping, key: str, kind: type, where: str = "") -> list:
        mapping = section.get(key)
        if not isinstance(mapping, dict):
            raise PostProcessingError(f"{path}: '{where}{key}' must be a mapping 'class: value'")
        try:
            return class_values_from_mapping(mapping, class_names, kind, key.replace("_", " "), f"{path}, '{where}{key}'")
        except ClassValuesError as error:
            raise PostProcessingError(str(error)) from None

    parameters = METHODS[method].read(data, per_class, class_names, str(path))
    threshold = per_class(data, "threshold", float) if "threshold" in data else [DEFAULT_THRESHOLD] * len(class_names)
    validation = data.get("validation") if isinstance(data.get("validation"), dict) else {}
    return PostProcessing(
        method, tuple(class_names), parameters, tuple(threshold), objective, str(path), validation
    )


def detect_events(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    postprocessing: PostProcessing,
    frame_step: float = FRAME_STEP,
) -> pd.DataFrame:
    """Events of frame scores under a post-processing file (for inference).

    Args:
        scores: {filename: (n_classes, n_frames) probabilities}.
        class_names: (n_classes,) labels of the score rows, a subset of the file's classes.
        postprocessing: ``load_postprocessing``'s result.
        frame_step: seconds per frame.

    Returns:
        Event table (filename, onset, offset, event_label): class c decoded at its
        threshold after its median window, or cSEBBs above their class's threshold.
    """
    return postprocessing.for_classes(class_names).events(scores, frame_step)
