"""The vector-quantised variational autoencoder (VQ-VAE).

van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation Learning", arXiv:1711.00937.
A convolutional encoder maps x to a grid z_e(x) (D channels, e.g. 7x7 for 28x28 inputs); each cell is
replaced by its nearest codebook vector e_k, and the decoder reads the grid z_q. Objective (eq. 3):
    L = -log p(x | z_q(x)) + ||sg[z_e(x)] - e||^2 + beta ||z_e(x) - sg[e]||^2,
with a straight-through gradient from z_q to z_e (or an EMA codebook, appendix A.1). Generation is a
second stage: an autoregressive prior over the code grid, fitted by ``aezoo train-prior RUN_DIR``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..config import check
from ..nn.nets import ConvDecoder, ConvEncoder, activation
from ..nn.priors import attach_prior, code_metrics, load_prior, sample_from_prior
from ..nn.quantizer import VectorQuantizer
from ..registry import register
from .ae import output_mean, reconstruction_loss
from .base import Autoencoder, ModelConfig, ModelOutput


@dataclass
class VQVAEConfig(ModelConfig):
    arch: Literal["mlp", "conv"] = "conv"
    latent_dim: int = 64  # D: the size of each code vector
    num_codes: int = 512  # K
    beta: float = 0.25  # commitment weight
    ema: bool = False  # EMA codebook updates instead of the codebook loss
    decay: float = 0.99  # EMA decay (also of the code-usage statistics)
    dead_threshold: float = 1.0  # a code with fewer EMA assignments per step is dead
    restart: bool = True  # restart dead codes from random encoder outputs
    kmeans_init: bool = False  # k-means codebook from the first batch's encoder outputs
    loss: Literal["mse", "bce"] = "mse"

    def __post_init__(self):
        super().__post_init__()
        check(self.arch == "conv", "arch", f"VQ models have convolutional code grids: use 'conv' with image input (C, H, W), got {self.arch!r}")
        check(self.num_codes >= 2, "num_codes", f"must be >= 2, got {self.num_codes}")
        check(self.beta >= 0, "beta", f"must be >= 0, got {self.beta}")
        check(0 < self.decay < 1, "decay", f"must be in (0, 1), got {self.decay}")
        check(self.dead_threshold >= 0, "dead_threshold", f"must be >= 0, got {self.dead_threshold}")


def make_quantizer(c) -> VectorQuantizer:
    return VectorQuantizer(c.num_codes, c.latent_dim, c.beta, c.ema, c.decay, dead_threshold=c.dead_threshold, restart=c.restart)


@register("vq_vae")
class VQVAE(Autoencoder):
    Config = VQVAEConfig
    generative = True  # through the prior of the second stage
    discrete_codes = True
    grid_names = ("codes",)

    def __init__(self, config: VQVAEConfig):
        super().__init__(config)
        c = config
        ch = c.channels[-1]
        features = ConvEncoder(c.input_shape, None, c.channels, c.activation)
        self.grid = features.feature_shape[1:]  # (h, w)
        self.encoder = nn.Sequential(features, nn.Conv2d(ch, ch, 3, padding=1), activation(c.activation), nn.Conv2d(ch, c.latent_dim, 1))
        self.quantizer = make_quantizer(c)
        self.decoder = nn.Sequential(nn.Conv2d(c.latent_dim, ch, 3, padding=1), activation(c.activation), ConvDecoder(c.input_shape, None, c.channels, c.activation))
        attach_prior(self, None)

    @property
    def quantizers(self) -> list[VectorQuantizer]:
        return [self.quantizer]

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.latent_dim * self.grid[0] * self.grid[1],)

    # --- the model contract ------------------------------------------------------------------
    def encode(self, x, y=None):
        z_q, _, _ = self.quantizer(self.encoder(x))
        return z_q.flatten(1)  # (B, D*h*w): the quantised grid

    def decode(self, z, y=None):
        return output_mean(self.config.loss, self.decoder(z.view(-1, self.config.latent_dim, *self.grid)))

    def forward(self, x, y=None) -> ModelOutput:
        z_e = self.encoder(x)  # (B, D, h, w)
        z_q, _, aux = self.quantizer(z_e)
        out = self.decoder(z_q)
        recon = reconstruction_loss(self.config.loss, out, x).mean()
        terms = {"recon": recon, "perplexity": aux["perplexity"], "dead_codes": aux["dead_codes"], "commitment": aux["commitment"]}
        if "codebook" in aux:
            terms["codebook"] = aux["codebook"]
        return ModelOutput(loss=recon + aux["loss"], terms=terms, x_hat=output_mean(self.config.loss, out), z=z_q)

    def sample(self, n, y=None, temperature: float = 1.0):
        return sample_from_prior(self, n, temperature)

    # --- discrete codes: what the prior, its command and the figures read -------------------------
    @torch.no_grad()
    def code_grids(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.quantizer(self.encoder(x))[1]]  # [(B, h, w)]

    def decode_codes(self, grids: list[torch.Tensor]) -> torch.Tensor:
        return output_mean(self.config.loss, self.decoder(self.quantizer.lookup(grids[0])))

    # --- hooks -------------------------------------------------------------------------------
    def on_fit_start(self, x):
        if self.config.kmeans_init:
            with torch.no_grad():
                self.quantizer.init_kmeans(self.encoder(x))

    def on_load(self, run_dir: str | Path) -> None:
        attach_prior(self, load_prior(run_dir, self.device))

    def eval_metrics(self, x, y=None, **options: Any) -> dict[str, Any]:
        return code_metrics(self, x)
