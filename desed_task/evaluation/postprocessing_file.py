"""The post-processing file: per-class settings tuned on validation scores.

Written by ``python -m desed_task.postprocessing tune``, read by ``--postprocessing FILE``
of the evaluation command line, by the test step (``training.postprocessing``) and by
``python -m desed_task.inference``; applied by ``postprocessed``. YAML::

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

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from desed_task.evaluation.class_values import ClassValuesError, class_values_from_mapping

METHODS = ("median", "sebbs")
OBJECTIVES = ("psds1", "psds2", "f1")
SEBBS_KEYS = ("step_filter_length", "merge_threshold_abs", "merge_threshold_rel")
DEFAULT_THRESHOLD = 0.5  # the 2021 decision threshold of the F1 output


class PostProcessingError(ClassValuesError):
    """A post-processing file that cannot be used (the message names the file, the key and the fix)."""


@dataclass(frozen=True)
class PostProcessing:
    """Per-class post-processing of frame scores, in the order of ``class_names``.

    Attributes:
        method: "median" (a median filter per class) or "sebbs" (cSEBBs).
        class_names: (n_classes,) the classes the values are given for.
        median_window: (n_classes,) frames (method median).
        threshold: (n_classes,) decision thresholds of the F1 output (0.5 when not tuned).
        sebbs: {key of SEBBS_KEYS: (n_classes,) values} (method sebbs).
        objective: what the tuning maximised ("" when unknown).
        source: the file read ("" when built in memory).
        validation: the informative ``validation`` entry of the file.
    """

    method: str
    class_names: tuple[str, ...]
    median_window: tuple[int, ...] = ()
    threshold: tuple[float, ...] = ()
    sebbs: dict[str, tuple[float, ...]] = field(default_factory=dict)
    objective: str = ""
    source: str = ""
    validation: dict = field(default_factory=dict)

    def for_classes(self, class_names: Sequence[str]) -> PostProcessing:
        """The same settings restricted to (and reordered as) ``class_names``, a subset of ours."""
        index = [self.class_names.index(name) for name in class_names]
        pick = lambda values: tuple(values[i] for i in index) if values else ()  # noqa: E731
        return PostProcessing(
            self.method, tuple(class_names), pick(self.median_window), pick(self.threshold),
            {key: pick(values) for key, values in self.sebbs.items()}, self.objective, self.source, self.validation,
        )

    def describe(self) -> str:
        """One line for result tables, e.g. "median per class (tuned for psds1: pp.yaml)"."""
        what = "per-class median filter" if self.method == "median" else "cSEBBs"
        if self.threshold and any(t != DEFAULT_THRESHOLD for t in self.threshold):
            what += " and thresholds"
        tuned = f"tuned for {self.objective}" if self.objective else "from file"
        return f"{what} ({tuned}: {self.source})" if self.source else f"{what} ({tuned})"

    def to_yaml(self) -> dict:
        """The YAML mapping of the file (see the module docstring)."""
        per_class = lambda values: {n: v for n, v in zip(self.class_names, values)}  # noqa: E731
        data: dict = {"method": self.method, "objective": self.objective}
        if self.method == "median":
            data["median_window"] = per_class([int(w) for w in self.median_window])
        else:
            data["sebbs"] = {key: per_class([float(v) for v in self.sebbs[key]]) for key in SEBBS_KEYS}
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
    if not isinstance(data, dict):
        raise PostProcessingError(f"{path}: expected a mapping with 'method' (median or sebbs) and per-class values")
    method = data.get("method")
    if method not in METHODS:
        raise PostProcessingError(f"{path}: 'method' must be one of {', '.join(METHODS)}, got {method!r}")
    objective = str(data.get("objective") or "")
    class_names = [str(name) for name in class_names]

    def per_class(key: str, kind: type, section: dict = data, where: str = "") -> list:
        mapping = section.get(key)
        if not isinstance(mapping, dict):
            raise PostProcessingError(f"{path}: '{where}{key}' must be a mapping 'class: value'")
        try:
            return class_values_from_mapping(mapping, class_names, kind, key.replace("_", " "), f"{path}, '{where}{key}'")
        except ClassValuesError as error:
            raise PostProcessingError(str(error)) from None

    median_window: list[int] = []
    sebbs: dict[str, tuple[float, ...]] = {}
    if method == "median":
        median_window = per_class("median_window", int)
        bad = [n for n, w in zip(class_names, median_window) if not 1 <= w <= 255]
        if bad:
            raise PostProcessingError(f"{path}: median window of {', '.join(bad)} must be in [1, 255] frames")
    else:
        section = data.get("sebbs")
        if not isinstance(section, dict):
            raise PostProcessingError(f"{path}: method sebbs needs a 'sebbs' mapping with {', '.join(SEBBS_KEYS)}")
        sebbs = {key: tuple(per_class(key, float, section, "sebbs.")) for key in SEBBS_KEYS}
    threshold = per_class("threshold", float) if "threshold" in data else [DEFAULT_THRESHOLD] * len(class_names)
    validation = data.get("validation") if isinstance(data.get("validation"), dict) else {}
    return PostProcessing(
        method, tuple(class_names), tuple(median_window), tuple(threshold), sebbs, objective, str(path), validation
    )
