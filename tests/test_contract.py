"""Contract tests over the registry: every registered model, at its tiny config, on synthetic
tensors. A new model is tested the moment it registers."""
import inspect
import math

import pytest
import torch

import aezoo
from aezoo.data import from_arrays
from aezoo.models.base import (CAPABILITIES, CodeGridModel, ConditionalModel, DenoisingModel, LatentVariableModel, LinearSubspaceModel,
                               SequenceModel, UnitFilterModel)
from aezoo.models.code_prior import attach_prior, prior_config
from aezoo.nn.corruption import Corruption
from aezoo.nn.distributions import standard_normal_log_prob
from aezoo.nn.priors import CodePrior
from aezoo.registry import get, list_models
from aezoo.train.checkpoint import load_model, save_model

from conftest import tiny_batch

MODELS = list_models()


def build(name, **extra):
    cls = get(name)
    return aezoo.create(name, **{**cls.tiny, **extra})


def test_registry_has_the_reference_models():
    assert {"ae", "vae"} <= set(MODELS)


def test_registry_keys_match_files_and_classes():
    for name in MODELS:
        cls = get(name)
        assert cls.__module__.endswith(f"models.{name}"), f"{name} lives in {cls.__module__}"
        assert cls.Config.__name__.lower().replace("_", "") == (cls.__name__ + "Config").lower().replace("_", "")


@pytest.mark.parametrize("name", MODELS)
def test_model_paper_is_cited(name):
    import sys

    doc = sys.modules[get(name).__module__].__doc__ or ""
    assert any(str(y) in doc for y in range(1980, 2030)), f"{name}: module docstring must cite its paper"


@pytest.mark.parametrize("name", MODELS)
def test_forward_loss_and_gradients(name):
    model = build(name)
    x, y = tiny_batch(model)
    out = model.training_step(x, y)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    for k, v in out.terms.items():
        assert v.dim() == 0 and torch.isfinite(v), f"term {k} = {v}"
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "no parameter received a gradient"
    assert all(g is None or torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", MODELS)
def test_shapes(name):
    model = build(name).eval()
    x, y = tiny_batch(model)
    with torch.no_grad():
        z = model.encode(x, y)
        assert z.shape[0] == x.shape[0]
        assert tuple(z.shape[1:]) == tuple(model.latent_shape)
        x_hat = model.reconstruct(x, y)
        assert x_hat.shape == x.shape
        assert torch.isfinite(x_hat).all()


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip(name, tmp_path):
    model = build(name)
    x, y = tiny_batch(model)
    model.train()
    model.training_step(x, y)  # let stateful layers (EMA codebooks, schedules) move once
    model.eval()
    save_model(tmp_path, model)
    again = load_model(tmp_path)
    assert type(again) is type(model) and again.config == model.config
    with torch.no_grad():
        assert torch.equal(model.encode(x, y), again.encode(x, y))
        assert torch.equal(model.reconstruct(x, y), again.reconstruct(x, y))
    for (k, a), (k2, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


@pytest.mark.parametrize("name", [n for n in MODELS if get(n).generative])
def test_samples(name):
    model = build(name).eval()
    x, y = tiny_batch(model)
    model.on_fit_start(x)
    if isinstance(model, CodeGridModel):  # two-stage: samples come through the prior over the codes
        with pytest.raises(aezoo.NotSupportedError, match="train-prior"):
            model.sample(5)
        attach_prior(model, CodePrior(prior_config(model, width=8, layers=1, heads=2, cond_layers=1)).eval())
    with torch.no_grad():
        s = model.sample(5) if not model.needs_labels else model.sample(5, torch.zeros(5, dtype=torch.long))
    assert s.shape == (5, *model.config.input_shape)
    assert torch.isfinite(s).all()


# --- declared capabilities (models/base.py): a model that claims one implements it --------------------
def declares(cap):
    return [n for n in MODELS if issubclass(get(n), cap)]


def test_every_capability_is_declared_by_some_member():
    for cap in CAPABILITIES:
        assert declares(cap), f"no registered model declares {cap.__name__}"


def test_capabilities_list_what_they_leave_abstract():
    for cap in CAPABILITIES:
        assert "requires" in vars(cap), f"{cap.__name__} must say which members a model implements"
        for attr in cap.requires:
            assert attr in vars(cap), f"{cap.__name__}.requires names {attr!r}, which it does not define"


@pytest.mark.parametrize("name", MODELS)
def test_declared_capabilities_are_implemented(name):
    """Every member a capability ``requires`` is the model's own: declaring a capability without
    implementing it fails here, not in a figure."""
    cls = get(name)
    for cap in CAPABILITIES:
        if issubclass(cls, cap):
            for attr in cap.requires:
                assert inspect.getattr_static(cls, attr) is not vars(cap)[attr], f"{name} declares {cap.__name__} but does not implement {attr}"


@pytest.mark.parametrize("name", MODELS)
def test_labels_and_sample_options_are_declared(name):
    cls = get(name)
    assert cls.needs_labels == issubclass(cls, ConditionalModel), "needs_labels is what ConditionalModel declares"
    params = inspect.signature(cls.sample).parameters
    for option in cls.sample_options:
        assert option in params, f"{name} declares sample option {option!r} that sample() does not take"
    assert cls.generative or not cls.sample_options


@pytest.mark.parametrize("name", declares(LatentVariableModel))
def test_latent_variable_models_implement_their_densities(name):
    model = build(name).eval()
    x, y = tiny_batch(model)
    with torch.no_grad():
        q = model.posterior(x, y)
        assert q.mu.shape == (x.shape[0], *model.latent_shape) and q.logvar.shape == q.mu.shape
        z = q.rsample(3)  # (K, B, D)
        assert model.log_likelihood(z, x, y).shape == (3, x.shape[0])
        lp = model.prior_log_prob(z)
        assert lp.shape == (3, x.shape[0]) and torch.isfinite(lp).all()
        if model.standard_normal_prior:
            assert torch.allclose(lp, standard_normal_log_prob(z, batch_dims=2), atol=1e-5)


@pytest.mark.parametrize("name", declares(ConditionalModel))
def test_conditional_models_take_their_classes_from_the_data(name):
    cls = get(name)
    data = from_arrays(torch.rand(20, *cls.tiny.get("input_shape", (1, 8, 8))), torch.arange(20) % 3, val_fraction=0.25)
    cfg = cls.config_from_data(data)
    assert cfg["num_classes"] == 3 and tuple(cfg["input_shape"]) == tuple(data.input_shape)
    model = build(name, num_classes=3)
    assert model.num_classes == 3


@pytest.mark.parametrize("name", declares(CodeGridModel))
def test_code_grid_models_round_trip_their_grids(name):
    model = build(name).eval()
    x, _ = tiny_batch(model)
    grids = model.code_grids(x)
    assert len(grids) == len(model.grid_names) == len(model.quantizers)
    for g, q in zip(grids, model.quantizers):
        assert g.dtype == torch.long and g.dim() == 3 and g.shape[0] == x.shape[0]
        assert 0 <= int(g.min()) and int(g.max()) < q.num_codes
    with torch.no_grad():
        assert model.decode_codes(grids).shape == x.shape
        for s in model.grid_prefixes():
            assert 1 <= s <= len(grids) and model.decode_codes(grids[:s]).shape == x.shape
    assert model.prior is None  # until the second stage is trained


@pytest.mark.parametrize("name", declares(SequenceModel))
def test_sequence_models_roll_out(name):
    model = build(name).eval()
    x, _ = tiny_batch(model)
    with torch.no_grad():
        roll = model.rollout(x[:, :2], n_steps=3, jump=1, n_samples=2)
    assert roll.shape == (2, x.shape[0], 3, *x.shape[2:]) and torch.isfinite(roll).all()


@pytest.mark.parametrize("name", declares(DenoisingModel))
def test_denoising_models_carry_their_corruption(name):
    model = build(name)
    assert isinstance(model.corruption, Corruption)
    x, _ = tiny_batch(model)
    assert model.corruption(x).shape == x.shape


@pytest.mark.parametrize("name", declares(LinearSubspaceModel))
def test_linear_subspace_models_compare_with_pca(name):
    model = build(name).eval()
    x, _ = tiny_batch(model, 20)
    m = model.pca_subspace_metrics(x, x)
    assert {"pca_angle_max_deg", "pca_mse_ratio"} <= set(m) and all(math.isfinite(v) for v in m.values())
    angles = model.principal_angles(x)
    assert angles.shape == (model.config.latent_dim,) and bool((angles[1:] >= angles[:-1]).all())


@pytest.mark.parametrize("name", declares(UnitFilterModel))
def test_unit_filter_models_draw_one_filter_per_unit(name):
    model = build(name).eval()
    assert model.decoder_filters().shape == (model.latent_shape[0], *model.config.input_shape)


@pytest.mark.parametrize("name", MODELS)
def test_config_rejects_unknown_fields(name):
    with pytest.raises(aezoo.ConfigError, match="no_such_field"):
        build(name, no_such_field=1)


@pytest.mark.parametrize("name", MODELS)
def test_eval_metrics_are_finite(name):
    model = build(name).eval()
    x, y = tiny_batch(model, 8)
    m = model.eval_metrics(x, y, iw_samples=4)
    for k, v in m.items():
        if isinstance(v, float):
            assert math.isfinite(v) or k.endswith("_bits"), f"{name}: {k} = {v}"


@pytest.mark.parametrize("name", [n for n in MODELS if get(n).Config.retired])
def test_run_folders_with_retired_config_fields_still_load(name, tmp_path):
    """Fields removed from a config (issue 12: VQ's arch and hidden, TD-VAE's arch, the linear AE's
    activation) are dropped on load when they hold the one value they could have held."""
    import json

    cls = get(name)
    model = build(name).eval()
    save_model(tmp_path, model)
    path = tmp_path / "config.json"
    meta = json.loads(path.read_text())
    meta["config"].update(cls.Config.retired)
    path.write_text(json.dumps(meta))
    again = load_model(tmp_path)
    assert again.config == model.config
    field = sorted(cls.Config.retired)[0]
    meta["config"][field] = "something else"
    path.write_text(json.dumps(meta))
    with pytest.raises(aezoo.AezooError, match=f"{field!r}.*was removed"):
        load_model(tmp_path)
    with pytest.raises(aezoo.ConfigError, match=field):
        build(name, **{field: "something else"})
