"""``aezoo train-prior RUN_DIR``: the second training stage of models with discrete codes (VQ-VAE,
VQ-VAE-2). Encodes the run's data to code grids, fits an autoregressive prior over them with the
ordinary training engine, saves it beside the model (prior.safetensors, prior.json), then
re-evaluates the run and rebuilds its report so that prior samples and ``prior_nll_bits`` appear."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from ..cli import command
from ..errors import NotSupportedError
from ._common import add_data_args, load_run, run_data


def _args(p):
    p.add_argument("run_dir")
    add_data_args(p)
    p.add_argument("--epochs", type=int, default=10)
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


@torch.no_grad()
def encode_codes(model, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Inputs (N, ...) -> their code grids flattened and concatenated, coarsest first: (N, L) int64."""
    out = []
    for i in range(0, x.shape[0], batch_size):
        grids = model.code_grids(x[i : i + batch_size].to(model.device))
        out.append(torch.cat([g.flatten(1) for g in grids], 1).cpu())
    return torch.cat(out)


def fit_prior(model, data, *, width=128, layers=4, heads=4, dropout=0.1, **train_options):
    """Fit a ``CodePrior`` over ``model``'s code grids of ``data`` and attach it to ``model``.
    ``train_options`` go to ``aezoo.train`` (epochs, batch_size, lr, device, seed, progress)."""
    from ..config import build
    from ..data.core import Dataset, Split
    from ..nn.priors import CodePrior, CodePriorConfig, attach_prior
    from ..train import fit

    if not hasattr(model, "code_grids"):
        raise NotSupportedError(f"model {model.name!r} has no discrete codes to fit a prior to")
    model.eval()
    splits = {name: Split(encode_codes(model, part.x)) for name in ("train", "val", "test") if (part := data.split(name)) is not None}
    codes = Dataset(name=f"{data.name}-codes", source=f"codes of {data.name}", **splits)
    grids = [g[0] for g in model.code_grids(data.train.x[:1].to(model.device))]
    cfg = build(CodePriorConfig, {
        "heights": [g.shape[0] for g in grids],
        "widths": [g.shape[1] for g in grids],
        "num_codes": [q.num_codes for q in model.quantizers],
        "width": width, "layers": layers, "heads": heads, "dropout": dropout,
    })
    prior = CodePrior(cfg)
    fit(prior, codes, out=None, **train_options)
    prior.eval()
    attach_prior(model, prior)
    return prior, codes


@command("train-prior", help="fit the autoregressive prior over a VQ run's code grids (second stage)", args=_args)
def train_prior_cmd(args):
    from ..config import to_dict
    from ..nn.priors import PRIOR_CONFIG, save_prior
    from ..run import finish_run

    run = Path(args.run_dir)
    model, meta = load_run(args.run_dir, args.device)
    data = run_data(args, meta)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    opts = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=args.device, seed=args.seed, progress=not args.quiet)
    prior, codes = fit_prior(model, data, width=args.width, layers=args.layers, heads=args.heads, dropout=args.dropout, **opts)
    seconds = time.perf_counter() - t0
    save_prior(run, prior, {"data": codes.describe(), "train": opts, "seconds": round(seconds, 2)})
    print(f"aezoo: prior {to_dict(prior.config)['num_codes']} trained in {seconds:.1f}s; wrote {run / PRIOR_CONFIG}", file=sys.stderr)
    if not args.no_report:
        m = finish_run(run, model, data, iw_samples=0)
        print("test: " + ", ".join(f"{k}={v:.4g}" for k, v in m.items() if isinstance(v, float)))
