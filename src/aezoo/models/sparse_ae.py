"""The sparse autoencoder: a reconstruction loss plus a penalty that keeps most code units silent.

Ng 2011, "Sparse autoencoder", CS294A lecture notes (the KL form; after Lee, Ekanadham & Ng 2008,
"Sparse deep belief net model for visual area V2", NIPS); the L1 form as in Goodfellow, Bengio &
Courville 2016, "Deep Learning", section 14.2.1. Objectives, per example averaged over the batch:
    l1: L(x, g(h)) + lambda * ||h||_1,  h = relu(f(x))  (ReLU so that silent units are exactly 0)
    kl: L(x, g(h)) + beta * sum_j KL(rho || rho_hat_j),  h = sigmoid(f(x)),
        rho_hat_j = mean activation of unit j over the batch, KL between Bernoulli(rho) and Bernoulli(rho_hat_j).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..config import check
from ..nn.nets import decoder_for, encoder_for, unit_responses
from ..registry import register
from .ae import output_mean, reconstruction_loss
from .base import Autoencoder, ModelConfig, ModelOutput


def sparsity_kl(rho: float, rho_hat: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j)) for rho_hat (D,); zero iff every rho_hat_j = rho."""
    rho_hat = rho_hat.clamp(eps, 1 - eps)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


@dataclass
class SparseAEConfig(ModelConfig):
    loss: Literal["mse", "bce"] = "mse"
    penalty: Literal["l1", "kl"] = "l1"
    lam: float = 1e-2  # lambda, weight of ||h||_1
    beta: float = 0.1  # weight of the KL sparsity term
    rho: float = 0.05  # target mean activation of every unit (kl)

    def __post_init__(self):
        super().__post_init__()
        check(self.lam >= 0, "lam", f"must be >= 0, got {self.lam}")
        check(self.beta >= 0, "beta", f"must be >= 0, got {self.beta}")
        check(0 < self.rho < 1, "rho", f"must be in (0, 1), got {self.rho}")


@register("sparse_ae")
class SparseAE(Autoencoder):
    Config = SparseAEConfig

    def __init__(self, config: SparseAEConfig):
        super().__init__(config)
        c = config
        self.encoder = encoder_for(c)
        self.decoder = decoder_for(c)

    def encode(self, x, y=None):
        a = self.encoder(x)  # (B, D)
        return torch.sigmoid(a) if self.config.penalty == "kl" else torch.relu(a)

    def decode(self, z, y=None):
        return output_mean(self.config.loss, self.decoder(z))

    def penalty(self, h: torch.Tensor) -> torch.Tensor:
        c = self.config
        if c.penalty == "kl":
            return c.beta * sparsity_kl(c.rho, h.mean(0))
        return c.lam * h.abs().sum(1).mean()

    def forward(self, x, y=None) -> ModelOutput:
        h = self.encode(x)
        out = self.decoder(h)
        recon = reconstruction_loss(self.config.loss, out, x).mean()
        sparsity = self.penalty(h)
        terms = {"recon": recon, "sparsity": sparsity, "code_mean": h.detach().mean()}
        return ModelOutput(loss=recon + sparsity, terms=terms, x_hat=output_mean(self.config.loss, out), z=h)

    @torch.no_grad()
    def decoder_filters(self) -> torch.Tensor:
        """(D, *input_shape): what each code unit writes into the output."""
        return unit_responses(self.decoder, self.config.latent_dim)
