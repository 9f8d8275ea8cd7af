"""Search metrics (``aezoo eval --retrieval``): the evaluated split's codes queried against an index of
the training codes, for each index kind: precision@k by label, recall@k of the approximate kinds
against the exact one, queries per second (all queries in one batch, FAISS's threads), build seconds
and index size. ``measure_index`` is shared with ``benchmarks/bench_search.py``.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from . import metric

K = 10


def measure_index(kind: str, z_db, y_db, z_q, y_q, k: int = K, metric_name: str = "l2", params: dict | None = None,
                  exact_ids: np.ndarray | None = None) -> dict[str, Any]:
    """Build one index of codes ``z_db`` and query it with ``z_q``: build_s, qps, index_mb, and
    precision@k (with labels) and recall@k (against ``exact_ids``, the flat index's answer)."""
    from ..search import build_index, precision_at_k, recall_at_k

    index = build_index(None, None, codes=z_db, labels=y_db, kind=kind, metric=metric_name, params=params)
    t0 = time.perf_counter()
    hits = index.search_codes(z_q, k)
    seconds = time.perf_counter() - t0
    row: dict[str, Any] = {"kind": kind, "params": index.params, "n": len(index), "queries": int(np.asarray(z_q).shape[0]),
                           "build_s": index.manifest["build_seconds"], "qps": np.asarray(z_q).shape[0] / max(seconds, 1e-9),
                           "index_mb": index.nbytes() / 1e6, "ids": hits.ids}
    if y_q is not None and hits.labels is not None:
        row["precision"] = precision_at_k(hits.labels, np.asarray(y_q))
    if exact_ids is not None:
        row["recall"] = recall_at_k(hits.ids, exact_ids)
    return row


@metric("retrieval")
def retrieval(model, data, split, x, y, retrieval: bool = False, seed: int = 0, **_: Any):
    """With ``retrieval=True``: ``retrieval_*`` keys, the split's inputs as queries against the train split."""
    if not retrieval:
        return None
    from ..errors import DataError
    from ..search import KINDS, encode_codes
    from ..utils import require

    require("faiss", "search")
    train = data.train
    z_db = encode_codes(model, train.x, train.y)
    z_q = encode_codes(model, x, y)
    y_db = None if train.y is None else train.y.numpy()
    y_q = None if y is None else y.cpu().numpy()
    out: dict[str, Any] = {"retrieval_k": K, "retrieval_indexed": int(z_db.shape[0]), "retrieval_queries": int(z_q.shape[0])}
    exact = None
    for kind in KINDS:
        try:
            row = measure_index(kind, z_db, y_db, z_q, y_q, exact_ids=exact)
        except DataError:  # too few items for this kind (ivf-pq trains 256 centroids per sub-vector)
            continue
        if kind == "flat":
            exact = row["ids"]
        suffix = "" if kind == "flat" else f"_{kind.replace('-', '_')}"
        if "precision" in row:
            out[f"retrieval_precision_at_{K}{suffix}"] = row["precision"]
        if "recall" in row:
            out[f"retrieval_recall_at_{K}{suffix}"] = row["recall"]
        out[f"retrieval_qps_{kind.replace('-', '_')}"] = row["qps"]
        out[f"retrieval_build_s_{kind.replace('-', '_')}"] = row["build_s"]
        out[f"retrieval_index_mb_{kind.replace('-', '_')}"] = row["index_mb"]
    return out
