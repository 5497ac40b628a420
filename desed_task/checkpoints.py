"""Reading checkpoints safely: ours (Lightning 2) and the official 2021 ones (Lightning 1.x).

Checkpoints are loaded with `torch.load(weights_only=True)`: no code from the file runs. Lightning
1.x files may pickle its `AttributeDict` for the hyper-parameters; that one class is let through
as a plain dict.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch
from torch import nn

from desed_task.config import SCHEMA, ConfigError, validate_config

log = logging.getLogger(__name__)

NETWORK_PREFIXES = ("sed_student.", "sed_teacher.")
ENSEMBLE_PREFIX = "sed_student.multisrc_model."  # only SSEP + SED (fine-tuned) checkpoints


class CheckpointError(RuntimeError):
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


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint's dict, read without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    except (RuntimeError, EOFError, OSError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({reason}); the file is truncated (a run killed "
            f"while saving it) or not a checkpoint - use another one, e.g. the run's "
            f"checkpoints/best-*.ckpt"
        ) from err
    try:
        with torch.serialization.safe_globals(_lightning1_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(
            f"{path}: cannot be loaded safely (weights_only) - {err}. Only checkpoints holding "
            f"tensors and plain values are accepted."
        ) from err


def config_from_checkpoint(checkpoint: dict, path: str | Path) -> dict:
    """The training config stored in a checkpoint's hyper-parameters, checked."""
    hparams = checkpoint.get("hyper_parameters")
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
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: no state_dict in the checkpoint")
    own = module.state_dict()
    wanted = {k for k in own if k.startswith(NETWORK_PREFIXES) or k.startswith("scaler.")}
    selected = {k: v for k, v in state.items() if k in wanted}
    missing = sorted(k for k in wanted if k not in selected and not k.startswith("scaler."))
    if missing:
        _refuse_other_script(state, own, path)
        raise CheckpointError(
            f"{path}: the checkpoint's network does not match the config's `net:` section "
            f"(missing {len(missing)} weights, e.g. {missing[:3]}); use the config the "
            f"checkpoint was trained with"
        )
    # an unfitted dataset scaler has empty buffers: it takes the checkpoint's shapes
    shapes = [k for k in selected if selected[k].shape != own[k].shape and not k.startswith("scaler.")]
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
