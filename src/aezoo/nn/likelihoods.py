"""Decoder likelihoods p(x|z). The decoder network outputs ``params`` of the same shape as x; the
likelihood turns them into a log-density, a mean (the reconstruction) and samples.

What a log-likelihood means depends on the pair (likelihood, data), and papers compare only like
with like, so each likelihood also says what its numbers are on given data (``note``):

- ``bernoulli`` is a normalised distribution on binary data only. On grey levels in [0, 1] (the
  usual "continuous relaxation") log p is a negative cross-entropy: the ELBO and IWAE figures are
  bounds on no normalised density. Published binarised-MNIST numbers use binary data, which
  ``--binarize dynamic`` gives (a fresh Bernoulli draw of every training image at every step).
- ``continuous_bernoulli`` (Loaiza-Ganem & Cunningham 2019, "The continuous Bernoulli: fixing a
  pervasive error in variational autoencoders", arXiv:1907.06845) adds the normalising constant
  that makes the Bernoulli form a density on [0, 1].
- ``gaussian`` is a density on R^d.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .distributions import LOG_2PI, _f32, _sum_rest, bernoulli_log_prob

LOG_2 = math.log(2.0)
_TAYLOR = 0.1  # |logits| below which the continuous Bernoulli uses its Taylor series around lambda = 1/2


def _binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


class Bernoulli(nn.Module):
    """params are logits; mean = sigmoid(logits)."""

    def log_prob(self, params: torch.Tensor, x: torch.Tensor, batch_dims: int = 1) -> torch.Tensor:
        return bernoulli_log_prob(params, x, batch_dims)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        return torch.bernoulli(torch.sigmoid(params))

    def note(self, x: torch.Tensor) -> str:
        if _binary(x):
            return "bernoulli decoder on binary data: neg_elbo and nll_iw bound -log p(x) in nats, comparable with binarised-data papers"
        return ("bernoulli decoder on grey-level data: neg_elbo and nll_iw are cross-entropy bounds, not log-likelihoods "
                "(the Bernoulli is not normalised on [0, 1]); for numbers comparable with papers train with --binarize dynamic "
                "(binarised MNIST), or use likelihood=continuous_bernoulli for a density on [0, 1]")


def continuous_bernoulli_log_norm(logits: torch.Tensor) -> torch.Tensor:
    """log C(lambda), lambda = sigmoid(logits), of the continuous Bernoulli (Loaiza-Ganem & Cunningham
    2019, eq. 7): C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda), which in logits eta is
    eta / tanh(eta / 2). Computed as log|eta| - log(1 - e^-|eta|) + log(1 + e^-|eta|), and near
    eta = 0 (lambda = 1/2, where the closed form is 0/0) by its series log 2 + eta^2/12 - 7 eta^4/1440."""
    logits = _f32(logits)
    a = logits.abs()
    small = a < _TAYLOR
    a_safe = torch.where(small, torch.ones_like(a), a)  # keeps the unused branch's gradient finite
    exact = torch.log(a_safe) - torch.log(-torch.expm1(-a_safe)) + torch.log1p(torch.exp(-a_safe))
    e2 = logits.pow(2)
    return torch.where(small, LOG_2 + e2 / 12 - 7 * e2.pow(2) / 1440, exact)


def continuous_bernoulli_mean(logits: torch.Tensor) -> torch.Tensor:
    """E[x] = lambda / (2 lambda - 1) + 1 / (2 artanh(1 - 2 lambda)) = sigmoid(eta) / tanh(eta / 2) - 1 / eta,
    and 1/2 + eta/12 - eta^3/720 near eta = 0."""
    small = logits.abs() < _TAYLOR
    e_safe = torch.where(small, torch.ones_like(logits), logits)
    exact = torch.sigmoid(e_safe) / torch.tanh(e_safe / 2) - 1 / e_safe
    return torch.where(small, 0.5 + logits / 12 - logits.pow(3) / 720, exact)


class ContinuousBernoulli(nn.Module):
    """params are logits eta; log p(x) = x log lambda + (1 - x) log(1 - lambda) + log C(lambda), a
    normalised density on [0, 1]; the mean (the reconstruction) is the distribution's mean, not lambda."""

    def log_prob(self, params: torch.Tensor, x: torch.Tensor, batch_dims: int = 1) -> torch.Tensor:
        return bernoulli_log_prob(params, x, batch_dims) + _sum_rest(continuous_bernoulli_log_norm(params), batch_dims)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return continuous_bernoulli_mean(params)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        return torch.distributions.ContinuousBernoulli(logits=params.float()).sample().to(params.dtype)

    def note(self, x: torch.Tensor) -> str:
        return ("continuous Bernoulli decoder: neg_elbo and nll_iw bound -log p(x) of a density on [0, 1]^d, in nats "
                "(a density, so not comparable with likelihoods of binarised data)")


class Gaussian(nn.Module):
    """params are the mean; sigma is fixed, or learned (``learn_sigma``) as one scalar or, given
    ``shape`` (the input shape), one per feature: a learned diagonal variance, for tables whose
    features are not equally predictable (issue 18)."""

    def __init__(self, sigma: float = 1.0, learn_sigma: bool = False, shape: tuple[int, ...] | None = None):
        super().__init__()
        log_sigma = torch.full(tuple(shape), math.log(sigma)) if shape is not None else torch.tensor(math.log(sigma))
        if learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor, batch_dims: int = 1) -> torch.Tensor:
        x = x.expand_as(params)
        if self.log_sigma.dim() > 0:  # per feature: sum_i -(x_i - mu_i)^2 / 2 sigma_i^2 - log sigma_i - log(2 pi) / 2
            lp = -0.5 * (x - params).pow(2) * torch.exp(-2 * self.log_sigma) - self.log_sigma - 0.5 * LOG_2PI
            return lp.flatten(batch_dims).sum(-1)
        sq = (x - params).pow(2).flatten(batch_dims).sum(-1)
        d = params[(0,) * batch_dims].numel()
        return -0.5 * sq * torch.exp(-2 * self.log_sigma) - d * (self.log_sigma + 0.5 * LOG_2PI)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        return params + self.log_sigma.exp() * torch.randn_like(params)

    def note(self, x: torch.Tensor) -> str:
        sigma = self.log_sigma.exp()
        which = f"sigma {float(sigma):.3g}" if sigma.dim() == 0 else f"per-feature sigma {float(sigma.min()):.3g}..{float(sigma.max()):.3g}"
        return (f"gaussian decoder ({which}): neg_elbo and nll_iw bound -log p(x) of a density "
                "on R^d, in nats (a density, so not comparable with likelihoods of discrete data)")


LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "gaussian")


def make_likelihood(kind: str, sigma: float = 1.0, learn_sigma: bool = False, shape: tuple[int, ...] | None = None) -> nn.Module:
    """``shape``: the input shape, for a Gaussian with one learned sigma per feature."""
    return {"bernoulli": Bernoulli, "continuous_bernoulli": ContinuousBernoulli, "gaussian": lambda: Gaussian(sigma, learn_sigma, shape)}[kind]()


def default_likelihood(kind: str) -> tuple[str, str]:
    """The decoder likelihood for a data kind (``Dataset.preprocessing['kind']``) and why (issue 18)."""
    if kind in ("vectors", "table"):
        return "gaussian", f"real-valued {'table' if kind == 'table' else 'vectors'}, scaled per feature: a density on R^d"
    return "bernoulli", f"{kind} scaled to [0, 1]: the Bernoulli of the papers (gaussian for real values: --set likelihood=gaussian)"
