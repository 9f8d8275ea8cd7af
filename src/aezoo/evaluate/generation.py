"""Generation measured as generation (issue 26): N samples against the real test inputs, in a feature space.

- Frechet distance (Heusel et al. 2017, arXiv 1706.08500): ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)),
  in float64, with tr((S_r S_g)^(1/2)) = sum of the square roots of the eigenvalues of S_r^(1/2) S_g S_r^(1/2)
  (symmetric, so ``eigh``; no complex parts to throw away as scipy's sqrtm leaves).
- Precision and recall (Kynkaanniemi et al. 2019, arXiv 1904.06991): each set's manifold is the union of
  balls around its points with the distance to their k-th nearest neighbour (k = 3). Precision is the share
  of *samples* inside the real manifold (are samples realistic?), recall the share of *real* inputs inside
  the samples' manifold (is the data covered?). A mode-collapsed generator: high precision, low recall.
- Density and coverage (Naeem et al. 2020, arXiv 2002.09797, k = 5): density counts how many real balls
  hold each sample, divided by k (about 1 for matching sets, above 1 where samples crowd dense regions);
  coverage is the share of real balls holding at least one sample.

Balls are closed (distance <= radius), so identical sets give precision = recall = coverage = 1; the
reference prdc code's strict ``<`` gives 0 for a real point duplicated k times (prdc #7).

The ``generation`` metric runs when ``evaluate(..., generation=N)`` asks for it, for every model that
declares ``generative``; a code-grid model without its prior says so in one line. Conditional models
draw each sample for a label taken from the real split, so both sets hold the classes alike, and are
also scored class by class.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import NotSupportedError
from ..models.base import ConditionalModel
from . import metric
from .features import FeatureNet, dataset_features

K_PR = 3  # Kynkaanniemi et al.'s k
K_DC = 5  # Naeem et al.'s k
DEFAULT_N = 2000


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two (N, D) feature sets."""
    real, fake = real.double(), fake.double()
    mu_r, mu_g = real.mean(0), fake.mean(0)
    s_r, s_g = torch.cov(real.T).reshape(real.shape[1], -1), torch.cov(fake.T).reshape(fake.shape[1], -1)
    w, v = torch.linalg.eigh(s_r)
    root_r = (v * w.clamp_min(0).sqrt()) @ v.T  # S_r^(1/2)
    m = root_r @ s_g @ root_r
    tr_cross = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    fd = (mu_r - mu_g).pow(2).sum() + s_r.trace() + s_g.trace() - 2 * tr_cross
    return max(float(fd), 0.0)


def _kth_radius(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row (N,)."""
    k = min(k, x.shape[0] - 1)
    out = []
    for i in range(0, x.shape[0], chunk):
        d = torch.cdist(x[i : i + chunk], x)
        out.append(d.kthvalue(k + 1, dim=1).values)  # the 1st is the point itself (distance 0)
    return torch.cat(out)


def _in_balls(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """(P, C) bool: points[p] lies in the closed ball of centres[c]."""
    return torch.cat([torch.cdist(points[i : i + chunk], centres) <= radii for i in range(0, points.shape[0], chunk)])


def precision_recall_density_coverage(real: torch.Tensor, fake: torch.Tensor, k_pr: int = K_PR, k_dc: int = K_DC) -> dict[str, float]:
    real, fake = real.double(), fake.double()
    r_real_pr, r_fake_pr = _kth_radius(real, k_pr), _kth_radius(fake, k_pr)
    precision = float(_in_balls(fake, real, r_real_pr).any(1).double().mean())
    recall = float(_in_balls(real, fake, r_fake_pr).any(1).double().mean())
    hits = _in_balls(fake, real, _kth_radius(real, k_dc))  # (M, N)
    density = float(hits.double().sum() / (k_dc * fake.shape[0]))
    coverage = float(hits.any(0).double().mean())
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def compare_features(real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """Every generation metric of two (N, D) feature sets."""
    return {"fd": frechet_distance(real, fake), **precision_recall_density_coverage(real, fake)}


@torch.no_grad()
def draw(model, n: int, y: torch.Tensor | None = None, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """n samples (for labels y, where the model is conditional), clamped to the data's range for images."""
    dev = model.device
    out = []
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        for i in range(0, n, batch_size):
            m = min(batch_size, n - i)
            yy = None if y is None else y[i : i + m].to(dev)
            out.append(model.sample(m, yy).detach().float().cpu())
    return torch.cat(out).view(n, *model.config.input_shape)


def generation_metrics(model, data, split: str = "test", n: int = DEFAULT_N, features: FeatureNet | None = None, seed: int = 0) -> dict[str, Any]:
    """``gen_fd``, ``gen_precision``, ``gen_recall``, ``gen_density``, ``gen_coverage`` of n samples against
    (up to) n real inputs of ``split``, with ``gen_features`` (the extractor) and ``gen_features_hash``;
    ``gen_per_class`` for a conditional model."""
    if not model.generative:
        raise NotSupportedError(f"model {model.name!r} is not generative: there are no samples to measure")
    part = data.split(split)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(part.x.shape[0], generator=g)[: min(n, part.x.shape[0])]
    x_real = part.x[idx]
    conditional = isinstance(model, ConditionalModel)
    y_real = part.y[idx] if (part.y is not None) else None
    if conditional and y_real is None:
        raise NotSupportedError(f"model {model.name!r} is conditional: measuring its samples needs a labelled split")
    features = features or dataset_features(data)
    y_fake = None
    if conditional:  # the real split's labels, in its proportions
        y_fake = y_real[torch.randint(len(y_real), (n,), generator=g)]
    x_fake = draw(model, n, y_fake, seed=seed)
    if data.preprocessing.get("kind") == "images" or x_real.dim() == 4:
        x_fake = x_fake.clamp(0, 1)
    f_real, f_fake = features(x_real), features(x_fake)
    out: dict[str, Any] = {f"gen_{k}": v for k, v in compare_features(f_real, f_fake).items()}
    out.update(gen_n=n, gen_n_real=int(x_real.shape[0]), gen_features=features.name, gen_features_hash=features.hash[:16])
    if conditional:
        per = {}
        for c in y_real.unique().tolist():
            r, f = f_real[y_real == c], f_fake[y_fake == c]
            if min(len(r), len(f)) > K_DC + 1:
                m = compare_features(r, f)
                per[str(c)] = {k: round(v, 6) for k, v in m.items()}
        out["gen_per_class"] = per
        fds = [v["fd"] for v in per.values()]
        if fds:
            out["gen_fd_class_mean"] = float(sum(fds) / len(fds))
    return out


@metric("generation")
def generation(model, data, split, x, y, generation: int | bool = 0, generation_features: FeatureNet | None = None, seed: int = 0, **_: Any):
    """Runs when asked (``evaluate(..., generation=N)`` or ``True`` for the default N)."""
    if not generation:
        return None
    n = DEFAULT_N if generation is True else int(generation)
    if n < K_DC + 2 or not math.isfinite(n):
        raise NotSupportedError(f"--generation needs at least {K_DC + 2} samples, got {n}")
    return generation_metrics(model, data, split, n=n, features=generation_features, seed=seed)
