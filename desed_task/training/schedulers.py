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


FIRST_STEP_LR_2021 = 1e-3
"""The learning rate of 2021's first optimizer step: its recipes built Adam with ``1e-3``
whatever ``opt.lr``, and its step-wise scheduler set the warm-up rate only after that step."""


def first_step_lr(opt: dict) -> float | None:
    """The learning rate of the first optimizer step set by the config's ``opt`` section
    (``ExponentialWarmup``'s ``first_step_lr``; None: the warm-up's rate).

    2021 (the default): `FIRST_STEP_LR_2021`. ``warmup_first_step``: the warm-up's rate.
    ``first_step_at_lr`` (2023): ``opt.lr``, the rate its recipe built Adam with
    (``train_pretrained.py``), before its scheduler had stepped.
    """
    if opt.get("warmup_first_step"):
        return None
    if opt.get("first_step_at_lr"):
        return float(opt["lr"])
    return FIRST_STEP_LR_2021


class _WarmupFactor:
    """Picklable lr multiplier; LambdaLR saves a callable object's ``__dict__`` in its state."""

    def __init__(self, rampup_length: int, exponent: float, first_factor: float | None = None):
        self.rampup_length = rampup_length
        self.exponent = exponent
        self.first_factor = first_factor

    def __call__(self, step: int) -> float:
        if step == 0 and self.first_factor is not None:
            return self.first_factor
        # 2021 counted scheduler steps from 1
        return exponential_warmup_factor(step + 1, self.rampup_length, self.exponent)


class ExponentialWarmup(LambdaLR):
    """Per-step exponential warm-up of the learning rate to ``max_lr``.

    A ``LambdaLR``: call ``step()`` after every optimizer step (Lightning: ``"interval":
    "step"``); its state, ramp-up length included, is in ``state_dict()``. The learning
    rate used by optimizer step ``s`` (0-based) is
    ``max_lr * exponential_warmup_factor(s + 1, rampup_length, exponent)``, except the first
    (``s = 0``) when ``first_step_lr`` is given: 2021's first step ran at the optimizer's
    initial rate (`FIRST_STEP_LR_2021`), before its scheduler had stepped.

    Every param group's ``lr`` is set to ``max_lr`` at construction (it becomes the
    groups' ``initial_lr``).

    Args:
        optimizer: wrapped optimizer.
        max_lr: learning rate after the ramp-up.
        rampup_length: ramp-up length in optimizer steps (2021: 50 epochs of steps).
        exponent: steepness, -5 in 2021.
        first_step_lr: learning rate of the first optimizer step; None: the warm-up's.
        last_epoch: index of the last step when resuming (LambdaLR semantics).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float,
        rampup_length: int,
        exponent: float = -5.0,
        first_step_lr: float | None = None,
        last_epoch: int = -1,
    ):
        if rampup_length < 0:
            raise ValueError(f"ExponentialWarmup: rampup_length must be >= 0, got {rampup_length}")
        self.max_lr = max_lr
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group["lr"] = max_lr
        first_factor = None if first_step_lr is None else float(first_step_lr) / max_lr
        super().__init__(optimizer, _WarmupFactor(rampup_length, exponent, first_factor), last_epoch=last_epoch)

    @property
    def rampup_length(self) -> int:
        return self.lr_lambdas[0].rampup_length


def warmup_length(n_epochs_warmup: int, batches_per_epoch: int, accumulate_batches: int = 1) -> int:
    """Warm-up length in optimizer steps, as 2021 counted it.

    2021 (train_sed.py, finetune_on_separated.py): ``n_epochs_warmup * epoch_len`` with
    ``epoch_len = min_i(len(set_i) // (batch_size_i * accumulate_batches))``. The loader of
    mixed batches has ``min_i(len(set_i) // batch_size_i)`` batches, and floor(floor(n / b) / a)
    = floor(n / (a b)): so ``epoch_len = batches_per_epoch // accumulate_batches``, rounded
    down (an epoch's last, partial accumulation still steps the optimizer, but 2021 did not
    count it).

    Args:
        n_epochs_warmup: epochs of warm-up (50 for the SED baseline, 30 for SSEP + SED).
        batches_per_epoch: training batches of an epoch (the loader's length).
        accumulate_batches: batches per optimizer step.
    """
    if accumulate_batches < 1:
        raise ValueError(f"accumulate_batches must be >= 1, got {accumulate_batches}")
    return int(n_epochs_warmup) * (int(batches_per_epoch) // int(accumulate_batches))
