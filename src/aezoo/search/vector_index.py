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
format), ``items.npz`` (ids, labels and a sealed copy of the manifest's fields, read with
``allow_pickle=False``) and ``manifest.json`` (the run and a SHA-256 of its model's weights, the data,
the metric, the kind and its parameters, and checksums of the two files). Nothing is pickled; what
``load_index`` checks of a folder that may have been edited is in its docstring.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import operator
import os
import stat
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError, DataError
from ..utils import require, weights_hash
from .neighbours import METRICS

FORMAT = "aezoo-index/2"  # 2: items.npz seals a copy of the manifest's fields (issue 22)
KINDS = ("flat", "hnsw", "ivf-pq")
# None: chosen from the data (nlist ~ 4 sqrt(N) with >= 39 items per cell; pq_m: sub-vectors of ~4 dims)
PARAMS: dict[str, dict[str, int | None]] = {
    "flat": {},
    "hnsw": {"M": 32, "ef_construction": 80, "ef_search": 64},
    "ivf-pq": {"nlist": None, "nprobe": 16, "pq_m": None, "pq_bits": 8, "rerank": 0},
}
SEARCH_PARAMS = ("ef_search", "nprobe", "rerank")  # may change on a built index (rerank only if built with it)
INDEX_FILE, ITEMS_FILE, MANIFEST_FILE = "index.faiss", "items.npz", "manifest.json"
SEAL = "manifest"  # the items.npz entry that holds the manifest's fields as JSON bytes
FOURCC = {"flat": (b"IxF2",), "hnsw": (b"IHNf",), "ivf-pq": (b"IwPQ", b"IxRF")}  # FAISS's first 4 bytes per kind
# bounds on what a manifest may say (and a build may ask for), so that no edited file allocates without limit
MAX_MANIFEST = 1 << 20  # bytes
MAX_DIM, MAX_COUNT = 1 << 20, 1 << 36
MAX_M, MAX_EF, MAX_RERANK = 1024, 1 << 20, 1024
MAX_K = 10_000  # neighbours per query
MAX_NORM = 1e18  # a code's length: squared distances stay below float32's 3.4e38


def _faiss():
    return require("faiss", "search")


def _as_int(key: str, v: Any) -> int:
    try:
        return operator.index(v)
    except TypeError:
        raise ConfigError(f"index parameter {key} must be an integer, got {v!r}"[:200]) from None


def resolve_params(kind: str, dim: int, n: int, params: dict[str, Any] | None = None) -> dict[str, int]:
    """The kind's parameters: ``params`` checked by name and range, the rest from ``PARAMS``."""
    if kind not in KINDS:
        raise ConfigError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
    params = {k: v for k, v in (params or {}).items() if v is not None}
    unknown = sorted(set(params) - set(PARAMS[kind]))
    if unknown:
        allowed = ", ".join(PARAMS[kind]) or "none"
        raise ConfigError(f"index kind {kind!r} has no parameter {unknown[0]!r}; its parameters: {allowed}")
    out = {**PARAMS[kind], **{k: _as_int(k, v) for k, v in params.items()}}
    if kind == "hnsw":
        for key in ("M", "ef_construction", "ef_search"):
            hi = MAX_M if key == "M" else MAX_EF
            if not 1 <= out[key] <= hi:
                raise ConfigError(f"hnsw parameter {key} must be in 1..{hi}, got {out[key]}")
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
        if not 0 <= out["rerank"] <= MAX_RERANK:
            raise ConfigError(f"ivf-pq parameter rerank must be in 0..{MAX_RERANK} (0: off), got {out['rerank']}")
    return out


def unsearchable(z: np.ndarray, what: str, names: list[str] | None = None) -> str | None:
    """Why some rows of codes (N, D) cannot be searched, or None: a NaN or inf, or a length whose squared
    distances overflow FAISS's float32 (codes of inputs of 1e38 are finite and found nothing, issue 22)."""
    norms = np.sqrt(np.square(z, dtype=np.float64).sum(1))
    bad = np.flatnonzero(~(norms <= MAX_NORM))  # NaN compares false
    if not bad.size:
        return None
    rows = ", ".join(str(i) if names is None else names[i] for i in bad[:5]) + (", ..." if bad.size > 5 else "")
    why = ("not finite (inf or NaN)" if not np.isfinite(z[bad]).all()
           else f"too long for float32 distances (length up to {norms[bad].max():.3g}, at most {MAX_NORM:.0e})")
    return f"the codes of {bad.size} of {z.shape[0]} {what} ({'rows ' if names is None else ''}{rows}) are {why}"


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
        if not 1 <= k <= MAX_K:
            raise ConfigError(f"k must be in 1..{MAX_K}, got {k}")
        q = _as_float32(z)
        if q.shape[1] != self.dim:
            raise DataError(f"queries are codes of size {q.shape[1]}, the index holds codes of size {self.dim}")
        problem = unsearchable(q, "queries")
        if problem:  # FAISS answers no hit for them, silently (issue 22)
            raise DataError(f"{problem}: nothing was searched")
        params = dict(self.params)
        bad = sorted(set(search_params) - {p for p in SEARCH_PARAMS if p in params})
        if bad:
            raise ConfigError(f"index kind {self.kind!r} has no search parameter {bad[0]!r}")
        for key, v in search_params.items():
            if v is not None:
                hi = MAX_RERANK if key == "rerank" else MAX_EF
                v = _as_int(key, v)
                if not 1 <= v <= hi:
                    raise ConfigError(f"{key} must be in 1..{hi}, got {v}")
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
        seal = np.frombuffer(_canonical(sealed(self.manifest)).encode(), dtype=np.uint8)
        np.savez(buf, **arrays, **{SEAL: seal})
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
    problem = unsearchable(z, "items")
    if problem:  # FAISS would index them and answer no hits or nonsense distances
        raise DataError(f"{problem}: nothing was indexed")
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


# --- reading a folder that may have been edited ----------------------------------------------------
def _read_file(path: Path, cap: int, what: str) -> bytes:
    """A regular file's bytes, at most ``cap`` of them (issue 22: an ``index.faiss`` linked to /dev/zero
    was read until the OOM killer came). Opened without blocking, so a FIFO is refused, not waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CheckpointError(f"index folder {path.parent} is missing {path.name}") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CheckpointError(f"{path} is not a regular file ({_file_type(st.st_mode)}): refused")
        if st.st_size > cap:
            raise CheckpointError(f"{path} is {st.st_size:,} bytes, more than {what} can take ({cap:,}): refused")
        chunks, total = [], 0
        while chunk := os.read(fd, min(1 << 24, cap + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:
                raise CheckpointError(f"{path} grew past {cap:,} bytes while being read: refused")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _file_type(mode: int) -> str:
    kinds = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))
    return next((name for test, name in kinds if test(mode)), "not a plain file")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_sha256(v) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


def check_params(kind: str, params: Any, dim: int, count: int) -> str | None:
    """What is wrong with a manifest's ``params`` for ``kind`` (None: nothing): exactly the kind's
    parameters, each an integer in its range."""
    if not isinstance(params, dict):
        return f"params must be an object, got {type(params).__name__}"
    if set(params) != set(PARAMS[kind]):
        return f"params of a {kind} index are {', '.join(PARAMS[kind]) or 'none'}, got {', '.join(map(str, params)) or 'none'}"
    for key, v in params.items():
        if not _is_int(v):
            return f"params.{key} must be an integer, got {v!r}"[:200]
    ranges = {"M": (1, MAX_M), "ef_construction": (1, MAX_EF), "ef_search": (1, MAX_EF), "nlist": (1, count),
              "nprobe": (1, params.get("nlist", 1)), "pq_m": (1, dim), "pq_bits": (1, 16), "rerank": (0, MAX_RERANK)}
    for key, v in params.items():
        lo, hi = ranges[key]
        if not lo <= v <= hi:
            return f"params.{key} must be in {lo}..{hi}, got {v}"
    if kind == "ivf-pq" and dim % params["pq_m"]:
        return f"params.pq_m must divide the code size {dim}, got {params['pq_m']}"
    return None


def _check_manifest(m: Any, mf: Path) -> dict[str, Any]:
    """The manifest's fields by type and range, each refused with one line naming it."""
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        got = m.get("format") if isinstance(m, dict) else type(m).__name__
        if got == "aezoo-index/1":
            raise CheckpointError(f"{mf}: an index of an older aezoo (format 1, whose checksums did not cover its fields): "
                                  "rebuild it with `aezoo index RUN_DIR`")
        raise CheckpointError(f"{mf}: not an aezoo index manifest (format {str(got)[:60]!r}, expected {FORMAT!r})")
    checks = {
        "kind": lambda v: v in KINDS, "metric": lambda v: v in METRICS,
        "dim": lambda v: _is_int(v) and 0 < v <= MAX_DIM, "count": lambda v: _is_int(v) and 0 < v <= MAX_COUNT,
        "params": lambda v: isinstance(v, dict), "labelled": lambda v: isinstance(v, bool),
        "files": lambda v: isinstance(v, dict) and set(v) == {INDEX_FILE, ITEMS_FILE} and all(map(_is_sha256, v.values())),
        "run": lambda v: v is None or (isinstance(v, str) and 0 < len(v) < 4096),
        "model": lambda v: v is None or isinstance(v, str), "model_hash": lambda v: v is None or _is_sha256(v),
        "input_shape": lambda v: v is None or (isinstance(v, list) and 0 < len(v) <= 8 and all(_is_int(d) and d > 0 for d in v)),
        "data": lambda v: v is None or (isinstance(v, dict) and isinstance(v.get("split"), str)),
    }
    for key, ok in checks.items():
        if key not in m and key in ("run", "data", "model", "model_hash", "input_shape"):
            continue  # an index of bare codes records no run or model
        if key not in m or not ok(m[key]):
            got = "missing" if key not in m else f"{json.dumps(m[key])[:60]}"
            raise CheckpointError(f"corrupt manifest {mf}: bad or missing {key!r} ({got})")
    problem = check_params(m["kind"], m["params"], m["dim"], m["count"])
    if problem:
        raise CheckpointError(f"corrupt manifest {mf}: {problem}")
    return m


def _read_manifest(path: Path) -> dict[str, Any]:
    mf = path / MANIFEST_FILE
    if not path.is_dir():
        raise CheckpointError(f"no index folder at {path}")
    if not mf.exists() and not mf.is_symlink():
        raise CheckpointError(f"{path} is not an index folder: it has no {MANIFEST_FILE} (build one with `aezoo index RUN_DIR`)")
    try:
        m = json.loads(_read_file(mf, MAX_MANIFEST, "a manifest").decode())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"corrupt manifest {mf}: {e}") from None
    except RecursionError:
        raise CheckpointError(f"corrupt manifest {mf}: nested too deeply") from None
    return _check_manifest(m, mf)


def sealed(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's fields that ``items.npz`` keeps a copy of, under the checksum the manifest holds:
    all but the checksums themselves and the run's path (a moved run may be named with ``--run``; its
    model is checked by the weights' hash, which is sealed)."""
    return {k: v for k, v in manifest.items() if k not in ("files", "run")}


def _canonical(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def _check_sealed(m: dict[str, Any], copy: dict[str, Any], path: Path) -> None:
    """Each field of the manifest equal (same JSON) to the copy sealed in items.npz, or one line naming it."""
    mine = sealed(m)
    for key in sorted(set(mine) | set(copy)):
        if _canonical(mine.get(key)) != _canonical(copy.get(key)):
            now = "absent" if key not in mine else _canonical(mine[key])[:60]
            was = "absent" if key not in copy else _canonical(copy[key])[:60]
            raise CheckpointError(f"{path / MANIFEST_FILE}: field {key!r} is {now} but the index was built with {was} "
                                  f"(the copy in {ITEMS_FILE}, under its checksum): the manifest was edited; restore it or rebuild the index")


def _read_entry(zf: zipfile.ZipFile, key: str, dtype: np.dtype, shape: tuple[int, ...] | None, cap: int, where: Path, n: int) -> np.ndarray:
    """One array of items.npz, its npy header (dtype, shape) and size checked before a byte of its
    data is read; never unpickled."""
    if zf.getinfo(f"{key}.npy").file_size > cap:
        raise CheckpointError(f"{where}: {key} is larger than {n} items can need")
    with zf.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise CheckpointError(f"{where}: {key} is in .npy format version {version}, which aezoo does not write")
        got_shape, _, got_dtype = read_header(f)
        if got_dtype.hasobject:
            raise CheckpointError(f"{where}: {key} holds Python objects (dtype object), which aezoo never unpickles")
        if got_dtype != dtype or (shape is not None and tuple(got_shape) != shape) or (shape is None and len(got_shape) != 1):
            raise CheckpointError(f"{where}: {key} is {got_dtype} of shape {tuple(got_shape)}, expected {dtype} of shape {shape or '(n,)'}"
                                  + (f" (the manifest's count is {n})" if shape else ""))
    with zf.open(f"{key}.npy") as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def _read_items(blob: bytes, m: dict[str, Any], path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """ids and labels from items.npz, after the manifest's fields are checked against the copy sealed
    in it (first, so that an edited field is named rather than its consequence)."""
    n, where = m["count"], path / ITEMS_FILE
    want = ["ids", SEAL] + (["labels"] if m["labelled"] else [])
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            names = sorted(zf.namelist())
            if f"{SEAL}.npy" not in names:
                raise CheckpointError(f"{where}: holds no {SEAL}.npy, the sealed copy of the manifest; rebuild the index")
            raw = _read_entry(zf, SEAL, np.dtype(np.uint8), None, MAX_MANIFEST, where, n)
            try:
                copy = json.loads(raw.tobytes().decode())
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                copy = None
            if not isinstance(copy, dict):
                raise CheckpointError(f"{where}: its {SEAL} entry is not the manifest's JSON")
            _check_sealed(m, copy, path)
            if names != sorted(f"{k}.npy" for k in want):
                raise CheckpointError(f"{where}: holds {', '.join(names)[:120]}, expected {', '.join(sorted(f'{k}.npy' for k in want))}")
            out = {k: _read_entry(zf, k, np.dtype(np.int64), (n,), 8 * n + 4096, where, n) for k in want if k != SEAL}
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as e:
        raise CheckpointError(f"{where}: not a readable items file ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
    return out["ids"], out.get("labels")


def _max_index_bytes(m: dict[str, Any]) -> int:
    """A generous bound on the size of a FAISS file of the manifest's kind, count and dim: the vectors,
    the graph links or PQ codes, the centroids, and slack for FAISS's headers."""
    n, d, p = m["count"], m["dim"], m["params"]
    vectors = 4 * d * n
    if m["kind"] == "flat":
        size = vectors
    elif m["kind"] == "hnsw":
        size = vectors + n * (16 * p["M"] + 64)  # 2M links at level 0, about M/(M-1) more above, levels, offsets
    else:
        codes = n * (p["pq_m"] * p["pq_bits"] // 8 + 1 + 8)  # PQ codes and ids in the inverted lists
        size = codes + 4 * d * (p["nlist"] + 2 ** p["pq_bits"]) + 64 * p["nlist"] + (vectors if p["rerank"] else 0)
    return 2 * size + (1 << 20)


def _check_faiss(index, m: dict[str, Any], where: Path) -> None:
    """The FAISS index is of the manifest's kind, size and build parameters."""
    faiss = _faiss()
    expected = {"flat": ("IndexFlatL2",), "hnsw": ("IndexHNSWFlat",),
                "ivf-pq": ("IndexRefineFlat",) if m["params"].get("rerank") else ("IndexIVFPQ",)}
    cls = type(faiss.downcast_index(index)).__name__
    if cls not in expected[m["kind"]] or index.metric_type != faiss.METRIC_L2:
        raise CheckpointError(f"{where}: a FAISS {cls}, not the {m['kind']} index (rerank {m['params'].get('rerank', 0)}) its manifest says")
    if index.ntotal != m["count"] or index.d != m["dim"]:
        raise CheckpointError(f"{where}: the index holds {index.ntotal} codes of size {index.d}, its manifest says {m['count']} of size {m['dim']}")
    p = m["params"]
    if m["kind"] == "hnsw":
        got = {"M": int(faiss.downcast_index(index).hnsw.nb_neighbors(1))}
    elif m["kind"] == "ivf-pq":
        ivf = faiss.extract_index_ivf(index)
        pq = faiss.downcast_index(faiss.downcast_index(index).base_index if p["rerank"] else index).pq
        got = {"nlist": int(ivf.nlist), "pq_m": int(pq.M), "pq_bits": int(pq.nbits)}
    else:
        got = {}
    for key, v in got.items():
        if v != p[key]:
            raise CheckpointError(f"{where}: built with {key}={v}, its manifest says {p[key]}")


def load_index(path: str | Path, model=None, device: str = "cpu") -> Index:
    """Open a saved index folder. The model that encodes queries is ``model`` if given, else the
    run recorded in the manifest; either way its weights must hash to the manifest's.

    Every field that changes an answer is checked (issue 22): both files against the manifest's
    SHA-256s, the manifest's fields against the copy sealed in ``items.npz``, the FAISS index against
    the manifest's kind, count, dim and parameters. Only regular files are read, each up to a size its
    manifest can need."""
    faiss = _faiss()
    path = Path(path)
    m = _read_manifest(path)
    caps = {INDEX_FILE: (_max_index_bytes(m), f"a {m['kind']} index of {m['count']} codes of size {m['dim']}"),
            ITEMS_FILE: (16 * m["count"] + MAX_MANIFEST + (1 << 16), f"the items of {m['count']} codes")}
    blobs = {}
    for name, (cap, what) in caps.items():
        blobs[name] = _read_file(path / name, cap, what)
        if _sha256(blobs[name]) != m["files"][name]:
            raise CheckpointError(f"{path / name} does not match its manifest's checksum: the file is corrupt or was replaced")
    ids, labels = _read_items(blobs[ITEMS_FILE], m, path)
    if blobs[INDEX_FILE][:4] not in FOURCC[m["kind"]]:
        raise CheckpointError(f"{path / INDEX_FILE}: not a FAISS {m['kind']} index (it starts {blobs[INDEX_FILE][:4]!r})")
    try:
        index = faiss.deserialize_index(np.frombuffer(blobs[INDEX_FILE], dtype=np.uint8))
    except RuntimeError as e:
        raise CheckpointError(f"{path / INDEX_FILE}: not a readable FAISS index ({str(e).splitlines()[0]})") from None
    _check_faiss(index, m, path / INDEX_FILE)
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
