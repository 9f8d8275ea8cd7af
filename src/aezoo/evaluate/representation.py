"""Metrics of the code itself, for every model: sparsity (``code_l0``, ``dead_units``), contraction
(``jacobian_fro``), denoising under a stated corruption (``noisy_psnr``, ``denoise_psnr``), and
representation quality on labelled data (``probe_acc``, ``knn_precision_at_10``: leave-one-out search
within the split, with ``aezoo.search``'s exact neighbours; ``--retrieval`` adds index-based search
metrics, ``evaluate/retrieval.py``); plus the linear
AE's PCA comparison for models that declare ``LinearSubspaceModel``.

Codes of any latent shape are flattened to (N, D). PSNR assumes inputs in [0, 1] (peak 1) and is
computed from the mean squared error over the whole split.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from ..models.base import CodeGridModel, DenoisingModel, LinearSubspaceModel
from ..nn.corruption import parse
from ..nn.jacobian import exact_jacobian_fro2, hutchinson_jacobian_fro2
from ..nn.pca import pca_basis, pca_reconstruction_mse
from . import encode_batched, metric, reconstruct_batched

PROBE_TRAIN = 2000  # training codes for the logistic-regression probe (a subsample, for speed)
KNN_QUERIES = 2000  # queries for retrieval precision, each against the whole split
JACOBIAN_SAMPLES = 128
EXACT_JACOBIAN_MAX = 128  # min(code size, input size) up to which the Jacobian is computed exactly
HUTCHINSON_PROBES = 64
PCA_MAX_DIM = 1024  # input dimensions up to which every vector code is compared with PCA


def _codes(model, x, y) -> torch.Tensor:
    return encode_batched(model, x, y if model.needs_labels else None).flatten(1).float()


def psnr(x_hat: torch.Tensor, x: torch.Tensor, peak: float = 1.0) -> float:
    mse = float((x_hat.float() - x.float()).pow(2).mean())
    return 10 * math.log10(peak**2 / mse) if mse > 0 else float("inf")


@metric("code_sparsity")
def code_sparsity(model, data, split, x, y, **_: Any):
    """code_l0: mean number of non-zero code entries per example; dead_units: fraction of code units
    that are zero on every example of the split."""
    z = _codes(model, x, y)
    nonzero = z != 0
    return {"code_l0": float(nonzero.sum(1).float().mean()), "dead_units": float((~nonzero.any(0)).float().mean())}


@metric("jacobian_fro")
def jacobian_fro(model, data, split, x, y, jacobian_samples: int = JACOBIAN_SAMPLES, **_: Any):
    """Mean ||J_f(x)||_F^2 of the encoder x -> code on the first ``jacobian_samples`` examples: exact
    (torch.func) when the Jacobian is small, otherwise Hutchinson's unbiased estimate with
    ``HUTCHINSON_PROBES`` probes per example (the exact one costs min(D, d) passes per example).
    Applies to vector codes of single inputs: skipped for code grids (discrete codes, where the
    Jacobian of a nearest-neighbour lookup says nothing), sequences, and encoders autograd cannot
    differentiate."""
    if model.needs_labels or isinstance(model, CodeGridModel) or jacobian_samples <= 0 or len(model.latent_shape) != 1 or x.dim() > 4:
        return None
    f = lambda xb: model.encode(xb).flatten(1)  # noqa: E731
    xs = x[:jacobian_samples]
    try:
        small = min(f(xs[:1]).shape[1], xs[0].numel()) <= EXACT_JACOBIAN_MAX
        with torch.enable_grad():
            if small:
                vals = torch.cat([exact_jacobian_fro2(f, xs[i : i + 16]) for i in range(0, xs.shape[0], 16)])
            else:
                vals = torch.cat([hutchinson_jacobian_fro2(f, xs[i : i + 16], HUTCHINSON_PROBES, create_graph=False) for i in range(0, xs.shape[0], 16)])
    except Exception:  # noqa: BLE001 - e.g. an encoder with data-dependent control flow or integer codes
        return None
    return {"jacobian_fro": float(vals.mean())}


def denoising_metrics(model, x, y, q, seed: int = 0) -> dict[str, Any]:
    """PSNR of x corrupted by ``q`` and of the model's reconstructions of them, both against x."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    x_tilde = q(x, generator=gen)
    x_hat = reconstruct_batched(model, x_tilde, y if model.needs_labels else None)
    return {"corrupt": str(q), "noisy_psnr": psnr(x_tilde, x), "denoise_psnr": psnr(x_hat.view_as(x), x)}


@metric("denoising")
def denoising(model, data, split, x, y, corrupt: str | None = None, seed: int = 0, **_: Any):
    """PSNR of corrupted inputs and of the model's reconstructions of them, both against the clean
    inputs: under ``corrupt`` ("mask:0.5", ..., ``aezoo eval --corrupt``) for any model, else under a
    ``DenoisingModel``'s training corruption."""
    if corrupt:
        return denoising_metrics(model, x, y, parse(corrupt), seed)
    if isinstance(model, DenoisingModel):
        return denoising_metrics(model, x, y, model.corruption, seed)
    return None


@metric("probe")
def probe(model, data, split, x, y, seed: int = 0, probe_train: int = PROBE_TRAIN, **_: Any):
    """probe_acc: logistic regression on codes, fitted on (a subsample of) the train split and
    scored on this split."""
    train = data.train
    if y is None or train.y is None or probe_train <= 0:
        return None
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train), generator=gen)[:probe_train]
    dev = model.device
    z_train = _codes(model, train.x[idx].to(dev), train.y[idx].to(dev)).cpu().numpy()
    y_train = train.y[idx].numpy()
    if len(np.unique(y_train)) < 2:
        return None
    z_eval = _codes(model, x, y).cpu().numpy()
    scaler = StandardScaler().fit(z_train)
    # sklearn's default iteration budget: a probe of the codes, not a tuned classifier
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(max_iter=100).fit(scaler.transform(z_train), y_train)
    return {"probe_acc": float(clf.score(scaler.transform(z_eval), y.cpu().numpy()))}


@metric("knn_precision")
def knn_precision(model, data, split, x, y, seed: int = 0, knn_queries: int = KNN_QUERIES, **_: Any):
    """knn_precision_at_10: for each query code, the share of its 10 nearest codes (Euclidean, the
    query itself left out) that carry the query's label: the embedding used for search."""
    if y is None or x.shape[0] < 11:
        return None
    from ..search import exact_neighbours, precision_at_k  # the search code's exact neighbours and score

    z = _codes(model, x, y)
    gen = torch.Generator().manual_seed(seed)
    queries = torch.randperm(z.shape[0], generator=gen)[:knn_queries].to(z.device)
    _, nn_idx = exact_neighbours(z, z[queries], 10, exclude=queries)  # (q, 10), the query itself left out
    return {"knn_precision_at_10": precision_at_k(y[nn_idx].cpu(), y[queries].cpu())}


@metric("pca_subspace")
def pca_subspace(model, data, split, x, y, **_: Any):
    """``pca_mse_ratio``: the reconstruction MSE over that of PCA with as many components as the code
    has units (fitted on the train split): below 1, the code beats the linear baseline (Hinton &
    Salakhutdinov 2006). For vector codes narrower than inputs of at most ``PCA_MAX_DIM`` dimensions
    (the fit is a d x d eigendecomposition); the linear AE adds its principal angles to the PCA subspace."""
    if isinstance(model, LinearSubspaceModel):
        return model.pca_subspace_metrics(data.train.x.to(model.device), x)
    k = model.latent_shape[0] if len(model.latent_shape) == 1 else 0
    if model.needs_labels or isinstance(model, CodeGridModel) or x.dim() > 4 or not 1 <= k < x[0].numel() or x[0].numel() > PCA_MAX_DIM:
        return None
    mean, basis = pca_basis(data.train.x, k)
    pca_mse = pca_reconstruction_mse(x.cpu(), mean, basis)
    mse = float((reconstruct_batched(model, x).view_as(x) - x).double().pow(2).mean())
    return {"pca_mse_ratio": mse / pca_mse} if pca_mse > 0 else None
