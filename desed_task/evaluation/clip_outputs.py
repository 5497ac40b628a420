"""The networks' outputs on a validation or test set, clip by clip, kept until the set ends.

A pure buffer (numpy in, numpy out): the training's scoring callbacks fill it batch by batch
and read it back once per epoch; gathering it over DDP processes is theirs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

StrongScores = dict[str, dict[str, np.ndarray]]
"""{model: {clip name: (classes, frames) scores}}."""
WeakScores = dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
"""{model: {clip name: ((classes,) probabilities, (classes,) targets)}}."""


class ClipOutputs:
    """Per model, the strong scores of the strongly labelled and unlabelled clips and the weak
    probabilities (with their targets) of the weakly labelled ones, by clip name (a name seen
    again replaces the first).

    Args:
        models: the models whose outputs are kept, e.g. ("student", "teacher").
    """

    def __init__(self, models: Sequence[str]) -> None:
        self.models = tuple(models)
        self.reset()

    def reset(self) -> None:
        self.strong: StrongScores = {model: {} for model in self.models}
        self.weak: WeakScores = {model: {} for model in self.models}

    def add_batch(
        self,
        names: Sequence[str],
        weakly_labelled: np.ndarray,
        weak_targets: np.ndarray | None,
        outputs: Mapping[str, tuple[Sequence[np.ndarray], np.ndarray | None]],
    ) -> None:
        """Keep one batch.

        Args:
            names: the B clips' file names.
            weakly_labelled: (B,) bool, the clips whose weak output is kept instead.
            weak_targets: (B, classes) clip targets (None when no weak output is given).
            outputs: {model: (strong, weak)}: strong (B, classes, frames) scores, or B arrays
                (classes, frames_i) for clips of their own lengths; weak (B, classes)
                probabilities, or None: then every clip's strong scores are kept.
        """
        for model, (strong, weak) in outputs.items():
            for i, name in enumerate(names):
                if weak is not None and weakly_labelled[i]:
                    self.weak[model][name] = (weak[i], weak_targets[i])
                else:
                    self.strong[model][name] = strong[i]

    def take(self) -> tuple[StrongScores, WeakScores]:
        """What was kept (strong, weak); the buffer starts again empty."""
        strong, weak = self.strong, self.weak
        self.reset()
        return strong, weak
