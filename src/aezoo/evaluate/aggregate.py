"""The distribution of the codes, for every model. A ``LatentVariableModel`` gets its likelihood bounds
and the moments of its aggregate posterior (``gaussian_latent_metrics``: neg_elbo, nll_iw, kl,
active_units, agg_mean_abs, agg_var); any other model the same ``agg_mean_abs`` and ``agg_var`` of its
codes, so "VAE codes are close to N(0, I), AE codes are not" compares across the family."""
from __future__ import annotations

from typing import Any

from ..models.base import ConditionalModel, LatentVariableModel
from . import encode_batched, metric
from .likelihood import aggregate_moments, gaussian_latent_metrics


@metric("aggregate")
def aggregate(model, data, split_name, x, y, iw_samples: int = 1000, **_: Any) -> dict[str, Any] | None:
    if isinstance(model, LatentVariableModel):
        out = gaussian_latent_metrics(model, x, y, iw_samples=iw_samples)
        if isinstance(model, ConditionalModel) and "nll_iw" in out:  # every bound here is conditional: -log p(x|y)
            out["cond_nll_iw"] = out.pop("nll_iw")
        return out
    return aggregate_moments(encode_batched(model, x, y))
