"""Entropy models of learned compression: the factorized density of the hyper-latents and the
conditional Gaussian of the latents.

Ballé, Minnen, Singh, Hwang & Johnston 2018, "Variational image compression with a scale
hyperprior", arXiv:1802.01436:

- ``EntropyBottleneck``: a non-parametric, per-channel density for z (appendix 6.1). Its cumulative
  c(x) = f_K o ... o f_1(x), f_k(x) = g_k(H^(k) x + b^(k)), g_k(x) = x + a^(k) . tanh(x) (tanh(a) keeps
  each g_k monotone), H^(k) = softplus(.) >= 0, the last one a sigmoid; the probability of the
  (noisy) value z~ is c(z~ + 1/2) - c(z~ - 1/2), the density convolved with a unit uniform (eq. 6).
- ``gaussian_likelihood``: the probability of y~ under N(mu, sigma^2) convolved with a unit uniform,
  Phi((mu - y + 1/2) / sigma) - Phi((mu - y - 1/2) / sigma) (eq. 8; mu = 0 in the scale hyperprior,
  learned in the mean-scale variant of Minnen, Ballé & Toderici 2018, arXiv:1809.02736).

In training, quantisation is replaced by additive uniform noise (``noisy``); at test time values are
rounded and these probabilities are those of the integers the entropy coder writes. ``table`` turns
the factorized density into the fixed probability table the coder uses (``compress/learned.py``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LIKELIHOOD_MIN = 1e-9  # floor of every probability: a bound on the bits of one value (~30)
# the range coder's fixed-point precision (constriction's queue coder: 24 bits); its "leaky" quantisation
# gives every symbol at least 2**-CODER_PRECISION, so no symbol costs more than 24 bits in a file
CODER_PRECISION = 24
CODER_FLOOR = 2.0**-CODER_PRECISION


def noisy(x: torch.Tensor) -> torch.Tensor:
    """x + U(-1/2, 1/2): the training proxy of rounding (eq. 5)."""
    return x + torch.empty_like(x).uniform_(-0.5, 0.5)


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, the identity in the backward pass (straight-through)."""
    return x + (torch.round(x) - x).detach()


class _InwardClamp(torch.autograd.Function):
    """Clamp to [lo, hi]; the gradient passes where the value is inside, or outside but the step
    would move it back in (the lower bound of Ballé et al.'s code, on both sides): a scale stuck at
    the table's end still learns to leave it."""

    @staticmethod
    def forward(ctx, x, lo: float, hi: float):
        ctx.save_for_backward(x)
        ctx.bounds = (lo, hi)
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        lo, hi = ctx.bounds
        passes = ((x >= lo) | (g < 0)) & ((x <= hi) | (g > 0))
        return g * passes, None, None


def inward_clamp(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return _InwardClamp.apply(x, lo, hi)


def gaussian_likelihood(y: torch.Tensor, sigma: torch.Tensor, mu: torch.Tensor | None = None) -> torch.Tensor:
    """P(y) for y~ under N(mu, sigma^2) (*) U(-1/2, 1/2), elementwise, in fp32. Evaluated on the side
    of the mean where the tails are small (the upper-tail form is exact in fp32 far into the tail)."""
    y, sigma = y.float(), sigma.float()
    v = (y - mu.float()).abs() if mu is not None else y.abs()
    upper = 0.5 * torch.erfc((v - 0.5) / (sigma * math.sqrt(2)))  # P(Y >= v - 1/2), Y ~ N(0, sigma^2)
    lower = 0.5 * torch.erfc((v + 0.5) / (sigma * math.sqrt(2)))
    return (upper - lower).clamp_min(LIKELIHOOD_MIN)


class EntropyBottleneck(nn.Module):
    """The factorized density p(z) = prod_c p_c(z_c) of the hyper-latents, one small monotone network
    per channel (Ballé et al. 2018, appendix 6.1; filters (3, 3, 3) and init_scale 10 as there)."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def logits_cdf(self, x: torch.Tensor) -> torch.Tensor:
        """(C, 1, N) values -> (C, 1, N) logits of c(x), in the parameters' dtype."""
        logits = x
        for i, (h, b) in enumerate(zip(self.matrices, self.biases)):
            logits = torch.matmul(F.softplus(h.to(x.dtype)), logits) + b.to(x.dtype)
            if i < len(self.factors):
                logits = logits + torch.tanh(self.factors[i].to(x.dtype)) * torch.tanh(logits)
        return logits

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """P(z) of each value of z (B, C, h, w) (noisy or integer), elementwise, in fp32."""
        b, c = z.shape[:2]
        v = z.float().transpose(0, 1).reshape(c, 1, -1)  # (C, 1, B*h*w)
        with torch.autocast(z.device.type, enabled=False):  # a density in fp32 under --amp, as nn/distributions
            lower, upper = self.logits_cdf(v - 0.5), self.logits_cdf(v + 0.5)
        sign = -torch.sign(lower + upper).detach()  # evaluate on the side where the sigmoid is not saturated
        p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return p.clamp_min(LIKELIHOOD_MIN).reshape(c, b, *z.shape[2:]).transpose(0, 1)

    @torch.no_grad()
    def table(self, radius: int) -> torch.Tensor:
        """(C, 2 radius + 1) float64: each channel's probability of the integers -radius..radius, the
        tails folded into the two ends (values beyond are coded as the end: ``clamp`` before coding)."""
        c = self.matrices[0].shape[0]
        edges = torch.arange(-radius - 0.5, radius + 1.0, 1.0, dtype=torch.float64, device=self.matrices[0].device)
        with torch.autocast(edges.device.type, enabled=False):
            cdf = torch.sigmoid(self.logits_cdf(edges.expand(c, 1, -1).contiguous())).squeeze(1)  # (C, 2r+2)
        cdf[:, 0], cdf[:, -1] = 0.0, 1.0
        return (cdf[:, 1:] - cdf[:, :-1]).clamp_min(0).cpu()
