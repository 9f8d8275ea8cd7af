"""Disentanglement metrics for data with ground-truth factors (``Split.factors``, integer values).

- MIG, Chen, Li, Grosse & Duvenaud 2018, "Isolating Sources of Disentanglement in VAEs",
  arXiv:1802.04942: (1/K) sum_k (I(z_j(k); v_k) - I(z_j'; v_k)) / H(v_k), the gap between the two
  code dimensions most informative about factor k, codes discretised into 20 bins.
- beta-VAE score, Higgins et al. 2017 (ICLR), sec. 3: a linear classifier predicts which factor was
  held fixed from mean_l |z(x1_l) - z(x2_l)| over L pairs that share that factor; its test accuracy.
- FactorVAE score, Kim & Mnih 2018, "Disentangling by Factorising", arXiv:1802.05983, sec. 4: codes
  scaled by their standard deviation over the data; in a batch with factor k fixed, the dimension of
  least variance votes for k; the accuracy of the majority-vote classifier.

The last two need inputs in which one factor is held fixed. A ``FactorSampler`` draws them: it renders
new inputs where the dataset can (``Dataset.render``, generated data such as ``dsprites``) and else
picks examples of the split that share the factor's value.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from . import encode_batched, metric


# --- MIG: a pure function of (codes, factors) -----------------------------------------------------
def discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """(N, D) codes -> (N, D) bin indices of equal-width histograms per dimension."""
    out = np.zeros(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, j], bins)
        out[:, j] = np.digitize(codes[:, j], edges[1:-1])
    return out


def mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) in nats for two integer arrays, from their joint histogram."""
    from sklearn.metrics import mutual_info_score

    return float(mutual_info_score(a, b))


def mig(codes, factors, bins: int = 20) -> float:
    """Mutual information gap of (N, D) codes against (N, K) discrete factors, in [0, 1].
    Factors with a single value (entropy 0) are skipped."""
    codes, factors = np.asarray(codes, dtype=np.float64), np.asarray(factors)
    zd = discretize(codes, bins)
    gaps = []
    for k in range(factors.shape[1]):
        h = mutual_info(factors[:, k], factors[:, k])  # H(v_k) = I(v_k; v_k)
        if h <= 0:
            continue
        mi = sorted((mutual_info(zd[:, j], factors[:, k]) for j in range(zd.shape[1])), reverse=True)
        gaps.append((mi[0] - (mi[1] if len(mi) > 1 else 0.0)) / h)
    return float(np.mean(gaps)) if gaps else float("nan")


# --- inputs with one factor held fixed ------------------------------------------------------------
class FactorSampler:
    """Draws inputs, and inputs that share one factor's value with given factor rows.

    ``render(factors) -> inputs`` generates new inputs (a generated dataset); without it, examples of
    the split ``(x, factors)`` that have the wanted value are picked."""

    def __init__(self, factors, x=None, render: Callable[[Any], torch.Tensor] | None = None):
        self.factors = np.asarray(factors.cpu() if isinstance(factors, torch.Tensor) else factors).astype(np.int64)
        self.x, self.render = x, render
        if render is None and x is None:
            raise ValueError("FactorSampler needs the split's inputs x or a render function")
        if render is None:  # value -> indices of the examples with it, per factor
            self._index = [
                {int(v): np.flatnonzero(col == v) for v in np.unique(col)} for col in self.factors.T
            ]

    @property
    def num_factors(self) -> int:
        return self.factors.shape[1]

    def varying(self) -> list[int]:
        """Factors that take more than one value (a constant factor cannot be identified)."""
        return [k for k in range(self.num_factors) if len(np.unique(self.factors[:, k])) > 1]

    def draw(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
        """n inputs with factors from the data's distribution, and their factors (n, K)."""
        i = rng.integers(0, len(self.factors), n)
        if self.render is not None:
            return self.render(self.factors[i]), self.factors[i]
        return self.x[torch.from_numpy(i)], self.factors[i]

    def draw_matching(self, k: int, rows: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """For each factor row, an input whose factor k has the row's value and whose other factors
        are drawn afresh."""
        if self.render is not None:
            new = self.factors[rng.integers(0, len(self.factors), len(rows))].copy()
            new[:, k] = rows[:, k]
            return self.render(new)
        idx = [rng.choice(self._index[k][int(v)]) for v in rows[:, k]]
        return self.x[torch.as_tensor(idx)]


def _codes(encode, x) -> np.ndarray:
    return np.asarray(encode(x), dtype=np.float64).reshape(len(x), -1)


def _fixed_factor_groups(encode, sampler: FactorSampler, n: int, size: int, rng, chunk: int = 32):
    """n groups of ``size`` inputs sharing one randomly chosen factor: (factor (n,), codes (n, L, D)).
    Groups are encoded ``chunk`` at a time, so the encoder sees large batches."""
    ks = rng.choice(sampler.varying(), n)
    groups = []
    for c in range(0, n, chunk):
        xs = []
        for k in ks[c : c + chunk]:
            _x, rows = sampler.draw(1, rng)
            xs.append(sampler.draw_matching(k, np.repeat(rows, size, 0), rng))
        groups.append(_codes(encode, torch.cat(xs)).reshape(len(xs), size, -1))
    return ks, np.concatenate(groups)


def beta_vae_score(encode, sampler: FactorSampler, n_train: int = 500, n_test: int = 300, pairs: int = 64, seed: int = 0) -> float:
    """Higgins et al.'s score: accuracy of a linear classifier that predicts the fixed factor from the
    mean absolute code difference of ``pairs`` pairs; chance is 1 / (number of varying factors)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)

    def votes(n, chunk: int = 32):
        ks = rng.choice(sampler.varying(), n)
        feats = []
        for c in range(0, n, chunk):  # encode ``chunk`` votes' pairs in one batch
            x1s, x2s = [], []
            for k in ks[c : c + chunk]:
                x1, rows = sampler.draw(pairs, rng)
                x1s.append(x1)
                x2s.append(sampler.draw_matching(k, rows, rng))
            m = len(x1s)
            z1 = _codes(encode, torch.cat(x1s)).reshape(m, pairs, -1)
            z2 = _codes(encode, torch.cat(x2s)).reshape(m, pairs, -1)
            feats.append(np.abs(z1 - z2).mean(1))
        return np.concatenate(feats), ks

    f_tr, k_tr = votes(n_train)
    f_te, k_te = votes(n_test)
    scale = f_tr.std(0) + 1e-8  # standardise the features; the classifier stays linear
    clf = LogisticRegression(max_iter=2000).fit(f_tr / scale, k_tr)
    return float(clf.score(f_te / scale, k_te))


def factor_vae_score(encode, sampler: FactorSampler, n_train: int = 500, n_test: int = 300, batch: int = 64, n_scale: int = 5000, seed: int = 0, collapsed: float = 0.05) -> float:
    """Kim & Mnih's score: the majority-vote accuracy of argmin_d Var[z_d / s_d] -> fixed factor,
    with s_d the codes' standard deviation over the data; dimensions with s_d below ``collapsed`` are
    left out (collapsed units say nothing; 0.05 as in Locatello et al. 2019's disentanglement_lib)."""
    rng = np.random.default_rng(seed)
    x, _ = sampler.draw(n_scale, rng)
    s = _codes(encode, x).std(0)
    keep = np.flatnonzero(s > collapsed)
    if len(keep) == 0:
        return 0.0
    n_factors = sampler.num_factors

    def votes(n):
        ks, z = _fixed_factor_groups(encode, sampler, n, batch, rng)
        d = (z[:, :, keep] / s[keep]).var(1).argmin(1)  # (n,) the steadiest dimension per group
        return keep[d], ks

    d_tr, k_tr = votes(n_train)
    d_te, k_te = votes(n_test)
    table = np.zeros((len(s), n_factors), dtype=np.int64)
    np.add.at(table, (d_tr, k_tr), 1)
    guess = table.argmax(1)  # each dimension -> the factor it voted for most
    return float((guess[d_te] == k_te).mean())


# --- the evaluation hook ----------------------------------------------------------------------------
@metric("disentanglement")
def disentanglement(model, data, split_name, x, y, disentangle_samples: int | None = None, **_: Any) -> dict[str, Any] | None:
    """mig, beta_vae_score, factor_vae_score on splits with factor labels (None elsewhere)."""
    part = data.split(split_name)
    if part is None or part.factors is None or part.factors.dim() != 2:
        return None
    factors = part.factors.cpu().numpy()
    if factors.dtype.kind not in "iub":  # these metrics need discrete factor values
        return None
    if model.needs_labels:  # rendered inputs have no class labels to condition on
        return None
    device = model.device

    def encode(inputs):
        return encode_batched(model, inputs.to(device)).cpu().numpy()

    codes = encode(x)
    sampler = FactorSampler(factors, x.cpu(), data.render)
    n = disentangle_samples or 300  # votes to train each score's classifier on; half as many to test
    return {
        "mig": mig(codes, factors),
        "beta_vae_score": beta_vae_score(encode, sampler, n_train=n, n_test=max(1, n // 2)),
        "factor_vae_score": factor_vae_score(encode, sampler, n_train=n, n_test=max(1, n // 2), n_scale=min(5000, 20 * n)),
    }
