"""VAE-MLP on Fashion-MNIST through aezoo's own trainer and evaluation (issue 2's benchmark).

Model: 784-512-256-z16 MLP encoder and its mirror decoder, ReLU, Bernoulli likelihood on [0, 1]
intensities; batch 128, Adam 1e-3; the 60,000 training images (no validation split, so the epoch
timing is training only) and the 10,000 test images. Reports per epoch the images/s the trainer logs
in metrics.jsonl and the GFLOP/s that makes, against this machine's fp32 matmul peak measured in the
same process; the test negative ELBO after ``--eval-at`` epochs; and ``nll_iw`` with K importance
samples over the whole test set, with its wall time.

FLOPs of a training step: a Linear(m, n) layer costs 2*m*n FLOPs per image forward and about twice
that backward (grad input + grad weight), so a step is ~3x the forward matmul FLOPs:
3 * 2 * (784*512 + 512*256 + 256*32 + 16*256 + 256*512 + 512*784) = 6.46 MFLOP per image.
The first layer needs no grad input, so this is a slight overcount; we keep the issue's figure.

    python benchmarks/bench_vae.py --epochs 3 --eval-at 3 --iw-samples 1000
    python benchmarks/bench_vae.py --epochs 10 --eval-at 3 10 --iw-samples 0
    python benchmarks/bench_vae.py --amp --no-compile --batch-size 256 --lr 2e-3 --epochs 5 --eval-at 5 --iw-samples 0
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aezoo  # noqa: E402
from aezoo.evaluate.likelihood import gaussian_latent_metrics  # noqa: E402
from matmul_peak import measure_peak  # noqa: E402

SIZES = [(784, 512), (512, 256), (256, 32), (16, 256), (256, 512), (512, 784)]
FWD_FLOPS = sum(2 * m * n for m, n in SIZES)  # per image
STEP_FLOPS = 3 * FWD_FLOPS  # ~6.46 MFLOP per image


def build(latent_dim: int = 16):
    data = aezoo.data.load("fashion-mnist", val_fraction=0)
    model = aezoo.create("vae", input_shape=data.input_shape, latent_dim=latent_dim, hidden=(512, 256), activation="relu", likelihood="bernoulli")
    return data, model


@torch.no_grad()
def test_elbo(model, data, seed: int = 0) -> dict:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        m = gaussian_latent_metrics(model.eval(), data.test.x, iw_samples=0)
    model.train()
    return {k: round(m[k], 3) for k in ("neg_elbo", "recon_nll", "kl")} | {"active_units": m["active_units"]}


@torch.no_grad()
def time_nll_iw(model, data, k: int, limit: int | None = None, seed: int = 0) -> dict:
    x = data.test.x if limit is None else data.test.x[:limit]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        t0, c0 = time.perf_counter(), time.process_time()
        m = gaussian_latent_metrics(model.eval(), x, iw_samples=k)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    # CPU time (all threads) next to wall time: other jobs share this machine's cores
    return {"iw_samples": k, "n": int(x.shape[0]), "nll_iw": round(m["nll_iw"], 3), "neg_elbo": round(m["neg_elbo"], 3), "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "load_avg": round(os.getloadavg()[0], 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--eval-at", type=int, nargs="*", default=[3, 10], help="epochs after which to report the test negative ELBO")
    p.add_argument("--iw-samples", type=int, default=1000, help="K for nll_iw at the end (0: skip)")
    p.add_argument("--iw-limit", type=int, default=None, help="only the first N test images for nll_iw")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True, help="torch.compile the training step")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False, help="bf16 autocast (the trainer's --amp)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    peak = measure_peak()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fp32 matmul peak {peak['peak_gflops']} GFLOP/s {peak['per_size']}", flush=True)
    print(f"training step: {STEP_FLOPS / 1e6:.2f} MFLOP per image", flush=True)
    data, model = build()
    res: dict = {"peak": peak, "compile": args.compile, "amp": args.amp, "batch_size": args.batch_size, "lr": args.lr, "epochs": [], "test": {}}
    marks = sorted({e for e in args.eval_at if 1 <= e <= args.epochs} | {args.epochs})
    opts = dict(batch_size=args.batch_size, lr=args.lr, seed=args.seed, device="cpu", compile=args.compile, amp=args.amp, min_steps=0, progress=False, report=False)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        done = 0
        for mark in marks:
            aezoo.train(model, data, out=run, resume=done > 0, epochs=mark, **opts)
            done = mark
            if mark in args.eval_at:
                res["test"][mark] = test_elbo(model, data, args.seed)
                print(f"after {mark} epochs: test {res['test'][mark]}", flush=True)
        records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    for r in records:
        ips = r["images_per_s"]
        gf = ips * STEP_FLOPS / 1e9
        res["epochs"].append({"epoch": r["epoch"], "seconds": r["seconds"], "images_per_s": ips, "gflops": round(gf, 1), "loss": round(r["train/loss"], 2)})
        print(f"epoch {r['epoch']:>2}: {r['seconds']:7.2f} s  {ips:9.0f} images/s  {gf:6.1f} GFLOP/s ({100 * gf / peak['peak_gflops']:4.1f}% of peak)  train loss {r['train/loss']:.2f}", flush=True)
    # epochs that start a train() call include torch.compile's warm-up; the median of the rest is the steady state
    warm = [e["images_per_s"] for e in res["epochs"] if e["epoch"] - 1 not in [0, *marks]] or [e["images_per_s"] for e in res["epochs"]]
    med = statistics.median(warm)
    best = max(e["images_per_s"] for e in res["epochs"])
    res["steady_images_per_s"] = med
    res["steady_gflops"] = round(med * STEP_FLOPS / 1e9, 1)
    res["best_gflops"] = round(best * STEP_FLOPS / 1e9, 1)
    print(f"steady state (median of warm epochs): {med:.0f} images/s = {res['steady_gflops']} GFLOP/s = {100 * res['steady_gflops'] / peak['peak_gflops']:.1f}% of peak; best epoch {res['best_gflops']} GFLOP/s", flush=True)
    if args.iw_samples:
        res["nll_iw"] = time_nll_iw(model, data, args.iw_samples, args.iw_limit, args.seed)
        print(f"nll_iw: {res['nll_iw']}", flush=True)
    res["peak_after"] = measure_peak()
    top = max(peak["peak_gflops"], res["peak_after"]["peak_gflops"])
    res["steady_pct_of_peak"] = round(100 * res["steady_gflops"] / top, 1)
    print(f"fp32 matmul peak after the run: {res['peak_after']['peak_gflops']} GFLOP/s; steady state = {res['steady_pct_of_peak']}% of the higher peak", flush=True)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
