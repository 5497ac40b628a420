"""Running the network of a detector with ONNX Runtime (a model written by
``python -m desed_task.export``) instead of PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


class OnnxPipeline(nn.Module):
    """Audio -> (strong, weak) through an exported ONNX model, in place of the checkpoint's
    :class:`SEDPipeline` (same input; an SSEP + SED export with the separation inside, metadata
    ``separation: inside``, takes the mixture only: `separates`).

    Args:
        path: the ``.onnx`` file.
        torch_pipeline: the checkpoint's :class:`SEDPipeline` (None: set `takes_sources` later).
        threads: ONNX Runtime intra-op threads (default: torch's thread count).

    Attributes:
        separates: the graph separates its input itself (no separation model to load).
        takes_sources: the graph takes (batch, 1 + sources, samples).
    """

    def __init__(self, path: str | Path, torch_pipeline: nn.Module | None = None, threads: int | None = None) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.separates = self.session.get_modelmeta().custom_metadata_map.get("separation") == "inside"
        self.takes_sources = bool(getattr(torch_pipeline, "takes_sources", False)) and not self.separates

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feed = {"audio": np.ascontiguousarray(audio.detach().cpu().numpy(), dtype=np.float32)}
        strong, weak = self.session.run(["strong", "weak"], feed)
        return torch.from_numpy(strong), torch.from_numpy(weak)
