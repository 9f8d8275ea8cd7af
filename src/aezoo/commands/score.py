"""``aezoo score``: one anomaly score per example of a split (issue 18)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..cli import command
from ..errors import ConfigError
from ._common import add_data_args, load_run, open_run, run_data


def _score_args(p):
    from ..evaluate.anomaly import KINDS

    p.add_argument("run_dir")
    add_data_args(p, run=True)
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"], help="all: every row (new data to score)")
    p.add_argument("--by", choices=KINDS, help="recon (reconstruction MSE), elbo (negative ELBO), nll_iw (importance-sampled "
                   "-log p(x)), prior_nll (VQ: the prior's NLL of the codes); default: the model's first (elbo for variational "
                   "members, prior_nll for VQ members with a prior, else recon)")
    p.add_argument("--iw-samples", type=int, default=100, help="importance samples K for --by nll_iw")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-report", action="store_true", help="do not add the scores to the run's report.html")
    p.add_argument("--out", required=True, help="FILE.csv: index (the example's row in its source), source (its file or row), label, class, score")


@command("score", help="anomaly score of every example of a split (higher: less like the training data)", args=_score_args)
def score_cmd(args):
    from ..run import save_scores, score
    from ..runs import atomic_write
    from ..viz.report import build_report

    if not args.out.lower().endswith(".csv"):
        raise ConfigError(f"--out must end in .csv, got {args.out!r}")
    run = open_run(args.run_dir, args.device)
    model, meta = run.model, run.meta
    data = run_data(args, run)
    s = score(model, data, args.split, args.by, iw_samples=args.iw_samples, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, s.csv().encode())
    v = s.values
    which = "every example" if args.split == "all" else f"{len(s)} {args.split} examples"
    print(f"wrote {out}: {which} ({len(s)}) of {data.name} scored by {s.kind} ({s.column}: "
          f"median {float(sorted(v)[len(v) // 2]):.4g}, max {float(v.max()):.4g})")
    if not args.no_report:
        save_scores(args.run_dir, s)
        print(f"report: {build_report(args.run_dir, model=model)}", file=sys.stderr)
