"""Which separation model a command runs, and on what: the one place that reads the config's
separation keys.

Backends (``separation.backend``):

* ``pytorch`` (the default): the TDCN++ of ``desed_task.nnet.tdcnpp`` with the weights of the
  converted file ``training.sep_model`` (``python -m desed_task.separation convert``). When that
  key is unset or its file absent and ``training.sep_graph`` / ``sep_checkpoint`` name the
  TensorFlow model, its checkpoint is converted in memory on the fly (read without TensorFlow;
  the log says how to convert it once). Clips of one length are separated in batches on the device
  of ``--gpus`` (``separation.batch_size``; unset: 16 on a GPU, 1 on the CPU).
* ``tensorflow``: the reference, the 2021 path: the TF1 meta graph ``training.sep_graph`` and
  checkpoint ``training.sep_checkpoint`` in a ``tf.compat.v1`` session, one clip at a time
  (`desed_task.separation.model.TFSeparationModel`; the ``separation`` extra).

Both take a (samples,) mixture and give (sources, samples), the written sources of both within
1e-4 of each other on the same model (tests/test_separation_torch.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from desed_task.config import ConfigError
from desed_task.separation.convert import ConversionError
from desed_task.separation.errors import ModelNotFound
from desed_task.separation.folder import Separator
from desed_task.separation.model import TensorFlowMissing  # plain Python: no TensorFlow yet
from desed_task.separation.separator_file import SeparatorFileError
from desed_task.separation.tf_checkpoint import CheckpointFormatError

log = logging.getLogger(__name__)

BACKENDS = ("pytorch", "tensorflow")
DEFAULT_BACKEND = "pytorch"
MODEL_ERRORS = (ModelNotFound, TensorFlowMissing, SeparatorFileError, ConversionError, CheckpointFormatError)
"""What opening a separation model raises for a user's mistake (absent or wrong files, no
TensorFlow for its backend): each message names the file and the fix."""
GPU_BATCH_SIZE = 16
"""Clips per forward pass on a GPU when ``separation.batch_size`` is unset (1 on the CPU)."""
CONVERT_HINT = (
    "convert the TensorFlow model once: python -m desed_task.separation convert --tf_model "
    "yfcc100m_mixit_model_checkpoint --out separation.pt (get it with: gsutil -m cp -r "
    "gs://gresearch/sound_separation/yfcc100m_mixit_model_checkpoint .), then set "
    "training.sep_model: separation.pt"
)


class TorchSeparator:
    """A PyTorch separation network (the TDCN++) behind the `Separator` interface.

    Args:
        model: (batch, samples) -> (batch, sources, samples), e.g. ``load_separator(path)``.
        device: where it runs.
        batch_size: clips per forward pass in `separate_folder` (clips of one length).
        name: the file it came from, for messages.

    Attributes:
        n_sources: sources per mixture (the model's ``hparams["num_sources"]``).
        batch_size: as given.
        is_standin: the file says it is a stand-in with random weights (the demo's).
    """

    def __init__(
        self, model: nn.Module, device: str | torch.device = "cpu", batch_size: int = 1, name: str = "",
        is_standin: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.batch_size = max(1, int(batch_size))
        self.name = name
        self.is_standin = is_standin
        hparams = getattr(model, "hparams", {}) or {}
        self.n_sources: int | None = int(hparams["num_sources"]) if "num_sources" in hparams else None

    def separate_tensor(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, samples) float mixtures -> (batch, sources, samples) float32 on `device`."""
        if audio.dim() != 2 or audio.shape[-1] == 0:
            raise ValueError(f"expected (batch, samples) mixtures with samples > 0, got {tuple(audio.shape)}")
        with torch.inference_mode():
            sources = self.model(audio.to(self.device, torch.float32))
        if sources.shape[0] != audio.shape[0] or sources.shape[-1] != audio.shape[-1]:
            raise ValueError(f"model output {tuple(sources.shape)} for {tuple(audio.shape)} in")
        return sources

    def separate_batch(self, waveforms: np.ndarray) -> np.ndarray:
        """(batch, samples) float32 mixtures of one length -> (batch, sources, samples) float32."""
        audio = torch.from_numpy(np.ascontiguousarray(waveforms, dtype=np.float32))
        return self.separate_tensor(audio).float().cpu().numpy()

    def separate(self, waveform: np.ndarray) -> np.ndarray:
        """(samples,) float mixture -> (sources, samples) float32, as `TFSeparationModel`."""
        waveform = np.asarray(waveform, dtype=np.float32)
        if waveform.ndim != 1 or waveform.shape[0] == 0:
            raise ValueError(f"expected a non-empty (samples,) waveform, got {waveform.shape}")
        return self.separate_batch(waveform[None])[0]

    def close(self) -> None:
        """Nothing to release (the `TFSeparationModel` interface)."""

    def __enter__(self) -> TorchSeparator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def separation_settings(config: dict, source: str = "config") -> tuple[str, int | None]:
    """(backend, batch size or None) of a config's ``separation:`` section (absent: pytorch, None).

    Raises:
        ConfigError: ``separation.backend`` is none of `BACKENDS` (`source` names the file).
    """
    section = config.get("separation") or {}
    if section.get("backend") not in (None, *BACKENDS):
        raise ConfigError(f"{source}: 'separation.backend' must be pytorch or tensorflow, got {section['backend']!r}")
    return section.get("backend") or DEFAULT_BACKEND, section.get("batch_size")


def default_batch_size(device: torch.device, batch_size: int | None) -> int:
    """``separation.batch_size``, or unset: `GPU_BATCH_SIZE` on a GPU, 1 on the CPU."""
    if batch_size:
        return int(batch_size)
    return GPU_BATCH_SIZE if torch.device(device).type == "cuda" else 1


def open_torch_file(path: str | Path, device: str | torch.device = "cpu", batch_size: int = 1) -> TorchSeparator:
    """A converted separation file (``separation.pt``) on `device`.

    Raises:
        ModelNotFound: the file is absent (the message says how to make it).
        SeparatorFileError: not a converted separation model.
    """
    from desed_task.separation import load_separator

    path = Path(path)
    if not path.is_file():
        raise ModelNotFound(f"{path}: converted separation model not found; {CONVERT_HINT}")
    model = load_separator(path)
    standin = bool(getattr(model, "source", {}).get("standin"))
    if standin:
        log.warning("%s is a STAND-IN separation model (random weights): its sources are not a separation", path)
    return TorchSeparator(model, device, batch_size, str(path), is_standin=standin)


def convert_in_memory(prefix: Path) -> nn.Module:
    """The TDCN++ holding the weights of Google's TensorFlow checkpoint (read without
    TensorFlow; `desed_task.separation.convert`).

    Raises:
        ConversionError: the checkpoint is not the TDCN++ (the variables are named).
        ModelNotFound: the checkpoint is absent.
    """
    from desed_task.separation.convert import convert_checkpoint

    log.warning("converting the TensorFlow separation checkpoint %s on the fly; %s", prefix, CONVERT_HINT)
    return convert_checkpoint(prefix)


def check_separation_keys(training: dict, backend: str, source: str = "config") -> None:
    """Refuse, before any work, a config that names no separation model for its backend.

    Raises:
        ConfigError: naming the keys to set.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"{source}: separation.backend must be pytorch or tensorflow, got {backend!r}")
    has_tf = bool(training.get("sep_graph") and training.get("sep_checkpoint"))
    if backend == "tensorflow" and not has_tf:
        raise ConfigError(
            f"{source}: separation.backend tensorflow runs the TensorFlow model: set "
            f"training.sep_graph and training.sep_checkpoint"
        )
    if not has_tf and not training.get("sep_model"):
        raise ConfigError(
            f"{source}: no separation model: set training.sep_model (the converted separation.pt) or "
            f"training.sep_graph and sep_checkpoint (the TensorFlow model); {CONVERT_HINT}"
        )


def open_separator(
    training: dict,
    backend: str = DEFAULT_BACKEND,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    given: str | Path | Separator | None = None,
    source: str = "config",
) -> Separator:
    """The separation model of a config's ``training`` keys, on the chosen backend.

    Args:
        training: holds ``sep_model`` (the converted ``.pt``) and/or ``sep_graph`` /
            ``sep_checkpoint`` (the TensorFlow model).
        backend: "pytorch" or "tensorflow" (``separation.backend``).
        device: the PyTorch backend's device (TensorFlow places its graph itself).
        batch_size: clips per pass (None: `default_batch_size`).
        given: overrides the config: a loaded separator, a converted ``.pt`` file (run on
            PyTorch whatever the backend), or a TensorFlow model's folder (``inference.meta``
            and ``model.ckpt-*``).
        source: the config or checkpoint, for messages.

    Raises:
        ConfigError: unknown backend, or no model named (the message names the keys).
        ModelNotFound: the files named are absent.
        SeparatorFileError, ConversionError (ValueErrors): a file that is not the model.
        TensorFlowMissing: the tensorflow backend without TensorFlow.
    """
    if isinstance(given, Separator):
        return given
    device = torch.device(device)
    batch = default_batch_size(device, batch_size)
    from desed_task.separation.model import check_model_files, model_files_in

    torch_file, graph, prefix = training.get("sep_model"), training.get("sep_graph"), training.get("sep_checkpoint")
    if given is not None and not Path(given).is_dir():
        return open_torch_file(given, device, batch)  # a converted file runs on PyTorch, whatever the backend
    if given is not None:
        torch_file, (graph, prefix) = None, model_files_in(given)
    check_separation_keys({"sep_model": torch_file, "sep_graph": graph, "sep_checkpoint": prefix}, backend, source)
    if backend == "tensorflow":
        from desed_task.separation.model import TFSeparationModel  # imports TensorFlow

        return TFSeparationModel(graph, prefix)
    if torch_file and (Path(torch_file).is_file() or not (graph and prefix)):
        return open_torch_file(torch_file, device, batch)
    graph, prefix = Path(graph), Path(prefix)
    check_model_files(graph, prefix)
    return TorchSeparator(convert_in_memory(prefix), device, batch, str(prefix))


def open_config_separator(
    config: dict, device: str | torch.device = "cpu", batch_size: int | None = None,
    given: str | Path | Separator | None = None, source: str = "config",
) -> Separator:
    """`open_separator` with the backend and batch size of the config's ``separation:``
    section (`batch_size` given here wins)."""
    backend, configured = separation_settings(config, source)
    return open_separator(config.get("training") or {}, backend, device, batch_size or configured, given, source)
