"""Fast batching for data that fits in memory: the split lives as one tensor on the training device
and each batch is a slice of a per-epoch permutation, with no per-sample Python.

The permutation of epoch e depends only on (seed, e), so a run resumed mid-epoch sees exactly the
batches an uninterrupted run would, and every rank of a distributed run draws the same permutation
and takes its own contiguous share of each global batch.
"""
from __future__ import annotations

import math

import torch

from .core import Split
from .images import ByteImages


def _fits_on(device: torch.device, nbytes: int) -> bool:
    if device.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(device)
    return nbytes < 0.5 * free


class Batches:
    """Iterate (x, y) batches of ``split`` for one epoch: ``for x, y in batches.epoch(e, start=k)``."""

    def __init__(
        self,
        split: Split,
        batch_size: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        dynamic_binarization: bool = False,
        drop_last: bool | None = None,
    ):
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.binarize = dynamic_binarization
        # equal shares per rank keep DDP's gradient average equal to the global batch mean
        self.drop_last = world_size > 1 if drop_last is None else drop_last
        self.n = len(split)
        x, self.scale = split.x, None
        if isinstance(x, ByteImages):  # uint8 on the device; each batch becomes float there (issue 13)
            x, self.scale = x.bytes(slice(None)), x.scale
        nbytes = x.numel() * x.element_size()
        self.on_device = _fits_on(self.device, nbytes)
        if self.on_device:
            self.x = x.to(self.device)
            self.y = None if split.y is None else split.y.to(self.device)
        else:  # stream from pinned host memory with non-blocking copies
            self.x = x.pin_memory()
            self.y = None if split.y is None else split.y.pin_memory()
        if self.drop_last and self.n < batch_size:
            raise ValueError(f"{self.n} examples are fewer than one global batch of {batch_size}")

    def __len__(self) -> int:
        return self.batches_from(0)

    def batches_from(self, offset: int) -> int:
        """Batches in an epoch that starts ``offset`` examples into its permutation."""
        left = max(self.n - offset, 0)
        return left // self.batch_size if self.drop_last else math.ceil(left / self.batch_size)

    def permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g).to(self.x.device)

    def epoch(self, epoch: int, start: int = 0, offset: int = 0):
        """Yield the batches of ``epoch`` from batch index ``start`` on (for resuming mid-epoch), the
        first batch beginning ``offset`` examples into the permutation (a run resumed with another
        batch size continues from the example it stopped at)."""
        perm = self.permutation(epoch)
        first = offset // self.batch_size  # batch numbering for the binarization seeds
        for i in range(start, self.batches_from(offset)):
            lo = offset + i * self.batch_size
            idx = perm[lo : lo + self.batch_size]
            if self.world_size > 1:
                idx = idx.tensor_split(self.world_size)[self.rank]
            x = self.x[idx]
            y = None if self.y is None else self.y[idx]
            if not self.on_device:
                x = x.to(self.device, non_blocking=True)
                y = None if y is None else y.to(self.device, non_blocking=True)
            if self.scale is not None:
                x = x.float().div_(self.scale)
            if self.binarize:  # seeded per batch, so resuming mid-epoch draws the same samples
                g = torch.Generator(device=x.device).manual_seed((self.seed * 7_919 + epoch) * 1_000_003 + first + i)
                x = torch.bernoulli(x, generator=g)
            yield x, y


def make_batches(split: Split, batch_size: int, device="cpu", seed: int = 0, rank: int = 0, world_size: int = 1,
                 dynamic_binarization: bool = False, workers: int = 2) -> Batches:
    """``Batches`` for a split in memory; ``StreamBatches`` (DataLoader workers) for one left on disk."""
    if isinstance(split.x, ByteImages) and not split.x.in_memory:
        from .streaming import StreamBatches

        return StreamBatches(split, batch_size, device, seed, rank, world_size, dynamic_binarization, workers=workers)
    return Batches(split, batch_size, device, seed, rank, world_size, dynamic_binarization)
