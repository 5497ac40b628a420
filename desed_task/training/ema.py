"""Exponential moving average of the student's weights into the mean-teacher model."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def update_ema(student: nn.Module, teacher: nn.Module, alpha: float, step: int) -> float:
    """Move the teacher's parameters towards the student's, in place.

    ``alpha_eff = min(1 - 1 / (step + 1), alpha)``, then for every parameter
    ``teacher = alpha_eff * teacher + (1 - alpha_eff) * student``. The ramp on alpha makes
    the teacher a plain average of the student over the first steps (step 0 would copy it;
    2021 counted from 1).

    Only parameters are averaged; buffers (batch-norm running statistics) are not: as in
    2021 the teacher's come from its own forward passes in train mode. Parameters the student
    does not train (``requires_grad`` False: the frozen parts of the SSEP + SED ensemble) are
    left alone too: averaging equal values is not exact in floating point, the frozen teacher
    copy would drift by rounding (2021 averaged them all).

    Args:
        student: trained model.
        teacher: model of identical architecture (parameters in the same order).
        alpha: EMA factor, 0.999 in 2021.
        step: 2021's count: the optimizer steps taken before this update, plus one.

    Returns:
        alpha_eff, the factor used.
    """
    alpha_eff = min(1.0 - 1.0 / (step + 1), alpha)
    teacher_params = list(teacher.parameters())
    student_params = list(student.parameters())
    if len(teacher_params) != len(student_params):
        raise ValueError(
            f"update_ema: teacher has {len(teacher_params)} parameters, "
            f"student {len(student_params)}"
        )
    trained = [(t, s) for t, s in zip(teacher_params, student_params) if s.requires_grad]
    if not trained:
        return alpha_eff
    teacher_params, student_params = (list(group) for group in zip(*trained))
    # foreach: one kernel launch per dtype/device group instead of one per tensor;
    # mul then add gives the same rounding as 2021's per-tensor mul_().add_()
    torch._foreach_mul_(teacher_params, alpha_eff)
    torch._foreach_add_(teacher_params, student_params, alpha=1.0 - alpha_eff)
    return alpha_eff
