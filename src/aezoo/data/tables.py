"""Tables (CSV/TSV) as features: numeric columns, declared categorical columns (one-hot, names kept),
the label column, and missing values (issue 18).

A cell that is not a number is an error naming its row and column, unless its column is the label or
declared categorical (``--categorical COL,...``). An empty cell or a usual marker of a missing value
(``NA``, ``NaN``, ``?``, ``null``, ...) is an error naming the first such row and column, unless
``impute`` is asked for: then it is read as NaN and ``core.build`` fills it with the training split's
per-column mean or median (``impute_fit``), so nothing about the validation or test rows leaks in.

One-hot columns are named ``column=value``, the values in sorted order; a run stores them, so new data
(``aezoo score RUN --data new.csv``) is encoded with the run's own columns, and a category the run
never saw is an error naming its row.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .readers import _csv_rows, _existing_file, _is_number

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-"})
IMPUTE = ("mean", "median")


def _column_name(j: int, header: list[str] | None) -> str:
    return f"column {j + 1}" + (f" ({header[j]!r})" if header else "")


def _find(path: Path, spec, header: list[str] | None, width: int, what: str) -> int:
    """The index of a column named by header name or (0-based, negative from the end) index."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.lstrip("-").isdigit() and (header is None or spec not in header)):
        j = int(spec)
        if not -width <= j < width:
            raise DataError(f"{path}: {what} {j} is out of range for {width} columns")
        return j % width
    if header is None or spec not in header:
        found = f"header is {header}" if header else "the file has no header row"
        raise DataError(f"{path}: no column named {spec!r}; {found}")
    return header.index(spec)


def read_table(path, label_column: str | int | None = None, categorical=(), impute: bool = False,
               categories: dict[str, list[str]] | None = None, label_optional: bool = False) -> dict[str, Any]:
    """A CSV/TSV table -> ``{"x": float64 (N, D) (NaN where missing, with ``impute``), "y": int64 (N,)
    or None, "class_names", "feature_names" (D,), "categories": {column: [values]}}``.

    ``categorical``: columns to one-hot (names or indices); ``categories``: the values each categorical
    column had when a run was trained (new data must use the same columns). Row numbers in errors are
    line numbers, as an editor shows them."""
    path = _existing_file(path)
    rows = _csv_rows(path)
    if not rows:
        raise DataError(f"{path}: empty file, no rows")
    width = len(rows[0][1])
    first = rows[0][1]
    label = None
    if isinstance(label_column, int):
        label = _find(path, label_column, None, width, "label column")
    cat_specs = list(categorical or ())
    cat_int = {_find(path, c, None, width, "categorical column") for c in cat_specs if isinstance(c, int)}
    # a header is a first row with a non-number outside the label and the categorical columns
    has_header = any(not _is_number(c) for j, c in enumerate(first) if j != label and j not in cat_int)
    header = first if has_header else None
    if isinstance(label_column, str) and not (label_optional and (header is None or label_column not in header)):
        label = _find(path, label_column, header, width, "label column")
    elif label_column is not None and not isinstance(label_column, (int, str)):
        raise DataError(f"{path}: label_column must be a column name or index, got {label_column!r}")
    cats = [_find(path, c, header, width, "categorical column") for c in cat_specs]
    if label is not None and label in cats:
        raise DataError(f"{path}: {_column_name(label, header)} is the label column; it cannot also be categorical")
    body = rows[1:] if has_header else rows
    if not body:
        raise DataError(f"{path}: has a header row but no data rows")
    for line, cells in body:
        if len(cells) != width:
            raise DataError(f"{path}: row {line} has {len(cells)} columns, expected {width}")
    names = header or [str(j) for j in range(width)]

    table = np.array([cells for _, cells in body], dtype=str)  # (N, width)
    lines = [line for line, _ in body]
    missing = np.isin(np.char.lower(table), list(MISSING))
    if not impute and missing.any():
        i, j = (int(v[0]) for v in np.nonzero(missing))
        raise DataError(f"{path}: row {lines[i]}, {_column_name(j, header)}: missing value ({str(table[i, j])!r}); "
                        "fill it in, or impute it with --impute mean|median (fitted on the training split)")
    if label is not None and missing[:, label].any():
        i = int(np.nonzero(missing[:, label])[0][0])
        raise DataError(f"{path}: row {lines[i]}, {_column_name(label, header)}: missing label; labels cannot be imputed")

    columns: list[np.ndarray] = []
    feature_names: list[str] = []
    found_categories: dict[str, list[str]] = {}
    for j in range(width):
        if j == label:
            continue
        col, miss = table[:, j], missing[:, j]
        if j in cats:
            known = (categories or {}).get(names[j])
            values = known if known is not None else sorted(set(col[~miss].tolist()))
            found_categories[names[j]] = list(values)
            index = {v: k for k, v in enumerate(values)}
            onehot = np.zeros((len(col), len(values)), np.float64)
            for i, v in enumerate(col.tolist()):
                if miss[i]:
                    onehot[i] = np.nan
                elif v not in index:
                    raise DataError(f"{path}: row {lines[i]}, {_column_name(j, header)}: category {v!r} was not seen in "
                                    f"training (known: {', '.join(map(repr, values[:10]))}{', ...' if len(values) > 10 else ''})")
                else:
                    onehot[i, index[v]] = 1.0
            columns.append(onehot)
            feature_names += [f"{names[j]}={v}" for v in values]
            continue
        filled = np.where(miss, "nan", col)
        try:
            v = filled.astype(np.float64)
        except ValueError:
            v = None
            for i, cell in enumerate(filled.tolist()):
                if not _is_number(cell):
                    raise DataError(
                        f"{path}: row {lines[i]}, {_column_name(j, header)}: {cell!r} is not a number; a text column must be "
                        f"the label (--label-column) or declared categorical (--categorical {names[j]})") from None
            # numpy's parser is stricter than Python's float() (which takes "1_000"): use float()
            v = np.array([float(c) for c in filled.tolist()], np.float64)
        bad = ~np.isfinite(v) & ~miss
        if bad.any():
            i = int(np.nonzero(bad)[0][0])
            raise DataError(f"{path}: row {lines[i]}, {_column_name(j, header)}: {col[i]!r} is not a finite number")
        columns.append(v[:, None])
        feature_names.append(names[j])
    if not columns:
        raise DataError(f"{path}: no feature columns besides the label column")
    x = np.concatenate(columns, axis=1)

    y = class_names = None
    if label is not None:
        values = table[:, label]
        try:
            numbers = values.astype(np.float64)
        except ValueError:
            class_names, y = np.unique(values, return_inverse=True)
            class_names, y = [str(c) for c in class_names], y.astype(np.int64)
        else:
            if not np.all(np.isfinite(numbers)) or np.any(numbers != np.round(numbers)):
                raise DataError(f"{path}: label column {label + 1} holds non-integer numbers; labels must be integers or class names")
            y = numbers.astype(np.int64)
    return {"x": x, "y": y, "class_names": class_names, "feature_names": feature_names, "categories": found_categories}


def impute_fit(x_train: np.ndarray, method: str, where: str, feature_names: list[str] | None = None) -> np.ndarray:
    """Per-feature fill values from the training rows (NaN = missing), float64 (D,)."""
    if method not in IMPUTE:
        raise DataError(f"impute must be one of {', '.join(IMPUTE)}, got {method!r}")
    flat = x_train.reshape(len(x_train), -1)
    empty = np.isnan(flat).all(0)
    if empty.any():
        j = int(np.nonzero(empty)[0][0])
        name = f" ({feature_names[j]!r})" if feature_names else ""
        raise DataError(f"{where}: feature {j + 1}{name} has no value in the training split; nothing to impute it from")
    return np.nanmean(flat, 0) if method == "mean" else np.nanmedian(flat, 0)


def impute_apply(arr: np.ndarray, values: np.ndarray) -> np.ndarray:
    flat = arr.reshape(len(arr), -1).astype(np.float64, copy=True)
    rows, cols = np.nonzero(np.isnan(flat))
    flat[rows, cols] = values[cols]
    return flat.reshape(arr.shape)
