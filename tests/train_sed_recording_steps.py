"""train_sed.py that records, in every process, what each step of training, validation and test
was given, for tests/test_training.py's DDP test.

A patch made in the test's process cannot reach DDP's processes, but this script can: Lightning
starts the other ranks by running the same command again (``python THIS_SCRIPT ARGS`` with
LOCAL_RANK set), so each process patches its own MeanTeacher and sampler before training. Each
step appends one JSON line to ``$DESED_RECORD_DIR/rank<R>.jsonl``: ``stage`` (train, val, test),
``epoch``, ``clips`` (``<label type>/<file name>`` in batch order) and, for training steps,
``weights`` (a digest of the student's weights before the step); each permutation the training
sampler draws, one line too: ``stage`` draw, ``perm`` (indices within its set, in draw order).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from desed_task.data import sampler
from desed_task.sets import LabelType
from desed_task.training.cli import main
from desed_task.training.mean_teacher import MeanTeacher


def _write(rank: int, entry: dict) -> None:
    with (Path(os.environ["DESED_RECORD_DIR"]) / f"rank{rank}.jsonl").open("a") as out:
        out.write(json.dumps(entry) + "\n")


def _record(module: MeanTeacher, stage: str, batch: dict) -> None:
    entry = {
        "stage": stage,
        "epoch": module.current_epoch,
        "clips": [f"{LabelType(int(kind)).name.lower()}/{name}"
                  for kind, name in zip(batch["label_type"].tolist(), batch["filename"])],
    }
    if stage == "train":
        digest = hashlib.sha1()
        for value in module.sed_student.state_dict().values():
            digest.update(value.detach().cpu().numpy().tobytes())
        entry["weights"] = digest.hexdigest()
    _write(module.global_rank, entry)


def _recording(step, stage: str):
    def recorded(self, batch, batch_idx, *args):
        _record(self, stage, batch)
        return step(self, batch, batch_idx, *args)

    return recorded


def _recorded_draw(draw):
    def recorded(size: int) -> torch.Tensor:
        perm = draw(size)
        _write(int(os.environ.get("LOCAL_RANK", "0")), {"stage": "draw", "perm": perm.tolist()})  # one node
        return perm

    return recorded


if __name__ == "__main__":
    sampler.draw_permutation = _recorded_draw(sampler.draw_permutation)
    for name, stage in (("training_step", "train"), ("validation_step", "val"), ("test_step", "test")):
        setattr(MeanTeacher, name, _recording(getattr(MeanTeacher, name), stage))
    main("train_sed.py, recording its steps", "confs/demo.yaml", "exp/recorded")
