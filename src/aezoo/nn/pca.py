"""The principal subspace of a data set and its comparisons: the linear AE's claim (Baldi & Hornik
1989, ``models/linear_ae.py``) and the ``pca_mse_ratio`` baseline every vector code is measured
against (Hinton & Salakhutdinov 2006, ``evaluate/representation.py``). Computed in float64."""
from __future__ import annotations

import torch


def pca_basis(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and an orthonormal basis (d, k) of the top-k principal subspace of x (N, d), in float64:
    from the eigenvectors of the (d, d) scatter matrix when N >= d (far cheaper than an SVD of x for
    N >> d), else from the SVD of x."""
    x = x.flatten(1).double()
    mean = x.mean(0)
    xc = x - mean
    if xc.shape[0] < xc.shape[1]:
        return mean, torch.linalg.svd(xc, full_matrices=False)[2][:k].T
    _, vecs = torch.linalg.eigh(xc.T @ xc)  # ascending eigenvalues
    return mean, vecs[:, xc.shape[1] - k :].flip(1)


def principal_angles_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles (degrees, largest first) between the column spaces of a (d, k) and b (d, m)."""
    qa, _ = torch.linalg.qr(a.double())
    qb, _ = torch.linalg.qr(b.double())
    cos = torch.linalg.svdvals(qa.T @ qb).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos)).flip(0)


def pca_reconstruction_mse(x: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor) -> float:
    """Mean squared error per dimension of projecting x onto mean + span(basis)."""
    xc = x.flatten(1).double() - mean
    return float((xc - xc @ basis @ basis.T).pow(2).mean())
