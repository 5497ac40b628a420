"""Gathering per-clip outputs of every DDP process, so metrics are computed once on the whole set."""

from __future__ import annotations

from typing import Any

import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_by_name(local: dict[str, Any]) -> dict[str, Any]:
    """Merge the `{clip name: value}` dicts of all processes (duplicates padded in by a
    `DistributedSampler` collapse onto one key). Without DDP, returns `local`."""
    if world_size() == 1:
        return local
    parts: list[dict[str, Any] | None] = [None] * world_size()
    dist.all_gather_object(parts, local)
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(part or {})
    return merged


def broadcast_from_zero(value: Any) -> Any:
    """Rank 0's `value` on every process."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
