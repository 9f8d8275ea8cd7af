"""Data: named datasets and the user's own files, turned into tensors with train/val/test splits.

``aezoo.data.load("fashion-mnist")``, ``load("digits")``, ``load("path/to/file.npz" | "folder/" |
"table.csv" | "images-idx3-ubyte.gz")`` or ``from_arrays(x, y)``. Named datasets register with
``@dataset("name")`` so new ones (synthetic shapes, sequences) are one function each.
"""
from .core import Dataset, Split, dataset, from_arrays, list_datasets, load
from .batching import Batches

__all__ = ["Dataset", "Split", "Batches", "dataset", "from_arrays", "list_datasets", "load"]
