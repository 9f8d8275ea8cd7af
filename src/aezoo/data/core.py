"""Dataset objects, preprocessing and the loader that dispatches names and paths."""
from __future__ import annotations

import importlib
import math
import os
import pkgutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import DataError, DataWarning
from .images import ByteImages, byte_inputs

BINARIZE = ("none", "static", "dynamic")


@dataclass
class Split:
    x: torch.Tensor  # (N, *input_shape) float32, or uint8 images that read as float32 (``images.ByteImages``)
    y: torch.Tensor | None = None  # (N,) int64 class labels
    factors: torch.Tensor | None = None  # (N, F) ground-truth generative factors, where known
    index: torch.Tensor | None = None  # (N,) int64 each example's row in its source array or file (0-based, no header)

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, idx) -> "Split":
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        x = self.x.take(idx) if isinstance(self.x, ByteImages) else self.x[idx]  # bytes stay bytes (issue 13)
        return Split(x, pick(self.y), pick(self.factors), pick(self.index))

    def to(self, device) -> "Split":
        mv = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Split(self.x.to(device), mv(self.y), mv(self.factors), self.index)


@dataclass
class Dataset:
    name: str
    train: Split
    val: Split | None = None
    test: Split | None = None
    num_classes: int | None = None
    class_names: list[str] | None = None
    factor_names: list[str] | None = None
    source: str = ""  # where it was read from, for the run config and the report
    preprocessing: dict[str, Any] = field(default_factory=dict)
    # generated datasets only: factors (N, F) -> inputs (N, *input_shape), for metrics that intervene
    # on the factors (beta-VAE and FactorVAE scores)
    render: Callable[[Any], torch.Tensor] | None = field(default=None, repr=False)
    # each training-source row's name (an image folder's files, relative to it); None: rows are numbered
    item_names: list[str] | None = field(default=None, repr=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def split(self, name: str) -> Split | None:
        if name not in ("train", "val", "test"):
            raise DataError(f"unknown split {name!r}; choose train, val or test")
        return getattr(self, name)

    def sources(self, name: str) -> list[str]:
        """Where each item of split ``name`` comes from (issue 23): its file, relative to the data's
        folder, or its row in the source ("row 12"; "test row 3" for a test array given apart)."""
        part = self.split(name)
        if part is None:
            return []
        rows = range(len(part)) if part.index is None else part.index.tolist()
        if name == "test" and self.preprocessing.get("test_split") == "given":
            return [f"test row {r}" for r in rows]
        if self.item_names is not None:
            return [self.item_names[r] for r in rows]
        return [f"row {r}" for r in rows]

    def label_names(self, y) -> list[str | None]:
        """Class names of labels ``y`` (the number as text where the data names no classes)."""
        names = self.class_names or []
        return [None if v is None or v < 0 else (names[v] if v < len(names) else str(v)) for v in (int(t) for t in y)]

    @property
    def dynamic_binarization(self) -> bool:
        return self.preprocessing.get("binarize") == "dynamic"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "input_shape": list(self.input_shape),
            "n_train": len(self.train),
            "n_val": len(self.val) if self.val is not None else 0,
            "n_test": len(self.test) if self.test is not None else 0,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "factor_names": self.factor_names,
            "preprocessing": self.preprocessing,
        }


def data_root(source: str) -> dict[str, str] | None:
    """Where a dataset read from a path lives, as given and as an absolute path (issue 23: a run trained
    from ``data/photos`` is opened from other folders); None for named datasets and arrays."""
    if not source or not Path(source).expanduser().exists():
        return None
    return {"given": source, "absolute": str(Path(source).expanduser().resolve()), "cwd": os.getcwd()}


# --- the registry of named datasets ------------------------------------------------------------
DATASETS: dict[str, Callable[..., dict[str, Any]]] = {}
_discovered = False


def dataset(name: str):
    """Register ``fn(data_dir=None, download=True, seed=0, limit=None, **options) -> dict`` as a named
    dataset. The dict holds raw arrays: ``x_train``, optional ``y_train``, ``x_test``, ``y_test``,
    ``factors_train``/``factors_test``, ``render`` (generated datasets: factors -> inputs), and metadata keys ``class_names``, ``factor_names``, ``source``,
    ``scale`` (divisor that maps the raw values to [0, 1], e.g. 255)."""

    def deco(fn):
        DATASETS[name] = fn
        return fn

    return deco


def _discover() -> None:
    global _discovered
    if not _discovered:
        _discovered = True
        from . import sources  # noqa: F401  (registers the built-in datasets)

        pkg = importlib.import_module(__package__)
        for info in pkgutil.iter_modules(pkg.__path__):
            if info.name not in ("core", "batching", "sources") and not info.name.startswith("_"):
                importlib.import_module(f"{__package__}.{info.name}")


def list_datasets() -> list[str]:
    _discover()
    return sorted(DATASETS)


# --- preprocessing -------------------------------------------------------------------------------
# One scaling, fitted on the training split, maps every split (issue 17): v -> (v / scale - lo) / span.
# It is computed in float64, so float32 data near 3e38 cannot overflow on the way to [0, 1].
_F32_MAX = float(np.finfo(np.float32).max)


def _numeric(arr: np.ndarray, where: str, allow_nan: bool = False) -> np.ndarray:
    if arr.dtype.kind not in "uifb":
        raise DataError(f"{where}: data must be numeric, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":  # checked in the file's own precision, before any cast can overflow
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr) | (np.isnan(arr) if allow_nan else False)))
        if bad:
            raise DataError(f"{where}: data contains {bad} NaN/Inf values")
    return arr


def _fit_scaling(x: np.ndarray, scale: float | None, normalize: str) -> tuple[float, float] | None:
    """(lo, hi) of the training split in scaled units when min-max scaling applies (values outside
    [0, 1] after ``scale``), else None."""
    if normalize != "auto" or x.size == 0:
        return None
    lo, hi = float(x.min()), float(x.max())  # exact: min/max in the data's own dtype
    if scale:
        lo, hi = lo / scale, hi / scale
    return (lo, hi) if lo < 0 or hi > 1 else None


def _apply_scaling(arr: np.ndarray, scale: float | None, minmax: tuple[float, float] | None, where: str) -> torch.Tensor:
    """``arr`` through the training split's scaling, as float32 (arithmetic in float64, in chunks)."""
    if arr.dtype.kind in "ub" and arr.dtype.itemsize <= 2 and minmax is None:  # exact in float32: the fast path
        x = torch.from_numpy(np.ascontiguousarray(arr)).float()
        return x / scale if scale else x
    out = np.empty(arr.shape, np.float32)
    src, dst = arr.reshape(len(arr), -1), out.reshape(len(arr), -1)
    rows = max(1, (1 << 22) // max(1, src.shape[1]))
    with np.errstate(over="ignore"):  # an overflow of the float32 cast is reported below, by name
        for i in range(0, len(src), rows):
            v = src[i : i + rows].astype(np.float64)
            if scale:
                v /= scale
            if minmax is not None:
                lo, hi = minmax
                v = (v - lo) / (hi - lo if hi > lo else 1.0)
            dst[i : i + rows] = v
    if not np.isfinite(out).all():
        big = float(np.abs(arr).max())
        raise DataError(f"{where}: values up to {big:.3g} overflow float32 (largest {_F32_MAX:.3g}) after scaling; "
                        "divide the data by a constant first")
    return torch.from_numpy(out)


def _clip_to_training_range(x: torch.Tensor, split: str, raw: np.ndarray, train_raw: np.ndarray, where: str) -> tuple[torch.Tensor, dict | None]:
    """Clip a test split to [0, 1], where the training split's scaling maps the training values, and say
    so when values fall outside (a Bernoulli decoder scored against targets up to 2 is silently wrong)."""
    if x.numel() == 0 or (float(x.min()) >= 0 and float(x.max()) <= 1):
        return x, None
    n_out = int(((x < 0) | (x > 1)).sum())
    note = {"values": n_out, "fraction": round(n_out / x.numel(), 6), "range": [float(raw.min()), float(raw.max())],
            "training_range": [float(train_raw.min()), float(train_raw.max())]}
    warnings.warn(DataWarning(
        f"{where}: {n_out} {split} values ({100 * note['fraction']:.2g}%) fall outside [0, 1] after the training split's "
        f"scaling (training values span [{note['training_range'][0]:.4g}, {note['training_range'][1]:.4g}], {split} values "
        f"[{note['range'][0]:.4g}, {note['range'][1]:.4g}]); they are clipped to [0, 1]"), stacklevel=4)
    return x.clamp(0, 1), note


def _labels(arr, n: int, where: str) -> torch.Tensor | None:
    if arr is None:
        return None
    arr = np.asarray(arr)
    if arr.ndim != 1:
        raise DataError(f"{where}: labels must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise DataError(f"{where}: {n} inputs but {arr.shape[0]} labels")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise DataError(f"{where}: labels must be integers, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise DataError(f"{where}: labels must be >= 0, found {arr.min()}")
    return torch.from_numpy(arr.astype(np.int64))


def _shape_images(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> (N, 1, H, W); (N, H, W, C) with C in {1, 3, 4} -> channels first."""
    if x.dim() == 3:
        return x.unsqueeze(1)
    if x.dim() == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        return x.permute(0, 3, 1, 2).contiguous()
    return x


def _stratified_pick(n: int, y: np.ndarray | None, fraction: float, gen: torch.Generator) -> np.ndarray:
    """Positions of a seeded random ``fraction`` of ``n`` rows (at least one), split over the classes in
    proportion to their sizes when there are labels (issue 18: a test split carved from data that has
    none). Largest remainders share out what rounding leaves, so many small classes still give
    round(n * fraction) rows in all."""
    total = max(1, int(round(n * fraction)))
    if y is None:
        return np.sort(torch.randperm(n, generator=gen)[:total].numpy())
    classes = np.unique(y)
    groups = [np.nonzero(y == c)[0] for c in classes]
    quota = np.array([len(g) for g in groups]) * total / n
    take = np.floor(quota).astype(int)
    for k in np.argsort(-(quota - take), kind="stable")[: total - int(take.sum())]:
        take[k] += 1
    picked = [g[torch.randperm(len(g), generator=gen)[:t].numpy()] for g, t in zip(groups, take)]
    return np.sort(np.concatenate(picked))


def _rows(a: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    return None if a is None else a[idx]


def _assign_rows(n_train: int, n_test: int | None, y_train: np.ndarray | None, *, limit: int | None, seed: int,
                 val_fraction: float, test_fraction: float):
    """Row positions of (train, val, test) and whether test was carved from train: seeded, decided on the
    rows before anything is fitted, the same for in-memory and streamed data (issue 13)."""
    gen = torch.Generator().manual_seed(seed)
    tr_idx = np.arange(n_train)
    te_idx = None if n_test is None else np.arange(n_test)
    if limit is not None:
        if limit < 1:
            raise DataError(f"limit must be >= 1, got {limit}")
        tr_idx = torch.randperm(n_train, generator=gen)[:limit].numpy()
        if te_idx is not None:
            te_idx = torch.randperm(n_test, generator=gen)[: max(1, min(n_test, math.ceil(limit / 5)))].numpy()
    carved = n_test is None and test_fraction > 0 and len(tr_idx) >= 3
    if carved:  # the data has no test split: carve one, disjoint from validation (issue 18)
        pick = _stratified_pick(len(tr_idx), _rows(y_train, tr_idx), test_fraction, gen)
        te_idx = tr_idx[pick]
        tr_idx = np.delete(tr_idx, pick)
    va_idx = None
    if val_fraction > 0 and len(tr_idx) >= 2:
        perm = torch.randperm(len(tr_idx), generator=gen).numpy()
        n_val = max(1, int(round(len(tr_idx) * val_fraction)))
        va_idx, tr_idx = tr_idx[perm[:n_val]], tr_idx[perm[n_val:]]
    return tr_idx, va_idx, te_idx, carved


def build(
    name: str,
    raw: dict[str, Any],
    *,
    binarize: str = "none",
    val_fraction: float = 0.1,
    limit: int | None = None,
    seed: int = 0,
    normalize: str = "auto",
    test_fraction: float = 0.1,
    impute: str | None = None,
    fitted: dict[str, Any] | None = None,
) -> Dataset:
    """Raw arrays -> a Dataset with three disjoint splits (a seeded, stratified test split carved from
    train when the data has none, then validation), scaled with numbers fitted on the training split
    alone: images globally to [0, 1], vectors and tables per feature (``normalize``: auto = standard,
    standard, minmax, none; see ``data/scaling.py``); binarization applied; all recorded in
    ``preprocessing``. ``fitted``: a run's recorded ``preprocessing``, whose scaling and imputation are
    applied instead of fitted anew (new data scored by a trained run)."""
    from .scaling import METHODS, FeatureScaling
    from .tables import impute_apply, impute_fit

    if binarize not in BINARIZE:
        raise DataError(f"binarize must be one of {', '.join(BINARIZE)}, got {binarize!r}")
    if not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise DataError(f"test_fraction must be in [0, 1) with val_fraction + test_fraction < 1, got {test_fraction}")
    if normalize not in ("auto",) + METHODS:
        raise DataError(f"normalize must be one of auto, {', '.join(METHODS)}, got {normalize!r}")
    where = raw.get("source") or name
    if raw.get("x_train") is None:
        raise DataError(f"{where}: no training inputs found")
    byte = byte_inputs(raw, binarize, normalize, where)  # uint8 images stay bytes until each batch (issue 13)
    if byte is not None:
        xa, xb, pre = byte
        pre = {"kind": "images", **pre}
        y_tr_raw = None if raw.get("y_train") is None else _labels(raw.get("y_train"), len(xa), where).numpy()
        y_te_raw = None if xb is None or raw.get("y_test") is None else _labels(raw.get("y_test"), len(xb), where).numpy()
        tr_idx, va_idx, te_idx, carved = _assign_rows(len(xa), None if xb is None else len(xb), y_tr_raw,
                                                      limit=limit, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
        pre["test_split"] = "given" if xb is not None else ("carved" if carved else "none")
        return _assemble(name, raw, pre, xa, xb, y_tr_raw, y_te_raw, tr_idx, va_idx, te_idx, carved, None,
                         binarize=binarize, val_fraction=val_fraction, test_fraction=test_fraction, limit=limit, seed=seed)
    x_tr = np.asarray(raw["x_train"])
    if x_tr.ndim == 0:
        raise DataError(f"{where}: the inputs are a single number; expected one row per example")
    if x_tr.shape[0] == 0:
        raise DataError(f"{where}: the dataset is empty")
    images = bool(raw.get("images", True))
    # per-feature scaling for vectors and tables (N, D); images and sequences keep one global scale
    per_feature = not images and x_tr.ndim == 2
    if not per_feature and normalize == "standard":
        raise DataError(f"{where}: --normalize standard applies to vectors and tables (N, D); images and sequences keep one "
                        "global scale to [0, 1] (auto or minmax), or none")
    missing_ok = impute is not None  # NaN marks a missing value, filled below from the training split
    x_te = None if raw.get("x_test") is None else _numeric(np.asarray(raw["x_test"]), where, missing_ok)
    x_tr = _numeric(x_tr, where, missing_ok)
    y_tr_raw = None if raw.get("y_train") is None else _labels(raw.get("y_train"), x_tr.shape[0], where).numpy()
    y_te_raw = None
    if x_te is not None and raw.get("y_test") is not None:
        y_te_raw = _labels(raw.get("y_test"), x_te.shape[0], where).numpy()

    # --- which rows go where: decided on the raw rows, before anything is fitted ---
    tr_idx, va_idx, te_idx, carved = _assign_rows(len(x_tr), None if x_te is None else len(x_te), y_tr_raw,
                                                  limit=limit, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    pre: dict[str, Any] = {"kind": raw.get("kind", "vectors") if per_feature else ("images" if images else "arrays")}
    pre["test_split"] = "given" if x_te is not None else ("carved" if carved else "none")
    fitted = fitted or {}

    # --- missing values: filled with the training split's per-feature mean or median ---
    if missing_ok:
        values = fitted.get("impute", {}).get("values")
        values = np.asarray(values, np.float64) if values is not None else impute_fit(x_tr[tr_idx].astype(np.float64), impute, where, raw.get("feature_names"))
        n_missing = int(np.isnan(x_tr.astype(np.float64)).sum()) + (0 if x_te is None else int(np.isnan(x_te.astype(np.float64)).sum()))
        x_tr = impute_apply(x_tr, values)
        x_te = None if x_te is None else impute_apply(x_te, values)
        pre["impute"] = {"method": impute, "missing": n_missing, "values": values.tolist()}
        x_tr, x_te = _numeric(x_tr, where), None if x_te is None else _numeric(x_te, where)

    # --- scaling, fitted on the training rows only ---
    if not per_feature:
        scale = raw.get("scale")
        if scale is None and normalize == "auto" and x_tr.dtype == np.uint8:
            scale = 255.0  # integers are scaled by their dtype's range; floats outside [0, 1] by min-max of train
        pre["scale"] = scale
        minmax = tuple(fitted["minmax"]) if fitted.get("minmax") else _fit_scaling(x_tr[tr_idx], scale, "auto" if normalize in ("auto", "minmax") else "none")
        if minmax is not None:
            pre["minmax"] = list(minmax)
        xa = _apply_scaling(x_tr, scale, minmax, where)
        xb = _apply_scaling(x_te, scale, minmax, where) if x_te is not None else None
        if images:
            xa, xb = _shape_images(xa), None if xb is None else _shape_images(xb)
    else:
        method = "standard" if normalize == "auto" else normalize
        if fitted.get("scaling"):
            fs = FeatureScaling.from_json(fitted["scaling"])
        else:
            fs = FeatureScaling.fit(x_tr[tr_idx], method, where)
        pre["normalize"] = fs.method
        pre["scaling"] = fs.to_json()
        xa = fs.apply(x_tr, where)
        xb = fs.apply(x_te, where) if x_te is not None else None
    if xb is not None and xb.shape[1:] != xa.shape[1:]:
        raise DataError(f"{where}: train inputs have shape {tuple(xa.shape[1:])} but test inputs {tuple(xb.shape[1:])}")
    clip = (x_tr, x_te, where) if not per_feature and normalize == "auto" else None
    return _assemble(name, raw, pre, xa, xb, y_tr_raw, y_te_raw, tr_idx, va_idx, te_idx, carved, clip,
                     binarize=binarize, val_fraction=val_fraction, test_fraction=test_fraction, limit=limit, seed=seed)


def _assemble(name, raw, pre, xa, xb, y_tr_raw, y_te_raw, tr_idx, va_idx, te_idx, carved, clip, *,
              binarize, val_fraction, test_fraction, limit, seed) -> Dataset:
    """Whole train/test inputs (tensors or ``ByteImages``) and row positions -> the Dataset's splits.
    ``clip``: (raw train, raw test, where) when float inputs were scaled to [0, 1] from the training rows."""
    if raw.get("image"):
        pre["image"] = raw["image"]  # how a folder was read (image_size, channels): reloading it needs them
    ya = None if y_tr_raw is None else torch.from_numpy(y_tr_raw)
    yb = None if y_te_raw is None else torch.from_numpy(y_te_raw)
    ft, fs_ = raw.get("factors_train"), raw.get("factors_test")
    whole_a = Split(xa, ya, None if ft is None else torch.as_tensor(np.asarray(ft)), torch.arange(len(xa)))
    whole_b = Split(xb, yb, None if fs_ is None else torch.as_tensor(np.asarray(fs_)), torch.arange(len(xb))) if xb is not None else None
    t = lambda idx: torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64))  # noqa: E731
    train = whole_a.take(t(tr_idx))
    val = whole_a.take(t(va_idx)) if va_idx is not None else None
    test = None if te_idx is None else (whole_a if carved else whole_b).take(t(te_idx))
    if clip is not None:  # float inputs scaled to [0, 1] from the training rows: clip the others to it
        x_tr, x_te, where = clip
        for split_name, part, src in (("val", val, x_tr if va_idx is None else x_tr[va_idx]),
                                      ("test", test, None if te_idx is None else (x_tr if carved else x_te)[te_idx])):
            if part is not None and src is not None:
                part.x, clipped = _clip_to_training_range(part.x, split_name, src, x_tr[tr_idx], where)
                if clipped:
                    pre.setdefault("clipped", {})[split_name] = clipped
    if test is None and val is not None:
        test = val  # fewer than 3 rows: no room for a test split of its own
        pre["test_split"] = "val"
    pre.update({"binarize": binarize, "val_fraction": val_fraction, "test_fraction": test_fraction, "limit": limit, "seed": seed})
    if binarize != "none":
        if binarize == "static":
            for s in (train, val, test):
                if s is not None:
                    s.x = (s.x > 0.5).float()
        else:  # dynamic: train batches are resampled every time; val/test get one fixed sample
            for s in (val, test):
                if s is not None and not getattr(s, "_binarized", False):
                    s.x = torch.bernoulli(s.x, generator=torch.Generator().manual_seed(seed + 1))
                    s._binarized = True  # type: ignore[attr-defined]
    num_classes = None
    if ya is not None:
        num_classes = int(max(int(ya.max()), int(yb.max()) if yb is not None and len(yb) else 0)) + 1
    class_names = raw.get("class_names")
    if class_names is not None and num_classes is not None:
        num_classes = max(num_classes, len(class_names))
    for key in ("feature_names", "categories", "label_column", "categorical"):
        if raw.get(key):
            pre[key] = raw[key]
    return Dataset(
        name=name,
        train=train,
        val=val,
        test=test,
        num_classes=num_classes,
        class_names=class_names,
        factor_names=raw.get("factor_names"),
        source=str(raw.get("source", "")),
        preprocessing=pre,
        render=raw.get("render"),
        item_names=raw.get("item_names"),
    )


def from_arrays(x, y=None, *, x_test=None, y_test=None, name: str = "arrays", **options) -> Dataset:
    """Wrap arrays or tensors (inputs (N, ...), optional integer labels) as a Dataset."""
    conv = lambda a: None if a is None else (a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a))  # noqa: E731
    raw = {"x_train": conv(x), "y_train": conv(y), "x_test": conv(x_test), "y_test": conv(y_test), "source": name, "images": False}
    return build(name, raw, **options)


def _from_path(path: Path, label_column=None, table: dict[str, Any] | None = None, images: dict[str, Any] | None = None) -> dict[str, Any]:
    from . import readers

    why = readers.why_missing(path)
    if why == "no such file" and not os.path.islink(path):
        raise DataError(f"no dataset named or file found at {str(path)!r}; named datasets: {', '.join(list_datasets())}")
    if why is not None:
        raise DataError(f"{path}: {why}")
    if path.suffix == ".tar" or (path.is_dir() and any(path.glob("*.tar"))):  # WebDataset shards (issue 13)
        from .images import open_shards

        return open_shards(path, **(images or {}))
    if path.is_dir():
        idx = sorted(p for p in path.iterdir() if "idx" in p.name and "ubyte" in p.name)
        if idx:
            return _idx_folder(path)
        from .images import open_folder

        return open_folder(path, **(images or {}))
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    if suffix in (".npz", ".npy"):
        arrays = readers.read_array_file(path)
        raw = {
            "x_train": arrays.get("x_train", arrays.get("x")),
            "y_train": arrays.get("y_train", arrays.get("y")),
            "x_test": arrays.get("x_test"),
            "y_test": arrays.get("y_test"),
            "source": str(path),
        }
        raw["images"] = raw["x_train"] is not None and np.asarray(raw["x_train"]).ndim >= 3
        return raw
    if suffix in (".csv", ".tsv", ".txt"):
        from .tables import read_table

        t = read_table(path, label_column, **(table or {}))
        return {"x_train": t["x"], "y_train": t["y"], "class_names": t["class_names"], "source": str(path), "images": False,
                "kind": "table", "feature_names": t["feature_names"], "categories": t["categories"],
                "label_column": label_column, "categorical": list((table or {}).get("categorical") or [])}
    if "ubyte" in path.name or suffix in (".idx", ".idx.gz", ".gz"):
        x = readers.read_idx(path)
        return {"x_train": x, "source": str(path), "images": x.ndim >= 3}
    raise DataError(f"{path}: unsupported file type; use .npz/.npy, .csv, IDX files or a folder of images")


def _idx_folder(folder: Path) -> dict[str, Any]:
    from . import readers

    def find(prefix):
        for p in sorted(folder.iterdir()):
            if p.name.startswith(prefix):
                return p
        return None

    ti, tl = find("train-images"), find("train-labels")
    si, sl = find("t10k-images"), find("t10k-labels")
    if ti is None:
        raise DataError(f"{folder}: no train-images-idx3-ubyte[.gz] file in this folder")
    raw: dict[str, Any] = {"source": str(folder)}
    if tl is not None:
        raw["x_train"], raw["y_train"] = readers.read_idx_pair(ti, tl)
    else:
        raw["x_train"] = readers.read_idx(ti)
    if si is not None:
        if sl is not None:
            raw["x_test"], raw["y_test"] = readers.read_idx_pair(si, sl)
        else:
            raw["x_test"] = readers.read_idx(si)
    return raw


def load(
    spec: str | os.PathLike = "auto",
    *,
    data_dir: str | None = None,
    download: bool = True,
    binarize: str = "none",
    val_fraction: float = 0.1,
    limit: int | None = None,
    seed: int = 0,
    label_column: str | int | None = None,
    normalize: str = "auto",
    test_fraction: float = 0.1,
    categorical: list[str | int] | tuple = (),
    impute: str | None = None,
    fitted: dict[str, Any] | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    strict: bool = False,
    stream: bool | None = None,
    **options: Any,
) -> Dataset:
    """A named dataset (``list_datasets()``), ``"auto"`` (Fashion-MNIST if its files are found or can
    be downloaded, otherwise scikit-learn's digits), or a path to the user's data.

    ``normalize``: per-feature scaling of vectors and tables (auto = standard, minmax, none; images
    keep one global scale to [0, 1]). ``test_fraction``: the test split carved (seeded, stratified by
    label) when the data has none. CSV: ``categorical`` columns are one-hot encoded; ``impute`` (mean,
    median) fills missing values from the training split. ``fitted``: a run's recorded preprocessing,
    applied instead of fitted (new data for a trained run).

    Image folders: ``image_size`` resizes the short side and crops the centre, ``channels`` (1 or 3)
    converts, unreadable files are skipped (an error with ``strict``). ``stream``: True leaves uint8
    images of a ``.npy`` or a folder on disk, read by DataLoader workers; False holds them in memory;
    None chooses by the memory budget (``images.memory_budget``)."""
    _discover()
    if os.environ.get("AEZOO_OFFLINE"):  # never touch the network (tests, air-gapped machines)
        download = False
    name = str(spec)
    common = dict(binarize=binarize, val_fraction=val_fraction, limit=limit, seed=seed, normalize=normalize,
                  test_fraction=test_fraction, impute=impute, fitted=fitted)
    if name == "auto":
        try:
            raw = DATASETS["fashion-mnist"](data_dir=data_dir, download=download, seed=seed)
            name = "fashion-mnist"
        except DataError as e:
            raw = DATASETS["digits"](seed=seed)
            raw["fallback_reason"] = str(e)
            name = "digits"
        ds = build(name, raw, **common)
        if "fallback_reason" in raw:
            ds.preprocessing["auto_fallback"] = "Fashion-MNIST not found: " + raw["fallback_reason"]
        return ds
    if name in DATASETS:
        raw = DATASETS[name](data_dir=data_dir, download=download, seed=seed, limit=limit, **options)
        raw.setdefault("stream", stream)
        ds = build(name, raw, **common)
        ds.preprocessing["options"] = options
        return ds
    if options:
        raise DataError(f"options {sorted(options)} apply to named datasets only")
    path = Path(name).expanduser()
    table = {"categorical": list(categorical or ()), "impute": impute is not None,
             "categories": (fitted or {}).get("categories"), "label_optional": fitted is not None}
    images = {"image_size": image_size, "channels": channels, "strict": strict, "stream": stream}
    if not path.is_dir() and path.suffix != ".tar" and (image_size is not None or channels is not None):
        raise DataError(f"--image-size and --channels apply to image folders; {name} is not a folder")
    raw = _from_path(path, label_column, table, images)
    raw.setdefault("stream", stream)
    if categorical and raw.get("kind") != "table":
        raise DataError(f"{path}: --categorical applies to CSV/TSV tables")
    return build(path.stem.split(".")[0] or "data", raw, **common)
