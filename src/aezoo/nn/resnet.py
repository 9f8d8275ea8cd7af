"""Residual convolutional encoders and decoders for natural images of any size (issue 13).

The layout of van den Oord et al. 2017 ("Neural Discrete Representation Learning", arXiv:1711.00937,
section 4.1): strided convolutions down to the code grid, then residual blocks (ReLU, 3x3 conv, ReLU,
1x1 conv); the decoder mirrors it. Choices of ours: group normalisation (Wu & He 2018,
arXiv:1803.08494) before each block's convolutions, so the nets train at any batch size and under
DDP without batch statistics. Only inside the residual branches: normalising the stream itself (between
stages, before the code) takes away each image's colour and brightness statistics, which then have to be
relearned; on natural-patches 32x32 (VQ-VAE, 120 steps of 16) the mean reconstruction error was 148 with
GroupNorm on the stream too, 52 with no norm, 48.5 with norms in the branches only (the strided 'conv'
nets: 61). And upsampling by resize-then-convolution (Odena, Dumoulin & Olah 2016,
"Deconvolution and Checkerboard Artifacts", distill.pub), which never makes the checkerboard of a
stride-2 transposed convolution and retraces odd sizes exactly (nearest resize to the encoder's size at
each stage). Sub-pixel convolution (Shi et al. 2016, arXiv:1609.05158, ICNR-initialised) is the other
option (``upsample="subpixel"``): benchmarks/bench_images.py measures both; resize won (README there).

Sizes: ``downsample`` = 2^stages (4, 8 or 16); each stride-2 convolution (k=3, p=1) maps h to ceil(h/2),
so any H, W >= 1 works; the code grid is (ceil(H/d), ceil(W/d)).

Conditioning (``cond_dim`` > 0, the CVAE's label): c enters as constant channels, joined to the
encoder's input image and to the decoder's input at every stage.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .nets import activation, conv_sizes

DOWNSAMPLE = (4, 8, 16)
UPSAMPLE = ("resize", "subpixel")


def _groups(ch: int) -> int:
    """The most groups <= 32 that divide ``ch`` (32 is Wu & He's default)."""
    return next(g for g in range(min(32, ch), 0, -1) if ch % g == 0)


def stage_widths(channels: Sequence[int], downsample: int) -> list[int]:
    """One width per stride-2 stage: ``channels`` in order, the last repeated when it is short."""
    if downsample not in DOWNSAMPLE:
        raise ConfigError(f"config field 'downsample': must be one of {', '.join(map(str, DOWNSAMPLE))}, got {downsample}")
    n = int(math.log2(downsample))
    return [channels[min(i, len(channels) - 1)] for i in range(n)]


def _with(x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """x (B, C, H, W) with c (B, K) joined as K constant channels."""
    if c is None:
        return x
    return torch.cat([x, c[:, :, None, None].to(x.dtype).expand(-1, -1, *x.shape[2:])], 1)


class ResBlock(nn.Module):
    """x + conv1x1(act(norm(conv3x3(act(norm(x)))))): the paper's block with group normalisation."""

    def __init__(self, ch: int, act: str = "relu", hidden: int | None = None):
        super().__init__()
        h = hidden or ch
        self.net = nn.Sequential(nn.GroupNorm(_groups(ch), ch), activation(act), nn.Conv2d(ch, h, 3, padding=1),
                                 nn.GroupNorm(_groups(h), h), activation(act), nn.Conv2d(h, ch, 1))

    def forward(self, x):
        return x + self.net(x)


class ResEncoder(nn.Module):
    """(B, C, H, W) -> (B, out_dim), or the feature map (B, width, h, w) with ``out_dim=None``."""

    def __init__(self, input_shape, out_dim: int | None, channels: Sequence[int] = (64, 128), downsample: int = 4, act: str = "relu",
                 cond_dim: int = 0, blocks: int = 2):
        super().__init__()
        c, h, w = input_shape
        widths = stage_widths(channels, downsample)
        self.cond_dim = cond_dim
        layers: list[nn.Module] = []
        for i, ch in enumerate(widths):
            if i:
                layers.append(activation(act))
            layers.append(nn.Conv2d(c + (cond_dim if i == 0 else 0), ch, 3, stride=2, padding=1))
            c = ch
        layers += [ResBlock(c, act) for _ in range(blocks)]
        # the paper's ReLU after the residual stack, without a norm: a unit-variance z_e would start far
        # from a VQ codebook initialised near 0 (commitment and codebook losses ~100x the conv nets')
        layers.append(activation(act))
        self.features = nn.Sequential(*layers)
        self.hs, self.ws = conv_sizes(h, len(widths)), conv_sizes(w, len(widths))
        self.feature_shape = (c, self.hs[-1], self.ws[-1])
        self.head = nn.Linear(math.prod(self.feature_shape) + cond_dim, out_dim) if out_dim else None

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond_dim and c is None:
            raise ValueError("this network is conditioned: pass the conditioning vector c")
        f = self.features(_with(x, c))  # (B, C', h, w)
        if self.head is None:
            return f
        f = f.flatten(1)
        return self.head(f if c is None else torch.cat([f, c.to(f.dtype)], 1))


class Upsample(nn.Module):
    """(B, c_in, h, w) -> (B, c_out, H, W) for H <= 2h, W <= 2w: nearest resize then a 3x3 conv, or a
    sub-pixel conv (3x3 to 4 c_out channels, pixel shuffle, crop)."""

    def __init__(self, c_in: int, c_out: int, size: tuple[int, int], mode: str = "resize"):
        super().__init__()
        if mode not in UPSAMPLE:
            raise ConfigError(f"upsample must be one of {', '.join(UPSAMPLE)}, got {mode!r}")
        self.size, self.mode = tuple(size), mode
        if mode == "resize":
            self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        else:
            self.conv = nn.Conv2d(c_in, 4 * c_out, 3, padding=1)
            with torch.no_grad():  # ICNR (Aitken et al. 2017): the four sub-pixels start equal, so no checkerboard at init
                w = self.conv.weight.view(c_out, 4, c_in, 3, 3)
                w.copy_(w[:, :1].expand_as(w))

    def forward(self, x):
        if self.mode == "resize":
            return self.conv(F.interpolate(x, size=self.size, mode="nearest"))
        y = F.pixel_shuffle(self.conv(x), 2)  # (B, c_out, 2h, 2w)
        return y[:, :, : self.size[0], : self.size[1]]


class ResDecoder(nn.Module):
    """(B, in_dim) -> (B, C, H, W), or from a feature grid (B, width, h, w) with ``in_dim=None``: the
    encoder's residual blocks, then one upsampling per stage back through the encoder's sizes."""

    def __init__(self, output_shape, in_dim: int | None, channels: Sequence[int] = (64, 128), downsample: int = 4, act: str = "relu",
                 cond_dim: int = 0, blocks: int = 2, upsample: str = "resize", grid_channels: int | None = None):
        super().__init__()
        c_out, h, w = output_shape
        widths = stage_widths(channels, downsample)[::-1]
        hs, ws = conv_sizes(h, len(widths))[::-1], conv_sizes(w, len(widths))[::-1]
        self.cond_dim = cond_dim
        self.feature_shape = (widths[0], hs[0], ws[0])
        self.head = nn.Linear(in_dim + cond_dim, math.prod(self.feature_shape)) if in_dim else None
        # with in_dim=None the input is a code grid of ``grid_channels`` (default: the first width)
        self.stem = nn.Conv2d((grid_channels or widths[0]) + cond_dim, widths[0], 3, padding=1)
        self.blocks = nn.Sequential(*[ResBlock(widths[0], act) for _ in range(blocks)])
        self.ups = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i, ch in enumerate(widths):
            nxt = widths[i + 1] if i + 1 < len(widths) else c_out
            self.norms.append(activation(act))
            self.ups.append(Upsample(ch + cond_dim, nxt, (hs[i + 1], ws[i + 1]), upsample))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond_dim and c is None:
            raise ValueError("this network is conditioned: pass the conditioning vector c")
        if self.head is not None:
            z = self.head(z if c is None else torch.cat([z, c.to(z.dtype)], 1)).view(-1, *self.feature_shape)
        x = self.blocks(self.stem(_with(z, c)))
        for norm, up in zip(self.norms, self.ups):
            x = up(_with(norm(x), c))
        return x
