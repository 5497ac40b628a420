"""Convert Google's TensorFlow TDCN++ checkpoint into the PyTorch `TDCNpp` (no TensorFlow needed).

    python -m desed_task.separation convert --tf_model DIR --out separation.pt [--tf_checkpoint PREFIX]

Every variable of the official graph (``models/neurips2020_mixit/model.py``, 391 variables,
9,067,009 parameters with the published hyper-parameters) maps to one parameter of `TDCNpp`
(`tf_to_torch_names`). The real checkpoint comes from training, so the global step and the
optimizer's variables (Adam slots ``.../Adam``, ``.../Adam_1``, ``beta1_power``, ``beta2_power``)
are ignored; any other unknown, a missing or a mis-shaped variable refuses the checkpoint.

Keras names its auto-named layers ``dense``, ``dense_1``, ... in creation order, so the encoder's
and decoder's dense layers are accepted under any such name (the golden graph has
``conv_encoder/dense`` and ``conv_decoder/dense_1``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from desed_task.errors import UserError
from desed_task.nnet.tdcnpp import TDCNpp
from desed_task.separation.errors import ModelNotFound
from desed_task.separation.tf_checkpoint import (
    checkpoint_prefix_in,
    data_files,
    read_index,
    read_tensor,
)

GRAPH_NAME = "inference.meta"
IGNORED = re.compile(
    r"^(global_step|beta[12]_power(_\d+)?|.*/(Adam|Adam_1|Momentum|RMSProp|RMSProp_1|"
    r"ExponentialMovingAverage))$"
)
"""Training bookkeeping in a checkpoint: the step and the optimizer's slots."""
KERAS_AUTO_DENSE = re.compile(r"^(conv_encoder|conv_decoder)/dense(_\d+)?/kernel$")


class ConversionError(UserError):
    """The checkpoint does not fit the model; the message names the variables."""


Transform = Callable[[np.ndarray], np.ndarray]


def _same(value: np.ndarray) -> np.ndarray:
    return value


def _depthwise(value: np.ndarray) -> np.ndarray:
    """Keras DepthwiseConv2D kernel (taps, 1, channels, 1) -> (taps, channels)."""
    return value[:, 0, :, 0]


def _block_names(block: int) -> dict[str, tuple[str, Transform]]:
    tf = f"improved_tdcn/conv_block_{block}/tdcn_block"
    pt = f"blocks.{block}"
    names = {
        f"{tf}/dense1/dense/kernel": (f"{pt}.dense1", _same),
        f"{tf}/dense1/dense_scale/scale_layer": (f"{pt}.dense1_scale", _same),
        f"{tf}/timeconv/separable_conv/depthwise_kernel": (f"{pt}.conv_weight", _depthwise),
        f"{tf}/timeconv/separable_conv/bias": (f"{pt}.conv_bias", _same),
        f"{tf}/dense2/dense/kernel": (f"{pt}.dense2", _same),
        f"{tf}/dense2/dense_scale/scale_layer": (f"{pt}.dense2_scale", _same),
    }
    for i in (1, 2):
        names[f"{tf}/normact{i}/prelu/prelu"] = (f"{pt}.prelu{i}", _same)
        names[f"{tf}/normact{i}/instance_norm/gamma"] = (f"{pt}.norm{i}_gamma", _same)
        names[f"{tf}/normact{i}/instance_norm/beta"] = (f"{pt}.norm{i}_beta", _same)
    return names


def tf_to_torch_names(model: TDCNpp) -> dict[str, tuple[str, Transform]]:
    """TensorFlow variable name -> (`model`'s parameter name, TF value -> torch value).

    The encoder and decoder kernels are listed as ``conv_encoder/dense/kernel`` and
    ``conv_decoder/dense_1/kernel`` (the golden's names; see `canonical_name`).
    """
    names = {
        "conv_encoder/dense/kernel": ("encoder", _same),
        "initial_dense/dense/kernel": ("initial_dense", _same),
        "initial_dense/dense/bias": ("initial_bias", _same),
        "initial_dense/dense_scale/scale_layer": ("initial_scale", _same),
        "dense/kernel": ("mask_dense", _same),
        "conv_decoder/dense_1/kernel": ("decoder", _same),
        "mix_weights/dense/kernel": ("mix_weights_dense", _same),
    }
    for block in range(len(model.blocks)):
        names.update(_block_names(block))
    return names


def canonical_name(name: str) -> str:
    """The `tf_to_torch_names` key of a checkpoint variable (Keras's auto-numbered encoder and
    decoder layers renamed as in the golden)."""
    match = KERAS_AUTO_DENSE.match(name)
    if match:
        return f"{match.group(1)}/{'dense' if match.group(1) == 'conv_encoder' else 'dense_1'}/kernel"
    return name


def _listed(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def convert_checkpoint(prefix: str | Path, model: TDCNpp | None = None) -> TDCNpp:
    """A `TDCNpp` with the weights of a TensorFlow checkpoint.

    Args:
        prefix: the checkpoint prefix (``.../model.ckpt-3547330``).
        model: the module to fill (default: the published hyper-parameters).

    Returns:
        `model`, filled, in eval mode.

    Raises:
        ConversionError: unknown, missing or mis-shaped variables (all named), or a dtype
            other than float32.
        CheckpointFormatError, ModelNotFound: unreadable or absent files.
    """
    model = TDCNpp() if model is None else model
    expected = tf_to_torch_names(model)
    entries, num_shards = read_index(prefix)
    found: dict[str, str] = {}
    duplicates = []  # e.g. both conv_decoder/dense and conv_decoder/dense_1
    for name in sorted(entries):
        if not IGNORED.match(name):
            if canonical_name(name) in found:
                duplicates.append(name)
            found.setdefault(canonical_name(name), name)
    unknown = sorted(duplicates + [found[name] for name in set(found) - set(expected)])
    missing = sorted(set(expected) - set(found))
    params = dict(model.named_parameters())
    wrong = []
    for name in sorted(set(expected) & set(found)):
        entry = entries[found[name]]
        torch_name, transform = expected[name]
        shape = transform(np.zeros(entry.shape, dtype=np.float32)).shape
        if entry.dtype != 1 or shape != tuple(params[torch_name].shape):
            wrong.append(f"{found[name]} {entry.dtype_name} {list(entry.shape)}")
    problems = []
    if unknown:
        problems.append(f"unknown variable(s) {_listed(unknown)}")
    if missing:
        problems.append(f"missing variable(s) {_listed(missing)}")
    if wrong:
        problems.append(f"mis-shaped variable(s) {_listed(wrong)} (the model expects "
                        f"float32 with the published hyper-parameters)")
    if problems:
        raise ConversionError(
            f"{prefix}: not the TDCN++ separation checkpoint: {'; '.join(problems)}"
        )
    with torch.no_grad():
        for name, tf_name in found.items():
            torch_name, transform = expected[name]
            value = transform(read_tensor(prefix, entries[tf_name], num_shards))
            params[torch_name].copy_(torch.from_numpy(np.array(value, dtype=np.float32)))
    return model.eval()


def source_files(tf_model: Path | None, prefix: Path) -> list[Path]:
    """The files a conversion reads: the graph (when there) and the checkpoint's index and data."""
    _, num_shards = read_index(prefix)
    graph = [tf_model / GRAPH_NAME] if tf_model is not None and (tf_model / GRAPH_NAME).is_file() else []
    return graph + [Path(f"{prefix}.index")] + data_files(prefix, num_shards)


def resolve_prefix(tf_model: Path | None, tf_checkpoint: Path | None) -> Path:
    """The checkpoint prefix: `tf_checkpoint`, else the one named by ``tf_model/checkpoint``,
    else the folder's only ``*.index``.

    Raises:
        ModelNotFound: no checkpoint found (the message says what to give).
    """
    if tf_checkpoint is not None:
        prefix = tf_checkpoint
    else:
        if tf_model is None or not tf_model.is_dir():
            raise ModelNotFound(f"{tf_model}: not a folder; give the model's folder "
                                    "(inference.meta, checkpoint, model.ckpt-*)")
        indexes = sorted(tf_model.glob("*.index"))
        if (tf_model / "checkpoint").is_file() or len(indexes) != 1:
            prefix = checkpoint_prefix_in(tf_model)
        else:
            prefix = indexes[0].with_suffix("")
    if not Path(f"{prefix}.index").is_file():
        raise ModelNotFound(f"{prefix}.index: checkpoint not found; give its prefix with "
                                "--tf_checkpoint (e.g. DIR/model.ckpt-3547330)")
    return prefix
