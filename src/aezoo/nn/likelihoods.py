"""Decoder likelihoods p(x|z). The decoder network outputs ``params`` of the same shape as x; the
likelihood turns them into a log-density, a mean (the reconstruction) and samples."""
from __future__ import annotations

import math

import torch
from torch import nn

from .distributions import LOG_2PI, bernoulli_log_prob


class Bernoulli(nn.Module):
    """params are logits; mean = sigmoid(logits)."""

    def log_prob(self, params: torch.Tensor, x: torch.Tensor, batch_dims: int = 1) -> torch.Tensor:
        return bernoulli_log_prob(params, x, batch_dims)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        return torch.bernoulli(torch.sigmoid(params))


class Gaussian(nn.Module):
    """params are the mean; sigma is fixed, or learned as one scalar (``learn_sigma``)."""

    def __init__(self, sigma: float = 1.0, learn_sigma: bool = False):
        super().__init__()
        log_sigma = torch.tensor(math.log(sigma))
        if learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor, batch_dims: int = 1) -> torch.Tensor:
        x = x.expand_as(params)
        sq = (x - params).pow(2).flatten(batch_dims).sum(-1)
        d = params[(0,) * batch_dims].numel()
        return -0.5 * sq * torch.exp(-2 * self.log_sigma) - d * (self.log_sigma + 0.5 * LOG_2PI)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        return params + self.log_sigma.exp() * torch.randn_like(params)


def make_likelihood(kind: str, sigma: float = 1.0, learn_sigma: bool = False) -> nn.Module:
    return {"bernoulli": lambda: Bernoulli(), "gaussian": lambda: Gaussian(sigma, learn_sigma)}[kind]()
