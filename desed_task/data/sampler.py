"""Batches mixing the three training sets in fixed proportions ([12, 12, 24] in 2021)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class MixedBatchSampler(Sampler[list[int]]):
    """Each batch holds `batch_sizes[i]` random clips of set i, sets in order.

    Indices refer to a `ConcatDataset` of the sets. An epoch lasts as long as the set that runs
    out first (as the 2021 `ConcatDatasetBatchSampler`). Under DDP every process draws a
    disjoint shard of each set's permutation, so Lightning's sampler replacement is not needed
    (use `Trainer(use_distributed_sampler=False)`); `set_epoch` reshuffles.

    Args:
        set_sizes: number of clips of each set.
        batch_sizes: clips of each set per batch (per process).
        seed: base seed; the permutation of epoch e uses seed + e.
        num_replicas, rank: DDP world size and this process's rank.
    """

    def __init__(
        self,
        set_sizes: Sequence[int],
        batch_sizes: Sequence[int],
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if len(set_sizes) != len(batch_sizes):
            raise ValueError("one batch size per set is needed")
        self.set_sizes = list(set_sizes)
        self.batch_sizes = list(batch_sizes)
        self.offsets = [sum(self.set_sizes[:i]) for i in range(len(self.set_sizes))]
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        for size, bs in zip(self.set_sizes, self.batch_sizes):
            if size // num_replicas < bs:
                raise ValueError(
                    f"a set of {size} clips cannot fill batches of {bs} on {num_replicas} process(es)"
                )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return min(
            (size // self.num_replicas) // bs for size, bs in zip(self.set_sizes, self.batch_sizes)
        )

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        shards = [
            (torch.randperm(size, generator=generator)[self.rank :: self.num_replicas] + offset).tolist()
            for size, offset in zip(self.set_sizes, self.offsets)
        ]
        for b in range(len(self)):
            batch: list[int] = []
            for shard, bs in zip(shards, self.batch_sizes):
                batch.extend(shard[b * bs : (b + 1) * bs])
            yield batch
