"""``aezoo rollout``: observe the start of sequences, roll a sequence model forward, draw or save it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..cli import command
from ..errors import ConfigError, DataError, NotSupportedError
from ._common import add_data_args, load_run, run_data


def _setup(p):
    p.add_argument("run_dir")
    add_data_args(p, run=True)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--observe", type=int, required=True, metavar="T0", help="frames observed before rolling out")
    p.add_argument("--predict", type=int, required=True, metavar="N", help="jumps to roll forward")
    p.add_argument("--jump", type=int, default=1, metavar="K", help="time steps per jump (<= the model's max_jump)")
    p.add_argument("--samples", type=int, default=3, metavar="S", help="sampled rollouts per sequence")
    p.add_argument("-n", type=int, default=4, help="sequences to roll out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, help="FILE.png (figure) or FILE.npy (rollouts, shape (S, n, N, *frame))")


@command("rollout", help="observe T0 frames of sequences and roll a sequence model forward", args=_setup)
def rollout_cmd(args):
    from ..viz.sequences import draw_rollouts

    model, meta = load_run(args.run_dir, args.device)
    from ..models.base import SequenceModel

    if not isinstance(model, SequenceModel):
        raise NotSupportedError(f"model {model.name!r} does not model sequences: it has no rollout")
    data = run_data(args, meta)
    part = data.split(args.split)
    if part is None:
        raise DataError(f"dataset {data.name!r} has no {args.split!r} split")
    if part.x.dim() < 3 or not 1 <= args.observe <= part.x.shape[1]:
        raise ConfigError(f"--observe must be in 1..T for sequences (N, T, ...), got {args.observe} for data of shape {tuple(part.x.shape)}")
    torch.manual_seed(args.seed)
    x = part.x[: args.n].to(model.device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".npy":
        with torch.no_grad():
            np.save(out, model.rollout(x[:, : args.observe], args.predict, args.jump, args.samples).cpu().numpy())
    elif out.suffix.lower() == ".png":
        draw_rollouts(model, x, out, args.observe, args.predict, args.jump, args.samples)
    else:
        raise ConfigError(f"--out must end in .png or .npy, got {args.out!r}")
    print(f"wrote {out}")
