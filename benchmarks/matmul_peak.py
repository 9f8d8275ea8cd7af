"""This machine's fp32 and bf16 matrix-multiply peaks, in GFLOP/s, on the threads torch uses.

The figure other benchmarks divide by: "achieved GFLOP/s as a fraction of peak" only means something
against a peak measured on the same machine, threads and dtype. We time torch.mm (2*n^3 FLOPs) on
square matrices of a few sizes and report the best repeat of the best size, since the machine's speed
drifts and the peak is what the hardware can do, not what it does on average.

    python benchmarks/matmul_peak.py [--threads N] [--json]
"""
from __future__ import annotations

import argparse
import json
import time

import torch


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_gflops(n: int, repeats: int = 5, min_seconds: float = 0.2, dtype: str = "fp32") -> float:
    """Best GFLOP/s of ``torch.mm`` on (n, n) matrices of ``dtype`` over ``repeats`` timed runs."""
    dt = DTYPES[dtype]
    a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
    out = torch.empty(n, n, dtype=dt)
    torch.mm(a, b, out=out)  # warm-up: thread pool, caches
    t0 = time.perf_counter()
    torch.mm(a, b, out=out)
    iters = max(1, int(min_seconds / max(time.perf_counter() - t0, 1e-6)))
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            torch.mm(a, b, out=out)
        best = max(best, 2 * n**3 * iters / (time.perf_counter() - t0) / 1e9)
    return best


def measure_peak(sizes=(512, 1024, 2048), repeats: int = 5, dtype: str = "fp32") -> dict:
    per_size = {n: round(matmul_gflops(n, repeats, dtype=dtype), 1) for n in sizes}
    return {"threads": torch.get_num_threads(), "dtype": dtype, "peak_gflops": max(per_size.values()), "per_size": per_size, "torch": torch.__version__}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own choice)")
    p.add_argument("--dtype", nargs="*", default=["fp32", "bf16"], choices=list(DTYPES))
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    res = {dt: measure_peak(dtype=dt) for dt in args.dtype}
    if args.json:
        print(json.dumps(res))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for dt, r in res.items():
        for n, g in r["per_size"].items():
            print(f"  mm {n}x{n} {dt}: {g:8.1f} GFLOP/s")
        print(f"{dt} peak: {r['peak_gflops']:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
