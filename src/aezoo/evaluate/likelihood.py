"""Likelihood evaluation for Gaussian-latent models (vae and its relatives): the ELBO, the
importance-weighted bound of Burda, Grosse & Salakhutdinov 2016 (arXiv:1509.00519), and active units.

For models that declare ``LatentVariableModel`` (``models/base.py``): ``posterior(x, y) ->
DiagonalGaussian``, ``log_likelihood(z, x, y)`` for z of shape (K, B, D) returning (K, B), and
``prior_log_prob(z)``.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..nn.distributions import log_mean_exp
from ..utils import bf16_pays


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


@torch.no_grad()
def iw_log_weights(model, x, y, k: int, max_elements: int = 1 << 21, bf16: bool = False) -> torch.Tensor:
    """(K, B) log w_k = log p(x, z_k) - log q(z_k | x), z_k ~ q, computed in chunks of samples so that
    the decoder output never exceeds ``max_elements`` numbers. The encoder runs once per batch; ~2M
    numbers (8 MB) keep each chunk's logits in cache for the likelihood pass that reads them, which on
    CPU is ~2x faster than one big decoder call (benchmarks/README.md, VAE-MLP section).

    ``bf16``: the decoder's matmuls (the K-fold bulk of the work) run under bf16 autocast; the
    encoder, the samples, and every log-density stay fp32 (``nn.distributions`` upcasts the decoder's
    output before it sums hundreds of terms)."""
    q = model.posterior(x, y)
    per_sample = x[0].numel() * x.shape[0]
    chunk = max(1, min(k, max_elements // max(per_sample, 1)))
    out = []
    for s in _batches(k, chunk):
        z = q.rsample(s.stop - s.start)  # (k', B, D)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            log_px_z = model.log_likelihood(z, x, y).float()
        out.append(log_px_z + model.prior_log_prob(z) - q.log_prob(z))
    return torch.cat(out, 0)


@torch.no_grad()
def nll_iw(model, x, y=None, k: int = 1000, batch_size: int = 256, bf16: bool | None = None) -> torch.Tensor:
    """Per-example -log p(x) estimated as -log (1/K) sum_k w_k (tighter as K grows; = -ELBO at K=1 in
    expectation), the log-mean-exp in fp32. ``bf16``: decode the K samples under bf16 autocast; None
    (default) does so where bf16 is native (``utils.bf16_pays``): 2.5x faster on an AVX512-BF16 CPU,
    estimates within a few hundredths of a nat of fp32's (benchmarks/README.md, issue 16)."""
    bf16 = bf16_pays(x.device) if bf16 is None else bf16
    out = []
    for s in _batches(x.shape[0], batch_size):
        yy = None if y is None else y[s]
        out.append(-log_mean_exp(iw_log_weights(model, x[s], yy, k, bf16=bf16), 0))
    return torch.cat(out)


def aggregate_moments(mu: torch.Tensor, var: torch.Tensor | None = None) -> dict[str, float]:
    """Moments of the aggregate posterior q(z) = E_x q(z|x) against N(0, I): ``agg_mean_abs`` =
    mean_d |E[z_d]| and ``agg_var`` = mean_d Var[z_d] (for a Gaussian posterior, by total variance,
    Var_x mu_d + E_x sigma_d^2; for deterministic codes, Var_x z_d). A VAE's are near 0 and 1; an
    AE's codes are not tied to either. ``mu``, ``var``: (N, D)."""
    mu = mu.flatten(1).double()
    v = mu.var(0, unbiased=True) if mu.shape[0] > 1 else torch.zeros_like(mu[0])
    if var is not None:
        v = v + var.flatten(1).double().mean(0)
    return {"agg_mean_abs": float(mu.mean(0).abs().mean()), "agg_var": float(v.mean())}


@torch.no_grad()
def gaussian_latent_metrics(model, x, y=None, iw_samples: int = 1000, batch_size: int = 512, **_: Any) -> dict[str, Any]:
    """neg_elbo, recon_nll and kl (nats per example, one z sample each), nll_iw with ``iw_samples``,
    active_units (Burda et al.: Cov_x(E_q[z]) > 0.01) and kl_per_dim."""
    recon_sum = kl_sum = 0.0
    mus, variances, kl_dims = [], [], []
    for s in _batches(x.shape[0], batch_size):
        yy = None if y is None else y[s]
        q = model.posterior(x[s], yy)
        z = q.rsample(1)
        recon_sum += float(-model.log_likelihood(z, x[s], yy).sum())
        kl_sum += float(q.kl().sum())
        mus.append(q.mu)
        variances.append(q.logvar.exp())
        kl_dims.append(q.kl_per_dim().sum(0))
    n = x.shape[0]
    mu = torch.cat(mus)
    out: dict[str, Any] = {
        "neg_elbo": (recon_sum + kl_sum) / n,
        "recon_nll": recon_sum / n,
        "kl": kl_sum / n,
        "kl_per_dim": (torch.stack(kl_dims).sum(0) / n).tolist(),
        "active_units": int((mu.var(0, unbiased=True) > 0.01).sum()) if n > 1 else 0,
        **aggregate_moments(mu, torch.cat(variances)),
    }
    if iw_samples and iw_samples > 0:
        # keep B*K modest per chunk: batch size shrinks as K grows
        bs = max(1, min(batch_size, (1 << 16) // max(1, min(iw_samples, 1 << 16))))
        bs = max(bs, 16)
        out["nll_iw"] = float(nll_iw(model, x, y, iw_samples, bs).mean())
        out["iw_samples"] = int(iw_samples)
    if not math.isfinite(out["neg_elbo"]):
        out["neg_elbo"] = float("nan")
    return out
