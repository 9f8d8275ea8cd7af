"""aezoo against pythae (Chadebec et al. 2022, "Pythae: Unifying Generative Autoencoders in Python",
arXiv:2206.08309) on the same VAE-MLP, data, loss, batch size and optimizer.

This machine's speed drifts by 25-30% on its own (and other jobs share its two cores), so one epoch of
each library alternates in the same process, and the figure reported is the median over pairs of
(pythae epoch time / aezoo epoch time). Each library trains its own model from its own start; the
order inside a pair alternates too, so neither always runs first.

- aezoo: ``aezoo.train`` one epoch per call, resuming its run folder (the public API; the epoch time
  is the one the trainer logs in metrics.jsonl, which excludes checkpoint writing), with the settings
  the README recommends for CPUs (``--amp --compile``: bf16 autocast, compiled step; change them with
  ``--no-amp`` / ``--no-compile``), and, as a third contestant in the same rotation, aezoo at the
  trainer's defaults (fp32, eager), whose test negative ELBO the fast run must match within 1 nat.
- pythae: ``pythae.models.VAE`` with custom encoder/decoder of the same sizes (sigmoid output, its
  ``reconstruction_loss="bce"``: BCE summed over pixels, the same analytic KL, averaged over the
  batch), trained by its ``BaseTrainer.train_step`` (its DataLoader, Adam), progress bar off.

The fp32 and bf16 matmul peaks (``matmul_peak.py``) are measured in the same process before the
first pair and after the last; GFLOP/s of an epoch = images/s x 6.46 MFLOP (``bench_vae.STEP_FLOPS``).

Then ``nll_iw``: pythae's ``get_nll`` (one image at a time, K samples in batches of 100) against
aezoo's batched ``nll_iw`` (bf16 decode where it pays, the default, and fp32) on the same test
images, K and model (aezoo's trained weights copied into pythae's VAE, so the estimates must agree),
alternating over ``--nll-rounds`` rounds of ``--nll-images`` images.

    python benchmarks/bench_vs_pythae.py --pairs 6 --nll-images 100 --nll-rounds 2   # ~4 min quiet
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import aezoo
from aezoo.evaluate.likelihood import nll_iw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vae import STEP_FLOPS  # noqa: E402
from matmul_peak import measure_peak  # noqa: E402


def make_pythae(input_shape, latent_dim: int = 16, seed: int = 0):
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    d = 1
    for s in input_shape:
        d *= s

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(d, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU())
            self.mu = nn.Linear(256, latent_dim)
            self.logvar = nn.Linear(256, latent_dim)

        def forward(self, x):
            h = self.net(x.reshape(x.shape[0], -1))
            return ModelOutput(embedding=self.mu(h), log_covariance=self.logvar(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(latent_dim, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, d), nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z).reshape(z.shape[0], *input_shape))

    torch.manual_seed(seed)
    cfg = VAEConfig(input_dim=tuple(input_shape), latent_dim=latent_dim, reconstruction_loss="bce")
    return VAE(cfg, encoder=Encoder(), decoder=Decoder())


@torch.no_grad()
def pythae_copy_of(ours, input_shape, latent_dim: int = 16):
    """A pythae VAE holding the weights of aezoo's ``ours`` (same layers; aezoo's encoder head
    (mu, logvar) is one Linear(256, 32), pythae's two Linear(256, 16)), so that get_nll and nll_iw
    estimate -log p(x) of the same model."""
    theirs = make_pythae(input_shape, latent_dim)
    sd = ours.state_dict()
    enc, dec = theirs.encoder, theirs.decoder
    for i in (0, 2):
        enc.net[i].weight.copy_(sd[f"encoder.net.{i}.weight"])
        enc.net[i].bias.copy_(sd[f"encoder.net.{i}.bias"])
    w, b = sd["encoder.net.4.weight"], sd["encoder.net.4.bias"]
    enc.mu.weight.copy_(w[:latent_dim]), enc.mu.bias.copy_(b[:latent_dim])
    enc.logvar.weight.copy_(w[latent_dim:]), enc.logvar.bias.copy_(b[latent_dim:])
    for i in (0, 2, 4):
        dec.net[i].weight.copy_(sd[f"decoder.net.{i}.weight"])
        dec.net[i].bias.copy_(sd[f"decoder.net.{i}.bias"])
    return theirs.eval()


def make_pythae_trainer(model, x, y, out: Path, lr: float, batch_size: int):
    from pythae.data.datasets import BaseDataset
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import CallbackHandler, TrainingCallback

    cfg = BaseTrainerConfig(output_dir=str(out), per_device_train_batch_size=batch_size, learning_rate=lr, optimizer_cls="Adam", num_epochs=1, no_cuda=True)
    trainer = BaseTrainer(model, BaseDataset(x, y.float()), training_config=cfg)
    trainer.set_optimizer()  # what prepare_training does, less the output folder and console callbacks
    trainer.callback_handler = CallbackHandler(callbacks=[TrainingCallback()], model=trainer.model)
    return trainer


@torch.no_grad()
def pythae_test_neg_elbo(model, x, seed: int = 0) -> float:
    model.eval()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        total = sum(float(model({"data": x[i : i + 1000]}).loss) * len(x[i : i + 1000]) for i in range(0, len(x), 1000))
    model.train()
    return total / len(x)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=6, help="epochs of each contestant, in rotating order")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True, help="aezoo's bf16 autocast (--amp)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True, help="aezoo's compiled training step")
    p.add_argument("--fp32-reference", action=argparse.BooleanOptionalAction, default=True, help="also train aezoo at the trainer's defaults (fp32, eager)")
    p.add_argument("--nll-images", type=int, default=100, help="test images per round for the get_nll / nll_iw timing (0: skip)")
    p.add_argument("--nll-rounds", type=int, default=2)
    p.add_argument("--iw-samples", type=int, default=1000)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from importlib.metadata import version

    data = aezoo.data.load("fashion-mnist", val_fraction=0)
    n = len(data.train)
    print(f"torch {torch.__version__}, pythae {version('pythae')}, {torch.get_num_threads()} threads; {n} training images, batch 128, Adam 1e-3; "
          f"aezoo amp={args.amp} compile={args.compile}; load {os.getloadavg()[0]:.1f}", flush=True)
    peaks = [{dt: measure_peak(dtype=dt, repeats=3) for dt in ("fp32", "bf16")}]
    print(f"matmul peaks before: fp32 {peaks[0]['fp32']['peak_gflops']} GFLOP/s, bf16 {peaks[0]['bf16']['peak_gflops']} GFLOP/s", flush=True)
    make = lambda: aezoo.create("vae", input_shape=data.input_shape, latent_dim=16, hidden=(512, 256), likelihood="bernoulli")  # noqa: E731
    models = {"aezoo": make(), "pythae": make_pythae(data.input_shape, 16, args.seed)}
    if args.fp32_reference:
        models["aezoo_fp32"] = make()
    opts = {"aezoo": dict(amp=args.amp, compile=args.compile), "aezoo_fp32": dict(amp=False, compile=False)}
    names = list(models)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_pythae_trainer(models["pythae"], data.train.x, data.train.y, Path(tmp) / "pythae", 1e-3, 128)
        torch.manual_seed(args.seed)
        for e in range(1, args.pairs + 1):
            t, cpu = {}, {}
            r = (e - 1) % len(names)
            order = names[r:] + names[:r]  # each contestant takes each position in turn
            for lib in order:
                c0 = time.process_time()
                if lib == "pythae":
                    t0 = time.perf_counter()
                    trainer.train_step(e)
                    t[lib] = time.perf_counter() - t0
                else:
                    run = Path(tmp) / lib
                    aezoo.train(models[lib], data, out=run, resume=e > 1, epochs=e, batch_size=128, lr=1e-3, seed=args.seed, device="cpu",
                                min_steps=0, progress=False, report=False, **opts[lib])
                    t[lib] = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["seconds"]
                cpu[lib] = time.process_time() - c0  # aezoo's includes its checkpoint load and save
            row = {"epoch": e, "order": order, "load": round(os.getloadavg()[0], 1), **{f"{k}_s": round(v, 2) for k, v in t.items()},
                   "speedup": round(t["pythae"] / t["aezoo"], 3), "cpu_speedup": round(cpu["pythae"] / cpu["aezoo"], 3),
                   "gflops": round(n / t["aezoo"] * STEP_FLOPS / 1e9, 1)}
            if "aezoo_fp32" in t:
                row["speedup_fp32"] = round(t["pythae"] / t["aezoo_fp32"], 3)
            rows.append(row)
            print(f"pair {e}: " + "  ".join(f"{k} {t[k]:6.2f} s" for k in names) + f"   speed-up {row['speedup']:.3f}x (CPU time {row['cpu_speedup']:.3f}x)"
                  f"{'; fp32 aezoo ' + str(row['speedup_fp32']) + 'x' if 'speedup_fp32' in row else ''}; aezoo {row['gflops']} GFLOP/s; load {row['load']}", flush=True)
    peaks.append({dt: measure_peak(dtype=dt, repeats=3) for dt in ("fp32", "bf16")})
    peak = {dt: max(pk[dt]["peak_gflops"] for pk in peaks) for dt in ("fp32", "bf16")}
    res: dict = {"pairs": rows, "amp": args.amp, "compile": args.compile, "threads": torch.get_num_threads(), "peaks": peaks, "peak": peak}
    warm = rows[1:] if len(rows) > 1 else rows  # the first pair holds aezoo's torch.compile warm-up
    res["speedup_median"] = statistics.median(r["speedup"] for r in rows)
    res["speedup_median_warm"] = statistics.median(r["speedup"] for r in warm)
    res["cpu_speedup_median_warm"] = statistics.median(r["cpu_speedup"] for r in warm)
    res["gflops_median_warm"] = statistics.median(r["gflops"] for r in warm)
    if args.fp32_reference:
        res["speedup_fp32_median_warm"] = statistics.median(r["speedup_fp32"] for r in warm)
    for m in models.values():
        m.eval()
    res["test_neg_elbo"] = {k: round(aezoo.evaluate(m, data, "test", iw_samples=0)["neg_elbo"] if k != "pythae" else pythae_test_neg_elbo(m, data.test.x, args.seed), 3)
                            for k, m in models.items()}
    print(f"matmul peaks after: fp32 {peaks[1]['fp32']['peak_gflops']}, bf16 {peaks[1]['bf16']['peak_gflops']} GFLOP/s", flush=True)
    print(f"paired speed-up (median of per-pair ratios): {res['speedup_median']:.3f}x all pairs, {res['speedup_median_warm']:.3f}x without the first"
          f"{'; aezoo fp32 eager ' + str(res['speedup_fp32_median_warm']) + 'x' if args.fp32_reference else ''}", flush=True)
    g = res["gflops_median_warm"]
    print(f"aezoo {g} GFLOP/s (median, warm) = {100 * g / peak['fp32']:.1f}% of the fp32 peak {peak['fp32']}, {100 * g / peak['bf16']:.1f}% of the bf16 peak {peak['bf16']}", flush=True)
    print(f"test negative ELBO after {args.pairs} epochs: {res['test_neg_elbo']}", flush=True)

    if args.nll_images:
        # get_nll on a pythae copy of aezoo's trained model: the same -log p(x), two estimators
        ours = models["aezoo"]
        theirs = pythae_copy_of(ours, data.input_shape)
        k, rounds = args.iw_samples, []
        for r in range(args.nll_rounds):
            x = data.test.x[r * args.nll_images:(r + 1) * args.nll_images]
            row, est = {"images": len(x)}, {}
            runs = {"pythae": lambda: -theirs.get_nll(x, n_samples=k, batch_size=100),
                    "aezoo": lambda: float(nll_iw(ours, x, k=k, batch_size=64).mean()),
                    "aezoo_fp32": lambda: float(nll_iw(ours, x, k=k, batch_size=64, bf16=False).mean())}
            order = list(runs) if r % 2 == 0 else list(runs)[::-1]
            for name in order:
                with torch.no_grad():
                    torch.manual_seed(args.seed + r)
                    t0 = time.perf_counter()
                    est[name] = float(runs[name]())
                    row[f"{name}_s"] = round(time.perf_counter() - t0, 2)
            row.update({f"{name}_nll": round(v, 3) for name, v in est.items()})
            row["speedup"] = round(row["pythae_s"] / row["aezoo_s"], 2)
            row["speedup_fp32"] = round(row["pythae_s"] / row["aezoo_fp32_s"], 2)
            row["load"] = round(os.getloadavg()[0], 1)
            rounds.append(row)
            print(f"nll_iw K={k}, test images {r * args.nll_images}-{(r + 1) * args.nll_images - 1}: pythae get_nll {row['pythae_s']} s, "
                  f"aezoo {row['aezoo_s']} s ({row['speedup']}x; fp32 {row['aezoo_fp32_s']} s, {row['speedup_fp32']}x); "
                  f"nll pythae {est['pythae']:.3f}, aezoo {est['aezoo']:.3f}, aezoo fp32 {est['aezoo_fp32']:.3f}; load {row['load']}", flush=True)
        res["nll_iw"] = {"K": k, "rounds": rounds, "speedup_median": statistics.median(r["speedup"] for r in rounds),
                         "pythae_s_per_1000": round(1000 * sum(r["pythae_s"] for r in rounds) / sum(r["images"] for r in rounds), 1),
                         "aezoo_s_per_1000": round(1000 * sum(r["aezoo_s"] for r in rounds) / sum(r["images"] for r in rounds), 1)}
        print(f"nll_iw: {res['nll_iw']['speedup_median']}x pythae (median of rounds); {res['nll_iw']['aezoo_s_per_1000']} s vs "
              f"{res['nll_iw']['pythae_s_per_1000']} s per 1,000 images", flush=True)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
