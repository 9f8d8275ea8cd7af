"""Anomaly scores: one number per example, higher = less like the training data (issue 18).

Kinds (a member declares the ones it offers in ``score_kinds``, its default first):

- ``recon``: the reconstruction's mean squared error over the features, in the model's (scaled)
  units; its mean over a split is ``evaluate``'s ``recon_mse``. Every member has it.
- ``elbo``: the negative ELBO in nats, -E_q[log p(x|z)] + KL(q(z|x) || p(z)), one z sample (as
  ``evaluate``'s ``neg_elbo``, of which it is the per-example term); variational members.
- ``nll_iw``: -log p(x) estimated with K importance samples (Burda et al. 2016), the tighter bound.
- ``prior_nll``: for members with discrete codes, the negative log-likelihood in nats of the input's
  codes under the second-stage prior (``aezoo train-prior``); without a prior they score by ``recon``.

``anomaly_metrics`` (``aezoo eval RUN --anomaly LABEL,...``) treats the listed classes as anomalies
and reports, for every kind, the area under the ROC curve and the average precision (the area under
the precision-recall curve) of scikit-learn.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import ConfigError, DataError
from . import metric

KINDS = ("recon", "elbo", "nll_iw", "prior_nll")
COLUMN = {"recon": "recon_mse", "elbo": "neg_elbo", "nll_iw": "nll_iw", "prior_nll": "prior_nll"}


def score_kinds(model) -> list[str]:
    """The kinds ``model`` can score by now, its default first (``prior_nll`` needs a trained prior)."""
    from ..models.base import CodeGridModel

    kinds = list(model.score_kinds)
    if "prior_nll" in kinds and (not isinstance(model, CodeGridModel) or model.prior is None):
        kinds.remove("prior_nll")
    return kinds


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


@torch.no_grad()
def _recon(model, x, y, batch_size):
    out = []
    for s in _batches(x.shape[0], batch_size):
        x_hat = model.reconstruct(x[s], None if y is None else y[s])
        out.append((x_hat.reshape(x_hat.shape[0], -1).double() - x[s].reshape(x_hat.shape[0], -1).double()).pow(2).mean(1))
    return torch.cat(out)


@torch.no_grad()
def _neg_elbo(model, x, y, batch_size):
    # the draws of evaluate.likelihood.gaussian_latent_metrics, batch for batch: same seed, same numbers
    out = []
    for s in _batches(x.shape[0], batch_size):
        yy = None if y is None else y[s]
        q = model.posterior(x[s], yy)
        z = q.rsample(1)
        out.append((-model.log_likelihood(z, x[s], yy)[0] + q.kl()).double())
    return torch.cat(out)


@torch.no_grad()
def _prior_nll(model, x, batch_size):
    prior = model.prior.to(model.device).eval()
    out = []
    for s in _batches(x.shape[0], batch_size):
        flat = torch.cat([c.flatten(1) for c in model.code_grids(x[s])], 1)
        out.append(prior.nll(flat).double())
    return torch.cat(out)


@torch.no_grad()
def scores(model, x: torch.Tensor, y: torch.Tensor | None = None, by: str | None = None, *, iw_samples: int = 100,
           seed: int = 0, batch_size: int = 512) -> torch.Tensor:
    """(N,) float64 anomaly scores of ``x`` (in the model's scaled units) by ``by`` (default: the
    member's first kind), on a forked RNG seeded with ``seed``."""
    kinds = score_kinds(model)
    by = by or kinds[0]
    if by not in KINDS:
        raise ConfigError(f"--by must be one of {', '.join(KINDS)}, got {by!r}")
    if by not in kinds:
        hint = "; train a prior first: aezoo train-prior RUN" if by == "prior_nll" and "prior_nll" in model.score_kinds else ""
        raise ConfigError(f"model {model.name!r} cannot score by {by!r}: it offers {', '.join(kinds)}{hint}")
    if by == "nll_iw" and iw_samples < 1:
        raise ConfigError(f"nll_iw needs iw_samples >= 1, got {iw_samples}")
    model.eval()
    x = x.to(model.device)
    y = None if y is None else y.to(model.device)
    device = model.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        if by == "recon":
            return _recon(model, x, y, batch_size).cpu()
        if by == "elbo":
            return _neg_elbo(model, x, y, batch_size).cpu()
        if by == "nll_iw":
            from .likelihood import nll_iw

            bs = max(16, min(batch_size, (1 << 16) // max(1, iw_samples)))
            return nll_iw(model, x, y, iw_samples, bs).double().cpu()
        return _prior_nll(model, x, batch_size).cpu()


def auroc_auprc(s: torch.Tensor, is_anomaly: torch.Tensor) -> tuple[float, float]:
    """Area under the ROC curve and average precision of scores ``s`` against 0/1 ``is_anomaly``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    a = is_anomaly.cpu().numpy().astype(bool)
    v = s.cpu().double().numpy()
    if a.all() or not a.any():
        raise DataError("AUROC needs both normal and anomalous examples in the split")
    return float(roc_auc_score(a, v)), float(average_precision_score(a, v))


def anomaly_classes(spec, class_names: list[str] | None, num_classes: int | None) -> list[int]:
    """Class indices from ``"3,7"`` / ``"Bag,Sneaker"`` / a list of ints or names."""
    items = [t.strip() for t in spec.split(",")] if isinstance(spec, str) else list(spec)
    out = []
    for t in items:
        if isinstance(t, int) or (isinstance(t, str) and t.lstrip("-").isdigit() and not (class_names and t in class_names)):
            c = int(t)
        elif class_names and t in class_names:
            c = class_names.index(t)
        else:
            known = f"classes are {class_names}" if class_names else f"labels are 0..{(num_classes or 1) - 1}"
            raise DataError(f"--anomaly: no class {t!r}; {known}")
        if num_classes is not None and not 0 <= c < num_classes:
            raise DataError(f"--anomaly: label {c} is out of range 0..{num_classes - 1}")
        out.append(c)
    if not out:
        raise DataError("--anomaly: name at least one label")
    return out


@metric("anomaly")
def anomaly_metrics(model, data, split, x, y, anomaly=None, anomaly_iw_samples: int = 100, **_: Any) -> dict[str, Any] | None:
    """With ``anomaly`` (labels treated as anomalies): ``auroc_<kind>`` and ``auprc_<kind>`` for every
    score kind of the model, and the split's numbers of normal and anomalous examples."""
    if anomaly is None:
        return None
    if y is None:
        raise DataError(f"--anomaly needs labels, but dataset {data.name!r} has none")
    classes = anomaly_classes(anomaly, data.class_names, data.num_classes)
    is_anomaly = torch.isin(y.cpu(), torch.tensor(classes))
    out: dict[str, Any] = {"anomaly_labels": classes, "n_normal": int((~is_anomaly).sum()), "n_anomalous": int(is_anomaly.sum())}
    for kind in score_kinds(model):
        if kind == "nll_iw" and anomaly_iw_samples < 1:
            continue
        s = scores(model, x, y, kind, iw_samples=anomaly_iw_samples)
        if not torch.isfinite(s).all():
            out[f"auroc_{kind}"] = out[f"auprc_{kind}"] = math.nan
            continue
        out[f"auroc_{kind}"], out[f"auprc_{kind}"] = auroc_auprc(s, is_anomaly)
    return out


# --- scoring a run: the Python API (``aezoo.score``) and what ``aezoo score`` writes -------------------
SCORES_FILE = "scores.npz"  # in the run folder: the last scoring, for the report's section
N_EXAMPLES = 8  # most and least anomalous examples kept for the report


class Scores:
    """Per-example scores of one split: ``values`` (N,) float64, ``index`` (N,) each example's row in its
    source, ``labels`` (N,) or None; ``kind`` and ``column`` (the score's name, e.g. ``neg_elbo``)."""

    def __init__(self, kind, values, index, labels, class_names, split, x, sources=None):
        self.kind, self.column = kind, COLUMN[kind]
        self.values, self.index, self.labels = values, index, labels
        self.sources = sources  # each example's file (relative to the data's folder) or row (issue 23)
        self.class_names, self.split, self._x = class_names, split, x

    def __len__(self) -> int:
        return len(self.values)

    def csv(self) -> str:
        head = ["index"] + (["source"] if self.sources is not None else []) + (["label"] + (["class"] if self.class_names else []) if self.labels is not None else []) + [self.column]
        lines = [",".join(head)]
        for i in range(len(self.values)):
            row = [str(int(self.index[i]))] + ([_csv_cell(self.sources[i])] if self.sources is not None else [])
            if self.labels is not None:
                row.append(str(int(self.labels[i])))
                if self.class_names:
                    c = int(self.labels[i])
                    row.append(_csv_cell(self.class_names[c] if c < len(self.class_names) else str(c)))
            row.append(repr(float(self.values[i])))
            lines.append(",".join(row))
        return "\n".join(lines) + "\n"

    def for_report(self) -> dict[str, Any]:
        """What ``RUN/scores.npz`` holds: every score and label, and the inputs of the most and least anomalous."""
        import numpy as np

        order = np.argsort(-self.values, kind="stable")  # most anomalous first
        top, bottom = order[:N_EXAMPLES], order[::-1][:N_EXAMPLES]
        arrays = {"values": self.values, "index": self.index, "kind": np.array(self.kind), "split": np.array(self.split),
                  "top": top, "bottom": bottom, "x_top": self._x[top], "x_bottom": self._x[bottom]}
        if self.labels is not None:
            arrays["labels"] = self.labels
        return arrays


def _csv_cell(v: str) -> str:
    return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n') else v


def score_split(model, data, split: str = "test", by: str | None = None, *, iw_samples: int = 100, seed: int = 0) -> Scores:
    """Anomaly scores of ``split`` of ``data`` (``"all"``: every row, in source order) under ``model``."""
    import numpy as np

    part, sources = _all_rows(data) if split == "all" else (data.split(split), data.sources(split) if data.split(split) is not None else None)
    if part is None or len(part) == 0:
        raise DataError(f"dataset {data.name!r} has no {split!r} split")
    if tuple(part.x.shape[1:]) != tuple(model.config.input_shape):
        raise DataError(f"dataset {data.name!r} has inputs of shape {tuple(part.x.shape[1:])}; model {model.name!r} takes "
                        f"{tuple(model.config.input_shape)}")
    if model.needs_labels and part.y is None:
        raise DataError(f"model {model.name!r} needs labels, but dataset {data.name!r} has none")
    values = scores(model, part.x, part.y, by, iw_samples=iw_samples, seed=seed).numpy()
    index = part.index.numpy() if part.index is not None else np.arange(len(part))
    labels = None if part.y is None else part.y.numpy()
    return Scores(by or score_kinds(model)[0], values, index, labels, data.class_names, split, part.x.numpy(), sources)


def _all_rows(data):
    """Every example once, in source order (new data scored as a whole); a test split of its own
    comes after the training array's rows, its index counted on from theirs."""
    from ..data.core import Split

    parts = [p for p in (data.train, data.val, data.test if data.preprocessing.get("test_split") != "val" else None) if p is not None]
    given = data.preprocessing.get("test_split") == "given"
    offset = len(data.train) + (len(data.val) if data.val is not None else 0)
    index = torch.cat([p.index + (offset if given and p is data.test else 0) for p in parts])
    order = index.argsort()
    cat = lambda ts: None if any(t is None for t in ts) else torch.cat(ts)[order]  # noqa: E731
    names = {"train": data.train, "val": data.val, "test": data.test}
    sources = [s for n, p in names.items() if any(p is q for q in parts) and not (n == "test" and p is data.val) for s in data.sources(n)]
    return Split(torch.cat([p.x for p in parts])[order], cat([p.y for p in parts]), None, index[order]), [sources[i] for i in order.tolist()]
