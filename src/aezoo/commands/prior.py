"""``aezoo train-prior RUN_DIR``: the second training stage of models with discrete codes (VQ-VAE,
VQ-VAE-2). Encodes the run's data to code grids, fits an autoregressive prior over them with the
ordinary training engine, saves it beside the model (prior.safetensors, prior.json), then
re-evaluates the run and rebuilds its report so that prior samples and ``prior_nll_bits`` appear."""
from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path

import torch

from ..cli import command
from ._common import add_data_args, load_run, run_data

# 10 epochs of 247 images are 20 steps, after which the prior's samples are noise (issue 26); at
# 1,500 steps a 4-layer prior over 7x7 codes of Fashion-MNIST is within 2% of its 10-epoch NLL
PRIOR_MIN_STEPS = 1500


def _args(p):
    p.add_argument("run_dir")
    add_data_args(p, run=True)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps", type=int, help="train exactly this many steps (overrides --epochs and --min-steps)")
    p.add_argument("--min-steps", type=int, default=PRIOR_MIN_STEPS,
                   help=f"with --epochs, train at least this many steps ({PRIOR_MIN_STEPS}): a small dataset's epochs are a few steps")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--width", type=int, default=128, help="transformer width")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-report", action="store_true", help="skip re-evaluating the run and rebuilding its report")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


@command("train-prior", help="fit the autoregressive prior over a VQ run's code grids (second stage)", args=_args)
def train_prior_cmd(args):
    run = Path(args.run_dir)
    with run_lock(run):
        _train_prior(args, run)


@contextlib.contextmanager
def run_lock(run: Path):
    """The run folder's lock (the one ``aezoo train`` holds) for the whole of train-prior (issue 22):
    beside a ``train --resume`` it would read old weights and leave a stale prior, eval.json and report."""
    from ..errors import TrainingError
    from ..train.rundir import LOCK, locked

    if not run.is_dir():  # load_run says what is wrong; taking the lock would create the folder
        yield
        return
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(locked(run))
        except TrainingError:
            holder = (run / LOCK).read_text(errors="replace").strip() or "?"
            raise TrainingError(f"{run} is in use by another aezoo process (pid {holder}): train-prior would fit the prior to weights "
                                "that are changing and leave a stale eval.json and report; run it once that process has ended") from None
        yield


def _train_prior(args, run: Path):
    from ..config import to_dict
    from ..models.code_prior import PRIOR_CONFIG, save_prior
    from ..run import finish_run, fit_prior

    model, meta = load_run(args.run_dir, args.device)
    data = run_data(args, meta)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    opts = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=args.device, seed=args.seed, progress=not args.quiet)
    n = len(data.train.x)
    by_epochs = math.ceil(n / args.batch_size) * args.epochs
    if args.steps is not None:
        opts.update(steps=args.steps)
    elif args.min_steps > by_epochs:
        opts.update(min_steps=args.min_steps)
        print(f"aezoo: {args.epochs} epochs of {n} training inputs are {by_epochs} steps; the prior trains {args.min_steps} "
              "(--min-steps; --steps N sets the count)", file=sys.stderr)
    prior, codes = fit_prior(model, data, width=args.width, layers=args.layers, heads=args.heads, dropout=args.dropout, **opts)
    seconds = time.perf_counter() - t0
    learned = _what_it_learned(model, data)
    save_prior(run, prior, {"data": codes.describe(), "train": opts, "seconds": round(seconds, 2), **learned})
    print(f"aezoo: prior {to_dict(prior.config)['num_codes']} trained in {seconds:.1f}s; wrote {run / PRIOR_CONFIG}", file=sys.stderr)
    saved = learned["prior_bits_saved"]
    print(f"aezoo: the prior codes {learned['split']} inputs in {learned['prior_nll_bits']:.1f} bits each, against "
          f"{learned['uniform_bits']:.1f} for codes drawn uniformly ({saved:.0%} saved)"
          + ("; it has learned little: train it longer (--steps N)" if saved < 0.05 else ""), file=sys.stderr)
    if not args.no_report:
        m = finish_run(run, model, data, iw_samples=0)
        print("test: " + ", ".join(f"{k}={v:.4g}" for k, v in m.items() if isinstance(v, float)))


def _what_it_learned(model, data) -> dict:
    """The prior's NLL of held-out codes against the uniform code's bits: a prior that saves nothing
    samples noise, and the user is told so."""
    from ..models.code_prior import code_metrics

    name, part = next((s, p) for s in ("val", "test", "train") if (p := data.split(s)) is not None)
    m = code_metrics(model, part.x[:2000].to(model.device))
    nll, uniform = m["prior_nll_bits"], m["bits_per_input"]
    return {"split": name, "prior_nll_bits": nll, "uniform_bits": uniform, "prior_bits_saved": 1 - nll / uniform}
