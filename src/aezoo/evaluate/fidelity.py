"""Class fidelity of a conditional generative model, judged by an independent classifier.

A conditional model (Sohn, Lee & Yan 2015) should draw the class it is asked for. To measure that
without trusting the model itself, a small classifier is trained on the real training inputs (a CNN
of two stride-2 convolutions for images, an MLP otherwise), its accuracy on the real test inputs is
reported (``fidelity_classifier_acc``: the ceiling of what it can judge), and ``class_fidelity`` is
the share of the model's samples, ``per_class`` for every class, that it puts in the asked class.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..models.base import ConditionalModel
from ..nn.nets import ConvEncoder, MLPEncoder
from . import metric

CLASSIFIER_STEPS = 1500  # training steps of the judge (batch 128): 88% on the Fashion-MNIST test set
PER_CLASS = 100  # samples drawn per class


def make_classifier(input_shape, num_classes: int) -> nn.Module:
    """A CNN (32 and 64 channels, stride 2, then a linear layer) for images of at least 8x8, an MLP
    with one hidden layer of 256 otherwise."""
    if len(input_shape) == 3 and min(input_shape[1:]) >= 8:
        return ConvEncoder(input_shape, num_classes, channels=(32, 64))
    return MLPEncoder(input_shape, num_classes, hidden=(256,))


def train_classifier(x: torch.Tensor, y: torch.Tensor, num_classes: int, steps: int = CLASSIFIER_STEPS, batch_size: int = 128,
                     lr: float = 1e-3, seed: int = 0) -> nn.Module:
    """Fit ``make_classifier`` on (x, y) with Adam; its own seeded RNG, so the caller's stream is untouched."""
    dev = x.device
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), torch.enable_grad():  # evaluation runs under no_grad
        torch.manual_seed(seed)
        clf = make_classifier(tuple(x.shape[1:]), num_classes).to(dev)
        opt = torch.optim.Adam(clf.parameters(), lr=lr)
        g = torch.Generator(device="cpu").manual_seed(seed)
        clf.train()
        for _ in range(steps):
            idx = torch.randint(x.shape[0], (min(batch_size, x.shape[0]),), generator=g).to(dev)
            loss = F.cross_entropy(clf(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return clf.eval()


@torch.no_grad()
def predict(clf: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    return torch.cat([clf(x[i : i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)])


@torch.no_grad()
def class_fidelity(model, clf: nn.Module, num_classes: int, per_class: int = PER_CLASS, seed: int = 0) -> tuple[float, list[float]]:
    """(share of all samples in the asked class, the share per class) for ``per_class`` draws of each class."""
    dev = model.device
    y = torch.arange(num_classes, device=dev).repeat_interleave(per_class)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        x = torch.cat([model.sample(len(c), c) for c in y.split(1000)])
    hit = (predict(clf, x.clamp(0, 1).view(len(y), *model.config.input_shape)) == y).float()
    return float(hit.mean()), hit.view(num_classes, per_class).mean(1).tolist()


@metric("class_fidelity")
def fidelity(model, data, split, x, y, seed: int = 0, classifier_steps: int = CLASSIFIER_STEPS, **_: Any):
    """For conditional generative models on labelled data: ``class_fidelity`` (and per class) and the
    judge's own accuracy on this split's real inputs, ``fidelity_classifier_acc``."""
    train = data.train
    if not (model.generative and isinstance(model, ConditionalModel)) or y is None or train.y is None or classifier_steps <= 0:
        return None
    k = model.num_classes
    dev = model.device
    clf = train_classifier(train.x.to(dev), train.y.to(dev), k, classifier_steps, seed=seed)
    acc = float((predict(clf, x) == y).float().mean())
    share, per_class = class_fidelity(model, clf, k, seed=seed)
    return {"class_fidelity": share, "class_fidelity_per_class": per_class, "fidelity_classifier_acc": acc}
