"""The undercomplete autoencoder.

Rumelhart, Hinton & Williams 1986, "Learning internal representations by error propagation";
Hinton & Salakhutdinov 2006, "Reducing the dimensionality of data with neural networks" (Science 313).
Objective: min E_x L(x, g(f(x))) with a code narrower than the input; L is the squared error
sum_i (x_i - x_hat_i)^2 or the cross-entropy -sum_i [x_i log x_hat_i + (1 - x_i) log(1 - x_hat_i)],
summed over dimensions and averaged over the batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..config import check
from ..nn.nets import decoder_for, encoder_for
from ..registry import register
from .base import Autoencoder, Claim, ModelConfig, ModelOutput


def reconstruction_loss(kind: str, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-example loss: 'mse' (out is x_hat) or 'bce' (out is logits), summed over dimensions."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)
    return (out - x).pow(2).flatten(1).sum(1)


def output_mean(kind: str, out: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(out) if kind == "bce" else out


@dataclass
class AEConfig(ModelConfig):
    loss: Literal["mse", "bce"] = "mse"

    def __post_init__(self):
        super().__post_init__()
        check(self.latent_dim >= 1, "latent_dim", "must be >= 1")


@register("ae")
class AE(Autoencoder):
    Config = AEConfig
    claims = (Claim("Hinton & Salakhutdinov 2006, Fig. 2",
                    "A nonlinear code of {latent_dim} units reconstructs test inputs better than PCA with {latent_dim} components "
                    "(pca_mse_ratio below 1).",
                    ("recon_mse", "pca_mse_ratio"), figure="reconstructions"),)

    def __init__(self, config: AEConfig):
        super().__init__(config)
        c = config
        self.encoder = encoder_for(c)
        self.decoder = decoder_for(c)

    def encode(self, x, y=None):
        return self.encoder(x)  # (B, D)

    def decode(self, z, y=None):
        return output_mean(self.config.loss, self.decoder(z))

    def forward(self, x, y=None) -> ModelOutput:
        z = self.encoder(x)
        out = self.decoder(z)
        recon = reconstruction_loss(self.config.loss, out, x).mean()
        return ModelOutput(loss=recon, terms={"recon": recon}, x_hat=output_mean(self.config.loss, out), z=z)
