"""Post-processing of frame scores into events beyond the 2021 default (one median window
and one threshold for all classes): per-class values read from files, and values tuned on
validation scores (``python -m desed_task.postprocessing tune``; file format in
``settings``).

Other code loads a tuned file with ``load_postprocessing(path, class_names)`` and evaluates
with ``evaluate_postprocessed`` (``apply``), which imports the evaluation stages on use.
"""

from desed_task.postprocessing.class_values import (
    ClassValuesError,
    class_values_from_mapping,
    read_class_values,
)
from desed_task.postprocessing.settings import (
    PostProcessing,
    PostProcessingError,
    default_description,
    load_postprocessing,
    write_postprocessing,
)

__all__ = [
    "ClassValuesError",
    "PostProcessing",
    "PostProcessingError",
    "class_values_from_mapping",
    "default_description",
    "load_postprocessing",
    "read_class_values",
    "write_postprocessing",
]
