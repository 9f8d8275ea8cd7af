"""Rate and distortion of a discrete-code model or a learned codec as an image codec, beside the codecs
people use. (A learned codec has one rate, set by its training lambda: ``codec_point``; its codec
metrics, ``evaluate/codec.py``, compare it with JPEG and WebP at equal rate in every evaluation.)

For each rate the model supports (``grid_prefixes``: all its grids, or each number of RVQ stages):
bits per pixel of real ``.aez`` files (header included; ``bpp``), of the prior's NLL (``bpp_nll``, what
the file should cost) and of fixed-length codes (``bpp_fixed``, cells x log2 K), and the PSNR of the
decoded images as ``aezoo decompress`` writes them (clamped to [0, 1], 8-bit). Beside them, from Pillow
on the same images: PNG (lossless), JPEG and WebP at several qualities, each both as one file per image
(``single``: what sending one thumbnail costs) and as one tiled mosaic of all images (``tiled``: the
per-file overhead spread out, as in an .aez file of many images). Bits per pixel count pixel
positions (H x W), not channels.

``aezoo eval --rate-distortion [N]`` adds the ``rd_*`` keys on the first N test images (default 500).
"""
from __future__ import annotations

import io
import math
import time
from typing import Any

import numpy as np
import torch

from . import metric

QUALITIES = (5, 10, 20, 30, 50, 70, 90)
EVAL_IMAGES = 500


def _psnr(x_hat: np.ndarray, x: np.ndarray) -> float:
    mse = float(np.mean((x_hat.astype(np.float64) - x.astype(np.float64)) ** 2))
    return 10 * math.log10(1.0 / mse) if mse > 0 else float("inf")


def _uint8(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (N, H, W, C) uint8, as image files hold it."""
    return (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def is_image_batch(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.shape[1] in (1, 3) and min(x.shape[2:]) >= 2


def _tile(imgs: np.ndarray) -> np.ndarray:
    n, h, w, c = imgs.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.zeros((rows * h, cols * w, c), np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        out[r * h : (r + 1) * h, k * w : (k + 1) * w] = imgs[i]
    return out


def _untile(mosaic: np.ndarray, n: int, h: int, w: int) -> np.ndarray:
    cols = mosaic.shape[1] // w
    return np.stack([mosaic[(i // cols) * h : (i // cols + 1) * h, (i % cols) * w : (i % cols + 1) * w] for i in range(n)])


def _roundtrip(img: np.ndarray, fmt: str, quality: int | None) -> tuple[int, np.ndarray]:
    from PIL import Image

    mode = "L" if img.shape[-1] == 1 else "RGB"
    buf = io.BytesIO()
    opts = {"optimize": True} if fmt == "PNG" else {"quality": quality}
    Image.fromarray(img[..., 0] if mode == "L" else img, mode).save(buf, fmt, **opts)
    size = buf.tell()
    buf.seek(0)
    with Image.open(buf) as im:
        back = np.asarray(im.convert(mode))
    return size, back.reshape(img.shape)


def codec_points(x: torch.Tensor, qualities=QUALITIES, avif: bool = False, layouts=("tiled", "single")) -> list[dict[str, Any]]:
    """PNG, JPEG and WebP (and with ``avif``, AVIF, where Pillow has it) on images ``x`` (N, C, H, W) in
    [0, 1]: one row per codec, quality and layout (single files / one tiled mosaic) with ``bpp`` and
    ``psnr`` (against ``x``)."""
    from PIL import features

    imgs = _uint8(x)
    ref = imgs / 255.0
    n, h, w, _ = imgs.shape
    pixels = n * h * w
    codecs = [("png", "PNG", [None]), ("jpeg", "JPEG", list(qualities))]
    if features.check("webp"):
        codecs.append(("webp", "WEBP", list(qualities)))
    if avif and features.check("avif"):
        codecs.append(("avif", "AVIF", list(qualities)))
    rows = []
    mosaic = _tile(imgs)
    for name, fmt, qs in codecs:
        for q in qs:
            lossy = q is not None  # PNG is lossless: no PSNR
            if "tiled" in layouts:
                size, back = _roundtrip(mosaic, fmt, q)
                rows.append({"codec": name, "quality": q, "layout": "tiled", "bpp": 8 * size / pixels, "psnr": _psnr(_untile(back, n, h, w) / 255.0, ref) if lossy else None})
            if "single" in layouts:
                sizes, backs = zip(*(_roundtrip(im, fmt, q) for im in imgs))
                rows.append({"codec": name, "quality": q, "layout": "single", "bpp": 8 * sum(sizes) / pixels, "psnr": _psnr(np.stack(backs) / 255.0, ref) if lossy else None})
    return rows


@torch.no_grad()
def prior_nll_bits(prior, grids: list[torch.Tensor], batch_size: int = 256) -> float:
    """The prior's negative log-likelihood of the first len(grids) code grids, summed over inputs, in bits."""
    from ..compress.coder import conditioning

    nats = 0.0
    for j in range(0, grids[0].shape[0], batch_size):
        flat = [g[j : j + batch_size].flatten(1) for g in grids]
        nats += sum(float(prior.grids[i].nll(c, conditioning(flat, i)).sum()) for i, c in enumerate(flat))
    return nats / math.log(2)


@torch.no_grad()
def model_points(model, x: torch.Tensor) -> list[dict[str, Any]]:
    """One row per rate the model supports: ``grids`` coded, ``bpp`` (file), ``bpp_nll``,
    ``bpp_fixed``, ``psnr``, and encode/decode images per second (one CPU thread, see
    ``compress.coder``)."""
    from ..compress import code_grids, compress, cpu_prior, decode_grids, decompress_codes
    from ..models.base import LearnedCodec

    model.eval()
    if isinstance(model, LearnedCodec):
        return [codec_point(model, x)]
    n, pixels = x.shape[0], x.shape[0] * x.shape[-1] * x.shape[-2]
    grids = code_grids(model, x)
    ref = _uint8(x) / 255.0  # the 8-bit images, as the codecs see them
    rows = []
    for s in model.grid_prefixes():
        x_hat = decode_grids(model, grids[:s])
        row = {"grids": s, "psnr": _psnr(_uint8(x_hat.view_as(x)) / 255.0, ref),
               "bpp_fixed": sum(g[0].numel() * q.bits() for g, q in zip(grids[:s], model.quantizers)) * n / pixels}
        if model.prior is not None:
            row["bpp_nll"] = prior_nll_bits(cpu_prior(model), grids[:s]) / pixels
            t0 = time.perf_counter()
            blob = compress(model, x, stages=s)
            t1 = time.perf_counter()
            back = decompress_codes(model, blob)
            t2 = time.perf_counter()
            if not all(torch.equal(a, b) for a, b in zip(back, grids[:s])):
                raise RuntimeError("decompressed codes differ from the coded ones")  # a bug, never a user error
            row.update({"bpp": 8 * len(blob) / pixels, "bytes": len(blob), "encode_ips": n / (t1 - t0), "decode_ips": n / (t2 - t1)})
        rows.append(row)
    return rows


@torch.no_grad()
def codec_point(model, x: torch.Tensor) -> dict[str, Any]:
    """A learned codec's one rate (set by its training lambda): a real file of all of ``x``, its estimate
    (``bpp_nll``: the entropy model's bits), PSNR, encode/decode images per second."""
    from ..compress import learned

    n, pixels = x.shape[0], x.shape[0] * x.shape[-1] * x.shape[-2]
    t0 = time.perf_counter()
    blob = learned.compress(model, x)
    t1 = time.perf_counter()
    header, z, y = learned.decompress_symbols(model, blob)
    x_hat = learned.decode_images(model, z, y, tuple(x.shape[-2:]))
    t2 = time.perf_counter()
    return {"rate": "codec", "psnr": _psnr(_uint8(x_hat.view_as(x)) / 255.0, _uint8(x) / 255.0),
            "bpp_nll": learned.bits_estimate(model, z, y) / pixels, "bpp": 8 * len(blob) / pixels, "bytes": len(blob),
            "encode_ips": n / (t1 - t0), "decode_ips": n / (t2 - t1)}


def rate_distortion_table(model, x: torch.Tensor, qualities=QUALITIES) -> dict[str, Any]:
    """Both tables on images ``x``: {"n", "model": model_points, "codecs": codec_points}."""
    return {"n": int(x.shape[0]), "model": model_points(model, x), "codecs": codec_points(x, qualities)}


@metric("rate_distortion")
def rate_distortion_metric(model, data, split, x, y, rate_distortion: int | bool = 0, **_: Any):
    """With ``rate_distortion=N`` (eval's ``--rate-distortion [N]``): ``rd_*`` keys on the first N inputs."""
    from ..models.base import CodeGridModel, LearnedCodec

    if not rate_distortion or not isinstance(model, (CodeGridModel, LearnedCodec)) or not is_image_batch(x):
        return None
    n = EVAL_IMAGES if rate_distortion is True else int(rate_distortion)
    rd = rate_distortion_table(model, x[:n])
    out: dict[str, Any] = {"rd_images": rd["n"]}
    for r in rd["model"]:
        tag = "codec" if r.get("rate") == "codec" else f"grids{r['grids']}"
        for key in ("bpp", "bpp_nll", "bpp_fixed", "psnr", "encode_ips", "decode_ips"):
            if key in r:
                out[f"rd_{tag}_{key}"] = r[key]
    for r in rd["codecs"]:
        tag = r["codec"] + ("" if r["quality"] is None else f"_q{r['quality']}") + ("" if r["layout"] == "tiled" else "_single")
        out[f"rd_{tag}_bpp"] = r["bpp"]
        if r["psnr"] is not None:
            out[f"rd_{tag}_psnr"] = r["psnr"]
    return out
