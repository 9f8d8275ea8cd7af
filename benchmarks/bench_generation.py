"""Every generator measured as a generator (issue 26): Frechet distance, precision/recall and
density/coverage of 2,000 samples against 2,000 Fashion-MNIST test images, all in ONE feature net
(``aezoo.evaluate.features``: the classifier aezoo fits on the training split, cached and hashed;
its hash is printed with the table), beside pythae's VAE trained the same steps (paired).

Each aezoo member is trained as the CLI builds it (``aezoo train KEY --data fashion-mnist --steps S``,
in this process); the code-grid members then get ``aezoo train-prior --steps P``. Sequence members
(TD-VAE) model sequences, not Fashion-MNIST images, and are left out. pythae: ``pythae.models.VAE``
with the same MLP as aezoo's VAE (``bench_vs_pythae.make_pythae``), its BaseTrainer, the same batch
(128), Adam and learning rate, for the same number of steps (whole epochs of its DataLoader).

    python benchmarks/bench_generation.py --steps 2000 --prior-steps 2000 --json benchmarks/generation.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

import aezoo
from aezoo.cli import main as cli
from aezoo.evaluate.features import dataset_features
from aezoo.evaluate.generation import compare_features, generation_metrics
from aezoo.models.base import CodeGridModel, SequenceModel
from aezoo.registry import get, list_models

sys.path.insert(0, str(Path(__file__).resolve().parent))


def run_aezoo(key: str, data_spec: str, steps: int, prior_steps: int, root: Path, extra: list[str]) -> Path:
    out = root / "-".join([key, *[e.replace("=", "").replace("-", "") for e in extra]])
    t0 = time.perf_counter()
    assert cli(["train", key, "--data", data_spec, "--steps", str(steps), "--out", str(out), "--quiet", "--no-report", *extra]) == 0
    if issubclass(get(key), CodeGridModel):
        assert cli(["train-prior", str(out), "--steps", str(prior_steps), "--quiet", "--no-report"]) == 0
    print(f"  {out.name}: trained in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return out


def pythae_vae_samples(data, steps: int, n: int, latent_dim: int, seed: int = 0) -> torch.Tensor:
    from bench_vs_pythae import make_pythae, make_pythae_trainer

    x = data.train.x[:]
    model = make_pythae(tuple(data.input_shape), latent_dim, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_pythae_trainer(model, x, data.train.y, Path(tmp), lr=1e-3, batch_size=128)
        per_epoch = math.ceil(len(x) / 128)
        for epoch in range(max(1, round(steps / per_epoch))):
            trainer.train_step(epoch + 1)
    model.eval()
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)
        return model.decoder(torch.randn(n, latent_dim)).reconstruction.clamp(0, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--prior-steps", type=int, default=2000)
    p.add_argument("-n", type=int, default=2000, help="samples (and real test images) per generator")
    p.add_argument("--latent-sizes", default="2,5,10,20", help="the VAE at these latent sizes too")
    p.add_argument("--pythae", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--only", default="", help="comma-separated member keys (default: every generator)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    data = aezoo.data.load(args.data)
    t0 = time.perf_counter()
    feats = dataset_features(data)
    print(f"feature net {feats.name} sha256 {feats.hash[:16]} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
    keys = [k for k in list_models() if get(k).generative and not issubclass(get(k), SequenceModel)]
    if args.only:
        keys = [k for k in keys if k in args.only.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        jobs = [(k, []) for k in keys] + [("vae", ["--latent-dim", s]) for s in args.latent_sizes.split(",") if s and "vae" in keys]
        for key, extra in jobs:
            run = run_aezoo(key, args.data, args.steps, args.prior_steps, root, extra)
            model = aezoo.load(run)
            m = generation_metrics(model, data, "test", n=args.n, features=feats)
            rows.append({"library": "aezoo", "model": key, "latent": getattr(model.config, "latent_dim", None),
                         **{k[4:]: m[k] for k in ("gen_fd", "gen_precision", "gen_recall", "gen_density", "gen_coverage")}})
            print(json.dumps(rows[-1]), file=sys.stderr)
        if args.pythae and "vae" in keys:
            latent = aezoo.load(root / "vae").config.latent_dim
            fake = pythae_vae_samples(data, args.steps, args.n, latent)
            idx = torch.randperm(len(data.test.x), generator=torch.Generator().manual_seed(0))[: args.n]
            m = compare_features(feats(data.test.x[idx]), feats(fake))
            rows.append({"library": "pythae", "model": "vae", "latent": latent, **m})
            print(json.dumps(rows[-1]), file=sys.stderr)
    print(f"| library | model | latent | FD | precision | recall | density | coverage |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['library']} | {r['model']} | {r['latent']} | {r['fd']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['density']:.3f} | {r['coverage']:.3f} |")
    print(f"\nfeatures: {feats.name}, sha256 {feats.hash[:16]}; {args.steps} steps each (priors {args.prior_steps}); {args.n} samples vs {args.n} test images")
    if args.json:
        args.json.write_text(json.dumps({"features_hash": feats.hash, "steps": args.steps, "prior_steps": args.prior_steps, "n": args.n, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
