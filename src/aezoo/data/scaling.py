"""Per-feature scaling of vectors and tables (issue 18), fitted on the training split only.

Images keep one global scale to [0, 1] (``core.build``); vectors and tables have features in units of
their own (a wine's proline runs to 1,680, its hue to 1.7), and one global min-max squashes every small
feature to near 0. So each feature is scaled on its own:

- ``standard``: (v - mean) / std, the training split's mean and standard deviation (ddof 0);
- ``minmax``: (v - min) / (max - min), the training split's range mapped to [0, 1];
- ``none``: the values as they are.

A constant feature (std or range 0) divides by 1, so it maps to 0 rather than to NaN. The arithmetic
is float64 and the fitted numbers are stored as float64 lists in ``config.json``
(``preprocessing.scaling``), so a run maps model outputs back to the original units (``inverse``) to
float32 precision, and new data (``aezoo score RUN --data new.csv``) goes through the run's own scaling.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import DataError

METHODS = ("standard", "minmax", "none")


@dataclass
class FeatureScaling:
    method: str
    shift: np.ndarray  # (D,) float64, subtracted
    scale: np.ndarray  # (D,) float64, divided by

    @classmethod
    def fit(cls, x: np.ndarray, method: str, where: str = "data") -> "FeatureScaling":
        """Fit on the training rows ``x`` (N, *feature_shape); NaN never reaches here (core checks)."""
        if method not in METHODS:
            raise DataError(f"normalize must be one of {', '.join(METHODS)}, got {method!r}")
        flat = np.asarray(x).reshape(len(x), -1)
        d = flat.shape[1]
        if method == "none" or len(flat) == 0:
            return cls("none", np.zeros(d), np.ones(d))
        v = flat.astype(np.float64)
        if method == "standard":
            # divided by each feature's largest |value| first, so values near 1e300 square without overflow
            m = np.abs(v).max(0)
            m = np.where(m > 0, m, 1.0)
            shift, scale = v.mean(0), (v / m).std(0) * m
        else:
            shift = v.min(0)
            scale = v.max(0) - shift
        scale = np.where(scale > 0, scale, 1.0)  # a constant feature maps to 0, not NaN
        return cls(method, shift, scale)

    def apply(self, arr: np.ndarray, where: str = "data") -> torch.Tensor:
        """``arr`` (N, *feature_shape) in scaled units, float32 (arithmetic in float64)."""
        flat = np.asarray(arr).reshape(len(arr), -1)
        if flat.shape[1] != len(self.shift):
            raise DataError(f"{where}: rows have {flat.shape[1]} features; the scaling was fitted on {len(self.shift)}")
        with np.errstate(over="ignore"):
            v = ((flat.astype(np.float64) - self.shift) / self.scale).astype(np.float32)
        if not np.isfinite(v).all():
            big = float(np.abs(flat).max())
            raise DataError(f"{where}: values up to {big:.3g} overflow float32 after per-feature scaling ({self.method}); "
                            "divide the data by a constant first")
        return torch.from_numpy(v.reshape(np.asarray(arr).shape))

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled values (N, *feature_shape) back to the original units, as float32 on ``x``'s device."""
        if self.method == "none":
            return x
        flat = x.detach().reshape(x.shape[0], -1).double()
        shift = torch.as_tensor(self.shift, device=flat.device)
        scale = torch.as_tensor(self.scale, device=flat.device)
        return (flat * scale + shift).float().reshape(x.shape)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "FeatureScaling":
        return cls(d["method"], np.asarray(d["shift"], np.float64), np.asarray(d["scale"], np.float64))


def of_run(meta: dict[str, Any]) -> FeatureScaling | None:
    """The per-feature scaling a run was trained with (its ``config.json``), or None (images, or a
    run from before issue 18)."""
    d = meta.get("data", {}).get("preprocessing", {}).get("scaling")
    return FeatureScaling.from_json(d) if d else None


def to_original_units(x: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
    """Model outputs (reconstructions, samples, decoded codes) in the data's original units."""
    s = of_run(meta)
    return x if s is None else s.inverse(x)


def load_for_run(spec: str, meta: dict[str, Any], **overrides: Any):
    """Data at ``spec`` through a run's own preprocessing (``meta``: its config.json): the run's per-feature
    scaling and imputed values, one-hot columns and label column, fitted on the run's training split
    (new rows to score, search or reconstruct). ``overrides``: ``load`` arguments that win."""
    from .core import load

    pre = meta.get("data", {}).get("preprocessing", {})
    kw: dict[str, Any] = {"binarize": pre.get("binarize", "none"), "fitted": pre}
    if pre.get("label_column") is not None:
        kw["label_column"] = pre["label_column"]
    if pre.get("categorical"):
        kw["categorical"] = pre["categorical"]
    if pre.get("impute"):
        kw["impute"] = pre["impute"]["method"]
    kw.update(overrides)
    return load(spec, **kw)
