"""A trained run, opened (issue 23): the one object every use of a run folder goes through.

``Run(path)`` reads the folder through ``train/checkpoint.py`` (its format lives there, once) and
holds the device, ``.model``, ``.config``, ``.meta``, the data the run was trained on (``.dataset()``,
``.data(split)``) and ``.prepare(inputs)``: the one function that turns any user input into model
inputs with the run's recorded preprocessing, each item with its source and label name. Commands,
the explorer, search, compression and scoring open runs here; only this package and the top layers
(``run.py``, the CLI) import ``train/``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError
from ..train import checkpoint as ckpt
from ..train import rundir
from ..train.trainer import pick_device
from ..data.preprocessing import Preprocessing, conform, is_images
from .prepare import Prepared, from_dataset, read_array, read_paths


class Run:
    """A run folder. ``device``: auto, cpu, cuda[:N]; ``raw``: a run trained with ``--ema-decay`` serves
    its EMA weights unless ``raw`` asks for the raw ones. The model is loaded on first use."""

    def __init__(self, path: str | Path, device: str | torch.device = "auto", raw: bool = False, model=None):
        self.path = Path(path)
        self.meta: dict[str, Any] = ckpt.run_meta(self.path)
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.raw = raw
        self._model = model

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, model={self.meta['model']!r})"

    @property
    def model(self):
        if self._model is None:
            self._model = ckpt.load_model(self.path, self.device, raw=self.raw)
        return self._model

    @property
    def name(self) -> str:
        return self.meta["model"]

    @property
    def config(self) -> dict[str, Any]:
        return self.meta["config"]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.config["input_shape"])

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.meta.get("data", {}).get("preprocessing", {}), self.input_shape)

    @property
    def class_names(self) -> list[str] | None:
        return self.meta.get("data", {}).get("class_names")

    def locked(self):
        """Hold the run folder's lock inside a ``with`` block (writers: training, train-prior)."""
        return rundir.locked(self.path)

    # --- the data ---------------------------------------------------------------------------------
    def data_source(self) -> str:
        """Where the run's data is now: a named dataset, or its path as recorded, found from this folder
        or through the absolute path recorded beside it (issue 23: a run trained from ``data/photos``
        is usable from another working directory)."""
        from ..data import list_datasets

        d = self.meta.get("data", {})
        name, source = d.get("name"), d.get("source") or d.get("name")
        if name in list_datasets():
            return name
        root = self.meta.get("data_root") or {}
        tried = [source]
        candidates = [source]
        if root.get("absolute"):
            candidates.append(root["absolute"])
        if root.get("cwd") and not Path(source).is_absolute():
            candidates.append(str(Path(root["cwd"]) / source))
        for c in candidates:
            if c and Path(c).expanduser().exists():
                return c
            tried.append(c)
        where = f"{source!r}" + (f" (absolute {root['absolute']})" if root.get("absolute") else "")
        raise DataError(f"run {self.path} was trained on data at {where}, which is not there from {os.getcwd()}: give --data PATH")

    def dataset(self, spec: str | None = None, **overrides: Any):
        """The run's own dataset (``spec`` None or "run"), or data at ``spec`` (a name or path) through the
        run's preprocessing: its per-feature scaling, imputed values, one-hot and label columns, fitted
        on the run's training split; image folders read in its channels at its size; images of another
        size or channel count converted (with a note on stderr). ``overrides``: ``data.load`` arguments."""
        from ..data import load

        pre = self.meta.get("data", {}).get("preprocessing", {})
        own = spec in (None, "run")
        src = self.data_source() if own else str(spec)
        kw: dict[str, Any] = {"binarize": pre.get("binarize", "none")}
        if own:
            kw.update(val_fraction=pre.get("val_fraction", 0.1), limit=pre.get("limit"), seed=pre.get("seed", 0),
                      test_fraction=pre.get("test_fraction", 0.1))
            if src == self.meta["data"].get("name"):
                kw.update(pre.get("options", {}))  # a named dataset's options (n=2000)
        kw["fitted"] = pre  # the run's own numbers (scaling, min-max, imputed values, categories), never refitted
        kw.update({k: pre[k] for k in ("label_column", "categorical") if pre.get(k) is not None})
        if pre.get("impute"):
            kw["impute"] = pre["impute"]["method"]
        if pre.get("normalize"):
            kw["normalize"] = pre["normalize"]
        if is_images(self.input_shape) and Path(src).expanduser().is_dir():
            image = {k: v for k, v in pre.get("image", {}).items() if k != "skipped"}  # as recorded (resume compares it)
            if not own:  # a new folder: read at the run's size and in its channels
                c, h, w = self.input_shape
                image.update(image_size=h if h == w else image.get("image_size"), channels=c)
            kw.update(image)
        if overrides.get("normalize") is not None and overrides["normalize"] != pre.get("normalize"):
            kw.pop("fitted", None)  # another scaling asked for: fitted on the new data
        kw.update({k: v for k, v in overrides.items() if v is not None})
        data = load(src, **kw)
        return self._conform(data)

    def _conform(self, data):
        """Image splits of another size or channel count converted to the run's (say so once)."""
        shape = self.input_shape
        if not shape or tuple(data.input_shape) == shape:
            return data
        notes: list[str] = []
        for name in ("train", "val", "test"):
            part = data.split(name)
            if part is not None and (name != "test" or data.test is not data.val):
                x = part.x.float() if hasattr(part.x, "materialize") else part.x
                part.x = conform(x, shape, f"dataset {data.name!r}", notes)
        for n in dict.fromkeys(notes):
            print(f"aezoo: {n}", file=sys.stderr)
        return data

    def data(self, split: str = "test") -> Prepared:
        """One split of the run's own data as prepared items (``all``: train, val and test, each row once)."""
        return from_dataset(self.dataset(), split, self.preprocessing)

    def prepare(self, inputs, *, split: str | None = None, limit: int | None = None, **overrides: Any) -> Prepared:
        """Any user input -> the model's inputs, with the run's recorded preprocessing:

        - a list of paths (image files, image folders, glob patterns, .npy/.npz files; every row),
        - a tensor or array of raw values (uint8 pixels, or floats in the data's units),
        - a ``Dataset``, a dataset name or path given as a string, or "run": its ``split`` (default: test
          of a named dataset, a Dataset or the run's own; every row of a data file such as a CSV).

        Returns ``Prepared``: ``x`` on the CPU, each item's ``sources`` and ``label_names``, and ``notes``
        on what was converted. ``limit`` keeps the first N."""
        from ..data.core import Dataset

        if limit is not None and limit < 1:
            raise DataError(f"--limit must be >= 1, got {limit}")
        prep = self.preprocessing
        if isinstance(inputs, Dataset):
            out = from_dataset(self._conform(inputs), split or "test", prep)
        elif isinstance(inputs, (torch.Tensor,)) or type(inputs).__module__ == "numpy":
            out = read_array(inputs, prep)
        elif isinstance(inputs, (str, os.PathLike)) and not _is_input_path(str(inputs)):
            new_file = str(inputs) != "run" and Path(inputs).expanduser().exists()
            out = from_dataset(self.dataset(str(inputs), **overrides), split or ("all" if new_file else "test"), prep)
        else:
            specs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
            if not specs:
                raise DataError("no inputs: name image/.npz files or folders, or a dataset")
            out = read_paths([str(s) for s in specs], prep, self.class_names)
        return out.head(limit)


def _is_input_path(spec: str) -> bool:
    """Files and folders of inputs (and patterns), as opposed to a dataset name, "run", or a data file
    read as a dataset (.csv)."""
    from ..data.readers import IMAGE_EXTENSIONS

    p = Path(spec).expanduser()
    if spec == "run":
        return False
    if any(ch in spec for ch in "*?[") and not p.exists():
        return True
    return p.suffix.lower() in IMAGE_EXTENSIONS + (".webp", ".npy", ".npz") or (p.is_dir() and not any(p.glob("*ubyte*")))


def open_run(path: str | Path, device: str = "auto", raw: bool = False) -> Run:
    """A trained run folder as a ``Run`` (``aezoo.open_run``)."""
    return Run(path, device=device, raw=raw)


def as_run(run_or_model, device: str = "auto") -> Run | None:
    """A Run from a Run or a run folder; None for a bare model (the callers that accept one)."""
    if isinstance(run_or_model, Run):
        return run_or_model
    if isinstance(run_or_model, (str, Path)):
        return Run(run_or_model, device=device)
    return None


def data_of_run(meta: dict[str, Any]):
    """The dataset a run was trained on, from its recorded description (``config.json``)."""
    return _MetaRun(meta).dataset()


class _MetaRun(Run):
    """A Run known only by its config.json (an index's manifest, a report of a folder being written)."""

    def __init__(self, meta: dict[str, Any]):
        self.path = Path(".")
        self.meta = meta
        self.device = torch.device("cpu")
        self.raw = False
        self._model = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        shape = self.meta.get("config", {}).get("input_shape") or self.meta.get("data", {}).get("input_shape")
        return tuple(shape or ())
