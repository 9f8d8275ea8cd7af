"""The variational family's papers' claims: beta-VAE (Higgins et al. 2017) and capacity control
(Burgess et al. 2017), the conditional VAE (Sohn et al. 2015), the constant-variance AE (Ghosh et al.
2019), the IWAE objective (Burda et al. 2016), dSprites, and the disentanglement metrics."""
import copy

import numpy as np
import pytest
import torch

import aezoo
from aezoo.data import from_arrays, load
from aezoo.errors import ConfigError, DataError
from aezoo.evaluate import evaluate
from aezoo.evaluate.disentangle import FactorSampler, beta_vae_score, factor_vae_score, mig
from aezoo.models.beta_vae import capacity
from aezoo.registry import create

TINY = dict(input_shape=(1, 8, 8), latent_dim=4, hidden=(16,))


def same_init(name_a, cfg_a, name_b, cfg_b):
    torch.manual_seed(0)
    a = create(name_a, **cfg_a)
    torch.manual_seed(0)
    b = create(name_b, **cfg_b)
    return a, b


def losses(a, b, x, y=None):
    torch.manual_seed(1)
    la = a(x, y)
    torch.manual_seed(1)
    lb = b(x, y)
    return la, lb


# --- beta-VAE and capacity control ----------------------------------------------------------
def test_beta_one_is_exactly_the_vae():
    vae, bvae = same_init("vae", TINY, "beta_vae", {**TINY, "beta": 1.0})
    x = torch.rand(8, 1, 8, 8)
    a, b = losses(vae, bvae, x)
    assert torch.equal(a.loss, b.loss)
    assert torch.equal(a.terms["kl"], b.terms["kl"])


def test_beta_weights_only_the_kl():
    bvae = create("beta_vae", **TINY, beta=4.0)
    out = bvae(torch.rand(8, 1, 8, 8))
    assert torch.allclose(out.loss, out.terms["recon"] + 4.0 * out.terms["kl"])


def test_capacity_schedule_rises_linearly_then_holds():
    assert capacity(0, 25.0, 100) == 0.0
    assert capacity(40, 25.0, 100) == pytest.approx(10.0)
    assert capacity(100, 25.0, 100) == 25.0
    assert capacity(1000, 25.0, 100) == 25.0
    m = create("beta_vae", **TINY, c_max=8.0, c_steps=None, gamma=10.0)
    m.on_step(30, 120)  # c_steps=None: the whole run
    assert m.capacity == pytest.approx(2.0)


def test_capacity_loss_is_gamma_abs_kl_minus_c():
    m = create("beta_vae", **TINY, c_max=50.0, c_steps=10, gamma=7.0)
    x = torch.rand(8, 1, 8, 8)
    for step in (0, 5, 10):
        m.on_step(step, 10)
        out = m(x)
        c = capacity(step, 50.0, 10)
        assert float(out.terms["capacity"]) == pytest.approx(c)
        want = out.terms["recon"] + 7.0 * (out.terms["kl"] - c).abs()
        assert torch.allclose(out.loss, want)


def test_capacity_survives_save_and_load(tmp_path):
    from aezoo.train.checkpoint import load_model

    data = from_arrays(torch.rand(64, 1, 8, 8), val_fraction=0)
    m = create("beta_vae", **TINY, c_max=5.0)
    # min_steps=0: exactly the 8 steps of 2 epochs, not the VAE family's floor for small data
    aezoo.train(m, data, out=tmp_path / "run", epochs=2, batch_size=16, min_steps=0, progress=False, report=False)
    assert m.capacity == pytest.approx(5.0 * 7 / 8)  # C at the last step the trainer announced, 7 of 8
    assert load_model(tmp_path / "run").capacity == pytest.approx(m.capacity)


# --- the importance-weighted objective -----------------------------------------------------
def test_iw_objective_bounds_the_elbo_from_above():
    torch.manual_seed(0)
    vae = create("vae", **TINY, mc_samples=256)
    x = torch.rand(16, 1, 8, 8)
    with torch.no_grad():
        elbo = float(vae(x).loss)  # -ELBO, with a precise Monte Carlo estimate of its expectation
    vae.config.iw_samples = 256
    iw = vae(x)
    assert set(iw.terms) == {"neg_iw_bound"}
    assert float(iw.loss.detach()) < elbo  # L_K >= L_1 (Burda et al. 2016, theorem 1)
    iw.loss.backward()
    assert all(p.grad is not None for p in vae.encoder.parameters())
    # beta-VAE's weights p(x|z) (p(z)/q(z|x))^beta: with beta = 1 the same objective
    vae2, bvae = same_init("vae", {**TINY, "iw_samples": 8}, "beta_vae", {**TINY, "iw_samples": 8, "beta": 1.0})
    a, b = losses(vae2, bvae, x)
    assert torch.equal(a.loss, b.loss)
    assert set(b.terms) == {"neg_iw_bound"}


def test_beta_iw_objective_is_not_called_a_bound():
    """With beta != 1 the weights p(x|z) (p(z)/q(z|x))^beta bound no likelihood (issue 24): the objective
    is named for what it is, and the true IWAE bound (beta = 1, the same samples) is reported beside it."""
    vae, bvae = same_init("vae", {**TINY, "iw_samples": 8}, "beta_vae", {**TINY, "iw_samples": 8, "beta": 4.0})
    x = torch.rand(16, 1, 8, 8)
    a, b = losses(vae, bvae, x)
    assert set(b.terms) == {"neg_iw_beta_objective", "neg_iw_bound"}
    assert torch.equal(b.terms["neg_iw_beta_objective"], b.loss)
    torch.testing.assert_close(b.terms["neg_iw_bound"], a.loss.detach())  # the VAE's -L_K on the same draws
    assert not torch.allclose(b.loss, a.loss)


def test_iw_samples_is_validated():
    with pytest.raises(ConfigError, match="iw_samples"):
        create("vae", **TINY, iw_samples=0)
    with pytest.raises(ConfigError, match="iw_samples"):
        create("beta_vae", **TINY, iw_samples=4, c_max=5.0)


# --- the conditional VAE --------------------------------------------------------------------
def two_class_data(n=256):
    """Class 0 lights the left half, class 1 the right half; the brightness is the style."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    level = 0.3 + 0.7 * torch.rand(n, generator=g)
    x = torch.zeros(n, 1, 8, 8)
    x[y == 0, :, :, :4] = 1
    x[y == 1, :, :, 4:] = 1
    return x * level[:, None, None, None], y, level


def test_cvae_decoder_uses_the_label_and_z_keeps_the_style():
    x, y, level = two_class_data()
    torch.manual_seed(0)
    m = create("cvae", **{**TINY, "latent_dim": 2, "hidden": (32,)}, num_classes=2)
    aezoo.train(m, from_arrays(x, y, val_fraction=0), steps=300, batch_size=32, lr=1e-2, progress=False, report=False)
    with torch.no_grad():
        left, right = (m.decode(torch.zeros(1, 2), torch.tensor([c]))[0, 0] for c in (0, 1))
        # changing only y moves the mass from the left half to the right half
        assert left[:, :4].mean() > left[:, 4:].mean() + 0.2
        assert right[:, 4:].mean() > right[:, :4].mean() + 0.2
        # the label is not needed in z: the codes of class 0, decoded as class 1, are class-1 images
        # whose brightness is a one-to-one function of the input's (its sign is the model's choice)
        z = m.encode(x[y == 0], y[y == 0])
        swapped = m.decode(z, torch.ones(len(z), dtype=torch.long))[:, 0]
        assert (swapped[:, :, 4:].mean((1, 2)) > swapped[:, :, :4].mean((1, 2)) + 0.05).float().mean() > 0.9
        brightness = swapped[:, :, 4:].mean((1, 2))
        assert abs(float(torch.corrcoef(torch.stack([brightness, level[y == 0]]))[0, 1])) > 0.9
        # the same through sample(..., like=): the class of the inputs is inferred, not given
        s = m.sample(4, torch.tensor([1]), like=x[y == 0][:4])
        assert (s[:, 0, :, 4:].mean((1, 2)) > s[:, 0, :, :4].mean((1, 2))).all()


def test_cvae_label_errors():
    m = create("cvae", **TINY, num_classes=3)
    with pytest.raises(DataError, match="labels"):
        m(torch.rand(2, 1, 8, 8))
    with pytest.raises(ConfigError, match="out of range"):
        m.sample(2, torch.tensor([5]))
    with pytest.raises(DataError, match="needs class labels"):
        aezoo.train(m, from_arrays(torch.rand(32, 1, 8, 8)), epochs=1, progress=False, report=False)


def test_cvae_reports_the_conditional_bound():
    x, y, _ = two_class_data(64)
    m = create("cvae", **TINY, num_classes=2)
    out = evaluate(m, from_arrays(x, y, x_test=x, y_test=y), "test", iw_samples=8)
    assert "cond_nll_iw" in out and "nll_iw" not in out
    assert np.isfinite(out["cond_nll_iw"])


# --- the constant-variance AE ---------------------------------------------------------------
def test_cv_ae_without_noise_or_penalty_is_the_ae():
    ae, cv = same_init("ae", TINY, "cv_ae", {**TINY, "lam": 0.0, "sigma": 0.0})
    x = torch.rand(8, 1, 8, 8)
    a, b = losses(ae, cv, x)
    assert torch.equal(a.loss, b.loss)
    assert torch.equal(a.x_hat, b.x_hat)


def test_cv_ae_objective_and_ex_post_density(tmp_path):
    m = create("cv_ae", **TINY, lam=0.3, sigma=0.5, gmm_components=2)
    x = torch.rand(8, 1, 8, 8)
    out = m(x)
    assert torch.allclose(out.loss, out.terms["recon"] + 0.3 * out.terms["code_norm2"])
    # two well-separated clusters of inputs: the fitted mixture's samples decode near them
    data = from_arrays(torch.cat([torch.zeros(64, 1, 8, 8), torch.ones(64, 1, 8, 8)]) * 0.9 + 0.05)
    aezoo.train(m, data, out=tmp_path / "cv", epochs=30, batch_size=32, lr=3e-3, progress=False, report=False)
    assert float(m.gmm_weights.min()) > 0.2  # both components used: the GMM was fitted (trainer's on_fit_end)
    from aezoo.train.checkpoint import load_model

    back = load_model(tmp_path / "cv")
    assert torch.equal(back.gmm_means, m.gmm_means)  # the density is saved with the weights
    torch.manual_seed(0)
    s = back.sample(64).flatten(1).mean(1)
    assert ((s < 0.3) | (s > 0.7)).float().mean() > 0.8


# --- dSprites --------------------------------------------------------------------------------
def test_dsprites_factors_and_rendering():
    from aezoo.data.dsprites import FACTOR_SIZES, render

    d = load("dsprites", n=200, n_test=50)
    assert d.input_shape == (1, 64, 64)
    assert d.factor_names == ["shape", "scale", "orientation", "pos_x", "pos_y"]
    assert d.train.factors.shape[1] == 5 and d.test.factors.shape == (50, 5)
    assert set(torch.unique(d.train.x).tolist()) <= {0.0, 1.0}
    # the images are the rendering of their factors
    assert torch.equal(d.render(d.train.factors[:10]), d.train.x[:10])
    base = np.array([[0, 5, 0, 16, 16]])
    img = lambda f: render(np.asarray(f))[0].astype(float)  # noqa: E731
    # scale grows the area; position moves the centre of mass; shapes differ
    assert img([[0, 0, 0, 16, 16]]).sum() < img(base).sum()
    moved = img([[0, 5, 0, 31, 16]])
    cols = np.arange(64)
    assert (moved.sum(0) * cols).sum() / moved.sum() > (img(base).sum(0) * cols).sum() / img(base).sum() + 10
    assert not np.array_equal(img(base), img([[2, 5, 0, 16, 16]]))
    assert len(FACTOR_SIZES) == 5 and FACTOR_SIZES[2] == 40


# --- disentanglement metrics on constructed codes ----------------------------------------------
def constructed_factors(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    sizes = (3, 6, 10, 8, 8)
    return np.stack([rng.integers(0, k, n) for k in sizes], 1), sizes


def test_mig_known_answers():
    f, _ = constructed_factors()
    assert mig(f.astype(float), f) > 0.95  # each factor is one code dimension
    rng = np.random.default_rng(1)
    assert mig(rng.normal(size=(len(f), 5)), f) < 0.05
    # one dimension holding two factors: MIG drops
    mixed = f.astype(float).copy()
    mixed[:, 3] = f[:, 3] + 10 * f[:, 4]
    mixed[:, 4] = 0
    assert mig(mixed, f) < mig(f.astype(float), f) - 0.1


def identity_sampler(f):
    """Inputs are the factors themselves (render = identity), so an encoder maps factors to codes."""
    return FactorSampler(f, render=lambda rows: torch.as_tensor(np.asarray(rows), dtype=torch.float64))


def test_intervention_scores_known_answers():
    f, _ = constructed_factors()
    sampler = identity_sampler(f)
    ident = lambda x: x.numpy()  # noqa: E731  codes = factors
    rng = np.random.default_rng(0)
    noise = lambda x: rng.normal(size=(len(x), 5))  # noqa: E731  codes ignore the input
    kw = dict(n_train=200, n_test=200)
    assert beta_vae_score(ident, sampler, **kw) > 0.95
    assert factor_vae_score(ident, sampler, **kw) > 0.95
    chance = 1 / 5
    assert abs(beta_vae_score(noise, sampler, **kw) - chance) < 0.12
    assert abs(factor_vae_score(noise, sampler, **kw) - chance) < 0.15
    # a permutation and rescaling of the factors is as disentangled as the factors
    perm = lambda x: (x.numpy()[:, [2, 0, 4, 1, 3]] * np.array([3.0, 0.5, 1, 2, 7]))  # noqa: E731
    assert factor_vae_score(perm, sampler, **kw) > 0.95


def test_sampler_without_render_picks_matching_examples():
    f, _ = constructed_factors(2000)
    x = torch.as_tensor(f, dtype=torch.float64)
    s = FactorSampler(f, x=x)
    rng = np.random.default_rng(0)
    _, rows = s.draw(50, rng)
    got = s.draw_matching(2, rows, rng).numpy()
    assert np.array_equal(got[:, 2], rows[:, 2])
    assert beta_vae_score(lambda t: t.numpy(), s, n_train=100, n_test=100) > 0.9


def test_metrics_apply_to_datasets_with_factors_only():
    d = load("dsprites", n=300, n_test=100)
    m = create("vae", input_shape=(1, 64, 64), latent_dim=3, hidden=(32,))
    out = evaluate(m, d, "test", iw_samples=2, disentangle_samples=20)
    for k in ("mig", "beta_vae_score", "factor_vae_score", "agg_mean_abs", "agg_var", "kl_per_dim", "active_units"):
        assert k in out
    assert 0 <= out["mig"] <= 1 and 0 <= out["beta_vae_score"] <= 1
    out = evaluate(create("ae", **TINY), from_arrays(torch.rand(40, 1, 8, 8)), "test")
    assert "mig" not in out and "agg_var" in out


def test_aggregate_moments_vae_vs_ae():
    from aezoo.evaluate.likelihood import aggregate_moments

    mu = torch.randn(5000, 3) * 0.6 + 2.0
    var = torch.full((5000, 3), 0.64)
    m = aggregate_moments(mu, var)
    assert m["agg_mean_abs"] == pytest.approx(2.0, abs=0.05)
    assert m["agg_var"] == pytest.approx(0.36 + 0.64, abs=0.05)  # law of total variance


# --- the CVAE's class fidelity, judged by an independent CNN (issue 24) ------------------------------
def fidelity_claim(model, data, clf):
    """(fidelity as a share of the judge's accuracy on real test images, the samples' within-class
    spread against the data's): the two numbers of the CVAE's claim."""
    from aezoo.evaluate.fidelity import class_diversity, class_fidelity, predict

    acc = float((predict(clf, data.test.x) == data.test.y).float().mean())
    share, _ = class_fidelity(model, clf, data.num_classes)
    return share / acc, class_diversity(model, data.test.x, data.test.y, data.num_classes)


@pytest.mark.parametrize("latent_dim", [2, 32])
def test_cvae_claim_holds_at_defaults_and_fails_for_weak_cvaes(latent_dim):
    """The claim's measure: samples of each asked class, judged by a CNN trained on the real training
    digits, are of that class at >= 90% of the judge's accuracy on real test digits, and they vary
    within a class. It holds for the CVAE `aezoo train cvae --data digits` builds (at the smallest and
    the default latent size) and fails for two weak CVAEs: the same model with its label path zeroed
    (the decoder's FiLM maps: one mix of classes), and with z cut from the decoder (the first layer's
    weights: one image per class, which fidelity alone would pass). On the 8x8 digits, 1,000 steps
    leave the posterior partly collapsed (as the VAE's there): the samples spread 0.18-0.34 of the
    data's within a class (0.43 with beta = 1), so this asks for > 0.1; on Fashion-MNIST they spread
    1.0 of the data's and tests/test_defaults.py asks for >= 0.5."""
    from aezoo.evaluate.fidelity import train_classifier

    data = load("digits")
    torch.manual_seed(0)
    m = create("cvae", input_shape=data.input_shape, num_classes=data.num_classes, latent_dim=latent_dim)
    aezoo.train(m, data, progress=False, report=False)  # the CLI's 10 epochs and the declared min_steps
    m.eval()
    clf = train_classifier(data.train.x, data.train.y, data.num_classes, steps=600)
    share, diversity = fidelity_claim(m, data, clf)
    assert share >= 0.9 and diversity > 0.1, (share, diversity)
    no_label, no_z = copy.deepcopy(m), copy.deepcopy(m)
    with torch.no_grad():
        for fm in no_label.decoder.cond.maps:
            fm.weight.zero_()
        no_z.decoder.net[0].weight.zero_()
    share, _ = fidelity_claim(no_label, data, clf)
    assert share < 0.5, share
    share, diversity = fidelity_claim(no_z, data, clf)
    assert diversity < 0.02, (share, diversity)
