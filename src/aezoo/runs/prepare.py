"""Any user input -> a trained run's model inputs, with the run's recorded preprocessing (issue 23).

The one place that replays a run's preprocessing on new data: image files and folders are decoded in
the run's channels and resized on the short side and centre-cropped to its image size; arrays and
datasets of another image size or channel count are converted the same way (and a note says so);
uint8 values are scaled by the run's scale, floats through its fitted min-max or per-feature scaling;
static binarization is applied as in training. Every item keeps its source (a file path, or a row)
and its label's name, so each per-item output (search hits, scores, encodings, decompressed files)
can say which of the user's items it is about.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.preprocessing import Preprocessing, conform, is_images
from ..data.readers import IMAGE_EXTENSIONS, read_array_file
from ..errors import DataError

ARRAY_KEYS = ("x", "x_test", "x_train")  # which array of an .npz holds the inputs, in this order
LABEL_KEYS = {"x": "y", "x_test": "y_test", "x_train": "y_train"}


@dataclass
class Prepared:
    """Model inputs with where each came from: ``x`` (N, *input_shape) float32, ``sources`` (N,) file
    paths or rows, ``labels`` (N,) int64 in the run's classes or None, ``label_names`` (N,) or None,
    ``notes``: what was converted (one line each, for stderr)."""

    x: torch.Tensor
    sources: list[str]
    labels: torch.Tensor | None = None
    label_names: list[str | None] | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.x.shape[0]

    def head(self, n: int | None) -> "Prepared":
        if n is None:
            return self
        cut = lambda v: None if v is None else v[:n]  # noqa: E731
        return Prepared(self.x[:n], self.sources[:n], cut(self.labels), cut(self.label_names), self.notes)


def _expand(spec: str) -> list[Path]:
    """A path, or a glob pattern (quoted on the command line, or from Python) -> its paths."""
    path = Path(spec).expanduser()
    if path.exists():
        return [path]
    if any(ch in spec for ch in "*?["):
        hits = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
        if hits:
            return hits
        raise DataError(f"{spec}: no file matches this pattern")
    raise DataError(f"{spec}: no such file or folder")


def read_paths(specs: list[str], prep: Preprocessing, class_names: list[str] | None) -> Prepared:
    """Image files, image folders (class subfolders give labels) and .npy/.npz files -> Prepared."""
    from ..data.images import _listing

    xs, sources, labels, names, notes = [], [], [], [], []
    image_ok = is_images(prep.shape)
    for spec in specs:
        for path in _expand(str(spec)):
            suffix = path.suffix.lower()
            if path.is_dir():
                if not image_ok:
                    raise DataError(f"{path}: the run's model takes inputs of shape {prep.shape}, not images")
                files, y, folder_classes = _listing(path)
                if y is None and class_names and path.resolve().name in class_names:  # one class's folder of the run's data
                    y, folder_classes = np.zeros(len(files), np.int64), [path.resolve().name]
                xs += [prep.image_file(f, notes)[None] for f in files]
                sources += [(path / f.relative_to(path)).as_posix() for f in files]
                labels += [None] * len(files) if y is None else [int(v) for v in y]
                names += [None] * len(files) if y is None else [folder_classes[int(v)] for v in y]
            elif suffix in (".npy", ".npz"):
                arrays = read_array_file(path)
                key = next((k for k in ARRAY_KEYS if k in arrays), None)
                if key is None:
                    raise DataError(f"{path}: no array named {', '.join(ARRAY_KEYS)}")
                arr = np.asarray(arrays[key])
                x = prep.scale_array(arr, f"{path}: array {key!r}")
                if arr.ndim == 4 and arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
                    x = x.permute(0, 3, 1, 2)  # channels last, as photos are stored
                xs.append(conform(x, prep.shape, f"{path}: array {key!r}", notes))
                sources += [f"{path.as_posix()}[{i}]" for i in range(arr.shape[0])]
                y = arrays.get(LABEL_KEYS[key])
                ys = [None] * arr.shape[0] if y is None or len(y) != arr.shape[0] else [int(v) for v in np.asarray(y)]
                labels += ys
                names += [None if v is None else (class_names[v] if class_names and 0 <= v < len(class_names) else str(v)) for v in ys]
            elif suffix in IMAGE_EXTENSIONS + (".webp",):
                if not image_ok:
                    raise DataError(f"{path}: the run's model takes inputs of shape {prep.shape}, not images; give rows of an .npz")
                xs.append(prep.image_file(path, notes)[None])
                sources.append(path.as_posix())
                labels.append(None)
                names.append(None)
            else:
                raise DataError(f"{path}: not an image ({', '.join(IMAGE_EXTENSIONS)}), image folder, or .npy/.npz file")
    if not xs:
        raise DataError("no inputs given")
    resized = [n for n in notes if n.endswith(": resized")]
    notes = [n for n in notes if not n.endswith(": resized")]
    if resized:
        c, h, w = prep.shape
        notes.append(f"{len(resized)} image{'s' * (len(resized) != 1)} resized on the short side and centre-cropped to the run's {w}x{h}")
    y = None
    if any(v is not None for v in labels):
        y = _run_labels(names, class_names) if class_names else torch.tensor([-1 if v is None else v for v in labels])
    return Prepared(prep.finish(torch.cat(xs)), sources, y, names if any(n is not None for n in names) else None, notes)


def _run_labels(names: list[str | None], class_names: list[str]) -> torch.Tensor | None:
    """Labels of a folder's class subfolders in the run's own classes (by name); -1 for a class the run lacks."""
    pos = {n: i for i, n in enumerate(class_names)}
    return torch.tensor([pos.get(n, -1) if n is not None else -1 for n in names], dtype=torch.long)


def read_array(x, prep: Preprocessing, where: str = "inputs") -> Prepared:
    """A tensor or array of raw values (uint8 pixels, or floats in the data's units) -> Prepared."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    notes: list[str] = []
    t = prep.scale_array(arr, where)
    if arr.ndim == 4 and arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
        t = t.permute(0, 3, 1, 2)
    t = conform(t, prep.shape, where, notes)
    return Prepared(prep.finish(t), [f"row {i}" for i in range(len(t))], None, None, notes)


def from_dataset(data, split: str, prep: Preprocessing) -> Prepared:
    """One split of a Dataset (already in model units), conformed to the run's input shape."""
    names = ["train", "val", "test"] if split == "all" else [split]
    parts = [(n, data.split(n)) for n in names]
    if split == "all" and data.preprocessing.get("test_split") == "val":
        parts = parts[:2]  # the test split is the validation split: its rows once (issue 23)
    parts = [(n, p) for n, p in parts if p is not None]
    if not parts:
        raise DataError(f"dataset {data.name!r} has no {split!r} split")
    notes: list[str] = []
    x = torch.cat([torch.as_tensor(p.x.float() if hasattr(p.x, "float") else p.x) for _, p in parts])
    x = conform(x, prep.shape, f"dataset {data.name!r}", notes)
    sources = [s for n, _ in parts for s in data.sources(n)]
    labelled = all(p.y is not None for _, p in parts)
    y = torch.cat([p.y for _, p in parts]) if labelled else None
    if split == "all" and all(p.index is not None for _, p in parts):  # every row in source order (a given test array last)
        given = data.preprocessing.get("test_split") == "given"
        offset = sum(len(p) for n, p in parts if n != "test")
        order = torch.cat([p.index + (offset if given and n == "test" else 0) for n, p in parts]).argsort()
        x, sources, y = x[order], [sources[i] for i in order.tolist()], None if y is None else y[order]
    return Prepared(x, sources, y, None if y is None else data.label_names(y), notes)
