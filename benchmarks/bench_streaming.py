"""Streaming (issue 13): the training step rate on a memory-mapped uint8 ``.npy`` of >= 4 GB, read by
DataLoader workers, against the same model on in-memory data, with the peak resident memory of the
training process and of its workers; the same for a folder of PNG files.

    python benchmarks/bench_streaming.py [--gb 4] [--steps 300] [--workers 2] [--out runs/bench_streaming] [--keep]

The .npy holds (N, 3, 64, 64) uint8 natural-patches, tiled to the size asked for; it is deleted at the end
unless --keep. Each case runs in a fresh process (so peak RSS is its own); the rate is measured from
step 20 to the last step. The in-memory cases train on the first 20,000 rows, held in memory.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CASES = ["mlp-memory", "mlp-npy", "conv-memory", "conv-npy", "mlp-png-memory", "mlp-png"]
WARM = 20


def make_npy(path: Path, gb: float) -> int:
    from aezoo.data.natural import natural_patches

    patches = natural_patches(size=64)["x_train"]  # (n, 3, 64, 64) uint8
    n = int(np.ceil(gb * (1 << 30) / patches[0].nbytes))
    # plain writes, not a memory map: pages this process maps would count in its children's peak RSS
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (n, 3, 64, 64)})
        for i in range(0, n, len(patches)):
            f.write(patches[: min(len(patches), n - i)].tobytes())
    return n


def make_pngs(folder: Path, n: int) -> None:
    from PIL import Image

    from aezoo.data.natural import natural_patches

    patches = natural_patches(size=64)["x_train"][:n]
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(patches):
        Image.fromarray(p.transpose(1, 2, 0)).save(folder / f"{i:06d}.png")


def peak_rss_mb() -> int:
    """VmHWM of this process: ru_maxrss would carry the parent's peak over fork and exec."""
    with open("/proc/self/status") as f:
        return round(next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024)


def run_case(case: str, npy: Path, pngs: Path, steps: int, workers: int, batch_size: int) -> dict:
    import torch

    import aezoo
    from aezoo.data.core import build
    from aezoo.train.trainer import fit

    torch.set_num_threads(1)
    arch = "conv" if case.startswith("conv") else "mlp"
    if case.endswith("-npy"):
        data = aezoo.data.load(npy, stream=True, val_fraction=0)
    elif case == "mlp-png":
        data = aezoo.data.load(pngs, stream=True, val_fraction=0)
    elif case == "mlp-png-memory":
        data = aezoo.data.load(pngs, stream=False, val_fraction=0)
    else:
        rows = np.array(np.load(npy, mmap_mode="r")[:20000])
        data = build("memory", {"x_train": rows, "source": "memory"}, val_fraction=0)
    model = aezoo.create("vae", input_shape=data.input_shape, arch=arch, latent_dim=32, likelihood="gaussian")
    stamps = {}
    model.on_step = lambda step, total: stamps.__setitem__(step, time.perf_counter())
    t0 = time.perf_counter()
    fit(model, data, steps=steps, epochs=None, batch_size=batch_size, progress=False, workers=workers, seed=0)
    total = time.perf_counter() - t0
    rate = (steps - 1 - WARM) / (stamps[steps - 1] - stamps[WARM])
    return {"case": case, "n_train": len(data.train), "streamed": not data.train.x.in_memory, "steps": steps, "batch_size": batch_size,
            "workers": workers if not data.train.x.in_memory else 0, "steps_per_s": round(rate, 2), "seconds": round(total, 1),
            "peak_rss_mb": peak_rss_mb(),
            "peak_rss_worker_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--gb", type=float, default=4.0)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--pngs", type=int, default=4000)
    p.add_argument("--cases", nargs="*", default=CASES)
    p.add_argument("--out", default="runs/bench_streaming")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--case", help=argparse.SUPPRESS)  # one case, in this process
    args = p.parse_args()
    out = Path(args.out)
    npy, pngs = out / "big.npy", out / "pngs"
    if args.case:
        print(json.dumps(run_case(args.case, npy, pngs, args.steps, args.workers, args.batch_size)))
        return
    out.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        if not npy.exists():
            t = time.perf_counter()
            n = make_npy(npy, args.gb)
            print(f"wrote {npy}: {n} rows, {npy.stat().st_size / 2**30:.2f} GiB in {time.perf_counter() - t:.0f} s", flush=True)
        if any("png" in c for c in args.cases) and not pngs.exists():
            make_pngs(pngs, args.pngs)
        for case in args.cases:
            cmd = [sys.executable, __file__, "--case", case, "--out", str(out), "--steps", str(args.steps), "--workers", str(args.workers),
                   "--batch-size", str(args.batch_size)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                print(case, "failed:", r.stderr[-2000:], flush=True)
                continue
            results.append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(results[-1], flush=True)
            (out / "streaming.json").write_text(json.dumps({"npy_gib": round(npy.stat().st_size / 2**30, 2), "results": results}, indent=1))
    finally:
        if not args.keep:
            npy.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
