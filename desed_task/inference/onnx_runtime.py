"""Running the network of a detector with ONNX Runtime (a model written by
``python -m desed_task.export``) instead of PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


class OnnxPipeline(nn.Module):
    """Audio -> (strong, weak) through an exported ONNX model, in place of the checkpoint's
    :class:`SEDPipeline` (same input: with `takes_sources`, the mixture and its sources).

    Args:
        path: the ``.onnx`` file.
        torch_pipeline: the checkpoint's :class:`SEDPipeline`.
        threads: ONNX Runtime intra-op threads (default: torch's thread count).
    """

    def __init__(self, path: str | Path, torch_pipeline: nn.Module, threads: int | None = None) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.takes_sources = bool(getattr(torch_pipeline, "takes_sources", False))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feed = {"audio": np.ascontiguousarray(audio.detach().cpu().numpy(), dtype=np.float32)}
        strong, weak = self.session.run(["strong", "weak"], feed)
        return torch.from_numpy(strong), torch.from_numpy(weak)
