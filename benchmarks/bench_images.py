"""VQ-VAE on 64x64 natural-patches (issue 13): the plain strided nets ('conv', transposed-conv decoder)
against the residual nets ('resnet', GroupNorm), with the decoder upsampling by resize-conv and by
sub-pixel convolution. Same code grid (16x16 of K=512 codes: 2,304 bits per image), same steps,
batch size and learning rate. Test patches come from photographs not seen in training.

    python benchmarks/bench_images.py [--steps 1500] [--out runs/bench_images]

Reports PSNR and SSIM (scikit-image) of test reconstructions, a checkerboard measure (power of the
reconstructions at the three Nyquist frequencies of a 2x2 period, relative to that of the inputs: above 1
the decoder adds a pixel-parity pattern the photos do not have) and the seconds per step; writes
``images.json`` and ``images.png`` (inputs, then each variant's reconstructions).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

import aezoo
from aezoo.nn.resnet import Upsample
from aezoo.train.trainer import fit

VARIANTS = {
    "conv (before)": dict(arch="conv"),
    "resnet, resize-conv": dict(arch="resnet"),
    "resnet, sub-pixel": dict(arch="resnet", upsample="subpixel"),
    "resnet 64-128, resize-conv": dict(arch="resnet", channels=(64, 128)),
    # tried once at 1,500 steps, not better than lr 1e-3 (benchmarks/README.md): kept to re-run
    "conv, lr 3e-3": dict(arch="conv", lr=3e-3),
    "resnet 64-128, lr 3e-3": dict(arch="resnet", channels=(64, 128), lr=3e-3),
    "resnet 64-128, EMA codebook, lr 2e-3": dict(arch="resnet", channels=(64, 128), lr=2e-3, ema=True),
}


def build(variant: dict, shape) -> torch.nn.Module:
    v = dict(variant)
    v.pop("lr", None)
    up = v.pop("upsample", "resize")
    v.setdefault("channels", (32, 64))
    model = aezoo.create("vq_vae", input_shape=shape, num_codes=512, latent_dim=64, **v)
    if up != "resize":  # swap every resize-conv of the decoder for a sub-pixel conv of the same sizes
        for parent in model.modules():
            for name, child in parent.named_children():
                if isinstance(child, Upsample):
                    setattr(parent, name, Upsample(child.conv.in_channels, child.conv.out_channels, child.size, up))
    return model


def nyquist_power(x: np.ndarray) -> float:
    """Mean power of (N, C, H, W) images at the frequencies (pi, 0), (0, pi), (pi, pi)."""
    h, w = x.shape[-2:]
    si = (-1.0) ** np.arange(h)[:, None]
    sj = (-1.0) ** np.arange(w)[None, :]
    return float(sum(((x * s).mean((-1, -2)) ** 2).mean() for s in (si * np.ones((1, w)), sj * np.ones((h, 1)), si * sj)))


def scores(x: np.ndarray, x_hat: np.ndarray) -> dict[str, float]:
    from skimage.metrics import structural_similarity

    mse = ((x - x_hat) ** 2).mean((1, 2, 3))
    psnr = float(np.mean(10 * np.log10(1.0 / np.maximum(mse, 1e-10))))
    ssim = float(np.mean([structural_similarity(a, b, channel_axis=0, data_range=1.0) for a, b in zip(x, x_hat)]))
    return {"psnr_db": round(psnr, 2), "ssim": round(ssim, 4), "checkerboard": round(nyquist_power(x_hat) / nyquist_power(x), 3)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--only", nargs="*", help="variants to run, by the start of their names (default all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="runs/bench_images")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = aezoo.data.load("natural-patches", size=args.size)
    pick = torch.randperm(len(data.test), generator=torch.Generator().manual_seed(0))[: args.n_test]
    x_test = data.test.x[pick]
    results, recons = {}, {}
    path = out / "images.json"
    if path.exists():
        results = json.loads(path.read_text())
    for name, variant in VARIANTS.items():
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        torch.manual_seed(0)
        model = build(variant, data.input_shape)
        t0 = time.perf_counter()
        fit(model, data, steps=args.steps, epochs=None, batch_size=args.batch_size, lr=variant.get("lr", 1e-3), progress=False, seed=0)
        sec = (time.perf_counter() - t0) / args.steps
        with torch.no_grad():
            x_hat = torch.cat([model.reconstruct(x_test[i : i + 100]) for i in range(0, len(x_test), 100)]).clamp(0, 1)
        recons[name] = x_hat[:8]
        bits = model.grid[0] * model.grid[1] * math.log2(model.config.num_codes)
        results[name] = {**scores(x_test.numpy(), x_hat.numpy()), "bits_per_image": bits, "params": sum(p.numel() for p in model.parameters()),
                         "s_per_step": round(sec, 4), "steps": args.steps, "batch_size": args.batch_size}
        print(name, results[name], flush=True)
        path.write_text(json.dumps(results, indent=1))
    if recons:
        from aezoo.viz.figures import save_grid

        rows = torch.cat([x_test[:8], *recons.values()])
        save_grid(rows, out / "images.png", cols=8, scale=3)
        (out / "images_rows.txt").write_text("\n".join(["inputs", *recons]))


if __name__ == "__main__":
    main()
