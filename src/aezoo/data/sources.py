"""Built-in named datasets: Fashion-MNIST and MNIST from IDX files, scikit-learn's 8x8 digits."""
from __future__ import annotations

from typing import Any

import numpy as np

from .core import dataset

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _idx_dataset(name: str, data_dir, download: bool) -> dict[str, Any]:
    from .download import find_idx_files
    from .readers import read_idx_pair

    files = find_idx_files(name, data_dir=data_dir, download=download)
    x_train, y_train = read_idx_pair(files["train_images"], files["train_labels"])
    x_test, y_test = read_idx_pair(files["test_images"], files["test_labels"])
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "source": str(files["train_images"].parent),
        "scale": 255.0,
    }


@dataset("fashion-mnist")
def fashion_mnist(data_dir=None, download: bool = True, **_: Any) -> dict[str, Any]:
    raw = _idx_dataset("fashion-mnist", data_dir, download)
    raw["class_names"] = FASHION_CLASSES
    return raw


@dataset("mnist")
def mnist(data_dir=None, download: bool = True, **_: Any) -> dict[str, Any]:
    raw = _idx_dataset("mnist", data_dir, download)
    raw["class_names"] = [str(i) for i in range(10)]
    return raw


@dataset("digits")
def digits(seed: int = 0, **_: Any) -> dict[str, Any]:
    """scikit-learn's 1,797 8x8 digits (values 0..16); a fixed 20% test split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32)  # (N, 8, 8)
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(12345).permutation(len(x))
    n_test = len(x) // 5
    te, tr = perm[:n_test], perm[n_test:]
    return {
        "x_train": x[tr],
        "y_train": y[tr],
        "x_test": x[te],
        "y_test": y[te],
        "source": "sklearn.datasets.load_digits",
        "scale": 16.0,
        "class_names": [str(i) for i in range(10)],
    }
