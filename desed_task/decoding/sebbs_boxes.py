"""Change-point based sound event bounding boxes (cSEBBs, Ebbers et al., Interspeech 2024)
through the optional ``sebbs`` package: the boxes of method ``sebbs`` of the post-processing
file (``csebbs``; tuned by ``desed_task.postprocessing.sebbs_tuning``; the metrics of the boxes:
``desed_task.evaluation.box_metrics``).

cSEBBs turn each class's frame scores into boxes (onset, offset, confidence): a step filter
finds candidate on- and offsets, neighbouring candidates are merged when the gap between
them is shallow (``merge_threshold_abs`` / ``merge_threshold_rel``), and a box's confidence
is its mean score. Detections are the boxes whose confidence exceeds a threshold.

Install with ``pip install --no-deps sebbs``: its declared requirement
``sed_scores_eval_np2`` is a fork that installs the same ``sed_scores_eval`` module over the
project's sed_scores_eval 0.0.4; sebbs runs on 0.0.4 (checked with numpy 2.4, pandas 3).
Only ``CSEBBsPredictor.predict`` and ``sebbs.utils.sed_scores_from_sebbs`` are used: the
package's own ``tune`` fails in its selection step (predictors without class names) and
its PSDS call hits pandas 3's read-only arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from desed_task.decoding.decode import FRAME_STEP
from desed_task.decoding.errors import PostProcessingError
from desed_task.decoding.score_files import audio_id, score_dataframes

SEBBS_KEYS = ("step_filter_length", "merge_threshold_abs", "merge_threshold_rel")


def require_sebbs():
    """The ``sebbs`` modules used, or a PostProcessingError that says how to install it."""
    try:
        from sebbs import csebbs, utils
    except ImportError as error:
        raise PostProcessingError(
            f"method sebbs needs the sebbs package ({error}): pip install --no-deps sebbs "
            "(--no-deps: its sed_scores_eval fork would replace the project's sed_scores_eval)"
        ) from None
    return csebbs.CSEBBsPredictor, utils.sed_scores_from_sebbs


def sebbs_boxes(
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    parameters: Mapping[str, Sequence[float]],
    frame_step: float = FRAME_STEP,
) -> pd.DataFrame:
    """cSEBBs of frame scores.

    Args:
        scores: {filename: (n_classes, n_frames) probabilities}.
        class_names: (n_classes,) labels of the score rows.
        parameters: {key of SEBBS_KEYS: (n_classes,) values}.
        frame_step: seconds per frame.

    Returns:
        Table with columns filename, onset, offset (seconds), event_label, confidence.
    """
    predictor_class, _ = require_sebbs()
    names = list(class_names)
    predictor = predictor_class(
        **{key: dict(zip(names, map(float, parameters[key]))) for key in SEBBS_KEYS}, sound_classes=names
    )
    filename_of = {audio_id(name): name for name in scores}
    boxes = predictor.predict(score_dataframes(scores, names, frame_step))
    rows = [(filename_of[clip], *box) for clip, clip_boxes in boxes.items() for box in clip_boxes]
    table = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label", "confidence"])
    return table.astype({"onset": np.float64, "offset": np.float64, "confidence": np.float64})


def sebbs_score_tables(
    boxes: pd.DataFrame, class_names: Sequence[str], duration_of: Mapping[str, float]
) -> dict[str, pd.DataFrame]:
    """sed_scores_eval score tables of boxes (a box's confidence over it, -inf elsewhere), by
    the sebbs package's ``sed_scores_from_sebbs``.

    Args:
        boxes: table with columns filename, onset, offset (seconds), event_label, confidence.
        class_names: (n_classes,) the tables' class columns.
        duration_of: {clip id (``audio_id``): seconds}: every clip gets a table.

    Returns:
        {clip id: table with columns onset, offset, one per class}.
    """
    _, sed_scores_from_sebbs = require_sebbs()
    per_clip: dict[str, list] = {clip: [] for clip in duration_of}
    for clip, group in boxes.groupby(boxes["filename"].map(audio_id), sort=False):
        per_clip[clip] = list(zip(group["onset"], group["offset"], group["event_label"], group["confidence"]))
    return sed_scores_from_sebbs(per_clip, list(class_names), audio_duration=duration_of)
