"""The metrics of one validation epoch, as 2021 logged them, and its objective.

Per model: the weak (clip) macro F1 over the weakly labelled validation clips, and the
intersection-based and collar-based macro F1 of the decoded synthetic validation clips. The
objective (``val/obj_metric``, which picks the best checkpoint and stops early) is the
student's weak F1 plus its synthetic F1 (intersection-based in 2021).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from desed_task.decoding.decode import decode_scores
from desed_task.evaluation.clip_outputs import StrongScores, WeakScores
from desed_task.evaluation.collar_f1 import collar_f1
from desed_task.evaluation.intersection_f1 import intersection_f1_macro
from desed_task.evaluation.tables import restrict_to_scored_clips
from desed_task.evaluation.weak_f1 import weak_f1_macro

OBJECTIVE = "val/obj_metric"
SYNTH_METRIC_OF_TYPE = {"intersection": "intersection_f1_macro", "event": "event_f1_macro"}
"""``training.obj_metric_synth_type`` -> the synthetic metric of the objective."""


def validation_metrics(
    strong: StrongScores,
    weak: WeakScores,
    class_names: Sequence[str],
    events: pd.DataFrame,
    durations: pd.DataFrame,
    *,
    thresholds: Sequence[float],
    median_window: int | Sequence[int],
    frame_step: float,
    max_event_time: float | None,
    synth_type: str = "intersection",
) -> dict[str, float]:
    """{logged name: value} of one validation epoch, the objective (`OBJECTIVE`) last.

    Args:
        strong: {model: {clip: (classes, frames) scores}} of the synthetic validation clips.
        weak: {model: {clip: (probabilities, targets)}} of the weak validation clips, each (classes,).
        class_names: the classes, in the networks' order.
        events, durations: the synthetic validation set's event and durations tables.
        thresholds: decision thresholds; the intersection F1 is their mean, the collar F1 is
            taken at 0.5 (or the first threshold when 0.5 is not one).
        median_window: median filter length(s) in frames.
        frame_step: seconds between two output frames.
        max_event_time: seconds to which decoded times are clamped (None: not clamped).
        synth_type: "intersection" or "event": the synthetic F1 in the objective.
    """
    metrics: dict[str, float] = {}
    for model in strong:
        if weak[model]:
            probs, targets = (np.stack(x) for x in zip(*weak[model].values()))
            metrics[f"val/weak/{model}/macro_F1"] = weak_f1_macro(probs, targets)
        else:
            metrics[f"val/weak/{model}/macro_F1"] = 0.0
        if strong[model]:
            scores, gt, clip_durations = restrict_to_scored_clips(strong[model], events, durations)
            names = sorted(scores)
            decoded = decode_scores(
                np.stack([scores[n] for n in names]),
                names,
                class_names,
                thresholds,
                median_window=median_window,
                frame_step=frame_step,
                max_event_time=max_event_time,
            )
            metrics[f"val/synth/{model}/intersection_f1_macro"] = float(
                np.mean([intersection_f1_macro(decoded[t], gt, clip_durations) for t in thresholds])
            )
            at_half = decoded[thresholds[0]] if 0.5 not in decoded else decoded[0.5]
            metrics[f"val/synth/{model}/event_f1_macro"] = collar_f1(at_half, gt, durations=clip_durations)["macro"]
    metrics[OBJECTIVE] = metrics["val/weak/student/macro_F1"] + metrics.get(
        f"val/synth/student/{SYNTH_METRIC_OF_TYPE[synth_type]}", 0.0
    )
    return metrics
