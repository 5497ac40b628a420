"""Post-processing of frame scores into events beyond the 2021 default (one median window
and one threshold for all classes): per-class values read from files, and values tuned on
validation scores (``python -m desed_task.postprocessing tune``)."""

from desed_task.postprocessing.class_values import ClassValuesError, read_class_values

__all__ = ["ClassValuesError", "read_class_values"]
