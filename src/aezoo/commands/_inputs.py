"""Inputs for the commands that use a run's codes (search, compress): files named on the command
line, or items of a dataset split (``--data DATA --split test --limit N``), all through the run's
``prepare`` (issue 23: resized, converted and scaled as the run was trained, each with its source)."""
from __future__ import annotations

import argparse
import sys

from ..errors import DataError


def add_input_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("inputs", nargs="*", metavar="INPUT", help=f"{what}: image files, image folders, glob patterns, or .npy/.npz "
                   "files (every row); images are resized and converted to the run's size and channels")
    p.add_argument("--data", help="take the inputs from a dataset instead (name or path; 'run': the run's own dataset)")
    p.add_argument("--data-dir", help="folder holding the dataset's files")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="split of --data (default test)")
    p.add_argument("--limit", type=int, help="the first N inputs")


def read(args, run):
    """``Prepared`` inputs (x, sources, labels, label names) from the files or the dataset the arguments
    name; what was converted is said on stderr."""
    if args.data and args.inputs:
        raise DataError("give input files or --data, not both")
    if not args.data and not args.inputs:
        raise DataError("no inputs: name image/.npz files, or --data DATA [--split test] [--limit N]")
    if args.data:
        data = run.dataset(args.data, data_dir=args.data_dir)
        items = run.prepare(data, split=args.split, limit=args.limit)
    else:
        items = run.prepare(args.inputs, limit=args.limit)
    for note in items.notes:
        print(f"aezoo: {note}", file=sys.stderr)
    return items
