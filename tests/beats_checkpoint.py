"""Small random BEATs checkpoints in the official file format, written at test time."""

from __future__ import annotations

from pathlib import Path

import torch

from desed_task.nnet.beats import BEATs, BEATsConfig

SMALL_CFG = dict(
    input_patch_size=16, embed_dim=32, encoder_layers=2, encoder_embed_dim=48, encoder_ffn_embed_dim=96,
    encoder_attention_heads=4, conv_pos=16, conv_pos_groups=4, deep_norm=True,
    relative_position_embedding=True, gru_rel_pos=True, num_buckets=64, max_distance=200,
    dropout=0.0, attention_dropout=0.0,
)


def official_state_dict(model: BEATs) -> dict[str, torch.Tensor]:
    """Our state dict in the official names: the positional convolution as weight norm
    (``encoder.pos_conv.0.weight_g`` / ``weight_v``, norm over all axes but 2)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    weight = state.pop("encoder.pos_conv.weight")
    state["encoder.pos_conv.0.weight_g"] = weight.norm(dim=(0, 1), keepdim=True)
    state["encoder.pos_conv.0.weight_v"] = weight
    state["encoder.pos_conv.0.bias"] = state.pop("encoder.pos_conv.bias")
    return state


def write_small_beats(path: Path, seed: int = 0, **overrides) -> Path:
    """A random BEATs of ``SMALL_CFG`` (with ``overrides``) saved as ``{"cfg", "model"}``."""
    cfg = dict(SMALL_CFG, **overrides)
    torch.manual_seed(seed)
    model = BEATs(BEATsConfig.from_dict(cfg))
    with torch.no_grad():  # default init leaves biases and norms trivial; make every weight count
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    torch.save({"cfg": cfg, "model": official_state_dict(model)}, path)
    return path
