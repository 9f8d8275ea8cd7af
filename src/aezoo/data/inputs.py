"""Inputs named on the command line (queries to search, images to compress): image files, folders of
images, and rows of .npy/.npz files, read into one float tensor of a given input shape."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .readers import IMAGE_EXTENSIONS, read_array_file, read_image_folder

ARRAY_KEYS = ("x", "x_test", "x_train")  # which array of an .npz holds the inputs, in this order


def _shaped(arr: np.ndarray, shape: tuple[int, ...], where: str) -> np.ndarray:
    """(N, *shape) from (N, *shape), (N, H, W) for one channel, or (N, H, W, C) channels-last."""
    if arr.shape[1:] == shape:
        return arr
    if len(shape) == 3 and arr.ndim == 3 and shape[0] == 1 and arr.shape[1:] == shape[1:]:
        return arr[:, None]
    if len(shape) == 3 and arr.ndim == 4 and arr.shape[1:] == (shape[1], shape[2], shape[0]):
        return arr.transpose(0, 3, 1, 2)
    raise DataError(f"{where}: inputs of shape {tuple(arr.shape[1:])}; the model takes {shape}")


def _scaled(arr: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.array(arr, copy=True)).float()  # a copy: arrays read from files may be read-only
    return x / 255.0 if arr.dtype == np.uint8 else x  # as the datasets are scaled


def _image(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    from PIL import Image

    if len(shape) != 3 or shape[0] not in (1, 3):
        raise DataError(f"{path}: the model takes inputs of shape {shape}, not images; give rows of an .npz")
    try:
        with Image.open(path) as im:
            im = im.convert("L" if shape[0] == 1 else "RGB")
            pixels = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot read image ({e})") from None
    if pixels.shape[:2] != shape[1:]:
        raise DataError(f"{path}: image is {pixels.shape[1]}x{pixels.shape[0]}; the model takes {shape[2]}x{shape[1]} images")
    return pixels[None] if shape[0] == 1 else pixels.transpose(2, 0, 1)


def read_inputs(specs: list[str], input_shape, limit: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """Inputs (N, *input_shape) float32 from image files, image folders and .npy/.npz files (every
    row of ``x``, ``x_test`` or ``x_train``), with one name per input ("a.png", "q.npz[3]");
    ``limit`` keeps the first N."""
    shape = tuple(input_shape)
    xs, names = [], []
    for spec in specs:
        path = Path(spec)
        if not path.exists():
            raise DataError(f"{spec}: no such file or folder")
        suffix = path.suffix.lower()
        if path.is_dir():
            arr, _, _ = read_image_folder(path)  # in the order `--data FOLDER` reads it
            xs.append(_scaled(_shaped(arr, shape, spec)))
            names += [f"{spec}[{i}]" for i in range(arr.shape[0])]
        elif suffix in (".npy", ".npz"):
            arrays = read_array_file(path)
            key = next(k for k in ARRAY_KEYS if k in arrays)
            arr = arrays[key]
            xs.append(_scaled(_shaped(arr, shape, f"{spec}: array {key!r}")))
            names += [f"{spec}[{i}]" for i in range(arr.shape[0])]
        elif suffix in IMAGE_EXTENSIONS + (".webp",):
            xs.append(_scaled(_image(path, shape)[None]))
            names.append(spec)
        else:
            raise DataError(f"{spec}: not an image ({', '.join(IMAGE_EXTENSIONS)}), image folder, or .npy/.npz file")
    x = torch.cat(xs) if xs else torch.zeros(0, *shape)
    if limit is not None:
        x, names = x[:limit], names[:limit]
    if x.shape[0] == 0:
        raise DataError("no inputs given")
    return x, names
