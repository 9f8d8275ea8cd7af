"""Search by embedding (issue 14), two parts.

1. Fashion-MNIST: the 60,000 training images indexed, the 10,000 test images as queries, exact (flat)
   search by Euclidean distance. Codes of `ae`, `vae` (posterior mean) and `vq_vae` (its quantised grid)
   beside raw pixels and PCA of the same dimensions: precision@10 by label and queries/s.
2. A synthetic collection of 1,000,000 vectors (64-d, clustered like real embeddings: a mixture of
   1,024 anisotropic Gaussians) and 1,000 queries from the same mixture, for the index kinds: recall@10
   against the exact answer, queries/s, build time and index size, over each kind's search knob.

    python benchmarks/bench_search.py [--part fashion|synthetic|all] [--threads 1] [--epochs 10] [--out runs/bench_search]

Runs train with the CLI's defaults for each model except `vq_vae`'s code vector size (latent_dim 16, so
its 7x7 grid is a 784-d code, the size of the raw pixels). Times are wall seconds with ``--threads``
threads for torch and FAISS.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import aezoo
from aezoo.evaluate.retrieval import measure_index
from aezoo.search import encode_codes


def fashion(args) -> list[dict]:
    data = aezoo.data.load("fashion-mnist", val_fraction=0)  # all 60,000 training images are indexed
    x_db, y_db = data.train.x, data.train.y.numpy()
    x_q, y_q = data.test.x, data.test.y.numpy()
    runs = {"ae": {}, "vae": {}, "vq_vae": {"latent_dim": 16}}
    codes = {}
    for name, cfg in runs.items():
        out = Path(args.out) / name
        if not (out / "model.safetensors").exists():
            torch.manual_seed(0)
            model = aezoo.create(name, input_shape=data.input_shape, **cfg)
            t0 = time.perf_counter()
            aezoo.train(model, data, out=out, epochs=args.epochs, progress=False, report=False)
            print(f"trained {name} in {time.perf_counter() - t0:.0f}s", flush=True)
        model = aezoo.load(out)
        codes[name] = (encode_codes(model, x_db), encode_codes(model, x_q))
    pixels = (x_db.flatten(1).numpy(), x_q.flatten(1).numpy())
    codes["pixels"] = pixels
    from sklearn.decomposition import PCA

    for d in sorted({codes[n][0].shape[1] for n in runs if codes[n][0].shape[1] < pixels[0].shape[1]}):
        pca = PCA(d, random_state=0).fit(pixels[0])
        codes[f"PCA-{d}"] = (pca.transform(pixels[0]).astype(np.float32), pca.transform(pixels[1]).astype(np.float32))
    rows = []
    for name, (z_db, z_q) in codes.items():
        r = measure_index("flat", z_db, y_db, z_q, y_q)
        rows.append({"codes": name, "dim": z_db.shape[1], "precision@10": r["precision"], "qps": r["qps"], "index_mb": r["index_mb"]})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nFashion-MNIST: {len(x_db)} indexed, {len(x_q)} queries, flat (exact) L2, {args.threads} thread(s)\n")
    print("| codes | dim | precision@10 | queries/s | index MB |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['codes']} | {r['dim']} | {r['precision@10']:.4f} | {r['qps']:,.0f} | {r['index_mb']:.1f} |")
    return rows


def mixture(n: int, d: int, centres: int, seed: int) -> np.ndarray:
    """Clustered vectors: a mixture of anisotropic Gaussians around random centres (same centres for
    the same seed of the mixture; ``seed`` + 1 draws queries from it)."""
    g = np.random.default_rng(0)
    mu = g.standard_normal((centres, d)).astype(np.float32) * 2
    scales = g.uniform(0.2, 1.0, (centres, d)).astype(np.float32)
    r = np.random.default_rng(seed)
    out = np.empty((n, d), np.float32)
    for s in range(0, n, 100_000):
        k = r.integers(0, centres, min(100_000, n - s))
        out[s : s + len(k)] = mu[k] + scales[k] * r.standard_normal((len(k), d)).astype(np.float32)
    return out


def synthetic(args, kinds=("flat", "hnsw", "ivf-pq")) -> list[dict]:
    from aezoo.search import build_index

    z_db = mixture(args.n, 64, 1024, seed=1)
    z_q = mixture(1000, 64, 1024, seed=2)
    rows = []
    flat = measure_index("flat", z_db, None, z_q, None)
    exact = flat["ids"]
    rows.append({"kind": "flat", "knob": "-", "recall@10": 1.0, "qps": flat["qps"], "build_s": flat["build_s"], "index_mb": flat["index_mb"]})
    print(json.dumps(rows[-1]), flush=True)
    sweeps = (("hnsw", {}, "ef_search", (16, 32, 64, 128, 256)), ("ivf-pq", {}, "nprobe", (1, 4, 16, 64)),
              ("ivf-pq", {"rerank": 10}, "nprobe", (1, 4, 16, 64)))
    for kind, build_params, knob, values in [s for s in sweeps if s[0] in kinds]:
        index = build_index(None, None, codes=z_db, kind=kind, params=build_params)
        mb = index.nbytes() / 1e6
        for v in values:
            from aezoo.search import recall_at_k

            t0 = time.perf_counter()
            hits = index.search_codes(z_q, 10, **{knob: v})
            qps = z_q.shape[0] / (time.perf_counter() - t0)
            rows.append({"kind": kind, "params": index.params, "knob": f"{knob}={v}", "recall@10": recall_at_k(hits.ids, exact), "qps": qps,
                         "build_s": index.manifest["build_seconds"], "index_mb": mb})
            print(json.dumps(rows[-1]), flush=True)
    print(f"\nSynthetic: {args.n:,} vectors of 64 dims (1,024-component mixture), 1,000 queries, {args.threads} thread(s)\n")
    print("| index | search knob | recall@10 | queries/s | build s | index MB |\n|---|---|---:|---:|---:|---:|")
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r.get("params", {}).items() if k not in ("ef_search", "nprobe") and (k != "rerank" or v))
        print(f"| {r['kind']}{' (' + params + ')' if params else ''} | {r['knob']} | {r['recall@10']:.4f} | {r['qps']:,.0f} | {r['build_s']:.1f} | {r['index_mb']:.0f} |")
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--part", choices=["fashion", "synthetic", "ivf-pq", "all"], default="all")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--n", type=int, default=1_000_000, help="synthetic collection size")
    p.add_argument("--out", default="runs/bench_search")
    args = p.parse_args()
    import faiss

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    if args.part in ("fashion", "all"):
        fashion(args)
    if args.part in ("synthetic", "all"):
        synthetic(args)
    if args.part == "ivf-pq":  # the ivf-pq rows only
        synthetic(args, kinds=("ivf-pq",))


if __name__ == "__main__":
    main()
