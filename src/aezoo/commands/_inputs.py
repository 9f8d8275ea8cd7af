"""Inputs for the commands that use a run's codes (search, compress): files named on the command
line, or items of a dataset split (``--data DATA --split test --limit N``)."""
from __future__ import annotations

import argparse

import torch

from ..errors import DataError


def add_input_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("inputs", nargs="*", metavar="INPUT", help=f"{what}: image files, image folders, or .npy/.npz files (every row)")
    p.add_argument("--data", help="take the inputs from a dataset instead (name or path; 'run': the run's own dataset)")
    p.add_argument("--data-dir", help="folder holding the dataset's files")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="split of --data (default test)")
    p.add_argument("--limit", type=int, help="the first N inputs")


def read(args, model, run_meta: dict | None) -> tuple[torch.Tensor, list[str], torch.Tensor | None]:
    """(inputs, names, labels or None) from the files or the dataset the arguments name."""
    from ..data.inputs import read_inputs

    if args.limit is not None and args.limit < 1:
        raise DataError(f"--limit must be >= 1, got {args.limit}")
    if args.data and args.inputs:
        raise DataError("give input files or --data, not both")
    if not args.data:
        if not args.inputs:
            raise DataError("no inputs: name image/.npz files, or --data DATA [--split test] [--limit N]")
        x, names = read_inputs(args.inputs, model.config.input_shape, args.limit)
        from ..data.scaling import of_run

        scaling = of_run(run_meta or {})
        if scaling is not None:  # rows of a vector run go through its own per-feature scaling (issue 18)
            x = scaling.apply(x.numpy(), ", ".join(args.inputs))
        return x, names, None
    from ..data.recorded import data_of_run
    from ..data.scaling import load_for_run

    if args.data == "run":
        if not run_meta:
            raise DataError("--data run: no run to take the dataset from")
        data = data_of_run(run_meta)
    else:
        data = load_for_run(args.data, run_meta or {}, data_dir=args.data_dir)  # the run's scaling, columns and labels
    part = data.split(args.split)
    if part is None:
        raise DataError(f"dataset {data.name!r} has no {args.split!r} split")
    n = len(part) if args.limit is None else min(args.limit, len(part))
    if tuple(part.x.shape[1:]) != tuple(model.config.input_shape):
        raise DataError(f"dataset {data.name!r} has inputs of shape {tuple(part.x.shape[1:])}; model {model.name!r} takes {tuple(model.config.input_shape)}")
    names = [f"{data.name}:{args.split}[{i}]" for i in range(n)]
    return part.x[:n], names, None if part.y is None else part.y[:n]
