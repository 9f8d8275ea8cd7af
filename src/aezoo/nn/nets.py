"""Encoder and decoder networks that the models plug in: an MLP over the flattened input, or a
strided convolutional stack for (C, H, W) images. Shapes are computed from ``input_shape``; no dummy
forward passes."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU, "identity": nn.Identity}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def mlp(sizes: Sequence[int], act: str = "relu", final_act: str | None = None) -> nn.Sequential:
    """Linear layers between consecutive ``sizes`` with ``act`` between them."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation(act))
    if final_act:
        layers.append(activation(final_act))
    return nn.Sequential(*layers)


def _image_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ConfigError(f"arch 'conv' needs images of shape (C, H, W), got input_shape {tuple(input_shape)}; use arch 'mlp'")
    return tuple(input_shape)  # type: ignore[return-value]


def conv_sizes(h: int, n: int) -> list[int]:
    """Spatial sizes through ``n`` stride-2 (k=3, p=1) convolutions: h, ceil(h/2), ..."""
    sizes = [h]
    for _ in range(n):
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, out_dim) through stride-2 convolutions with ``channels`` and a linear head;
    with ``out_dim=None`` it returns the feature map (B, channels[-1], h, w)."""

    def __init__(self, input_shape, out_dim: int | None, channels: Sequence[int] = (32, 64), act: str = "relu"):
        super().__init__()
        c, h, w = _image_shape(input_shape)
        layers: list[nn.Module] = []
        for ch in channels:
            layers += [nn.Conv2d(c, ch, 3, stride=2, padding=1), activation(act)]
            c = ch
        self.features = nn.Sequential(*layers)
        self.hs, self.ws = conv_sizes(h, len(channels)), conv_sizes(w, len(channels))
        self.feature_shape = (c, self.hs[-1], self.ws[-1])
        self.head = nn.Linear(math.prod(self.feature_shape), out_dim) if out_dim else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)  # (B, C', h, w)
        return self.head(f.flatten(1)) if self.head is not None else f


class ConvDecoder(nn.Module):
    """(B, in_dim) -> (B, C, H, W): a linear layer to the encoder's feature map, then transposed
    convolutions that retrace the encoder's sizes exactly (output_padding chosen per layer)."""

    def __init__(self, input_shape, in_dim: int | None, channels: Sequence[int] = (32, 64), act: str = "relu"):
        super().__init__()
        c_out, h, w = _image_shape(input_shape)
        hs, ws = conv_sizes(h, len(channels)), conv_sizes(w, len(channels))
        chans = list(channels)[::-1]
        self.feature_shape = (chans[0], hs[-1], ws[-1])
        self.head = nn.Linear(in_dim, math.prod(self.feature_shape)) if in_dim else None
        layers: list[nn.Module] = [activation(act)] if in_dim else []
        for i in range(len(chans)):
            c_in = chans[i]
            c_next = chans[i + 1] if i + 1 < len(chans) else c_out
            th, tw = hs[-2 - i], ws[-2 - i]
            ih, iw = hs[-1 - i], ws[-1 - i]
            pad = (th - 2 * ih + 1, tw - 2 * iw + 1)
            layers.append(nn.ConvTranspose2d(c_in, c_next, 3, stride=2, padding=1, output_padding=pad))
            if i + 1 < len(chans):
                layers.append(activation(act))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.head is not None:
            z = self.head(z).view(-1, *self.feature_shape)
        return self.net(z)


class MLPEncoder(nn.Module):
    """(B, *input_shape) -> (B, out_dim)."""

    def __init__(self, input_shape, out_dim: int, hidden: Sequence[int] = (512, 256), act: str = "relu", final_act: str | None = None):
        super().__init__()
        self.net = mlp([math.prod(input_shape), *hidden, out_dim], act, final_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class MLPDecoder(nn.Module):
    """(B, in_dim) -> (B, *output_shape)."""

    def __init__(self, output_shape, in_dim: int, hidden: Sequence[int] = (256, 512), act: str = "relu"):
        super().__init__()
        self.output_shape = tuple(output_shape)
        self.net = mlp([in_dim, *hidden, math.prod(output_shape)], act)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.output_shape)


def make_encoder(arch: str, input_shape, out_dim: int, hidden: Sequence[int], channels: Sequence[int] = (32, 64), act: str = "relu") -> nn.Module:
    """The encoder for ``arch``: 'mlp' uses ``hidden`` widths, 'conv' uses ``channels`` then a linear head."""
    if arch == "conv":
        return ConvEncoder(input_shape, out_dim, channels, act)
    return MLPEncoder(input_shape, out_dim, hidden, act)


def make_decoder(arch: str, output_shape, in_dim: int, hidden: Sequence[int], channels: Sequence[int] = (32, 64), act: str = "relu") -> nn.Module:
    """The mirror of ``make_encoder``: hidden widths reversed for 'mlp'."""
    if arch == "conv":
        return ConvDecoder(output_shape, in_dim, channels, act)
    return MLPDecoder(output_shape, in_dim, tuple(hidden)[::-1], act)


def encoder_for(c, out_dim: int | None = None, input_shape=None, act: str | None = None) -> nn.Module:
    """The encoder a ModelConfig ``c`` describes: input_shape -> out_dim (default: latent_dim)."""
    return make_encoder(c.arch, input_shape or c.input_shape, out_dim or c.latent_dim, c.hidden, c.channels, act or c.activation)


def decoder_for(c, in_dim: int | None = None, act: str | None = None) -> nn.Module:
    """The decoder a ModelConfig ``c`` describes: in_dim (default: latent_dim) -> input_shape."""
    return make_decoder(c.arch, c.input_shape, in_dim or c.latent_dim, c.hidden, c.channels, act or c.activation)


def unit_responses(decoder: nn.Module, n_units: int) -> torch.Tensor:
    """decoder(e_j) - decoder(0) for each unit vector e_j: (n_units, *output_shape), in the decoder's
    pre-output space. For a one-layer decoder these are exactly the columns of its weight matrix, the
    "filters" drawn by Makhzani & Frey 2013 and Ng's sparse autoencoder notes."""
    p = next(decoder.parameters())
    eye = torch.eye(n_units, device=p.device, dtype=p.dtype)
    return decoder(eye) - decoder(torch.zeros_like(eye[:1]))
