"""Integer networks: convolutions whose test-time arithmetic is exact, hence equal on every machine.

Ballé, Johnston & Minnen 2019, "Integer Networks for Data Compression with Latent-Variable Models",
ICLR 2019 (openreview S1zz2i0cY7). A learned codec's decoder recomputes the entropy model's
parameters from what it has decoded; if its floating-point arithmetic differs from the encoder's in
one last bit (another thread count, a GPU, bf16), a probability differs and the rest of the file
decodes to garbage (CompressAI issues #279, #309). Here the network that computes them is integer:

- weights are held on a fixed-point grid of 2**-WEIGHT_BITS, biases of 2**-(WEIGHT_BITS + ACT_BITS);
- activations on a grid of 2**-ACT_BITS, clipped to [0, ACT_MAX] (the paper's "QReLU");
- training sees exactly these grids through straight-through rounding (``fake``), so the network it
  learns is the one that runs at test time;
- at test time (``exact``) every value is an integer count of its grid step, held in float64, and
  each output is a sum of integer products below 2**53: float64 adds integers of that size without
  rounding, whatever the order of the sum (threads, blocking, SIMD) or the BLAS. Rescaling divides by a
  power of two and rounds half to even, also exact. The result is bit-identical on every IEEE machine.

Bounds: |weight| <= WEIGHT_MAX, activations <= ACT_MAX, so each product is below
2**(WEIGHT_BITS + log2 WEIGHT_MAX + ACT_BITS + log2 ACT_MAX) = 2**25 and a layer's fan-in may reach
2**27 before a sum could round (``check_exact`` refuses wider layers).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .entropy import ste_round

WEIGHT_BITS = 10  # weights on a grid of 1/1024
WEIGHT_MAX = 32.0
ACT_BITS = 4  # activations on a grid of 1/16
ACT_MAX = 64.0
EXACT_BITS = 53  # integers float64 holds exactly


class FixedPointConv(nn.Module):
    """A (transposed) convolution on fixed-point grids. ``forward`` is the training view (float, with
    straight-through rounding of weights, biases and outputs); ``exact`` the test-time integer one."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, transposed: bool = False):
        super().__init__()
        fan_in = c_in * kernel * kernel
        bound = 2 ** (WEIGHT_BITS + math.log2(WEIGHT_MAX) + ACT_BITS + math.log2(ACT_MAX)) * (fan_in + 1)
        if bound >= 2**EXACT_BITS:
            raise ValueError(f"an integer layer with fan-in {fan_in} could exceed float64's exact integers")
        conv = (nn.ConvTranspose2d if transposed else nn.Conv2d)(c_in, c_out, kernel, stride, padding=kernel // 2,
                                                                   **({"output_padding": stride - 1} if transposed else {}))
        self.weight, self.bias = conv.weight, conv.bias
        self.stride, self.padding, self.transposed = stride, kernel // 2, transposed

    def _conv(self, a, w, b, size):
        if not self.transposed:
            return F.conv2d(a, w, b, self.stride, self.padding)
        # output_padding picks the size among the stride's choices: the encoder's sizes, retraced
        op = [s - ((n - 1) * self.stride - 2 * self.padding + w.shape[-1]) for s, n in zip(size, a.shape[-2:])]
        return F.conv_transpose2d(a, w, b, self.stride, self.padding, output_padding=tuple(op))

    def forward(self, a: torch.Tensor, size=None) -> torch.Tensor:
        w = ste_round(self.weight.clamp(-WEIGHT_MAX, WEIGHT_MAX) * 2**WEIGHT_BITS) / 2**WEIGHT_BITS
        b = ste_round(self.bias * 2 ** (WEIGHT_BITS + ACT_BITS)) / 2 ** (WEIGHT_BITS + ACT_BITS)
        return self._conv(a, w.to(a.dtype), b.to(a.dtype), size)

    @torch.no_grad()
    def exact(self, a: torch.Tensor, size=None) -> torch.Tensor:
        """``a``: integer counts of 2**-ACT_BITS (float64, CPU) -> the output in counts of
        2**-(WEIGHT_BITS + ACT_BITS), exact integers in float64."""
        w = torch.round(self.weight.detach().cpu().double().clamp(-WEIGHT_MAX, WEIGHT_MAX) * 2**WEIGHT_BITS)
        b = torch.round(self.bias.detach().cpu().double() * 2 ** (WEIGHT_BITS + ACT_BITS))
        return self._conv(a, w, b, size)


def qrelu(v: torch.Tensor) -> torch.Tensor:
    """Training view of the activation: ReLU clipped to ACT_MAX, on the grid 2**-ACT_BITS."""
    return ste_round(v.clamp(0, ACT_MAX) * 2**ACT_BITS) / 2**ACT_BITS


def qrelu_exact(acc: torch.Tensor) -> torch.Tensor:
    """Exact view: a layer's output in counts of 2**-(WEIGHT_BITS + ACT_BITS) -> activations in counts of
    2**-ACT_BITS (divide by a power of two, round half to even, clip: all exact in float64)."""
    return torch.round(acc / 2**WEIGHT_BITS).clamp(0, ACT_MAX * 2**ACT_BITS)


def to_units(acc: torch.Tensor, bits: int) -> torch.Tensor:
    """A layer's exact output in counts of 2**-(WEIGHT_BITS + ACT_BITS) -> rounded to counts of 2**-bits."""
    return torch.round(acc / 2 ** (WEIGHT_BITS + ACT_BITS - bits))
