"""Batches mixing the three training sets in fixed proportions ([12, 12, 24] in 2021)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


def draw_permutation(size: int) -> torch.Tensor:
    """A random permutation of ``range(size)``, drawn as ``torch.utils.data.RandomSampler``
    draws one: a fresh generator seeded by one int64 from the global torch generator.

    2021 gave each training set a ``RandomSampler``, so each epoch consumed one global draw
    per set and every clip was used; a run seeded alike gets the same epochs.
    """
    seed = int(torch.empty((), dtype=torch.int64).random_().item())
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed))


class MixedBatchSampler(Sampler[list[int]]):
    """Each batch holds `batch_sizes[i]` random clips of set i, sets in order.

    Indices refer to a `ConcatDataset` of the sets. Every iteration (epoch) draws a new
    permutation of each set from the global torch generator, exactly as the 2021
    `ConcatDatasetBatchSampler` over `RandomSampler`s did (one draw per set, in set order,
    when the first batch is requested). So nothing has to tell the sampler the epoch (Lightning
    never calls a custom batch sampler's `set_epoch`), a seeded run draws 2021's batches, and a
    resumed run, whose generator states come back with its checkpoint, draws the batches the
    uninterrupted run would have drawn. An epoch lasts as long as the set that runs out first.

    Under DDP every process seeds and consumes the global generator alike, so all draw the same
    permutations and each keeps its own disjoint shard ``perm[rank::num_replicas]`` (use
    `Trainer(use_distributed_sampler=False)`).

    Args:
        set_sizes: number of clips of each set.
        batch_sizes: clips of each set per batch (per process).
        num_replicas, rank: DDP world size and this process's rank.
    """

    def __init__(
        self,
        set_sizes: Sequence[int],
        batch_sizes: Sequence[int],
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if len(set_sizes) != len(batch_sizes):
            raise ValueError("one batch size per set is needed")
        self.set_sizes = list(set_sizes)
        self.batch_sizes = list(batch_sizes)
        self.offsets = [sum(self.set_sizes[:i]) for i in range(len(self.set_sizes))]
        self.num_replicas = num_replicas
        self.rank = rank
        for size, bs in zip(self.set_sizes, self.batch_sizes):
            if size // num_replicas < bs:
                raise ValueError(
                    f"a set of {size} clips cannot fill batches of {bs} on {num_replicas} process(es)"
                )

    def __len__(self) -> int:
        return min(
            (size // self.num_replicas) // bs for size, bs in zip(self.set_sizes, self.batch_sizes)
        )

    def __iter__(self) -> Iterator[list[int]]:
        # a generator: the draws happen at the first batch, as with 2021's samplers
        shards = [
            (draw_permutation(size)[self.rank :: self.num_replicas] + offset).tolist()
            for size, offset in zip(self.set_sizes, self.offsets)
        ]
        for b in range(len(self)):
            batch: list[int] = []
            for shard, bs in zip(shards, self.batch_sizes):
                batch.extend(shard[b * bs : (b + 1) * bs])
            yield batch
