"""Search by embedding: index a model's codes of a dataset with FAISS and find the nearest items to
new inputs. ``aezoo.index(model, data)`` builds one, ``Index.save``/``aezoo.load_index`` keep it,
``Index.search(x, k)`` queries it; ``aezoo index`` / ``aezoo search`` are the commands. FAISS is the
optional extra ``search``; exact neighbours and the retrieval scores (``neighbours``) need only torch."""
from __future__ import annotations

from typing import Any

from .vector_index import KINDS, PARAMS, Hits, Index, build_index, encode_codes, load_index
from .neighbours import exact_neighbours, precision_at_k, recall_at_k

__all__ = ["KINDS", "PARAMS", "Hits", "Index", "build_index", "encode_codes", "exact_neighbours", "index", "load_index", "precision_at_k", "recall_at_k"]


def index(model, data=None, split: str = "train", kind: str = "flat", metric: str = "l2", *, labels=None, ids=None, device: str = "cpu", **params: Any) -> Index:
    """Build a search index of ``model``'s codes.

    ``model``: a model, or a run folder or ``aezoo.Run`` (its model is loaded and recorded in the manifest).
    ``data``: a ``Dataset`` (``split``: train, val, test or all), inputs (N, *input_shape) as a tensor
    or array (with optional ``labels``, ``ids``), or None for the run's own dataset.
    ``kind``: flat (exact), hnsw or ivf-pq, with their ``params`` (see ``aezoo.search.PARAMS``).
    """
    import torch

    from ..data.core import Dataset

    provenance: dict[str, Any] = {}
    from ..runs import as_run

    run = as_run(model, device)  # a Run or a run folder; None for a model
    if run is not None:
        model = run.model
        provenance["run"] = str(run.path.resolve())
        if data is None:
            data = run.dataset()
    if data is None:
        raise ValueError("give the data to index (a Dataset or inputs), or a run folder whose dataset to use")
    if isinstance(data, Dataset):
        x, labels, provenance["data"] = split_inputs(data, split)
    else:
        x = data
    return build_index(model, x, labels=labels, ids=ids, kind=kind, metric=metric, params=params, provenance=provenance)


def split_inputs(data, split: str):
    """(inputs, labels or None, description) of one split of a Dataset, or of train+val+test for 'all'
    (ids then run over the splits in that order, as the description records)."""
    import torch

    from ..errors import DataError

    names = ["train", "val", "test"] if split == "all" else [split]
    if split == "all" and data.preprocessing.get("test_split") == "val":
        names = ["train", "val"]  # the test split is the validation split: index its rows once (issue 23)
    parts = [(n, data.split(n)) for n in names]
    parts = [(n, p) for n, p in parts if p is not None]
    if not parts:
        raise DataError(f"dataset {data.name!r} has no {split!r} split")
    x = torch.cat([p.x for _, p in parts])
    labelled = all(p.y is not None for _, p in parts)
    y = torch.cat([p.y for _, p in parts]) if labelled else None
    pre = data.preprocessing
    desc = {"name": data.name, "source": data.source, "split": split, "splits": [[n, len(p)] for n, p in parts],
            "class_names": data.class_names, "preprocessing": {k: pre.get(k) for k in ("binarize", "val_fraction", "limit", "seed", "options", "image") if k in pre},
            "sources": [s for n, _ in parts for s in data.sources(n)]}  # each item's file or row: what hits name (issue 23)
    return x, y, desc
