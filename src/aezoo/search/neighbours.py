"""Exact nearest neighbours in torch and the retrieval scores, shared by the FAISS index (whose flat
kind the tests check against ``exact_neighbours``) and the ``knn_precision_at_10`` metric, which needs
no optional package.

Distances: ``l2`` is the Euclidean distance; ``cosine`` is 1 - cosine similarity. Smaller is nearer.
"""
from __future__ import annotations

import numpy as np
import torch

METRICS = ("l2", "cosine")


def normalise(z: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length (zero rows stay zero): cosine search is inner-product search on these."""
    return z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def exact_neighbours(database: torch.Tensor, queries: torch.Tensor, k: int, metric: str = "l2", exclude: torch.Tensor | None = None,
                     chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest rows of ``database`` (N, D) to each row of ``queries`` (Q, D) by brute force:
    (distances (Q, k), indices (Q, k)), nearest first. ``exclude`` (Q,) names one database row per
    query to leave out (the query itself, for leave-one-out scores)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    db, qs = database.float(), queries.float().to(database.device)
    if metric == "cosine":
        db, qs = normalise(db), normalise(qs)
    dists, idxs = [], []
    for start in range(0, qs.shape[0], chunk):
        q = qs[start : start + chunk]
        d = (1 - q @ db.t()) if metric == "cosine" else torch.cdist(q, db)  # (q, N)
        if exclude is not None:
            d[torch.arange(q.shape[0], device=d.device), exclude[start : start + chunk].to(d.device)] = float("inf")
        top = d.topk(min(k, db.shape[0]), dim=1, largest=False)
        dists.append(top.values)
        idxs.append(top.indices)
    return torch.cat(dists), torch.cat(idxs)


def precision_at_k(neighbour_labels, query_labels) -> float:
    """Share of each query's retrieved items that carry the query's label, averaged over queries:
    (Q, k), (Q,) -> precision@k."""
    nb, ql = np.asarray(neighbour_labels), np.asarray(query_labels)
    return float((nb == ql[:, None]).mean())


def recall_at_k(found, truth) -> float:
    """Share of the exact k nearest neighbours (``truth``, (Q, k)) that an approximate search found
    among its k (``found``, (Q, k')), averaged over queries: recall@k."""
    found, truth = np.asarray(found), np.asarray(truth)
    hit = (truth[:, :, None] == found[:, None, :]).any(2)  # (Q, k): exact neighbour j was found
    return float(hit.mean())
