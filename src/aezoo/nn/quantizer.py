"""Quantizers of code grids: vector quantization (VQ, below), residual VQ (``ResidualVectorQuantizer``,
Zeghidour et al. 2021) and finite scalar quantization (``FiniteScalarQuantizer``, Mentzer et al. 2023),
each citing its paper. They share one interface: ``forward(z_e) -> (z_q, indices, terms)`` with
``terms["loss"]`` the auxiliary loss to add; ``lookup``; ``codebooks`` (the code grids made per cell,
each with ``num_codes`` and ``bits()``), ``split(indices)`` into those grids and ``decode_grids`` back
to vectors, which is what priors, compression and figures read.

Vector quantization: a codebook of K vectors of size D, nearest-neighbour assignment and a
straight-through gradient.

van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation Learning", arXiv:1711.00937.
Auxiliary losses (eq. 3): codebook ||sg[z_e] - e||^2 and commitment beta * ||z_e - sg[e]||^2.
With ``ema=True`` the codebook follows exponential moving averages of assigned counts and sums
(appendix A.1) with Laplace smoothing of the counts, and the codebook term is dropped.

Codebook health: perplexity exp(H(usage)), the fraction of dead codes (EMA usage below
``dead_threshold`` assignments per step), and restarts of dead codes from random encoder outputs
(Dhariwal et al. 2020, "Jukebox", arXiv:2005.00341, section 3.2); optional k-means initialisation
from a batch of encoder outputs. Distances and statistics are computed in fp32 under autocast;
under torch.distributed the statistics are summed over ranks and restarts broadcast from rank 0.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    if _distributed():
        dist.all_reduce(t)
    return t


def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook row for each row of ``z``: (N, D), (K, D) -> (N,)."""
    # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2; ||z||^2 is the same for every code
    d = codebook.pow(2).sum(1) - 2 * z @ codebook.t()  # (N, K)
    return d.argmin(1)


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp of the entropy of code usage: K when every code is used equally, 1 when one code is."""
    p = counts.float() / counts.sum().clamp_min(1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())


def kmeans(z: torch.Tensor, k: int, iters: int = 10, generator: torch.Generator | None = None) -> torch.Tensor:
    """Lloyd's k-means on rows of ``z`` (N, D) -> (k, D) centres, started from random rows."""
    idx = torch.randint(0, z.shape[0], (k,), device=z.device, generator=generator)
    centres = z[idx].clone()
    for _ in range(iters):
        assign = nearest_code(z, centres)
        sums = torch.zeros_like(centres).index_add_(0, assign, z)
        counts = torch.bincount(assign, minlength=k).unsqueeze(1).to(z.dtype)
        centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres)  # empty clusters keep their centre
    return centres


class VectorQuantizer(nn.Module):
    """``forward(z_e)`` with z_e of shape (B, D, *grid) -> ``(z_q, indices, terms)``:

    - ``z_q`` (B, D, *grid): the selected codes in the forward pass, z_e's gradient in the backward
      pass (straight-through);
    - ``indices`` (B, *grid): the code index of each cell;
    - ``terms``: ``loss`` (the auxiliary losses to add, per example, summed over cells and
      dimensions), ``commitment``, ``codebook`` (absent with EMA), ``perplexity``, ``dead_codes``.
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        beta: float = 0.25,
        ema: bool = False,
        decay: float = 0.99,
        eps: float = 1e-5,
        dead_threshold: float = 1.0,
        restart: bool = True,
        dead_steps: int = 0,
    ):
        super().__init__()
        self.num_codes, self.dim = num_codes, dim
        self.beta, self.ema, self.decay, self.eps = beta, ema, decay, eps
        self.dead_threshold, self.restart, self.dead_steps = dead_threshold, restart, dead_steps
        init = torch.empty(num_codes, dim).uniform_(-1 / num_codes, 1 / num_codes)
        # with EMA the codebook is not learned by gradient: it is a running mean of encoder outputs
        self.codebook = nn.Parameter(init, requires_grad=not ema)
        # EMA of assignments per step; starting at the threshold, a code unused in the first step is dead
        self.register_buffer("usage", torch.full((num_codes,), float(dead_threshold)))
        if dead_steps > 0:  # steps since each code was last assigned (SoundStream's criterion); a buffer, so resumes are exact
            self.register_buffer("idle", torch.zeros(num_codes))
        if ema:
            # N_i starts at 1 and m_i at e_i, so an unused code keeps its vector m_i / N_i
            self.register_buffer("ema_count", torch.ones(num_codes))
            self.register_buffer("ema_sum", init.clone())

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, *grid) indices -> (B, D, *grid) code vectors."""
        return self.codebook[indices].movedim(-1, 1)

    def forward(self, z_e: torch.Tensor):
        b, d = z_e.shape[:2]
        grid = z_e.shape[2:]
        with torch.autocast(z_e.device.type, enabled=False):
            flat = z_e.float().movedim(1, -1).reshape(-1, d)  # (B*cells, D)
            e = self.codebook.float()
            with torch.no_grad():
                indices = nearest_code(flat, e)  # (N,)
                counts = torch.bincount(indices, minlength=self.num_codes).float()
            z_q_flat = F.embedding(indices, e)  # (N, D), read before this step's codebook update
            dead = (self.usage < self.dead_threshold).float().mean()
            if self.training:  # statistics over all ranks; evaluation (main rank only) stays local
                counts = _all_reduce(counts)
                dead = self._update(flat.detach(), indices, counts)
            per_example = lambda t: t.reshape(b, -1).sum(1).mean()  # noqa: E731 - sum over cells and dims
            commitment = self.beta * per_example((flat - z_q_flat.detach()).pow(2))
            terms = {"commitment": commitment}
            loss = commitment
            if not self.ema:
                terms["codebook"] = per_example((flat.detach() - z_q_flat).pow(2))
                loss = loss + terms["codebook"]
            # straight-through: forward exactly z_q (x - sg[x] is exactly 0), backward the identity to z_e
            z_q_flat = z_q_flat.detach() + (flat - flat.detach())
        z_q = z_q_flat.view(b, *grid, d).movedim(-1, 1).to(z_e.dtype)
        terms["perplexity"] = perplexity(counts)
        terms["dead_codes"] = dead
        return z_q, indices.view(b, *grid), {"loss": loss, **terms}

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Training-time statistics: usage, EMA codebook (if on), then restarts of dead codes.
        Returns the fraction of codes that were dead before the restarts."""
        self.usage.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        if self.dead_steps > 0:
            self.idle.add_(1).masked_fill_(counts > 0, 0)
        if self.ema:
            sums = _all_reduce(torch.zeros_like(self.ema_sum).index_add_(0, indices, flat))
            self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
            self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            n = self.ema_count.sum()
            smoothed = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n  # Laplace
            self.codebook.data.copy_(self.ema_sum / smoothed.unsqueeze(1))
        dead = self.dead_mask().float().mean()
        if self.restart:
            self.restart_dead(flat)
        return dead

    def dead_mask(self) -> torch.Tensor:
        """Codes to restart: EMA usage below ``dead_threshold`` (Jukebox), or, with ``dead_steps``,
        not assigned for that many steps (SoundStream)."""
        dead = self.usage < self.dead_threshold
        if self.dead_steps > 0:
            dead = dead | (self.idle >= self.dead_steps)
        return dead

    @torch.no_grad()
    def restart_dead(self, flat: torch.Tensor) -> int:
        """Move each dead code onto a random encoder output of this batch; returns how many moved."""
        dead = self.dead_mask()
        k = int(dead.sum())
        if k == 0:
            return 0
        pick = flat[torch.randint(0, flat.shape[0], (k,), device=flat.device)]
        if _distributed():  # every rank must restart to the same vectors
            dist.broadcast(pick, 0)
        self.codebook.data[dead] = pick.to(self.codebook.dtype)
        # a restarted code stays alive as long as it draws dead_threshold assignments per step (Jukebox)
        self.usage[dead] = self.dead_threshold
        if self.dead_steps > 0:
            self.idle[dead] = 0
        if self.ema:
            self.ema_count[dead] = 1.0
            self.ema_sum[dead] = pick
        return k

    @torch.no_grad()
    def init_kmeans(self, z_e: torch.Tensor, iters: int = 10) -> None:
        """Set the codebook to k-means centres of encoder outputs (B, D, *grid)."""
        flat = z_e.float().movedim(1, -1).reshape(-1, self.dim)
        centres = kmeans(flat, self.num_codes, iters)
        if _distributed():
            dist.broadcast(centres, 0)
        self.codebook.data.copy_(centres)
        if self.ema:
            self.ema_count.fill_(1.0)
            self.ema_sum.copy_(centres)

    def bits(self) -> float:
        """Bits per code cell: log2 K."""
        return math.log2(self.num_codes)

    # --- the interface every quantizer here shares (VQ, residual VQ, FSQ) ------------------------
    @property
    def codebooks(self) -> list["VectorQuantizer"]:
        """The code grids this quantizer makes per cell, coarsest first (one here)."""
        return [self]

    def split(self, indices: torch.Tensor) -> list[torch.Tensor]:
        """``forward``'s indices -> one (B, *grid) index grid per codebook."""
        return [indices]

    def decode_grids(self, grids: list[torch.Tensor]) -> torch.Tensor:
        """Index grids (as ``split`` gives them) -> (B, D, *grid) quantised vectors, the same
        numbers ``forward`` outputs."""
        return self.lookup(grids[0])


class ResidualVectorQuantizer(nn.Module):
    """Residual vector quantization (RVQ).

    Zeghidour, Luebs, Omran, Skoglund & Tagliasacchi 2021, "SoundStream: An End-to-End Neural Audio
    Codec", arXiv:2107.03312, section 3.3 and Algorithm 1. S stages, each a VQ codebook of K vectors
    that quantises what the stages before it left over:

        r_1 = z_e,   q_s = Q_s(r_s),   r_{s+1} = r_s - q_s,   z_q = sum_{s <= n_q} q_s,

    so the first n_q stages give a code of n_q log2 K bits per cell and every added stage refines
    it (the rate is set by how many stages are kept). Quantizer dropout (section 3.3): for each
    training example n_q is drawn uniformly from 1..S, so that one model decodes at every rate.

    Each stage is a ``VectorQuantizer`` (codebook or EMA updates, commitment, k-means init on its
    residuals; the paper uses EMA and k-means init) whose dead codes restart from its own residuals.
    A code is dead as the paper says, when no input was assigned to it for ``dead_steps`` batches
    (default 10 for "several batches"), as well as by the EMA usage threshold: the later stages'
    residuals are small and shift as the stages above them learn, and with the EMA threshold alone a
    fifth of the last stage's codes sat abandoned at the end of training (measured on Fashion-MNIST).
    Choices of ours: every stage's auxiliary losses count on every example, whatever n_q it drew
    (the codebooks learn the residual chain, which dropout does not change); the straight-through
    gradient reaches z_e once, not once per stage. ``forward`` returns indices (B, S, *grid).
    """

    def __init__(self, stages: int, num_codes: int, dim: int, beta: float = 0.25, ema: bool = False, decay: float = 0.99,
                 dead_threshold: float = 1.0, restart: bool = True, dropout: float = 1.0, dead_steps: int = 10):
        super().__init__()
        self.num_codes, self.dim, self.dropout = num_codes, dim, dropout
        self.stages = nn.ModuleList(VectorQuantizer(num_codes, dim, beta, ema, decay, dead_threshold=dead_threshold, restart=restart, dead_steps=dead_steps)
                                    for _ in range(stages))

    def forward(self, z_e: torch.Tensor):
        residual = z_e
        parts, indices, auxes = [], [], []
        for q in self.stages:
            z_q, idx, aux = q(residual)
            q_s = z_q.detach()  # the code vectors, exactly
            parts.append(q_s)
            indices.append(idx)
            auxes.append(aux)
            residual = residual - q_s  # r_{s+1} = r_s - q_s; still a function of z_e for the next commitment term
        stacked = torch.stack(parts, 1)  # (B, S, D, *grid)
        if self.training and self.dropout > 0:
            b, s = z_e.shape[0], len(self.stages)
            n_q = torch.randint(1, s + 1, (b,), device=z_e.device)
            n_q = torch.where(torch.rand(b, device=z_e.device) < self.dropout, n_q, s)  # examples that keep every stage
            keep = torch.arange(s, device=z_e.device) < n_q[:, None]  # (B, S)
            stacked = stacked * keep.view(b, s, *([1] * (stacked.dim() - 2))).to(stacked.dtype)
        z_q = _sum_stages(stacked)
        z_q = z_q + (z_e - z_e.detach())  # straight-through: forward exactly the sum of codes, backward identity
        terms = {key: sum(a[key] for a in auxes) for key in ("loss", "commitment", "codebook") if key in auxes[0]}
        terms["perplexity"] = torch.stack([a["perplexity"] for a in auxes]).mean()  # per stage in code_metrics
        terms["dead_codes"] = torch.stack([a["dead_codes"] for a in auxes]).mean()
        return z_q, torch.stack(indices, 1), terms

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, S', *grid) indices of the first S' <= S stages -> (B, D, *grid), the sum of their codes."""
        return self.decode_grids(list(indices.unbind(1)))

    @torch.no_grad()
    def init_kmeans(self, z_e: torch.Tensor, iters: int = 10) -> None:
        """k-means init of each stage on the residuals the stages before it leave (SoundStream)."""
        residual = z_e.float()
        for q in self.stages:
            q.init_kmeans(residual, iters)
            residual = residual - q.lookup(q(residual)[1])

    def bits(self) -> float:
        return len(self.stages) * math.log2(self.num_codes)

    @property
    def codebooks(self) -> list[VectorQuantizer]:
        return list(self.stages)

    def split(self, indices: torch.Tensor) -> list[torch.Tensor]:
        return list(indices.unbind(1))

    def decode_grids(self, grids: list[torch.Tensor]) -> torch.Tensor:
        """The first len(grids) stages' codes, summed: decoding at a lower rate."""
        if not 1 <= len(grids) <= len(self.stages):
            raise ValueError(f"expected 1 to {len(self.stages)} stage grids, got {len(grids)}")
        return _sum_stages(torch.stack([q.lookup(g) for q, g in zip(self.stages, grids)], 1))


def _sum_stages(stacked: torch.Tensor) -> torch.Tensor:
    """(B, S, D, ...) -> (B, D, ...), summed stage by stage in order, so that forward and lookup give
    the same floating-point numbers."""
    out = stacked[:, 0]
    for s in range(1, stacked.shape[1]):
        out = out + stacked[:, s]
    return out


class FiniteScalarQuantizer(nn.Module):
    """Finite scalar quantization (FSQ).

    Mentzer, Minnen, Agustsson & Tschannen 2023, "Finite Scalar Quantization: VQ-VAE Made Simple",
    arXiv:2309.15505. Each of the d = len(levels) channels is bounded and rounded to one of L_i
    values; the implied codebook is the product grid of the levels, |C| = prod_i L_i, with no
    codebook to learn, no auxiliary loss and nothing to collapse (section 3):

        f(z) = tanh(z + s) * (L - 1)(1 - eps) / 2 - o,   z_hat = round_ste(f(z)) / floor(L / 2),

    where o = 1/2 for even L (else 0) and s = atanh(o / ((L - 1)(1 - eps) / 2)) centres the even
    grid (the paper's appendix code writes tan; atanh is the inverse it means). The code index of a
    cell is the flat index of its digits (round(f) + floor(L/2)) in the level grid, first channel
    fastest. Levels >= 3 (L = 2 leaves no room for the offset).
    """

    def __init__(self, levels: tuple[int, ...], eps: float = 1e-3, decay: float = 0.99, dead_threshold: float = 1.0):
        super().__init__()
        self.levels = tuple(int(v) for v in levels)
        self.dim = len(self.levels)
        self.num_codes = math.prod(self.levels)
        self.decay, self.dead_threshold = decay, dead_threshold
        lv = torch.tensor(self.levels, dtype=torch.float32)
        half_l = (lv - 1) * (1 - eps) / 2
        offset = (1 - lv % 2) * 0.5
        self.register_buffer("half_l", half_l, persistent=False)
        self.register_buffer("offset", offset, persistent=False)
        self.register_buffer("shift", torch.atanh(offset / half_l), persistent=False)
        self.register_buffer("half_width", torch.floor(lv / 2), persistent=False)
        basis = torch.cumprod(torch.tensor((1,) + self.levels[:-1]), 0)
        self.register_buffer("basis", basis, persistent=False)  # digit i weighs prod(L_<i)
        self.register_buffer("level_sizes", torch.tensor(self.levels), persistent=False)
        # usage statistics only (nothing to restart): EMA assignments per step, as VectorQuantizer
        self.register_buffer("usage", torch.full((self.num_codes,), float(dead_threshold)))

    def _channels(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        return t.view(1, -1, *([1] * (ndim - 2)))  # broadcast over (B, d, *grid)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        c = lambda t: self._channels(t, z.dim())  # noqa: E731
        return torch.tanh(z + c(self.shift)) * c(self.half_l) - c(self.offset)

    def forward(self, z_e: torch.Tensor):
        if z_e.shape[1] != self.dim:
            raise ValueError(f"FSQ with levels {self.levels} quantises {self.dim} channels, got {z_e.shape[1]}")
        with torch.autocast(z_e.device.type, enabled=False):
            hw = self._channels(self.half_width, z_e.dim())
            bounded = self.bound(z_e.float())
            scaled = bounded / hw  # in (-1, 1)
            digits = (torch.round(bounded) + hw).long()  # (B, d, *grid), digit i in [0, L_i)
            codes = (digits.float() - hw) / hw  # the grid point, computed as lookup() computes it
            z_q = codes.detach() + (scaled - scaled.detach())  # round_ste: forward exactly the grid point
            indices = (digits * self._channels(self.basis, z_e.dim())).sum(1)  # (B, *grid)
            counts = torch.bincount(indices.flatten(), minlength=self.num_codes).float()
            if self.training:
                with torch.no_grad():
                    self.usage.mul_(self.decay).add_(_all_reduce(counts), alpha=1 - self.decay)
            terms = {
                "loss": z_q.new_zeros(()),  # FSQ has no auxiliary loss
                "perplexity": perplexity(counts),
                "dead_codes": (self.usage < self.dead_threshold).float().mean(),
            }
        return z_q.to(z_e.dtype), indices, terms

    def digits(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, *grid) flat indices -> (B, d, *grid) digits, digit i in [0, L_i)."""
        n = indices.dim() + 1
        return (indices.unsqueeze(1) // self._channels(self.basis, n)) % self._channels(self.level_sizes, n)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, *grid) indices -> (B, d, *grid) grid points in [-1, 1]."""
        hw = self._channels(self.half_width, indices.dim() + 1)
        return (self.digits(indices).float() - hw) / hw

    def bits(self) -> float:
        return math.log2(self.num_codes)

    @property
    def codebooks(self) -> list["FiniteScalarQuantizer"]:
        return [self]

    def split(self, indices: torch.Tensor) -> list[torch.Tensor]:
        return [indices]

    def decode_grids(self, grids: list[torch.Tensor]) -> torch.Tensor:
        return self.lookup(grids[0])
