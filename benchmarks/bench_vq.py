"""VQ-VAE (K=512) and VQ-VAE-2 against a VAE of similar size on Fashion-MNIST, including the second
stage (the autoregressive code prior). Sized to finish in about 10 minutes on 2 CPU cores: a random
subset of the training set, a few epochs, small conv nets. The figures are for comparing the models
with each other at this budget, not for comparing with the papers.

    python benchmarks/bench_vq.py [--limit 6000] [--epochs 3] [--prior-epochs 4] [--out runs/bench_vq]

Each run folder gets its report.html (reconstructions, code usage, code maps, prior samples).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import aezoo
from aezoo.models.base import CodeGridModel
from aezoo.models.code_prior import save_prior
from aezoo.run import finish_run, fit_prior


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--limit", type=int, default=6000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--prior-epochs", type=int, default=4)
    p.add_argument("--out", default="runs/bench_vq")
    args = p.parse_args()
    torch.set_num_threads(2)
    data = aezoo.data.load("fashion-mnist", data_dir=args.data_dir, limit=args.limit)
    net = {"input_shape": data.input_shape, "arch": "conv", "channels": (16, 32)}
    runs = {
        "vae": dict(latent_dim=32, likelihood="bernoulli", **net),
        "vq_vae": dict(latent_dim=32, num_codes=512, **net),
        "vq_vae2": dict(latent_dim=32, num_codes=512, **net),
    }
    rows = []
    for name, cfg in runs.items():
        out = Path(args.out) / name
        if out.exists():
            import shutil

            shutil.rmtree(out)
        torch.manual_seed(0)
        model = aezoo.create(name, **cfg)
        n_params = sum(p.numel() for p in model.parameters())
        t0 = time.perf_counter()
        aezoo.train(model, data, out=out, epochs=args.epochs, batch_size=128, lr=1e-3, progress=False, report=False)
        t_train = time.perf_counter() - t0
        t_prior = None
        if isinstance(model, CodeGridModel):
            t0 = time.perf_counter()
            prior, _ = fit_prior(model, data, width=64, layers=2, heads=4, dropout=0.1, epochs=args.prior_epochs, batch_size=128, lr=1e-3, progress=False)
            t_prior = time.perf_counter() - t0
            save_prior(out, prior, {"seconds": round(t_prior, 2)})
        m = finish_run(out, model, data, iw_samples=0)
        rows.append({"model": name, "params": n_params, "train_s": round(t_train, 1), "prior_s": t_prior and round(t_prior, 1), **m})
        print(json.dumps(rows[-1]), flush=True)

    def get(r, *keys):
        for k in keys:
            if k in r:
                return f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k])
        return "-"

    print(f"\nFashion-MNIST, {len(data.train)} training images, {args.epochs} epochs; prior {args.prior_epochs} epochs; test n={len(data.test)}\n")
    print("| model | params | recon_mse | perplexity (top / bottom) | dead codes (top / bottom) | bits/input (code) | prior NLL bits/input | train s | prior s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        perp = get(r, "perplexity") if "perplexity" in r else f"{get(r, 'perplexity_top')} / {get(r, 'perplexity_bottom')}"
        dead = get(r, "dead_codes") if "dead_codes" in r else f"{get(r, 'dead_codes_top')} / {get(r, 'dead_codes_bottom')}"
        if r["model"] == "vae":
            perp = dead = "-"
        print(f"| `{r['model']}` | {r['params']} | {get(r, 'recon_mse')} | {perp} | {dead} | {get(r, 'bits_per_input')} | {get(r, 'prior_nll_bits')} | {r['train_s']} | {r['prior_s'] or '-'} |")


if __name__ == "__main__":
    main()
