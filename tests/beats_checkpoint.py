"""Small random BEATs checkpoints in the official file format, written at test time (the
package's stand-in writer, `desed_task.embeddings.standin`)."""

from __future__ import annotations

from pathlib import Path

from desed_task.embeddings.standin import STANDIN_CFG as SMALL_CFG
from desed_task.embeddings.standin import official_state_dict, write_standin_beats

__all__ = ["SMALL_CFG", "official_state_dict", "write_small_beats"]


def write_small_beats(path: Path, seed: int = 0, **overrides) -> Path:
    """A random BEATs of ``SMALL_CFG`` (with ``overrides``) saved as ``{"cfg", "model"}``."""
    return write_standin_beats(path, seed, notice=False, **overrides)
