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
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

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


def is_images(shape) -> bool:
    return len(shape) == 3 and shape[0] in (1, 3)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """RGB -> luminance with Pillow's weights (ITU-R 601-2), so files and arrays convert alike."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def conform(x: torch.Tensor, shape: tuple[int, ...], where: str, notes: list[str]) -> torch.Tensor:
    """Images (N, C, H, W) float to the run's (C', H', W'): channels converted, the short side resized
    and the centre cropped; anything else must match. A note says what changed."""
    shape = tuple(shape)
    if tuple(x.shape[1:]) == shape:
        return x
    if x.dim() == 3 and is_images(shape) and shape[0] == 1 and tuple(x.shape[1:]) == shape[1:]:
        return x[:, None]
    if not (x.dim() == 4 and is_images(shape) and x.shape[1] in (1, 3)):
        raise DataError(f"{where}: inputs of shape {tuple(x.shape[1:])}; the run's model takes {shape}")
    before = tuple(x.shape[1:])
    if x.shape[1] != shape[0]:
        x = x.expand(-1, 3, -1, -1) if shape[0] == 3 else _grey(x)
    h, w = x.shape[2:]
    H, W = shape[1:]
    if (h, w) != (H, W):
        s = max(H / h, W / w)  # the short side to the target, as ImageOps.fit
        nh, nw = max(H, round(h * s)), max(W, round(w * s))
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=nh < h).clamp(0, 1)
        top, left = (nh - H) // 2, (nw - W) // 2
        x = x[:, :, top : top + H, left : left + W]
    notes.append(f"{where}: {_kind(before)} converted to the run's {_kind(shape)}")
    return x.contiguous()


def _kind(shape) -> str:
    c, h, w = shape
    return f"{w}x{h} {'grey' if c == 1 else 'RGB'} images"


class Preprocessing:
    """A run's recorded preprocessing (``config.json``'s ``data.preprocessing``), applied to new inputs."""

    def __init__(self, pre: dict[str, Any], input_shape):
        self.pre = pre or {}
        self.shape = tuple(input_shape)

    @property
    def kind(self) -> str:
        return self.pre.get("kind", "images")

    @property
    def per_feature(self) -> bool:
        return bool(self.pre.get("scaling"))

    def scale_array(self, arr: np.ndarray, where: str) -> torch.Tensor:
        """Raw values -> model units: the scaling the run fitted on its training split."""
        if self.per_feature:
            from ..data.scaling import FeatureScaling

            return FeatureScaling.from_json(self.pre["scaling"]).apply(arr, where)
        arr = np.asarray(arr)
        if arr.dtype.kind not in "uifb":
            raise DataError(f"{where}: data must be numeric, got dtype {arr.dtype}")
        v = arr.astype(np.float64)
        scale = self.pre.get("scale")
        if arr.dtype == np.uint8:
            v = v / (scale or 255.0)
        elif scale and self.pre.get("minmax"):  # float files of a run whose values were divided before min-max
            v = v / scale
        if self.pre.get("minmax"):  # float images were min-max scaled from the training split: so are new ones
            lo, hi = self.pre["minmax"]
            v = np.clip((v - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
        return torch.from_numpy(v.astype(np.float32))

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre.get("binarize") == "static":
            return (x > 0.5).float()
        return x

    def image_file(self, path: Path, notes: list[str]) -> torch.Tensor:
        """One image file -> (C, H, W) in [0, 1]: the run's channels, resized and cropped to its size."""
        from PIL import Image, ImageOps

        c, h, w = self.shape
        try:
            with Image.open(path) as im:
                im = im.convert("L" if c == 1 else "RGB")
                if im.size != (w, h):
                    im = ImageOps.fit(im, (w, h), method=Image.BICUBIC, centering=(0.5, 0.5))
                    notes.append(f"{path}: resized")
                pixels = np.asarray(im, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise DataError(f"{path}: cannot read image ({e})") from None
        pixels = pixels[None] if c == 1 else pixels.transpose(2, 0, 1)
        return torch.from_numpy(pixels.astype(np.float32) / 255.0)


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
