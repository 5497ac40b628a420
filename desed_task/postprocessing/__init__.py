"""Post-processing tuned on validation scores (``python -m desed_task.postprocessing tune``):
per-class median windows and thresholds (``median_tuning``) or cSEBBs parameters
(``sebbs_tuning``), maximising the exact PSDS or the intersection F1.

The tuned file's format and its methods (scores -> events) are the decoding package's:
``desed_task.decoding.postprocessing_file`` (``load_postprocessing``, ``detect_events``) and
``desed_task.decoding.methods`` (the table of methods); its evaluation is
``desed_task.evaluation.postprocessed`` (``evaluate_postprocessed``).
"""
