"""The training losses under autocast (``training.precision`` 16-mixed / bf16-mixed)."""

import torch
from torch import nn

from desed_task.training.mean_teacher import Float32BCELoss


def test_the_bce_loss_is_nn_bceloss_in_float32_and_runs_in_float32_under_autocast():
    generator = torch.Generator().manual_seed(0)
    probs = torch.rand(4, 10, 156, generator=generator)
    targets = (torch.rand(4, 10, 156, generator=generator) > 0.7).float()
    assert torch.equal(Float32BCELoss()(probs, targets), nn.BCELoss()(probs, targets))
    half = probs.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = Float32BCELoss()(half, targets)
    assert loss.dtype == torch.float32
    assert torch.equal(loss, nn.BCELoss()(half.float(), targets))
