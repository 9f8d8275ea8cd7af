"""Class fidelity of a conditional generative model, judged by an independent classifier.

A conditional model (Sohn, Lee & Yan 2015) should draw the class it is asked for. To measure that
without trusting the model itself, a judge is trained on the real training inputs only, by a fixed
recipe (``JUDGE_STEPS`` Adam steps of 128, its own seed ``JUDGE_SEED``, never the run's), with an
architecture no member uses (issue 24: the former judge was the members' own strided ConvEncoder and
agreed with their samples more than an outside CNN did, 88.6% against 76.8%): for images, two blocks
of 3x3 convolution, ReLU and 2x2 max-pooling (32 and 64 channels), dropout and a hidden layer of 128;
otherwise an MLP with one hidden layer of 256. Its accuracy on the real inputs of the evaluated split
is reported (``fidelity_classifier_acc``: the ceiling of what it can judge), ``class_fidelity`` is the
share of the model's samples, ``per_class`` for every class, that it puts in the asked class, and
``class_fidelity_share`` their ratio: fidelity as a share of what the judge gets right on real data.
``class_diversity`` guards the other side: a model that draws one image per class (its class mean)
scores a high fidelity, so the samples' spread within each class is reported against the real data's.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..models.base import ConditionalModel
from . import metric

CLASSIFIER_STEPS = 1500  # training steps of the judge (batch 128)
JUDGE_SEED = 24_0517  # the judge's own seed: the same judge for every run, whatever the run's seed
PER_CLASS = 100  # samples drawn per class


def make_classifier(input_shape, num_classes: int) -> nn.Module:
    """The judge: a max-pooling CNN (two 3x3 conv + ReLU + 2x2 max-pool blocks of 32 and 64 channels,
    dropout 0.25, a hidden layer of 128) for images of at least 8x8; an MLP with one hidden layer of 256
    otherwise. No member's network pools or drops out, so the judge does not share their biases."""
    if len(input_shape) == 3 and min(input_shape[1:]) >= 8:
        c, h, w = input_shape
        return nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * (h // 4) * (w // 4), 128), nn.ReLU(), nn.Linear(128, num_classes))
    d = 1
    for n in input_shape:
        d *= n
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, num_classes))


def train_classifier(x: torch.Tensor, y: torch.Tensor, num_classes: int, steps: int = CLASSIFIER_STEPS, batch_size: int = 128,
                     lr: float = 1e-3, seed: int = JUDGE_SEED) -> nn.Module:
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


def spread(x: torch.Tensor, y: torch.Tensor, num_classes: int, per_class: int = PER_CLASS) -> torch.Tensor:
    """The root mean squared distance of each class's items to their class mean, per class (K,):
    how much the items of one class differ from each other (the first ``per_class`` of each)."""
    out = []
    for c in range(num_classes):
        xc = x[y == c][:per_class].flatten(1).float()
        out.append((xc - xc.mean(0)).pow(2).sum(1).mean().sqrt() if len(xc) > 1 else xc.new_tensor(float("nan")))
    return torch.stack(out)


@torch.no_grad()
def class_diversity(model, x: torch.Tensor, y: torch.Tensor, num_classes: int, per_class: int = PER_CLASS, seed: int = 0) -> float:
    """The spread of the model's samples of each class over the spread of that class's real inputs
    (``spread``), averaged over classes: near 1 when the samples vary as much as the data, near 0 when
    every draw of a class is the same image. Fidelity alone cannot see that collapse (issue 24: Sohn et
    al.'s hybrid objective at alpha = 0.5 drew class means, 96% of the judge's accuracy)."""
    dev = model.device
    yc = torch.arange(num_classes, device=dev).repeat_interleave(per_class)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        xs = torch.cat([model.sample(len(c), c) for c in yc.split(1000)])
    ratio = spread(xs, yc, num_classes, per_class) / spread(x, y, num_classes, per_class).clamp_min(1e-12)
    return float(ratio.nanmean())


@metric("class_fidelity")
def fidelity(model, data, split, x, y, seed: int = 0, classifier_steps: int = CLASSIFIER_STEPS, **_: Any):
    """For conditional generative models on labelled data: ``class_fidelity`` (and per class), the
    judge's own accuracy on this split's real inputs, ``fidelity_classifier_acc``, and the first as a
    share of the second, ``class_fidelity_share``."""
    train = data.train
    if not (model.generative and isinstance(model, ConditionalModel)) or y is None or train.y is None or classifier_steps <= 0:
        return None
    k = model.num_classes
    dev = model.device
    clf = train_classifier(train.x.to(dev), train.y.to(dev), k, classifier_steps)  # JUDGE_SEED, not the run's seed
    acc = float((predict(clf, x) == y).float().mean())
    share, per_class = class_fidelity(model, clf, k, seed=seed)
    return {"class_fidelity": share, "class_fidelity_per_class": per_class, "fidelity_classifier_acc": acc,
            "class_fidelity_share": share / acc if acc > 0 else float("nan"), "class_diversity": class_diversity(model, x, y, k, seed=seed)}
