"""The vector-quantised variational autoencoder (VQ-VAE).

van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation Learning", arXiv:1711.00937.
A convolutional encoder maps x to a grid z_e(x) (D channels, e.g. 7x7 for 28x28 inputs); each cell is
replaced by its nearest codebook vector e_k, and the decoder reads the grid z_q. Objective (eq. 3):
    L = -log p(x | z_q(x)) + ||sg[z_e(x)] - e||^2 + beta ||z_e(x) - sg[e]||^2,
with a straight-through gradient from z_q to z_e (or an EMA codebook, appendix A.1). Generation is a
second stage: an autoregressive prior over the code grid, fitted by ``aezoo train-prior RUN_DIR``.

Quantizer options (``quantizer=vq|rvq|fsq``): the paper's VQ; residual VQ (Zeghidour et al. 2021,
"SoundStream", arXiv:2107.03312): ``stages`` codebooks, each coding the previous residual, trained with
quantizer dropout so that the first s stages decode at rate s; finite scalar quantization (Mentzer et
al. 2023, arXiv:2309.15505): the code has len(``levels``) channels rounded to the product grid of the
levels, with no codebook and no auxiliary loss (``latent_dim`` is then not used). With ``rvq`` each
stage is a code grid of its own (``stage1``, ``stage2``, ...), so the prior and the compressed files see
S grids and coding the first s of them gives rate s; with ``fsq`` a cell's code is the flat index of
its level digits.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from ..config import check
from ..nn.nets import ConvDecoder, ConvEncoder, activation
from ..nn.resnet import ResDecoder, ResEncoder, Upsample
from .code_prior import attach_prior, code_metrics, load_prior, sample_from_prior
from ..nn.quantizer import FiniteScalarQuantizer, ResidualVectorQuantizer, VectorQuantizer
from ..registry import register
from .ae import output_mean, reconstruction_loss
from .base import BaseConfig, Claim, CodeGridModel, ModelOutput, check_channels, check_downsample


@dataclass
class VQVAEConfig(BaseConfig):
    # there is no MLP: a field of configs before issue 12, dropped on load
    retired: ClassVar[dict[str, Any]] = {"hidden": [512, 256]}

    arch: Literal["conv", "resnet"] = "conv"  # resnet: residual nets for natural images (nn/resnet.py)
    downsample: int = 4  # resnet: the code grid is the input size / downsample (4, 8 or 16)
    latent_dim: int = 64  # D: the size of each code vector
    channels: tuple[int, ...] = (32, 64)  # conv channels, encoder side; the decoder mirrors them
    activation: str = "relu"
    num_codes: int = 512  # K
    beta: float = 0.25  # commitment weight
    ema: bool = False  # EMA codebook updates instead of the codebook loss
    decay: float = 0.99  # EMA decay (also of the code-usage statistics)
    dead_threshold: float = 1.0  # a code with fewer EMA assignments per step is dead
    restart: bool = True  # restart dead codes from random encoder outputs
    dead_steps: int | None = None  # also restart a code unassigned for this many steps; None: 10 for rvq (SoundStream), off for vq
    kmeans_init: bool = False  # k-means codebook from the first batch's encoder outputs
    loss: Literal["mse", "bce"] = "mse"
    quantizer: Literal["vq", "rvq", "fsq"] = "vq"
    stages: int = 4  # rvq: residual stages, each a codebook of num_codes
    quantizer_dropout: float = 1.0  # rvq: share of examples trained on a random number of stages (SoundStream: all)
    levels: tuple[int, ...] = (8, 5, 5, 5)  # fsq: values per channel; (8, 5, 5, 5) = 1000 codes, the paper's choice for ~2^10

    def __post_init__(self):
        super().__post_init__()
        check(len(self.input_shape) == 3, "input_shape", f"VQ models have convolutional code grids: they need image input (C, H, W), got {self.input_shape}")
        check_channels(self.channels)
        check_downsample(self.downsample)
        check(self.num_codes >= 2, "num_codes", f"must be >= 2, got {self.num_codes}")
        check(self.beta >= 0, "beta", f"must be >= 0, got {self.beta}")
        check(0 < self.decay < 1, "decay", f"must be in (0, 1), got {self.decay}")
        check(self.dead_threshold >= 0, "dead_threshold", f"must be >= 0, got {self.dead_threshold}")
        check(self.stages >= 1, "stages", f"must be >= 1, got {self.stages}")
        check(self.dead_steps is None or self.dead_steps >= 0, "dead_steps", f"must be >= 0 (0: off), got {self.dead_steps}")
        check(0 <= self.quantizer_dropout <= 1, "quantizer_dropout", f"must be in [0, 1], got {self.quantizer_dropout}")
        check(len(self.levels) >= 1 and all(v >= 3 for v in self.levels), "levels", f"FSQ needs >= 3 values per channel, got {self.levels}")
        if self.quantizer == "fsq":
            check(not self.ema, "ema", "FSQ has no codebook to update: drop ema with quantizer=fsq")
            check(not self.kmeans_init, "kmeans_init", "FSQ has no codebook to initialise: drop kmeans_init with quantizer=fsq")

    @property
    def code_dim(self) -> int:
        """Channels of the quantised grid: len(levels) for FSQ, else latent_dim."""
        return len(self.levels) if self.quantizer == "fsq" else self.latent_dim


def grid_nets(c, grid_channels: int) -> tuple[list[nn.Module], int, nn.Module, tuple[int, int]]:
    """The feature encoder's layers x -> (B, width, h, w), width, the decoder of a (B, grid_channels, h, w)
    grid, and (h, w) (the 'conv' layers keep the state-dict keys of earlier checkpoints). 'conv': the strided stack with a 3x3 conv each side (the decoder upsamples by transposed
    convolutions); 'resnet': the residual nets of ``nn.resnet`` (resize-conv upsampling, no checkerboard)."""
    if c.arch == "resnet":
        enc = ResEncoder(c.input_shape, None, c.channels, c.downsample, c.activation)
        dec = ResDecoder(c.input_shape, None, c.channels, c.downsample, c.activation, grid_channels=grid_channels)
        return [enc], enc.feature_shape[0], dec, enc.feature_shape[1:]
    ch = c.channels[-1]
    features = ConvEncoder(c.input_shape, None, c.channels, c.activation)
    enc = [features, nn.Conv2d(ch, ch, 3, padding=1), activation(c.activation)]
    dec = nn.Sequential(nn.Conv2d(grid_channels, ch, 3, padding=1), activation(c.activation), ConvDecoder(c.input_shape, None, c.channels, c.activation))
    return enc, ch, dec, features.feature_shape[1:]


def grid_upsample(c, c_in: int, c_out: int, small: tuple[int, int], big: tuple[int, int]) -> nn.Module:
    """Grid ``small`` -> ``big`` (= ceil-halved ``small``): resize-conv for 'resnet', else a stride-2 transposed conv."""
    if c.arch == "resnet":
        return Upsample(c_in, c_out, big)
    pad = (big[0] - 2 * small[0] + 1, big[1] - 2 * small[1] + 1)
    return nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=pad)


def make_quantizer(c) -> VectorQuantizer:
    """The VQ of one grid (VQ-VAE-2 builds one per level, and offers the paper's VQ only)."""
    check(c.quantizer == "vq", "quantizer", f"{c.quantizer!r} is an option of vq_vae; this model quantises with 'vq'")
    return VectorQuantizer(c.num_codes, c.latent_dim, c.beta, c.ema, c.decay, dead_threshold=c.dead_threshold, restart=c.restart, dead_steps=c.dead_steps or 0)


def build_quantizer(c: VQVAEConfig) -> nn.Module:
    if c.quantizer == "rvq":
        return ResidualVectorQuantizer(c.stages, c.num_codes, c.latent_dim, c.beta, c.ema, c.decay, c.dead_threshold, c.restart, c.quantizer_dropout,
                                       dead_steps=10 if c.dead_steps is None else c.dead_steps)
    if c.quantizer == "fsq":
        return FiniteScalarQuantizer(c.levels, decay=c.decay, dead_threshold=c.dead_threshold)
    return make_quantizer(c)


@register("vq_vae")
class VQVAE(CodeGridModel):
    Config = VQVAEConfig
    generative = True  # through the prior of the second stage
    tiny = {"input_shape": (1, 8, 8), "latent_dim": 4, "channels": (4, 8)}
    score_kinds = ("prior_nll", "recon")  # the prior's NLL of the codes, once `aezoo train-prior` has fitted one
    # The used codebook comes from the restarts, not from the paper's algorithm (issue 24): with restart=false
    # the CLI defaults on Fashion-MNIST end at perplexity 93 of 512 with 72% of the codes dead on the test
    # split (the audit saw 8.7 and 98%), against 290 and 0% with restarts
    claims = (Claim("Dhariwal et al. 2020 (Jukebox, sec. 3.2), restarting the codes of van den Oord et al. 2017",
                    "Every cell of the code grid is one of K = {num_codes} codebook vectors, and restarting unused codes from "
                    "encoder outputs keeps the codebook used: a high perplexity and few dead codes. The paper's algorithm "
                    "alone (restart=false) does not: on Fashion-MNIST at the CLI defaults (K = 512) it ended at perplexity 93, "
                    "with 72% of the codes dead (290 and 0% with restarts).",
                    ("perplexity", "dead_codes", "recon_mse"), figure="code_usage", when=lambda c: c.quantizer == "vq" and c.restart),
              Claim("van den Oord, Vinyals & Kavukcuoglu 2017",
                    "Every cell of the code grid is one of K = {num_codes} codebook vectors. Without restarts (restart=false) "
                    "most codes go unused: perplexity 93 of 512 and 72% dead codes on Fashion-MNIST at the defaults; "
                    "restart=true (Jukebox) keeps the codebook used.",
                    ("perplexity", "dead_codes", "recon_mse"), figure="code_usage", when=lambda c: c.quantizer == "vq"),
              Claim("Zeghidour et al. 2021 (residual VQ); Mentzer et al. 2023 (FSQ)",
                    "Each stage or level grid of the {quantizer} quantizer is used: high perplexity and few dead codes, "
                    "with no codebook collapse.",
                    ("recon_mse", "bits_per_input"), figure="code_usage", when=lambda c: c.quantizer != "vq"))

    def __init__(self, config: VQVAEConfig):
        super().__init__(config)
        c = config
        d = c.code_dim
        features, width, self.decoder, self.grid = grid_nets(c, d)  # grid (h, w)
        self.encoder = nn.Sequential(*features, nn.Conv2d(width, d, 1))
        self.quantizer = build_quantizer(c)
        attach_prior(self, None)

    @property
    def quantizers(self) -> list[nn.Module]:
        """One codebook per code grid: the stages of RVQ, else the one quantizer."""
        return self.quantizer.codebooks

    @property
    def grid_names(self) -> tuple[str, ...]:
        n = len(self.quantizers)
        return tuple(f"stage{s + 1}" for s in range(n)) if self.config.quantizer == "rvq" else ("codes",)

    def grid_prefixes(self) -> tuple[int, ...]:
        return tuple(range(1, self.config.stages + 1)) if self.config.quantizer == "rvq" else (1,)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.code_dim * self.grid[0] * self.grid[1],)

    # --- the model contract ------------------------------------------------------------------
    def encode(self, x, y=None):
        z_q, _, _ = self.quantizer(self.encoder(x))
        return z_q.flatten(1)  # (B, D*h*w): the quantised grid

    def decode(self, z, y=None):
        return output_mean(self.config.loss, self.decoder(z.view(-1, self.config.code_dim, *self.grid)))

    def forward(self, x, y=None) -> ModelOutput:
        z_e = self.encoder(x)  # (B, D, h, w)
        z_q, _, aux = self.quantizer(z_e)
        out = self.decoder(z_q)
        recon = reconstruction_loss(self.config.loss, out, x).mean()
        terms = {"recon": recon, **{k: aux[k] for k in ("perplexity", "dead_codes", "commitment", "codebook") if k in aux}}
        return ModelOutput(loss=recon + aux["loss"], terms=terms, x_hat=output_mean(self.config.loss, out), z=z_q)

    def sample(self, n, y=None, temperature: float = 1.0):
        return sample_from_prior(self, n, temperature)

    # --- discrete codes: what the prior, its command and the figures read -------------------------
    @torch.no_grad()
    def code_grids(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.quantizer.split(self.quantizer(self.encoder(x))[1])  # [(B, h, w)], one per RVQ stage

    def decode_codes(self, grids: list[torch.Tensor]) -> torch.Tensor:
        """Decode the code grids; with RVQ the first s stages alone decode at rate s."""
        return output_mean(self.config.loss, self.decoder(self.quantizer.decode_grids(grids)))

    # --- hooks -------------------------------------------------------------------------------
    def on_fit_start(self, x):
        if self.config.kmeans_init:
            with torch.no_grad():
                self.quantizer.init_kmeans(self.encoder(x))

    def on_load(self, run_dir: str | Path) -> None:
        attach_prior(self, load_prior(run_dir, self.device))

    def eval_metrics(self, x, y=None, **options: Any) -> dict[str, Any]:
        return code_metrics(self, x)
