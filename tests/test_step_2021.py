"""Our network and training step against the 2021 recipe's own code, bit for bit.

The recipe's files (DCASE-REPO/DESED_task 367e88c, ``../shared/oracle2021/ref``) are imported by
path (``benchmarks/step2021.py``, the step that ``benchmarks/bench_train_step.py`` times beside
ours), so a change made for speed that moves a single bit of the network's outputs or gradients,
of the features, mixup or losses fails here. Skipped when the recipe's files are absent.
"""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest
import torch
from conftest import REPO

from desed_task.config import load_config
from desed_task.data.classes import DESED_CLASSES
from desed_task.nnet import build_network
from desed_task.sets import LabelType
from desed_task.training.mean_teacher import MeanTeacher

sys.path.insert(0, str(REPO / "benchmarks"))
from step2021 import DEFAULT_REFERENCE, Step2021, reference_crnn  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (DEFAULT_REFERENCE / "desed_task" / "nnet" / "CRNN.py").is_file(),
    reason=f"the 2021 recipe's files are not at {DEFAULT_REFERENCE} (../shared/oracle2021/ref)",
)]


def _config() -> dict:
    config = load_config(REPO / "confs" / "sed.yaml")
    config["training"]["batch_size"] = [1, 1, 2]
    return config


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _mel_layout_features(n_clips: int) -> torch.Tensor:
    """(n_clips, 128, 626) scaled log-mels laid out as the features are: frames outermost."""
    return torch.rand(n_clips, 626, 128).transpose(1, 2)


def test_the_2021_crnn_outputs_and_gradients_are_the_recipes_bit_for_bit():
    config = _config()
    torch.manual_seed(0)
    ours = build_network(config["net"])
    theirs = reference_crnn(DEFAULT_REFERENCE, config["net"])
    theirs.load_state_dict(ours.state_dict())
    features = _mel_layout_features(3)
    for mode in ("train", "eval"):
        outputs = {}
        for name, net in (("ours", ours), ("2021", theirs)):
            net.train(mode == "train")
            net.zero_grad(set_to_none=True)
            torch.manual_seed(1)  # the same dropout masks
            strong, weak = net(features)
            (strong.square().sum() + weak.sum()).backward()
            outputs[name] = (strong, weak, {k: p.grad for k, p in net.named_parameters()})
        (s1, w1, g1), (s2, w2, g2) = outputs["ours"], outputs["2021"]
        assert torch.equal(s1, s2) and torch.equal(w1, w2), f"{mode}: outputs differ by {(s1 - s2).abs().max()}"
        assert g1.keys() == g2.keys()
        differing = [k for k in g1 if not torch.equal(g1[k], g2[k])]
        assert not differing, f"{mode}: gradients of {differing} differ"


def test_a_mean_teacher_step_is_the_recipes_bit_for_bit():
    """Features, mixup (forced), student and teacher forwards, losses and gradients."""
    config = _config()
    config["training"]["mixup"] = "soft"
    torch.manual_seed(0)
    module = MeanTeacher(config, build_network(config["net"]), list(DESED_CLASSES), 0.064).train()
    optimizer = torch.optim.Adam(module.sed_student.parameters(), lr=1e-3)
    module.log = module.log_dict = lambda *a, **k: None
    module.warmup_factor = lambda: 0.5  # the recipe's step is given the same factor
    module.optimizers = lambda: optimizer
    theirs = Step2021(DEFAULT_REFERENCE, config, "cpu", module.sed_student.state_dict())

    generator = torch.Generator().manual_seed(3)
    audio = 0.1 * torch.randn(4, 160000, generator=generator)
    strong = (torch.rand(4, len(DESED_CLASSES), 156, generator=generator) > 0.8).float()
    batch = {
        "audio": audio,
        "strong_targets": strong,
        "weak_targets": (strong.sum(-1) > 0).float(),  # the recipe derives them so
        "label_type": torch.tensor([int(LabelType.STRONG), int(LabelType.WEAK), int(LabelType.UNLABELED)] + [2]),
    }
    seed = next(s for s in range(100) if random.Random(s).random() < 0.5)  # a step that mixes
    _seed(seed)
    loss = module.training_step({k: v.clone() for k, v in batch.items()}, 0)
    _seed(seed)
    loss_2021 = theirs.training_step(audio.clone(), strong.clone())
    assert torch.equal(loss, loss_2021), f"losses {loss.item()!r} and {loss_2021.item()!r}"
    loss.backward()
    loss_2021.backward()
    ours = dict(module.sed_student.named_parameters())
    differing = [k for k, p in theirs.student.named_parameters() if not torch.equal(p.grad, ours[k].grad)]
    assert not differing, f"gradients of {differing} differ"
