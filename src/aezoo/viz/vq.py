"""Figures for models with discrete code grids (a ``CodeGridModel``):
code usage, code maps of a few inputs. Prior samples come from the generic ``samples`` figure once
``aezoo train-prior`` has attached a prior."""
from __future__ import annotations

import torch

from ..models.base import CodeGridModel
from .figures import _mpl, _test_batch, as_images, figure


@figure("code_usage", order=40)
@torch.no_grad()
def code_usage(model, data, run_dir, out_path, n: int = 2000):
    if not isinstance(model, CodeGridModel):
        return None
    x, _ = _test_batch(data, n, model.device)
    grids = model.code_grids(x)
    plt = _mpl()
    fig, axes = plt.subplots(1, len(grids), figsize=(4.5 * len(grids), 2.8), squeeze=False)
    for ax, name, q, c in zip(axes[0], model.grid_names, model.quantizers, grids):
        counts = torch.bincount(c.flatten(), minlength=q.num_codes).cpu()
        order = counts.sort(descending=True).values.numpy()
        ax.bar(range(q.num_codes), order, width=1.0, color="tab:blue")
        dead = int((counts == 0).sum())
        ax.set_title(f"{name}: {c.shape[1]}x{c.shape[2]} grid, {dead}/{q.num_codes} codes unused", fontsize=9)
        ax.set_xlabel("code (sorted by use)")
        ax.set_ylabel("assignments")
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return f"Code usage on {x.shape[0]} test inputs, codes sorted by frequency: a long flat tail of zeros is a dead codebook."


@figure("code_maps", order=41)
@torch.no_grad()
def code_maps(model, data, run_dir, out_path, n: int = 6):
    if not isinstance(model, CodeGridModel):
        return None
    x, _ = _test_batch(data, n, model.device)
    imgs = as_images(x)
    grids = model.code_grids(x)
    plt = _mpl()
    rows = 1 + len(grids) if imgs is not None else len(grids)
    fig, axes = plt.subplots(rows, x.shape[0], figsize=(1.4 * x.shape[0], 1.4 * rows), squeeze=False)
    r = 0
    if imgs is not None:
        for k in range(x.shape[0]):
            axes[0, k].imshow(imgs[k].squeeze(-1) if imgs.shape[-1] == 1 else imgs[k], cmap="gray")
        r = 1
    for name, q, c in zip(model.grid_names, model.quantizers, grids):
        for k in range(x.shape[0]):
            axes[r, k].imshow(c[k].cpu().numpy(), cmap="tab20", vmin=0, vmax=q.num_codes - 1, interpolation="nearest")
        axes[r, 0].set_ylabel(name, fontsize=8)
        r += 1
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return "Test inputs (top) and their code grids, one colour per code index (colours repeat every 20 codes)."
