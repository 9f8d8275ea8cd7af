"""Kingma & Welling 2014 and Burda et al. 2016, stated as assertions."""
import math

import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

import aezoo
from aezoo.evaluate.likelihood import gaussian_latent_metrics, nll_iw
from aezoo.nn.distributions import (
    DiagonalGaussian,
    bernoulli_log_prob,
    kl_normal,
    kl_standard_normal,
    log_mean_exp,
    normal_log_prob,
)
from aezoo.nn.likelihoods import Gaussian


def test_analytic_kl_equals_monte_carlo():
    torch.manual_seed(1)
    q = DiagonalGaussian(torch.randn(4, 3), torch.randn(4, 3) * 0.5)
    z = q.rsample(200_000)  # (S, B, D)
    mc = (q.log_prob(z) - normal_log_prob(z, torch.zeros(()), torch.zeros(()), batch_dims=2)).mean(0)
    assert torch.allclose(q.kl(), mc, atol=0.02)


def test_kl_matches_torch_distributions():
    mu, lv = torch.randn(5, 4), torch.randn(5, 4)
    mp, lp = torch.randn(5, 4), torch.randn(5, 4)
    q = Independent(Normal(mu, (0.5 * lv).exp()), 1)
    p = Independent(Normal(mp, (0.5 * lp).exp()), 1)
    assert torch.allclose(kl_normal(mu, lv, mp, lp), kl_divergence(q, p), atol=1e-5)
    std = Independent(Normal(torch.zeros(4), torch.ones(4)), 1)
    assert torch.allclose(kl_standard_normal(mu, lv), kl_divergence(q, std), atol=1e-5)


def test_bernoulli_log_likelihood_matches_torch():
    logits = torch.randn(3, 1, 4, 4) * 3
    x = torch.bernoulli(torch.full((3, 1, 4, 4), 0.4))
    ref = Independent(Bernoulli(logits=logits), 3).log_prob(x)
    assert torch.allclose(bernoulli_log_prob(logits, x), ref, atol=1e-5)


@pytest.mark.parametrize("learn", [False, True])
def test_gaussian_log_likelihood_matches_torch(learn):
    lik = Gaussian(sigma=0.3, learn_sigma=learn)
    mean, x = torch.randn(3, 10), torch.randn(3, 10)
    ref = Independent(Normal(mean, torch.full_like(mean, 0.3)), 1).log_prob(x)
    assert torch.allclose(lik.log_prob(mean, x), ref, atol=1e-4)


def test_log_mean_exp_is_stable():
    a = torch.tensor([[1000.0, 1000.0], [-1000.0, -1000.0]])
    assert torch.allclose(log_mean_exp(a, 1), torch.tensor([1000.0, -1000.0]))


def test_vae_loss_is_negative_elbo_in_nats_per_example():
    torch.manual_seed(0)
    vae = aezoo.create("vae", input_shape=(1, 4, 4), latent_dim=2, hidden=(8,))
    x = torch.rand(5, 1, 4, 4)
    torch.manual_seed(3)
    out = vae(x)
    torch.manual_seed(3)
    q = vae.posterior(x)
    z = q.rsample(1)
    expected = (-vae.log_likelihood(z, x).mean(0) + q.kl()).mean()
    assert torch.allclose(out.loss, expected)
    assert torch.allclose(out.terms["recon"] + out.terms["kl"], out.loss)


def test_iwae_bound_is_above_elbo_and_tightens_with_k():
    torch.manual_seed(0)
    data = aezoo.data.load("digits", limit=800, binarize="static")
    vae = aezoo.create("vae", input_shape=data.input_shape, latent_dim=4, hidden=(64,))
    aezoo.train(vae, data, epochs=10, batch_size=64, lr=3e-3, min_steps=0, progress=False)  # the 110 steps it was written for
    x = data.test.x[:128]
    torch.manual_seed(1)
    elbo = gaussian_latent_metrics(vae, x, iw_samples=0)["neg_elbo"]
    nll = [float(nll_iw(vae, x, k=k).mean()) for k in (1, 10, 100, 1000)]
    # the bound with K=1 is the ELBO (same estimator); larger K gives a tighter (lower) -log p(x)
    assert abs(nll[0] - elbo) < 0.05 * abs(elbo) + 0.5
    assert nll[1] < nll[0] and nll[2] < nll[1] and nll[3] <= nll[2] + 0.02
    assert nll[3] < elbo


def test_active_units_criterion():
    vae = aezoo.create("vae", input_shape=(6,), latent_dim=3, hidden=(8,))
    m = gaussian_latent_metrics(vae, torch.rand(50, 6), iw_samples=0)
    assert 0 <= m["active_units"] <= 3 and len(m["kl_per_dim"]) == 3
    assert math.isclose(sum(m["kl_per_dim"]), m["kl"], rel_tol=1e-4)
