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

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, idx) -> "Split":
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        x = self.x.take(idx) if isinstance(self.x, ByteImages) else self.x[idx]  # bytes stay bytes (issue 13)
        return Split(x, pick(self.y), pick(self.factors))

    def to(self, device) -> "Split":
        mv = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Split(self.x.to(device), mv(self.y), mv(self.factors))


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

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def split(self, name: str) -> Split | None:
        if name not in ("train", "val", "test"):
            raise DataError(f"unknown split {name!r}; choose train, val or test")
        return getattr(self, name)

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


def _numeric(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.dtype.kind not in "uifb":
        raise DataError(f"{where}: data must be numeric, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":  # checked in the file's own precision, before any cast can overflow
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
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
        f"[{note['range'][0]:.4g}, {note['range'][1]:.4g}]); they are clipped to [0, 1]"), stacklevel=3)
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


def _float_inputs(raw: dict[str, Any], normalize: str, where: str) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
    """Train and test inputs as float32 in [0, 1] (or as given), and the scaling applied."""
    x_tr = np.asarray(raw["x_train"])
    if x_tr.ndim == 0:
        raise DataError(f"{where}: the inputs are a single number; expected one row per example")
    if x_tr.shape[0] == 0:
        raise DataError(f"{where}: the dataset is empty")
    x_te = None if raw.get("x_test") is None else _numeric(np.asarray(raw["x_test"]), where)
    x_tr = _numeric(x_tr, where)
    scale = raw.get("scale")
    if scale is None and normalize == "auto":
        # integers are scaled by their dtype's range; floats outside [0, 1] by min-max of train
        if x_tr.dtype == np.uint8:
            scale = 255.0
    pre: dict[str, Any] = {"scale": scale}
    minmax = _fit_scaling(x_tr, scale, normalize)
    if minmax is not None:
        pre["minmax"] = list(minmax)
    xt = _apply_scaling(x_tr, scale, minmax, where)
    xs = _apply_scaling(x_te, scale, minmax, where) if x_te is not None else None
    if xs is not None and normalize == "auto":
        xs, clipped = _clip_to_training_range(xs, "test", x_te, x_tr, where)
        if clipped:
            pre["clipped"] = {"test": clipped}
    if raw.get("images", True):
        xt = _shape_images(xt)
        xs = _shape_images(xs) if xs is not None else None
    if xs is not None and xs.shape[1:] != xt.shape[1:]:
        raise DataError(f"{where}: train inputs have shape {tuple(xt.shape[1:])} but test inputs {tuple(xs.shape[1:])}")
    return xt, xs, pre


def build(
    name: str,
    raw: dict[str, Any],
    *,
    binarize: str = "none",
    val_fraction: float = 0.1,
    limit: int | None = None,
    seed: int = 0,
    normalize: str = "auto",
) -> Dataset:
    """Raw arrays -> a Dataset: float tensors scaled to [0, 1], a validation split carved from train,
    binarization applied, all recorded in ``preprocessing``."""
    if binarize not in BINARIZE:
        raise DataError(f"binarize must be one of {', '.join(BINARIZE)}, got {binarize!r}")
    if not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    where = raw.get("source") or name
    if raw.get("x_train") is None:
        raise DataError(f"{where}: no training inputs found")
    byte = byte_inputs(raw, binarize, normalize, where)  # uint8 images stay bytes until each batch (issue 13)
    xt, xs, pre = byte if byte is not None else _float_inputs(raw, normalize, where)
    if raw.get("image"):
        pre["image"] = raw["image"]  # how a folder was read (image_size, channels): reloading it needs them
    yt = _labels(raw.get("y_train"), xt.shape[0], where)
    ys = _labels(raw.get("y_test"), xs.shape[0], where) if xs is not None else None
    ft = raw.get("factors_train")
    fs = raw.get("factors_test")
    train = Split(xt, yt, None if ft is None else torch.as_tensor(np.asarray(ft)))
    test = Split(xs, ys, None if fs is None else torch.as_tensor(np.asarray(fs))) if xs is not None else None

    gen = torch.Generator().manual_seed(seed)
    if limit is not None:
        if limit < 1:
            raise DataError(f"limit must be >= 1, got {limit}")
        train = train.take(torch.randperm(len(train), generator=gen)[:limit])
        if test is not None:
            test = test.take(torch.randperm(len(test), generator=gen)[: max(1, min(len(test), math.ceil(limit / 5)))])
    val = None
    if val_fraction > 0 and len(train) >= 2:
        perm = torch.randperm(len(train), generator=gen)
        n_val = max(1, int(round(len(train) * val_fraction)))
        val, train = train.take(perm[:n_val]), train.take(perm[n_val:])
    if test is None:
        test = val  # no test split of its own: evaluate on the held-out validation split
        pre["test_split"] = "val"
    pre.update({"binarize": binarize, "val_fraction": val_fraction, "limit": limit, "seed": seed})
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
    if yt is not None:
        num_classes = int(max(int(yt.max()), int(ys.max()) if ys is not None and len(ys) else 0)) + 1
    class_names = raw.get("class_names")
    if class_names is not None and num_classes is not None:
        num_classes = max(num_classes, len(class_names))
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
    )


def from_arrays(x, y=None, *, x_test=None, y_test=None, name: str = "arrays", **options) -> Dataset:
    """Wrap arrays or tensors (inputs (N, ...), optional integer labels) as a Dataset."""
    conv = lambda a: None if a is None else (a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a))  # noqa: E731
    raw = {"x_train": conv(x), "y_train": conv(y), "x_test": conv(x_test), "y_test": conv(y_test), "source": name, "images": False}
    return build(name, raw, **options)


def _from_path(path: Path, label_column=None, images: dict[str, Any] | None = None) -> dict[str, Any]:
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
        x, y, _header, class_names = readers.read_csv(path, label_column=label_column)
        return {"x_train": x, "y_train": y, "class_names": class_names, "source": str(path), "images": False}
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
    image_size: int | None = None,
    channels: int | None = None,
    strict: bool = False,
    stream: bool | None = None,
    **options: Any,
) -> Dataset:
    """A named dataset (``list_datasets()``), ``"auto"`` (Fashion-MNIST if its files are found or can
    be downloaded, otherwise scikit-learn's digits), or a path to the user's data.

    Image folders: ``image_size`` resizes the short side and crops the centre, ``channels`` (1 or 3)
    converts, unreadable files are skipped (an error with ``strict``). ``stream``: True leaves uint8
    images of a ``.npy`` or a folder on disk, read by DataLoader workers; False holds them in memory;
    None chooses by the memory budget (``images.memory_budget``)."""
    _discover()
    if os.environ.get("AEZOO_OFFLINE"):  # never touch the network (tests, air-gapped machines)
        download = False
    name = str(spec)
    common = dict(binarize=binarize, val_fraction=val_fraction, limit=limit, seed=seed)
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
    images = {"image_size": image_size, "channels": channels, "strict": strict, "stream": stream}
    if not path.is_dir() and path.suffix != ".tar" and (image_size is not None or channels is not None):
        raise DataError(f"--image-size and --channels apply to image folders; {name} is not a folder")
    raw = _from_path(path, label_column, images)
    raw.setdefault("stream", stream)
    return build(path.stem.split(".")[0] or "data", raw, **common)
