"""What a dataset is (``Split``, ``Dataset``) and which named ones exist (the registry). Split by job
(issue 23): ``building.py`` turns raw arrays into a Dataset with preprocessing fitted on the training
split, ``loading.py`` turns names and paths into raw arrays; both are re-exported here."""
from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import DataError
from .images import ByteImages

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


# the jobs that build and load datasets, re-exported (``aezoo.data.core.build``, ``.load``)
from .building import build, from_arrays  # noqa: E402
from .loading import load  # noqa: E402
