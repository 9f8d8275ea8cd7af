"""Figure functions shared by the CLI and the report. Each registered figure is
``fn(model, data, run_dir, out_path) -> caption | None`` (None: does not apply to this model/data)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

FIGURES: dict[str, Callable] = {}


def figure(name: str, order: int = 50):
    def deco(fn):
        fn.order = order
        FIGURES[name] = fn
        return fn

    return deco


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def as_images(x: torch.Tensor) -> np.ndarray | None:
    """(N, C, H, W) or (N, H, W) in [0, 1] -> (N, H, W, C) uint8; None if not image-like."""
    x = x.detach().float().cpu()
    if x.dim() == 2:
        d = x.shape[1]
        side = int(math.isqrt(d))
        if side * side != d:
            return None
        x = x.view(-1, 1, side, side)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] not in (1, 3, 4):
        return None
    return (x.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def image_grid(images: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """(N, H, W, C) uint8 -> one (rows*(H+pad)+pad, cols*(W+pad)+pad, C) mosaic, row-major."""
    n, h, w, c = images.shape
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i in range(min(n, rows * cols)):
        r, k = divmod(i, cols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = images[i]
    return grid


def save_grid(x: torch.Tensor, path: str | Path, cols: int | None = None, scale: int = 2) -> Path:
    """Save a batch of images as a PNG grid (upscaled ``scale`` times with nearest neighbour)."""
    from PIL import Image

    imgs = as_images(x)
    if imgs is None:
        raise ValueError(f"cannot draw inputs of shape {tuple(x.shape[1:])} as images")
    n = imgs.shape[0]
    cols = cols or min(n, max(1, int(math.ceil(math.sqrt(n)))))
    rows = int(math.ceil(n / cols))
    grid = image_grid(imgs, rows, cols)
    if grid.shape[-1] == 1:
        grid = grid[..., 0]
    img = Image.fromarray(grid)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    img.save(path)
    return path


def _test_batch(data, n: int, device):
    split = data.test if data.test is not None else data.train
    x = split.x[:n].to(device)
    y = None if split.y is None else split.y[:n].to(device)
    return x, y


@figure("loss_curves", order=10)
def loss_curves(model, data, run_dir, out_path):
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return None
    recs = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    if not recs:
        return None
    terms = sorted({k.split("/", 1)[1] for r in recs for k in r if "/" in k})
    plt = _mpl()
    fig, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms), 2.8), squeeze=False)
    for ax, t in zip(axes[0], terms):
        for part, style in (("train", "-"), ("val", "--")):
            pts = [(r["epoch"], r[f"{part}/{t}"]) for r in recs if f"{part}/{t}" in r]
            if pts:
                ax.plot(*zip(*pts), style, marker="o", ms=3, label=part)
        ax.set_title(t)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return "Loss terms per epoch, training (solid) and validation (dashed)."


@figure("reconstructions", order=20)
@torch.no_grad()
def reconstructions(model, data, run_dir, out_path, n: int = 16):
    x, y = _test_batch(data, n, model.device)
    if as_images(x[:1]) is None:
        return None
    x_hat = model.reconstruct(x, y)
    save_grid(torch.cat([x, x_hat.view_as(x)]), out_path, cols=x.shape[0])
    return "Reconstructions: test inputs (top row) and their reconstructions (bottom row)."


@figure("samples", order=30)
@torch.no_grad()
def samples(model, data, run_dir, out_path, n: int = 64):
    if not model.generative or as_images(data.train.x[:1]) is None:
        return None
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            x = model.sample(n)
    except Exception:  # noqa: BLE001 - e.g. a prior that is not trained yet; the report says so
        return None
    save_grid(x, out_path, cols=8)
    return "Samples from the prior, decoded."
