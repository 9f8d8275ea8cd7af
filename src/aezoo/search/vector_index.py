"""A vector index over a model's codes, with FAISS (Johnson, Douze & Jegou 2019, "Billion-scale
similarity search with GPUs", arXiv:1702.08734), the standard library for it.

Kinds and their parameters (defaults in ``PARAMS``):

- ``flat``: exact search, every query against every item.
- ``hnsw``: a hierarchical navigable small-world graph (Malkov & Yashunin 2018, arXiv:1603.09320):
  ``M`` links per node, ``ef_construction`` candidates while building, ``ef_search`` while searching.
- ``ivf-pq``: an inverted file of ``nlist`` k-means cells, ``nprobe`` of them visited per query, each
  vector stored as a product-quantised code of ``pq_m`` sub-vectors of ``pq_bits`` bits (Jegou,
  Douze & Schmid 2011, "Product quantization for nearest neighbor search", TPAMI 33(1)); with
  ``rerank`` r > 0 the full vectors are kept too and the r*k best candidates re-ranked exactly
  (FAISS's IndexRefineFlat): PQ's speed with most of the lost recall back, at flat's memory.

Distances: ``l2`` is Euclidean (FAISS's squared distance, square-rooted), ``cosine`` is 1 - cosine
similarity (half the squared distance of unit vectors, which the index holds). A saved index is a folder: ``index.faiss`` (FAISS's own
format), ``items.npz`` (ids and labels, read with ``allow_pickle=False``) and ``manifest.json`` (the
run and a SHA-256 of its model's weights, the data, the metric, the kind and its parameters, and
checksums of the two files). Nothing is pickled.
"""
from __future__ import annotations

import hashlib
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError, DataError
from ..utils import require, weights_hash
from .neighbours import METRICS

FORMAT = "aezoo-index/1"
KINDS = ("flat", "hnsw", "ivf-pq")
# None: chosen from the data (nlist ~ 4 sqrt(N) with >= 39 items per cell; pq_m: sub-vectors of ~4 dims)
PARAMS: dict[str, dict[str, int | None]] = {
    "flat": {},
    "hnsw": {"M": 32, "ef_construction": 80, "ef_search": 64},
    "ivf-pq": {"nlist": None, "nprobe": 16, "pq_m": None, "pq_bits": 8, "rerank": 0},
}
SEARCH_PARAMS = ("ef_search", "nprobe", "rerank")  # may change on a built index (rerank only if built with it)
INDEX_FILE, ITEMS_FILE, MANIFEST_FILE = "index.faiss", "items.npz", "manifest.json"


def _faiss():
    return require("faiss", "search")


def resolve_params(kind: str, dim: int, n: int, params: dict[str, Any] | None = None) -> dict[str, int]:
    """The kind's parameters: ``params`` checked by name and range, the rest from ``PARAMS``."""
    if kind not in KINDS:
        raise ConfigError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
    params = {k: v for k, v in (params or {}).items() if v is not None}
    unknown = sorted(set(params) - set(PARAMS[kind]))
    if unknown:
        allowed = ", ".join(PARAMS[kind]) or "none"
        raise ConfigError(f"index kind {kind!r} has no parameter {unknown[0]!r}; its parameters: {allowed}")
    out = {**PARAMS[kind], **{k: int(v) for k, v in params.items()}}
    if kind == "hnsw":
        for key in ("M", "ef_construction", "ef_search"):
            if out[key] < 1:
                raise ConfigError(f"hnsw parameter {key} must be >= 1, got {out[key]}")
    if kind == "ivf-pq":
        if out["pq_bits"] not in range(1, 17):
            raise ConfigError(f"ivf-pq parameter pq_bits must be in 1..16, got {out['pq_bits']}")
        if n < 2 ** out["pq_bits"]:
            raise DataError(f"ivf-pq trains {2 ** out['pq_bits']} centroids per sub-vector (pq_bits={out['pq_bits']}) and needs at least as many items, got {n}; use --kind flat or a smaller pq_bits")
        if out["nlist"] is None:
            out["nlist"] = max(1, min(int(4 * math.sqrt(n)), n // 39))
        if out["pq_m"] is None:
            out["pq_m"] = max(m for m in range(1, max(1, dim // 4) + 1) if dim % m == 0)
        if not 1 <= out["nlist"] <= n:
            raise ConfigError(f"ivf-pq parameter nlist must be in 1..{n} (the number of items), got {out['nlist']}")
        if out["pq_m"] < 1 or dim % out["pq_m"]:
            raise ConfigError(f"ivf-pq parameter pq_m must divide the code size {dim}, got {out['pq_m']}")
        out["nprobe"] = max(1, min(out["nprobe"], out["nlist"]))
        if out["rerank"] < 0:
            raise ConfigError(f"ivf-pq parameter rerank must be >= 0 (0: off), got {out['rerank']}")
    return out


def _as_float32(z) -> np.ndarray:
    z = z.detach().float().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z, dtype=np.float32)
    return np.ascontiguousarray(z.reshape(z.shape[0], -1), dtype=np.float32)


def make_index(kind: str, dim: int, params: dict[str, int]):
    """An empty FAISS index of ``kind`` (trained later for ivf-pq), by squared Euclidean distance:
    cosine search runs on unit vectors, where ||a - b||^2 = 2 (1 - cos), which suits the graph and
    the k-means of the approximate kinds better than inner products."""
    faiss = _faiss()
    if kind == "flat":
        return faiss.IndexFlatL2(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, params["M"])
        index.hnsw.efConstruction = params["ef_construction"]
        return index
    refine = ",RFlat" if params["rerank"] else ""
    index = faiss.index_factory(dim, f"IVF{params['nlist']},PQ{params['pq_m']}x{params['pq_bits']}{refine}")
    ivf = faiss.extract_index_ivf(index)
    # the item counts were checked above; FAISS would print a warning per k-means below 39 points per centroid
    ivf.cp.min_points_per_centroid = 1
    ivfpq = faiss.downcast_index(faiss.downcast_index(index).base_index if refine else index)
    ivfpq.pq.cp.min_points_per_centroid = 1
    ivfpq.do_polysemous_training = False  # the factory turns it on; it only serves Hamming filtering, which we do not use
    return index


def training_sample(z: np.ndarray, params: dict[str, int], seed: int = 0) -> np.ndarray:
    """The rows ivf-pq trains its k-means on: all of them, or a random sample of 64 per coarse cell
    and 100 per PQ centroid when there are more (FAISS would subsample to 256 per centroid anyway)."""
    m = max(64 * params["nlist"], 100 * 2 ** params["pq_bits"])
    if z.shape[0] <= m:
        return z
    return z[np.sort(np.random.default_rng(seed).choice(z.shape[0], m, replace=False))]


def set_search_params(index, kind: str, params: dict[str, int]) -> None:
    faiss = _faiss()
    if kind == "hnsw":
        faiss.downcast_index(index).hnsw.efSearch = params["ef_search"]
    elif kind == "ivf-pq":
        faiss.extract_index_ivf(index).nprobe = params["nprobe"]
        if params["rerank"]:
            faiss.downcast_index(index).k_factor = params["rerank"]


@dataclass
class Hits:
    """The answer to a batch of queries, nearest first: ``ids`` (Q, k) of the indexed items (-1
    where the index holds fewer than k), ``distances`` (Q, k), and ``labels`` (Q, k) of the hits
    where the indexed items are labelled (-1 for an unlabelled item or a missing hit)."""

    ids: np.ndarray
    distances: np.ndarray
    labels: np.ndarray | None = None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Index:
    """A FAISS index of codes, the ids and labels of the items, and the model that encodes queries.
    Build with ``aezoo.index`` (or ``build_index``), open a saved one with ``aezoo.load_index``."""

    def __init__(self, index, ids: np.ndarray, labels: np.ndarray | None, manifest: dict[str, Any], model=None):
        self.faiss_index, self.ids, self.labels, self.manifest, self.model = index, ids, labels, manifest, model

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def metric(self) -> str:
        return self.manifest["metric"]

    @property
    def params(self) -> dict[str, int]:
        return self.manifest["params"]

    @property
    def dim(self) -> int:
        return self.manifest["dim"]

    def __len__(self) -> int:
        return int(self.faiss_index.ntotal)

    def __repr__(self) -> str:
        return f"Index({self.kind}, {len(self)} items of dim {self.dim}, {self.metric}, model {self.manifest.get('model')!r})"

    def nbytes(self) -> int:
        """Size of the FAISS index as saved (index.faiss)."""
        return int(_faiss().serialize_index(self.faiss_index).nbytes)

    # --- queries -----------------------------------------------------------------------------------
    def encode(self, x, y=None) -> np.ndarray:
        """Inputs (Q, *input_shape), or one input, -> their codes (Q, dim) with the index's model."""
        if self.model is None:
            raise ConfigError("this index has no model to encode inputs: load it with a model, or search codes with search_codes")
        return encode_codes(self.model, x, y)

    def search(self, x, k: int = 10, y=None, **search_params) -> Hits:
        """The k nearest indexed items to each input of ``x`` (encoded with the model).
        ``search_params``: ``ef_search`` (hnsw) or ``nprobe`` (ivf-pq) for this search."""
        return self.search_codes(self.encode(x, y), k, **search_params)

    def search_codes(self, z, k: int = 10, **search_params) -> Hits:
        """The k nearest indexed items to each code (Q, dim)."""
        faiss = _faiss()
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        q = _as_float32(z)
        if q.shape[1] != self.dim:
            raise DataError(f"queries are codes of size {q.shape[1]}, the index holds codes of size {self.dim}")
        params = dict(self.params)
        bad = sorted(set(search_params) - {p for p in SEARCH_PARAMS if p in params})
        if bad:
            raise ConfigError(f"index kind {self.kind!r} has no search parameter {bad[0]!r}")
        for key, v in search_params.items():
            if v is not None:
                if int(v) < 1:
                    raise ConfigError(f"{key} must be >= 1, got {v}")
                if key == "rerank" and not params["rerank"]:
                    raise ConfigError("this ivf-pq index keeps no full vectors to re-rank: build it with rerank (--rerank N)")
                params[key] = int(v)
        if self.kind == "ivf-pq":
            params["nprobe"] = min(params["nprobe"], params["nlist"])
        set_search_params(self.faiss_index, self.kind, params)
        if self.metric == "cosine":
            q = q.copy()
            faiss.normalize_L2(q)
        d, pos = self.faiss_index.search(q, min(k, max(len(self), 1)))
        if k > pos.shape[1]:  # fewer items than k: pad as FAISS does
            pos = np.pad(pos, ((0, 0), (0, k - pos.shape[1])), constant_values=-1)
            d = np.pad(d, ((0, 0), (0, k - d.shape[1])), constant_values=np.inf)
        found = pos >= 0
        d = np.maximum(d, 0)
        dist = np.where(found, np.sqrt(d) if self.metric == "l2" else d / 2, np.inf).astype(np.float32)
        ids = np.where(found, self.ids[np.maximum(pos, 0)], -1)
        labels = None if self.labels is None else np.where(found, self.labels[np.maximum(pos, 0)], -1)
        return Hits(ids, dist, labels)

    # --- files -------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the index folder (each file atomically, the manifest last)."""
        from ..runs import atomic_write, write_json

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        blob = _faiss().serialize_index(self.faiss_index).tobytes()
        buf = io.BytesIO()
        arrays = {"ids": self.ids} if self.labels is None else {"ids": self.ids, "labels": self.labels}
        np.savez(buf, **arrays)
        items = buf.getvalue()
        atomic_write(path / INDEX_FILE, blob)
        atomic_write(path / ITEMS_FILE, items)
        self.manifest["files"] = {INDEX_FILE: _sha256(blob), ITEMS_FILE: _sha256(items)}
        write_json(path / MANIFEST_FILE, self.manifest)
        return path


def encode_codes(model, x, y=None, batch_size: int = 1024) -> np.ndarray:
    """Codes (N, D) float32 of inputs ``x`` (N, *input_shape), or of one input, in batches on the model's device."""
    shape = tuple(model.config.input_shape)
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()
    if tuple(x.shape) == shape:
        x = x.unsqueeze(0)
    if tuple(x.shape[1:]) != shape:
        raise DataError(f"inputs have shape {tuple(x.shape[1:])}; model {model.name!r} takes {shape}")
    if model.needs_labels and y is None:
        raise DataError(f"model {model.name!r} encodes an input together with its label: give labels")
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            yb = None if y is None or not model.needs_labels else torch.as_tensor(y[i : i + batch_size]).to(model.device)
            out.append(model.encode(x[i : i + batch_size].to(model.device), yb).flatten(1).float().cpu())
    return _as_float32(torch.cat(out)) if out else np.zeros((0, 0), np.float32)


def build_index(model, x, *, labels=None, ids=None, kind: str = "flat", metric: str = "l2", params: dict[str, Any] | None = None,
                codes=None, provenance: dict[str, Any] | None = None) -> Index:
    """Encode ``x`` with ``model`` (or take precomputed ``codes``) and index the codes.
    ``ids`` default to 0..N-1; ``labels`` (N,) are kept for precision@k; ``provenance`` (the run, the
    data) goes into the manifest."""
    faiss = _faiss()
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    z = _as_float32(codes) if codes is not None else encode_codes(model, x, labels)
    n, dim = z.shape
    if n == 0:
        raise DataError("nothing to index: no inputs")
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64).reshape(-1)
    if ids.shape[0] != n:
        raise DataError(f"{n} items but {ids.shape[0]} ids")
    if labels is not None:
        labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        labels = labels.astype(np.int64).reshape(-1)
        if labels.shape[0] != n:
            raise DataError(f"{n} items but {labels.shape[0]} labels")
    p = resolve_params(kind, dim, n, params)
    t0 = time.perf_counter()
    index = make_index(kind, dim, p)
    if metric == "cosine":
        z = z.copy()  # never the caller's array (a tensor's numpy view shares its memory)
        faiss.normalize_L2(z)
    if not index.is_trained:
        index.train(training_sample(z, p))
    index.add(z)
    seconds = time.perf_counter() - t0
    set_search_params(index, kind, p)
    manifest = {
        "format": FORMAT,
        **(provenance or {}),
        "model": None if model is None else model.name,
        "model_hash": None if model is None else weights_hash(model),
        "input_shape": None if model is None else list(model.config.input_shape),
        "metric": metric,
        "kind": kind,
        "params": p,
        "dim": dim,
        "count": n,
        "labelled": labels is not None,
        "build_seconds": round(seconds, 3),
        "faiss": faiss.__version__,
    }
    return Index(index, ids, labels, manifest, model)


def _read_manifest(path: Path) -> dict[str, Any]:
    import json

    mf = path / MANIFEST_FILE
    if not path.is_dir():
        raise CheckpointError(f"no index folder at {path}")
    if not mf.exists():
        raise CheckpointError(f"{path} is not an index folder: it has no {MANIFEST_FILE} (build one with `aezoo index RUN_DIR`)")
    try:
        m = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"corrupt manifest {mf}: {e}") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        got = m.get("format") if isinstance(m, dict) else type(m).__name__
        raise CheckpointError(f"{mf}: not an aezoo index manifest (format {got!r}, expected {FORMAT!r})")
    checks = {"kind": lambda v: v in KINDS, "metric": lambda v: v in METRICS, "dim": lambda v: isinstance(v, int) and v > 0,
              "count": lambda v: isinstance(v, int) and v > 0, "params": lambda v: isinstance(v, dict), "files": lambda v: isinstance(v, dict)}
    for key, ok in checks.items():
        if key not in m or not ok(m[key]):
            raise CheckpointError(f"corrupt manifest {mf}: bad or missing {key!r}")
    return m


def load_index(path: str | Path, model=None, device: str = "cpu") -> Index:
    """Open a saved index folder. The model that encodes queries is ``model`` if given, else the
    run recorded in the manifest; either way its weights must hash to the manifest's."""
    faiss = _faiss()
    path = Path(path)
    m = _read_manifest(path)
    blobs = {}
    for name in (INDEX_FILE, ITEMS_FILE):
        try:
            blobs[name] = (path / name).read_bytes()
        except FileNotFoundError:
            raise CheckpointError(f"index folder {path} is missing {name}") from None
        if _sha256(blobs[name]) != m["files"].get(name):
            raise CheckpointError(f"{path / name} does not match its manifest's checksum: the file is corrupt or was replaced")
    try:
        index = faiss.deserialize_index(np.frombuffer(blobs[INDEX_FILE], dtype=np.uint8))
    except RuntimeError as e:
        raise CheckpointError(f"{path / INDEX_FILE}: not a readable FAISS index ({str(e).splitlines()[0]})") from None
    with np.load(io.BytesIO(blobs[ITEMS_FILE]), allow_pickle=False) as items:
        ids = items["ids"]
        labels = items["labels"] if "labels" in items.files else None
    if index.ntotal != m["count"] or index.d != m["dim"] or ids.shape != (m["count"],):
        raise CheckpointError(f"{path}: the index holds {index.ntotal} codes of size {index.d}, its manifest says {m['count']} of size {m['dim']}")
    if model is None and m.get("run"):
        from ..runs import load_model

        if not Path(m["run"]).exists():
            raise CheckpointError(f"index {path} was built from run {m['run']}, which is not there any more: pass the run (--run RUN_DIR)")
        model = load_model(m["run"], device)
    if model is not None:
        check_model(m, model, path)
    set_search_params(index, m["kind"], m["params"])
    return Index(index, ids, labels, m, model)


def check_model(manifest: dict[str, Any], model, where) -> None:
    """One-line error unless ``model`` has the weights the index was built with."""
    if manifest.get("model_hash") and weights_hash(model) != manifest["model_hash"]:
        raise CheckpointError(f"index {where} was built with another model ({manifest.get('model')!r} from {manifest.get('run')}, weights "
                              f"{manifest['model_hash'][:12]}), not this {model.name!r} (weights {weights_hash(model)[:12]}): rebuild it with `aezoo index`")
