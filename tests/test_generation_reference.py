"""aezoo's generation metrics against references written apart from them (issue 26).

- precision/recall and density/coverage against a brute-force numpy transcription of the papers'
  definitions (Kynkaanniemi et al. 2019, arXiv 1904.06991, eq. 1-3; Naeem et al. 2020, arXiv 2002.09797,
  eq. 3-4), on sets where the answer is not 0 or 1, so a swapped argument (torch-fidelity #58) or a
  wrong k cannot pass;
- the Frechet distance against torchmetrics' FID given an ``nn.Module`` feature extractor (the
  well-kept library the issue names), where torchmetrics is installed.
"""
import numpy as np
import pytest
import torch

from aezoo.evaluate.generation import K_DC, K_PR, frechet_distance, precision_recall_density_coverage


def _reference_prdc(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> dict[str, float]:
    """The papers' formulas, one point at a time, closed balls (a point on a radius is inside)."""

    def dists(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    def kth(a, k):  # distance to the k-th nearest *other* point
        return np.sort(dists(a, a), axis=1)[:, k]

    d_fr = dists(fake, real)  # (M, N)
    r_real_pr, r_fake_pr, r_real_dc = kth(real, k_pr), kth(fake, k_pr), kth(real, k_dc)
    # precision: share of samples inside the real manifold; recall: share of real points inside the samples'
    precision = np.mean([any(d_fr[j, i] <= r_real_pr[i] for i in range(len(real))) for j in range(len(fake))])
    recall = np.mean([any(d_fr[j, i] <= r_fake_pr[j] for j in range(len(fake))) for i in range(len(real))])
    inside = d_fr <= r_real_dc[None, :]
    density = inside.sum() / (k_dc * len(fake))
    coverage = np.mean([inside[:, i].any() for i in range(len(real))])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("seed", [0, 1])
def test_prdc_equals_a_brute_force_transcription_of_the_papers(seed):
    g = np.random.default_rng(seed)
    real = g.normal(size=(150, 5))
    # samples too narrow and shifted: precision, recall, density and coverage all strictly between 0 and 1
    fake = 0.6 * g.normal(size=(120, 5)) + np.array([0.8, 0, 0, 0, 0])
    ref = _reference_prdc(real, fake, K_PR, K_DC)
    ours = precision_recall_density_coverage(torch.from_numpy(real), torch.from_numpy(fake))
    for k, v in ref.items():
        assert ours[k] == pytest.approx(v, abs=1e-12), k
    assert 0.05 < ours["recall"] < ours["precision"] < 0.999  # narrow samples: realistic, but cover less


def test_recall_falls_and_precision_stays_as_samples_collapse_onto_fewer_modes():
    """Direction, continuously: the same generator restricted to 8, 4, 2, 1 of 8 real clusters."""
    g = torch.Generator().manual_seed(0)
    centres = 6 * torch.randn(8, 4, generator=g, dtype=torch.float64)
    real = (centres[torch.arange(800) % 8] + torch.randn(800, 4, generator=g, dtype=torch.float64))
    recalls, precisions = [], []
    for modes in (8, 4, 2, 1):
        fake = centres[torch.arange(800) % modes] + torch.randn(800, 4, generator=g, dtype=torch.float64)
        m = precision_recall_density_coverage(real, fake)
        recalls.append(m["recall"])
        precisions.append(m["precision"])
    assert recalls == sorted(recalls, reverse=True) and recalls[0] > 0.8 and recalls[-1] < 0.2
    assert min(precisions) > 0.8


class _GivenFeatures(torch.nn.Module):
    """A feature extractor for torchmetrics that passes (N, D) features through unchanged."""

    def __init__(self, d: int):
        super().__init__()
        self.num_features = d

    def forward(self, x):
        return x.double()


def test_frechet_distance_equals_torchmetrics_fid_with_a_user_feature_module():
    fid_cls = pytest.importorskip("torchmetrics.image.fid").FrechetInceptionDistance
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 6, generator=g, dtype=torch.float64)
    fake = torch.randn(300, 6, generator=g, dtype=torch.float64) @ (torch.eye(6, dtype=torch.float64) + 0.3 * torch.randn(6, 6, generator=g, dtype=torch.float64)) + 0.4
    fid = fid_cls(feature=_GivenFeatures(6), normalize=True)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    expected = float(fid.compute())
    assert expected > 0.5  # a distance worth matching
    assert frechet_distance(real, fake) == pytest.approx(expected, rel=1e-5)
