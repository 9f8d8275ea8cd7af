"""Figures for the deterministic family, chosen by declared capability (``models/base.py``):

- ``decoder_filters``: a ``UnitFilterModel`` draws what each code unit writes into the output, as in
  Makhzani & Frey 2013's figures of filters for several k;
- ``denoising``: a ``DenoisingModel`` shows noisy / denoised / clean triplets under its training
  ``corruption``, as in Vincent et al. 2008;
- ``dae_vector_field``: a ``DenoisingModel`` on 2-D inputs draws, on a grid over the data, an arrow
  from each x to its reconstruction r(x). Alain & Bengio 2014 ("What regularized auto-encoders learn
  from the data-generating distribution", JMLR, arXiv:1211.4246) show r(x) - x ~ sigma^2 d log p(x)/dx
  for small Gaussian corruption: the arrows point back to the data, as in Vincent et al. 2010's figure
  of the manifold. Issue 24.
"""
from __future__ import annotations

import numpy as np
import torch

from ..models.base import DenoisingModel, UnitFilterModel
from .figures import _mpl, _test_batch, as_images, figure, save_grid

FIELD_GRID = 21  # arrows per side of the vector-field grid


def normalise_each(w: torch.Tensor) -> torch.Tensor:
    """Min-max scale every filter (first axis) to [0, 1] independently, so weak units stay visible."""
    flat = w.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(w)


@figure("decoder_filters", order=60)
@torch.no_grad()
def decoder_filters(model, data, run_dir, out_path, n: int = 100):
    if not isinstance(model, UnitFilterModel):
        return None
    w = model.decoder_filters()[:n].float().cpu()
    if as_images(w[:1]) is None:
        return None
    save_grid(normalise_each(w), out_path, cols=10)
    return f"Decoder filters: the output written by each of the first {w.shape[0]} code units (each scaled to its own range)."


@figure("denoising", order=65)
@torch.no_grad()
def denoising(model, data, run_dir, out_path, n: int = 10):
    if not isinstance(model, DenoisingModel):
        return None
    corruption = model.corruption
    x, y = _test_batch(data, n, model.device)
    if as_images(x[:1]) is None:
        return None
    with torch.random.fork_rng():
        torch.manual_seed(0)
        x_tilde = corruption(x)
    x_hat = model.reconstruct(x_tilde, y).view_as(x)
    save_grid(torch.cat([x_tilde, x_hat, x]), out_path, cols=x.shape[0])
    return f"Denoising ({corruption}): corrupted test inputs (top), their reconstructions (middle), the clean inputs (bottom)."


@torch.no_grad()
def vector_field(model, x: torch.Tensor, grid: int = FIELD_GRID, margin: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """Points (grid * grid, 2) spanning the data x (N, 2) plus ``margin`` of its range on each side,
    and r(x) - x at each of them."""
    lo, hi = x.min(0).values, x.max(0).values
    pad = margin * (hi - lo).clamp_min(1e-6)
    axes = [torch.linspace(float(lo[i] - pad[i]), float(hi[i] + pad[i]), grid) for i in range(2)]
    gx, gy = torch.meshgrid(*axes, indexing="xy")
    points = torch.stack([gx.flatten(), gy.flatten()], 1).to(model.device, x.dtype)
    return points, model.reconstruct(points).view_as(points) - points


def draw_vector_field(points: torch.Tensor, field: torch.Tensor, x: torch.Tensor, title: str = ""):
    """One panel: the data (grey dots) and an arrow from each grid point towards r(x), shortened by one
    common factor where the longest would pass the next grid point (so they do not overlap; the factor
    is in the title). Returns the matplotlib figure; the caller saves and closes it."""
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    x, p, f = x.cpu().numpy(), points.cpu().numpy(), field.cpu().numpy()
    spacing = float(min(np.ptp(p[:, 0]), np.ptp(p[:, 1]))) / max(1, int(round(len(p) ** 0.5)) - 1)
    longest = float(np.linalg.norm(f, axis=1).max())
    shrink = max(1.0, longest / (0.9 * spacing)) if spacing > 0 else 1.0
    ax.scatter(x[:, 0], x[:, 1], s=3, c="0.6", alpha=0.5, label="data", zorder=1)
    ax.quiver(p[:, 0], p[:, 1], f[:, 0], f[:, 1], angles="xy", scale_units="xy", scale=shrink, width=0.004, color="C0",
              zorder=2, label="r(x) - x")
    ax.set_aspect("equal")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title((title or "r(x) - x") + (f"\n(arrows shortened {shrink:.1f}x)" if shrink > 1 else ""), fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


@figure("dae_vector_field", order=66)
def dae_vector_field(model, data, run_dir, out_path, n_data: int = 2000):
    if not isinstance(model, DenoisingModel) or tuple(data.train.x.shape[1:]) != (2,):
        return None
    x = data.train.x[:n_data].float()
    points, field = vector_field(model, x.to(model.device))
    fig = draw_vector_field(points, field, x, title=f"r(x) - x, trained with {model.corruption}")
    fig.savefig(out_path, dpi=100)
    _mpl().close(fig)
    return (f"The denoising field (Alain & Bengio 2014): from each point of a {FIELD_GRID}x{FIELD_GRID} grid an arrow towards its "
            f"reconstruction r(x) (all shortened by one factor), over the training data (grey); a DAE trained with {model.corruption} pulls points back "
            "towards where the data lie, r(x) - x estimating sigma^2 times the score d log p(x) / dx.")
