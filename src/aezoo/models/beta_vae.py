"""The beta-VAE, with optional capacity control.

Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts with a Constrained Variational
Framework" (ICLR 2017):
    loss = -E_q log p(x|z) + beta * KL(q(z|x) || N(0, I)).
Burgess et al. 2017, "Understanding disentangling in beta-VAE", arXiv:1804.03599 (``c_max`` set):
    loss = -E_q log p(x|z) + gamma * |KL(q(z|x) || N(0, I)) - C(t)|,  C(t) = C_max * min(1, t / T),
the capacity C raised linearly from 0 to C_max nats over T = ``c_steps`` steps.

The network, the posterior and the ELBO terms are the VAE's; this file changes only their weighting.
With ``iw_samples=K`` the importance weights become p(x|z) (p(z)/q(z|x))^beta: with beta != 1 that
objective bounds no likelihood, so it is logged as ``neg_iw_beta_objective`` and the IWAE bound of
Burda et al. (beta = 1, the same K samples) beside it as ``neg_iw_bound`` (issue 24).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import check
from ..nn.distributions import log_mean_exp
from ..registry import register
from .base import Claim, ModelOutput
from .vae import VAE, VAEConfig


@dataclass
class BetaVAEConfig(VAEConfig):
    beta: float = 4.0
    c_max: float | None = None  # capacity control (Burgess et al.): target KL in nats; None = plain beta-VAE
    c_steps: int | None = None  # steps over which C rises to c_max; None = the whole run
    gamma: float = 1000.0  # weight of |KL - C| (Burgess et al. use 1000)

    def __post_init__(self):
        super().__post_init__()
        check(self.beta >= 0, "beta", f"must be >= 0, got {self.beta}")
        check(self.c_max is None or self.c_max >= 0, "c_max", f"must be >= 0 nats, got {self.c_max}")
        check(self.c_steps is None or self.c_steps >= 1, "c_steps", f"must be >= 1, got {self.c_steps}")
        check(self.gamma >= 0, "gamma", f"must be >= 0, got {self.gamma}")
        check(self.c_max is None or self.iw_samples == 1, "iw_samples", "the capacity objective has no importance-weighted form; use iw_samples=1 with c_max")


def capacity(step: int, c_max: float, c_steps: int) -> float:
    """C(t) = C_max * min(1, t / T) (Burgess et al. 2017, sec. 5)."""
    return c_max * min(1.0, step / c_steps)


@register("beta_vae")
class BetaVAE(VAE):
    Config = BetaVAEConfig
    claims = (
        Claim("Burgess et al. 2017, sec. 5",
              "The KL follows the capacity C(t), raised linearly to C_max = {c_max} nats: the KL per epoch tracks C "
              "and ends near C_max.", ("kl", "capacity", "recon_nll"), figure="kl_capacity", when=lambda c: c.c_max is not None),
        Claim("Higgins et al. 2017",
              "beta = {beta} > 1 tightens the bottleneck: a smaller KL than the VAE's at the same size, paid for in "
              "reconstruction; each active latent tends to one factor of variation (traversals).",
              ("kl", "recon_nll", "active_units"), figure="traversals"),
    )

    def __init__(self, config: BetaVAEConfig):
        super().__init__(config)
        # the training step, kept as a buffer so C(t) survives save/load and resuming
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("total_steps", torch.ones((), dtype=torch.long))

    def on_step(self, step: int, total_steps: int) -> None:
        self.step.fill_(step)
        self.total_steps.fill_(total_steps)

    @property
    def capacity(self) -> float:
        c = self.config
        if c.c_max is None:
            return 0.0
        return capacity(int(self.step), c.c_max, c.c_steps or int(self.total_steps))

    def forward(self, x, y=None) -> ModelOutput:
        c = self.config
        if c.iw_samples > 1:
            log_px_z, log_ratio, z = self.iw_terms(x, y, c.iw_samples)
            loss = -log_mean_exp(log_px_z + c.beta * log_ratio, 0).mean()
            if c.beta == 1:
                return ModelOutput(loss=loss, terms={"neg_iw_bound": loss}, z=z[0])
            bound = -log_mean_exp((log_px_z + log_ratio).detach(), 0).mean()  # -L_K, reported, not trained on
            return ModelOutput(loss=loss, terms={"neg_iw_beta_objective": loss, "neg_iw_bound": bound}, z=z[0])
        recon, kl, _q, z = self.elbo_terms(x, y)
        recon, kl = recon.mean(), kl.mean()
        terms = {"recon": recon, "kl": kl, "neg_elbo": recon + kl}
        if c.c_max is None:
            loss = recon + c.beta * kl
        else:
            # |KL - C| on the batch-mean KL, as Burgess et al. write it
            cap = torch.tensor(self.capacity, dtype=kl.dtype, device=kl.device)
            loss = recon + c.gamma * (kl - cap).abs()
            terms["capacity"] = cap
        return ModelOutput(loss=loss, terms=terms, z=z)

    def eval_metrics(self, x, y=None, **options):
        out = super().eval_metrics(x, y, **options)
        if self.config.c_max is not None:  # C at the end of training, against the KL measured here
            out["capacity"] = self.capacity
        return out
