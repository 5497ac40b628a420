"""Frame scores -> events, between the data and the evaluation floors.

The 2021 decoding (``decode``: a threshold, then a median filter, ``median_filter``), the
per-class values and post-processing files (``class_values``, ``postprocessing_file``), the
post-processing methods behind one interface (``method``) in one table (``methods``): a
median window per class (``median_per_class``) and cSEBBs (``csebbs`` on ``sebbs_boxes``,
whose scored events are ``boxes``); frame scores in sed_scores_eval's layout
(``score_files``) and the errors of bad input (``errors``).
The evaluation computes metrics on what is decoded here; inference detects events with it.
"""

from desed_task.decoding.decode import FRAME_STEP, decode_scores
from desed_task.decoding.errors import EvaluationInputError
from desed_task.decoding.median_filter import median_filter_binary, median_filter_scores
from desed_task.decoding.score_files import read_score_folder, score_dataframes, write_sed_scores

__all__ = [
    "FRAME_STEP",
    "EvaluationInputError",
    "decode_scores",
    "median_filter_binary",
    "median_filter_scores",
    "read_score_folder",
    "score_dataframes",
    "write_sed_scores",
]
