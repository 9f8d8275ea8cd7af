"""Vector quantization: a codebook of K vectors of size D, nearest-neighbour assignment and a
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
    ):
        super().__init__()
        self.num_codes, self.dim = num_codes, dim
        self.beta, self.ema, self.decay, self.eps = beta, ema, decay, eps
        self.dead_threshold, self.restart = dead_threshold, restart
        init = torch.empty(num_codes, dim).uniform_(-1 / num_codes, 1 / num_codes)
        # with EMA the codebook is not learned by gradient: it is a running mean of encoder outputs
        self.codebook = nn.Parameter(init, requires_grad=not ema)
        # EMA of assignments per step; starting at the threshold, a code unused in the first step is dead
        self.register_buffer("usage", torch.full((num_codes,), float(dead_threshold)))
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
        if self.ema:
            sums = _all_reduce(torch.zeros_like(self.ema_sum).index_add_(0, indices, flat))
            self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
            self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            n = self.ema_count.sum()
            smoothed = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n  # Laplace
            self.codebook.data.copy_(self.ema_sum / smoothed.unsqueeze(1))
        dead = (self.usage < self.dead_threshold).float().mean()
        if self.restart:
            self.restart_dead(flat)
        return dead

    @torch.no_grad()
    def restart_dead(self, flat: torch.Tensor) -> int:
        """Move each dead code onto a random encoder output of this batch; returns how many moved."""
        dead = self.usage < self.dead_threshold
        k = int(dead.sum())
        if k == 0:
            return 0
        pick = flat[torch.randint(0, flat.shape[0], (k,), device=flat.device)]
        if _distributed():  # every rank must restart to the same vectors
            dist.broadcast(pick, 0)
        self.codebook.data[dead] = pick.to(self.codebook.dtype)
        # a restarted code stays alive as long as it draws dead_threshold assignments per step (Jukebox)
        self.usage[dead] = self.dead_threshold
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
