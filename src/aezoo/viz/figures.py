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
    if x.dim() != 4 or x.shape[1] not in (1, 3, 4) or min(x.shape[2:]) < 2:
        return None  # e.g. (N, T, 1) series would draw as one-pixel strips
    return (x.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def image_grid(images: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """(N, H, W, C) uint8 -> one (rows*(H+pad)+pad, cols*(W+pad)+pad, C) mosaic, row-major."""
    n, h, w, c = images.shape
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i in range(min(n, rows * cols)):
        r, k = divmod(i, cols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = images[i]
    return grid


def save_grid(x: torch.Tensor, path: str | Path, cols: int | None = None, scale: int | None = None) -> Path:
    """Save a batch of images as a PNG grid, upscaled ``scale`` times with nearest neighbour
    (default: twice for 28x28 images, about 56 px per image for smaller ones)."""
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
    scale = scale or max(2, round(56 / imgs.shape[1]))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    img.save(path)
    return path


def labelled_grid_size(rows: int, cols: int, h: int, w: int, title: bool = True, row_labels: bool = True) -> tuple[int, int]:
    """(width, height) in pixels of the PNG that ``save_labelled_grid`` writes for this layout."""
    scale = _cell_scale(h)
    width = (cols * (w + 1) + 1) * scale + (_LEFT if row_labels else _RIGHT) + _RIGHT
    height = (rows * (h + 1) + 1) * scale + _BOTTOM + (_TOP if title else _RIGHT)
    return width, height


_LEFT, _RIGHT, _TOP, _BOTTOM, _DPI = 110, 20, 40, 50, 100  # margins for labels, pixels


def _cell_scale(h: int) -> int:
    return max(1, round(48 / h))  # every cell about 48 px tall, whatever the image size


def save_labelled_grid(images: np.ndarray, rows: int, cols: int, path: str | Path, *, row_labels=None, col_labels=None,
                       title: str | None = None, xlabel: str | None = None, ylabel: str | None = None) -> Path:
    """(rows*cols, H, W, C) uint8 -> a PNG mosaic with tick labels per row and column, a title and
    axis labels, at a size fixed by the layout (``labelled_grid_size``)."""
    plt = _mpl()
    n, h, w, c = images.shape
    grid = image_grid(images, rows, cols)
    labelled = row_labels is not None or ylabel is not None
    width, height = labelled_grid_size(rows, cols, h, w, title is not None, labelled)
    fig = plt.figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    top, left = (_TOP if title is not None else _RIGHT), (_LEFT if labelled else _RIGHT)
    ax = fig.add_axes((left / width, _BOTTOM / height, 1 - (left + _RIGHT) / width, 1 - (_BOTTOM + top) / height))
    ax.imshow(grid[..., 0] if c == 1 else grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    centre = lambda k, size: 1 + k * (size + 1) + (size - 1) / 2  # noqa: E731
    ax.set_xticks([centre(k, w) for k in range(cols)] if col_labels is not None else [])
    ax.set_yticks([centre(k, h) for k in range(rows)] if row_labels is not None else [])
    if col_labels is not None:
        ax.set_xticklabels(col_labels, fontsize=8, rotation=0 if max(map(len, map(str, col_labels))) <= 6 else 30)
    if row_labels is not None:
        ax.set_yticklabels(row_labels, fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=9)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=9)
    if title is not None:
        ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return Path(path)


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
    if as_images(x[:1]) is None or (model.needs_labels and y is None):
        return None
    x_hat = model.reconstruct(x, y)
    save_grid(torch.cat([x, x_hat.view_as(x)]), out_path, cols=x.shape[0])
    return "Reconstructions: test inputs (top row) and their reconstructions (bottom row)."


@figure("samples", order=30)
@torch.no_grad()
def samples(model, data, run_dir, out_path, n: int = 64):
    if not model.generative or model.needs_labels or as_images(data.train.x[:1]) is None:
        return None  # conditional models get a class x sample grid (viz/latent.py)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            x = model.sample(n)
    except Exception:  # noqa: BLE001 - e.g. a prior that is not trained yet; the report says so
        return None
    save_grid(x, out_path, cols=8)
    return "Samples from the prior, decoded."
