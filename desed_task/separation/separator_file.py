"""The converted separation model's file (``separation.pt``): save and load a `TDCNpp`.

The file is a plain dict, loadable with ``torch.load(path, weights_only=True)``::

    {"format": "desed_task.tdcnpp/1",
     "hparams": {...TDCNpp keyword arguments...},
     "state_dict": {...},
     "source": {"checkpoint": "model.ckpt-3547330",
                "files": {"inference.meta": "<sha256>", "model.ckpt-3547330.index": ..., ...}}}

``source`` says where the weights came from (what `python -m desed_task.separation convert`
read); any dict of plain values is accepted.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from desed_task.errors import UserError
from desed_task.nnet.factory import build_separation_network
from desed_task.nnet.tdcnpp import TDCNpp
from desed_task.separation.errors import ModelNotFound

FORMAT_TAG = "desed_task.tdcnpp/1"
CONVERT_HINT = (
    "convert Google's checkpoint with: python -m desed_task.separation convert "
    "--tf_model yfcc100m_mixit_model_checkpoint --out separation.pt"
)


class SeparatorFileError(UserError):
    """The file is not a converted separation model; the message names it and the fix."""


def save_separator(model: TDCNpp, path: str | Path, source: dict) -> None:
    """Write `model` (hyper-parameters and weights) and where it came from to `path`,
    atomically (a temporary file renamed).

    Args:
        model: the separation network.
        path: the ``.pt`` file to write.
        source: plain values (str, int, float, lists and dicts of them) describing the origin,
            e.g. ``{"checkpoint": ..., "files": {name: sha256}}``.
    """
    path = Path(path)
    payload = {
        "format": FORMAT_TAG,
        "hparams": dict(model.hparams),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "source": source,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.writing")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_separator_file(path: str | Path) -> dict:
    """The checked dict of a separator file (format tag, hparams, state_dict, source).

    Raises:
        ModelNotFound: no such file.
        SeparatorFileError: unreadable, pickled code, or not a converted separation model.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFound(f"{path}: separation model not found; {CONVERT_HINT}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch fails on foreign bytes with any error
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise SeparatorFileError(
            f"{path}: not a converted separation model (torch.load: {first}); {CONVERT_HINT}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_TAG:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise SeparatorFileError(
            f"{path}: not a converted separation model (format {found!r}, expected "
            f"{FORMAT_TAG!r}; a TensorFlow graph or a SED checkpoint?); {CONVERT_HINT}"
        )
    if not isinstance(payload.get("hparams"), dict) or not isinstance(payload.get("state_dict"), dict):
        raise SeparatorFileError(f"{path}: separation model without hparams or state_dict; {CONVERT_HINT}")
    return payload


def load_separator(path: str | Path) -> TDCNpp:
    """The `TDCNpp` of a file written by `save_separator`, on the CPU, in eval mode.

    Raises:
        ModelNotFound: no such file.
        SeparatorFileError: not such a file, or weights that do not fit its hyper-parameters.
    """
    payload = read_separator_file(path)
    try:
        model = build_separation_network(payload["hparams"])
        model.load_state_dict(payload["state_dict"], strict=True)
    except (TypeError, ValueError, RuntimeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise SeparatorFileError(f"{path}: damaged separation model ({first}); {CONVERT_HINT}") from err
    model.source = payload.get("source", {})
    return model.eval()
