"""Argument helpers shared by the subcommands."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ..errors import AezooError, DataError


def add_data_args(p: argparse.ArgumentParser, required: bool = False, default: str | None = None, run: bool = False) -> None:
    """The data flags. ``run``: a command using a trained run, which knows its image size and channels
    (issue 23), so --image-size and --channels are not offered."""
    p.add_argument("--data", required=required, default=default, help="dataset name (see `aezoo datasets`), 'auto', or a path: .npz/.npy, .csv, IDX file or folder, image folder")
    p.add_argument("--data-dir", help="folder holding the dataset's files (searched before $AEZOO_DATA and ~/.cache/aezoo)")
    p.add_argument("--binarize", choices=["none", "static", "dynamic"], default=None, help="binarization for Bernoulli decoders")
    p.add_argument("--limit", type=int, help="use a random subset of N training examples")
    p.add_argument("--label-column", help="label column (name or index) for CSV data")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE", help="option of a named dataset (e.g. n=2000)")
    p.add_argument("--normalize", choices=["standard", "minmax", "none"], help="per-feature scaling of vectors and tables, fitted on "
                   "the training split (default standard; a trained run's own scaling applies to new data); images keep one scale to [0, 1]")
    p.add_argument("--categorical", metavar="COL,...", help="CSV columns of text categories, one-hot encoded (columns named COL=value)")
    p.add_argument("--impute", choices=["mean", "median"], help="fill missing CSV values with the training split's per-column mean or median")
    p.add_argument("--test-fraction", type=float, help="when the data has no test split: the fraction carved out as one "
                   "(seeded, stratified by label; default 0.1)")
    if not run:
        p.add_argument("--image-size", type=int, metavar="N", help="image folders: resize the short side to N and crop the centre (N x N)")
        p.add_argument("--channels", type=int, choices=[1, 3], help="image folders: 1 (grey) or 3 (RGB); default 1 when every image is grey")
    p.add_argument("--strict", action="store_true", help="image folders: an unreadable file is an error (default: skipped and counted)")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                   help="leave uint8 images (.npy, image folder) on disk and read batches in DataLoader workers "
                   "(default: when they exceed the memory budget, $AEZOO_MEMORY_BUDGET or half the free memory)")


def data_options(args) -> dict:
    out = {}
    for kv in args.data_option or []:
        if "=" not in kv:
            raise DataError(f"--data-option expects key=value, got {kv!r}")
        k, v = kv.split("=", 1)
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


def load_data(args, default_binarize: str = "none"):
    from ..data import load

    label_column = args.label_column
    if label_column is not None and label_column.lstrip("-").isdigit():
        label_column = int(label_column)
    kwargs = dict(data_dir=args.data_dir, binarize=args.binarize or default_binarize, limit=args.limit, label_column=label_column)
    if getattr(args, "normalize", None):
        kwargs["normalize"] = args.normalize
    if getattr(args, "categorical", None):
        kwargs["categorical"] = [c.strip() for c in args.categorical.split(",") if c.strip()]
    if getattr(args, "impute", None):
        kwargs["impute"] = args.impute
    if getattr(args, "test_fraction", None) is not None:
        kwargs["test_fraction"] = args.test_fraction
    kwargs.update({k: v for k in ("image_size", "channels", "stream") if (v := getattr(args, k, None)) is not None})
    if getattr(args, "strict", False):
        kwargs["strict"] = True
    return load(args.data, **kwargs, **data_options(args))


def add_weights_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--raw", action="store_true", help="a run trained with --ema-decay: use its raw weights, not the EMA it serves")


def add_scaled_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scaled", action="store_true", help="vectors and tables: keep the run's scaled values, not the original units")


def open_run(run_dir: str, device: str = "auto", raw: bool = False):
    """The run folder as a ``Run`` (an unfinished one says so on stderr when its model loads)."""
    from ..runs import Run

    return Run(run_dir, device=device, raw=raw)


def load_run(run_dir: str, device: str = "auto", raw: bool = False):
    """(model, run metadata): the commands that need no more of the run."""
    run = open_run(run_dir, device, raw)
    return run.model, run.meta


def run_data(args, run):
    """The data named by --data through the run's own preprocessing (flags given on the command line
    win), or else the run's own dataset. ``run``: a ``Run``, or its config.json as a dict."""
    from ..runs import Run
    from ..runs.run import _MetaRun

    run = run if isinstance(run, Run) else _MetaRun(run)
    if not getattr(args, "data", None):
        return run.dataset()
    label_column = args.label_column
    if label_column is not None and label_column.lstrip("-").isdigit():
        label_column = int(label_column)
    pre = run.meta.get("data", {}).get("preprocessing", {})
    given = {"data_dir": args.data_dir, "binarize": args.binarize, "limit": args.limit if args.limit is not None else pre.get("limit"),
             "label_column": label_column, "impute": getattr(args, "impute", None), "test_fraction": getattr(args, "test_fraction", None),
             "normalize": getattr(args, "normalize", None), "strict": getattr(args, "strict", False) or None,
             "categorical": [c.strip() for c in args.categorical.split(",")] if getattr(args, "categorical", None) else None}
    return run.dataset(args.data, **given, **data_options(args))


def save_output(x: torch.Tensor, out: str, cols: int | None = None) -> None:
    """``.npy`` saves the raw array (N, *input_shape); an image suffix saves a grid."""
    from ..viz.figures import save_grid

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".npy":
        np.save(path, x.detach().cpu().numpy())
    elif path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        try:
            save_grid(x, path, cols=cols)
        except ValueError as e:
            raise AezooError(f"{e}; save as .npy instead") from None
    else:
        raise AezooError(f"--out must end in .png or .npy, got {out!r}")
    print(f"wrote {path}")
