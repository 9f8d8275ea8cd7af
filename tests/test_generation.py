"""Generation metrics (issue 26): Frechet distance, precision/recall, density/coverage, the feature
net that makes them comparable, and `aezoo eval --generation`."""
import json
import re

import numpy as np
import pytest
import scipy.linalg
import torch

import aezoo
from aezoo.evaluate.features import FeatureNet, dataset_features
from aezoo.evaluate.generation import compare_features, frechet_distance, generation_metrics, precision_recall_density_coverage


@pytest.fixture
def quick_features(tmp_path, monkeypatch):
    """A private cache and a shorter recipe (the same code path, fewer steps: the default suite stays fast)."""
    from aezoo.evaluate import features

    monkeypatch.setenv("AEZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(features.RECIPE, "steps", 300)
    return tmp_path / "cache"


def _gauss(n, d=8, seed=0, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scale + shift


def test_frechet_distance_matches_the_closed_form_with_scipy_sqrtm():
    a, b = _gauss(500, seed=0), _gauss(400, seed=1, scale=2.0, shift=0.5) @ torch.randn(8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    mu1, mu2 = a.mean(0).numpy(), b.mean(0).numpy()
    s1, s2 = np.cov(a.numpy().T), np.cov(b.numpy().T)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-6)  # symmetric


def test_identical_sets_score_perfectly():
    a = _gauss(300)
    m = compare_features(a, a.clone())
    assert m["fd"] == pytest.approx(0, abs=1e-9)
    assert m["precision"] == m["recall"] == m["coverage"] == 1.0
    assert m["density"] == pytest.approx(6 / 5)  # each ball holds its centre and its k = 5 neighbours: (k + 1) / k
    dup = a[:60].repeat(5, 1)  # every real point duplicated 5 times: radius 0 balls still hold their twins (prdc #7)
    assert precision_recall_density_coverage(dup, dup.clone())["coverage"] == 1.0


def test_the_direction_of_precision_and_recall():
    """A mode-collapsed generator is precise but covers little; noise is neither (torch-fidelity #58 had them flipped)."""
    real = _gauss(1000, seed=0)
    collapsed = real[:5].repeat(200, 1) + 0.01 * _gauss(1000, seed=3)
    m = compare_features(real, collapsed)
    assert m["precision"] > 0.95 and m["recall"] < 0.05 and m["coverage"] < 0.05
    noise = _gauss(1000, seed=4, scale=2.0, shift=6.0)  # far off the data
    m = compare_features(real, noise)
    assert m["precision"] < 0.05 and m["recall"] < 0.3 and m["density"] < 0.05
    good = compare_features(real, _gauss(1000, seed=5))
    assert good["precision"] > 0.7 and good["recall"] > 0.7 and 0.8 < good["density"] < 1.3 and good["coverage"] > 0.9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_three_generators_rank_alike_on_every_seed(seed):
    real = _gauss(600, seed=100 + seed)
    good = _gauss(600, seed=200 + seed)
    blurred = 0.5 * _gauss(600, seed=300 + seed)  # too little variance
    bad = _gauss(600, seed=400 + seed, shift=2.0)
    fd = [frechet_distance(real, g) for g in (good, blurred, bad)]
    recall = [precision_recall_density_coverage(real, g)["recall"] for g in (good, blurred, bad)]
    assert fd[0] < fd[1] < fd[2]
    assert recall[0] > recall[1] > recall[2]


def test_the_feature_net_is_cached_hashed_and_the_same_on_a_second_call(quick_features):
    data = aezoo.data.load("digits", limit=600)
    f1 = dataset_features(data)
    files = list((quick_features / "features").glob("*.safetensors"))
    assert len(files) == 1 and f1.name == "aezoo-classifier" and len(f1.hash) == 64
    f2 = dataset_features(data)  # from the cache
    assert f2.hash == f1.hash
    x = data.test.x[:50]
    assert torch.equal(f1(x), f2(x))
    files[0].write_bytes(b"garbage")  # a cut cache file is refitted, never trusted
    assert dataset_features(data).hash == f1.hash
    other = aezoo.data.load("digits", limit=500)
    assert dataset_features(other).hash != f1.hash  # other training data, another net
    user = FeatureNet.from_module(torch.nn.Flatten())  # any nn.Module: a user's network
    assert user(x).shape == (50, 64)


def test_generation_metrics_rank_real_images_above_noise(quick_features):
    """In the trained feature space: held-out real images score near perfect, uniform noise near zero."""
    data = aezoo.data.load("digits")
    feats = dataset_features(data)
    real, held_out = feats(data.test.x), feats(data.val.x)
    noise = feats(torch.rand_like(data.val.x))
    good, bad = compare_features(real, held_out), compare_features(real, noise)
    assert good["fd"] < 0.2 * bad["fd"]
    assert good["precision"] > 0.6 and good["recall"] > 0.6 and bad["precision"] < 0.3 and bad["density"] < 0.2


def _cli(capsys, *args):
    from aezoo.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_generation_on_a_vae_and_a_cvae_run(tmp_path, quick_features, capsys):
    for key in ("vae", "cvae"):
        out = tmp_path / key
        code, _, err = _cli(capsys, "train", key, "--data", "digits", "--steps", "150", "--latent-dim", "4", "--out", out, "--quiet", "--no-report")
        assert code == 0, err
        code, stdout, err = _cli(capsys, "eval", out, "--generation", "300", "--json", "--iw-samples", "0")
        assert code == 0, err
        m = json.loads(stdout)
        for k in ("gen_fd", "gen_precision", "gen_recall", "gen_density", "gen_coverage"):
            assert np.isfinite(m[k])
        assert m["gen_n"] == 300 and m["gen_features"] == "aezoo-classifier" and len(m["gen_features_hash"]) == 16
        saved = json.loads((out / "generation.json").read_text())
        assert saved["gen_fd"] == m["gen_fd"]
        html = (out / "report.html").read_text()
        assert "<h2>Generation</h2>" in html and m["gen_features_hash"] in html
    assert set(m["gen_per_class"]) == {str(c) for c in range(10)}  # the CVAE, class by class
    code, _, err = _cli(capsys, "compare", tmp_path / "vae", tmp_path / "cvae", "--out", tmp_path / "cmp")
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert code == 0 and "<h2>Generation</h2>" in page and "the same features: comparable" in page


def test_a_model_with_nothing_to_sample_says_so_in_one_line(tmp_path, capsys):
    out = tmp_path / "vq"
    code, _, err = _cli(capsys, "train", "vq_vae", "--data", "digits", "--steps", "20", "--out", out, "--quiet", "--no-report")
    assert code == 0, err
    code, _, err = _cli(capsys, "eval", out, "--generation", "100")
    lines = [ln for ln in err.splitlines() if ln.startswith("aezoo: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err and re.search("train-prior", lines[0]), err
    code, _, err = _cli(capsys, "train", "ae", "--data", "digits", "--steps", "20", "--out", tmp_path / "ae", "--quiet", "--no-report")
    code, _, err = _cli(capsys, "eval", tmp_path / "ae", "--generation", "100")
    lines = [ln for ln in err.splitlines() if ln.startswith("aezoo: error:")]
    assert code == 2 and len(lines) == 1 and "not generative" in lines[0], err


def test_generation_metrics_api():
    data = aezoo.data.load("digits", limit=400)
    model = aezoo.create("vae", input_shape=data.input_shape, latent_dim=2)
    feats = FeatureNet.from_module(torch.nn.Flatten(), name="pixels")
    m = generation_metrics(model, data, n=50, features=feats)
    assert m["gen_features"] == "pixels" and m["gen_n_real"] == len(data.test.x[:50]) and 0 <= m["gen_recall"] <= 1
    m2 = aezoo.evaluate(model, data, "test", iw_samples=0, generation=50, generation_features=feats)
    assert m2["gen_fd"] == pytest.approx(m["gen_fd"])


def test_train_prior_trains_enough_steps_on_small_data_and_says_what_it_learned(tmp_path, capsys):
    out = tmp_path / "vq"
    code, _, err = _cli(capsys, "train", "vq_vae", "--data", "digits", "--limit", "300", "--steps", "60", "--out", out, "--quiet", "--no-report")
    assert code == 0, err
    code, _, err = _cli(capsys, "train-prior", out, "--epochs", "1", "--min-steps", "40", "--width", "16", "--layers", "1", "--heads", "2",
                        "--quiet", "--no-report")
    assert code == 0, err
    assert re.search(r"1 epochs of \d+ training inputs are \d+ steps; the prior trains 40", err), err
    assert re.search(r"the prior codes val inputs in [\d.]+ bits each, against [\d.]+ for codes drawn uniformly", err), err
    meta = json.loads((out / "prior.json").read_text())
    assert meta["train"]["min_steps"] == 40 and 0 < meta["uniform_bits"] and "prior_bits_saved" in meta
    code, _, err = _cli(capsys, "train-prior", out, "--steps", "5", "--width", "16", "--layers", "1", "--heads", "2", "--quiet", "--no-report")
    assert code == 0 and json.loads((out / "prior.json").read_text())["train"]["steps"] == 5
    assert "the prior trains" not in err
