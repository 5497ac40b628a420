"""What the SSEP demo (confs/demo_sep+sed.yaml: a `demo:` section with ``separation_standin:
true``) prepares besides the demo dataset: a STAND-IN separation model at
``training.sep_model`` when that file is absent.

The stand-in is the PyTorch TDCN++ of `desed_task.nnet.tdcnpp` (the real model's architecture:
learned basis, improved TDCN, masks, mixture consistency), made small and given seeded random
weights, saved as a converted file is (`save_separator`). It runs without TensorFlow. It does
NOT separate sounds: its sources add up to the mixture (mixture consistency), each is some
random filtering of it. The demo shows the plumbing of SSEP + SED (separate, fine-tune, test,
infer, export), not what separation brings.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from desed_task.config import ConfigError

log = logging.getLogger(__name__)

STANDIN_BANNER = "=" * 78
STANDIN_HPARAMS = {
    "num_sources": 4, "window": 40, "hop": 20, "num_coeffs": 32, "bottleneck": 32, "conv_channels": 64,
    "kernel_size": 3, "num_dilations": 4, "num_repeats": 1, "scale_base": 0.9, "prelu_init": 0.1,
}
"""The stand-in's size: the real model's framing (40-sample windows, hop 20), 4 sources instead
of 8 and a network ~80x narrower and shallower, so that the demo separates in seconds on a CPU."""


def write_standin_separator(path: str | Path, seed: int = 0, num_sources: int | None = None) -> Path:
    """Write the STAND-IN separation model (small TDCN++, seeded random weights) at `path`.

    Same seed, same weights: the file's tensors are identical from run to run. `num_sources`
    overrides the 4 sources of `STANDIN_HPARAMS` (tests).
    """
    from desed_task.nnet.tdcnpp import TDCNpp
    from desed_task.separation import save_separator

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = TDCNpp(**{**STANDIN_HPARAMS, **({"num_sources": num_sources} if num_sources else {})})
    finally:
        torch.random.set_rng_state(state)  # the caller's random draws are not moved
    save_separator(model, path, {"standin": True, "seed": int(seed),
                                 "note": "STAND-IN: random weights, not a separation model"})
    return path


def ensure_standin_separator(config: dict, source: str = "config") -> bool:
    """Write the stand-in at ``training.sep_model`` when ``demo.separation_standin`` asks for it
    and the file is absent. Returns True when it was written.

    Raises:
        ConfigError: ``demo.separation_standin`` without ``training.sep_model``.
    """
    demo = config.get("demo") or {}
    if not demo.get("separation_standin"):
        return False
    path = (config.get("training") or {}).get("sep_model")
    if not path:
        raise ConfigError(f"{source}: demo.separation_standin needs training.sep_model (where to write it)")
    if Path(path).is_file():
        return False
    log.warning(
        "\n%s\nSTAND-IN separation model: writing it to %s because the demo config asks for it "
        "(demo.separation_standin) and it is absent.\nIt does NOT separate sounds (a small TDCN++ "
        "with random weights whose sources add up to the mixture): the demo exercises the SSEP + SED "
        "pipeline, not its results.\n%s",
        STANDIN_BANNER, path, STANDIN_BANNER,
    )
    write_standin_separator(path, seed=int(demo.get("seed", 0)))
    return True
