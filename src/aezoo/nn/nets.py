"""Encoder and decoder networks that the models plug in: an MLP over the flattened input, or a
strided convolutional stack for (C, H, W) images. Shapes are computed from ``input_shape``; no dummy
forward passes.

Conditioning (``cond_dim`` > 0): every linear and convolutional layer is modulated by a vector c
(B, cond_dim), for example a one-hot label, by FiLM (Perez et al. 2018, "FiLM: Visual Reasoning with a
General Conditioning Layer", arXiv:1709.07871): out * (1 + gamma_l(c)) + beta_l(c). The shift alone is
what joining c to the layer's input adds; the scale lets c change what the other inputs mean. Reading c
at every layer, not only the first, keeps it from being drowned by the other inputs (the label of the
conditional VAE, issue 11)."""
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


_WEIGHTED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def _width(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


class FiLM(nn.Module):
    """The conditioning of a network's weighted layers: after layer l, out * (1 + gamma_l(c)) + beta_l(c),
    with gamma_l, beta_l bias-free linear maps of c; gamma starts at 0."""

    def __init__(self, layers: Sequence[nn.Module], cond_dim: int):
        super().__init__()
        self.maps = nn.ModuleList(nn.Linear(cond_dim, 2 * _width(layer), bias=False) for layer in layers)
        for m in self.maps:
            nn.init.zeros_(m.weight[: m.out_features // 2])  # gamma starts at 0: the unconditioned layer

    def run(self, seq: nn.Sequential, x: torch.Tensor, c: torch.Tensor, start: int = 0) -> tuple[torch.Tensor, int]:
        """``seq`` applied to x, modulating the output of each weighted layer with maps ``start``, ...;
        returns the output and the index of the next map."""
        i = start
        for layer in seq:
            x = layer(x)
            if isinstance(layer, _WEIGHTED):
                x = self.add(x, c, i)
                i += 1
        return x, i

    def add(self, x: torch.Tensor, c: torch.Tensor, i: int) -> torch.Tensor:
        g, b = self.maps[i](c).chunk(2, -1)  # (B, width) each
        shape = (*b.shape, *([1] * (x.dim() - 2)))
        return x * (1 + g.view(shape)) + b.view(shape)


def _conditioned(cond_dim: int, *modules: nn.Module) -> FiLM | None:
    if cond_dim <= 0:
        return None
    return FiLM([m for mod in modules if mod is not None for m in mod.modules() if isinstance(m, _WEIGHTED)], cond_dim)


def _need(cond: FiLM | None, c: torch.Tensor | None) -> None:
    if cond is not None and c is None:
        raise ValueError("this network is conditioned: pass the conditioning vector c")


def _image_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ConfigError(f"arch 'conv' and 'resnet' need images of shape (C, H, W), got input_shape {tuple(input_shape)}; use arch 'mlp'")
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

    def __init__(self, input_shape, out_dim: int | None, channels: Sequence[int] = (32, 64), act: str = "relu", cond_dim: int = 0):
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
        self.cond = _conditioned(cond_dim, self.features, self.head)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        _need(self.cond, c)
        if self.cond is None:
            f = self.features(x)  # (B, C', h, w)
            return self.head(f.flatten(1)) if self.head is not None else f
        f, i = self.cond.run(self.features, x, c)
        return self.cond.add(self.head(f.flatten(1)), c, i) if self.head is not None else f


class ConvDecoder(nn.Module):
    """(B, in_dim) -> (B, C, H, W): a linear layer to the encoder's feature map, then transposed
    convolutions that retrace the encoder's sizes exactly (output_padding chosen per layer)."""

    def __init__(self, input_shape, in_dim: int | None, channels: Sequence[int] = (32, 64), act: str = "relu", cond_dim: int = 0):
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
        self.cond = _conditioned(cond_dim, self.head, self.net)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        _need(self.cond, c)
        i = 0
        if self.head is not None:
            z = self.head(z)
            if self.cond is not None:
                z, i = self.cond.add(z, c, 0), 1
            z = z.view(-1, *self.feature_shape)
        return self.net(z) if self.cond is None else self.cond.run(self.net, z, c, i)[0]


class MLPEncoder(nn.Module):
    """(B, *input_shape) -> (B, out_dim)."""

    def __init__(self, input_shape, out_dim: int, hidden: Sequence[int] = (512, 256), act: str = "relu", final_act: str | None = None,
                 cond_dim: int = 0):
        super().__init__()
        self.net = mlp([math.prod(input_shape), *hidden, out_dim], act, final_act)
        self.cond = _conditioned(cond_dim, self.net)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        _need(self.cond, c)
        return self.net(x.flatten(1)) if self.cond is None else self.cond.run(self.net, x.flatten(1), c)[0]


class MLPDecoder(nn.Module):
    """(B, in_dim) -> (B, *output_shape)."""

    def __init__(self, output_shape, in_dim: int, hidden: Sequence[int] = (256, 512), act: str = "relu", cond_dim: int = 0):
        super().__init__()
        self.output_shape = tuple(output_shape)
        self.net = mlp([in_dim, *hidden, math.prod(output_shape)], act)
        self.cond = _conditioned(cond_dim, self.net)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        _need(self.cond, c)
        out = self.net(z) if self.cond is None else self.cond.run(self.net, z, c)[0]
        return out.view(-1, *self.output_shape)


def make_encoder(arch: str, input_shape, out_dim: int, hidden: Sequence[int], channels: Sequence[int] = (32, 64), act: str = "relu",
                 cond_dim: int = 0) -> nn.Module:
    """The encoder for ``arch``: 'mlp' uses ``hidden`` widths, 'conv' uses ``channels`` then a linear head."""
    if arch == "conv":
        return ConvEncoder(input_shape, out_dim, channels, act, cond_dim)
    return MLPEncoder(input_shape, out_dim, hidden, act, cond_dim=cond_dim)


def make_decoder(arch: str, output_shape, in_dim: int, hidden: Sequence[int], channels: Sequence[int] = (32, 64), act: str = "relu",
                 cond_dim: int = 0) -> nn.Module:
    """The mirror of ``make_encoder``: hidden widths reversed for 'mlp'."""
    if arch == "conv":
        return ConvDecoder(output_shape, in_dim, channels, act, cond_dim)
    return MLPDecoder(output_shape, in_dim, tuple(hidden)[::-1], act, cond_dim)


def encoder_for(c, out_dim: int | None = None, input_shape=None, act: str | None = None, cond_dim: int = 0) -> nn.Module:
    """The encoder a ModelConfig ``c`` describes: input_shape -> out_dim (default: latent_dim)."""
    if c.arch == "resnet":
        from .resnet import ResEncoder

        return ResEncoder(_image_shape(input_shape or c.input_shape), out_dim or c.latent_dim, c.channels, c.downsample, act or c.activation, cond_dim)
    return make_encoder(c.arch, input_shape or c.input_shape, out_dim or c.latent_dim, c.hidden, c.channels, act or c.activation, cond_dim)


def decoder_for(c, in_dim: int | None = None, act: str | None = None, cond_dim: int = 0) -> nn.Module:
    """The decoder a ModelConfig ``c`` describes: in_dim (default: latent_dim) -> input_shape."""
    if c.arch == "resnet":
        from .resnet import ResDecoder

        return ResDecoder(_image_shape(c.input_shape), in_dim or c.latent_dim, c.channels, c.downsample, act or c.activation, cond_dim)
    return make_decoder(c.arch, c.input_shape, in_dim or c.latent_dim, c.hidden, c.channels, act or c.activation, cond_dim)


def unit_responses(decoder: nn.Module, n_units: int) -> torch.Tensor:
    """decoder(e_j) - decoder(0) for each unit vector e_j: (n_units, *output_shape), in the decoder's
    pre-output space. For a one-layer decoder these are exactly the columns of its weight matrix, the
    "filters" drawn by Makhzani & Frey 2013 and Ng's sparse autoencoder notes."""
    p = next(decoder.parameters())
    eye = torch.eye(n_units, device=p.device, dtype=p.dtype)
    return decoder(eye) - decoder(torch.zeros_like(eye[:1]))
