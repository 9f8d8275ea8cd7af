"""Every member, built with the defaults the CLI uses, shows its paper's claim (issue 11).

Models are built as `aezoo train MODEL --data DATA` builds them: the Config's defaults with only the
data's input shape (and classes), trained by `aezoo.train` with the model's declared
`train_defaults` and only a data set and an epoch budget, or through the CLI itself. Claims that need
Fashion-MNIST or long runs are `slow` tests here and rows of benchmarks/README.md
("each member at its defaults", `python benchmarks/bench_defaults.py`).
"""
import json
import math
from pathlib import Path

import pytest
import torch

import aezoo
from aezoo.cli import main
from aezoo.data import from_arrays
from aezoo.errors import ConfigError
from aezoo.evaluate import evaluate
from aezoo.nn.likelihoods import ContinuousBernoulli, continuous_bernoulli_log_norm, continuous_bernoulli_mean
from aezoo.nn.priors import CodePrior, CodePriorConfig
from aezoo.registry import get, list_models
from aezoo.viz.figures import FIGURES
from aezoo.viz.report import _discover, build_report

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not FASHION.exists(), reason="Fashion-MNIST is not installed")
PENDING: set[str] = set()


@pytest.fixture(scope="module")
def digits():
    return aezoo.data.load("digits")


def as_cli_builds(name, data, **overrides):
    """The model `aezoo train NAME --data DATA` builds: Config defaults, the data's shape and classes."""
    cfg = {"input_shape": data.input_shape, **overrides}
    if get(name).needs_labels:
        cfg["num_classes"] = data.num_classes
    torch.manual_seed(0)
    return aezoo.create(name, **cfg)


def train_as_cli(name, data, epochs=10, **overrides):
    """Train with the CLI's budget (`--epochs`, default 10) and the model's declared train_defaults."""
    model = as_cli_builds(name, data, **overrides)
    aezoo.train(model, data, epochs=epochs, progress=False, report=False)
    return model


# --- the claims are declared, and the report shows them ---------------------------------------
@pytest.mark.parametrize("name", list_models())
def test_every_member_declares_its_claim(name):
    if name in PENDING:
        pytest.skip(f"{name}: claim added at merge time")
    _discover()
    cls = get(name)
    assert cls.claims, f"{name} declares no claim"
    model = aezoo.create(name, **cls.tiny)
    claim = model.claim()
    assert claim is not None and claim.paper and claim.metrics
    assert "{" not in claim.describe(model.config)  # every placeholder names a config field
    for c in cls.claims:
        assert c.figure is None or c.figure in FIGURES, f"{name}: figure {c.figure!r} is not registered"


def test_report_shows_the_claim_above_the_metrics(digits, tmp_path):
    model = as_cli_builds("k_sparse_ae", digits, latent_dim=40, k=5, k_start=10)
    aezoo.train(model, digits, out=tmp_path, epochs=1, progress=False, eval_iw_samples=0)
    page = (tmp_path / "report.html").read_text()
    head, sep, rest = page.partition("<h2>Test metrics</h2>")
    assert sep and "The paper's claim" in head and "Makhzani &amp; Frey 2013" in head
    assert "exactly k = 5 of its 40 units" in head and "id='code_nonzeros'" in head
    assert "id='code_nonzeros'" not in rest  # shown once, with the claim
    assert json.loads((tmp_path / "eval.json").read_text())["code_l0"] == 5.0


# --- 1. k-sparse: Makhzani & Frey's model, and exactly k non-zeros ------------------------------
def test_k_sparse_defaults_are_the_papers(digits):
    m = as_cli_builds("k_sparse_ae", aezoo.data.from_arrays(torch.rand(8, 1, 28, 28)))
    c = m.config
    assert (c.hidden, c.latent_dim, c.k, c.k_first) == ((), 1000, 25, 100)
    assert [type(layer) for layer in m.encoder.net] == [torch.nn.Linear]  # the paper's linear encoder
    assert ((m.encode(torch.rand(16, 1, 28, 28)) != 0).sum(1) == 25).all()
    trained = train_as_cli("k_sparse_ae", digits)
    out = evaluate(trained, digits, "test")
    mean_image_mse = float((digits.test.x - digits.train.x.mean(0)).pow(2).mean())
    assert out["code_l0"] == 25.0 and out["recon_mse"] < 0.5 * mean_image_mse, out
    # features of alpha k = 75 units, reconstruction from the top 25 (issue 24: decoding the 75 was worse than the mean image)
    wide = train_as_cli("k_sparse_ae", digits, alpha=3.0)
    out = evaluate(wide, digits, "test")
    assert out["code_l0"] == 75.0 and out["recon_mse"] < 0.5 * mean_image_mse, out


def test_k_sparse_k_must_be_below_the_code_size(capsys, tmp_path):
    with pytest.raises(ConfigError, match="'k'"):
        aezoo.create("k_sparse_ae", latent_dim=25)
    with pytest.raises(ConfigError, match="'k_start'"):  # only an explicit k_start: by default it follows k
        aezoo.create("k_sparse_ae", latent_dim=80, k_start=100)
    with pytest.raises(ConfigError, match="'aux_k'"):
        aezoo.create("k_sparse_ae", hidden=(64,), aux_k=32)
    # through the CLI: one line naming the field, exit code 2
    assert main(["train", "k_sparse_ae", "--data", "digits", "--latent-dim", "16", "--quiet"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("aezoo: error:")]
    assert len(err) == 1 and "'k'" in err[0] and "latent_dim" in err[0] and "Traceback" not in err[0]
    # defaults that depend on k follow it: k_start = min(4k, latent_dim) = 20 (issue 24)
    assert main(["train", "k_sparse_ae", "--data", "digits", "--latent-dim", "64", "--set", "k=5", "--steps", "2", "--no-report", "--quiet",
                 "--out", str(tmp_path / "k5")]) == 0


def test_auxk_target_is_the_decoders_linear_map():
    m = aezoo.create("k_sparse_ae", input_shape=(1, 8, 8), latent_dim=32, k=2, k_start=2, aux_k=4, dead_steps=1)
    z = torch.relu(torch.randn(5, 32))
    w = m.decoder.net[0].weight  # (64, 32)
    torch.testing.assert_close((m.decoder(z) - m.decoder(torch.zeros(1, 32))).flatten(1), z @ w.T)


# --- 2. VQ-VAE-2: the bottom prior reads the whole top grid; EMA codebooks ------------------------
def test_every_bottom_cell_is_conditioned_on_the_whole_top_grid():
    cfg = CodePriorConfig(heights=(4, 7), widths=(4, 7), num_codes=(8, 8), width=16, layers=1, heads=2, dropout=0.0)
    prior = CodePrior(cfg).eval()
    bottom = prior.grids[1]
    top = torch.randint(0, 8, (3, 16))
    b = torch.randint(0, 8, (3, 49))
    with torch.no_grad():
        base = bottom.logits(b, top)
        for j in range(16):  # any top cell, the last one included, reaches every bottom cell
            t2 = top.clone()
            t2[:, j] = (t2[:, j] + 1) % 8
            diff = (bottom.logits(b, t2) - base).abs().amax(dim=(0, 2))  # (49,) per bottom cell
            assert (diff > 1e-6).all(), f"top cell {j} does not reach bottom cells {torch.nonzero(diff <= 1e-6).flatten().tolist()}"
        # the first bottom cell, from the last top cell: the case the causal prefix missed
        t2 = top.clone()
        t2[:, -1] = (t2[:, -1] + 1) % 8
        assert not torch.allclose(bottom.logits(b[:, :1], t2), bottom.logits(b[:, :1], top))


def test_vq_vae2_defaults_to_ema_codebooks():
    m = aezoo.create("vq_vae2")
    assert m.config.ema and all(q.ema for q in m.quantizers)


# --- VQ-VAE: the used codebook is the restarts' (Jukebox), not the paper's algorithm's (issue 24) --------
def codebook_used(out, num_codes):
    """The claim's check: perplexity of at least K/4 and at most a quarter of the codes dead. On the
    digits' training split (5,600 cells for 512 codes) a used codebook leaves few codes empty."""
    return out["perplexity"] >= num_codes / 4 and out["dead_codes"] <= 0.25


def test_vq_vae_codebook_is_used_with_restarts_and_collapses_without(digits):
    m = train_as_cli("vq_vae", digits)
    out = evaluate(m, digits, "train", iw_samples=0)
    assert codebook_used(out, m.config.num_codes), out
    assert m.config.restart and m.claim().paper.startswith("Dhariwal et al. 2020")
    paper = train_as_cli("vq_vae", digits, restart=False)  # van den Oord et al.'s algorithm alone
    out = evaluate(paper, digits, "train", iw_samples=0)
    assert not codebook_used(out, paper.config.num_codes), out
    assert "Without restarts" in paper.claim().describe(paper.config)


# --- 3. sparse AE: every unit's mean activation near rho -----------------------------------------
def test_sparse_ae_units_reach_rho_on_digits(digits):
    m = train_as_cli("sparse_ae", digits)
    assert m.config.penalty == "kl"
    out = evaluate(m, digits, "test")
    rho = m.config.rho
    assert out["units_near_rho"] == 1.0, out
    assert 0.75 * rho <= out["mean_activation_min"] <= out["mean_activation_max"] <= 1.25 * rho
    assert out["recon_mse"] < 0.05  # trained, not merely quiet


def ng_picture(out):
    """Ng's sparse code: every unit active (above 0.5) on some inputs, and most of the activation in those
    entries (near 0 elsewhere). A dense code of values near rho has units_never_active 1, active_mass 0."""
    return out["units_never_active"] <= 0.1 and out["active_mass"] >= 0.5


@pytest.mark.xfail(strict=True, reason="issue 24 item 4, open: at the defaults the KL code is dense (no unit above 0.5)")
def test_sparse_ae_code_is_sparse_per_input_on_digits(digits):
    m = train_as_cli("sparse_ae", digits)
    out = evaluate(m, digits, "test")
    assert ng_picture(out), {k: out[k] for k in ("units_never_active", "active_mass", "activation_max", "active_units_per_input")}


# --- 4. linear AE: PCA by optimisation alone --------------------------------------------------------
def test_linear_ae_reaches_pca_on_digits(digits):
    """`aezoo train linear_ae --data digits --latent-dim 8 --epochs 30`: the issue's command."""
    m = train_as_cli("linear_ae", digits, epochs=30, latent_dim=8)
    out = evaluate(m, digits, "test")
    assert out["pca_mse_ratio"] <= 1.02 and out["pca_angle_max_deg"] < 5.0, out


# --- 6. the README's first command, without Fashion-MNIST ------------------------------------------
def test_demo_fallback_trains_a_working_vae(tmp_path, monkeypatch, capsys):
    from aezoo.data import download
    from aezoo.evaluate.fidelity import predict, train_classifier

    monkeypatch.setattr(download, "search_dirs", lambda name, data_dir=None: [tmp_path / "nothing"])
    monkeypatch.setenv("AEZOO_OFFLINE", "1")
    run = tmp_path / "vae"
    assert main(["train", "vae", "--data", "auto", "--epochs", "10", "--out", str(run), "--quiet"]) == 0
    assert "using scikit-learn's digits" in capsys.readouterr().err
    m = json.loads((run / "eval.json").read_text())
    assert m["dataset"] == "digits" and m["active_units"] >= 2 and m["kl"] > 1.0, m
    assert "id='samples'" in (run / "report.html").read_text()
    # the samples look like digits: a classifier trained on real digits reads many different digits in
    # them, confidently (a collapsed VAE draws one blob)
    data = aezoo.data.load("digits")
    clf = train_classifier(data.train.x, data.train.y, 10, steps=300)
    model = aezoo.load(run)
    torch.manual_seed(0)
    with torch.no_grad():
        probs = torch.softmax(clf(model.sample(200)), 1)
    assert len(predict(clf, model.sample(200)).unique()) >= 8
    assert float(probs.max(1).values.mean()) > 0.7


# --- 7. what a likelihood is, and the continuous Bernoulli -----------------------------------------
def test_continuous_bernoulli_matches_torch():
    eta = torch.cat([torch.linspace(-20, 20, 4001), torch.tensor([0.0, 1e-7, -1e-4, 0.0999, 0.1, 0.1001, -0.1])]).double()
    x = torch.rand(eta.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref = torch.distributions.ContinuousBernoulli(logits=eta)
    ours = ContinuousBernoulli().log_prob(eta[:, None], x[:, None])
    torch.testing.assert_close(ours, ref.log_prob(x), atol=1e-7, rtol=0)
    torch.testing.assert_close(continuous_bernoulli_mean(eta), ref.mean, atol=1e-7, rtol=0)
    # float32 too, and near lambda = 1/2, where the closed form is 0/0, to float32's precision
    exact = torch.where(eta == 0, torch.tensor(math.log(2), dtype=torch.float64), torch.log(eta.abs() / torch.tanh(eta.abs() / 2)))
    assert float((continuous_bernoulli_log_norm(eta.float()).double() - exact).abs().max()) < 1e-6
    e = torch.tensor([0.0, 1e-6, 0.05, 3.0], requires_grad=True)
    ContinuousBernoulli().log_prob(e[None], torch.full((1, 4), 0.3)).sum().backward()
    assert torch.isfinite(e.grad).all()


def test_continuous_bernoulli_vae_is_a_density_on_the_unit_interval():
    m = aezoo.create("vae", input_shape=(1,), latent_dim=2, hidden=(8,), likelihood="continuous_bernoulli")
    out = m(torch.rand(16, 1))
    assert torch.isfinite(out.loss)
    grid = torch.linspace(0, 1, 20001)[:, None]  # p(x | z) for one z integrates to 1 over [0, 1]
    with torch.no_grad():
        params = m.decoder(torch.randn(1, 2)).expand(len(grid), 1)
        p = m.likelihood.log_prob(params, grid).exp()
    assert abs(float(torch.trapezoid(p, grid[:, 0])) - 1) < 1e-4


def test_likelihood_note_says_what_the_bound_is(digits):
    m = as_cli_builds("vae", digits)
    grey = evaluate(m, digits, "test", iw_samples=2)
    assert "cross-entropy" in grey["likelihood_note"] and "--binarize dynamic" in grey["likelihood_note"]
    binary = aezoo.data.load("digits", binarize="dynamic")
    assert "binary data" in evaluate(m, binary, "test", iw_samples=2)["likelihood_note"]
    cb = as_cli_builds("vae", digits, likelihood="continuous_bernoulli")
    assert "density on [0, 1]" in evaluate(cb, digits, "test", iw_samples=2)["likelihood_note"]


# --- the other members' claims that hold on small data -------------------------------------------
def test_dae_denoises_its_corruption(digits):
    m = train_as_cli("denoising_ae", digits)
    out = evaluate(m, digits, "test")
    # at 110 steps it gains 1.5 dB; the comparison with the AE of the same size is the benchmark's
    assert out["corrupt"] == "mask:0.25" and out["denoise_psnr"] > out["noisy_psnr"] + 1, out


def test_cv_ae_ex_post_density_beats_one_gaussian(digits):
    m = train_as_cli("cv_ae", digits)
    out = evaluate(m, digits, "test")
    assert out["expost_code_nll"] < out["gaussian_code_nll"], out


@pytest.mark.slow
def test_scale_hyperprior_is_a_codec_at_its_defaults(digits):
    """Issue 25, as `aezoo train scale_hyperprior --data digits` builds and trains it (2,000 steps by its
    min_steps, ~3 minutes): its files cost what it estimates, and it beats JPEG at the file's rate (one
    mosaic of the same test images). WebP is not beaten on the 8x8 digits (-3.0 dB measured): the
    WebP half of the claim is Fashion-MNIST's benchmark row, not asserted here."""
    m = train_as_cli("scale_hyperprior", digits)
    out = evaluate(m, digits, "test", iw_samples=0)
    assert abs(out["payload_over_estimate"] - 1) < 0.01 and out["bpp_file"] < 1.02 * out["bpp"], out
    assert out["psnr_gain_vs_jpeg"] > 0, out


# --- slow: Fashion-MNIST at the default budget ----------------------------------------------------
@pytest.mark.slow
@needs_fashion
def test_sparse_ae_units_reach_rho_on_fashion_mnist():
    data = aezoo.data.load("fashion-mnist")
    out = evaluate(train_as_cli("sparse_ae", data), data, "test")
    assert out["units_near_rho"] == 1.0, out


@pytest.mark.slow
@needs_fashion
def test_k_sparse_keeps_its_units_alive_on_fashion_mnist():
    """Issue 24 item 2, at the CLI defaults (1000 units, 10 epochs): AuxK with the centred encoder. Without
    them 72% of the units never fired on the test split; AuxK alone left 1.1% dead by its own measure and 53%
    on the test split; now 0.1% and 9.9% (benchmarks/README.md)."""
    data = aezoo.data.load("fashion-mnist")
    m = train_as_cli("k_sparse_ae", data)
    out = evaluate(m, data, "test", iw_samples=0)
    assert out["dead_units_train"] < 0.01 and out["dead_units_test"] < 0.15 and out["code_l0"] == 25.0, out
    assert m.config.aux_units > 0 and m.config.centred


@pytest.mark.slow
@needs_fashion
def test_linear_ae_reaches_pca_on_fashion_mnist():
    data = aezoo.data.load("fashion-mnist")
    out = evaluate(train_as_cli("linear_ae", data, epochs=30, latent_dim=8), data, "test")
    assert out["pca_mse_ratio"] <= 1.02 and out["pca_angle_max_deg"] < 5.0, out


@pytest.mark.slow
@needs_fashion
@pytest.mark.parametrize("latent_dim", [2, 16, 32])
def test_cvae_draws_the_asked_class(latent_dim):
    """Issue 24's target: at the CLI's defaults (10 epochs) and latent sizes 2, 16 and 32, the share of
    samples an independent CNN (its own architecture and seed, trained on the real training images)
    puts in the asked class is >= 90% of its accuracy on the real test images, and the samples vary
    within a class (benchmarks/bench_defaults.py reports the same). The fast variant, with
    the weak CVAEs it must fail, is in tests/test_variational_family.py."""
    data = aezoo.data.load("fashion-mnist")
    out = evaluate(train_as_cli("cvae", data, latent_dim=latent_dim), data, "test", iw_samples=0)
    assert out["fidelity_classifier_acc"] > 0.85 and out["class_fidelity_share"] >= 0.9, out
    assert out["class_diversity"] >= 0.5, out


@pytest.mark.slow
def test_capacity_controlled_kl_follows_c(digits, tmp_path):
    model = as_cli_builds("beta_vae", digits, c_max=5.0)
    aezoo.train(model, digits, out=tmp_path, epochs=100, progress=False, eval_iw_samples=0)
    recs = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    late = [r for r in recs if r["epoch"] > 10]
    assert all(abs(r["train/kl"] - r["train/capacity"]) < 0.5 for r in late)
    assert abs(json.loads((tmp_path / "eval.json").read_text())["kl"] - 5.0) < 1.0
    assert "id='kl_capacity'" in build_report(tmp_path).read_text()
