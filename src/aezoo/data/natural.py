"""``natural-patches``: colour patches of real photographs that ship inside scikit-learn and scikit-image,
so tests, demos and benchmarks have natural images without a network (issue 13).

Seven photographs: scikit-learn's ``china`` and ``flower`` (``load_sample_images``), scikit-image's
``astronaut``, ``rocket``, the left view of ``stereo_motorcycle`` (training), ``chelsea`` and ``coffee``
(test). Patches of ``size`` x ``size`` (32 or 64) are cut on a grid with a stride of size/4, from each
photo at full and at half resolution. The split is by photo, so every test patch comes from a
photograph the model never saw.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError
from .core import dataset

TRAIN_PHOTOS = ("china", "flower", "astronaut", "rocket", "motorcycle")
TEST_PHOTOS = ("chelsea", "coffee")
SIZES = (32, 64)


def _photo(name: str) -> np.ndarray:
    """(H, W, 3) uint8."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)()


def patches(img: np.ndarray, size: int, stride: int) -> np.ndarray:
    """(n, 3, size, size) uint8: a grid of patches over (H, W, 3), at full and at half resolution."""
    from PIL import Image

    out = []
    for scale in (1, 2):
        im = img if scale == 1 else np.asarray(Image.fromarray(img).resize((img.shape[1] // 2, img.shape[0] // 2), Image.BICUBIC))
        h, w = im.shape[:2]
        for top in range(0, h - size + 1, stride):
            for left in range(0, w - size + 1, stride):
                out.append(im[top : top + size, left : left + size])
    return np.stack(out).transpose(0, 3, 1, 2)


@dataset("natural-patches")
def natural_patches(size: int = 64, **_: Any) -> dict[str, Any]:
    if size not in SIZES:
        raise DataError(f"natural-patches: --data-option size must be one of {', '.join(map(str, SIZES))}, got {size}")
    try:
        cut = {name: patches(_photo(name), size, size // 4) for name in TRAIN_PHOTOS + TEST_PHOTOS}
    except ImportError as e:
        raise DataError(f"natural-patches needs scikit-image for its photographs ({e}): pip install \"aezoo[images]\"") from None
    return {
        "x_train": np.concatenate([cut[n] for n in TRAIN_PHOTOS]),
        "x_test": np.concatenate([cut[n] for n in TEST_PHOTOS]),
        "source": "photographs of sklearn.datasets.load_sample_images and skimage.data: train "
                  + ", ".join(TRAIN_PHOTOS) + "; test " + ", ".join(TEST_PHOTOS),
    }
