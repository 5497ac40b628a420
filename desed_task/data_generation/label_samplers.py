"""How many foreground events a soundscape gets, and of which classes.

A label sampler is a callable ``sampler(rng) -> list[str]`` returning the classes of one
soundscape's foreground events (repetitions allowed, possibly empty), drawn from ``rng`` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


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
