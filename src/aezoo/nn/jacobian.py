"""Squared Frobenius norms of an encoder's Jacobian, ||J_f(x)||_F^2: the contractive penalty of Rifai et
al. 2011 (``models/contractive_ae.py``) and the ``jacobian_fro`` metric every vector code gets
(``evaluate/representation.py``). Exact through torch.func, or Hutchinson's unbiased estimate
E_u ||J^T u||^2, u ~ N(0, I) (Hutchinson 1989, "A stochastic estimator of the trace of the influence
matrix for Laplacian smoothing splines")."""
from __future__ import annotations

import torch


def exact_jacobian_fro2(f, x: torch.Tensor) -> torch.Tensor:
    """(B,) ||J_f(x_b)||_F^2 for a batched map f: (B, *in) -> (B, D), through torch.func (exact)."""
    from torch.func import jacfwd, jacrev, vmap

    def single(xi):
        return f(xi.unsqueeze(0)).squeeze(0)  # (D,)

    d_out = f(x[:1]).shape[-1]
    jac = jacrev if d_out <= x[0].numel() else jacfwd  # fewer passes: one per output or per input
    return vmap(jac(single))(x).pow(2).flatten(1).sum(1)


def hutchinson_jacobian_fro2(f, x: torch.Tensor, samples: int = 1, create_graph: bool = True) -> torch.Tensor:
    """(B,) unbiased estimate of ||J_f(x_b)||_F^2 = E_u ||J^T u||^2, differentiable in f's parameters.
    The ``samples`` probes run as one batch of samples * B rows (one vector-Jacobian product)."""
    b = x.shape[0]
    x_rep = x.detach().repeat(samples, *([1] * (x.dim() - 1))).requires_grad_(True)  # (S*B, *in)
    h = f(x_rep)
    u = torch.randn_like(h)
    (jt_u,) = torch.autograd.grad(h, x_rep, u, create_graph=create_graph)  # (S*B, *in)
    return jt_u.pow(2).flatten(1).sum(1).view(samples, b).mean(0)
