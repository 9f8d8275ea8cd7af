"""Small data (issue 23): how many checkpoints a run writes when the model's ``min_steps`` floor turns a
few epochs into hundreds of tiny ones, and what that costs in wall time.

    PYTHONPATH=src python benchmarks/bench_small_data.py /tmp/small-run     # this checkout
    PYTHONPATH=/path/to/other/src python benchmarks/bench_small_data.py /tmp/other-run   # another, to compare

247 uint8 16x16 images (200 train after the val/test splits), the VAE at batch 128 (2 steps per epoch),
``epochs=10, min_steps=1000``: 500 epochs of 2 steps. The script counts the trainer's checkpoint writes.
"""
from __future__ import annotations

import sys
import time

import numpy as np

import aezoo
from aezoo.train.trainer import Fit


def main(out: str) -> None:
    written = [0]
    real = Fit._prepare_checkpoint

    def counted(self):
        written[0] += 1
        return real(self)

    Fit._prepare_checkpoint = counted
    x = np.random.default_rng(0).uniform(0, 255, (247, 16, 16)).astype(np.uint8)
    data = aezoo.data.from_arrays(x, name="small")
    model = aezoo.create("vae", input_shape=data.input_shape, latent_dim=8)
    t = time.time()
    aezoo.train(model, data, epochs=10, min_steps=1000, batch_size=128, out=out, progress=False, report=False)
    print(f"{aezoo.__file__}: {written[0]} checkpoints written, {time.time() - t:.1f}s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/aezoo-small-data-run")
