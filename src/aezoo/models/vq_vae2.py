"""VQ-VAE-2: a hierarchy of two code grids.

Razavi, van den Oord & Vinyals 2019, "Generating Diverse High-Fidelity Images with VQ-VAE-2",
arXiv:1906.00446. The bottom encoder maps x to features h_b (e.g. 7x7 for 28x28 inputs), the top
encoder h_b to h_t at half the size; the top codes e_t = Q_t(h_t) are decoded and joined to h_b
before quantising the bottom, so the bottom codes e_b = Q_b(h_b, e_t) are conditioned on the top.
The decoder reads both grids. Objective (the VQ-VAE loss of each level):
    L = -log p(x | e_b, e_t) + sum_{l in {t, b}} ||sg[z_l] - e_l||^2 + beta ||z_l - sg[e_l]||^2.
Codebooks are updated by exponential moving averages, as in the paper. Generation is a second stage:
a top prior, then a bottom prior in which every cell is conditioned on the whole top grid
(``aezoo train-prior RUN_DIR``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..nn.nets import activation, conv_sizes
from .code_prior import attach_prior, code_metrics, load_prior, sample_from_prior
from ..nn.quantizer import VectorQuantizer
from ..registry import register
from .ae import output_mean, reconstruction_loss
from .base import Claim, CodeGridModel, ModelOutput
from .vq_vae import VQVAEConfig, grid_nets, grid_upsample, make_quantizer


@dataclass
class VQVAE2Config(VQVAEConfig):
    """The VQ-VAE fields; both levels share K, D and the quantiser options."""

    ema: bool = True  # Razavi et al. update both codebooks by exponential moving averages


@register("vq_vae2")
class VQVAE2(CodeGridModel):
    Config = VQVAE2Config
    generative = True  # through the priors of the second stage
    tiny = {"input_shape": (1, 8, 8), "latent_dim": 4, "channels": (4, 8)}
    score_kinds = ("prior_nll", "recon")  # the prior's NLL of the codes, once `aezoo train-prior` has fitted one
    grid_names = ("top", "bottom")
    claims = (Claim("Razavi, van den Oord & Vinyals 2019",
                    "Both code grids are used: the top grid keeps global structure, the bottom grid, quantised given the top "
                    "codes, the detail; few of the {num_codes} codes of each codebook are dead.",
                    ("perplexity_top", "perplexity_bottom", "dead_codes_top", "dead_codes_bottom", "recon_mse"), figure="code_usage"),)

    def __init__(self, config: VQVAE2Config):
        super().__init__(config)
        c = config
        d, act = c.latent_dim, c.activation
        features, ch, decoder, self.grid_b = grid_nets(c, 2 * d)  # (h_b, w_b)
        self.grid_t = (conv_sizes(self.grid_b[0], 1)[1], conv_sizes(self.grid_b[1], 1)[1])
        self.enc_b = nn.Sequential(*features)
        self.enc_t = nn.Sequential(nn.Conv2d(ch, ch, 3, stride=2, padding=1), activation(act), nn.Conv2d(ch, ch, 3, padding=1), activation(act))
        self.pre_t = nn.Conv2d(ch, d, 1)
        self.q_t = make_quantizer(c)
        self.dec_t = nn.Sequential(grid_upsample(c, d, ch, self.grid_t, self.grid_b), activation(act))  # top codes -> bottom grid
        self.pre_b = nn.Conv2d(2 * ch, d, 1)
        self.q_b = make_quantizer(c)
        self.up_t = grid_upsample(c, d, d, self.grid_t, self.grid_b)  # the decoder's view of the top codes
        self.decoder = decoder
        attach_prior(self, None)

    @property
    def quantizers(self) -> list[VectorQuantizer]:
        return [self.q_t, self.q_b]

    @property
    def lengths(self) -> tuple[int, int]:
        return self.grid_t[0] * self.grid_t[1], self.grid_b[0] * self.grid_b[1]

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.latent_dim * sum(self.lengths),)

    def quantize(self, x):
        """x -> (top, bottom) quantiser outputs, each (z_q, indices, aux)."""
        h_b = self.enc_b(x)  # (B, C, h_b, w_b)
        top = self.q_t(self.pre_t(self.enc_t(h_b)))  # z_q (B, D, h_t, w_t)
        bottom = self.q_b(self.pre_b(torch.cat([h_b, self.dec_t(top[0])], 1)))  # z_q (B, D, h_b, w_b)
        return top, bottom

    def _decode(self, z_t, z_b):
        return self.decoder(torch.cat([z_b, self.up_t(z_t)], 1))

    # --- the model contract ------------------------------------------------------------------
    def encode(self, x, y=None):
        (z_t, _, _), (z_b, _, _) = self.quantize(x)
        return torch.cat([z_t.flatten(1), z_b.flatten(1)], 1)  # (B, D*(L_t + L_b)), top first

    def decode(self, z, y=None):
        d = self.config.latent_dim
        z_t, z_b = z.split([d * n for n in self.lengths], 1)
        out = self._decode(z_t.view(-1, d, *self.grid_t), z_b.view(-1, d, *self.grid_b))
        return output_mean(self.config.loss, out)

    def forward(self, x, y=None) -> ModelOutput:
        (z_t, _, aux_t), (z_b, _, aux_b) = self.quantize(x)
        out = self._decode(z_t, z_b)
        recon = reconstruction_loss(self.config.loss, out, x).mean()
        terms = {"recon": recon}
        for key in ("perplexity", "dead_codes", "commitment", "codebook"):  # codebook health first: the progress bar shows four
            terms.update({f"{key}_{name}": aux[key] for name, aux in (("top", aux_t), ("bottom", aux_b)) if key in aux})
        loss = recon + aux_t["loss"] + aux_b["loss"]
        return ModelOutput(loss=loss, terms=terms, x_hat=output_mean(self.config.loss, out), z=torch.cat([z_t.flatten(1), z_b.flatten(1)], 1))

    def sample(self, n, y=None, temperature: float = 1.0):
        return sample_from_prior(self, n, temperature)

    # --- discrete codes: what the prior, its command and the figures read -------------------------
    @torch.no_grad()
    def code_grids(self, x: torch.Tensor) -> list[torch.Tensor]:
        top, bottom = self.quantize(x)
        return [top[1], bottom[1]]  # [(B, h_t, w_t), (B, h_b, w_b)]

    def decode_codes(self, grids: list[torch.Tensor]) -> torch.Tensor:
        return output_mean(self.config.loss, self._decode(self.q_t.lookup(grids[0]), self.q_b.lookup(grids[1])))

    # --- hooks -------------------------------------------------------------------------------
    @torch.no_grad()
    def on_fit_start(self, x):
        if self.config.kmeans_init:  # top first: the bottom's inputs depend on the top codes
            h_b = self.enc_b(x)
            self.q_t.init_kmeans(self.pre_t(self.enc_t(h_b)))
            z_t = self.q_t.lookup(self.q_t(self.pre_t(self.enc_t(h_b)))[1])
            self.q_b.init_kmeans(self.pre_b(torch.cat([h_b, self.dec_t(z_t)], 1)))

    def on_load(self, run_dir: str | Path) -> None:
        attach_prior(self, load_prior(run_dir, self.device))

    def eval_metrics(self, x, y=None, **options: Any) -> dict[str, Any]:
        return code_metrics(self, x)
