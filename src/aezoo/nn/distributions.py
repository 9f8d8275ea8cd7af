"""Shared probabilistic maths, as pure functions over tensors. Every model calls these; none pastes them.

Conventions: log-densities and KLs are summed over every non-batch dimension and returned per
example, shape (B,) (or (K, B) for K samples); callers average over the batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def _sum_rest(t: torch.Tensor, batch_dims: int = 1) -> torch.Tensor:
    return t.flatten(batch_dims).sum(-1)


def _f32(*ts: torch.Tensor):
    """Half-precision inputs (bf16 autocast) upcast to float32 so KLs and log-densities, sums over
    hundreds of terms, keep fp32 accuracy; float32 and float64 pass through unchanged."""
    out = tuple(t.float() if getattr(t, "dtype", None) in (torch.float16, torch.bfloat16) else t for t in ts)
    return out if len(out) > 1 else out[0]


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per example; Kingma & Welling 2014, appendix B:
    -1/2 sum(1 + logvar - mu^2 - exp(logvar))."""
    mu, logvar = _f32(mu, logvar)
    return -0.5 * _sum_rest(1 + logvar - mu.pow(2) - logvar.exp())


def kl_normal(mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    """KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p))) per example, diagonal Gaussians."""
    mu_q, logvar_q, mu_p, logvar_p = _f32(mu_q, logvar_q, mu_p, logvar_p)
    return 0.5 * _sum_rest(logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1)


def normal_log_prob(x, mu, logvar, batch_dims: int = 1) -> torch.Tensor:
    """log N(x; mu, diag exp(logvar)), summed over the non-batch dimensions."""
    x, mu, logvar = _f32(x, mu, logvar)
    return -0.5 * _sum_rest(LOG_2PI + logvar + (x - mu).pow(2) / logvar.exp(), batch_dims)


def standard_normal_log_prob(z, batch_dims: int = 1) -> torch.Tensor:
    z = _f32(z)
    return -0.5 * _sum_rest(LOG_2PI + z.pow(2), batch_dims)


def bernoulli_log_prob(logits, x, batch_dims: int = 1) -> torch.Tensor:
    """log Bernoulli(x; sigmoid(logits)) summed per example; x may be in [0, 1] (continuous relaxation,
    as usual for grey-level MNIST). Uses the fused, stable BCE-with-logits kernel."""
    logits, x = _f32(logits, x)
    return -_sum_rest(F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none"), batch_dims)


def log_mean_exp(a: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/K) sum_k exp(a_k) along ``dim``, stably (the importance-weighted bound of Burda et al. 2016)."""
    a = _f32(a)
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


@dataclass
class DiagonalGaussian:
    """A diagonal Gaussian posterior q(z|x) = N(mu, diag exp(logvar)), shapes (B, D)."""

    mu: torch.Tensor
    logvar: torch.Tensor

    @property
    def std(self) -> torch.Tensor:
        return (0.5 * self.logvar).exp()

    def rsample(self, n: int | None = None) -> torch.Tensor:
        """Reparameterised sample z = mu + sigma * eps (Kingma & Welling 2014, sec. 2.4); (n, B, D) if n."""
        shape = self.mu.shape if n is None else (n, *self.mu.shape)
        return self.mu + self.std * torch.randn(shape, dtype=self.mu.dtype, device=self.mu.device)

    def mode(self) -> torch.Tensor:
        return self.mu

    def kl(self) -> torch.Tensor:
        """Analytic KL to N(0, I) per example."""
        return kl_standard_normal(self.mu, self.logvar)

    def kl_per_dim(self) -> torch.Tensor:
        """(B, D) KL of each latent dimension."""
        mu, logvar = _f32(self.mu, self.logvar)
        return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) for z of shape (..., B, D), per sample and example."""
        z, mu, logvar = _f32(z, self.mu, self.logvar)
        return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)
