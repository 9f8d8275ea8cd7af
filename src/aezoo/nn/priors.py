"""Autoregressive priors over grids of discrete codes: the second training stage of VQ-VAE and VQ-VAE-2.

van den Oord et al. 2017 (arXiv:1711.00937) fit a PixelCNN over the code grid; Razavi, van den Oord &
Vinyals 2019, "Generating Diverse High-Fidelity Images with VQ-VAE-2" (arXiv:1906.00446), a
PixelSNAIL-like top prior and a bottom prior conditioned on the top codes. Here each grid gets a
causal transformer over its raster-flattened cells (Vaswani et al. 2017, arXiv:1706.03762), which
has the same factorisation with attention over the whole past:

    log p(c) = sum_g sum_i log p(c_g,i | c_g,<i, c_<g),

grids ordered coarsest first (top, then bottom). As in the paper, every cell of grid g is
conditioned on the *whole* previous grid: a non-causal transformer stack (``cond_layers`` blocks of
full self-attention) reads all of c_{g-1}, and its output, resampled to grid g's size, is added to
each cell's input. (Before issue 11 the top codes were added per position only, so a bottom cell
read the top cells at raster positions <= its own through causal attention.)

``CodePrior`` is a ``Trainable`` (``aezoo/trainable.py``), so ``aezoo.train`` fits it on code grids
flattened and concatenated into ``x`` (B, L). Attaching it to a VQ model, saving, loading and
sampling through it live beside the VQ models, in ``models/code_prior.py``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check
from ..trainable import ModelOutput, Trainable


@dataclass
class CodePriorConfig:
    heights: tuple[int, ...] = (7,)  # grid g has heights[g] x widths[g] cells, coarsest first
    widths: tuple[int, ...] = (7,)
    num_codes: tuple[int, ...] = (512,)  # K of each grid
    width: int = 128  # transformer width
    layers: int = 4
    heads: int = 4
    dropout: float = 0.1
    cond_layers: int = 2  # non-causal blocks over the previous grid's codes (grids after the first)

    def __post_init__(self):
        g = len(self.num_codes)
        check(g >= 1 and len(self.heights) == g and len(self.widths) == g, "heights", f"heights, widths and num_codes need one entry per grid, got {self.heights}, {self.widths}, {self.num_codes}")
        check(all(k >= 2 for k in self.num_codes), "num_codes", f"must be >= 2, got {self.num_codes}")
        check(all(h >= 1 for h in self.heights + self.widths), "heights", "grid sizes must be >= 1")
        check(self.width >= 1 and self.width % self.heads == 0, "width", f"must be a multiple of heads ({self.heads}), got {self.width}")
        check(self.layers >= 1, "layers", f"must be >= 1, got {self.layers}")
        check(self.cond_layers >= 1, "cond_layers", f"must be >= 1, got {self.cond_layers}")
        check(0 <= self.dropout < 1, "dropout", f"must be in [0, 1), got {self.dropout}")

    @property
    def lengths(self) -> list[int]:
        return [h * w for h, w in zip(self.heights, self.widths)]

    @property
    def input_shape(self) -> tuple[int, ...]:  # what the trainer checks the data against
        return (sum(self.lengths),)


class Block(nn.Module):
    """Pre-norm transformer block with causal (or, for a conditioning stack, full) self-attention."""

    def __init__(self, width: int, heads: int, dropout: float, causal: bool = True):
        super().__init__()
        self.heads, self.dropout, self.causal = heads, dropout, causal
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width), nn.Dropout(dropout))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, c = h.shape
        q, k, v = self.qkv(self.ln1(h)).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # (B, nh, T, hs) each
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=self.causal)
        h = h + self.proj(a.transpose(1, 2).reshape(b, t, c))
        return h + self.mlp(self.ln2(h))


class GridPrior(nn.Module):
    """p(c | cond) for one grid of L = h*w cells: logits for cell i read cells < i and all of cond."""

    def __init__(self, num_codes: int, h: int, w: int, cfg: CodePriorConfig, cond: tuple[int, int, int] | None):
        super().__init__()
        self.num_codes, self.h, self.w = num_codes, h, w
        self.tok = nn.Embedding(num_codes + 1, cfg.width)  # index K is the start token
        self.pos = nn.Parameter(torch.zeros(h * w, cfg.width))
        nn.init.normal_(self.pos, std=0.02)
        self.cond_shape = cond  # (K_cond, h_cond, w_cond) of the grid this one is conditioned on
        self.cond = nn.Embedding(cond[0], cfg.width) if cond else None
        if cond:  # the conditioning stack: full attention over every cell of the previous grid
            self.cond_pos = nn.Parameter(torch.zeros(cond[1] * cond[2], cfg.width))
            nn.init.normal_(self.cond_pos, std=0.02)
            self.cond_blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.dropout, causal=False) for _ in range(cfg.cond_layers))
            self.cond_ln = nn.LayerNorm(cfg.width)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.dropout) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, num_codes)

    def condition(self, cond: torch.Tensor) -> torch.Tensor:
        """(B, L_cond) codes -> (B, L, width): every cell of the conditioning grid read by the non-causal
        stack (so each output vector depends on the whole grid), then resampled (nearest) to this grid."""
        _, hc, wc = self.cond_shape
        e = self.drop(self.cond(cond) + self.cond_pos)  # (B, L_cond, width)
        for blk in self.cond_blocks:
            e = blk(e)
        e = self.cond_ln(e).view(-1, hc, wc, self.cond.embedding_dim).permute(0, 3, 1, 2)  # (B, width, hc, wc)
        e = F.interpolate(e, size=(self.h, self.w), mode="nearest")
        return e.flatten(2).transpose(1, 2)

    def logits(self, c: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) codes of the first T cells (T <= L) -> (B, T, K): logits of cells 0..T-1, where
        the logits of cell i depend on c[:, :i] and on all of cond."""
        return self._logits(c, self.condition(cond) if self.cond is not None else None)

    def _logits(self, c: torch.Tensor, h_cond: torch.Tensor | None) -> torch.Tensor:
        b, t = c.shape
        start = torch.full((b, 1), self.num_codes, dtype=torch.long, device=c.device)
        inp = torch.cat([start, c[:, :-1]], 1) if t > 0 else start[:, :0]  # shift right by one
        h = self.tok(inp) + self.pos[:t]
        if h_cond is not None:
            h = h + h_cond[:, :t]
        h = self.drop(h)
        for blk in self.blocks:
            h = blk(h)
        return self.head(self.ln(h))

    def nll(self, c: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) -> (B,) negative log-likelihood in nats."""
        lg = self.logits(c, cond)
        return F.cross_entropy(lg.transpose(1, 2), c, reduction="none").sum(1)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, cond: torch.Tensor | None = None) -> torch.Tensor:
        h_cond = self.condition(cond) if self.cond is not None else None  # once: it does not change per cell
        c = torch.zeros(n, 0, dtype=torch.long, device=self.pos.device)
        for i in range(self.h * self.w):
            probe = torch.cat([c, c.new_zeros(n, 1)], 1)  # cell i's logits do not read cell i
            lg = self._logits(probe, h_cond)[:, -1] / max(temperature, 1e-6)
            c = torch.cat([c, torch.multinomial(F.softmax(lg.float(), -1), 1)], 1)
        return c  # (n, L)


class CodePrior(Trainable):
    """A stack of grid priors, coarsest first, each conditioned on the one before. Not a family member:
    a ``Trainable``, so ``aezoo.train`` fits it like any model."""

    name: ClassVar[str] = "code_prior"

    def __init__(self, config: CodePriorConfig):
        super().__init__(config)
        c = config
        self.grids = nn.ModuleList()
        for g, (k, h, w) in enumerate(zip(c.num_codes, c.heights, c.widths)):
            cond = (c.num_codes[g - 1], c.heights[g - 1], c.widths[g - 1]) if g else None
            self.grids.append(GridPrior(k, h, w, c, cond))

    def split(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(x.long().split(self.config.lengths, dim=1))

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L_total) concatenated codes -> (B,) negative log-likelihood in nats."""
        parts = self.split(x)
        return sum(p.nll(c, parts[g - 1] if g else None) for g, (p, c) in enumerate(zip(self.grids, parts)))

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> list[torch.Tensor]:
        """Codes of every grid, coarsest first: a list of (n, h_g, w_g) index tensors."""
        out: list[torch.Tensor] = []
        for g, p in enumerate(self.grids):
            c = p.sample(n, temperature, out[g - 1].flatten(1) if g else None)
            out.append(c.view(n, p.h, p.w))
        return out

    # --- the model contract the trainer reads ----------------------------------------------------
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> ModelOutput:
        nll = self.nll(x).mean()
        bits = nll / (math.log(2) * x.shape[1])
        return ModelOutput(loss=nll, terms={"nll": nll, "bits_per_code": bits})
