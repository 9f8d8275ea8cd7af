"""What opening an index folder costs with the checks of issue 22 (regular files, size caps, the
sealed manifest, npy headers, FAISS's kind and parameters), beside the bare minimum every load did
before (read both files, SHA-256 them, deserialise the FAISS index), and how far each file's size is
below the cap its manifest allows (a cap too tight would refuse a real index).

    OMP_NUM_THREADS=1 python benchmarks/bench_index_load.py --n 60000 --dim 16
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    import faiss

    from aezoo.search import build_index, load_index
    from aezoo.search.vector_index import _max_index_bytes

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    z = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    labels = rng.integers(0, 10, args.n)
    print(f"{args.n} random codes of size {args.dim}; median of {args.repeat} loads")
    print("| kind | index.faiss MB | cap MB | size/cap | bare load ms | checked load ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("flat", "hnsw", "ivf-pq"):
            path = build_index(None, None, codes=z, labels=labels, kind=kind).save(Path(tmp) / kind)

            def bare():
                blobs = [(path / name).read_bytes() for name in ("index.faiss", "items.npz")]
                [hashlib.sha256(b).hexdigest() for b in blobs]
                faiss.deserialize_index(np.frombuffer(blobs[0], dtype=np.uint8))

            bare_s = median_seconds(bare, args.repeat)
            checked_s = median_seconds(lambda: load_index(path), args.repeat)
            size = (path / "index.faiss").stat().st_size
            cap = _max_index_bytes(load_index(path).manifest)
            print(f"| {kind} | {size / 1e6:.2f} | {cap / 1e6:.2f} | {size / cap:.2f} | {bare_s * 1e3:.1f} | {checked_s * 1e3:.1f} | "
                  f"{checked_s / bare_s:.2f} |")


if __name__ == "__main__":
    main()
