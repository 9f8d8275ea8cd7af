"""The contractive autoencoder.

Rifai, Vincent, Muller, Glorot & Bengio 2011, "Contractive auto-encoders: explicit invariance during
feature extraction", ICML. Objective: L(x, g(h)) + lambda * ||J_f(x)||_F^2 with h = f(x) = s(W x + b),
sigmoid code units. For that one-layer encoder the penalty has the closed form (the paper's eq. 5)
    ||J_f(x)||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ji^2.
For deeper encoders ``jacobian`` selects the exact Jacobian (torch.func jacrev under vmap) or
Hutchinson's unbiased estimate E_u ||J^T u||^2, u ~ N(0, I) in code space (one vector-Jacobian
product per sample).
The defaults are the paper's model: one layer of 1000 sigmoid units, so the closed form applies (the
exact Jacobian of the former 512-256 default cost 7 times the step of the plain AE).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..config import check
from ..nn.jacobian import exact_jacobian_fro2, hutchinson_jacobian_fro2
from ..nn.nets import decoder_for, encoder_for
from ..registry import register
from .ae import output_mean, reconstruction_loss
from .base import Autoencoder, Claim, ModelConfig, ModelOutput


@dataclass
class ContractiveAEConfig(ModelConfig):
    latent_dim: int = 1000  # code units
    hidden: tuple[int, ...] = ()  # () = the paper's one-layer encoder
    loss: Literal["mse", "bce"] = "mse"
    lam: float = 0.1  # lambda, weight of ||J_f(x)||_F^2
    jacobian: Literal["auto", "closed_form", "exact", "hutchinson"] = "auto"  # auto: closed form when it applies, else exact
    hutchinson_samples: int = 1

    def __post_init__(self):
        super().__post_init__()
        check(self.lam >= 0, "lam", f"must be >= 0, got {self.lam}")
        check(self.hutchinson_samples >= 1, "hutchinson_samples", f"must be >= 1, got {self.hutchinson_samples}")
        one_layer = self.arch == "mlp" and len(self.hidden) == 0
        check(self.jacobian != "closed_form" or one_layer, "jacobian", "'closed_form' needs the one-layer sigmoid encoder (arch=mlp, hidden=()); use exact or hutchinson")


@register("contractive_ae")
class ContractiveAE(Autoencoder):
    Config = ContractiveAEConfig
    claims = (Claim("Rifai et al. 2011",
                    "The penalty lambda ||J_f(x)||_F^2 (lambda = {lam}) contracts the encoder: its Jacobian norm is smaller than that "
                    "of the same autoencoder trained with lambda = 0 (benchmarks/README.md).",
                    ("jacobian_fro", "recon_mse")),)

    def __init__(self, config: ContractiveAEConfig):
        super().__init__(config)
        c = config
        self.encoder = encoder_for(c)
        self.decoder = decoder_for(c)
        one_layer = c.arch == "mlp" and len(c.hidden) == 0
        self.jacobian_method = ("closed_form" if one_layer else "exact") if c.jacobian == "auto" else c.jacobian

    def encode(self, x, y=None):
        return torch.sigmoid(self.encoder(x))  # (B, D)

    def decode(self, z, y=None):
        return output_mean(self.config.loss, self.decoder(z))

    def jacobian_fro2(self, x: torch.Tensor, h: torch.Tensor | None = None, method: str | None = None) -> torch.Tensor:
        """(B,) ||J_f(x)||_F^2 by ``method`` (default: the configured one)."""
        method = method or self.jacobian_method
        if method == "closed_form":
            h = self.encode(x) if h is None else h
            linear: nn.Linear = self.encoder.net[0]
            return (h * (1 - h)).pow(2) @ linear.weight.pow(2).sum(1)  # (B, D) @ (D,) -> (B,)
        if method == "hutchinson":
            with torch.enable_grad():
                out = hutchinson_jacobian_fro2(self.encode, x, self.config.hutchinson_samples)
            return out if torch.is_grad_enabled() else out.detach()
        return exact_jacobian_fro2(self.encode, x)

    def forward(self, x, y=None) -> ModelOutput:
        h = self.encode(x)
        out = self.decoder(h)
        recon = reconstruction_loss(self.config.loss, out, x).mean()
        jac = self.jacobian_fro2(x, h).mean()
        terms = {"recon": recon, "jacobian_fro2": jac}
        return ModelOutput(loss=recon + self.config.lam * jac, terms=terms, x_hat=output_mean(self.config.loss, out), z=h)
