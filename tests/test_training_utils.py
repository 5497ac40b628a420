"""Mixup, exponential warm-up scheduler and mean-teacher EMA."""

import copy
import math

import numpy as np
import pytest
import torch

from desed_task.training.ema import update_ema
from desed_task.training.mixup import mixup
from desed_task.training.schedulers import ExponentialWarmup, exponential_warmup_factor


# ----------------------------------------------------------------------------------- mixup
def _seed(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


def test_mixup_soft_is_one_convex_combination_with_a_permutation():
    torch.manual_seed(0)
    features = torch.randn(6, 4, 5)
    targets = torch.eye(6)  # one class per item: the soft labels reveal c and perm
    _seed(3)
    mixed, mixed_targets = mixup(features, targets)
    coefficients = set()
    for i in range(6):
        row = mixed_targets[i]
        if row.count_nonzero() == 1:  # mixed with itself
            torch.testing.assert_close(mixed[i], features[i])
            continue
        c = float(row[i])
        coefficients.add(round(c, 6))
        j = int(torch.nonzero((row > 0) & (torch.arange(6) != i))[0])
        torch.testing.assert_close(row[j], torch.tensor(1 - c))
        torch.testing.assert_close(mixed[i], c * features[i] + (1 - c) * features[j])
    assert len(coefficients) <= 1  # one c for the whole batch


def test_mixup_draws_as_2021():
    """c from numpy's global generator, the permutation from torch's (2021's data_augm.mixup)."""
    features = torch.randn(5, 3)
    targets = (torch.rand(5, 2) > 0.5).float()
    _seed(7)
    mixed, soft = mixup(features, targets, label_type="soft")
    _seed(7)
    _, hard = mixup(features, targets, label_type="hard")
    _seed(7)
    only_features = mixup(features)
    torch.testing.assert_close(only_features, mixed)

    _seed(7)
    c = np.random.beta(0.2, 0.2)
    perm = torch.randperm(5)
    torch.testing.assert_close(mixed, c * features + (1 - c) * features[perm])
    torch.testing.assert_close(soft, (c * targets + (1 - c) * targets[perm]).clamp(0, 1))
    torch.testing.assert_close(hard, (targets + targets[perm]).clamp(0, 1))


def test_mixup_rejects_unknown_type():
    with pytest.raises(ValueError, match="label_type"):
        mixup(torch.randn(4, 3), torch.ones(4, 2), label_type="medium")


# ------------------------------------------------------------------------------ scheduler
def test_exponential_warmup_factor():
    assert exponential_warmup_factor(0, 100) == pytest.approx(math.exp(-5))
    assert exponential_warmup_factor(50, 100) == pytest.approx(math.exp(-5 * 0.25))
    assert exponential_warmup_factor(100, 100) == 1.0
    assert exponential_warmup_factor(1000, 100) == 1.0
    assert exponential_warmup_factor(-3, 100) == pytest.approx(math.exp(-5))
    assert exponential_warmup_factor(5, 0) == 1.0
    assert exponential_warmup_factor(50, 100, exponent=-2.0) == pytest.approx(math.exp(-0.5))


def _optimizer(lr=0.123):
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def test_exponential_warmup_lr_per_optimizer_step():
    optimizer = _optimizer()
    scheduler = ExponentialWarmup(optimizer, max_lr=1e-3, rampup_length=10)
    seen = []
    for _ in range(15):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [1e-3 * exponential_warmup_factor(s + 1, 10) for s in range(15)]
    assert seen == pytest.approx(expected, rel=1e-12)
    assert seen[-1] == pytest.approx(1e-3)


def test_exponential_warmup_checkpoint_restore():
    optimizer = _optimizer()
    scheduler = ExponentialWarmup(optimizer, max_lr=1e-3, rampup_length=20)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    lr_at_7 = optimizer.param_groups[0]["lr"]

    # Lightning's order: build both, then restore the optimizer, then the scheduler
    optimizer2 = _optimizer()
    scheduler2 = ExponentialWarmup(optimizer2, max_lr=1e-3, rampup_length=1)  # overwritten
    optimizer2.load_state_dict(optimizer.state_dict())
    scheduler2.load_state_dict(state)
    assert scheduler2.rampup_length == 20
    assert optimizer2.param_groups[0]["lr"] == pytest.approx(lr_at_7)
    optimizer2.step()
    scheduler2.step()
    assert optimizer2.param_groups[0]["lr"] == pytest.approx(
        1e-3 * exponential_warmup_factor(9, 20)
    )


def test_exponential_warmup_is_a_torch_lr_scheduler():
    scheduler = ExponentialWarmup(_optimizer(), max_lr=1e-3, rampup_length=5)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)


# ------------------------------------------------------------------------------------ ema
def _model():
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))


def test_update_ema_formula_and_alpha_ramp():
    torch.manual_seed(0)
    student, teacher = _model(), _model()
    teacher_before = [p.clone() for p in teacher.parameters()]
    alpha_eff = update_ema(student, teacher, alpha=0.999, step=3)
    assert alpha_eff == pytest.approx(0.75)
    for t, t0, s in zip(teacher.parameters(), teacher_before, student.parameters()):
        torch.testing.assert_close(t, 0.75 * t0 + 0.25 * s)
    assert update_ema(student, teacher, alpha=0.999, step=10**6) == 0.999
    # step 0 copies the student
    update_ema(student, teacher, alpha=0.999, step=0)
    for t, s in zip(teacher.parameters(), student.parameters()):
        torch.testing.assert_close(t, s)


def test_update_ema_leaves_buffers_and_gradients_alone():
    student = _model()
    student.train()
    student(torch.randn(8, 3))  # moves the student's running stats
    teacher = copy.deepcopy(_model())
    buffers_before = {k: v.clone() for k, v in teacher.named_buffers()}
    update_ema(student, teacher, alpha=0.99, step=100)
    for key, value in teacher.named_buffers():
        assert torch.equal(value, buffers_before[key]), key
    assert all(p.grad is None for p in teacher.parameters())


def test_update_ema_rejects_mismatched_models():
    with pytest.raises(ValueError, match="parameters"):
        update_ema(torch.nn.Linear(2, 2), torch.nn.Sequential(), alpha=0.9, step=1)


def _epoch_len_2021(set_sizes, batch_sizes, accumulate):
    """train_sed.py / finetune_on_separated.py of 2021, verbatim in meaning."""
    return min(n // (b * accumulate) for n, b in zip(set_sizes, batch_sizes))


@pytest.mark.parametrize(
    "batch_sizes, accumulate, n_epochs_warmup, expected",
    [([1, 2, 2], 64, 30, 330),  # SSEP + SED fine-tuning (Lightning's rounding up gave 360)
     ([12, 12, 24], 1, 50, 5900)],  # SED baseline
)
def test_warmup_length_is_the_2021_count(batch_sizes, accumulate, n_epochs_warmup, expected):
    from types import SimpleNamespace

    from desed_task.data.sampler import MixedBatchSampler
    from desed_task.training.mean_teacher import MeanTeacher
    from desed_task.training.schedulers import warmup_length

    sizes = [10000, 1420, 14412]  # DESED 2021: synthetic, 90 % of the weak set, unlabelled
    batches = len(MixedBatchSampler(sizes, batch_sizes))
    assert n_epochs_warmup * _epoch_len_2021(sizes, batch_sizes, accumulate) == expected
    assert warmup_length(n_epochs_warmup, batches, accumulate) == expected

    # the module counts it from the trainer as Lightning sets it up
    trainer = SimpleNamespace(estimated_stepping_batches=-1, num_training_batches=batches,
                              accumulate_grad_batches=accumulate)
    module = SimpleNamespace(trainer=trainer, config={"training": {"n_epochs_warmup": n_epochs_warmup}})
    assert MeanTeacher._count_warmup_steps(module) == expected
