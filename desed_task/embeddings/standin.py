"""A STAND-IN for the released BEATs checkpoint, for the demo and the tests.

The real one (``BEATs_iter3_plus_AS2M.pt``, from the BEATs authors' release: microsoft/unilm,
``beats/``) cannot be downloaded by the demo or the tests. :func:`write_standin_beats` writes a
small BEATs with random weights in the official file format (``{"cfg": ..., "model": ...}``, the
positional convolution stored as weight norm ``weight_g`` / ``weight_v``), so that loading,
extraction, training, inference and export run for real on it. Its embeddings mean nothing:
scores obtained with it show the plumbing, not what BEATs gives. Its ``cfg`` holds a
``standin_notice`` key, which the loader names among the keys it ignores.

    python -m desed_task.embeddings.standin --out data/demo_beats/beats_standin.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from desed_task.command_line import run_command
from desed_task.nnet.beats import BEATs, BEATsConfig

# the iter3 structure (deep norm, gated relative position bias) at a small width
STANDIN_CFG = dict(
    input_patch_size=16, embed_dim=32, encoder_layers=2, encoder_embed_dim=48, encoder_ffn_embed_dim=96,
    encoder_attention_heads=4, conv_pos=16, conv_pos_groups=4, deep_norm=True,
    relative_position_embedding=True, gru_rel_pos=True, num_buckets=64, max_distance=200,
    dropout=0.0, attention_dropout=0.0,
)
STANDIN_NOTICE = "random weights written by desed_task.embeddings.standin: not the released BEATs"


def official_state_dict(model: BEATs) -> dict[str, torch.Tensor]:
    """Our state dict in the official names: the positional convolution as weight norm
    (``encoder.pos_conv.0.weight_g`` / ``weight_v``, norm over all axes but 2)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    weight = state.pop("encoder.pos_conv.weight")
    state["encoder.pos_conv.0.weight_g"] = weight.norm(dim=(0, 1), keepdim=True)
    state["encoder.pos_conv.0.weight_v"] = weight
    state["encoder.pos_conv.0.bias"] = state.pop("encoder.pos_conv.bias")
    return state


def write_standin_beats(path: str | Path, seed: int = 0, notice: bool = True, **overrides) -> Path:
    """A random BEATs of :data:`STANDIN_CFG` (with ``overrides``) saved as ``{"cfg", "model"}``.

    Seeds the global torch generator with ``seed`` (callers that must not move it wrap the call,
    see ``desed_task.training.trainer.preserved_random_states``). Written beside ``path`` and
    renamed, so a killed run leaves no half-written file.
    """
    path = Path(path)
    cfg = dict(STANDIN_CFG, **overrides)
    torch.manual_seed(seed)
    model = BEATs(BEATsConfig.from_dict(cfg))
    with torch.no_grad():  # default init leaves biases and norms trivial; make every weight count
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    if notice:
        cfg["standin_notice"] = STANDIN_NOTICE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save({"cfg": cfg, "model": official_state_dict(model)}, partial)
    partial.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line entry: write the stand-in BEATs and print its path; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m desed_task.embeddings.standin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the .pt file to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return run_command(lambda: print(write_standin_beats(args.out, args.seed)))


if __name__ == "__main__":
    sys.exit(main())
