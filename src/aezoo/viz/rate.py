"""The rate-distortion figure: a discrete-code model or a learned codec as an image codec (bits per pixel
against PSNR at each rate it supports) beside PNG, JPEG and WebP on the same test images."""
from __future__ import annotations

from pathlib import Path

import torch

from .figures import _mpl, figure

FIGURE_IMAGES = 100  # test images coded for the report (coding runs the prior cell by cell: seconds per rate)


def plot_rate_distortion(rd: dict, path: str | Path, title: str = "") -> Path:
    """Draw ``evaluate.rate.rate_distortion_table``'s result; ``rd["model"]`` may also map several
    models' names to their rows (the benchmark)."""
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(6.4, 4.3))
    styles = {"jpeg": ("tab:orange", "s"), "webp": ("tab:green", "^")}
    top = 0.0
    for codec, (color, marker) in styles.items():
        for layout, ls, alpha in (("tiled", "-", 1.0), ("single", ":", 0.6)):
            pts = sorted((r["bpp"], r["psnr"], r["quality"]) for r in rd["codecs"] if r["codec"] == codec and r["layout"] == layout)
            if not pts:
                continue
            bpp, psnr, q = zip(*pts)
            top = max(top, *psnr)
            what = "one mosaic of all" if layout == "tiled" else "one file per image"
            ax.plot(bpp, psnr, ls, marker=marker, color=color, alpha=alpha, ms=4, label=f"{codec.upper()} q{min(q)}-{max(q)} ({what})")
            if layout == "tiled":
                for b, p, qq in pts:
                    ax.annotate(str(qq), (b, p), textcoords="offset points", xytext=(3, -9), fontsize=6, color=color)
    curves = rd["model"] if isinstance(rd["model"], dict) else {"model": rd["model"]}  # several models: {name: rows}
    colors = ["tab:blue", "tab:purple", "tab:red", "tab:brown", "tab:cyan"]
    low, lowest_bpp = min(r["psnr"] for r in rd["codecs"] if r["psnr"] is not None), float("inf")
    for (name, rows), color in zip(curves.items(), colors):
        key = "bpp" if all("bpp" in r for r in rows) else "bpp_fixed"
        bpp, psnr = [r[key] for r in rows], [r["psnr"] for r in rows]
        top, low, lowest_bpp = max(top, *psnr), min(low, *psnr), min(lowest_bpp, *bpp)
        codec = any(r.get("rate") == "codec" for r in rows)
        label = (f"{name}: .aez files (learned codec)" if codec else f"{name}: .aez files (prior-coded codes)") if key == "bpp" \
            else f"{name}: fixed-length codes (no prior trained)"
        ax.plot(bpp, psnr, "-o", color=color, lw=2, ms=6, label=label, zorder=5)
        for r, b, p in zip(rows if len(rows) > 1 else [], bpp, psnr):  # name the rates where there are several
            ax.annotate(f"{r['grids']} grid{'s' if r['grids'] > 1 else ''}", (b, p), textcoords="offset points", xytext=(5, 4), fontsize=7, color=color)
        if key == "bpp" and all("bpp_fixed" in r for r in rows):
            ax.plot([r["bpp_fixed"] for r in rows], psnr, "--", color=color, alpha=0.4, marker=".", label=f"{name}: fixed-length codes (cells x log2 K)")
    for r in rd["codecs"]:
        if r["codec"] == "png":
            ax.axvline(r["bpp"], color="gray", ls="--" if r["layout"] == "tiled" else ":", lw=1)
            ax.annotate(f"PNG, lossless ({'mosaic' if r['layout'] == 'tiled' else 'per image'})", (r["bpp"], low), rotation=90,
                        fontsize=6, color="gray", va="bottom", ha="right")
    ax.set_xscale("log")
    ticks = [t for t in (0.0625, 0.125, 0.25, 0.5, 1, 2, 4, 8, 16) if lowest_bpp / 2 <= t <= 2 * max(r["bpp"] for r in rd["codecs"])]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("bits per pixel (log scale)")
    ax.set_ylabel("PSNR (dB), 8-bit output")
    ax.set_title(title or f"Rate-distortion on {rd['n']} test images", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


@figure("rate_distortion", order=46)
@torch.no_grad()
def rate_distortion(model, data, run_dir, out_path, n: int = FIGURE_IMAGES):
    from ..evaluate.rate import is_image_batch, rate_distortion_table
    from ..models.base import CodeGridModel, LearnedCodec

    split = data.test if data.test is not None else data.train
    if not isinstance(model, (CodeGridModel, LearnedCodec)) or not is_image_batch(split.x[:1]):
        return None
    rd = rate_distortion_table(model, split.x[:n])
    plot_rate_distortion(rd, out_path, f"{model.name} on {data.name}: rate-distortion on the first {rd['n']} test images")
    best = rd["model"][-1]
    if best.get("rate") == "codec":
        what = (f"The learned codec's .aez file takes {best['bpp']:.3f} bits per pixel (its entropy model estimates {best['bpp_nll']:.3f}) "
                f"for {best['psnr']:.1f} dB; its rate is set by training (lmbda={model.config.lmbda:g}): other lambdas give other points.")
    elif "bpp" in best:
        what = (f"At {best['grids']} code grid(s) the .aez files take {best['bpp']:.3f} bits per pixel (prior NLL {best['bpp_nll']:.3f}, "
                f"fixed-length codes {best['bpp_fixed']:.3f}) for {best['psnr']:.1f} dB.")
    else:
        what = f"No prior is trained, so the model's rate is its fixed-length code ({best['bpp_fixed']:.3f} bits per pixel); `aezoo train-prior` entropy-codes it."
    return (f"Bits per pixel against PSNR for the model at each rate it supports, beside JPEG and WebP at qualities 5-90 "
            f"(solid: one mosaic of all images, so headers are shared as in an .aez file; dotted: one file per image) and lossless PNG. {what}")
