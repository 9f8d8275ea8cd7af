"""Compression (issue 14): `vq_vae` with each quantizer (vq, rvq, fsq) on Fashion-MNIST as an image codec.

For each quantizer: train with the CLI's defaults (`aezoo train vq_vae --data fashion-mnist --set
quantizer=Q`, 10 epochs), report code usage on the 10,000 test images (the utilisation target is >= 95%
of every codebook), fit the prior over the codes (`train-prior`, here a smaller transformer than the
CLI's default to fit the budget), then code the first N test images into real .aez files at every
rate the model supports: bits per pixel (file, prior NLL, fixed-length), PSNR of the 8-bit decoded
images, and encode/decode images per second (one CPU thread, as the coder always runs). Beside them,
PNG, JPEG and WebP from Pillow on the same images; the figure goes to benchmarks/rate_distortion.png,
its numbers to benchmarks/rate_distortion.json.

    python benchmarks/bench_compress_vq.py [--images 1000] [--prior-epochs 3] [--out runs/bench_compress]

Run folders are reused when they exist (delete them to retrain).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import aezoo
from aezoo.evaluate.rate import codec_points, model_points
from aezoo.models.code_prior import save_prior
from aezoo.run import fit_prior
from aezoo.viz.rate import plot_rate_distortion


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quantizers", nargs="+", default=["vq", "rvq", "fsq"])
    p.add_argument("--epochs", type=int, default=10, help="first stage (the CLI's default)")
    p.add_argument("--prior-epochs", type=int, default=3)
    p.add_argument("--prior-width", type=int, default=64)
    p.add_argument("--prior-layers", type=int, default=2)
    p.add_argument("--images", type=int, default=1000, help="test images coded into .aez files")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/bench_compress")
    p.add_argument("--figure", default="benchmarks/rate_distortion.png")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = aezoo.data.load("fashion-mnist")
    x = data.test.x[: args.images]
    curves, usage = {}, []
    for q in args.quantizers:
        out = Path(args.out) / q
        if not (out / "model.safetensors").exists():
            torch.manual_seed(0)
            model = aezoo.create("vq_vae", input_shape=data.input_shape, quantizer=q)
            t0 = time.perf_counter()
            aezoo.train(model, data, out=out, epochs=args.epochs, progress=False, report=False)
            print(f"{q}: trained in {time.perf_counter() - t0:.0f}s", flush=True)
        model = aezoo.load(out)
        m = model.eval_metrics(data.test.x)
        dead = {k: v for k, v in m.items() if k.startswith("dead_codes")}
        usage.append({"quantizer": q, "grids": len(model.quantizers), "codes": model.quantizers[0].num_codes,
                      "utilisation_min": 1 - max(dead.values()), "perplexity": {k: round(v, 1) for k, v in m.items() if k.startswith("perplexity")},
                      "bits_per_input": m["bits_per_input"]})
        print(json.dumps(usage[-1]), flush=True)
        if model.prior is None:
            t0 = time.perf_counter()
            prior, _ = fit_prior(model, data, width=args.prior_width, layers=args.prior_layers, heads=4, dropout=0.1,
                                 epochs=args.prior_epochs, batch_size=128, lr=1e-3, progress=False)
            save_prior(out, prior, {"seconds": round(time.perf_counter() - t0, 1)})
            print(f"{q}: prior trained in {time.perf_counter() - t0:.0f}s", flush=True)
        curves[q] = model_points(model, x)
        for r in curves[q]:
            print(json.dumps({"quantizer": q, **r}), flush=True)
    codecs = codec_points(x)
    Path(args.figure).with_suffix(".json").write_text(json.dumps({"n": x.shape[0], "usage": usage, "model": curves, "codecs": codecs}, indent=1) + "\n")
    plot_rate_distortion({"n": x.shape[0], "model": {f"vq_vae {q}": rows for q, rows in curves.items()}, "codecs": codecs}, args.figure,
                         f"Fashion-MNIST, first {x.shape[0]} test images: vq_vae (vq, rvq, fsq) against JPEG, WebP and PNG")
    print(f"\nwrote {args.figure}\n")
    print("| quantizer | grids x codes | min utilisation (test) | perplexity | fixed-length bits/image |\n|---|---|---:|---|---:|")
    for u in usage:
        print(f"| {u['quantizer']} | {u['grids']} x {u['codes']} | {100 * u['utilisation_min']:.1f}% | {u['perplexity']} | {u['bits_per_input']:.0f} |")
    print(f"\n| model | grids coded | bits/pixel (.aez) | bits/pixel (prior NLL) | bits/pixel (fixed) | PSNR dB | encode img/s | decode img/s |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for q, rows in curves.items():
        for r in rows:
            print(f"| vq_vae {q} | {r['grids']} | {r['bpp']:.4f} | {r['bpp_nll']:.4f} | {r['bpp_fixed']:.4f} | {r['psnr']:.2f} | {r['encode_ips']:.0f} | {r['decode_ips']:.0f} |")
    print("\n| codec | quality | bits/pixel (mosaic) | PSNR dB (mosaic) | bits/pixel (one file per image) | PSNR dB (per image) |\n|---|---:|---:|---:|---:|---:|")
    for c in codecs:
        if c["layout"] != "tiled":
            continue
        single = next(s for s in codecs if s["codec"] == c["codec"] and s["quality"] == c["quality"] and s["layout"] == "single")
        fmt = lambda v: "lossless" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"| {c['codec'].upper()} | {c['quality'] or '-'} | {c['bpp']:.3f} | {fmt(c['psnr'])} | {single['bpp']:.3f} | {fmt(single['psnr'])} |")


if __name__ == "__main__":
    main()
