"""The denoising autoencoder.

Vincent, Larochelle, Bengio & Manzagol 2008, "Extracting and composing robust features with
denoising autoencoders", ICML. Objective: min E_x E_{x_tilde ~ q(x_tilde|x)} L(x, g(f(x_tilde))):
the input is corrupted, the target stays clean. The inner expectation is estimated with L
corruptions per example (``corruption_samples``). q is masking noise (the paper's: a fraction p of
the inputs set to 0), isotropic Gaussian noise (sigma) or salt-and-pepper noise (fraction p set to
0 or 1), from ``aezoo.nn.corruption``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..config import check
from ..nn.corruption import Corruption
from ..nn.nets import ACTIVATIONS, activation, decoder_for, encoder_for
from ..registry import register
from .ae import output_mean, reconstruction_loss
from .base import Claim, DenoisingModel, ModelConfig, ModelOutput


@dataclass
class DenoisingAEConfig(ModelConfig):
    loss: Literal["mse", "bce"] = "mse"
    corruption: Literal["mask", "gaussian", "salt_pepper"] = "mask"
    p: float = 0.25  # fraction corrupted, for mask and salt_pepper
    sigma: float = 0.3  # noise standard deviation, for gaussian
    corruption_samples: int = 1  # L corruptions of each input, averaged
    code_activation: str = "identity"  # 'sigmoid' gives the paper's h = s(W x_tilde + b)

    def __post_init__(self):
        super().__post_init__()
        check(0 <= self.p <= 1, "p", f"must be in [0, 1], got {self.p}")
        check(self.sigma >= 0, "sigma", f"must be >= 0, got {self.sigma}")
        check(self.corruption_samples >= 1, "corruption_samples", f"must be >= 1, got {self.corruption_samples}")
        check(self.code_activation in ACTIVATIONS, "code_activation", f"must be one of {', '.join(ACTIVATIONS)}, got {self.code_activation!r}")


@register("denoising_ae")
class DenoisingAE(DenoisingModel):
    Config = DenoisingAEConfig
    claims = (Claim("Vincent et al. 2008",
                    "Trained to undo its corruption ({corruption}), it maps corrupted test inputs closer to the clean ones "
                    "(denoise_psnr above noisy_psnr), and better than an autoencoder of the same size (benchmarks/README.md).",
                    ("noisy_psnr", "denoise_psnr"), figure="denoising"),)

    def __init__(self, config: DenoisingAEConfig):
        super().__init__(config)
        c = config
        self.encoder = encoder_for(c)
        self.code_act = activation(c.code_activation)
        self.decoder = decoder_for(c)
        # the training corruption, declared by DenoisingModel: evaluation and the denoising figure apply it
        self.corruption = Corruption(c.corruption, c.sigma if c.corruption == "gaussian" else c.p)

    def encode(self, x, y=None):
        return self.code_act(self.encoder(x))  # (B, D)

    def decode(self, z, y=None):
        return output_mean(self.config.loss, self.decoder(z))

    def forward(self, x, y=None) -> ModelOutput:
        L = self.config.corruption_samples
        x_rep = x.repeat(L, *([1] * (x.dim() - 1)))  # (L*B, ...): L corruptions of every example
        x_tilde = self.corruption(x_rep)
        z = self.encode(x_tilde)
        out = self.decoder(z)
        recon = reconstruction_loss(self.config.loss, out, x_rep).mean()  # = mean over B of the mean over L
        b = x.shape[0]
        return ModelOutput(loss=recon, terms={"recon": recon}, x_hat=output_mean(self.config.loss, out[:b]), z=z[:b])
