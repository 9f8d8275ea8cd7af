"""The aggregate code distribution of models without a Gaussian posterior (ae and its relatives):
``agg_mean_abs`` and ``agg_var`` of the codes, the numbers that ``gaussian_latent_metrics`` reports for
variational models, so "VAE codes are close to N(0, I), AE codes are not" compares across the family."""
from __future__ import annotations

from typing import Any

from . import encode_batched, metric
from .likelihood import aggregate_moments


@metric("aggregate")
def aggregate(model, data, split_name, x, y, **_: Any) -> dict[str, Any] | None:
    from ..models.base import LatentVariableModel

    if isinstance(model, LatentVariableModel):  # reported with the posterior's variance by eval_metrics
        return None
    return aggregate_moments(encode_batched(model, x, y))
