"""The learned codec against the codecs people use (issue 25): aezoo's ``scale_hyperprior`` beside
JPEG, WebP and AVIF (Pillow) and CompressAI's ``bmshj2018-hyperprior`` (``compressai.models.ScaleHyperprior``)
trained on the same data, batch size, steps, lambda, loss, clipping and learning-rate schedule (each
with its own shuffling), in this process.

Sets: Fashion-MNIST (train split; the first ``--images`` test images, all in one file, codecs as one
mosaic of the same images: headers shared alike) and natural photographs (random 128x128 crops of
scikit-image's astronaut, coffee, chelsea, rocket, hubble_deep_field, immunohistochemistry and retina;
tested on scikit-learn's two held-out photographs, china and flower, at full size, one file each).
CompressAI's hyper-decoder needs sizes divisible by 64: its inputs are padded (replicate) to that in
training and coding, and its rate and distortion counted on the original pixels; grey images are
given to it as three equal channels (its output's channel mean is decoded). Rates are real file bytes (aezoo: the .aez file, header included; CompressAI: its strings plus 4 bytes
of shape per file, a lower bound on a container). PSNR on 8-bit decoded images. BD-rate: Bjontegaard's
average rate difference over the PSNR range both curves cover, log-rate interpolated with a monotone
cubic (pchip); negative = fewer bits than the anchor.

Bit-exactness: ``--exact-files`` test images, one payload each, written under (1 thread, fp32),
(2 threads, fp32) and (1 thread, bf16 autocast); each decoded under the other thread count; counted:
payloads whose decoded symbols equal the written ones, and images decoded bit-identically by both
decoders.

CompressAI is not an aezoo dependency: ``pip install --no-deps --target DIR compressai pytorch-msssim
requests urllib3 idna certifi charset-normalizer einops`` and pass ``--compressai-path DIR``.

    python benchmarks/bench_compress.py --compressai-path /work/compressai_pkgs --json benchmarks/compress_codec.json
"""
from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import math
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import aezoo
from aezoo.compress import learned
from aezoo.evaluate.rate import _psnr, _uint8, codec_points

MIN_OVERLAP_DB = 0.5  # BD-rate only over a common PSNR range at least this wide
QUALITIES = (1, 3, 5, 8, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)
TRAIN_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


# --- CompressAI, importable without its dataset extras ------------------------------------------------
class _Any:
    def __init__(self, *a, **k):
        pass

    def __call__(self, *a, **k):
        return a[0] if a and callable(a[0]) else _Any()

    def __getattr__(self, name):
        return _Any()


def _stub_attr(attr: str):
    if attr.startswith("__"):  # __file__, __spec__, ...: what inspect and importlib probe must stay absent
        raise AttributeError(attr)
    return type(attr, (_Any,), {})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """compressai's package __init__ imports its point-cloud dataset and transform registries, which import
    packages (torch_geometric, pandas, ...) that its image models never touch: those import as stubs."""

    roots = ("torch_geometric", "torchvision", "pointops", "plyfile", "pandas", "h5py")

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        m = types.ModuleType(spec.name)
        m.__path__ = []
        m.__getattr__ = _stub_attr
        return m

    def exec_module(self, module):
        pass


def import_compressai(path: str | None):
    if path:
        sys.path.insert(0, path)
    finder = _StubFinder()
    sys.meta_path.insert(0, finder)
    try:
        from compressai.models import ScaleHyperprior
    except Exception as e:  # noqa: BLE001 - any import failure means: no CompressAI row
        print(f"CompressAI not available ({type(e).__name__}: {e}); its rows are left out")
        return None
    finally:
        sys.meta_path.remove(finder)
    return ScaleHyperprior


# --- data -----------------------------------------------------------------------------------------------
def photo_sets(n_crops: int, crop: int, seed: int = 0):
    import skimage.data
    from sklearn.datasets import load_sample_images

    g = torch.Generator().manual_seed(seed)
    photos = []
    for name in TRAIN_PHOTOS:
        try:
            photos.append(torch.from_numpy(getattr(skimage.data, name)()[..., :3].copy()).permute(2, 0, 1).float() / 255)
        except Exception as e:  # noqa: BLE001 - a photo this scikit-image lacks
            print(f"skipping {name}: {e}")
    crops = []
    for i in range(n_crops):
        p = photos[i % len(photos)]
        top = int(torch.randint(0, p.shape[1] - crop + 1, (1,), generator=g))
        left = int(torch.randint(0, p.shape[2] - crop + 1, (1,), generator=g))
        c = p[:, top : top + crop, left : left + crop]
        crops.append(c.flip(-1) if torch.rand(1, generator=g) < 0.5 else c)
    test = [torch.from_numpy(im.copy()).permute(2, 0, 1).float() / 255 for im in load_sample_images().images]  # china, flower
    return torch.stack(crops), test


def schedule(step: int, steps: int, lr: float, warmup: int) -> float:
    """aezoo's cosine decay with linear warm-up (what scale_hyperprior's train_defaults ask for)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


# --- training ---------------------------------------------------------------------------------------------
def train_aezoo(x_train, steps, lmbda, channels, latent_dim, batch, seed):
    torch.manual_seed(seed)
    model = aezoo.create("scale_hyperprior", input_shape=tuple(x_train.shape[1:]), lmbda=lmbda, channels=channels, latent_dim=latent_dim)
    data = aezoo.data.from_arrays(x_train, val_fraction=0.02)
    t0 = time.perf_counter()
    aezoo.train(model, data, steps=steps, batch_size=batch, min_steps=0, progress=False, report=False, seed=seed)
    return model.eval(), time.perf_counter() - t0


def train_compressai(cls, x_train, steps, lmbda, channels, latent_dim, batch, seed, lr=1e-3, warmup=100):
    """CompressAI's examples/train.py loop: Adam on the main loss (bpp + lambda 255^2 MSE), a second Adam
    (1e-3) on the entropy bottleneck's aux loss, gradient clipping 1.0; here with aezoo's schedule."""
    torch.manual_seed(seed)
    net = cls(channels, latent_dim)
    aux = {n for n, _ in net.named_parameters() if n.endswith(".quantiles")}
    main_params = [p for n, p in net.named_parameters() if n not in aux]
    aux_params = [p for n, p in net.named_parameters() if n in aux]
    opt, aux_opt = torch.optim.Adam(main_params, lr), torch.optim.Adam(aux_params, 1e-3)
    g = torch.Generator().manual_seed(seed)
    n = x_train.shape[0]
    t0 = time.perf_counter()
    net.train()
    perm, pos = torch.randperm(n, generator=g), 0
    for step in range(steps):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=g), 0
        x = x_train[perm[pos : pos + batch]]
        pos += batch
        x3 = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        for group in opt.param_groups:
            group["lr"] = schedule(step, steps, lr, warmup)
        h, w = x.shape[-2:]
        out = net(pad_to(x3))  # its hyper-decoder needs sizes divisible by 64 (replicate padding, as at test time)
        pixels = x.shape[0] * h * w
        bpp = sum(torch.log(lk).sum() for lk in out["likelihoods"].values()) / (-math.log(2) * pixels)
        loss = bpp + lmbda * 255**2 * F.mse_loss(out["x_hat"][..., :h, :w], x3)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main_params, 1.0)
        opt.step()
        aux_loss = net.aux_loss()
        aux_opt.zero_grad()
        aux_loss.backward()
        aux_opt.step()
    net.update(force=True)
    return net.eval(), time.perf_counter() - t0


# --- measuring ---------------------------------------------------------------------------------------
def pad_to(x, m=64):
    h, w = x.shape[-2:]
    return F.pad(x, (0, (-w) % m, 0, (-h) % m), mode="replicate")


@torch.no_grad()
def measure_compressai(net, images, gray: bool) -> dict:
    """Real strings of each file (a list of (N, C, H, W) tensors, one file each)."""
    nbytes, psnrs, pixels, decoded, refs = 0, [], 0, [], []
    for x in images:
        x3 = x.expand(-1, 3, -1, -1) if gray else x
        h, w = x.shape[-2:]
        enc = net.compress(pad_to(x3))
        nbytes += sum(len(s) for strings in enc["strings"] for s in strings) + 4
        x_hat = net.decompress(enc["strings"], enc["shape"])["x_hat"][..., :h, :w]
        x_hat = x_hat.mean(1, keepdim=True) if gray else x_hat
        decoded.append(_uint8(x_hat))
        refs.append(_uint8(x))
        pixels += x.shape[0] * h * w
    return {"bpp": 8 * nbytes / pixels, "psnr": _psnr(np.concatenate([d.ravel() for d in decoded]) / 255.0, np.concatenate([r.ravel() for r in refs]) / 255.0)}


@torch.no_grad()
def measure_aezoo(model, images) -> dict:
    nbytes, payload_bits, estimate, pixels, decoded, refs, t_enc, t_dec = 0, 0, 0.0, 0, [], [], 0.0, 0.0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for x in images:
            t0 = time.perf_counter()
            blob = learned.compress(model, x)
            t1 = time.perf_counter()
            x_hat = learned.decompress(model, blob)
            t_dec += time.perf_counter() - t1
            t_enc += t1 - t0
            z, y = learned.symbols(model, x)
            estimate += learned.bits_estimate(model, z, y)
            nbytes += len(blob)
            payload_bits += 8 * len(learned.unpack(blob)[1])
            pixels += x.shape[0] * x.shape[-2] * x.shape[-1]
            decoded.append(_uint8(x_hat))
            refs.append(_uint8(x))
    finally:
        torch.set_num_threads(threads)
    return {"bpp": 8 * nbytes / pixels, "bpp_estimate": estimate / pixels, "payload_over_estimate": payload_bits / estimate,
            "psnr": _psnr(np.concatenate([d.ravel() for d in decoded]) / 255.0, np.concatenate([r.ravel() for r in refs]) / 255.0),
            "encode_mpps_1thread": pixels / 1e6 / t_enc, "decode_mpps_1thread": pixels / 1e6 / t_dec}


def codecs(images, layout) -> dict[str, list[dict]]:
    """JPEG, WebP, AVIF rows summed over the files (each tensor of ``images``)."""
    per = [codec_points(x, QUALITIES, avif=True, layouts=(layout,)) for x in images]
    out: dict[str, list[dict]] = {}
    pixels = [x.shape[0] * x.shape[-2] * x.shape[-1] for x in images]
    for i, row in enumerate(per[0]):
        if row["psnr"] is None:
            continue
        bits = sum(p[i]["bpp"] * n for p, n in zip(per, pixels))
        # the PSNR of all files together, from each file's MSE
        mse = sum(10 ** (-p[i]["psnr"] / 10) * n for p, n in zip(per, pixels)) / sum(pixels)
        out.setdefault(row["codec"], []).append({"quality": row["quality"], "bpp": bits / sum(pixels), "psnr": 10 * math.log10(1 / mse)})
    return out


def bd_rate(anchor: list[dict], test: list[dict]) -> float | None:
    """Bjontegaard delta rate (%) of ``test`` against ``anchor`` over their common PSNR range (pchip)."""
    from scipy.interpolate import PchipInterpolator

    def curve(rows):
        pts = sorted((r["psnr"], math.log(r["bpp"])) for r in rows)
        mono = [pts[0]]
        for p, r in pts[1:]:
            if p > mono[-1][0] and r > mono[-1][1]:
                mono.append((p, r))
        return mono

    a, t = curve(anchor), curve(test)
    if len(a) < 2 or len(t) < 2:
        return None
    lo, hi = max(a[0][0], t[0][0]), min(a[-1][0], t[-1][0])
    if hi - lo < MIN_OVERLAP_DB:  # an average over a sliver of PSNR says nothing
        return None
    fa, ft = PchipInterpolator(*zip(*a)), PchipInterpolator(*zip(*t))
    grid = np.linspace(lo, hi, 200)
    return float((math.exp(np.trapezoid(ft(grid) - fa(grid), grid) / (hi - lo)) - 1) * 100)


@torch.no_grad()
def exactness(model, x: torch.Tensor) -> dict:
    """One payload per image, written under three settings, each decoded under another thread count."""
    before = torch.get_num_threads()
    writers = {"1 thread fp32": (1, False), "2 threads fp32": (2, False), "1 thread bf16": (1, True)}
    out = {}
    try:
        for name, (threads, amp) in writers.items():
            torch.set_num_threads(threads)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                z, y = learned.symbols(model, x)
            payloads = [learned.encode(model, z[i : i + 1], y[i : i + 1]) for i in range(x.shape[0])]
            same, images = 0, []
            for dec_threads in ((2, 1) if threads == 1 else (1, 2)):  # the first decoder differs from the writer
                torch.set_num_threads(dec_threads)
                got = [learned.decode(model, p, 1, tuple(x.shape[-2:])) for p in payloads]
                zs, ys = torch.cat([g[0] for g in got]), torch.cat([g[1] for g in got])
                exact = int(sum(torch.equal(zs[i], z[i]) and torch.equal(ys[i], y[i]) for i in range(x.shape[0])))
                same = exact if not images else min(same, exact)
                images.append(learned.decode_images(model, zs, ys, tuple(x.shape[-2:])))
            identical = int(sum(torch.equal(images[0][i], images[-1][i]) for i in range(x.shape[0])))
            out[name] = {"files": int(x.shape[0]), "symbols_exact": same, "images_identical_across_decoders": identical,
                         "decoders": len(images)}
            print(f"  written with {name}: {same}/{x.shape[0]} decode to their exact symbols; "
                  f"{identical}/{x.shape[0]} images bit-identical across {len(images)} decoder thread count(s)", flush=True)
    finally:
        torch.set_num_threads(before)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--photo-steps", type=int, default=800)
    ap.add_argument("--lambdas", default="0.0035,0.013,0.05")
    ap.add_argument("--photo-lambdas", default="0.0067,0.025")
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--latent-dim", type=int, default=96)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--photo-batch", type=int, default=16)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--exact-files", type=int, default=10000)
    ap.add_argument("--sets", default="fashion,photos")
    ap.add_argument("--compressai-path")
    ap.add_argument("--json", default="benchmarks/compress_codec.json")
    ap.add_argument("--figure", default="benchmarks/compress_codec.png")
    ap.add_argument("--quick", action="store_true", help="tiny steps and images: a smoke test")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for training (coding speed is measured on 1)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.quick:
        a.steps, a.photo_steps, a.images, a.exact_files, a.lambdas, a.photo_lambdas = 20, 10, 50, 50, "0.013,0.05", "0.013"
    cai = import_compressai(a.compressai_path)
    results: dict = {"args": vars(a), "sets": {}}
    for set_name in a.sets.split(","):
        if set_name not in ("fashion", "photos"):
            raise SystemExit(f"--sets: fashion and/or photos, got {set_name!r}")
        if set_name == "fashion":
            data = aezoo.data.load("fashion-mnist")
            x_train, test, layout, steps, batch, lambdas = data.train.x, [data.test.x[: a.images]], "tiled", a.steps, a.batch, a.lambdas
        else:
            x_train, photos = photo_sets(2000 if a.quick else 8000, 128)
            test, layout, steps, batch, lambdas = [p[None] for p in photos], "single", a.photo_steps, a.photo_batch, a.photo_lambdas
        gray = x_train.shape[1] == 1
        res = {"codecs": codecs(test, layout), "aezoo": [], "compressai": []}
        print(f"\n== {set_name}: {x_train.shape[0]} training images of {tuple(x_train.shape[1:])}, {steps} steps of {batch}", flush=True)
        for lmbda in map(float, lambdas.split(",")):
            model, secs = train_aezoo(x_train, steps, lmbda, a.channels, a.latent_dim, batch, 0)
            row = {"lmbda": lmbda, "train_s": secs, **measure_aezoo(model, test)}
            res["aezoo"].append(row)
            print(f"  aezoo      lambda {lmbda}: {row['bpp']:.4f} bpp, {row['psnr']:.2f} dB (payload/estimate {row['payload_over_estimate']:.4f}; "
                  f"{row['encode_mpps_1thread']:.3f}/{row['decode_mpps_1thread']:.3f} MP/s; trained in {secs:.0f} s)", flush=True)
            if cai is not None:
                net, secs = train_compressai(cai, x_train, steps, lmbda, a.channels, a.latent_dim, batch, 0)
                row = {"lmbda": lmbda, "train_s": secs, **measure_compressai(net, test, gray)}
                res["compressai"].append(row)
                print(f"  CompressAI lambda {lmbda}: {row['bpp']:.4f} bpp, {row['psnr']:.2f} dB (trained in {secs:.0f} s)", flush=True)
            if set_name == "fashion" and lmbda == float(lambdas.split(",")[len(lambdas.split(",")) // 2]) and a.exact_files:
                print(f"  bit-exactness over {a.exact_files} single-image payloads:", flush=True)
                res["exact"] = exactness(model, data.test.x[: a.exact_files])
        bd = {}
        for codec, rows in res["codecs"].items():
            bd[f"aezoo_vs_{codec}"] = bd_rate(rows, res["aezoo"])
            if res["compressai"]:
                bd[f"compressai_vs_{codec}"] = bd_rate(rows, res["compressai"])
        if res["compressai"]:
            bd["aezoo_vs_compressai"] = bd_rate(res["compressai"], res["aezoo"])
        res["bd_rate_percent"] = bd
        print("  BD-rate (%, negative = fewer bits): " + ", ".join(f"{k} {v:+.1f}" if v is not None else f"{k} n/a (no common PSNR range)" for k, v in bd.items()), flush=True)
        results["sets"][set_name] = res
        Path(a.json).write_text(json.dumps(results, indent=1))
    plot(results, a.figure)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = results["sets"]
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4.3), squeeze=False)
    styles = {"jpeg": ("tab:orange", "s"), "webp": ("tab:green", "^"), "avif": ("tab:red", "v")}
    for ax, (name, res) in zip(axes[0], sets.items()):
        for codec, rows in res["codecs"].items():
            rows = sorted(rows, key=lambda r: r["bpp"])
            color, marker = styles.get(codec, ("gray", "."))
            ax.plot([r["bpp"] for r in rows], [r["psnr"] for r in rows], "-", marker=marker, ms=3, color=color, label=codec.upper())
        for who, color in (("aezoo", "tab:blue"), ("compressai", "tab:purple")):
            rows = sorted(res[who], key=lambda r: r["bpp"])
            if rows:
                ax.plot([r["bpp"] for r in rows], [r["psnr"] for r in rows], "-o", lw=2, color=color,
                        label="aezoo scale_hyperprior (.aez files)" if who == "aezoo" else "CompressAI bmshj2018-hyperprior (same training)")
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (log scale)")
        ax.set_ylabel("PSNR (dB), 8-bit")
        ax.set_title(f"{name}", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
