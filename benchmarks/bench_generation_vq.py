"""pythae's VQ-VAE with its PixelCNN prior, measured in aezoo's feature net (issue 26), to pair with
``bench_generation.py``'s aezoo ``vq_vae`` + ``train-prior`` row at the same steps.

pythae 0.1.2: ``VQVAE`` with its Fashion/MNIST benchmark ResNets (``Encoder/Decoder_ResNet_VQVAE_MNIST``,
a 7x7 code grid like aezoo's conv VQ-VAE), K = 512 codes of D = 64 (aezoo's defaults), trained with its
``BaseTrainer`` (Adam, lr 1e-3, batch 128) for whole epochs nearest to ``--steps``; then its
``PixelCNNSampler`` (10 masked layers, kernel 5, pythae's defaults) fitted on the training codes for whole
epochs nearest to ``--prior-steps``. The feature net is ``aezoo.evaluate.features.dataset_features``:
the row is comparable with ``bench_generation.py``'s exactly when the printed hashes agree.

    PYTHONPATH=src:/path/to/pythae python benchmarks/bench_generation_vq.py --steps 2000 --prior-steps 2000
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
from aezoo.evaluate.features import dataset_features
from aezoo.evaluate.generation import compare_features

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pythae_vqvae_samples(data, steps: int, prior_steps: int, n: int, seed: int = 0) -> torch.Tensor:
    from bench_vs_pythae import make_pythae_trainer
    from pythae.models import VQVAE, VQVAEConfig
    from pythae.models.nn.benchmarks.mnist import Decoder_ResNet_VQVAE_MNIST, Encoder_ResNet_VQVAE_MNIST
    from pythae.samplers import PixelCNNSampler, PixelCNNSamplerConfig
    from pythae.trainers import BaseTrainerConfig

    x = data.train.x[:]
    per_epoch = math.ceil(len(x) / 128)
    torch.manual_seed(seed)
    cfg = VQVAEConfig(input_dim=tuple(data.input_shape), latent_dim=64, num_embeddings=512)
    model = VQVAE(cfg, encoder=Encoder_ResNet_VQVAE_MNIST(cfg), decoder=Decoder_ResNet_VQVAE_MNIST(cfg))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_pythae_trainer(model, x, data.train.y, Path(tmp), lr=1e-3, batch_size=128)
        for epoch in range(max(1, round(steps / per_epoch))):
            trainer.train_step(epoch + 1)
        print(f"  pythae vq-vae: {max(1, round(steps / per_epoch)) * per_epoch} steps in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        model.eval()
        t0 = time.perf_counter()
        sampler = PixelCNNSampler(model, PixelCNNSamplerConfig())
        epochs = max(1, round(prior_steps / per_epoch))
        tcfg = BaseTrainerConfig(output_dir=str(Path(tmp) / "prior"), per_device_train_batch_size=128, learning_rate=1e-3,
                                 num_epochs=epochs, no_cuda=True, steps_saving=None)
        sampler.fit(x, training_config=tcfg)
        print(f"  pythae pixelcnn: {epochs * per_epoch} steps in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)
        return sampler.sample(num_samples=n, batch_size=500).clamp(0, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--prior-steps", type=int, default=2000)
    p.add_argument("-n", type=int, default=2000, help="samples (and real test images)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    data = aezoo.data.load(args.data)
    feats = dataset_features(data)
    fake = pythae_vqvae_samples(data, args.steps, args.prior_steps, args.n)
    idx = torch.randperm(len(data.test.x), generator=torch.Generator().manual_seed(0))[: args.n]  # bench_generation's real set
    row = {"library": "pythae", "model": "vq_vae+pixelcnn", "latent": 64, **compare_features(feats(data.test.x[idx]), feats(fake))}
    print(json.dumps(row))
    print(f"features: {feats.name}, sha256 {feats.hash[:16]}; {args.steps} steps (prior {args.prior_steps}); {args.n} samples vs {args.n} test images")
    if args.json:
        args.json.write_text(json.dumps({"features_hash": feats.hash, "steps": args.steps, "prior_steps": args.prior_steps, "n": args.n, "rows": [row]}, indent=1))


if __name__ == "__main__":
    main()
