"""The deterministic family on Fashion-MNIST, at one encoder size: a single code layer of 1000 units
(784 -> 1000 -> 784, ``hidden=()``), as in Makhzani & Frey 2013, with each model's own code and
penalty. Reports test reconstruction MSE, PSNR under mask:0.5 corruption, a logistic-regression probe
and k-NN retrieval precision on the codes.

To fit in about 10 minutes on 2 CPU cores it trains on a random subset of the training set (10k by
default) for a few epochs; the test split is the full 10k.

    python benchmarks/bench_deterministic.py --train 10000 --epochs 10
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import aezoo

MODELS = [
    ("ae", "ae", {}),
    ("dae mask 0.5", "denoising_ae", {"corruption": "mask", "p": 0.5, "code_activation": "sigmoid"}),
    ("sparse l1", "sparse_ae", {"penalty": "l1", "lam": 0.05}),
    ("sparse kl", "sparse_ae", {"penalty": "kl", "beta": 0.1, "rho": 0.05}),
    ("k-sparse k=25", "k_sparse_ae", {"k": 25, "k_start": 100}),
    ("k-sparse k=25 + AuxK", "k_sparse_ae", {"k": 25, "k_start": 100, "aux_k": 256, "dead_steps": 50}),
    ("contractive", "contractive_ae", {"lam": 0.1}),
]
COLUMNS = ["recon_mse", "denoise_psnr", "probe_acc", "knn_precision_at_10", "code_l0", "dead_units", "jacobian_fro"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=10000, help="training examples (a random subset)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--latent", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--corrupt", default="mask:0.5")
    ap.add_argument("--only", nargs="*", help="labels of the rows to run")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()

    data = aezoo.data.load("fashion-mnist", val_fraction=0)
    idx = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[: args.train]
    data.train = data.train.take(idx)
    rows = []
    for label, key, cfg in MODELS:
        if args.only and label not in args.only:
            continue
        torch.manual_seed(0)
        model = aezoo.create(key, input_shape=data.input_shape, latent_dim=args.latent, hidden=(), **cfg)
        t0 = time.perf_counter()
        aezoo.train(model, data, epochs=args.epochs, batch_size=args.batch_size, progress=False)
        seconds = time.perf_counter() - t0
        m = aezoo.evaluate(model, data, "test", corrupt=args.corrupt)
        row = {"model": label, "key": key, "train_s": round(seconds, 1), **{c: m.get(c) for c in COLUMNS}, "noisy_psnr": m.get("noisy_psnr")}
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(f"\nFashion-MNIST, {len(data.train)} train / {len(data.test)} test, {args.epochs} epochs, batch {args.batch_size}, "
          f"784-{args.latent}-784, Adam 1e-3; PSNR under {args.corrupt} (noisy input: {rows[0]['noisy_psnr']:.2f} dB)\n")
    print("| model | key | " + " | ".join(COLUMNS) + " | train s |")
    print("|---" * (len(COLUMNS) + 3) + "|")
    for r in rows:
        cells = [f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS]
        print(f"| {r['model']} | `{r['key']}` | " + " | ".join(cells) + f" | {r['train_s']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
