"""Raw arrays -> a ``Dataset``: three disjoint splits (a seeded, stratified test split carved when the
data has none, then validation), scaled with numbers fitted on the training split alone."""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from ..errors import DataError, DataWarning
from .core import BINARIZE, Dataset, Split
from .images import byte_inputs

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
