"""Sequence datasets for models of time (issue 6, TD-VAE). A sequence split holds ``x`` of shape
(N, T, *frame_shape); a model over it has ``input_shape = (T, *frame_shape)``.

- ``moving-digits``: a digit moves one pixel left or right per step with wrap-around, the direction
  fixed per sequence (the moving-MNIST experiment of Gregor et al. 2019, arXiv:1806.03107, sec. 5).
  Default: scikit-learn's 8x8 digits upsampled to 16x16 frames, T = 20, which trains in minutes on
  a CPU; ``--data-option source=mnist`` (or ``fashion-mnist``) gives the paper-like 28x28 frames.
- ``oscillator``: a noisy harmonic oscillator observed with noise, frames of shape (1,) (the paper's
  1-D experiment).
- ``sequences``: the user's own ``.npz``/``.npy``, ``--data sequences --data-option path=FILE``, an
  array (N, T, ...) under the usual input names (``x``, ``x_train``/``x_test``, ...). The generic
  path loader reads a 4-D array as images, so a sequence file is named through this dataset.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .core import DATASETS, dataset

IMAGE_SOURCES = ("digits", "mnist", "fashion-mnist")


def shift_sequences(images: torch.Tensor, steps: int, direction: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """Frames t = 0..steps-1 of each image rolled horizontally (wrap-around) by start + direction * t.

    images (N, C, H, W), direction (N,) in {-1, +1}, start (N,) -> (N, T, C, H, W). One gather over
    the whole batch: a per-sequence torch.roll, with no Python loop over sequences or frames."""
    n, c, h, w = images.shape
    t = torch.arange(steps)
    shift = start[:, None] + direction[:, None] * t  # (N, T) pixels moved right by frame t
    cols = (torch.arange(w)[None, None, :] - shift[:, :, None]) % w  # (N, T, W) source column
    idx = cols[:, :, None, None, :].expand(n, steps, c, h, w)
    return images[:, None].expand(n, steps, c, h, w).gather(-1, idx)


def _items(source: str, data_dir, download: bool, seed: int) -> dict[str, Any]:
    if source not in IMAGE_SOURCES:
        raise DataError(f"moving-digits: source must be one of {', '.join(IMAGE_SOURCES)}, got {source!r}")
    kwargs = {"seed": seed} if source == "digits" else {"data_dir": data_dir, "download": download}
    return DATASETS[source](**kwargs)


def _frames(x: np.ndarray, scale: float, size: int) -> torch.Tensor:
    """Items (N, H, W) -> (N, 1, size, size) in [0, 1], resized bilinearly when size differs."""
    img = torch.from_numpy(np.asarray(x, dtype=np.float32) / scale)[:, None]
    if img.shape[-1] != size or img.shape[-2] != size:
        img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return img


@dataset("moving-digits")
def moving_digits(
    source: str = "digits",
    size: int | None = None,
    T: int = 20,
    n: int | None = None,
    seed: int = 0,
    data_dir=None,
    download: bool = True,
    limit: int | None = None,
    **_: Any,
) -> dict[str, Any]:
    """One sequence per item of ``source``; ``n`` caps the training sequences (default: all digits
    items, 10,000 for the 28x28 sources), the test split gets a fifth as many."""
    if T < 2:
        raise DataError(f"moving-digits: T must be >= 2 (a sequence needs a future), got {T}")
    raw = _items(source, data_dir, download, seed)
    size = size or (16 if source == "digits" else 28)
    if size < 4:
        raise DataError(f"moving-digits: size must be >= 4 pixels, got {size}")
    cap = n or (None if source == "digits" else 10_000)
    if limit is not None:
        cap = min(cap or limit, limit)
    rng = torch.Generator().manual_seed(seed)
    out: dict[str, Any] = {"source": f"moving-digits from {raw['source']}", "class_names": raw.get("class_names")}
    out["factor_names"] = ["direction", "start"]
    for part, k in (("train", cap), ("test", None if cap is None else max(1, math.ceil(cap / 5)))):
        x, y = raw[f"x_{part}"][:k], raw[f"y_{part}"][:k]
        img = _frames(x, raw["scale"], size)
        direction = torch.randint(0, 2, (len(img),), generator=rng) * 2 - 1
        start = torch.randint(0, size, (len(img),), generator=rng)
        out[f"x_{part}"] = shift_sequences(img, T, direction, start).numpy()  # (N, T, 1, S, S)
        out[f"y_{part}"] = np.asarray(y)
        out[f"factors_{part}"] = torch.stack([direction, start], 1).numpy()
    out["images"] = False  # already (N, T, C, H, W): not to be reshaped as images
    return out


def oscillate(n: int, T: int, period: float, jitter: float, process_noise: float, obs_noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Observations (n, T, 1) of x'' = -omega^2 x with per-sequence omega, amplitude and phase,
    Gaussian process noise on the state and observation noise on the position; and the factors
    (n, 3): omega, amplitude, phase."""
    g = np.random.default_rng(seed)
    omega = 2 * np.pi / (period * (1 + jitter * g.uniform(-1, 1, n)))
    amp = g.uniform(0.5, 1.0, n)
    phase = g.uniform(0, 2 * np.pi, n)
    pos, vel = amp * np.cos(phase), -amp * omega * np.sin(phase)
    c, s = np.cos(omega), np.sin(omega)
    obs = np.empty((n, T, 1), np.float32)
    for t in range(T):
        obs[:, t, 0] = pos + obs_noise * g.standard_normal(n)
        # exact one-step solution of the oscillator (a rotation of (x, v / omega)), then noise
        pos, vel = c * pos + s * vel / omega, -omega * s * pos + c * vel
        pos = pos + process_noise * g.standard_normal(n)
        vel = vel + process_noise * omega * g.standard_normal(n)
    return obs, np.stack([omega, amp, phase], 1).astype(np.float32)


@dataset("oscillator")
def oscillator(
    n: int = 4000,
    T: int = 20,
    period: float = 10.0,
    jitter: float = 0.2,
    process_noise: float = 0.02,
    obs_noise: float = 0.05,
    seed: int = 0,
    **_: Any,
) -> dict[str, Any]:
    """``n`` training sequences and n/5 test ones; periods within +-``jitter`` of ``period`` steps.
    Observations are stored raw; loading min-max scales them to [0, 1] (recorded in preprocessing)."""
    if T < 2 or n < 1:
        raise DataError(f"oscillator: needs T >= 2 and n >= 1, got T={T}, n={n}")
    if period <= 0 or not 0 <= jitter < 1:
        raise DataError(f"oscillator: needs period > 0 and 0 <= jitter < 1, got {period}, {jitter}")
    args = (T, period, jitter, process_noise, obs_noise)
    x_tr, f_tr = oscillate(n, *args, seed=seed)
    x_te, f_te = oscillate(max(1, n // 5), *args, seed=seed + 7919)
    return {
        "x_train": x_tr, "x_test": x_te, "factors_train": f_tr, "factors_test": f_te,
        "factor_names": ["omega", "amplitude", "phase"], "source": "oscillator (generated)", "images": False,
    }


def shape_frames(x: np.ndarray, where: str) -> np.ndarray:
    """(N, T) -> (N, T, 1); (N, T, H, W) -> (N, T, 1, H, W); (N, T, H, W, C) -> (N, T, C, H, W)."""
    if x.ndim < 2:
        raise DataError(f"{where}: sequences need shape (N, T, ...), got {x.shape}")
    if x.ndim == 2:
        return x[:, :, None]
    if x.ndim == 4:
        return x[:, :, None]
    if x.ndim == 5 and x.shape[-1] in (1, 3, 4) and x.shape[2] not in (1, 3, 4):
        return np.moveaxis(x, -1, 2)
    return x


@dataset("sequences")
def user_sequences(path: str | None = None, **_: Any) -> dict[str, Any]:
    """The user's (N, T, ...) array: ``--data sequences --data-option path=FILE.npz``."""
    from .readers import read_array_file

    if not path:
        raise DataError("dataset 'sequences' needs the file: --data-option path=FILE.npz (an array of shape (N, T, ...))")
    arrays = read_array_file(path)
    x = arrays.get("x_train", arrays.get("x"))
    raw: dict[str, Any] = {"x_train": shape_frames(x, str(path)), "y_train": arrays.get("y_train", arrays.get("y"))}
    if arrays.get("x_test") is not None:
        raw["x_test"] = shape_frames(arrays["x_test"], str(path))
        raw["y_test"] = arrays.get("y_test")
    raw.update({"source": str(path), "images": False})
    return raw
