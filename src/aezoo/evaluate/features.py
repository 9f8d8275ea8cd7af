"""The feature space generation is measured in (issue 26).

Frechet distance, precision/recall and density/coverage compare samples with real inputs through a
feature network. ImageNet's Inception knows nothing of Fashion-MNIST, digits or a user's tables, and
needs weights this machine cannot download, so aezoo trains its own with a fixed recipe:

- labelled data: a classifier (a CNN for images, an MLP otherwise; ``fidelity.make_classifier``'s
  nets with a ``FEATURE_DIM`` penultimate layer) fitted on the *training* split with seed 0 and
  ``RECIPE``; the features are its penultimate activations;
- unlabelled data: the same net at its seeded random initialisation (random embeddings, which
  Naeem et al. 2020, Sec. 5, show rank generators as well as trained ones on unfamiliar data).

The net is cached on disk (safetensors + JSON, never pickled) under ``$AEZOO_CACHE`` (default
``~/.cache/aezoo``), keyed by the training split's content hash and the recipe, and every number it
gives is reported beside ``weights_hash`` of the net, so two numbers are comparable exactly when
their hashes agree. A user network (Inception with its weights, or anything else) is any
``nn.Module`` mapping inputs to (N, D) features: ``FeatureNet.from_module``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..utils import weights_hash

FEATURE_DIM = 128
# the recipe: bump ``version`` whenever anything here changes what the net computes
RECIPE = {"version": 1, "steps": 2000, "batch_size": 128, "lr": 1e-3, "seed": 0, "feature_dim": FEATURE_DIM}


class _Net(nn.Module):
    """body: inputs -> FEATURE_DIM features (ReLU); head: features -> class logits."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        from ..nn.nets import ConvEncoder, MLPEncoder

        if len(input_shape) == 3 and min(input_shape[1:]) >= 8:
            self.body = ConvEncoder(input_shape, FEATURE_DIM, channels=(32, 64))
        else:
            self.body = MLPEncoder(input_shape, FEATURE_DIM, hidden=(256,))
        self.head = nn.Linear(FEATURE_DIM, max(num_classes, 1))

    def forward(self, x):
        return F.relu(self.body(x))


@dataclass
class FeatureNet:
    """A frozen map from inputs to (N, D) features, with the hash that identifies it."""

    module: nn.Module
    name: str  # "aezoo-classifier", "aezoo-random" or "user"
    hash: str  # sha256 of its weights

    @classmethod
    def from_module(cls, module: nn.Module, name: str = "user") -> "FeatureNet":
        return cls(module.eval(), name, weights_hash(module))

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        dev = next(iter(self.module.parameters()), torch.empty(0)).device  # a parameter-free module runs on the CPU
        out = [self.module(x[i : i + batch_size].to(dev).float()).flatten(1).double().cpu() for i in range(0, x.shape[0], batch_size)]
        return torch.cat(out)


def cache_dir() -> Path:
    return Path(os.environ.get("AEZOO_CACHE") or Path.home() / ".cache" / "aezoo") / "features"


def data_key(x: torch.Tensor, y: torch.Tensor | None) -> str:
    """SHA-256 of the training inputs (as float32) and labels: the net is the same exactly when these are."""
    h = hashlib.sha256(json.dumps({"recipe": RECIPE, "shape": list(x.shape)}).encode())
    for i in range(0, x.shape[0], 4096):
        h.update(x[i : i + 4096].float().contiguous().numpy().tobytes())
    if y is not None:
        h.update(y.to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


def _fit(net: _Net, x: torch.Tensor, y: torch.Tensor) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=RECIPE["lr"])
    g = torch.Generator().manual_seed(RECIPE["seed"])
    net.train()
    with torch.enable_grad():  # evaluation runs under no_grad
        for _ in range(RECIPE["steps"]):
            idx = torch.randint(x.shape[0], (min(RECIPE["batch_size"], x.shape[0]),), generator=g)
            loss = F.cross_entropy(net.head(net(x[idx].float())), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()


def dataset_features(data, cache: bool = True) -> FeatureNet:
    """The feature net of ``data``'s training split: read from the cache, or fitted by ``RECIPE`` (on the
    CPU, so the same data gives the same net on any machine's run) and cached."""
    from safetensors.torch import load_file, save_file

    train = data.train
    labelled = train.y is not None and (data.num_classes or 0) >= 2
    key = data_key(train.x, train.y if labelled else None)
    kind = "aezoo-classifier" if labelled else "aezoo-random"
    path = cache_dir() / f"{key[:32]}.safetensors"
    with torch.random.fork_rng():
        torch.manual_seed(RECIPE["seed"])
        net = _Net(tuple(train.x.shape[1:]), data.num_classes if labelled else 1)
    if cache and path.is_file():
        try:
            net.load_state_dict(load_file(str(path)))
            return FeatureNet(net.eval(), kind, weights_hash(net))
        except Exception:  # a cut or stale cache file is refitted, never trusted
            pass
    if labelled:
        with torch.random.fork_rng():
            _fit(net, train.x, train.y)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp), metadata={"recipe": json.dumps(RECIPE), "kind": kind})
        os.replace(tmp, path)
    return FeatureNet(net.eval(), kind, weights_hash(net))
