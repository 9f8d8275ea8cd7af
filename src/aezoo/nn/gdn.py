"""Generalized divisive normalization (GDN) and its inverse.

Ballé, Laparra & Simoncelli 2016, "Density Modeling of Images using a Generalized Normalization
Transformation", arXiv:1511.06281, and "End-to-end Optimized Image Compression", arXiv:1611.01704:
    y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)     (GDN, the analysis transform's nonlinearity)
    x_i = y_i * sqrt(beta_i + sum_j gamma_ij y_j^2)     (IGDN, its approximate inverse in the synthesis)
beta > 0 and gamma >= 0 are kept so by squaring free parameters (with a floor on beta), as the
papers' reparameterisation does; gamma starts at 0.1 I and beta at 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BETA_MIN = 1e-6


class GDN(nn.Module):
    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta_raw = nn.Parameter(torch.ones(channels))
        # off-diagonal entries start just above zero: a squared parameter at exactly zero has no gradient
        self.gamma_raw = nn.Parameter(torch.full((channels, channels), 1e-3) + (0.1**0.5 - 1e-3) * torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        beta = self.beta_raw**2 + BETA_MIN
        gamma = self.gamma_raw**2
        norm = F.conv2d(x * x, gamma[:, :, None, None], beta)  # beta_i + sum_j gamma_ij x_j^2
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)
