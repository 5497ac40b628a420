"""Load the pre-trained TensorFlow 1 separation model and separate waveforms with it.

The 2021 SSEP + SED baseline uses Google's universal sound separation model (TDCN++ trained
with MixIT on YFCC100M), published as a TF1 meta graph and checkpoint::

    gsutil -m cp -r gs://gresearch/sound_separation/yfcc100m_mixit_model_checkpoint .
    # -> yfcc100m_mixit_model_checkpoint/inference.meta
    #    yfcc100m_mixit_model_checkpoint/model.ckpt-3547330.{index,data-*}

Graph contract: input ``input_audio/receiver_audio:0`` float32 (batch, 1, samples) at 16 kHz,
output ``denoised_waveforms:0`` float32 (batch, sources, samples).

TensorFlow is imported here only (optional extra ``pip install .[separation]``). The session
lets the GPU memory grow instead of taking all of it, so the process can share a GPU.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from pathlib import Path
from types import TracebackType

import numpy as np

from desed_task.errors import MissingPackage
from desed_task.separation.errors import ModelNotFound
from desed_task.threads import available_cores

log = logging.getLogger(__name__)

GRAPH_NAME = "inference.meta"
"""The meta graph's file name in the real model's folder (and the stand-in's)."""
INPUT_TENSOR = "input_audio/receiver_audio:0"
OUTPUT_TENSOR = "denoised_waveforms:0"
STANDIN_MARKER_OP = "STANDIN_separation_model_notice"
"""Name of a constant op only the stand-in graph has (see `standin.py`)."""

DOWNLOAD_HINT = (
    "get the real model with: gsutil -m cp -r "
    "gs://gresearch/sound_separation/yfcc100m_mixit_model_checkpoint . "
    "(or build a stand-in for tests: python -m desed_task.separation.standin --out_dir DIR)"
)


class TensorFlowMissing(MissingPackage):
    """TensorFlow (the `separation` extra) is not installed; the message says how to get it."""


TF_LOG_LEVEL = "2"
"""TF_CPP_MIN_LOG_LEVEL set before TensorFlow is imported, unless the environment sets it: its
C++ information and warning lines are dropped, its errors kept."""
TF_STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] .*"  # absl's information and warning lines
    r"|To enable the following instructions: .*"  # the second line of cpu_feature_guard's
    r"|\s*)$"
)
"""What TensorFlow writes to stderr while it loads, before its log level applies (absl logs
its oneDNN and CPU-feature lines then, whatever TF_CPP_MIN_LOG_LEVEL says)."""


def _import_quietly():
    """``import tensorflow`` with the C++ stderr of the import captured, and only the lines that
    are not `TF_STARTUP_NOISE` written back (an error stays visible)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (an embedded interpreter): import as it is
        import tensorflow as tf

        return tf
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines()
                    if not TF_STARTUP_NOISE.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)
    return tf


def import_tensorflow():
    """`tensorflow.compat.v1`, or a `TensorFlowMissing` that says how to install it.

    TensorFlow's start-up lines are silenced: TF_CPP_MIN_LOG_LEVEL (`TF_LOG_LEVEL` unless set)
    and absl's Python log level (errors) are set before it is imported, and what its C++ code
    writes to stderr while it loads is dropped when it is `TF_STARTUP_NOISE`. Every command
    that runs TensorFlow imports it here."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)
    try:
        from absl import logging as absl_logging  # TensorFlow's Python logger

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow: without it the import below fails
        pass
    try:
        tf = _import_quietly()
    except ImportError as err:
        raise TensorFlowMissing(
            f"separation needs TensorFlow, an optional extra ({err}): pip install -e "
            f'".[separation]" (or pip install tensorflow-cpu / "tensorflow[and-cuda]")'
        ) from err
    tf.get_logger().setLevel(logging.ERROR)
    return tf.compat.v1


def enable_gpu_memory_growth() -> None:
    """Let TensorFlow allocate GPU memory as needed on every visible GPU (must run before
    TensorFlow initialises the GPUs; a no-op without GPU)."""
    import_tensorflow()  # quietly, the first time
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised: the session config below still applies
            log.debug("memory growth of %s already fixed", gpu.name)


def check_model_files(graph_path: Path, checkpoint_prefix: Path) -> None:
    """Raise ModelNotFound naming the missing file and how to get the model."""
    if not graph_path.is_file():
        raise ModelNotFound(
            f"{graph_path}: separation graph (.meta) not found; {DOWNLOAD_HINT}"
        )
    index = checkpoint_prefix.with_name(checkpoint_prefix.name + ".index")
    if not index.is_file():
        raise ModelNotFound(
            f"{checkpoint_prefix}: separation checkpoint not found (no {index.name}); "
            f"give the prefix, e.g. .../model.ckpt-3547330; {DOWNLOAD_HINT}"
        )


def model_files_in(folder: str | Path) -> tuple[Path, Path]:
    """The graph and checkpoint prefix of a separation model's folder.

    Args:
        folder: holds ``inference.meta`` and one checkpoint ``<prefix>.index`` (+ data files),
            as ``yfcc100m_mixit_model_checkpoint/`` and the stand-in's folder do.

    Returns:
        (graph path, checkpoint prefix), as ``training.sep_graph`` / ``sep_checkpoint`` name them.

    Raises:
        ModelNotFound: not a folder, no graph, no checkpoint or several (the message says
            which and how to get the model).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelNotFound(f"{folder}: not a folder; give the separation model's folder ({GRAPH_NAME} and model.ckpt-*); {DOWNLOAD_HINT}")
    indexes = sorted(folder.glob("*.index"))
    if len(indexes) > 1:
        raise ModelNotFound(
            f"{folder}: several separation checkpoints ({', '.join(p.name for p in indexes)}): keep one"
        )
    graph = folder / GRAPH_NAME
    prefix = indexes[0].with_suffix("") if indexes else folder / "model.ckpt-3547330"
    check_model_files(graph, prefix)
    return graph, prefix


class TFSeparationModel:
    """A restored TF1 separation graph in its own graph and session.

    Args:
        graph_path: the meta graph, e.g. ``yfcc100m_mixit_model_checkpoint/inference.meta``.
        checkpoint_prefix: e.g. ``yfcc100m_mixit_model_checkpoint/model.ckpt-3547330``.
        gpu_memory_growth: allocate GPU memory as needed instead of all of it.
        threads: TensorFlow's intra- and inter-op threads (default: the cores this process
            may use).

    Attributes:
        n_sources: number of output sources, from the graph's output shape (None when the
            graph leaves it unknown; then known after the first `separate`).
        is_standin: True for the stand-in graph of `standin.py` (meaningless outputs).
    """

    def __init__(
        self,
        graph_path: str | Path,
        checkpoint_prefix: str | Path,
        *,
        gpu_memory_growth: bool = True,
        threads: int | None = None,
    ) -> None:
        graph_path, checkpoint_prefix = Path(graph_path), Path(checkpoint_prefix)
        check_model_files(graph_path, checkpoint_prefix)
        tf = import_tensorflow()
        if gpu_memory_growth:
            enable_gpu_memory_growth()
        # TensorFlow would count the machine's cores, not this process's
        cores = threads or available_cores()
        config = tf.ConfigProto(
            allow_soft_placement=True,
            intra_op_parallelism_threads=cores,
            inter_op_parallelism_threads=cores,
        )
        config.gpu_options.allow_growth = gpu_memory_growth
        self.graph = tf.Graph()
        self.session = tf.Session(graph=self.graph, config=config)
        with self.graph.as_default():
            # clear_devices: the published graph may pin ops to a GPU this machine lacks
            saver = tf.train.import_meta_graph(str(graph_path), clear_devices=True)
            if saver is None:
                raise ValueError(f"{graph_path}: the graph has no variables to restore")
            saver.restore(self.session, str(checkpoint_prefix))
            try:
                self.input_tensor = self.graph.get_tensor_by_name(INPUT_TENSOR)
                self.output_tensor = self.graph.get_tensor_by_name(OUTPUT_TENSOR)
            except KeyError as err:
                raise ValueError(
                    f"{graph_path}: not a separation graph with input {INPUT_TENSOR} and "
                    f"output {OUTPUT_TENSOR} ({err})"
                ) from err
        self.is_standin = any(op.name == STANDIN_MARKER_OP for op in self.graph.get_operations())
        shape = self.output_tensor.shape
        self.n_sources: int | None = (
            int(shape[1]) if shape.rank == 3 and shape[1] is not None else None
        )
        if self.is_standin:
            log.warning(
                "%s is the STAND-IN separation model: its outputs are not a separation; %s",
                graph_path,
                DOWNLOAD_HINT.split(" (or")[0],
            )
        log.info(
            "loaded separation model %s (%s sources) from %s",
            graph_path,
            self.n_sources or "?",
            checkpoint_prefix,
        )

    def separate(self, waveform: np.ndarray) -> np.ndarray:
        """Separate one mixture.

        Args:
            waveform: (samples,) float mixture at the model's rate (16 kHz).

        Returns:
            (sources, samples) float32 source estimates, as long as the input.
        """
        waveform = np.asarray(waveform, dtype=np.float32)
        if waveform.ndim != 1 or waveform.shape[0] == 0:
            raise ValueError(f"expected a non-empty (samples,) waveform, got {waveform.shape}")
        batch = waveform.reshape(1, 1, -1)
        separated = self.session.run(self.output_tensor, feed_dict={self.input_tensor: batch})
        sources = np.asarray(separated[0], dtype=np.float32)
        if self.n_sources is None:
            self.n_sources = int(sources.shape[0])
        if sources.shape[-1] != waveform.shape[0]:
            raise ValueError(
                f"model output has {sources.shape[-1]} samples for {waveform.shape[0]} in"
            )
        return sources

    def close(self) -> None:
        """Release the session (and its GPU memory)."""
        self.session.close()

    def __enter__(self) -> TFSeparationModel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
