"""Where a training step of the VAE-MLP (issue-2 benchmark) spends its time, per precision and compile mode.

The step is the trainer's: ``model.training_step`` under the trainer's autocast, ``zero_grad``,
``backward``, fused AdamW. Modes alternate in one process, ``--rounds`` times, each round timing
``--steps`` steps of every mode, so the machine's drift hits all modes alike; the figure is the
median over rounds of ms per step. ``--profile`` adds a torch.profiler table per mode (self CPU time
by operator). The fp32 and bf16 matmul peaks are measured in the same process, between rounds.

    python benchmarks/profile_step.py --rounds 5 --steps 50 --profile        # ~1 min quiet
    python benchmarks/profile_step.py --modes fp32 bf16 --batch 128 256      # per-image speed by batch size
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aezoo  # noqa: E402
from aezoo.train.trainer import TrainConfig, make_optimizers  # noqa: E402
from bench_vae import STEP_FLOPS  # noqa: E402
from matmul_peak import measure_peak  # noqa: E402

MODES = {"fp32": (False, False), "bf16": (True, False), "fp32+compile": (False, True), "bf16+compile": (True, True)}


def make_step(mode: str, x_all: torch.Tensor, batch: int, seed: int = 0):
    amp, compiled = MODES[mode]
    torch.manual_seed(seed)
    model = aezoo.create("vae", input_shape=(1, 28, 28), latent_dim=16, hidden=(512, 256), likelihood="bernoulli").train()
    (opt, _), = make_optimizers(model, TrainConfig(lr=1e-3)).values()
    fwd = torch.compile(model.training_step) if compiled else model.training_step
    state = {"i": 0}

    def step():
        i = state["i"] % (len(x_all) // batch)
        state["i"] += 1
        x = x_all[i * batch:(i + 1) * batch]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = fwd(x)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        return out.loss

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, nargs="*", default=[128], help="batch sizes (each mode at each)")
    p.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    p.add_argument("--profile", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import os

    x_all = aezoo.data.load("fashion-mnist", val_fraction=0).train.x[:16384]
    label = lambda m, b: m if len(args.batch) == 1 else f"{m} b{b}"  # noqa: E731
    steps = {label(m, b): make_step(m, x_all, b) for b in args.batch for m in args.modes}
    batch_of = {label(m, b): b for b in args.batch for m in args.modes}
    for m, s in steps.items():  # warm-up (compilation)
        t0 = time.perf_counter()
        for _ in range(3):
            s()
        print(f"{m}: warm-up {time.perf_counter() - t0:.1f} s", flush=True)
    times = {m: [] for m in steps}
    peaks = []
    for r in range(args.rounds):
        order = list(steps) if r % 2 == 0 else list(steps)[::-1]
        for m in order:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                steps[m]()
            times[m].append(1000 * (time.perf_counter() - t0) / args.steps)
        if r in (0, args.rounds - 1):
            peaks.append({dt: measure_peak(dtype=dt, repeats=3)["peak_gflops"] for dt in ("fp32", "bf16")})
        print(f"round {r + 1}: " + "  ".join(f"{m} {times[m][-1]:.2f} ms" for m in steps) + f"  load {os.getloadavg()[0]:.1f}", flush=True)
    res = {"batch": args.batch, "threads": torch.get_num_threads(), "peaks": peaks, "load": os.getloadavg()[0], "modes": {}}
    fp32_peak = max(pk["fp32"] for pk in peaks)
    bf16_peak = max(pk["bf16"] for pk in peaks)
    first = next(iter(steps))
    base = statistics.median(times[first]) / batch_of[first]  # ms per image
    for m in steps:
        ms = statistics.median(times[m])
        gf = batch_of[m] * STEP_FLOPS / (ms / 1000) / 1e9
        res["modes"][m] = {"batch": batch_of[m], "ms_per_step": round(ms, 3), "gflops": round(gf, 1), "vs_first_per_image": round(base * batch_of[m] / ms, 3)}
        print(f"{m:>14}: {ms:7.2f} ms/step (median of {args.rounds})  {gf:6.1f} GFLOP/s = {100 * gf / fp32_peak:4.1f}% of fp32 peak {fp32_peak}, "
              f"{100 * gf / bf16_peak:4.1f}% of bf16 peak {bf16_peak}  images/s vs {first} {base * batch_of[m] / ms:.2f}x", flush=True)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for m, s in steps.items():
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(20):
                    s()
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14)
            print(f"\n=== profile, {m}, 20 steps ===\n{table}", flush=True)
            res["modes"][m]["profile"] = table
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
