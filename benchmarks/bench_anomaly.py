"""One-class anomaly detection (issue 18): the set-up of the deep anomaly-detection papers (Ruff et al.
2018, "Deep One-Class Classification"): for each class, train on that class only and score a test set
in which the other classes are the anomalies; AUROC per class, and its mean.

    python benchmarks/bench_anomaly.py fmnist --steps 1000 --test-per-class 200   # Fashion-MNIST, 10 classes
    python benchmarks/bench_anomaly.py tables --steps 1000                          # wine and breast cancer
    python benchmarks/bench_anomaly.py summary --out benchmarks/anomaly.jsonl       # the tables of benchmarks/README.md

Members at their defaults as `aezoo train` builds them (the likelihood from the data's kind: Bernoulli
for the [0, 1] images, Gaussian for the standardised tables), trained for a fixed number of steps;
scored by their own kinds (``score_kinds``): ae, denoising_ae and vq_vae (no prior trained: by
reconstruction; images only: their code grids are convolutional) by recon, vae by the negative ELBO and by IS-NLL (K importance samples). Beside them,
pyod's AutoEncoder (its defaults: 10 epochs, layers 64-32, standardised inputs) and scikit-learn's
IsolationForest (200 trees) on the same inputs. Writes one JSON line per (data, class) to --out.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import aezoo  # noqa: E402
from aezoo.data.core import build  # noqa: E402
from aezoo.evaluate.anomaly import auroc_auprc, scores  # noqa: E402
from aezoo.models.base import CodeGridModel  # noqa: E402

MEMBERS = ("ae", "vae", "denoising_ae", "vq_vae")


def _members(data, steps: int, iw: int, seed: int) -> dict[str, np.ndarray]:
    out = {}
    kind = data.preprocessing["kind"]
    x, y = data.test.x, data.test.y
    for name in MEMBERS:
        if kind != "images" and issubclass(aezoo.registry.get(name), CodeGridModel):
            continue  # VQ members have convolutional code grids: images only
        # by name: what `aezoo train NAME` builds (the likelihood from the data's kind, input_shape from the data)
        model = aezoo.train(name, data, steps=steps, progress=False, seed=seed)
        for by in model.score_kinds:
            if by == "prior_nll" or (by == "recon" and name == "vae"):
                continue
            out[f"{name}:{by}"] = scores(model, x, y, by, iw_samples=iw).numpy()
    return out


def _baselines(x_train: np.ndarray, x_test: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    from sklearn.ensemble import IsolationForest

    out = {"isolation_forest": -IsolationForest(n_estimators=200, random_state=seed).fit(x_train).score_samples(x_test)}
    try:
        from pyod.models.auto_encoder import AutoEncoder

        # its loader drops the last partial batch, so a class smaller than a batch (wine) trains on smaller batches
        det = AutoEncoder(random_state=seed, verbose=0, batch_size=min(32, len(x_train) // 2))
        det.fit(x_train)
        out["pyod_autoencoder"] = det.decision_function(x_test)
    except ImportError as e:
        print(f"pyod not installed ({e}): skipped", file=sys.stderr)
    return out


def _one_class(name: str, x_tr, y_tr, x_te, y_te, c: int, steps: int, iw: int, seed: int, images: bool, log) -> dict:
    t0 = time.time()
    raw = {"x_train": x_tr[y_tr == c], "x_test": x_te, "y_test": y_te, "source": name, "images": images}
    if images:
        raw["scale"] = 255.0
    data = build(f"{name}-{c}", raw, seed=seed)
    s = _members(data, steps, iw, seed)
    flat = lambda t: t.reshape(len(t), -1).numpy()  # noqa: E731  the same inputs the members see
    s.update(_baselines(flat(data.train.x), flat(data.test.x), seed))
    anomalous = torch.from_numpy(data.test.y.numpy() != c)
    row = {"data": name, "normal_class": c, "n_train": len(data.train), "n_test": len(data.test), "steps": steps, "iw_samples": iw,
           "seconds": None}
    for k, v in s.items():
        row[f"auroc/{k}"], row[f"auprc/{k}"] = auroc_auprc(torch.from_numpy(np.asarray(v, np.float64)), anomalous)
    row["seconds"] = round(time.time() - t0, 1)
    log.write(json.dumps(row) + "\n")
    log.flush()
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items() if not k.startswith("auprc")}), flush=True)
    return row


def fmnist(args, log):
    from aezoo.data.readers import read_idx_pair

    root = Path("/usr/share/datasets/fashion-mnist")
    x_tr, y_tr = read_idx_pair(root / "train-images-idx3-ubyte.gz", root / "train-labels-idx1-ubyte.gz")
    x_te, y_te = read_idx_pair(root / "t10k-images-idx3-ubyte.gz", root / "t10k-labels-idx1-ubyte.gz")
    g = np.random.default_rng(0)  # a fixed, class-balanced test subset (affordable IS-NLL on 2 CPU cores)
    pick = np.concatenate([g.choice(np.nonzero(y_te == k)[0], args.test_per_class, replace=False) for k in range(10)])
    for c in args.classes or range(10):
        _one_class("fashion-mnist", x_tr, y_tr, x_te[pick], y_te[pick], c, args.steps, args.iw_samples, args.seed, True, log)


def tables(args, log):
    from sklearn.datasets import load_breast_cancer, load_wine

    for name, loader in (("wine", load_wine), ("breast_cancer", load_breast_cancer)):
        d = loader()
        x, y = d.data, d.target
        # a seeded, stratified 30% test split of all classes; training rows of the normal class only
        g = np.random.default_rng(args.seed)
        te = np.concatenate([g.choice(np.nonzero(y == k)[0], int(round(0.3 * (y == k).sum())), replace=False) for k in np.unique(y)])
        tr = np.setdiff1d(np.arange(len(y)), te)
        for c in np.unique(y):
            _one_class(name, x[tr], y[tr], x[te], y[te], int(c), args.steps, args.iw_samples, args.seed, False, log)


def summary(args, log=None):
    """Markdown: AUROC per normal class and the mean, one column per detector, from --out's JSON lines."""
    rows = [json.loads(line) for line in open(args.out)]
    for name in dict.fromkeys(r["data"] for r in rows):
        rs = [r for r in rows if r["data"] == name]
        keys = [k for k in rs[0] if k.startswith("auroc/")]
        print(f"\n{name} ({rs[0]['n_train']}-ish training rows per class, {rs[0]['n_test']} test rows, {rs[0]['steps']} steps, "
              f"K={rs[0]['iw_samples']}):\n")
        print("| normal class | " + " | ".join(k[6:] for k in keys) + " |")
        print("|---" * (len(keys) + 1) + "|")
        for r in rs:
            print(f"| {r['normal_class']} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
        print("| **mean** | " + " | ".join(f"**{np.mean([r[k] for r in rs]):.3f}**" for k in keys) + " |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("which", choices=["fmnist", "tables", "summary"])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--iw-samples", type=int, default=100)
    p.add_argument("--test-per-class", type=int, default=200)
    p.add_argument("--classes", type=int, nargs="*")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/anomaly.jsonl")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.which == "summary":
        return summary(args)
    with open(args.out, "a") as log:
        (fmnist if args.which == "fmnist" else tables)(args, log)


if __name__ == "__main__":
    main()
