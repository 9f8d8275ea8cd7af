"""aezoo against pythae (Chadebec et al. 2022, "Pythae: Unifying Generative Autoencoders in Python",
arXiv:2206.08309) on the same VAE-MLP, data, loss, batch size and optimizer.

This machine's speed drifts by 25-30% on its own (and other jobs share its two cores), so one epoch of
each library alternates in the same process, and the figure reported is the median over pairs of
(pythae epoch time / aezoo epoch time). Each library trains its own model from its own start; the
order inside a pair alternates too, so neither always runs first.

- aezoo: ``aezoo.train`` one epoch per call, resuming its run folder (the public API; the epoch time
  is the one the trainer logs in metrics.jsonl, which excludes checkpoint writing).
- pythae: ``pythae.models.VAE`` with custom encoder/decoder of the same sizes (sigmoid output, its
  ``reconstruction_loss="bce"``: BCE summed over pixels, the same analytic KL, averaged over the
  batch), trained by its ``BaseTrainer.train_step`` (its DataLoader, Adam), progress bar off.

Then ``nll_iw``: pythae's ``get_nll`` (one image at a time, K samples in batches of 100) against
aezoo's batched ``nll_iw`` on the same test images and K.

    python benchmarks/bench_vs_pythae.py --pairs 4 --nll-images 200 --iw-samples 1000
"""
from __future__ import annotations

import argparse
import json
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
    p.add_argument("--pairs", type=int, default=4, help="epochs of each library, alternating")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True, help="aezoo's compiled training step")
    p.add_argument("--nll-images", type=int, default=200, help="test images for the get_nll / nll_iw timing (0: skip)")
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
    print(f"torch {torch.__version__}, pythae {version('pythae')}, {torch.get_num_threads()} threads; {n} training images, batch 128, Adam 1e-3", flush=True)
    ours = aezoo.create("vae", input_shape=data.input_shape, latent_dim=16, hidden=(512, 256), likelihood="bernoulli")
    theirs = make_pythae(data.input_shape, 16, args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "aezoo"
        trainer = make_pythae_trainer(theirs, data.train.x, data.train.y, Path(tmp) / "pythae", 1e-3, 128)
        torch.manual_seed(args.seed)
        for e in range(1, args.pairs + 1):
            t, cpu = {}, {}
            order = ("aezoo", "pythae") if e % 2 else ("pythae", "aezoo")
            for lib in order:
                c0 = time.process_time()
                if lib == "aezoo":
                    aezoo.train(ours, data, out=run, resume=e > 1, epochs=e, batch_size=128, lr=1e-3, seed=args.seed, device="cpu", compile=args.compile, progress=False, report=False)
                    rec = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
                    t["aezoo"] = rec["seconds"]
                else:
                    t0 = time.perf_counter()
                    trainer.train_step(e)
                    t["pythae"] = time.perf_counter() - t0
                cpu[lib] = time.process_time() - c0  # aezoo's includes its checkpoint load and save
            row = {"epoch": e, "aezoo_s": round(t["aezoo"], 2), "pythae_s": round(t["pythae"], 2), "speedup": round(t["pythae"] / t["aezoo"], 3), "cpu_speedup": round(cpu["pythae"] / cpu["aezoo"], 3)}
            rows.append(row)
            print(f"pair {e}: aezoo {row['aezoo_s']:6.2f} s ({n / t['aezoo']:7.0f} img/s, {n / t['aezoo'] * STEP_FLOPS / 1e9:5.1f} GFLOP/s)   pythae {row['pythae_s']:6.2f} s ({n / t['pythae']:7.0f} img/s)   speed-up {row['speedup']:.3f}x (CPU time {row['cpu_speedup']:.3f}x)", flush=True)
    ours.eval()
    res: dict = {"pairs": rows, "compile": args.compile}
    # the first pair holds aezoo's torch.compile warm-up; report with and without it
    res["speedup_median"] = statistics.median(r["speedup"] for r in rows)
    res["speedup_median_warm"] = statistics.median(r["speedup"] for r in rows[1:]) if len(rows) > 1 else None
    res["cpu_speedup_median_warm"] = statistics.median(r["cpu_speedup"] for r in rows[1:]) if len(rows) > 1 else None
    res["test_neg_elbo"] = {"aezoo": round(aezoo.evaluate(ours, data, "test", iw_samples=0)["neg_elbo"], 3), "pythae": round(pythae_test_neg_elbo(theirs, data.test.x, args.seed), 3)}
    print(f"paired speed-up (median of per-pair ratios): {res['speedup_median']:.3f}x all pairs, {res['speedup_median_warm']}x without the first", flush=True)
    print(f"test negative ELBO after {args.pairs} epochs: {res['test_neg_elbo']}", flush=True)

    if args.nll_images:
        x = data.test.x[: args.nll_images]
        k = args.iw_samples
        theirs.eval()
        with torch.no_grad():
            torch.manual_seed(args.seed)
            t0 = time.perf_counter()
            their_nll = -theirs.get_nll(x, n_samples=k, batch_size=100)
            t_theirs = time.perf_counter() - t0
            torch.manual_seed(args.seed)
            t0 = time.perf_counter()
            our_nll = float(nll_iw(ours, x, k=k, batch_size=64).mean())
            t_ours = time.perf_counter() - t0
        res["nll_iw"] = {"images": len(x), "K": k, "pythae_s": round(t_theirs, 2), "aezoo_s": round(t_ours, 2), "pythae_nll": round(float(their_nll), 2), "aezoo_nll": round(our_nll, 2), "pythae_s_per_1000": round(1000 * t_theirs / len(x), 1), "aezoo_s_per_1000": round(1000 * t_ours / len(x), 1)}
        print(f"nll_iw, K={k}, {len(x)} test images: pythae get_nll {t_theirs:.1f} s ({res['nll_iw']['pythae_s_per_1000']} s per 1000 images), aezoo {t_ours:.1f} s ({res['nll_iw']['aezoo_s_per_1000']} s per 1000); nll {their_nll:.2f} vs {our_nll:.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
