"""The CLI on small real data (digits, a Fashion-MNIST subset), and its one-line errors on bad input."""
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import aezoo
from aezoo.cli import main

FASHION = Path("/usr/share/datasets/fashion-mnist")


def run(*args, check=True):
    """Run the CLI in a subprocess: what a user sees, stdout and stderr apart."""
    p = subprocess.run([sys.executable, "-m", "aezoo", *map(str, args)], capture_output=True, text=True, env={**os.environ, "AEZOO_OFFLINE": "1"})
    if check:
        assert p.returncode == 0, p.stderr
    return p


def assert_one_line_error(p, pattern):
    assert p.returncode == 2, (p.stdout, p.stderr)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("aezoo: error:")]
    assert len(errors) == 1, f"expected one error line on stderr, got: {p.stderr}"
    assert "Traceback" not in p.stderr
    import re

    assert re.search(pattern, errors[0]), errors[0]


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae"
    assert main(["train", "vae", "--data", "digits", "--epochs", "2", "--min-steps", "0", "--latent-dim", "2", "--set", "hidden=32", "--out", str(out), "--quiet"]) == 0
    return out


def test_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "(generative, CodeGridModel)" in out  # the capabilities each declares (models/base.py)
    for name in aezoo.list_models():
        assert name in out


def test_train_writes_the_run_folder(vae_run):
    for f in ("config.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl", "report.html", "eval.json"):
        assert (vae_run / f).exists(), f
    html = (vae_run / "report.html").read_text()
    assert "samples" in html and "reconstructions" in html and "loss_curves" in html


def test_eval_json(vae_run, capsys):
    assert main(["eval", str(vae_run), "--json", "--iw-samples", "20"]) == 0
    m = json.loads(capsys.readouterr().out)
    for key in ("model", "dataset", "split", "n", "recon_mse", "neg_elbo", "kl", "nll_iw", "iw_samples", "active_units"):
        assert key in m, key
    assert m["model"] == "vae" and m["dataset"] == "digits" and m["split"] == "test" and m["iw_samples"] == 20
    assert m["nll_iw"] <= m["neg_elbo"] + 1.0


def test_sample_reconstruct_encode(vae_run, tmp_path):
    assert main(["sample", str(vae_run), "-n", "10", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (10, 1, 8, 8)
    assert main(["sample", str(vae_run), "-n", "10", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["reconstruct", str(vae_run), "-n", "5", "--out", str(tmp_path / "r.npy")]) == 0
    assert np.load(tmp_path / "r.npy").shape == (5, 1, 8, 8)
    assert main(["reconstruct", str(vae_run), "-n", "5", "--out", str(tmp_path / "r.png")]) == 0
    assert main(["encode", str(vae_run), "--out", str(tmp_path / "z.npz")]) == 0
    z = np.load(tmp_path / "z.npz")
    assert z["z"].shape[1] == 2 and z["z"].shape[0] == z["y"].shape[0]


def test_report_rebuilds(vae_run):
    (vae_run / "report.html").unlink()
    assert main(["report", str(vae_run)]) == 0
    assert (vae_run / "report.html").exists()


@pytest.mark.skipif(not FASHION.exists(), reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_subset(tmp_path):
    p = run("train", "ae", "--data", "fashion-mnist", "--limit", "2000", "--epochs", "3", "--lr", "3e-3", "--set", "hidden=64", "--out", tmp_path / "ae", "--quiet")
    assert "fashion-mnist" in p.stderr
    m = json.loads(run("eval", tmp_path / "ae", "--json").stdout)
    data = aezoo.data.load("fashion-mnist", limit=2000)
    mean_image_mse = float((data.test.x - data.train.x.mean(0)).pow(2).mean())
    assert m["dataset"] == "fashion-mnist" and m["recon_mse"] < 0.8 * mean_image_mse


def test_user_arrays_csv_and_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((64, 12), dtype=np.float32), y=rng.integers(0, 3, 64))
    run("train", "ae", "--data", tmp_path / "d.npz", "--epochs", "1", "--latent-dim", "2", "--out", tmp_path / "r1", "--quiet", "--no-report")
    rows = "\n".join(",".join(f"{v:.3f}" for v in r) + f",{i % 2}" for i, r in enumerate(rng.random((40, 5))))
    (tmp_path / "t.csv").write_text("a,b,c,d,e,label\n" + rows + "\n")
    run("train", "ae", "--data", tmp_path / "t.csv", "--label-column", "label", "--epochs", "1", "--latent-dim", "2", "--out", tmp_path / "r2", "--quiet", "--no-report")
    cfg = json.loads((tmp_path / "r2" / "config.json").read_text())
    assert cfg["config"]["input_shape"] == [5] and cfg["data"]["num_classes"] == 2
    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (10, 10), dtype=np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    # --min-steps 0: one epoch of 12 images, not the VAE's floor of 1,000 steps (this tests reading the folder)
    run("train", "vae", "--data", tmp_path / "imgs", "--epochs", "1", "--min-steps", "0", "--latent-dim", "2", "--out", tmp_path / "r3", "--quiet", "--no-report")
    cfg = json.loads((tmp_path / "r3" / "config.json").read_text())
    assert cfg["config"]["input_shape"] == [1, 10, 10] and cfg["data"]["class_names"] == ["cat", "dog"]


def test_bad_inputs_give_one_line_errors(tmp_path):
    bad_magic = tmp_path / "train-images-idx3-ubyte"
    bad_magic.write_bytes(b"\x00\x00\x07\x03" + b"\x00" * 20)
    assert_one_line_error(run("train", "ae", "--data", bad_magic, "--quiet", check=False), "magic")
    gz = tmp_path / "x-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02" * 3 + b"\x01" * 18)[:-10])
    assert_one_line_error(run("train", "ae", "--data", gz, "--quiet", check=False), r"gzip|truncated|corrupt")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run("train", "ae", "--data", empty, "--quiet", check=False), r"\.png")
    nan = tmp_path / "nan.npz"
    np.savez(nan, x=np.array([[0.0, np.nan], [1.0, 2.0]], dtype=np.float32))
    assert_one_line_error(run("train", "ae", "--data", nan, "--quiet", check=False), "NaN")
    assert_one_line_error(run("train", "no_such_model", "--data", "digits", check=False), "unknown model 'no_such_model'")
    assert_one_line_error(run("train", "vae", "--data", "digits", "--set", "betta=2", "--quiet", check=False), "betta")
    assert_one_line_error(run("train", "vae", "--data", "digits", "--set", "mc_samples=two", "--quiet", check=False), "mc_samples")
    assert_one_line_error(run("train", "vae", "--data", "digits", "--set", "likelihood=poisson", "--quiet", check=False), "likelihood")
    assert_one_line_error(run("train", "vae", "--data", tmp_path / "nope.npz", check=False), "nope.npz")
    assert_one_line_error(run("eval", tmp_path / "no_run", check=False), "no_run")
    assert_one_line_error(run("sample", tmp_path / "no_run", "--out", tmp_path / "s.png", check=False), "no_run")


def test_sampling_a_non_generative_model_is_a_clear_error(tmp_path):
    run("train", "ae", "--data", "digits", "--limit", "200", "--epochs", "1", "--out", tmp_path / "ae", "--quiet", "--no-report")
    assert_one_line_error(run("sample", tmp_path / "ae", "--out", tmp_path / "s.png", check=False), "not generative")


def test_missing_named_dataset_says_how_to_get_it(tmp_path, monkeypatch):
    p = subprocess.run([sys.executable, "-m", "aezoo", "train", "ae", "--data", "mnist", "--data-dir", str(tmp_path), "--quiet"],
                       capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path), "AEZOO_OFFLINE": "1"})
    assert_one_line_error(p, r"mnist")
