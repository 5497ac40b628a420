"""Feature normalisation of the 2021 baseline, per instance or with dataset statistics."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

STATISTICS = ("instance", "dataset")
NORM_TYPES = ("minmax", "standard", "mean")
# statistics kept by statistic="dataset"; 2021 checkpoints hold only the first two
DATASET_BUFFERS = ("mean", "mean_squared", "amin", "amax")


class TorchScaler(nn.Module):
    """Normalise features with per-instance or dataset-wide statistics.

    Args:
        statistic: "instance" computes the statistics on each input tensor, per item of
            the batch, over ``dims`` (2021 baseline: instance minmax); "dataset" uses
            statistics accumulated by :meth:`fit`.
        normtype: "minmax": ``(x - min) / (max - min + eps)``; "standard":
            ``(x - mean) / (std + eps)``; "mean": ``x - mean``.
        dims: dimensions reduced to get the statistics, for (batch, n_mels, frames) input
            (1, 2) = per clip over all bins; (2,) = per mel band.
        eps: added to the denominator.

    With ``statistic="dataset"`` the statistics are buffers ``mean``, ``mean_squared``,
    ``amin``, ``amax`` of shape (1, ...) with size 1 along ``dims``; they are saved in
    checkpoints and loaded back by ``load_state_dict`` (2021 checkpoints, which lack
    ``amin``/``amax``, load for "standard" and "mean"). Instance scalers have no state.

    As in 2021, dataset mean/std are the average over batches of per-batch means (exact
    when batches have equal size), and the instance std is the unbiased ``torch.std``.

    Shapes:
        x: (batch, ...) -> same shape.
    """

    def __init__(
        self,
        statistic: str = "instance",
        normtype: str = "minmax",
        dims: Sequence[int] = (1, 2),
        eps: float = 1e-8,
    ):
        super().__init__()
        if statistic not in STATISTICS:
            raise ValueError(
                f"TorchScaler: unknown statistic {statistic!r}; expected one of {STATISTICS}"
            )
        if normtype not in NORM_TYPES:
            raise ValueError(
                f"TorchScaler: unknown normtype {normtype!r}; expected one of {NORM_TYPES}"
            )
        dims = tuple(int(d) for d in dims)
        if 0 in dims:
            raise ValueError("TorchScaler: dims must not contain the batch dimension 0")
        self.statistic = statistic
        self.normtype = normtype
        self.dims = dims
        self.eps = eps
        if statistic == "dataset":
            # empty until fit(); buffers so that they follow .to(device) and checkpoints
            for name in DATASET_BUFFERS:
                self.register_buffer(name, torch.empty(0))

    @classmethod
    def from_config(cls, scaler: dict) -> TorchScaler:
        """From the config's ``scaler:`` section (statistic, normtype, dims)."""
        return cls(scaler["statistic"], scaler["normtype"], tuple(scaler["dims"]))

    @property
    def is_fitted(self) -> bool:
        """True once dataset statistics exist (always True for instance statistics)."""
        return self.statistic == "instance" or self.mean.numel() > 0

    @torch.no_grad()
    def fit(
        self,
        batches: Iterable[Any],
        transform: Callable[[Any], torch.Tensor] | None = None,
    ) -> TorchScaler:
        """Accumulate dataset statistics.

        Args:
            batches: iterable of feature tensors (batch, ...), or of anything that
                ``transform`` turns into one (e.g. a DataLoader and
                ``lambda b: features(b[0])``).
            transform: maps an item of ``batches`` to a feature tensor.

        Returns:
            self.
        """
        if self.statistic != "dataset":
            raise ValueError("TorchScaler.fit: only statistic='dataset' is fitted")
        n_batches = 0
        sums = {}
        for batch in batches:
            feats = batch if transform is None else transform(batch)
            feats = feats.detach()
            stats = {
                "mean": feats.mean(self.dims, keepdim=True).mean(0, keepdim=True),
                "mean_squared": (feats**2).mean(self.dims, keepdim=True).mean(0, keepdim=True),
                "amin": feats.amin(self.dims, keepdim=True).amin(0, keepdim=True),
                "amax": feats.amax(self.dims, keepdim=True).amax(0, keepdim=True),
            }
            if n_batches == 0:
                # accumulate in float64: thousands of batches of float32 means drift
                sums = {k: v.double() for k, v in stats.items()}
            else:
                sums["mean"] += stats["mean"]
                sums["mean_squared"] += stats["mean_squared"]
                sums["amin"] = torch.minimum(sums["amin"], stats["amin"].double())
                sums["amax"] = torch.maximum(sums["amax"], stats["amax"].double())
            n_batches += 1
        if n_batches == 0:
            raise ValueError("TorchScaler.fit: got no batches")
        sums["mean"] /= n_batches
        sums["mean_squared"] /= n_batches
        for name, value in sums.items():
            setattr(self, name, value.to(feats.dtype))
        return self

    def save_statistics(self, path: str | Path) -> None:
        """Write the fitted dataset statistics (and the settings they hold for) to `path`,
        a tensors-only file read back by `load_statistics` (``scaler.savepath``)."""
        if self.statistic != "dataset" or not self.is_fitted:
            raise ValueError("TorchScaler.save_statistics: only fitted dataset statistics are saved")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        stats = {name: getattr(self, name).detach().cpu() for name in DATASET_BUFFERS}
        torch.save({"normtype": self.normtype, "dims": list(self.dims), **stats}, path)

    def load_statistics(self, path: str | Path) -> TorchScaler:
        """Read statistics written by `save_statistics`.

        Raises:
            ValueError: the file is unreadable, not a statistics file of this project (a 2021
                ``scaler.ckpt`` is a pickled module: not loaded, no code from files runs), or
                holds statistics over other ``dims`` (the message names the file and the fix).
        """
        if self.statistic != "dataset":
            raise ValueError("TorchScaler.load_statistics: only statistic='dataset' loads statistics")
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable or unsafe file
            raise ValueError(
                f"{path}: not a scaler statistics file of this project ({type(err).__name__}); "
                f"delete it (or point scaler.savepath elsewhere) to fit the statistics again"
            ) from err
        if not isinstance(saved, dict) or not all(isinstance(saved.get(k), torch.Tensor) for k in DATASET_BUFFERS):
            raise ValueError(f"{path}: holds no scaler statistics; delete it to fit them again")
        if tuple(saved.get("dims", ())) != self.dims:
            raise ValueError(
                f"{path}: statistics over dims {saved.get('dims')}, the config asks for "
                f"{list(self.dims)}; delete it to fit them again"
            )
        for name in DATASET_BUFFERS:
            setattr(self, name, saved[name].to(getattr(self, name).device))
        return self

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        if self.statistic == "dataset":
            # buffers start empty: take the fitted shapes from the checkpoint
            for name in DATASET_BUFFERS:
                stored = state_dict.get(prefix + name)
                if stored is not None:
                    current = getattr(self, name)
                    setattr(self, name, stored.new_empty(stored.shape).to(current.device))
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if self.statistic == "dataset" and self.normtype != "minmax":
            # 2021 dataset scalers stored only mean and mean_squared: min/max are optional
            for name in ("amin", "amax"):
                if prefix + name in missing_keys:
                    missing_keys.remove(prefix + name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.statistic == "instance":
            return self._instance(x)
        if not self.is_fitted:
            raise RuntimeError("TorchScaler: statistic='dataset' needs fit() or a loaded state")
        if x.dim() != self.mean.dim():
            raise ValueError(
                f"TorchScaler: input has {x.dim()} dims, the fitted statistics {self.mean.dim()}"
            )
        if self.normtype == "mean":
            return x - self.mean
        if self.normtype == "standard":
            # clamp: float rounding can make E[x^2] - E[x]^2 slightly negative
            std = torch.sqrt(torch.clamp(self.mean_squared - self.mean**2, min=0.0))
            return (x - self.mean) / (std + self.eps)
        return (x - self.amin) / (self.amax - self.amin + self.eps)

    def _instance(self, x: torch.Tensor) -> torch.Tensor:
        if self.normtype == "mean":
            return x - x.mean(self.dims, keepdim=True)
        if self.normtype == "standard":
            return (x - x.mean(self.dims, keepdim=True)) / (
                x.std(self.dims, keepdim=True) + self.eps
            )
        x_min = x.amin(self.dims, keepdim=True)
        x_max = x.amax(self.dims, keepdim=True)
        return (x - x_min) / (x_max - x_min + self.eps)

    def extra_repr(self) -> str:
        return f"statistic={self.statistic!r}, normtype={self.normtype!r}, dims={self.dims}"
