"""Issue 24's two figures: the denoising AE's vector field on 2-D data (Alain & Bengio 2014: r(x) - x
points back to the data) and samples of runs at several latent sizes side by side (`aezoo compare`)."""
import math

import pytest
import torch
from matplotlib.quiver import Quiver

import aezoo
from aezoo.cli import main
from aezoo.data import from_arrays
from aezoo.viz import latent
from aezoo.viz.deterministic import FIELD_GRID, draw_vector_field, vector_field
from aezoo.viz.figures import FIGURES
from aezoo.viz.report import _discover

_discover()


def circle(n=1024, noise=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    angle = 2 * math.pi * torch.rand(n, generator=g)
    r = 1 + noise * torch.randn(n, generator=g)
    return torch.stack([r * angle.cos(), r * angle.sin()], 1)


@pytest.fixture(scope="module")
def circle_dae():
    x = circle()
    data = from_arrays(x, val_fraction=0.1)
    torch.manual_seed(0)
    model = aezoo.create("denoising_ae", input_shape=(2,), latent_dim=2, hidden=(64, 64), corruption="gaussian", sigma=0.3)
    aezoo.train(model, data, steps=800, epochs=None, batch_size=128, lr=3e-3, progress=False)
    return model.eval(), data


def test_dae_field_points_back_to_the_circle(circle_dae):
    """Off the circle the arrows point towards it (towards its projection on the circle) for nearly every grid
    point; an untrained DAE's field does not. This is what the figure has to show."""
    model, data = circle_dae
    points, field = vector_field(model, data.train.x)
    r = float(data.train.x.norm(dim=1).mean())  # the circle's radius in the data as the model sees it
    radius = points.norm(dim=1, keepdim=True)
    towards = points / radius * r - points  # from x to its nearest point on the circle
    far = (radius[:, 0] - r).abs() > 0.3 * r
    agree = ((field * towards).sum(1)[far] > 0).float().mean()
    assert agree > 0.9, float(agree)
    torch.manual_seed(1)
    fresh = aezoo.create("denoising_ae", input_shape=(2,), latent_dim=2, hidden=(64, 64), corruption="gaussian", sigma=0.3)
    _, f0 = vector_field(fresh.eval(), data.train.x)
    assert ((f0 * towards).sum(1)[far] > 0).float().mean() < 0.9


def test_dae_vector_field_figure_draws_one_panel_of_arrows(circle_dae, tmp_path):
    model, data = circle_dae
    caption = FIGURES["dae_vector_field"](model, data, tmp_path, tmp_path / "f.png")
    assert "Alain & Bengio" in caption and (tmp_path / "f.png").stat().st_size > 0
    points, field = vector_field(model, data.train.x)
    fig = draw_vector_field(points, field, data.train.x)
    (ax,) = fig.axes
    quivers = [c for c in ax.collections if isinstance(c, Quiver)]
    assert len(quivers) == 1 and quivers[0].N == FIELD_GRID**2
    scatter = [c for c in ax.collections if not isinstance(c, Quiver)]
    assert len(scatter) == 1 and len(scatter[0].get_offsets()) == data.train.x.shape[0]


def test_dae_vector_field_applies_by_capability_and_shape(circle_dae, tmp_path):
    _, data = circle_dae
    ae = aezoo.create("ae", input_shape=(2,), latent_dim=2, hidden=(8,))  # not a DenoisingModel
    assert FIGURES["dae_vector_field"](ae, data, tmp_path, tmp_path / "a.png") is None
    images = from_arrays(torch.rand(32, 1, 8, 8))
    dae = aezoo.create("denoising_ae", input_shape=(1, 8, 8), latent_dim=2, hidden=(8,))
    assert FIGURES["dae_vector_field"](dae, images, tmp_path, tmp_path / "b.png") is None


def test_compare_shows_samples_at_four_latent_sizes_side_by_side(tmp_path, capsys):
    data = aezoo.data.load("digits", limit=200)
    runs = []
    for d in (2, 5, 10, 20):
        torch.manual_seed(0)
        model = aezoo.create("vae", input_shape=(1, 8, 8), latent_dim=d, hidden=(32,))
        aezoo.train(model, data, out=tmp_path / f"vae{d}", steps=5, epochs=None, batch_size=64, progress=False, eval_iw_samples=2)
        runs.append(str(tmp_path / f"vae{d}"))
    ae = tmp_path / "ae"
    aezoo.train(aezoo.create("ae", input_shape=(1, 8, 8), latent_dim=2, hidden=(8,)), data, out=ae, steps=2, epochs=None, progress=False)
    assert main(["compare", *runs, str(ae), "--out", str(tmp_path / "cmp"), "--iw-samples", "2"]) == 0
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert "id='samples_side_by_side'" in page and (tmp_path / "cmp" / "samples_side_by_side.png").stat().st_size > 0
    # the panels: one per generative run (the AE draws no samples), titled by the latent size
    models = [aezoo.load(r) for r in [*runs, ae]]
    fig = latent.samples_side_by_side(models, [f"latent_dim={d}" for d in (2, 5, 10, 20)] + ["ae"])
    assert [ax.get_title() for ax in fig.axes] == ["latent_dim=2", "latent_dim=5", "latent_dim=10", "latent_dim=20"]
    assert all(ax.images[0].get_array().shape[:2] == (6 * 9 + 1, 6 * 9 + 1) for ax in fig.axes)
    assert latent.samples_side_by_side(models[-1:] + models[:1], ["ae", "vae"]) is None  # one panel: nothing to compare
