"""The dataset a run was trained on, rebuilt from its recorded description (``config.json``'s ``data``):
what ``aezoo eval``, ``report``, ``search`` and ``compress`` load when no ``--data`` is given."""
from __future__ import annotations

from typing import Any

from .core import list_datasets, load


def data_of_run(meta: dict[str, Any], spec: str | None = None):
    """Reload the dataset a run was trained on, with the same preprocessing."""
    d = meta.get("data", {})
    pre = d.get("preprocessing", {})
    source = spec or d.get("source") or d.get("name")
    name = d.get("name")
    if spec is None and name in list_datasets():
        source = name
    # a named dataset's options, or a folder's image options (issue 13: image_size, channels, strict, stream)
    options = pre.get("options", {}) if source == name else {k: v for k, v in pre.get("image", {}).items() if k != "skipped"}
    table = {k: pre[k] for k in ("label_column", "categorical") if pre.get(k) is not None}  # issue 18
    if pre.get("impute"):
        table["impute"] = pre["impute"]["method"]
    if pre.get("normalize"):
        table["normalize"] = pre["normalize"]
    return load(source, binarize=pre.get("binarize", "none"), val_fraction=pre.get("val_fraction", 0.1), limit=pre.get("limit"),
                seed=pre.get("seed", 0), test_fraction=pre.get("test_fraction", 0.1), **table, **options)
