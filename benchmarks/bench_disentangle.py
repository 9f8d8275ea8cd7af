"""VAE vs beta-VAE (beta = 4) vs capacity-controlled beta-VAE on a dSprites subset: MIG, beta-VAE score,
FactorVAE score and negative ELBO on the test split, plus training time.

    python benchmarks/bench_disentangle.py                 # the README table (~10 min on 2 idle CPU cores)
    python benchmarks/bench_disentangle.py --steps 200     # a quick look

The papers train for 10^5+ steps on all 737,280 images; this is a CPU-sized subset and run, so the
absolute scores are far below theirs. What it shows is the direction of the trade-off.
"""
from __future__ import annotations

import argparse
import time

import torch

import aezoo
from aezoo.data import load
from aezoo.evaluate.disentangle import disentanglement
from aezoo.evaluate.likelihood import gaussian_latent_metrics
from aezoo.registry import create


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000, help="dSprites training subset size")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--latent-dim", type=int, default=10)
    p.add_argument("--votes", type=int, default=200, help="votes that train each score's classifier")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    data = load("dsprites", n=args.n, seed=args.seed)
    arch = dict(input_shape=data.input_shape, latent_dim=args.latent_dim, hidden=(256, 128))
    runs = [
        ("vae", "vae", {}),
        ("beta_vae beta=4", "beta_vae", {"beta": 4.0}),
        ("beta_vae c_max=25 gamma=1000", "beta_vae", {"c_max": 25.0, "gamma": 1000.0}),
    ]
    test = data.test
    rows = []
    for label, name, cfg in runs:
        torch.manual_seed(args.seed)
        model = create(name, **arch, **cfg)
        t0 = time.perf_counter()
        aezoo.train(model, data, steps=args.steps, epochs=None, batch_size=args.batch_size, lr=1e-3, seed=args.seed, progress=False, report=False)
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            lik = gaussian_latent_metrics(model, test.x, None, iw_samples=0)
            dis = disentanglement(model, data, "test", test.x, None, disentangle_samples=args.votes)
        rows.append((label, lik["neg_elbo"], lik["kl"], lik["active_units"], dis["mig"], dis["beta_vae_score"], dis["factor_vae_score"], seconds))
        print(f"done {label}: {time.perf_counter() - t0:.0f} s", flush=True)

    print(f"\ndsprites n={args.n} (test {len(test)}), {args.steps} steps x batch {args.batch_size}, latent {args.latent_dim}, MLP 256-128, seed {args.seed}\n")
    print("| model | -ELBO (nats) | KL | active units | MIG | beta-VAE score | FactorVAE score | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]} | {r[4]:.3f} | {r[5]:.3f} | {r[6]:.3f} | {r[7]:.0f} |")


if __name__ == "__main__":
    main()
