"""The preprocessing a run was trained with, applied to new inputs (issue 23).

``build`` (``data/building.py``) fits the numbers on the training split and records them in the
Dataset's ``preprocessing`` (a run's ``config.json``: ``data.preprocessing``); ``Preprocessing`` reads
that record and applies it to inputs that never went through ``build``: image files (decoded and
resized by the code that read the training folder), arrays (the same scaling arithmetic), and images
of another size or channel count (``conform``). ``aezoo.runs`` walks the user's inputs through it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .images import decode


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
        """Raw values -> model units, with the numbers fitted on the training split and the arithmetic
        ``build`` uses: per-feature scaling, or the global scale then min-max (clipped to [0, 1], as
        ``build`` clips validation and test values). Integers are pixels (divided by the scale, 255 by
        default); floats are in the data's own units."""
        from .building import _apply_scaling, _numeric

        if self.per_feature:
            from .scaling import FeatureScaling

            return FeatureScaling.from_json(self.pre["scaling"]).apply(arr, where)
        arr = _numeric(np.asarray(arr), where)
        minmax = tuple(self.pre["minmax"]) if self.pre.get("minmax") else None
        scale = (self.pre.get("scale") or 255.0) if arr.dtype.kind in "ub" and arr.dtype != np.bool_ else (self.pre.get("scale") if minmax else None)
        x = _apply_scaling(arr, scale, minmax, where)
        return x.clamp(0, 1) if minmax is not None else x

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre.get("binarize") == "static":
            return (x > 0.5).float()
        return x

    def image_file(self, path: Path, notes: list[str]) -> torch.Tensor:
        """One image file -> (C, H, W) in [0, 1]: the run's channels, resized on the short side and
        centre-cropped to its size by the code that read its training folder (``images.decode``)."""
        from PIL import Image, ImageOps

        c, h, w = self.shape
        try:
            with Image.open(path) as im:
                size = im.size
            if h == w:
                pixels = decode(path, "L" if c == 1 else "RGB", h if size != (w, h) else None)
            else:
                with Image.open(path) as im:
                    im = ImageOps.fit(im.convert("L" if c == 1 else "RGB"), (w, h), method=Image.BICUBIC, centering=(0.5, 0.5))
                    pixels = np.asarray(im, dtype=np.uint8)
                pixels = pixels[None] if c == 1 else pixels.transpose(2, 0, 1)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise DataError(f"{path}: cannot read image ({e})") from None
        if size != (w, h):
            notes.append(f"{path}: resized")
        return torch.from_numpy(pixels.astype(np.float32) / 255.0)
