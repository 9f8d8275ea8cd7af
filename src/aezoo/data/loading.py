"""Names and paths -> raw arrays -> a ``Dataset`` (``load``): named datasets, ``auto``, and the user's
files (``.npz``/``.npy``, CSV, IDX files or folders, image folders, WebDataset shards)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .building import build
from .core import DATASETS, Dataset, _discover, list_datasets

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
