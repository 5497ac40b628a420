"""The layout of a training checkpoint, defined once, and reading checkpoints safely: ours
(Lightning 2) and the official 2021 ones (Lightning 1.x).

A training checkpoint (what `desed_task.training.mean_teacher.MeanTeacher` saves, Lightning's
dict) holds:

* ``hyper_parameters`` (`HYPER_PARAMETERS`): the training config, from which the network is
  rebuilt (its ``net.type`` names it, `desed_task.nnet.registry`);
* ``state_dict`` (`STATE_DICT`): the modules of `lay_out_modules`: the two networks under
  ``sed_student.`` and ``sed_teacher.`` (`network_name`), the dataset scaler's statistics under
  ``scaler.``, the mel filters under ``mel.`` (2021 files; never read back);
* for a run that can be resumed, the optimizer's state (``optimizer_states``).

Checkpoints are loaded with `torch.load(weights_only=True)`: no code from the file runs. Lightning
1.x files may pickle its `AttributeDict` for the hyper-parameters; that one class is let through
as a plain dict.
"""

from __future__ import annotations

import copy
import logging
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from desed_task.config import SCHEMA, ConfigError, validate_config
from desed_task.errors import UserError
from desed_task.features.mel import MelSpectrogram
from desed_task.features.scaler import TorchScaler

log = logging.getLogger(__name__)

HYPER_PARAMETERS = "hyper_parameters"  # the training config (Lightning's save_hyperparameters)
STATE_DICT = "state_dict"
OPTIMIZER_STATES = "optimizer_states"  # only in checkpoints of a training run
# the two networks of a mean-teacher checkpoint, in the order results are reported
MODELS = ("student", "teacher")


def network_name(model: str) -> str:
    """The training module's attribute (and state-dict prefix, with a dot) of one of `MODELS`."""
    return f"sed_{model}"


NETWORK_PREFIXES = tuple(f"{network_name(model)}." for model in MODELS)
SCALER_PREFIX = "scaler."
ENSEMBLE_PREFIX = f"{network_name('student')}.multisrc_model."  # only SSEP + SED (fine-tuned) checkpoints


def lay_out_modules(module: nn.Module, config: dict, student: nn.Module) -> None:
    """Give `module` the modules of a training checkpoint, under their names: the student
    network, the teacher (a deep copy of it: same weights, no draw from any generator), then
    ``mel`` and ``scaler`` of the config's ``feats`` and ``scaler`` sections. The training
    module is laid out so, and so is what inference loads a checkpoint into."""
    setattr(module, network_name("student"), student)
    setattr(module, network_name("teacher"), copy.deepcopy(student))
    module.mel = MelSpectrogram.from_config(config["feats"])
    module.scaler = TorchScaler.from_config(config["scaler"])


class CheckpointError(UserError):
    """A checkpoint cannot be used with this config; the message names the file and the fix."""


class _AttributeDict(dict):
    """Stand-in for Lightning 1.x's pickled AttributeDict: unpickles as a plain dict (the
    weights-only unpickler fills only exact dicts)."""

    def __new__(cls, *args, **kwargs):
        return {}


def _lightning1_globals() -> list:
    safe = []
    for module in ("pytorch_lightning.utilities.parsing", "lightning.fabric.utilities.data"):
        stand_in = type("AttributeDict", (_AttributeDict,), {"__module__": module})
        safe.append(stand_in)
    return safe


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6 (the 2021 checkpoints too)
# the legacy torch.save format: a protocol-2 pickle stream opening with torch's magic number
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
NOT_USABLE = (
    "use a checkpoint written by train_sed.py (LOG_DIR/version_N/checkpoints/*.ckpt, or "
    "LOG_DIR/best.ckpt) or an official 2021 one"
)


def _file_problem(path: Path) -> str | None:
    """Why the file cannot be a torch checkpoint, judged from its bytes, or None."""
    with open(path, "rb") as file:
        head = file.read(len(LEGACY_MAGIC))
    if not head:
        return "an empty file"
    if head.startswith(ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            return "a truncated file: a run killed while saving it, or an incomplete copy"
        with zipfile.ZipFile(path) as archive:
            if not any(name.endswith("/data.pkl") for name in archive.namelist()):
                return "a zip archive, but not one written by torch.save"
        return None
    if head == LEGACY_MAGIC:
        return None
    if head.startswith(b"\x80"):
        return "a Python pickle, not a file written by torch.save"
    return "not a file written by torch.save"


def _reason(err: BaseException) -> str:
    """One line out of torch's (often multi-line) loading errors."""
    text = str(err)
    if "WeightsUnpickler error:" in text:  # torch's long weights_only advice: keep its cause
        text = text.split("WeightsUnpickler error:", 1)[1].split(". Please use", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint's dict, read without executing pickled code.

    Raises:
        CheckpointError: the file is missing, truncated, foreign (text, another zip, random
            bytes, a tensor), or holds pickled code; one line naming the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    problem = _file_problem(path)
    if problem:
        raise CheckpointError(f"{path}: not a readable checkpoint ({problem}); {NOT_USABLE}")
    try:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            with torch.serialization.safe_globals(_lightning1_globals()):
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: cannot be loaded safely (weights_only: {_reason(err)}); only checkpoints "
            f"holding tensors and plain values are accepted - {NOT_USABLE}"
        ) from err
    except Exception as err:  # noqa: BLE001 - torch's unpickler fails on foreign bytes with any error
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(err).__name__}: {_reason(err)}); the file "
            f"is truncated or not a checkpoint - {NOT_USABLE}"
        ) from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path}: holds a {type(checkpoint).__name__}, not a checkpoint (a dict with a "
            f"state_dict); {NOT_USABLE}"
        )
    return checkpoint


def config_from_checkpoint(checkpoint: dict, path: str | Path) -> dict:
    """The training config stored in a checkpoint's hyper-parameters, checked."""
    hparams = checkpoint.get(HYPER_PARAMETERS)
    if not isinstance(hparams, dict):
        raise CheckpointError(f"{path}: no hyper_parameters (the training config) in the checkpoint")
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in hparams.items() if k in SCHEMA}
    dropped = sorted(set(hparams) - set(config))
    if dropped:
        log.info("%s: ignoring hyper-parameters outside the config schema: %s", path, dropped)
    try:
        return validate_config(config, f"{path} (hyper_parameters)")
    except ConfigError as err:
        raise CheckpointError(str(err)) from err


def load_network_weights(module: nn.Module, checkpoint: dict, path: str | Path) -> None:
    """Load the student and teacher networks (and dataset scaler statistics, when present)
    into `module`; other entries (feature buffers of 2021 files, optimizer) are ignored."""
    state = checkpoint.get(STATE_DICT)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: no state_dict in the checkpoint")
    own = module.state_dict()
    wanted = {k for k in own if k.startswith(NETWORK_PREFIXES) or k.startswith(SCALER_PREFIX)}
    selected = {k: v for k, v in state.items() if k in wanted}
    missing = sorted(k for k in wanted if k not in selected and not k.startswith(SCALER_PREFIX))
    if missing:
        _refuse_other_script(state, own, path)
        raise CheckpointError(
            f"{path}: the checkpoint's network does not match the config's `net:` section "
            f"(missing {len(missing)} weights, e.g. {missing[:3]}); use the config the "
            f"checkpoint was trained with"
        )
    # an unfitted dataset scaler has empty buffers: it takes the checkpoint's shapes
    shapes = [k for k in selected if selected[k].shape != own[k].shape and not k.startswith(SCALER_PREFIX)]
    if shapes:
        k = shapes[0]
        raise CheckpointError(
            f"{path}: weight {k} has shape {tuple(selected[k].shape)}, the config's network "
            f"expects {tuple(own[k].shape)}; use the config the checkpoint was trained with"
        )
    module.load_state_dict(selected, strict=False)


def _refuse_other_script(state: dict, own: dict, path: str | Path) -> None:
    """Name the script a checkpoint belongs to when it is given to the other one."""
    theirs, ours = (any(k.startswith(ENSEMBLE_PREFIX) for k in d) for d in (state, own))
    if theirs and not ours:
        raise CheckpointError(
            f"{path}: a finetune_on_separated.py (SSEP + SED) checkpoint, not a train_sed.py one: "
            f"use it with finetune_on_separated.py (e.g. python finetune_on_separated.py "
            f"--test_from_checkpoint {path})"
        )
    if ours and not theirs:
        raise CheckpointError(
            f"{path}: a train_sed.py checkpoint, not a fine-tuned SSEP + SED one: test it with "
            f"python train_sed.py --test_from_checkpoint {path}, or fine-tune it by giving it as "
            f"training.sed_checkpoint"
        )
