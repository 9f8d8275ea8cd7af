"""Commands that draw: interpolate, scatter, compare (the report command lives with the core ones)."""
from __future__ import annotations

from pathlib import Path

from ..cli import command
from ..errors import ConfigError, NotSupportedError
from ._common import add_data_args, load_run, open_run, run_data


def _png_out(out: str) -> Path:
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"--out must end in .png, got {out!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _interpolate_args(p):
    p.add_argument("run_dir")
    add_data_args(p, run=True)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--pairs", type=int, default=6, help="pairs of inputs, one row each")
    p.add_argument("--steps", type=int, default=10, help="decoded points along each path, endpoints included")
    p.add_argument("--mode", choices=["auto", "linear", "spherical"], default="auto",
                   help="auto: spherical for Gaussian latents, linear otherwise")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, help="FILE.png")


@command("interpolate", help="decode paths in latent space between pairs of inputs", args=_interpolate_args)
def interpolate_cmd(args):
    from ..viz.latent import draw_interpolation

    if args.pairs < 1 or args.steps < 2:
        raise ConfigError(f"need --pairs >= 1 and --steps >= 2, got {args.pairs} and {args.steps}")
    out = _png_out(args.out)
    run = open_run(args.run_dir, args.device)
    model, meta = run.model, run.meta
    data = run_data(args, run)
    model.eval()
    spherical = None if args.mode == "auto" else args.mode == "spherical"
    caption = draw_interpolation(model, data, out, pairs=args.pairs, steps=args.steps, split=args.split, spherical=spherical)
    if caption is None:
        raise NotSupportedError(f"cannot interpolate model {model.name!r} on {data.name!r}: it needs image inputs, "
                                "continuous codes, and labels for conditional models")
    print(f"wrote {out}")


def _scatter_args(p):
    p.add_argument("run_dir")
    add_data_args(p, run=True)
    p.add_argument("--method", choices=["auto", "pca", "tsne", "umap"], default="auto",
                   help="auto: the code itself when 2-D, else PCA")
    p.add_argument("-n", type=int, default=2000, help="test codes to draw")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, help="FILE.png")


@command("scatter", help="2-D scatter of test codes coloured by label (PCA, t-SNE or UMAP)", args=_scatter_args)
def scatter_cmd(args):
    from ..viz.latent import draw_latent_scatter

    out = _png_out(args.out)
    run = open_run(args.run_dir, args.device)
    model, meta = run.model, run.meta
    data = run_data(args, run)
    model.eval()
    if draw_latent_scatter(model, data, out, method=args.method, n=args.n) is None:
        raise NotSupportedError(f"model {model.name!r} has no continuous code of 2 or more dimensions to scatter")
    print(f"wrote {out}")


def _compare_args(p):
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", required=True, help="folder for compare.html and its figures")
    p.add_argument("--iw-samples", type=int, default=100, help="importance samples when a run has no eval.json")
    p.add_argument("--device", default="cpu")


@command("compare", help="one page with several runs' metrics and figures side by side", args=_compare_args)
def compare_cmd(args):
    from ..train.trainer import pick_device
    from ..viz.report import compare_runs

    print(f"wrote {compare_runs(args.run_dirs, args.out, iw_samples=args.iw_samples, device=pick_device(args.device))}")
