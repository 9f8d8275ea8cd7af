"""TD-VAE rollouts (issues 6 and 24): rollout_mse 1, 5 and 10 steps ahead after observing 10 frames,
on moving-digits and the oscillator, against three baselines: repeating the last observed frame,
the mean frame, and linear extrapolation of the last two frames (and the best of the three per step).

    python benchmarks/bench_td_vae.py [--steps 3000] [--threads 2] [--out /tmp/aezoo-bench-td_vae]

Each run folder gets report.html with the rollout figure."""
from __future__ import annotations

import argparse
import time

import torch

import aezoo
from aezoo.data import load

SETUPS = {
    "moving-digits": ({}, {}),
    "oscillator": ({}, {"likelihood": "gaussian", "sigma": 0.05, "hidden": (64,)}),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3000)  # td_vae's declared min_steps
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="/tmp/aezoo-bench-td_vae")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    for name, (data_opts, model_opts) in SETUPS.items():
        torch.manual_seed(0)
        ds = load(name, **data_opts)
        model = aezoo.create("td_vae", input_shape=ds.input_shape, **model_opts)
        t0 = time.perf_counter()
        aezoo.train(model, ds, out=f"{a.out}/{name}", steps=a.steps, epochs=None, batch_size=64, lr=2e-3,
                    progress=False, eval_iw_samples=0)
        seconds = time.perf_counter() - t0
        with torch.random.fork_rng():
            torch.manual_seed(0)
            e = model.rollout_errors(ds.test.x, observe=10, predict=10)
        e["best"] = torch.stack([e["last_frame"], e["mean_frame"], e["linear"]]).min(0).values

        def cell(k):  # rollout / last frame / mean frame / linear / best baseline at step k (None: mean of 1-10)
            return " / ".join(f"{float(v.mean() if k is None else v[k - 1]):.4f}" for v in e.values())

        rows.append(f"| {name} | {tuple(ds.input_shape)} | {a.steps} | {seconds:.0f} | " + " | ".join(cell(k) for k in (1, 5, 10, None)) + " |")
    print("cells: rollout / last frame / mean frame / linear extrapolation / best baseline per step")
    print("| data | input (T, frame) | steps | train s (incl. report) | 1 step | 5 steps | 10 steps | mean 1-10 |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
