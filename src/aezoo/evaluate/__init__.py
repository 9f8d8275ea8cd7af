"""Evaluation: ``evaluate(model, data, split)`` -> a flat dict of metrics (what ``aezoo eval --json``
prints). Three layers, none branching on model names:

1. metrics every model has (``recon_mse``);
2. the model's own ``eval_metrics`` hook (codebook usage, rollouts, ...);
3. registered generic metrics (``@metric``) that decide for themselves whether they apply, by the
   capabilities the model declares (``models/base.py``: likelihood bounds for a
   ``LatentVariableModel``, PSNR under the training corruption for a ``DenoisingModel``) or by the
   data (representation probes need labels), returning ``None`` to skip.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..errors import DataError

METRICS: dict[str, Callable[..., dict[str, Any] | None]] = {}


def metric(name: str):
    """Register ``fn(model, data, split_name, x, y, **options) -> dict | None`` as a generic metric."""

    def deco(fn):
        METRICS[name] = fn
        return fn

    return deco


@torch.no_grad()
def reconstruct_batched(model, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1024) -> torch.Tensor:
    out = []
    for i in range(0, x.shape[0], batch_size):
        out.append(model.reconstruct(x[i : i + batch_size], None if y is None else y[i : i + batch_size]))
    return torch.cat(out)


@torch.no_grad()
def encode_batched(model, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1024) -> torch.Tensor:
    out = []
    for i in range(0, x.shape[0], batch_size):
        out.append(model.encode(x[i : i + batch_size], None if y is None else y[i : i + batch_size]))
    return torch.cat(out)


def _load_generic_metrics() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if info.name not in ("likelihood",) and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


@torch.no_grad()
def evaluate(model, data, split: str = "test", iw_samples: int = 1000, seed: int = 0, **options: Any) -> dict[str, Any]:
    """Metrics of ``model`` on ``data``'s ``split``. Sampling inside uses its own seeded RNG."""
    part = data.split(split)
    if part is None:
        raise DataError(f"dataset {data.name!r} has no {split!r} split")
    model.eval()
    device = model.device
    x = part.x.to(device)
    y = None if part.y is None else part.y.to(device)
    if model.needs_labels and y is None:
        raise DataError(f"model {model.name!r} needs labels, but dataset {data.name!r} has none")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        x_hat = reconstruct_batched(model, x, y)
        out: dict[str, Any] = {
            "model": model.name,
            "dataset": data.name,
            "split": split,
            "n": int(x.shape[0]),
            "recon_mse": float((x_hat - x).pow(2).mean()),
        }
        out.update(model.eval_metrics(x, y, iw_samples=iw_samples, **options))
        _load_generic_metrics()
        for name, fn in METRICS.items():
            extra = fn(model, data, split, x, y, iw_samples=iw_samples, **options)
            if extra:
                out.update(extra)
    return out
