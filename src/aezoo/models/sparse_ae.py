"""The sparse autoencoder: a reconstruction loss plus a penalty that keeps most code units silent.

Ng 2011, "Sparse autoencoder", CS294A lecture notes (the KL form; after Lee, Ekanadham & Ng 2008,
"Sparse deep belief net model for visual area V2", NIPS); the L1 form as in Goodfellow, Bengio &
Courville 2016, "Deep Learning", section 14.2.1. Objectives, per example averaged over the batch:
    l1: L(x, g(h)) + lambda * ||h||_1,  h = relu(f(x))  (ReLU so that silent units are exactly 0)
    kl: L(x, g(h)) + beta * sum_j KL(rho || rho_hat_j),  h = sigmoid(f(x)),
        rho_hat_j = mean activation of unit j over the batch, KL between Bernoulli(rho) and Bernoulli(rho_hat_j).
The defaults are the KL form with a one-hidden-layer encoder of 256 and a code of 128 sigmoid units.
beta = 10 against the summed squared error: Ng's beta = 3 multiplies half the squared error, so his
weight in our units is 6; at 6 the busiest unit on Fashion-MNIST ends at 1.22 rho, at 10 within
[0.9, 1.15] rho on Fashion-MNIST and digits (benchmarks/README.md). At the former default 0.1 (with
16 units after 512-256) the mean activation on digits was 1.8 rho, and its busiest unit 6.8 rho.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..config import check
from ..nn.nets import decoder_for, encoder_for, unit_responses
from ..registry import register
from .ae import output_mean, reconstruction_loss
from .base import Claim, ModelConfig, ModelOutput, UnitFilterModel


def sparsity_kl(rho: float, rho_hat: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j)) for rho_hat (D,); zero iff every rho_hat_j = rho."""
    rho_hat = rho_hat.clamp(eps, 1 - eps)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


@dataclass
class SparseAEConfig(ModelConfig):
    latent_dim: int = 128  # code units
    hidden: tuple[int, ...] = (256,)
    loss: Literal["mse", "bce"] = "mse"
    penalty: Literal["l1", "kl"] = "kl"
    lam: float = 1e-2  # lambda, weight of ||h||_1
    beta: float = 10.0  # weight of the KL sparsity term
    rho: float = 0.05  # target mean activation of every unit (kl)

    def __post_init__(self):
        super().__post_init__()
        check(self.lam >= 0, "lam", f"must be >= 0, got {self.lam}")
        check(self.beta >= 0, "beta", f"must be >= 0, got {self.beta}")
        check(0 < self.rho < 1, "rho", f"must be in (0, 1), got {self.rho}")


NEAR = 0.25  # "near rho": within 25% of it


@register("sparse_ae")
class SparseAE(UnitFilterModel):
    Config = SparseAEConfig
    # 10 epochs of the 8x8 digits are 110 steps: every unit sits at rho because none has learned
    # anything yet (recon MSE 0.08); 1,000 steps reach 0.03 with every unit still near rho
    train_defaults = {"min_steps": 1000}
    claims = (
        Claim("Ng 2011, CS294A notes",
              "The KL penalty pulls the mean activation of every one of the {latent_dim} code units to rho = {rho}: "
              "all of them within 25% of it (units_near_rho 1).",
              ("mean_activation", "mean_activation_min", "mean_activation_max", "units_near_rho"),
              figure="unit_activity", when=lambda c: c.penalty == "kl", reference=lambda c: c.rho),
        Claim("Goodfellow, Bengio & Courville 2016, sec. 14.2.1",
              "The L1 penalty (lambda = {lam}) silences most code units: few non-zero units per code.",
              ("code_l0", "dead_units", "mean_activation"), figure="unit_activity"),
    )

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
    def unit_activity(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """(D,) the mean activation of each code unit over the inputs x: rho_hat_j over a whole split."""
        return sum(self.encode(x[i : i + batch_size]).double().sum(0) for i in range(0, x.shape[0], batch_size)) / x.shape[0]

    def eval_metrics(self, x, y=None, **options: Any) -> dict[str, Any]:
        """``mean_activation`` (over units of rho_hat_j) with its spread over the units (min, max, std)
        and, for the KL penalty, ``units_near_rho``: the share of units within 25% of rho."""
        r = self.unit_activity(x)
        out = {"mean_activation": float(r.mean()), "mean_activation_min": float(r.min()), "mean_activation_max": float(r.max()),
               "mean_activation_std": float(r.std()) if r.numel() > 1 else 0.0}
        if self.config.penalty == "kl":
            out["units_near_rho"] = float(((r - self.config.rho).abs() <= NEAR * self.config.rho).double().mean())
        return out

    @torch.no_grad()
    def decoder_filters(self) -> torch.Tensor:
        """(D, *input_shape): what each code unit writes into the output."""
        return unit_responses(self.decoder, self.config.latent_dim)
