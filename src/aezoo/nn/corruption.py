"""Input corruptions q(x_tilde | x) for denoising (Vincent, Larochelle, Bengio & Manzagol 2008,
"Extracting and composing robust features with denoising autoencoders", ICML), shared by the
``denoising_ae`` objective and by evaluation's ``--corrupt`` option.

- ``mask``: each input dimension is set to 0 with probability p (the paper's masking noise);
- ``gaussian``: x + sigma * eps, eps ~ N(0, I) (isotropic Gaussian noise);
- ``salt_pepper``: each dimension, with probability p, is set to 0 or 1 with equal odds.

Specs are written ``kind:level``, e.g. ``mask:0.5``, ``gaussian:0.3``, ``salt_pepper:0.2``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError

KINDS = ("mask", "gaussian", "salt_pepper")


def _uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def mask(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero each dimension independently with probability ``p``."""
    if p <= 0:
        return x
    return x * (_uniform(x, generator) >= p).to(x.dtype)


def gaussian(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    if sigma <= 0:
        return x
    return x + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def salt_pepper(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """With probability ``p`` per dimension, replace the value by 0 or 1 (a fair coin)."""
    if p <= 0:
        return x
    hit = _uniform(x, generator) < p
    salt = (_uniform(x, generator) < 0.5).to(x.dtype)
    return torch.where(hit, salt, x)


_FUNCTIONS = {"mask": mask, "gaussian": gaussian, "salt_pepper": salt_pepper}


@dataclass(frozen=True)
class Corruption:
    """A corruption process; calling it draws x_tilde ~ q(x_tilde | x)."""

    kind: str
    level: float  # p for mask / salt_pepper, sigma for gaussian

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"unknown corruption {self.kind!r}; choose from {', '.join(KINDS)}")
        if not (self.level >= 0 and math.isfinite(self.level)) or (self.kind != "gaussian" and self.level > 1):  # NaN too
            allowed = "finite and >= 0" if self.kind == "gaussian" else "in [0, 1]"
            raise ConfigError(f"corruption {self.kind!r}: level must be {allowed}, got {self.level}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return _FUNCTIONS[self.kind](x, self.level, generator)

    def __str__(self) -> str:
        return f"{self.kind}:{self.level:g}"


def parse(spec: str | Corruption) -> Corruption:
    """``"mask:0.5"`` -> Corruption("mask", 0.5). Raises a ConfigError naming the spec if malformed."""
    if isinstance(spec, Corruption):
        return spec
    kind, sep, level = str(spec).strip().partition(":")
    if not sep:
        raise ConfigError(f"corruption {spec!r}: expected kind:level, e.g. mask:0.5, gaussian:0.3, salt_pepper:0.2")
    try:
        value = float(level)
    except ValueError:
        raise ConfigError(f"corruption {spec!r}: level {level!r} is not a number") from None
    return Corruption(kind.strip(), value)
