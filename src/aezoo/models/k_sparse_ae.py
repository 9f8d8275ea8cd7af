"""The k-sparse autoencoder, with the optional AuxK loss of TopK sparse autoencoders.

Makhzani & Frey 2013, "k-Sparse Autoencoders", arXiv:1312.5663. The code is linear, a = W x + b;
only its k largest entries are kept, z = a * 1[a in top_k(a)], and x_hat = W' z + b'; objective
||x - x_hat||^2, so gradients flow only through the kept units. k starts large (``k_start``) and
decreases linearly to the target over the first ``schedule_fraction`` of training, which keeps units
from dying early (the paper's section 3.2); features may be read with alpha*k units (``alpha``).
The defaults are the paper's MNIST model: linear maps (``hidden=()``), 1000 code units, k = 25.

Gao et al. 2024, "Scaling and evaluating sparse autoencoders", arXiv:2406.04093: AuxK. Units that
have not fired for ``dead_steps`` steps are dead; the top ``aux_k`` dead pre-activations must
reconstruct the residual e = x - x_hat: loss + aux_coef * ||e - W_dec z_aux||^2.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import check
from ..nn.nets import decoder_for, encoder_for, unit_responses
from ..registry import register
from .ae import reconstruction_loss
from .base import Claim, ModelConfig, ModelOutput, UnitFilterModel


def keep_topk(a: torch.Tensor, k: int, among: torch.Tensor | None = None) -> torch.Tensor:
    """a (B, D) with all but the k largest entries of each row set to 0 (the gradient too); with
    ``among`` (D,) bool, only those units compete."""
    score = a if among is None else a.masked_fill(~among, float("-inf"))
    idx = score.topk(k, dim=-1).indices  # (B, k)
    mask = torch.zeros_like(a).scatter(-1, idx, 1.0)  # out of place: vmap has a batching rule for it
    return a * mask


@dataclass
class KSparseAEConfig(ModelConfig):
    latent_dim: int = 1000  # an overcomplete code, as in the paper (1000 units on 784 pixels)
    hidden: tuple[int, ...] = ()  # () = the paper's linear encoder and decoder
    k: int = 25  # target number of active units
    k_start: int = 100  # k at the first step of the schedule
    schedule_fraction: float = 0.5  # part of training over which k falls from k_start to k
    alpha: float = 1.0  # encode keeps round(alpha * k) units
    aux_k: int = 0  # AuxK: dead units used for the auxiliary loss (0: off)
    aux_coef: float = 1 / 32  # Gao et al.'s alpha for AuxK
    dead_steps: int = 200  # steps without firing after which a unit counts as dead

    def __post_init__(self):
        super().__post_init__()
        check(1 <= self.k < self.latent_dim, "k", f"must be in [1, latent_dim) = [1, {self.latent_dim}) to keep fewer than all units, got {self.k}")
        check(self.k <= self.k_start <= self.latent_dim, "k_start", f"must be in [k, latent_dim] = [{self.k}, {self.latent_dim}], got {self.k_start}")
        check(round(self.alpha * self.k) <= self.latent_dim, "alpha", f"alpha * k = {round(self.alpha * self.k)} units kept at encode exceeds latent_dim {self.latent_dim}")
        check(0 <= self.schedule_fraction <= 1, "schedule_fraction", f"must be in [0, 1], got {self.schedule_fraction}")
        check(self.alpha >= 1, "alpha", f"must be >= 1, got {self.alpha}")
        check(self.aux_k >= 0, "aux_k", f"must be >= 0, got {self.aux_k}")
        check(self.aux_coef >= 0, "aux_coef", f"must be >= 0, got {self.aux_coef}")
        check(self.dead_steps >= 1, "dead_steps", f"must be >= 1, got {self.dead_steps}")
        # AuxK reconstructs the residual with W_dec z_aux, the decoder's linear map (Gao et al.); with
        # hidden layers or a conv decoder, decoder(z_aux) - decoder(0) is not that map
        linear = self.arch == "mlp" and len(self.hidden) == 0
        check(self.aux_k == 0 or linear, "aux_k", f"AuxK needs the linear decoder (arch='mlp', hidden=()), got arch={self.arch!r}, hidden={self.hidden}")


@register("k_sparse_ae")
class KSparseAE(UnitFilterModel):
    Config = KSparseAEConfig
    tiny = {**UnitFilterModel.tiny, "latent_dim": 12, "k": 3, "k_start": 6}
    claims = (Claim("Makhzani & Frey 2013",
                    "Every code keeps exactly k = {k} of its {latent_dim} units (alpha k at encode) and still reconstructs the input.",
                    ("code_l0", "dead_units", "recon_mse"), figure="code_nonzeros", reference=lambda c: round(c.alpha * c.k)),)

    def __init__(self, config: KSparseAEConfig):
        super().__init__(config)
        c = config
        self.encoder = encoder_for(c)
        self.decoder = decoder_for(c)
        self.k = c.k
        self.k_current = c.k  # set by the schedule during training
        self.register_buffer("steps_since_fired", torch.zeros(c.latent_dim, dtype=torch.long))

    def on_step(self, step: int, total_steps: int) -> None:
        c = self.config
        ramp = c.schedule_fraction * total_steps
        t = 1.0 if ramp <= 0 else min(1.0, (step + 1) / ramp)
        self.k_current = round(c.k_start + (c.k - c.k_start) * t)

    def encode(self, x, y=None):
        return keep_topk(self.encoder(x), round(self.config.alpha * self.k))  # (B, D), alpha*k non-zeros per row

    def decode(self, z, y=None):
        return self.decoder(z)

    def forward(self, x, y=None) -> ModelOutput:
        a = self.encoder(x)  # (B, D) linear pre-activations
        z = keep_topk(a, self.k_current)
        x_hat = self.decoder(z)
        recon = reconstruction_loss("mse", x_hat, x).mean()
        terms = {"recon": recon, "k": torch.tensor(float(self.k_current))}
        loss = recon
        if self.training:
            with torch.no_grad():
                fired = (z != 0).any(0)
                self.steps_since_fired.add_(1).masked_fill_(fired, 0)
        if self.config.aux_k > 0:
            dead = self.steps_since_fired >= self.config.dead_steps
            n_dead = int(dead.sum())
            terms["dead"] = torch.tensor(float(n_dead))
            if n_dead > 0:
                z_aux = keep_topk(a, min(self.config.aux_k, n_dead), among=dead)
                e = (x - x_hat).detach()
                e_hat = self.decoder(z_aux) - self.decoder(torch.zeros_like(z_aux[:1]))  # W_dec z_aux: the decoder is linear
                aux = reconstruction_loss("mse", e_hat, e).mean()
                terms["aux"] = aux
                loss = loss + self.config.aux_coef * aux
        return ModelOutput(loss=loss, terms=terms, x_hat=x_hat, z=z)

    @torch.no_grad()
    def decoder_filters(self) -> torch.Tensor:
        """(D, *input_shape): what each code unit writes into the output."""
        return unit_responses(self.decoder, self.config.latent_dim)
