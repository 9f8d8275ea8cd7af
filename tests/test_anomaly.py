"""Anomaly scores (issue 18): per-example scores agree with evaluate's terms, AUROC/AUPRC on cases with a
known answer, the VQ prior's NLL of the codes, and the CLI (score, eval --anomaly, the report section)."""
import csv
import math

import numpy as np
import pytest
import torch

import aezoo
from aezoo.evaluate.anomaly import auroc_auprc, score_kinds, scores
from aezoo.models.code_prior import attach_prior, code_metrics
from aezoo.nn.priors import CodePrior, CodePriorConfig

from test_cli import run


def test_auroc_and_auprc_on_a_constructed_case():
    s = torch.tensor([0.1, 0.4, 0.35, 0.8])
    a = torch.tensor([0, 0, 1, 1])
    auroc, auprc = auroc_auprc(s, a)
    # pairs (anomaly, normal) ranked right: (0.35 > 0.1), (0.8 > 0.1), (0.8 > 0.4); wrong: (0.35 < 0.4)
    assert auroc == pytest.approx(3 / 4)
    # ranked by score: 0.8 (anomaly, precision 1), 0.4 (normal), 0.35 (anomaly, precision 2/3) -> AP = (1 + 2/3) / 2
    assert auprc == pytest.approx(5 / 6)
    assert auroc_auprc(torch.arange(10.0), torch.arange(10) >= 7) == (1.0, 1.0)
    assert auroc_auprc(-torch.arange(10.0), torch.arange(10) >= 7)[0] == 0.0
    with pytest.raises(aezoo.DataError, match="both normal and anomalous"):
        auroc_auprc(torch.arange(3.0), torch.zeros(3))


def _vectors(n=240, seed=0):
    g = np.random.default_rng(seed)
    z = g.normal(size=(n, 2))
    x = z @ g.normal(size=(2, 6)) + 0.05 * g.normal(size=(n, 6))  # normal rows: near a plane in R^6
    y = np.zeros(n, np.int64)
    y[-40:] = 1
    x[-40:] = 2.0 * g.normal(size=(40, 6))  # anomalies: off the plane
    return x, y


@pytest.mark.parametrize("name", ["ae", "vae"])
def test_score_agrees_with_evaluate(name):
    x, y = _vectors()
    data = aezoo.data.from_arrays(x, y)
    model = aezoo.create(name, input_shape=(6,), latent_dim=2, hidden=(16,), **({"likelihood": "gaussian"} if name == "vae" else {}))
    model = aezoo.train(model, data, steps=30, batch_size=32, progress=False)
    m = aezoo.evaluate(model, data, "test", iw_samples=20)
    part = data.test
    assert score_kinds(model) == (["elbo", "nll_iw", "recon"] if name == "vae" else ["recon"])
    recon = scores(model, part.x, part.y, "recon")
    assert recon.shape == (len(part),) and float(recon.mean()) == pytest.approx(m["recon_mse"], rel=1e-5)
    if name == "vae":
        neg_elbo = scores(model, part.x, part.y, "elbo")
        assert float(neg_elbo.mean()) == pytest.approx(m["neg_elbo"], rel=1e-5)
        nll = scores(model, part.x, part.y, "nll_iw", iw_samples=20)
        assert float(nll.mean()) == pytest.approx(m["nll_iw"], rel=0.02)
        assert torch.equal(scores(model, part.x, None, "elbo", seed=3), scores(model, part.x, None, "elbo", seed=3))
    with pytest.raises(aezoo.ConfigError, match="cannot score by 'prior_nll'"):
        scores(model, part.x, None, "prior_nll")


def test_vq_members_score_by_the_prior_nll_of_their_codes():
    model = aezoo.create("vq_vae", input_shape=(1, 8, 8), latent_dim=4, channels=(4, 8), num_codes=16).eval()
    x = torch.rand(20, 1, 8, 8)
    assert score_kinds(model) == ["recon"]  # no prior yet
    h, w = model.code_grids(x[:1])[0].shape[1:]
    attach_prior(model, CodePrior(CodePriorConfig(heights=(h,), widths=(w,), num_codes=(16,), width=16, layers=1, heads=2)).eval())
    assert score_kinds(model) == ["prior_nll", "recon"]
    s = scores(model, x)
    assert float(s.mean()) / math.log(2) == pytest.approx(code_metrics(model, x)["prior_nll_bits"], rel=1e-5)


def _cli(capsys, *args):
    """The CLI in this process (no interpreter start-up per command): (exit code, stdout, stderr)."""
    from aezoo.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(result, pattern):
    import re

    code, _, err = result
    errors = [ln for ln in err.splitlines() if ln.startswith("aezoo: error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert re.search(pattern, errors[0]), errors[0]


def test_cli_score_eval_anomaly_and_the_report_section(tmp_path, capsys):
    import json

    x, y = _vectors(400)
    normal = y == 0
    rows = lambda xs, ys: "".join(",".join(f"{v:.6g}" for v in r) + f",{t}\n" for r, t in zip(xs, ys))  # noqa: E731
    head = "a,b,c,d,e,f,target\n"
    (tmp_path / "train.csv").write_text(head + rows(x[normal][:300], y[normal][:300]))
    (tmp_path / "new.csv").write_text(head + rows(np.concatenate([x[normal][300:], x[~normal]]), np.concatenate([y[normal][300:], y[~normal]])))
    out = tmp_path / "run"
    p = run("train", "ae", "--data", tmp_path / "train.csv", "--label-column", "target", "--latent-dim", "2", "--steps", "200",
            "--out", out, "--quiet", "--no-report")  # a subprocess: what a user sees
    assert "243 train, 27 val, 30 test" in p.stderr  # 300 rows: three disjoint splits
    code, stdout, _ = _cli(capsys, "score", out, "--data", tmp_path / "new.csv", "--split", "all", "--out", tmp_path / "s.csv")
    assert code == 0 and "scored by recon" in stdout
    table = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert set(table[0]) == {"index", "source", "label", "recon_mse"}  # source: the row in new.csv (issue 23)
    assert [r["source"] for r in table] == [f"row {i}" for i in range(100)]
    labels = np.array([int(r["label"]) for r in table])
    values = np.array([float(r["recon_mse"]) for r in table])
    assert [int(r["index"]) for r in table] == list(range(100))  # every row of new.csv, in order
    assert labels.tolist() == [0] * 60 + [1] * 40
    assert values[labels == 1].mean() > 5 * values[labels == 0].mean()  # off the plane: far worse reconstructed
    html = (out / "report.html").read_text()
    assert "id='anomaly_scores'" in html and "id='anomalous_examples'" in html
    code, stdout, _ = _cli(capsys, "eval", out, "--data", tmp_path / "new.csv", "--split", "test", "--anomaly", "1", "--json")
    m = json.loads(stdout)
    assert code == 0 and m["auroc_recon"] > 0.95 and m["n_anomalous"] > 0 and m["n_normal"] > 0
    _one_line_error(_cli(capsys, "score", out, "--by", "elbo", "--out", tmp_path / "t.csv"), r"model 'ae' cannot score by 'elbo': it offers recon")
    _one_line_error(_cli(capsys, "eval", out, "--anomaly", "cat"), r"--anomaly: no class 'cat'")
    # outputs in the data's original units unless --scaled
    assert _cli(capsys, "reconstruct", out, "-n", "4", "--out", tmp_path / "r.npy")[0] == 0
    assert _cli(capsys, "reconstruct", out, "-n", "4", "--scaled", "--out", tmp_path / "rs.npy")[0] == 0
    meta = json.loads((out / "config.json").read_text())
    from aezoo.data.scaling import of_run

    r, rs = np.load(tmp_path / "r.npy"), np.load(tmp_path / "rs.npy")
    np.testing.assert_allclose(r, of_run(meta).inverse(torch.from_numpy(rs)).numpy(), rtol=1e-5)
    assert abs(rs.mean()) < 3 and not np.allclose(r, rs)
