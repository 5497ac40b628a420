"""Exponential learning-rate / consistency-weight warm-up of the 2021 baseline."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def exponential_warmup_factor(
    step_num: float, rampup_length: float, exponent: float = -5.0
) -> float:
    """Warm-up factor in (0, 1]: ``exp(exponent * (1 - min(max(step, 0), L) / L) ** 2)``.

    Rises from exp(exponent) (about 0.0067 for -5) at step 0 to 1 at ``rampup_length``
    and stays at 1 after. 1.0 throughout if ``rampup_length`` is 0.
    """
    if rampup_length == 0:
        return 1.0
    current = min(max(float(step_num), 0.0), float(rampup_length))
    phase = 1.0 - current / rampup_length
    return math.exp(exponent * phase * phase)


class _WarmupFactor:
    """Picklable lr multiplier; LambdaLR saves a callable object's ``__dict__`` in its state."""

    def __init__(self, rampup_length: int, exponent: float):
        self.rampup_length = rampup_length
        self.exponent = exponent

    def __call__(self, step: int) -> float:
        # 2021 counted scheduler steps from 1
        return exponential_warmup_factor(step + 1, self.rampup_length, self.exponent)


class ExponentialWarmup(LambdaLR):
    """Per-step exponential warm-up of the learning rate to ``max_lr``.

    A ``LambdaLR``: call ``step()`` after every optimizer step (Lightning: ``"interval":
    "step"``); its state, ramp-up length included, is in ``state_dict()``. The learning
    rate used by optimizer step ``s`` (0-based) is
    ``max_lr * exponential_warmup_factor(s + 1, rampup_length, exponent)``.

    Every param group's ``lr`` is set to ``max_lr`` at construction (it becomes the
    groups' ``initial_lr``).

    Args:
        optimizer: wrapped optimizer.
        max_lr: learning rate after the ramp-up.
        rampup_length: ramp-up length in optimizer steps (2021: 50 epochs of steps).
        exponent: steepness, -5 in 2021.
        last_epoch: index of the last step when resuming (LambdaLR semantics).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float,
        rampup_length: int,
        exponent: float = -5.0,
        last_epoch: int = -1,
    ):
        if rampup_length < 0:
            raise ValueError(f"ExponentialWarmup: rampup_length must be >= 0, got {rampup_length}")
        self.max_lr = max_lr
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group["lr"] = max_lr
        super().__init__(optimizer, _WarmupFactor(rampup_length, exponent), last_epoch=last_epoch)

    @property
    def rampup_length(self) -> int:
        return self.lr_lambdas[0].rampup_length
