"""Vectors and tables done right (issue 18): per-feature scaling fitted on train only and inverted
exactly, three disjoint splits that add up, CSV categorical columns and missing values, and the
decoder likelihood that follows the data's kind."""
import json

import numpy as np
import pytest
import torch

import aezoo
from aezoo.data.scaling import FeatureScaling
from aezoo.errors import DataError

from test_cli import assert_one_line_error, run


def _table(n=200, seed=0):
    """Features on very different scales (like the wine data: one column in the thousands), 3 classes."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = np.stack([g.normal(13, 0.8, n) + y, g.normal(0.4, 0.1, n), g.normal(750, 300, n) + 200 * y, np.full(n, 7.0)], 1)
    return x, y


@pytest.mark.parametrize("method", ["standard", "minmax", "none"])
def test_per_feature_scaling_is_fitted_on_the_training_split_alone_and_inverts(method):
    x, y = _table()
    data = aezoo.data.from_arrays(x, y, normalize=method)
    raw_train = x[data.train.index.numpy()]
    t = data.train.x.double().numpy()
    if method == "standard":
        np.testing.assert_allclose(t[:, :3].mean(0), 0, atol=1e-6)
        np.testing.assert_allclose(t[:, :3].std(0), 1, rtol=1e-5)
        np.testing.assert_allclose(data.preprocessing["scaling"]["shift"], raw_train.mean(0), rtol=1e-12)
        assert not np.allclose(data.preprocessing["scaling"]["shift"], x.mean(0), rtol=1e-6)  # val and test rows not used
    elif method == "minmax":
        np.testing.assert_allclose(t[:, :3].min(0), 0, atol=1e-7)
        np.testing.assert_allclose(t[:, :3].max(0), 1, atol=1e-6)
    else:
        np.testing.assert_array_equal(t, raw_train.astype(np.float32))
    assert np.all(t[:, 3] == 0) or method == "none"  # a constant feature maps to 0, never NaN
    fs = FeatureScaling.from_json(json.loads(json.dumps(data.preprocessing["scaling"])))  # as config.json stores it
    for part in (data.train, data.val, data.test):
        np.testing.assert_allclose(fs.inverse(part.x).numpy(), x[part.index.numpy()], rtol=1e-6)


def test_images_keep_one_global_scale():
    x = np.random.default_rng(0).integers(0, 256, (30, 1, 4, 4), dtype=np.uint8)
    data = aezoo.data.core.build("img", {"x_train": x}, seed=0)
    assert data.preprocessing["kind"] == "images" and data.preprocessing["scale"] == 255.0 and "scaling" not in data.preprocessing
    np.testing.assert_allclose(data.train.x.numpy(), x[data.train.index.numpy()] / 255.0, rtol=1e-6)
    with pytest.raises(DataError, match="applies to vectors and tables"):
        aezoo.data.core.build("img", {"x_train": x}, normalize="standard")


def test_three_disjoint_splits_add_up_and_the_carved_test_split_is_stratified_and_seeded():
    x, y = _table(300)
    y = np.where(np.arange(300) < 240, 0, np.where(np.arange(300) < 285, 1, 2))  # 80/15/5 %
    data = aezoo.data.from_arrays(x, y, seed=3)
    d = data.describe()
    idx = [set(p.index.tolist()) for p in (data.train, data.val, data.test)]
    assert not (idx[0] & idx[1] or idx[0] & idx[2] or idx[1] & idx[2])
    assert d["n_train"] + d["n_val"] + d["n_test"] == 300 == len(set.union(*idx))
    assert data.preprocessing["test_split"] == "carved"
    assert data.test.y.bincount().tolist() == [24, 5, 1]  # 10% of 300, shared as 24 + 4.5 + 1.5 (the tie to the first)
    again = aezoo.data.from_arrays(x, y, seed=3)
    assert torch.equal(again.test.index, data.test.index) and torch.equal(again.val.index, data.val.index)
    assert not torch.equal(aezoo.data.from_arrays(x, y, seed=4).test.index, data.test.index)
    # a test split of its own is kept as it is; validation comes from train
    given = aezoo.data.from_arrays(x, y, x_test=x[:7], y_test=y[:7])
    assert given.preprocessing["test_split"] == "given" and len(given.test) == 7 and len(given.train) + len(given.val) == 300


def _csv(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_categorical_columns_are_one_hot_with_their_names(tmp_path):
    rows = "".join(f"{i},{['red', 'green', 'blue'][i % 3]},{i * 0.5},{'ab'[i % 2]}\n" for i in range(30))
    path = _csv(tmp_path, "size,colour,weight,target\n" + rows)
    data = aezoo.data.load(str(path), label_column="target", categorical=["colour"])
    pre = data.preprocessing
    assert pre["feature_names"] == ["size", "colour=blue", "colour=green", "colour=red", "weight"]
    assert pre["categories"] == {"colour": ["blue", "green", "red"]} and data.class_names == ["a", "b"]
    fs = FeatureScaling.from_json(pre["scaling"])
    onehot = fs.inverse(data.train.x).numpy()[:, 1:4]
    colours = np.array([["red", "green", "blue"][i % 3] for i in data.train.index.tolist()])
    np.testing.assert_allclose(onehot, np.stack([colours == c for c in ("blue", "green", "red")], 1), atol=1e-6)
    with pytest.raises(DataError, match=r"row 2, column 2 \('colour'\): 'red' is not a number; .*--categorical colour"):
        aezoo.data.load(str(path), label_column="target")
    # new rows through the run's categories: an unseen one is named
    new = _csv(tmp_path, "size,colour,weight\n1,green,2\n2,purple,3\n", "new.csv")
    with pytest.raises(DataError, match=r"row 3, column 2 \('colour'\): category 'purple' was not seen in training"):
        aezoo.data.load(str(new), label_column="target", categorical=["colour"], fitted=pre)


def test_csv_missing_values_are_named_or_imputed_from_the_training_split(tmp_path):
    rows = [f"{i},{i * 10}" for i in range(40)]
    rows[5] = "5,"
    rows[17] = "NA,170"
    path = _csv(tmp_path, "a,b\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"t\.csv: row 7, column 2 \('b'\): missing value \(''\); .*--impute mean\|median"):
        aezoo.data.load(str(path))
    for method in ("mean", "median"):
        data = aezoo.data.load(str(path), impute=method)
        values = np.array([[i, i * 10] for i in range(40)], float)
        values[5, 1] = values[17, 0] = np.nan
        train = values[data.train.index.numpy()]
        want = np.nanmean(train, 0) if method == "mean" else np.nanmedian(train, 0)
        assert data.preprocessing["impute"]["values"] == pytest.approx(want.tolist())
        assert data.preprocessing["impute"]["missing"] == 2
        assert not np.allclose(want, np.nanmean(values, 0))  # fitted on train, not on every row


def test_cli_table_errors_are_one_line(tmp_path):
    path = _csv(tmp_path, "a,b,kind\n1,2,x\n3,4,y\n")
    assert_one_line_error(run("train", "ae", "--data", path, "--out", tmp_path / "r", check=False),
                          r"row 2, column 3 \('kind'\): 'x' is not a number; a text column must be the label")
    path = _csv(tmp_path, "a,b,kind\n1,2,x\n3,,y\n")
    assert_one_line_error(run("train", "ae", "--data", path, "--categorical", "kind", "--out", tmp_path / "r", check=False),
                          r"row 3, column 2 \('b'\): missing value")


def test_likelihood_default_follows_the_data_kind_and_is_said(tmp_path, capsys):
    from aezoo.cli import main

    x, y = _table(60)
    path = _csv(tmp_path, "a,b,c,d,target\n" + "".join(",".join(map(str, r)) + f",{t}\n" for r, t in zip(x, y)))
    fast = ["--steps", "1", "--batch-size", "8", "--no-report", "--quiet"]
    assert main(["train", "vae", "--data", str(path), "--label-column", "target", *fast, "--out", str(tmp_path / "t")]) == 0
    err = capsys.readouterr().err
    assert "likelihood gaussian (real-valued table" in err and "49 train, 5 val, 6 test" in err
    meta = json.loads((tmp_path / "t" / "config.json").read_text())
    assert meta["config"]["likelihood"] == "gaussian" and meta["data"]["preprocessing"]["normalize"] == "standard"
    assert main(["train", "vae", "--data", "digits", "--limit", "50", *fast, "--out", str(tmp_path / "i")]) == 0
    assert "likelihood bernoulli (images scaled to [0, 1]" in capsys.readouterr().err
    assert main(["train", "vae", "--data", str(path), "--label-column", "target", "--set", "likelihood=bernoulli", *fast,
                 "--out", str(tmp_path / "b")]) == 0
    assert "likelihood bernoulli (as asked)" in capsys.readouterr().err


def test_per_feature_learned_sigma():
    model = aezoo.create("vae", input_shape=(4,), latent_dim=2, hidden=(8,), likelihood="gaussian", learn_sigma=True, sigma_per_feature=True)
    assert model.likelihood.log_sigma.shape == (4,) and model.likelihood.log_sigma.requires_grad
    x = torch.randn(5, 4)
    params = torch.randn(5, 4)
    with torch.no_grad():
        model.likelihood.log_sigma.copy_(torch.tensor([0.0, 0.5, -0.5, 1.0]))
    want = torch.distributions.Normal(params, model.likelihood.log_sigma.exp()).log_prob(x).sum(1)
    torch.testing.assert_close(model.likelihood.log_prob(params, x), want)
    with pytest.raises(aezoo.ConfigError, match="sigma_per_feature"):
        aezoo.create("vae", input_shape=(4,), sigma_per_feature=True)
