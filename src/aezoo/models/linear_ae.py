"""The linear autoencoder and its link to PCA.

Baldi & Hornik 1989, "Neural networks and principal component analysis: learning from examples
without local minima", Neural Networks 2(1). Objective: min_{W_e, W_d} E_x ||x - W_d W_e x||^2 with
no nonlinearity anywhere; every local minimum is global and the decoder's column space is the span
of the top-k principal components of the (centred) data, so the reconstruction error equals PCA's.

The encoder and decoder are the shared nets with the identity activation: with ``hidden=()`` one
linear map each way; with hidden widths, a deep linear network (still linear, same optimum).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from ..config import check
from ..nn.nets import decoder_for, encoder_for, unit_responses
from ..nn.pca import pca_basis, pca_reconstruction_mse, principal_angles_deg
from ..registry import register
from .ae import reconstruction_loss
from .base import BaseConfig, Claim, LinearSubspaceModel, ModelOutput, check_arch, check_channels, check_hidden


@dataclass
class LinearAEConfig(BaseConfig):
    # no nonlinearity anywhere: a field of configs before issue 12, dropped on load
    retired: ClassVar[dict[str, Any]] = {"activation": "identity"}

    arch: Literal["mlp", "conv"] = "mlp"
    hidden: tuple[int, ...] = ()  # () = one linear map each way, as in Baldi & Hornik
    channels: tuple[int, ...] = (32, 64)  # conv channels, encoder side (arch=conv)

    def __post_init__(self):
        super().__post_init__()
        check_hidden(self.hidden)
        check_channels(self.channels)
        check_arch(self.arch, self.input_shape)
        check(self.latent_dim <= math.prod(self.input_shape), "latent_dim", f"must be <= the input size {math.prod(self.input_shape)} for a PCA subspace, got {self.latent_dim}")


@register("linear_ae")
class LinearAE(LinearSubspaceModel):
    Config = LinearAEConfig
    # the angle needs the eigenvalue gap below component k to be learned: on the 8x8 digits (gap ratio
    # 1.14 at k = 8) Adam at 1e-2 with a cosine decay reaches 0.6 degrees in 10,000 steps and 37 in
    # 2,000 (benchmarks/README.md); 30 epochs of Fashion-MNIST are 12,660 steps
    train_defaults = {"lr": 1e-2, "lr_schedule": "cosine", "min_steps": 10_000}
    claims = (Claim("Baldi & Hornik 1989",
                    "With no nonlinearity, training reaches PCA: the decoder spans the top-{latent_dim} principal subspace "
                    "(largest principal angle near 0 degrees) and reconstructs as well as PCA (pca_mse_ratio 1).",
                    ("pca_mse_ratio", "pca_angle_max_deg"), figure="principal_angles"),)

    def __init__(self, config: LinearAEConfig):
        super().__init__(config)
        c = config
        self.encoder = encoder_for(c, act="identity")
        self.decoder = decoder_for(c, act="identity")

    def encode(self, x, y=None):
        return self.encoder(x)  # (B, k)

    def decode(self, z, y=None):
        return self.decoder(z)  # (B, *input_shape)

    def forward(self, x, y=None) -> ModelOutput:
        z = self.encoder(x)
        x_hat = self.decoder(z)
        recon = reconstruction_loss("mse", x_hat, x).mean()
        return ModelOutput(loss=recon, terms={"recon": recon}, x_hat=x_hat, z=z)

    @torch.no_grad()
    def decoder_matrix(self) -> torch.Tensor:
        """(d, k): the linear part of the (affine) decoder, whose columns span the learned subspace."""
        return unit_responses(self.decoder, self.config.latent_dim).flatten(1).T

    @torch.no_grad()
    def principal_angles(self, x_train: torch.Tensor) -> torch.Tensor:
        """(k,) principal angles in degrees, ascending, between the decoder's column space and the top-k
        PCA subspace of ``x_train``."""
        _, basis = pca_basis(x_train.cpu(), self.config.latent_dim)
        return principal_angles_deg(self.decoder_matrix().cpu(), basis).sort().values

    @torch.no_grad()
    def pca_subspace_metrics(self, x_train: torch.Tensor, x: torch.Tensor) -> dict[str, Any]:
        """Baldi & Hornik's claim, measured: the largest principal angle between the decoder's column
        space and the top-k PCA subspace of ``x_train``, and the MSE on ``x`` divided by PCA's."""
        mean, basis = pca_basis(x_train.cpu(), self.config.latent_dim)
        angle = principal_angles_deg(self.decoder_matrix().cpu(), basis).max()
        x_hat = torch.cat([self.reconstruct(x[i : i + 1024]) for i in range(0, x.shape[0], 1024)])
        mse = float((x_hat - x).double().pow(2).mean())
        pca_mse = pca_reconstruction_mse(x.cpu(), mean, basis)
        return {"pca_angle_max_deg": float(angle), "pca_mse_ratio": mse / pca_mse if pca_mse > 0 else float("nan")}
