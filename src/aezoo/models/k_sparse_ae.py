"""The k-sparse autoencoder, with the optional AuxK loss of TopK sparse autoencoders.

Makhzani & Frey 2013, "k-Sparse Autoencoders", arXiv:1312.5663. The code is linear, a = W x + b;
only its k largest entries are kept, z = a * 1[a in top_k(a)], and x_hat = W' z + b'; objective
||x - x_hat||^2, so gradients flow only through the kept units. k starts large (``k_start``) and
decreases linearly to the target over the first ``schedule_fraction`` of training, which keeps units
from dying early (the paper's section 3.2). Features (``encode``, the embedding) keep alpha*k units
(``alpha``, the paper's section 3.3); the reconstruction (``reconstruct``, eval's recon_mse) decodes the
top k, the code the decoder was trained on (issue 24: decoding alpha*k = 3k units gave 30 times the
error). The defaults are the paper's MNIST model: linear maps (``hidden=()``), 1000 code units, k = 25,
k_start = 4k = 100.

Gao et al. 2024, "Scaling and evaluating sparse autoencoders", arXiv:2406.04093: AuxK, on by default
(without it 72% of the 1000 units were dead after the CLI's 10 Fashion-MNIST epochs, issue 24). Units
that have not been in the top k for ``dead_steps`` training steps are dead; the top ``aux_k`` dead
pre-activations must reconstruct the residual e = x - x_hat: loss + aux_coef * ||e - W_dec z_aux||^2.
With the linear decoder the encoder also reads the input centred on the decoder's bias, a = W_enc (x - b_dec)
+ b_enc with b_dec started at the data mean (Gao et al.'s b_pre; ``center``): the same maps as Makhzani &
Frey's, trained from centred pre-activations. On Fashion-MNIST at the CLI defaults (issue 24, benchmarks/
README.md) AuxK alone left 53% of the units never in the top k on the test split; with the centring, 9.9%.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# Gao et al. use k_aux = 512 (a power of two about d_model / 2) with 2^15 latents and more; for the
# paper's 784 inputs and 1000 units, 256 (benchmarks/README.md, issue 24)
AUX_K = 256


@dataclass
class KSparseAEConfig(ModelConfig):
    latent_dim: int = 1000  # an overcomplete code, as in the paper (1000 units on 784 pixels)
    hidden: tuple[int, ...] = ()  # () = the paper's linear encoder and decoder
    k: int = 25  # target number of active units
    k_start: int | None = None  # k at the first step of the schedule; None: min(4k, latent_dim) (the paper's 100 for k = 25)
    schedule_fraction: float = 0.5  # part of training over which k falls from k_start to k
    alpha: float = 1.0  # encode (features) keeps round(alpha * k) units; reconstruction always decodes k
    aux_k: int | None = None  # AuxK: dead units used for the auxiliary loss; None: AUX_K with the linear decoder, else 0 (off)
    aux_coef: float = 1 / 32  # Gao et al.'s alpha for AuxK
    dead_steps: int = 200  # training steps out of the top k after which a unit counts as dead
    center: bool | None = None  # encode x - b_dec (Gao et al.'s b_pre); None: with the linear decoder

    def __post_init__(self):
        super().__post_init__()
        check(1 <= self.k < self.latent_dim, "k", f"must be in [1, latent_dim) = [1, {self.latent_dim}) to keep fewer than all units, got {self.k}")
        check(self.k_start is None or self.k <= self.k_start <= self.latent_dim, "k_start", f"must be in [k, latent_dim] = [{self.k}, {self.latent_dim}], got {self.k_start}")
        check(round(self.alpha * self.k) <= self.latent_dim, "alpha", f"alpha * k = {round(self.alpha * self.k)} units kept at encode exceeds latent_dim {self.latent_dim}")
        check(0 <= self.schedule_fraction <= 1, "schedule_fraction", f"must be in [0, 1], got {self.schedule_fraction}")
        check(self.alpha >= 1, "alpha", f"must be >= 1, got {self.alpha}")
        check(self.aux_k is None or self.aux_k >= 0, "aux_k", f"must be >= 0 (0: off), got {self.aux_k}")
        check(self.aux_coef >= 0, "aux_coef", f"must be >= 0, got {self.aux_coef}")
        check(self.dead_steps >= 1, "dead_steps", f"must be >= 1, got {self.dead_steps}")
        # AuxK reconstructs the residual with W_dec z_aux, the decoder's linear map (Gao et al.); with
        # hidden layers or a conv decoder, decoder(z_aux) - decoder(0) is not that map, so the default is off there
        check(not self.center or self.linear, "center", f"centring on the decoder's bias needs the linear decoder (arch='mlp', hidden=()), got arch={self.arch!r}, hidden={self.hidden}")
        check(not self.aux_k or self.linear, "aux_k", f"AuxK needs the linear decoder (arch='mlp', hidden=()), got arch={self.arch!r}, hidden={self.hidden}")

    @property
    def linear(self) -> bool:
        return self.arch == "mlp" and len(self.hidden) == 0

    @property
    def k_first(self) -> int:
        """k at the first step: k_start, or min(4k, latent_dim) when it follows k."""
        return min(4 * self.k, self.latent_dim) if self.k_start is None else self.k_start

    @property
    def centred(self) -> bool:
        return self.linear if self.center is None else self.center

    @property
    def aux_units(self) -> int:
        """The AuxK size in use: aux_k, or AUX_K with the linear decoder (0, off, otherwise)."""
        return (AUX_K if self.linear else 0) if self.aux_k is None else self.aux_k


@register("k_sparse_ae")
class KSparseAE(UnitFilterModel):
    Config = KSparseAEConfig
    tiny = {**UnitFilterModel.tiny, "latent_dim": 12, "k": 3, "k_start": 6}
    claims = (Claim("Makhzani & Frey 2013; AuxK of Gao et al. 2024",
                    "Every code keeps exactly k = {k} of its {latent_dim} units (alpha k as features) and still reconstructs the "
                    "input from them; AuxK keeps the units alive: under 1% dead by Gao et al.'s measure (not in the top k of "
                    "any training input over the last {dead_steps} steps, dead_units_train); dead_units_test counts the units "
                    "never in the top k on the test split.",
                    ("code_l0", "recon_mse", "dead_units_train", "dead_units_test"), figure="code_nonzeros",
                    when=lambda c: c.aux_units > 0, reference=lambda c: round(c.alpha * c.k)),
              Claim("Makhzani & Frey 2013",
                    "Every code keeps exactly k = {k} of its {latent_dim} units (alpha k as features) and still reconstructs the "
                    "input from them (AuxK is off: dead units are not fought).",
                    ("code_l0", "recon_mse", "dead_units_test", "dead_units_train"), figure="code_nonzeros",
                    reference=lambda c: round(c.alpha * c.k)))

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
        self.k_current = round(c.k_first + (c.k - c.k_first) * t)

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """a (B, D) = W_enc x + b_enc, or W_enc (x - b_dec) + b_enc when centred."""
        if self.config.centred:
            x = x - self.decoder.net[0].bias.view(1, *self.config.input_shape)
        return self.encoder(x)

    def encode(self, x, y=None):
        return keep_topk(self.pre_activations(x), round(self.config.alpha * self.k))  # (B, D), alpha*k non-zeros per row

    def decode(self, z, y=None):
        return self.decoder(z)

    def reconstruct(self, x, y=None):
        """x_hat from the top k units, the code the decoder is trained on (not encode's alpha*k features)."""
        return self.decoder(keep_topk(self.pre_activations(x), self.k))

    def forward(self, x, y=None) -> ModelOutput:
        a = self.pre_activations(x)  # (B, D) linear pre-activations
        z = keep_topk(a, self.k_current)
        x_hat = self.decoder(z)
        recon = reconstruction_loss("mse", x_hat, x).mean()
        terms = {"recon": recon, "k": torch.tensor(float(self.k_current))}
        loss = recon
        if self.training:
            with torch.no_grad():
                fired = (z != 0).any(0)
                self.steps_since_fired.add_(1).masked_fill_(fired, 0)
        aux_k = self.config.aux_units
        if aux_k > 0:
            dead = self.steps_since_fired >= self.config.dead_steps
            n_dead = int(dead.sum())
            terms["dead"] = torch.tensor(float(n_dead))
            if n_dead > 0:
                z_aux = keep_topk(a, min(aux_k, n_dead), among=dead)
                e = (x - x_hat).detach()
                e_hat = self.decoder(z_aux) - self.decoder(torch.zeros_like(z_aux[:1]))  # W_dec z_aux: the decoder is linear
                aux = reconstruction_loss("mse", e_hat, e).mean()
                terms["aux"] = aux
                loss = loss + self.config.aux_coef * aux
        return ModelOutput(loss=loss, terms=terms, x_hat=x_hat, z=z)

    @torch.no_grad()
    def on_fit_start(self, x: torch.Tensor) -> None:
        if self.config.centred:  # b_dec starts at the mean input (Gao et al. take the geometric median)
            self.decoder.net[0].bias.copy_(x.flatten(1).mean(0))

    def on_load(self, run_dir) -> None:
        """Runs saved before ``center`` existed were trained uncentred: keep them so."""
        path = Path(run_dir) / "config.json"
        if self.config.center is None and path.exists() and "center" not in json.loads(path.read_text()).get("config", {}):
            self.config.center = False

    @torch.no_grad()
    def eval_metrics(self, x, y=None, **options: Any) -> dict[str, Any]:
        """Dead units, two ways: ``dead_units_test``, the share of units never among the top k of any
        input of the split (the code that reconstructs; ``dead_units`` counts encode's alpha*k features);
        ``dead_units_train``, the share not in the top k of any training input over the last
        ``dead_steps`` steps of training (AuxK's definition, Gao et al. 2024)."""
        fired = torch.zeros(self.config.latent_dim, dtype=torch.bool, device=x.device)
        for i in range(0, x.shape[0], 1024):
            fired |= (keep_topk(self.pre_activations(x[i : i + 1024]), self.k) != 0).any(0)
        return {"dead_units_test": float((~fired).double().mean()),
                "dead_units_train": float((self.steps_since_fired >= self.config.dead_steps).double().mean())}

    @torch.no_grad()
    def decoder_filters(self) -> torch.Tensor:
        """(D, *input_shape): what each code unit writes into the output."""
        return unit_responses(self.decoder, self.config.latent_dim)
