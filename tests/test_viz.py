"""Figures, the run report and the comparison page (issue 7): every figure is a valid PNG of the
size its layout gives, interpolation paths start and end at the inputs' reconstructions, and the
report builds for a tiny trained run of every registered model."""
import numpy as np
import pytest
import torch
from PIL import Image

import aezoo
from aezoo.cli import main
from aezoo.data import from_arrays
from aezoo.models.base import ConditionalModel, LatentVariableModel, ModelConfig
from aezoo.nn.distributions import DiagonalGaussian, standard_normal_log_prob
from aezoo.registry import get, list_models
from aezoo.viz import latent
from aezoo.viz.figures import FIGURES, labelled_grid_size
from aezoo.viz.report import _discover, build_report

_discover()


def png_size(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.verify()
    with Image.open(path) as im:
        return im.size


def train_run(name, out, latent_dim=2, epochs=2, **cfg):
    data = aezoo.data.load("digits", limit=300)
    model = aezoo.create(name, input_shape=(1, 8, 8), latent_dim=latent_dim, hidden=(32,), **cfg)
    aezoo.train(model, data, out=out, epochs=epochs, batch_size=64, progress=False, eval_iw_samples=5)
    return model.eval(), data


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    return {name: (root / name, *train_run(name, root / name)) for name in ("vae", "ae")}


def test_trained_runs_have_a_report_with_every_latent_figure(runs):
    run, _model, _data = runs["vae"]
    page = (run / "report.html").read_text()
    for name in ("loss_curves", "reconstructions", "samples", "latent_scatter", "manifold", "interpolation", "traversals"):
        assert f"id='{name}'" in page, name
    assert "FAILED" not in page and page.count("<img") >= 7


@pytest.mark.parametrize(
    "name, size",
    [
        ("latent_scatter", (560, 460)),
        ("manifold", labelled_grid_size(15, 15, 8, 8)),
        ("interpolation", labelled_grid_size(6, 12, 8, 8, row_labels=False)),
        ("traversals", labelled_grid_size(2, 9, 8, 8)),
        ("samples", ((8 * 9 + 1) * 7, (8 * 9 + 1) * 7)),  # 8 x 8 grid of 8x8 digits, 1 px gaps, 7x upscaled
        ("reconstructions", ((16 * 9 + 1) * 7, (2 * 9 + 1) * 7)),
    ],
)
def test_figure_is_a_png_of_the_expected_size(runs, tmp_path, name, size):
    run, model, data = runs["vae"]
    out = tmp_path / f"{name}.png"
    caption = FIGURES[name](model, data, run, out)
    assert caption and png_size(out) == size


def test_figures_that_need_a_prior_do_not_apply_to_a_plain_autoencoder(runs, tmp_path):
    run, model, data = runs["ae"]
    assert not latent.has_standard_normal_prior(model) and latent.has_standard_normal_prior(runs["vae"][1])
    for name in ("samples", "manifold", "traversals", "class_samples"):
        assert FIGURES[name](model, data, run, tmp_path / "x.png") is None, name
    assert "the 2-D code itself" in FIGURES["latent_scatter"](model, data, run, tmp_path / "s.png")
    assert "linear" in FIGURES["interpolation"](model, data, run, tmp_path / "i.png").lower()


def test_no_figure_draws_sequences_as_images(runs, tmp_path):
    run, model, _data = runs["vae"]
    seq = from_arrays(torch.rand(20, 4, 1, 8, 8), torch.arange(20) % 2, val_fraction=0)
    for name, fn in FIGURES.items():
        if name != "loss_curves":
            assert fn(model, seq, run, tmp_path / f"{name}.png") is None, name


@pytest.mark.parametrize("kind", ["vae", "ae"])
def test_interpolation_endpoints_are_the_reconstructions(runs, kind):
    _run, model, data = runs[kind]
    x_a, x_b = data.test.x[:5], data.test.x[5:10]
    with torch.no_grad():
        path = latent.interpolate(model, x_a, x_b, steps=7)
        assert path.shape == (5, 7, 1, 8, 8)
        torch.testing.assert_close(path[:, 0], model.reconstruct(x_a))
        torch.testing.assert_close(path[:, -1], model.reconstruct(x_b))
        assert not torch.allclose(path[:, 3], path[:, 0])


def test_slerp_stays_on_the_sphere_where_lerp_cuts_inside():
    """White 2016: between two codes of equal norm the spherical path keeps that norm; the chord does not."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 16, generator=g), torch.randn(3, 16, generator=g)
    b = b / b.norm(dim=1, keepdim=True) * a.norm(dim=1, keepdim=True)
    t = torch.linspace(0, 1, 9)
    s, l = latent.slerp(a, b, t), latent.lerp(a, b, t)
    assert torch.equal(s[0], a) and torch.equal(l[0], a) and torch.equal(l[-1], b)
    torch.testing.assert_close(s[-1], b)
    torch.testing.assert_close(s.norm(dim=-1), a.norm(dim=1).expand(9, 3))
    assert (l[4].norm(dim=-1) < a.norm(dim=1) * 0.95).all()
    same = latent.slerp(a, a.clone(), t)  # parallel codes fall back to the straight line
    assert torch.isfinite(same).all() and torch.allclose(same, a.expand(9, 3, 16))


def test_pairs_mix_labels_unless_asked_for_one_class():
    y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    for i, j in latent.pick_pairs(y, 3, same_label=False):
        assert y[i] != y[j]
    for i, j in latent.pick_pairs(y, 3, same_label=True):
        assert y[i] == y[j]
    assert len({k for p in latent.pick_pairs(y, 4, False) for k in p}) == 8


def test_wider_codes_are_scattered_after_pca(runs, tmp_path):
    data = runs["vae"][2]
    torch.manual_seed(0)
    model = aezoo.create("ae", input_shape=(1, 8, 8), latent_dim=5, hidden=(16,)).eval()
    assert "PCA" in latent.draw_latent_scatter(model, data, tmp_path / "p.png")
    assert png_size(tmp_path / "p.png") == (560, 460)
    with pytest.raises(aezoo.NotSupportedError):
        latent.project_2d(np.zeros((4, 3)), "isomap")


@pytest.mark.slow  # t-SNE takes seconds even on 60 points
def test_tsne_is_an_option(runs, tmp_path):
    data = runs["vae"][2]
    model = aezoo.create("ae", input_shape=(1, 8, 8), latent_dim=5, hidden=(16,)).eval()
    assert "t-SNE" in latent.draw_latent_scatter(model, data, tmp_path / "t.png", method="tsne", n=60)
    assert png_size(tmp_path / "t.png") == (560, 460)


class ToyConditional(ConditionalModel, LatentVariableModel):
    """Unregistered stand-in for a conditional generative model with a Gaussian latent: decode(z, y)
    with a one-hot y, q(z|x, y) of unit variance."""

    generative = True

    def __init__(self, k=3):
        super().__init__(ModelConfig(input_shape=(1, 8, 8), latent_dim=2))
        self.k, self.enc, self.dec = k, torch.nn.Linear(64 + k, 2), torch.nn.Linear(2 + k, 64)

    @property
    def num_classes(self):
        return self.k

    def posterior(self, x, y=None):
        mu = self.encode(x, y)
        return DiagonalGaussian(mu, torch.zeros_like(mu))

    def log_likelihood(self, z, x, y=None):
        k, b = z.shape[:2]
        x_hat = self.decode(z.reshape(k * b, -1), y.repeat(k)).view(k, b, -1)
        return torch.distributions.Bernoulli(probs=x_hat.clamp(1e-6, 1 - 1e-6)).log_prob(x.flatten(1).round()).sum(-1)

    def prior_log_prob(self, z):
        return standard_normal_log_prob(z)

    def encode(self, x, y=None):
        return self.enc(torch.cat([x.flatten(1), torch.nn.functional.one_hot(y, self.k).float()], 1))

    def decode(self, z, y=None):
        return torch.sigmoid(self.dec(torch.cat([z, torch.nn.functional.one_hot(y, self.k).float()], 1))).view(-1, 1, 8, 8)

    def sample(self, n, y=None):
        return self.decode(torch.randn(n, 2), y)


def test_conditional_models_get_a_class_by_sample_grid_and_labelled_paths(tmp_path):
    torch.manual_seed(0)
    model = ToyConditional().eval()
    data = from_arrays(torch.rand(90, 1, 8, 8), torch.arange(90) % 3, val_fraction=0.25)  # a carved test split with pairs of a class
    assert FIGURES["samples"](model, data, tmp_path, tmp_path / "s.png") is None  # needs y: the class grid instead
    assert FIGURES["class_samples"](model, data, tmp_path, tmp_path / "c.png")
    # 3 classes x 10 prior draws, a gap column and 3 style-transfer columns under a row of their inputs
    assert png_size(tmp_path / "c.png") == labelled_grid_size(4, 14, 8, 8)
    for name in ("interpolation", "traversals", "manifold", "latent_scatter"):
        assert FIGURES[name](model, data, tmp_path, tmp_path / f"{name}.png"), name
    unlabelled = from_arrays(torch.rand(40, 1, 8, 8), val_fraction=0.25)
    for name in ("reconstructions", "interpolation", "traversals", "latent_scatter"):
        assert FIGURES[name](model, unlabelled, tmp_path, tmp_path / f"{name}.png") is None, name


def test_interpolate_and_compare_commands(runs, tmp_path, capsys):
    vae_run, ae_run = runs["vae"][0], runs["ae"][0]
    out = tmp_path / "interp.png"
    assert main(["interpolate", str(vae_run), "--pairs", "3", "--steps", "5", "--out", str(out)]) == 0
    assert png_size(out) == labelled_grid_size(3, 7, 8, 8, row_labels=False)
    assert main(["interpolate", str(vae_run), "--out", str(tmp_path / "x.jpg")]) == 2
    (ae_run / "eval.json").rename(ae_run / "eval.json.bak")  # this run is evaluated afresh
    try:
        assert main(["compare", str(ae_run), str(vae_run), "--out", str(tmp_path / "cmp"), "--iw-samples", "2"]) == 0
    finally:
        (ae_run / "eval.json.bak").rename(ae_run / "eval.json")
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert "recon_mse" in page and "neg_elbo" in page and "latent_scatter-ae" in page and "latent_scatter-vae" in page
    assert "does not apply" in page  # the AE has no samples
    assert main(["scatter", str(ae_run), "--method", "pca", "--out", str(tmp_path / "sc.png")]) == 0


# --- every registered model ------------------------------------------------------------------------
def tiny_data(model, n=48):
    """Synthetic data shaped for the model's tiny config: labelled images, or sequences (T, C, H, W)."""
    g = torch.Generator().manual_seed(0)
    shape = tuple(model.config.input_shape)
    k = getattr(model.config, "num_classes", None) or 3
    y = torch.arange(n) % k
    x = torch.rand(n, *shape, generator=g) * 0.3
    rows = torch.arange(n)
    if len(shape) == 4:  # sequences: a bright row moving down over time
        for t in range(shape[0]):
            x[rows, t, :, (t + y) % shape[2]] += 0.6
    elif len(shape) == 3:  # images: one bright row per class
        x[rows, :, y % shape[1]] += 0.6
    else:
        x[rows, y % shape[0]] += 0.6
    return from_arrays(x.clamp(0, 1), y, val_fraction=0.25)


@pytest.mark.parametrize("name", list_models())
def test_report_builds_for_every_registered_model(name, tmp_path):
    torch.manual_seed(0)
    model = aezoo.create(name, **get(name).tiny)
    data = tiny_data(model)
    aezoo.train(model, data, out=tmp_path, steps=3, epochs=None, batch_size=16, progress=False, report=False)
    page = build_report(tmp_path, model=model, data=data, strict=True).read_text()
    assert page.startswith("<!doctype html>") and "FAILED" not in page
    assert "id='loss_curves'" in page
