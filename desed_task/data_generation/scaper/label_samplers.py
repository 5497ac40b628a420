"""How many foreground events a soundscape gets, and of which classes.

A label sampler is a callable ``sampler(rng) -> list[str]`` returning the classes of one
soundscape's foreground events (repetitions allowed, possibly empty), drawn from ``rng`` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd


class LabelSampler(Protocol):
    """Draws the foreground classes of one soundscape."""

    def __call__(self, rng: np.random.Generator) -> list[str]: ...


@dataclass(frozen=True)
class UniformLabelSampler:
    """``n ~ U{min_events..max_events}`` events, each class drawn uniformly from ``classes``."""

    classes: Sequence[str]
    min_events: int = 1
    max_events: int = 3

    def __call__(self, rng: np.random.Generator) -> list[str]:
        n_events = int(rng.integers(self.min_events, self.max_events + 1))
        return [str(c) for c in rng.choice(list(self.classes), size=n_events)]


def _truncnorm_int(
    rng: np.random.Generator, mean: float, std: float, low: float, high: float
) -> int:
    import scipy.stats

    if std <= 0:
        return int(round(mean))
    a, b = (low - mean) / std, (high - mean) / std
    return int(np.around(scipy.stats.truncnorm.rvs(a, b, loc=mean, scale=std, random_state=rng)))


class CooccurrenceLabelSampler:
    """The DCASE 2021 event model, from the meta infos statistics of the real annotations.

    The first event's class is drawn uniformly among the target classes present in the soundbank
    (``target_nb.tsv`` column ``event_class``); the number of events of the clip from a truncated
    normal with that class's ``mean``, ``std``, ``min``, ``max`` (rounded to an integer); every
    other event's class (targets and non-targets) with the probabilities of the first class's row
    of ``event_cooc.tsv`` (column ``label`` plus one column per class), renormalised over the
    classes present. Both tables are rounded to 6 decimals, as in the 2021 recipe.
    """

    def __init__(self, target_nb: pd.DataFrame, event_cooc: pd.DataFrame, available: Sequence[str]):
        target_nb, event_cooc = target_nb.round(6), event_cooc.round(6)
        classes = [c for c in event_cooc.columns if c != "label" and c in set(available)]
        cooc = event_cooc[event_cooc["label"].isin(classes)].set_index("label")[classes]
        self.first_classes = target_nb[target_nb["event_class"].isin(classes)].reset_index(
            drop=True
        )
        if self.first_classes.empty:
            raise ValueError("no target class of target_nb.tsv has foreground files")
        self.classes = classes
        self.cooc = cooc

    def __call__(self, rng: np.random.Generator) -> list[str]:
        first = self.first_classes.iloc[int(rng.integers(len(self.first_classes)))]
        n_events = _truncnorm_int(rng, first["mean"], first["std"], first["min"], first["max"])
        weights = self.cooc.loc[first["event_class"]].to_numpy(dtype=float)
        probabilities = weights / weights.sum()
        others = rng.choice(self.classes, size=max(n_events - 1, 0), p=probabilities)
        return [str(first["event_class"]), *(str(c) for c in others)]
