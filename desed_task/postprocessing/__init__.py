"""Post-processing tuned on validation scores (``python -m desed_task.postprocessing tune``):
per-class median windows and thresholds (``median_tuning``) or cSEBBs parameters
(``sebbs_tuning``), maximising the exact PSDS or the intersection F1.

The tuned file's format and its application (decoding, evaluation, inference) are the
evaluation package's: ``desed_task.evaluation.postprocessing_file`` (``load_postprocessing``)
and ``desed_task.evaluation.postprocessed`` (``evaluate_postprocessed``, ``detect_events``).
"""
