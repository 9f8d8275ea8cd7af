"""Images per second of the conv family members' training steps on a CPU: VAE and VQ-VAE at 28x28
(1 channel) and 64x64 (3 channels), in fp32 and bf16 (the trainer's ``--amp``), contiguous and
channels-last, eager and ``torch.compile``d (issue 16).

The step is the trainer's (``training_step`` under autocast, ``zero_grad``, ``backward``, fused
AdamW), on random images in [0, 1] (speed does not depend on the pixels; the VQ-VAE's code
restarts aside). For each model, its configurations alternate in one process over ``--rounds``
rounds of ``--steps`` steps, so the machine's drift hits all alike; the figure is the median over
rounds. Models are built as ``aezoo.create`` builds them (vae with ``arch="conv"``, vq_vae at its
defaults), so this runs on whatever conv nets ``nn/nets.py`` has.

    python benchmarks/bench_conv.py --rounds 3 --steps 10      # ~6 min quiet, 2 threads
    python benchmarks/bench_conv.py --models vae28 --no-compile  # a quick look
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from pathlib import Path

import torch

import aezoo
from aezoo.train.trainer import TrainConfig, make_optimizers

MODELS = {
    "vae28": ("vae", (1, 28, 28), {"arch": "conv", "latent_dim": 16}),
    "vq_vae28": ("vq_vae", (1, 28, 28), {}),
    "vae64": ("vae", (3, 64, 64), {"arch": "conv", "latent_dim": 32, "channels": (32, 64, 128), "likelihood": "gaussian"}),
    "vq_vae64": ("vq_vae", (3, 64, 64), {}),
}


def make_step(name: str, batch: int, amp: bool, channels_last: bool, compiled: bool, seed: int = 0):
    key, shape, opts = MODELS[name]
    torch.manual_seed(seed)
    model = aezoo.create(key, input_shape=shape, **opts).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opts_all = [o for o, _ in make_optimizers(model, TrainConfig(lr=1e-3)).values()]
    fwd = torch.compile(model.training_step) if compiled else model.training_step
    xs = torch.rand(4, batch, *shape).contiguous(memory_format=torch.contiguous_format)
    xs = [x.contiguous(memory_format=fmt) for x in xs]
    state = {"i": 0}

    def step():
        x = xs[state["i"] % len(xs)]
        state["i"] += 1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = fwd(x)
        for o in opts_all:
            o.zero_grad(set_to_none=True)
        out.loss.backward()
        for o in opts_all:
            o.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True, help="include the compiled configurations")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}; load {os.getloadavg()[0]:.1f}", flush=True)
    res = {"batch": args.batch, "threads": torch.get_num_threads(), "models": {}}
    for name in args.models:
        confs = [(amp, cl, comp) for comp, amp, cl in itertools.product((False, True) if args.compile else (False,), (False, True), (False, True))]
        label = lambda c: f"{'bf16' if c[0] else 'fp32'}{' channels-last' if c[1] else ''}{' compiled' if c[2] else ''}"  # noqa: E731
        steps, warm = {}, {}
        torch._dynamo.reset()  # each model's compiled configurations start fresh, under dynamo's recompile limit
        for c in confs:
            steps[c] = make_step(name, args.batch, *c)
            t0 = time.perf_counter()
            steps[c]()
            steps[c]()
            warm[c] = time.perf_counter() - t0
        times = {c: [] for c in confs}
        for r in range(args.rounds):
            for c in (confs if r % 2 == 0 else confs[::-1]):
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    steps[c]()
                times[c].append((time.perf_counter() - t0) / args.steps)
        base = statistics.median(times[confs[0]])
        rows = {}
        for c in confs:
            s = statistics.median(times[c])
            rows[label(c)] = {"images_per_s": round(args.batch / s, 1), "vs_fp32_eager": round(base / s, 2), "first_two_steps_s": round(warm[c], 1)}
            print(f"{name:>9} {label(c):>28}: {args.batch / s:8.1f} images/s  ({base / s:.2f}x fp32 eager; first two steps {warm[c]:.1f} s)", flush=True)
        res["models"][name] = rows
        print(f"{name}: load {os.getloadavg()[0]:.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
