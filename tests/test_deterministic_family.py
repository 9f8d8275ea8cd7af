"""The papers' claims for the deterministic family (issue 3), as assertions, plus its metrics and figures."""
import json
import math

import pytest
import torch

import aezoo
from aezoo.data import from_arrays
from aezoo.errors import ConfigError
from aezoo.evaluate import evaluate
from aezoo.models.ae import reconstruction_loss
from aezoo.models.k_sparse_ae import keep_topk
from aezoo.models.sparse_ae import ACTIVE_SIGMOID, sparsity_kl, sparsity_profile
from aezoo.nn import corruption
from aezoo.nn.jacobian import exact_jacobian_fro2, hutchinson_jacobian_fro2
from aezoo.nn.pca import pca_basis, pca_reconstruction_mse, principal_angles_deg

SHAPE = (1, 4, 5)  # 20 input dimensions


def low_rank_data(n=2000, rank=3, noise=0.1, seed=0):
    """x = mean + A s + noise with well-separated variances along ``rank`` directions."""
    g = torch.Generator().manual_seed(seed)
    d = math.prod(SHAPE)
    basis, _ = torch.linalg.qr(torch.randn(d, rank, generator=g))
    scales = torch.tensor([3.0, 2.0, 1.0])[:rank]
    s = torch.randn(n, rank, generator=g) * scales
    x = 0.5 + s @ basis.T + noise * torch.randn(n, d, generator=g)
    return x.view(n, *SHAPE)


@pytest.fixture
def one_thread():
    """Tiny full-batch steps run fastest on one thread (and thrash on a loaded machine with more)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --- linear_ae: Baldi & Hornik 1989 --------------------------------------------------------------
def test_linear_ae_reaches_the_pca_subspace(one_thread):
    x = low_rank_data(1000)
    model = aezoo.create("linear_ae", input_shape=SHAPE, latent_dim=3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 1500)
    for _ in range(1500):  # full-batch gradient descent on the MSE
        loss = model(x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    data = from_arrays(x.numpy(), x_test=low_rank_data(500, seed=1).numpy(), val_fraction=0)
    m = evaluate(model, data, "test")
    assert m["pca_angle_max_deg"] < 1.0
    assert m["pca_mse_ratio"] < 1.01


def test_pca_helpers():
    a = torch.eye(5)[:, :2]
    assert principal_angles_deg(a, a).max() < 1e-6
    assert abs(float(principal_angles_deg(torch.eye(5)[:, :1], torch.eye(5)[:, 1:2]).max()) - 90) < 1e-6
    x = low_rank_data(noise=0.0).flatten(1)
    mean, basis = pca_basis(x, 3)
    assert pca_reconstruction_mse(x, mean, basis) < 1e-10  # exactly rank 3 after centring


def test_linear_ae_has_no_nonlinearity():
    with pytest.raises(ConfigError, match="activation"):
        aezoo.create("linear_ae", input_shape=SHAPE, latent_dim=3, activation="relu")
    m = aezoo.create("linear_ae", input_shape=SHAPE, latent_dim=3, hidden=(8,))
    x1, x2 = torch.randn(4, *SHAPE), torch.randn(4, *SHAPE)
    # affine: f(x1 + x2) - f(0) = (f(x1) - f(0)) + (f(x2) - f(0))
    f0 = m.reconstruct(torch.zeros(1, *SHAPE))
    torch.testing.assert_close(m.reconstruct(x1 + x2) - f0, (m.reconstruct(x1) - f0) + (m.reconstruct(x2) - f0), atol=1e-5, rtol=1e-4)


# --- k_sparse_ae: Makhzani & Frey 2013 (+ AuxK, Gao et al. 2024) ---------------------------------------
def test_k_sparse_codes_have_exactly_k_nonzeros():
    m = aezoo.create("k_sparse_ae", input_shape=SHAPE, latent_dim=16, hidden=(), k=3, k_start=10)
    x = torch.rand(32, *SHAPE)
    assert ((m.encode(x) != 0).sum(1) == 3).all()
    m.on_step(0, 100)  # start of the schedule: k_start
    assert ((m(x).z != 0).sum(1) == 10).all()
    m.on_step(60, 100)  # past schedule_fraction = 0.5: the target
    assert ((m(x).z != 0).sum(1) == 3).all()
    m2 = aezoo.create("k_sparse_ae", input_shape=SHAPE, latent_dim=16, k=3, k_start=10, alpha=2.0)
    assert ((m2.encode(x) != 0).sum(1) == 6).all()


def test_k_sparse_reconstructs_from_the_top_k_and_features_keep_alpha_k():
    """Issue 24: with alpha = 3, decoding encode's 3k units gave eval a recon_mse 30 times the one of
    the k-unit code the decoder is trained on."""
    m = aezoo.create("k_sparse_ae", input_shape=SHAPE, latent_dim=16, hidden=(), k=3, alpha=3.0).eval()
    x = torch.rand(64, *SHAPE)
    assert ((m.encode(x) != 0).sum(1) == 9).all()  # features: alpha k units
    with torch.no_grad():
        x_hat = m.reconstruct(x)
        torch.testing.assert_close(x_hat, m.decoder(keep_topk(m.pre_activations(x), 3)))
        torch.testing.assert_close(x_hat, m(x).x_hat)  # what eval scores is what training fits
    data = from_arrays(x[:48].numpy(), x_test=x[48:].numpy(), val_fraction=0)
    out = evaluate(m, data, "test")
    assert abs(out["recon_mse"] - float((x_hat[48:] - x[48:]).pow(2).mean())) < 1e-6
    assert out["code_l0"] == 9.0  # the features the report counts are still alpha k


def test_k_sparse_schedule_start_follows_k_and_the_code_size():
    """k_start defaults to min(4k, latent_dim): `--latent-dim 64 --set k=5` builds; an explicit k_start
    out of [k, latent_dim] is still an error naming it."""
    assert aezoo.create("k_sparse_ae", latent_dim=64, k=5).config.k_first == 20
    assert aezoo.create("k_sparse_ae", latent_dim=40, k=25).config.k_first == 40
    assert aezoo.create("k_sparse_ae").config.k_first == 100  # the paper's 100 for k = 25
    m = aezoo.create("k_sparse_ae", input_shape=SHAPE, latent_dim=16, hidden=(), k=3)
    m.on_step(0, 100)
    assert m.k_current == 12
    with pytest.raises(ConfigError, match="'k_start'"):
        aezoo.create("k_sparse_ae", latent_dim=64, k=5, k_start=100)
    with pytest.raises(ConfigError, match="'k_start'"):
        aezoo.create("k_sparse_ae", latent_dim=64, k=5, k_start=4)


def test_k_sparse_encoder_reads_the_input_centred_on_the_decoder_bias(tmp_path):
    """Gao et al.'s b_pre: a = W_enc (x - b_dec) + b_enc, b_dec started at the mean input; runs saved before
    the option existed load uncentred, as they were trained."""
    data = aezoo.data.load("digits")
    m = aezoo.create("k_sparse_ae", input_shape=data.input_shape, latent_dim=32, k=4)
    x = data.train.x[:64]
    assert m.config.centred
    b = m.decoder.net[0].bias
    with torch.no_grad():
        torch.testing.assert_close(m.pre_activations(x), m.encoder(x - b.view(1, 1, 8, 8)))
    m.on_fit_start(x)
    torch.testing.assert_close(b.detach(), x.flatten(1).mean(0))
    assert not aezoo.create("k_sparse_ae", input_shape=SHAPE, latent_dim=16, hidden=(8,), k=3).config.centred
    with pytest.raises(ConfigError, match="'center'"):
        aezoo.create("k_sparse_ae", input_shape=SHAPE, latent_dim=16, hidden=(8,), k=3, center=True)
    aezoo.train(m, data, out=tmp_path / "run", steps=2, progress=False, report=False)
    assert aezoo.load(tmp_path / "run").config.centred
    cfg = tmp_path / "run" / "config.json"
    meta = json.loads(cfg.read_text())
    del meta["config"]["center"]  # a run folder from before issue 24
    cfg.write_text(json.dumps(meta))
    old = aezoo.load(tmp_path / "run")
    assert not old.config.centred
    with torch.no_grad():
        torch.testing.assert_close(old.pre_activations(x), old.encoder(x))


def test_k_sparse_gradient_is_zero_for_dropped_units():
    a = torch.randn(8, 12, requires_grad=True)
    z = keep_topk(a, 4)
    (z * torch.randn_like(z)).sum().backward()
    kept = z != 0
    assert (a.grad[~kept] == 0).all() and (a.grad[kept] != 0).all()
    # in the model: an encoder unit that no example keeps gets no gradient at all
    m = aezoo.create("k_sparse_ae", input_shape=SHAPE, latent_dim=32, hidden=(), k=2, k_start=2)
    x = torch.rand(4, *SHAPE)
    out = m(x)
    out.loss.backward()
    never = ~(out.z != 0).any(0)
    w_grad = m.encoder.net[0].weight.grad  # (D, d)
    assert never.sum() > 0
    assert (w_grad[never] == 0).all() and (w_grad[~never].abs().sum(1) > 0).all()


def test_auxk_trains_dead_units():
    m = aezoo.create("k_sparse_ae", input_shape=SHAPE, latent_dim=32, hidden=(), k=2, k_start=2, aux_k=4, dead_steps=1)
    x = torch.rand(4, *SHAPE)
    m(x)  # marks every unit not kept in this batch as dead
    out = m(x)
    out.loss.backward()
    assert "aux" in out.terms and float(out.terms["dead"]) > 0
    dead = m.steps_since_fired >= 1
    assert (m.encoder.net[0].weight.grad[dead].abs().sum(1) > 0).any()


# --- contractive_ae: Rifai et al. 2011 ------------------------------------------------------------
def test_contractive_closed_form_equals_autograd_jacobian():
    m = aezoo.create("contractive_ae", input_shape=SHAPE, latent_dim=7, hidden=())
    assert m.jacobian_method == "closed_form"
    x = torch.rand(5, *SHAPE)
    closed = m.jacobian_fro2(x)
    by_autograd = torch.stack([torch.autograd.functional.jacobian(lambda v: m.encode(v[None])[0], xi).pow(2).sum() for xi in x])
    torch.testing.assert_close(closed, by_autograd, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(m.jacobian_fro2(x, method="exact"), by_autograd, rtol=1e-5, atol=1e-7)


def test_hutchinson_is_unbiased_for_deeper_encoders():
    m = aezoo.create("contractive_ae", input_shape=SHAPE, latent_dim=6, hidden=(10,), jacobian="hutchinson", hutchinson_samples=8)
    assert aezoo.create("contractive_ae", input_shape=SHAPE, latent_dim=6, hidden=(10,)).jacobian_method == "exact"
    x = torch.rand(3, *SHAPE)
    exact = exact_jacobian_fro2(m.encode, x)
    est = hutchinson_jacobian_fro2(m.encode, x, samples=4000)  # relative std ~ sqrt(2 / 4000) per example
    torch.testing.assert_close(est, exact, rtol=0.1, atol=1e-6)
    out = m(x)
    out.loss.backward()  # the penalty is differentiable in the encoder's parameters
    assert m.encoder.net[0].weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="jacobian"):
        aezoo.create("contractive_ae", input_shape=SHAPE, latent_dim=6, hidden=(10,), jacobian="closed_form")


# --- denoising_ae: Vincent et al. 2008 -----------------------------------------------------------
def test_denoising_with_no_corruption_is_the_plain_ae():
    ae = aezoo.create("ae", input_shape=SHAPE, latent_dim=4, hidden=(16,))
    dae = aezoo.create("denoising_ae", input_shape=SHAPE, latent_dim=4, hidden=(16,), p=0.0, corruption_samples=3)
    dae.load_state_dict(ae.state_dict())
    x = torch.rand(8, *SHAPE)
    torch.testing.assert_close(dae(x).loss, ae(x).loss)


def test_denoising_target_is_the_clean_input():
    dae = aezoo.create("denoising_ae", input_shape=SHAPE, latent_dim=4, hidden=(16,), p=0.5)
    x = torch.rand(8, *SHAPE)
    torch.manual_seed(1)
    loss = dae(x).loss
    torch.manual_seed(1)
    x_tilde = dae.corruption(x)
    expected = reconstruction_loss("mse", dae.decoder(dae.encode(x_tilde)), x).mean()
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_mask_zeroes_the_stated_fraction(p):
    x = torch.ones(200_000)
    frac = float((corruption.mask(x, p) == 0).float().mean())
    assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / x.numel())


def test_salt_pepper_and_gaussian():
    x = torch.full((200_000,), 0.5)
    sp = corruption.salt_pepper(x, 0.3)
    hit = sp != 0.5
    assert abs(float(hit.float().mean()) - 0.3) < 0.01
    assert set(sp[hit].unique().tolist()) == {0.0, 1.0}
    assert abs(float(sp[hit].mean()) - 0.5) < 0.01
    g = corruption.gaussian(x, 0.2)
    assert abs(float((g - x).std()) - 0.2) < 0.005


def test_corruption_specs():
    assert corruption.parse("mask:0.5") == corruption.Corruption("mask", 0.5)
    assert str(corruption.parse("gaussian:0.3")) == "gaussian:0.3"
    for bad in ["mask", "mask:x", "blur:0.1", "mask:1.5", "gaussian:-1"]:
        with pytest.raises(ConfigError):
            corruption.parse(bad)


# --- sparse_ae: the KL sparsity penalty ------------------------------------------------------------
def test_kl_sparsity_is_zero_at_rho_and_grows_away_from_it():
    rho = 0.05
    assert abs(float(sparsity_kl(rho, torch.full((10,), rho)))) < 1e-7
    up = [float(sparsity_kl(rho, torch.full((10,), r))) for r in (0.05, 0.1, 0.3, 0.6, 0.9)]
    down = [float(sparsity_kl(rho, torch.full((10,), r))) for r in (0.05, 0.03, 0.01, 0.001)]
    assert all(a < b for a, b in zip(up, up[1:])) and all(a < b for a, b in zip(down, down[1:]))


def test_sparse_penalties():
    x = torch.rand(16, *SHAPE)
    kl = aezoo.create("sparse_ae", input_shape=SHAPE, latent_dim=8, penalty="kl", beta=2.0)
    h = kl.encode(x)
    assert ((h > 0) & (h < 1)).all()  # sigmoid units
    out = kl(x)
    torch.testing.assert_close(out.terms["sparsity"], 2.0 * sparsity_kl(0.05, h.mean(0)))
    l1 = aezoo.create("sparse_ae", input_shape=SHAPE, latent_dim=8, penalty="l1", lam=0.5)
    out = l1(x)
    torch.testing.assert_close(out.loss, out.terms["recon"] + 0.5 * l1.encode(x).abs().sum(1).mean())


def test_sparsity_profile_tells_a_dense_code_from_a_sparse_one():
    """Issue 24: a code of values near rho everywhere has every unit's mean at rho, like Ng's sparse code;
    lifetime and population sparsity tell them apart."""
    rho, n, d = 0.05, 2000, 40
    dense = torch.full((n, d), rho) + 0.01 * torch.rand(n, d)
    g = torch.Generator().manual_seed(0)
    sparse = (torch.rand(n, d, generator=g) < rho).double() * 0.95 + 0.002  # on ~ rho of the inputs, near 0 otherwise
    a, b = sparsity_profile(dense, ACTIVE_SIGMOID), sparsity_profile(sparse, ACTIVE_SIGMOID)
    assert a["units_never_active"] == 1.0 and a["active_mass"] == 0.0 and a["active_units_per_input"] == 0.0
    assert b["units_never_active"] == 0.0 and b["active_mass"] > 0.9
    assert abs(b["unit_active_share_median"] - rho) < 0.015 and abs(b["active_units_per_input"] - rho * d) < 0.2
    # through evaluate: a sparse AE whose code is sigmoid(logit(rho)) = rho for every input
    m = aezoo.create("sparse_ae", input_shape=SHAPE, latent_dim=8)
    last = [layer for layer in m.encoder.modules() if isinstance(layer, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(math.log(rho / (1 - rho)))
    out = evaluate(m, labelled_data(), "test")
    assert out["units_near_rho"] == 1.0 and out["units_never_active"] == 1.0 and out["active_mass"] == 0.0


# --- metrics and figures -------------------------------------------------------------------------
def labelled_data():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    x = torch.full((300, 20), 0.2)
    for c in range(3):
        x[y == c, 6 * c : 6 * c + 6] = 0.8  # each class lights its own block of inputs
    x = (x + 0.05 * torch.randn(300, 20, generator=g)).clamp(0, 1).view(300, *SHAPE)
    return from_arrays(x[:200].numpy(), y[:200].numpy(), x_test=x[200:].numpy(), y_test=y[200:].numpy(), val_fraction=0)


def test_representation_metrics():
    data = labelled_data()
    m = aezoo.create("k_sparse_ae", input_shape=SHAPE, latent_dim=12, hidden=(), k=3, k_start=12)
    out = evaluate(m, data, "test", corrupt="mask:0.5")
    assert out["code_l0"] == 3.0
    assert 0 <= out["dead_units"] <= 1
    assert out["corrupt"] == "mask:0.5" and math.isfinite(out["noisy_psnr"]) and math.isfinite(out["denoise_psnr"])
    for k in ("probe_acc", "knn_precision_at_10", "jacobian_fro"):
        assert 0 <= out[k] and math.isfinite(out[k])
    assert "pca_angle_max_deg" not in out
    # classes are separated in input space: a linear AE with as many units keeps that for probe and k-NN
    lin = aezoo.create("linear_ae", input_shape=SHAPE, latent_dim=20)
    out = evaluate(lin, data, "test")
    assert out["probe_acc"] > 0.95 and out["knn_precision_at_10"] > 0.95
    assert "noisy_psnr" not in out  # no corruption asked for


def test_jacobian_metric_matches_the_contractive_closed_form():
    data = labelled_data()
    m = aezoo.create("contractive_ae", input_shape=SHAPE, latent_dim=5, hidden=())
    out = evaluate(m, data, "test", jacobian_samples=64)
    x = data.test.x[:64]
    assert abs(out["jacobian_fro"] - float(m.jacobian_fro2(x).mean().detach())) < 1e-5


def test_figures(tmp_path):
    from aezoo.viz.deterministic import decoder_filters, denoising

    data = labelled_data()
    sparse = aezoo.create("sparse_ae", input_shape=SHAPE, latent_dim=6)
    assert decoder_filters(sparse, data, tmp_path, tmp_path / "f.png") and (tmp_path / "f.png").exists()
    from aezoo.viz.claims import unit_activity

    caption = unit_activity(sparse, data, tmp_path, tmp_path / "u.png")  # mean activations, histogram, lifetime sparsity
    assert (tmp_path / "u.png").exists() and "active units per input" in caption and "never active" in caption
    dae = aezoo.create("denoising_ae", input_shape=SHAPE, latent_dim=6)
    assert denoising(dae, data, tmp_path, tmp_path / "d.png") and (tmp_path / "d.png").exists()
    ae = aezoo.create("ae", input_shape=SHAPE, latent_dim=6)
    assert decoder_filters(ae, data, tmp_path, tmp_path / "x.png") is None
    assert denoising(ae, data, tmp_path, tmp_path / "y.png") is None


def test_one_layer_filters_are_the_decoder_columns():
    m = aezoo.create("sparse_ae", input_shape=SHAPE, latent_dim=6, hidden=())
    w = m.decoder.net[0].weight  # (d, D)
    torch.testing.assert_close(m.decoder_filters().flatten(1), w.T.detach())


def test_train_dae_run_report(tmp_path):
    data = aezoo.data.load("digits")
    m = aezoo.create("denoising_ae", input_shape=data.input_shape, latent_dim=8, hidden=(32,), p=0.5)
    aezoo.train(m, data, out=tmp_path / "run", epochs=1, progress=False, eval_iw_samples=0)
    assert (tmp_path / "run" / "figures" / "denoising.png").exists()
    reloaded = aezoo.load(tmp_path / "run")
    assert str(reloaded.corruption) == "mask:0.5"
