"""What `run_separation.py` prepares for a demo config (one with a `demo:` section) besides the
demo dataset (`desed_task.data_generation.demo.ensure_demo_dataset`): the STAND-IN separation
model when its files are absent.

Plain Python until a model is built: TensorFlow is imported by `standin` only then.
"""

from __future__ import annotations

import logging
from pathlib import Path

from desed_task.config import ConfigError
from desed_task.separation.standin import CHECKPOINT_NAME, CHECKPOINT_STEP, GRAPH_NAME

log = logging.getLogger(__name__)

STANDIN_BANNER = "=" * 78


def standin_model_missing(graph_path: Path, checkpoint_prefix: Path) -> bool:
    """Whether the separation model's graph or checkpoint index is absent."""
    index = checkpoint_prefix.with_name(checkpoint_prefix.name + ".index")
    return not graph_path.is_file() or not index.is_file()


def ensure_standin_model(graph_path: str | Path, checkpoint_prefix: str | Path) -> bool:
    """Build the STAND-IN separation model at the configured paths when its files are absent.

    The paths must name the stand-in's files in one folder (``DIR/inference.meta`` and
    ``DIR/model.ckpt-3547330``), as the real model's do. Returns True when it was built.

    Raises:
        ConfigError: the paths do not fit the stand-in's file names.
    """
    graph_path, checkpoint_prefix = Path(graph_path), Path(checkpoint_prefix)
    if not standin_model_missing(graph_path, checkpoint_prefix):
        return False
    expected_prefix = f"{CHECKPOINT_NAME}-{CHECKPOINT_STEP}"
    if graph_path.name != GRAPH_NAME or checkpoint_prefix.name != expected_prefix or (
        graph_path.parent != checkpoint_prefix.parent
    ):
        raise ConfigError(
            f"training.sep_graph / sep_checkpoint ({graph_path}, {checkpoint_prefix}) are absent "
            f"and cannot be built as the stand-in: name DIR/{GRAPH_NAME} and DIR/{expected_prefix}"
        )
    from desed_task.separation.standin import build_standin_model  # imports TensorFlow

    log.warning(
        "\n%s\nSTAND-IN separation model: building it in %s because the demo config points "
        "there and it is absent.\nIt does NOT separate sounds (random filters whose outputs add "
        "up to the mixture): the demo exercises the SSEP + SED pipeline, not its results.\n%s",
        STANDIN_BANNER,
        graph_path.parent,
        STANDIN_BANNER,
    )
    build_standin_model(graph_path.parent)
    return True
