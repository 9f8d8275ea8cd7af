"""A learned image codec (a ``LearnedCodec``) measured as a codec (issue 25), on the first N test images:

- ``bpp``: what its entropy model says the coded symbols cost, per pixel; ``bpp_file``: a real
  ``.aez`` file of all N images (header included), and ``payload_over_estimate``, the payload's bits over
  the estimate (the coder's overhead: a fraction of a percent);
- ``psnr``: of the decoded images, 8-bit, as ``aezoo decompress`` writes them;
- beside JPEG and WebP (Pillow, one mosaic of the same images: the per-file header spread out as in
  an .aez file): ``psnr_gain_vs_jpeg``/``_webp``, dB above the codec at the file's rate, and
  ``bits_saved_vs_jpeg``/``_webp``, the share of the codec's bits saved at the same PSNR (null where the
  codec's qualities 1-95 do not reach that rate or PSNR, the key is left out);
- ``encode_mpps``/``decode_mpps``: megapixels per second, the whole pipeline on this machine.

The codec's claim in the report (``models/scale_hyperprior.py``) reads these keys.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from . import metric
from .rate import _psnr, _uint8, codec_points, is_image_batch

EVAL_IMAGES = 500
QUALITIES = (1, 2, 3, 5, 8, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)


def psnr_at(rows: list[dict[str, Any]], bpp: float) -> float | None:
    """A codec's PSNR at ``bpp``, interpolated in log-rate between its qualities; None outside them."""
    pts = sorted((r["bpp"], r["psnr"]) for r in rows)
    rates = [math.log(b) for b, _ in pts]
    if not pts or not rates[0] <= math.log(bpp) <= rates[-1]:
        return None
    return float(np.interp(math.log(bpp), rates, [p for _, p in pts]))


def bpp_at(rows: list[dict[str, Any]], psnr: float) -> float | None:
    """A codec's rate at ``psnr`` (over the part of its curve where PSNR rises with rate); None outside it."""
    pts = sorted((r["bpp"], r["psnr"]) for r in rows)
    mono = [pts[0]] if pts else []
    for b, p in pts[1:]:
        if p > mono[-1][1]:
            mono.append((b, p))
    if not mono or not mono[0][1] <= psnr <= mono[-1][1]:
        return None
    return float(math.exp(np.interp(psnr, [p for _, p in mono], [math.log(b) for b, _ in mono])))


@torch.no_grad()
def codec_metrics(model, x: torch.Tensor, qualities=QUALITIES) -> dict[str, Any]:
    from ..compress import learned

    model.eval()
    x = x.float()
    pixels = x.shape[0] * x.shape[-2] * x.shape[-1]
    t0 = time.perf_counter()
    blob = learned.compress(model, x)
    t1 = time.perf_counter()
    x_hat = learned.decompress(model, blob)
    t2 = time.perf_counter()
    z, y = learned.symbols(model, x)
    estimate = learned.bits_estimate(model, z, y)
    _, payload = learned.unpack(blob)
    out: dict[str, Any] = {"codec_images": int(x.shape[0]), "bpp": estimate / pixels, "bpp_file": 8 * len(blob) / pixels,
                           "payload_over_estimate": 8 * len(payload) / estimate,
                           "psnr": _psnr(_uint8(x_hat) / 255.0, _uint8(x) / 255.0),
                           "encode_mpps": pixels / 1e6 / (t1 - t0), "decode_mpps": pixels / 1e6 / (t2 - t1)}
    rows = codec_points(x, qualities, layouts=("tiled",))
    for codec in ("jpeg", "webp"):
        curve = [r for r in rows if r["codec"] == codec]
        if not curve:
            continue
        at_rate = psnr_at(curve, out["bpp_file"])
        at_psnr = bpp_at(curve, out["psnr"])
        if at_rate is not None:  # left out where the codec cannot reach the rate (or the PSNR) at all
            out[f"psnr_gain_vs_{codec}"] = out["psnr"] - at_rate
        if at_psnr is not None:
            out[f"bits_saved_vs_{codec}"] = 1 - out["bpp_file"] / at_psnr
    return out


@metric("codec")
def codec_metric(model, data, split, x, y, codec_images: int = EVAL_IMAGES, **_: Any):
    from ..models.base import LearnedCodec

    if not isinstance(model, LearnedCodec) or not is_image_batch(x):
        return None
    return codec_metrics(model, x[:codec_images])
