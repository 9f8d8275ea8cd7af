"""The scale hyperprior: an image codec learned end to end.

Ballé, Minnen, Singh, Hwang & Johnston 2018, "Variational image compression with a scale hyperprior",
arXiv:1802.01436. An analysis transform y = g_a(x) (convolutions and GDN, 16x down), a hyper-analysis
z = h_a(|y|) (4x further down), and their inverses. z is coded with a factorized density (the entropy
bottleneck), y with a Gaussian whose scale sigma = h_s(z_hat) the decoder recomputes from z_hat. The
objective is rate plus lambda times distortion (eq. 9, with the paper's 255^2 for 8-bit MSE):
    L = E[-log2 p(y~ | z~) - log2 p(z~)] / pixels + lambda * 255^2 * MSE(x, g_s(y~)),
with quantisation replaced by additive uniform noise in training (y~ = y + u) and rounding at test
time. Option ``entropy=mean_scale``: the Gaussian also has a mean mu = h_s(z_hat) (the mean-scale
hyperprior of Minnen, Ballé & Toderici 2018, arXiv:1809.02736, section 3, without its context model),
and h_a reads y rather than |y|.

Choices of ours, for files that decode the same on every machine (``nn/integer.py``): h_s is an integer
network (Ballé, Johnston & Minnen 2019) whose last layer gives each latent an integer index into a
fixed table of 64 log-spaced scales (0.11 to 256, CompressAI's table), and mu on a grid of 1/16; the
factorized density is turned into a fixed probability table over -63..63 after every step
(``refresh_tables``), stored with the weights. ``compress/learned.py`` codes with these tables only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check
from ..nn.entropy import CODER_FLOOR, EntropyBottleneck, gaussian_likelihood, inward_clamp, noisy, ste_round
from ..nn.gdn import GDN
from ..nn.integer import ACT_BITS, FixedPointConv, qrelu, qrelu_exact, to_units
from ..registry import register
from .base import BaseConfig, Claim, CodingTables, LearnedCodec, ModelOutput

Z_RADIUS = 63  # hyper-latents are coded in -63..63
Y_RADIUS = 1023  # latents (minus their mean) in -1023..1023
SCALES = 64  # entries of the scale table
SCALE_MIN, SCALE_MAX = 0.11, 256.0
# CompressAI's lambdas for its qualities 1..8 (MSE): the named qualities of docs/models.md
QUALITY_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)


@dataclass
class ScaleHyperpriorConfig(BaseConfig):
    latent_dim: int = 192  # M: channels of y
    channels: int = 128  # N: channels of the transforms and of z
    lmbda: float = 0.0130  # lambda: the rate-distortion trade-off (higher: more bits, better images)
    entropy: Literal["scale", "mean_scale"] = "scale"

    def __post_init__(self):
        super().__post_init__()
        check(len(self.input_shape) == 3, "input_shape", f"an image codec needs image input (C, H, W), got {self.input_shape}")
        check(self.channels >= 1, "channels", f"must be >= 1, got {self.channels}")
        check(self.lmbda > 0 and math.isfinite(self.lmbda), "lmbda", f"must be a positive number, got {self.lmbda}")


def sizes(h: int, w: int, levels: int) -> list[tuple[int, int]]:
    """(h, w) after each stride-2 layer (padding 2, kernel 5: ceil(n / 2)), the input first."""
    out = [(h, w)]
    for _ in range(levels):
        h, w = -(-h // 2), -(-w // 2)
        out.append((h, w))
    return out


def conv(c_in: int, c_out: int, k: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride, padding=k // 2)


def deconv(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, 5, 2, padding=2, output_padding=1)


@register("scale_hyperprior")
class ScaleHyperprior(LearnedCodec):
    Config = ScaleHyperpriorConfig
    tiny = {"input_shape": (1, 8, 8), "latent_dim": 8, "channels": 8}
    # 1e-3 (3e-3 diverges in the first steps), clipped as CompressAI's examples; a cosine decay to 0
    # gives the last steps small moves, as the paper's lowered learning rate late in training does
    train_defaults = {"lr": 1e-3, "clip_grad_norm": 1.0, "lr_schedule": "cosine", "warmup_steps": 100, "min_steps": 2000}
    claims = (Claim("Ballé et al. 2018",
                    "As an image codec: the .aez files it writes cost what its entropy model estimates (bpp_file vs bpp), "
                    "and its images are better than JPEG's and WebP's at the same rate (psnr_gain_vs_jpeg, psnr_gain_vs_webp > 0 dB).",
                    ("bpp", "bpp_file", "psnr", "psnr_gain_vs_jpeg", "psnr_gain_vs_webp"), figure="rate_distortion"),)

    def __init__(self, config: ScaleHyperpriorConfig):
        super().__init__(config)
        c, n, m = config.input_shape[0], config.channels, config.latent_dim
        self.g_a = nn.ModuleList([conv(c, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m)])
        self.g_s = nn.ModuleList([deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
                                  deconv(n, n), GDN(n, inverse=True), deconv(n, c)])
        self.mean_scale = config.entropy == "mean_scale"
        self.h_a = nn.Sequential(conv(m, n, 3, 1), nn.ReLU(), conv(n, n), nn.ReLU(), conv(n, n))
        self.h_s = nn.ModuleList([FixedPointConv(n, n, 5, 2, transposed=True), FixedPointConv(n, n, 5, 2, transposed=True),
                                  FixedPointConv(n, 2 * m if self.mean_scale else m, 3, 1)])
        with torch.no_grad():  # start the scales mid-table (sigma ~ 1.3), not at its floor
            self.h_s[-1].bias[:m].fill_(SCALES / 3)
        self.entropy_bottleneck = EntropyBottleneck(n)
        self.register_buffer("scale_table", torch.exp(torch.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALES)))
        self.register_buffer("z_table", torch.zeros(n, 2 * Z_RADIUS + 1))
        self.refresh_tables()

    # --- transforms -------------------------------------------------------------------------
    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> y (B, M, ceil(H/16), ceil(W/16))."""
        for layer in self.g_a:
            x = layer(x)
        return x

    def synthesis(self, y_hat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """y_hat -> x_hat (B, C, *size), retracing the encoder's sizes of an input of ``size``."""
        steps = sizes(*size, 4)[::-1][1:]
        i = 0
        for layer in self.g_s:
            if isinstance(layer, nn.ConvTranspose2d):
                y_hat = layer(y_hat, output_size=steps[i])
                i += 1
            else:
                y_hat = layer(y_hat)
        return y_hat

    def hyper_analysis(self, y: torch.Tensor) -> torch.Tensor:
        return self.h_a(y if self.mean_scale else y.abs())

    def _split(self, v: torch.Tensor):
        m = self.config.latent_dim
        return v[:, :m], (v[:, m:] if self.mean_scale else None)

    def hyper_synthesis(self, z: torch.Tensor, y_size: tuple[int, int]):
        """Training view of h_s: z (noisy or integer) -> (scale index (float, straight-through), mean or None)."""
        a1, a2, out = self.h_s
        with torch.autocast(z.device.type, enabled=False):  # the grids need fp32 (bf16 holds 8 bits of mantissa)
            a = qrelu(a1(z.float(), size=sizes(*y_size, 2)[1]))
            a = qrelu(a2(a, size=y_size))
            index, mean = self._split(out(a))
        index = inward_clamp(ste_round(index), 0, SCALES - 1)
        if mean is not None:
            mean = ste_round(mean * 2**ACT_BITS) / 2**ACT_BITS
        return index, mean

    def sigma(self, index: torch.Tensor) -> torch.Tensor:
        """The table's scale at each (integer-valued) index, with d sigma / d index = sigma * log step."""
        step = math.log(SCALE_MAX / SCALE_MIN) / (SCALES - 1)
        table = self.scale_table.to(index.device)[index.detach().long()]
        return table * torch.exp(step * (index - index.detach()))

    # --- the LearnedCodec capability (compress/learned.py) ---------------------------------------
    @torch.no_grad()
    def entropy_parameters(self, z: torch.Tensor, y_size: tuple[int, int]):
        """Integer hyper-latents z (B, N, hz, wz) -> (scale index (B, M, *y_size) int64, mean float64 or
        None), on the CPU in exact integer arithmetic (``nn/integer.py``): the same on every machine."""
        a1, a2, out = self.h_s
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            a = z.detach().cpu().double() * 2**ACT_BITS
            a = qrelu_exact(a1.exact(a, size=sizes(*y_size, 2)[1]))
            a = qrelu_exact(a2.exact(a, size=y_size))
            index, mean = self._split(out.exact(a))
            index = to_units(index, 0).clamp(0, SCALES - 1).long()
            if mean is not None:
                mean = to_units(mean, ACT_BITS) / 2**ACT_BITS
        return index, mean

    @torch.no_grad()
    def symbols(self, x: torch.Tensor):
        """Images (B, C, H, W) -> (z, y): the integers a file holds, int64 on the CPU."""
        y = self.analysis(x).float()
        z = torch.round(self.hyper_analysis(y).float()).clamp(-Z_RADIUS, Z_RADIUS).cpu().long()
        mean = self.entropy_parameters(z, tuple(y.shape[-2:]))[1] if self.mean_scale else None
        y = y.cpu().double()
        return z, torch.round(y - mean if mean is not None else y).clamp(-Y_RADIUS, Y_RADIUS).long()

    @torch.no_grad()
    def decode_symbols(self, z: torch.Tensor, y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        _, mean = self.entropy_parameters(z, tuple(y.shape[-2:]))
        y_hat = (y.double() + mean if mean is not None else y.double()).float().to(self.device)
        return self.synthesis(y_hat, size)

    def symbol_shapes(self, size: tuple[int, int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        (hy, wy), (hz, wz) = sizes(*size, 4)[4], sizes(*size, 6)[6]
        return (self.config.channels, hz, wz), (self.config.latent_dim, hy, wy)

    def coding_tables(self) -> CodingTables:
        return CodingTables(self.z_table.detach().cpu().double().numpy(), Z_RADIUS,
                            self.scale_table.detach().cpu().double().numpy(), Y_RADIUS)

    @torch.no_grad()
    def refresh_tables(self) -> None:
        """The coder's table of p(z), from the entropy bottleneck's current weights (kept as a buffer, so
        that a file decodes with exactly the numbers it was written with)."""
        self.z_table.copy_(self.entropy_bottleneck.table(Z_RADIUS).to(self.z_table))

    def on_step(self, step: int, total_steps: int) -> None:
        self.refresh_tables()

    def on_fit_end(self, x: torch.Tensor) -> None:
        self.refresh_tables()

    # --- the contract -------------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.symbol_shapes(tuple(self.config.input_shape[1:]))[1]

    def encode(self, x, y=None) -> torch.Tensor:
        return self.analysis(x)

    def decode(self, z, y=None) -> torch.Tensor:
        return self.synthesis(z, tuple(self.config.input_shape[1:]))

    def reconstruct(self, x, y=None) -> torch.Tensor:
        """What a file decodes to: the latents rounded as the coder rounds them."""
        z, y_sym = self.symbols(x)
        return self.decode_symbols(z, y_sym, tuple(x.shape[-2:]))

    def forward(self, x: torch.Tensor, y=None) -> ModelOutput:
        size = tuple(x.shape[-2:])
        latent = self.analysis(x)
        z = self.hyper_analysis(latent)
        z_hat = noisy(z) if self.training else torch.round(z).clamp(-Z_RADIUS, Z_RADIUS)
        index, mean = self.hyper_synthesis(z_hat, tuple(latent.shape[-2:]))
        centred = latent - mean if mean is not None else latent
        r = noisy(centred) if self.training else torch.round(centred).clamp(-Y_RADIUS, Y_RADIUS)
        y_hat = r + mean if mean is not None else r
        x_hat = self.synthesis(y_hat, size)
        pixels = size[0] * size[1]
        bits_y = -torch.log2(gaussian_likelihood(r, self.sigma(index))).flatten(1).sum(1) / pixels
        bits_z = -torch.log2(self.entropy_bottleneck.likelihood(z_hat)).flatten(1).sum(1) / pixels
        mse = F.mse_loss(x_hat.float(), x.float(), reduction="none").flatten(1).mean(1)
        loss = (bits_y + bits_z + self.config.lmbda * 255**2 * mse).mean()
        return ModelOutput(loss, {"bpp": (bits_y + bits_z).mean().detach(), "bpp_y": bits_y.mean().detach(),
                                  "bpp_z": bits_z.mean().detach(), "mse": mse.mean().detach(),
                                  "psnr": (10 * torch.log10(1 / mse.clamp_min(1e-10))).mean().detach()}, x_hat, latent)

    # --- evaluation -------------------------------------------------------------------------------
    @torch.no_grad()
    def estimated_bits(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B,) bits the entropy model gives symbols (z, y), with the coder's own tables and its floor: the
        range coder gives every symbol at least 2**-24 (constriction's leaky quantisation), so an outlier
        the Gaussian calls near-impossible costs 24 bits in the file, not the 30 of LIKELIHOOD_MIN."""
        tables = self.coding_tables()
        index, _ = self.entropy_parameters(z, tuple(y.shape[-2:]))
        sigma = torch.from_numpy(tables.scale_table)[index]
        bits_y = -torch.log2(gaussian_likelihood(y.double(), sigma).double().clamp_min(CODER_FLOOR)).flatten(1).sum(1)
        pz = torch.from_numpy(tables.z_pmf).clamp_min(CODER_FLOOR)  # (N, K)
        zi = (z + Z_RADIUS).permute(1, 0, 2, 3).reshape(z.shape[1], -1)  # (N, B*hz*wz)
        bits_z = -torch.log2(pz.gather(1, zi)).reshape(z.shape[1], z.shape[0], -1).sum((0, 2))
        return bits_y + bits_z
