"""Batches of data larger than memory (issue 13): rows of a memory-mapped ``.npy`` or of an image folder
are read and decoded in DataLoader worker processes, one whole batch per worker task, and become float
on the training device.

The order is ``Batches``' own: the permutation of epoch e depends only on (seed, e), each rank takes its
contiguous share of every global batch, and an epoch can start at any example offset. So a streamed run
sees exactly the batches of the same run in memory, and the trainer's checkpointed position (epoch,
offset) resumes it exactly, also after SIGKILL.
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from .batching import Batches
from .core import Split
from .images import ByteImages


class _Rows(TorchDataset):
    """rows[idx] -> (uint8 (n, C, H, W), labels or an empty tensor) for an index array: a worker's task."""

    def __init__(self, x: ByteImages, y: torch.Tensor | None):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx):
        return self.x.bytes(idx), (self.y[idx] if self.y is not None else torch.empty(0))


class StreamBatches(Batches):
    """``Batches`` whose split stays on disk; ``workers`` processes read ahead ``prefetch`` batches each."""

    def __init__(self, split: Split, batch_size: int, device="cpu", seed: int = 0, rank: int = 0, world_size: int = 1,
                 dynamic_binarization: bool = False, drop_last: bool | None = None, workers: int = 2, prefetch: int = 4):
        if not isinstance(split.x, ByteImages):
            raise TypeError("StreamBatches reads uint8 images (ByteImages)")
        self.device = torch.device(device)
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.binarize = dynamic_binarization
        self.drop_last = world_size > 1 if drop_last is None else drop_last
        self.n = len(split)
        self.on_device = False
        self.rows = _Rows(split.x, None if split.y is None else split.y.cpu())
        self.scale = split.x.scale
        self.workers, self.prefetch = workers, prefetch
        if self.drop_last and self.n < batch_size:
            raise ValueError(f"{self.n} examples are fewer than one global batch of {batch_size}")

    def permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def epoch(self, epoch: int, start: int = 0, offset: int = 0):
        perm = self.permutation(epoch)
        tasks = []
        for i in range(start, self.batches_from(offset)):
            lo = offset + i * self.batch_size
            idx = perm[lo : lo + self.batch_size]
            if self.world_size > 1:
                idx = idx.tensor_split(self.world_size)[self.rank]
            tasks.append(idx.numpy())
        if not tasks:
            return
        loader = DataLoader(self.rows, batch_size=None, sampler=tasks, num_workers=self.workers,
                            prefetch_factor=self.prefetch if self.workers else None, pin_memory=self.device.type == "cuda")
        for xb, yb in loader:
            x = xb.to(self.device, non_blocking=True).float().div_(self.scale)
            y = yb.to(self.device, non_blocking=True) if self.rows.y is not None else None
            yield x, y
