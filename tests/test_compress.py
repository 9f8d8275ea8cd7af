"""Compression: a VQ run's codes entropy-coded with its prior. Round trips are exact (also across
processes), files cost what the prior promises, and bad files give one-line errors."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import aezoo
from aezoo.cli import main
from aezoo.run import fit_prior
from aezoo.compress import code_grids, decode_grids, decompress_codes, file_bits, read_header
from aezoo.compress.coder import THREADS

pytest.importorskip("constriction")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "aezoo", *map(str, args)], capture_output=True, text=True, env={**os.environ, "AEZOO_OFFLINE": "1"})


def assert_one_line_error(returncode, stderr, pattern):
    import re

    assert returncode == 2, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("aezoo: error:") and "Traceback" not in stderr, stderr
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture(scope="module")
def vq_run(tmp_path_factory):
    """vq_vae on digits with a 4x4 grid of 32 codes, and its prior: a small trained model."""
    run = tmp_path_factory.mktemp("compress") / "vq"
    assert main(["train", "vq_vae", "--data", "digits", "--epochs", "8", "--lr", "3e-3", "--set", "channels=16", "--set", "latent_dim=8",
                 "--set", "num_codes=32", "--out", str(run), "--quiet", "--no-report"]) == 0
    assert main(["train-prior", str(run), "--epochs", "8", "--min-steps", "0", "--lr", "3e-3", "--width", "32", "--layers", "2", "--heads", "2", "--dropout", "0",
                 "--quiet", "--no-report"]) == 0
    return run


@pytest.fixture(scope="module")
def digits():
    return aezoo.data.load("digits")


def test_round_trip_is_encode_then_decode_exactly(vq_run, digits):
    model = aezoo.load(vq_run)
    x = digits.test.x[:300]
    blob = aezoo.compress(model, x, chunk=128)  # three chunks, the last one short
    grids = decompress_codes(model, blob)
    assert all(torch.equal(a, b) for a, b in zip(grids, code_grids(model, x)))
    x_hat = aezoo.decompress(model, blob)
    assert torch.equal(x_hat, decode_grids(model, code_grids(model, x)))
    with torch.no_grad():
        assert torch.equal(x_hat[:200], model.decode_codes(model.code_grids(x[:200])))  # one batch: model.encode then decode
    h = read_header(blob)
    assert (h.count, h.chunk, h.grids, h.input_shape, h.model) == (300, 128, [(4, 4, 32)], (1, 8, 8), "vq_vae")


def test_file_bits_match_the_priors_nll(vq_run, digits):
    model = aezoo.load(vq_run)
    x = torch.cat([digits.train.x, digits.test.x])
    nll_bits = model.eval_metrics(x)["prior_nll_bits"] * x.shape[0]  # what the prior promises, in bits
    blob = aezoo.compress(model, x)
    payload, header = file_bits(blob)
    assert abs(payload / nll_bits - 1) < 0.02, (payload, nll_bits)
    assert header <= 8 * 100 and len(blob) * 8 == payload + header
    fixed = x.shape[0] * 16 * math.log2(32)
    assert payload < 0.9 * fixed  # the prior beats fixed-length codes


def test_decoding_in_other_processes_reproduces_the_codes(vq_run, digits, tmp_path):
    f, out = tmp_path / "digits.aez", tmp_path / "back.npz"
    p = run_cli("compress", vq_run, "--data", "digits", "--limit", "150", "--out", f)
    assert p.returncode == 0 and "150 inputs" in p.stdout, p.stderr
    p = run_cli("decompress", f, "--out", out)  # the run folder is read from the file
    assert p.returncode == 0, p.stderr
    model = aezoo.load(vq_run)
    x = digits.test.x[:150]
    with np.load(out, allow_pickle=False) as back:
        assert np.array_equal(back["codes"], code_grids(model, x)[0].numpy())
        assert np.array_equal(back["x"], decode_grids(model, code_grids(model, x)).numpy())
    assert main(["decompress", str(f), "--out", str(tmp_path / "pngs")]) == 0
    assert len(list((tmp_path / "pngs").glob("*.png"))) == 150
    assert THREADS == 1  # the thread count both ends use; see compress/coder.py


def test_bad_files_give_one_line_errors(vq_run, tmp_path, capsys):
    f = tmp_path / "a.aez"
    assert main(["compress", str(vq_run), "--data", "digits", "--limit", "40", "--out", str(f)]) == 0
    blob = f.read_bytes()
    (tmp_path / "short.aez").write_bytes(blob[:-7])
    p = run_cli("decompress", tmp_path / "short.aez", "--out", tmp_path / "x.npz")
    assert_one_line_error(p.returncode, p.stderr, r"short\.aez: truncated")
    flipped = bytearray(blob)
    flipped[-5] ^= 0x10
    (tmp_path / "flip.aez").write_bytes(bytes(flipped))
    (tmp_path / "junk.aez").write_bytes(b"PK\x03\x04 not ours")
    other = tmp_path / "other"
    assert main(["train", "vq_vae", "--data", "digits", "--epochs", "1", "--set", "channels=16", "--set", "latent_dim=8", "--set", "num_codes=32",
                 "--out", str(other), "--quiet", "--no-report"]) == 0
    assert main(["train-prior", str(other), "--epochs", "1", "--min-steps", "0", "--width", "32", "--layers", "2", "--heads", "2", "--quiet", "--no-report"]) == 0
    capsys.readouterr()
    for args, pattern in (
        (["decompress", str(tmp_path / "flip.aez")], "corrupt: the file does not match its checksum"),
        (["decompress", str(tmp_path / "junk.aez")], "not an aezoo compressed file"),
        (["decompress", str(f), "--run", str(other)], "compressed with another model"),
        (["compress", str(vq_run), "--data", "digits", "--stages", "2", "--out", str(tmp_path / "b.aez")], "decodes 1 code grid"),
    ):
        code = main([*args, "--out", str(tmp_path / "x.npz")] if args[0] == "decompress" else args)
        assert_one_line_error(code, capsys.readouterr().err, pattern)


def test_models_that_cannot_compress_say_why(tmp_path, capsys):
    assert main(["train", "ae", "--data", "digits", "--epochs", "1", "--set", "hidden=16", "--out", str(tmp_path / "ae"), "--quiet", "--no-report"]) == 0
    capsys.readouterr()
    assert_one_line_error(main(["compress", str(tmp_path / "ae"), "--data", "digits", "--out", str(tmp_path / "a.aez")]), capsys.readouterr().err, "continuous codes")
    model = aezoo.create("vq_vae", input_shape=(1, 8, 8), latent_dim=4, channels=(8,), num_codes=8)
    with pytest.raises(aezoo.NotSupportedError, match="train-prior"):
        aezoo.compress(model, torch.rand(3, 1, 8, 8))


@pytest.mark.parametrize("quantizer", ["rvq", "vq2"])
def test_several_grids_code_at_each_rate(quantizer):
    torch.manual_seed(0)
    data = aezoo.data.from_arrays(torch.rand(200, 1, 8, 8), val_fraction=0)
    if quantizer == "rvq":
        model = aezoo.create("vq_vae", input_shape=(1, 8, 8), latent_dim=4, channels=(8,), num_codes=16, quantizer="rvq", stages=3)
    else:
        model = aezoo.create("vq_vae2", input_shape=(1, 8, 8), latent_dim=4, channels=(8,), num_codes=16)
    aezoo.train(model, data, epochs=2, batch_size=50, progress=False, report=False)
    fit_prior(model, data, width=16, layers=1, heads=2, dropout=0.0, epochs=2, batch_size=50, progress=False)
    x = data.train.x[:60]
    grids = code_grids(model, x)
    sizes = []
    for s in model.grid_prefixes():
        blob = aezoo.compress(model, x, stages=s)
        back = decompress_codes(model, blob)
        assert len(back) == s and all(torch.equal(a, b) for a, b in zip(back, grids))
        assert torch.equal(aezoo.decompress(model, blob), decode_grids(model, grids[:s]))  # decoded at rate s
        sizes.append(len(blob))
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)  # each stage costs bits
    assert model.grid_prefixes() == ((1, 2, 3) if quantizer == "rvq" else (2,))


def test_eval_rate_distortion_and_its_figure(vq_run, capsys):
    assert main(["eval", str(vq_run), "--rate-distortion", "60", "--iw-samples", "0", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["rd_images"] == 60 and m["rd_grids1_bpp"] > m["rd_grids1_bpp_nll"] > 0
    assert m["rd_grids1_bpp_fixed"] == pytest.approx(16 * 5 / 64)
    for key in ("rd_png_bpp", "rd_jpeg_q50_bpp", "rd_jpeg_q50_psnr", "rd_jpeg_q50_single_bpp", "rd_grids1_psnr"):
        assert key in m, key
    from aezoo.viz.report import build_report

    html = build_report(vq_run, strict=True).read_text()
    assert "rate_distortion" in html and "neighbours" in html
