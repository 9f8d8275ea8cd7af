"""Figures for the deterministic family, chosen by declared capability (``models/base.py``):

- ``decoder_filters``: a ``UnitFilterModel`` draws what each code unit writes into the output, as in
  Makhzani & Frey 2013's figures of filters for several k;
- ``denoising``: a ``DenoisingModel`` shows noisy / denoised / clean triplets under its training
  ``corruption``, as in Vincent et al. 2008.
"""
from __future__ import annotations

import torch

from ..models.base import DenoisingModel, UnitFilterModel
from .figures import _test_batch, as_images, figure, save_grid


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
