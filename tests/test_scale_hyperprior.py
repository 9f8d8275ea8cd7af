"""The scale hyperprior (Ballé et al. 2018) and its files (issue 25): the paper's entropy models are
normalised distributions, the objective trades rate for distortion through lambda, files cost what the
model estimates, and they decode to the same symbols whatever thread count, autocast or device wrote
them, because the entropy parameters come from an integer network (Ballé et al. 2019)."""
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import aezoo
from aezoo.cli import main
from aezoo.compress import learned
from aezoo.errors import DataError
from aezoo.nn.entropy import EntropyBottleneck, gaussian_likelihood
from aezoo.nn.gdn import GDN
from aezoo.nn.integer import ACT_BITS, ACT_MAX, WEIGHT_BITS, WEIGHT_MAX, FixedPointConv, qrelu_exact
from conftest import one_line_error

FASHION = Path("/usr/share/datasets/fashion-mnist")


def codec(**cfg):
    torch.manual_seed(0)
    return aezoo.create("scale_hyperprior", **{"input_shape": (1, 16, 16), "latent_dim": 16, "channels": 16, **cfg}).eval()


@pytest.fixture(scope="module")
def digits():
    return aezoo.data.load("digits")


@pytest.fixture(scope="module")
def trained(digits):
    """A small codec trained briefly on the 8x8 digits: past its random start, as files in use are."""
    torch.manual_seed(0)
    model = aezoo.create("scale_hyperprior", input_shape=(1, 8, 8), latent_dim=32, channels=32)
    aezoo.train(model, digits, steps=150, progress=False, report=False)
    return model.eval()


# --- the paper's entropy models ----------------------------------------------------------------
def test_gdn_is_the_papers_normalisation():
    gdn, igdn = GDN(3), GDN(3, inverse=True)
    x = torch.randn(2, 3, 4, 5)
    beta, gamma = gdn.beta_raw**2 + 1e-6, gdn.gamma_raw**2
    norm = beta[None, :, None, None] + torch.einsum("ij,bjhw->bihw", gamma, x * x)
    torch.testing.assert_close(gdn(x), x / norm.sqrt())
    torch.testing.assert_close(igdn(x), x * norm.sqrt())


def test_the_factorized_density_is_a_distribution_over_the_integers():
    torch.manual_seed(0)
    eb = EntropyBottleneck(4)
    with torch.no_grad():  # a trained-looking density: shifted and narrower than at init
        for b in eb.biases:
            b.add_(torch.randn_like(b))
    table = eb.table(63)
    assert table.shape == (4, 127)
    torch.testing.assert_close(table.sum(1), torch.ones(4, dtype=torch.float64))
    z = torch.arange(-20, 21.0).view(1, 1, -1, 1).expand(1, 4, -1, 1)
    p = eb.likelihood(z)[0, :, :, 0]  # (4, 41)
    torch.testing.assert_close(p.double(), table[:, 43:84], atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("mu", [0.0, 0.3, -2.7])
def test_the_gaussian_conditional_is_normal_convolved_with_a_unit_uniform(mu):
    sigma = torch.tensor([0.11, 0.7, 3.0, 40.0]).view(-1, 1)
    y = torch.arange(-400, 401.0).view(1, -1) + mu  # y_hat = round(y - mu) + mu
    p = gaussian_likelihood(y, sigma.expand_as(y * sigma), torch.full_like(y, mu))
    normal = torch.distributions.Normal(mu, sigma.double())
    exact = normal.cdf(y.double() + 0.5) - normal.cdf(y.double() - 0.5)
    torch.testing.assert_close(p.double(), exact.clamp_min(1e-9), atol=2e-7, rtol=1e-4)
    torch.testing.assert_close(p.double().sum(1), torch.ones(4, dtype=torch.float64), atol=1e-5, rtol=0)


def test_lambda_trades_rate_for_distortion(digits):
    """Eq. 9: a larger lambda buys a better image with more bits, and each trained model beats the other on
    its own rate-distortion objective (a test, not a curve: two lambdas, 400 steps on the 8x8 digits)."""
    results = {}
    for lmbda in (0.002, 0.2):
        torch.manual_seed(0)
        m = aezoo.create("scale_hyperprior", input_shape=(1, 8, 8), latent_dim=32, channels=32, lmbda=lmbda)
        aezoo.train(m, digits, steps=400, progress=False, report=False, lr_schedule="constant", warmup_steps=0)
        m.eval()
        with torch.no_grad():
            terms = m(digits.test.x).terms
        results[lmbda] = float(terms["bpp"]), float(terms["mse"])
    (r_lo, d_lo), (r_hi, d_hi) = results[0.002], results[0.2]
    assert r_lo < 0.7 * r_hi and d_hi < d_lo, results
    # each model is the better one on its own objective R + lambda 255^2 D
    for lmbda, mine, other in ((0.002, results[0.002], results[0.2]), (0.2, results[0.2], results[0.002])):
        assert mine[0] + lmbda * 255**2 * mine[1] < other[0] + lmbda * 255**2 * other[1], results


# --- integer arithmetic: exact, hence equal everywhere ----------------------------------------
def _int_conv(a: torch.Tensor, w: torch.Tensor, b: torch.Tensor, stride: int, pad: int) -> torch.Tensor:
    """The same convolution in int64 (unfold + integer matmul): the ground truth of exactness."""
    cols = F.unfold(a.double(), w.shape[-1], padding=pad, stride=stride).round().long()  # (B, C*k*k, L)
    out = torch.einsum("ok,bkl->bol", w.flatten(1), cols) + b.view(1, -1, 1)
    h = (a.shape[-2] + 2 * pad - w.shape[-1]) // stride + 1
    return out.view(a.shape[0], w.shape[0], h, -1)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), c_in=st.integers(1, 64), stride=st.sampled_from([1, 2]), scale=st.floats(0.01, 40.0))
def test_the_integer_layer_is_exact_at_its_bounds(seed, c_in, stride, scale):
    g = torch.Generator().manual_seed(seed)
    layer = FixedPointConv(c_in, 3, 5, stride)
    with torch.no_grad():
        layer.weight.copy_((torch.rand(layer.weight.shape, generator=g) * 2 - 1) * scale)  # clamped to WEIGHT_MAX inside
        layer.bias.copy_((torch.rand(3, generator=g) * 2 - 1) * scale)
    a = torch.randint(0, int(ACT_MAX * 2**ACT_BITS) + 1, (2, c_in, 7, 6), generator=g).double()  # the largest activations
    w = torch.round(layer.weight.double().clamp(-WEIGHT_MAX, WEIGHT_MAX) * 2**WEIGHT_BITS).long()
    b = torch.round(layer.bias.double() * 2 ** (WEIGHT_BITS + ACT_BITS)).long()
    exact = layer.exact(a)
    assert torch.equal(exact, _int_conv(a, w, b, stride, 2).double())


def test_a_layer_too_wide_to_stay_exact_is_refused():
    with pytest.raises(ValueError, match="exact integers"):
        FixedPointConv(2**24, 1, 5)


def test_entropy_parameters_do_not_depend_on_threads_or_autocast(trained):
    x = torch.rand(40, 1, 8, 8)
    z, y = trained.symbols(x)
    before = torch.get_num_threads()
    try:
        runs = []
        for threads, amp in ((1, False), (2, False), (2, True)):
            torch.set_num_threads(threads)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                runs.append(trained.entropy_parameters(z, tuple(y.shape[-2:]))[0])
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(runs[0], r) for r in runs[1:])


def test_the_training_view_is_the_integer_network(trained):
    """Training sees the integer grids through straight-through rounding: the scale indices it learns
    are (but for rare rounding ties in fp32) those the coder uses."""
    with torch.no_grad():
        x = torch.rand(64, 1, 8, 8)
        y = trained.analysis(x)
        z = torch.round(trained.hyper_analysis(y)).clamp(-63, 63)
        soft, _ = trained.hyper_synthesis(z, tuple(y.shape[-2:]))
        hard, _ = trained.entropy_parameters(z.long(), tuple(y.shape[-2:]))
    assert (soft.long() == hard).float().mean() > 0.99


# --- files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("entropy", ["scale", "mean_scale"])
def test_files_round_trip_and_cost_what_the_model_estimates(entropy):
    model = codec(entropy=entropy)
    x = torch.rand(300, 1, 16, 16)
    blob = aezoo.compress(model, x)
    header, z, y = learned.decompress_symbols(model, blob)
    z0, y0 = learned.symbols(model, x)
    assert torch.equal(z, z0) and torch.equal(y, y0)
    estimate = learned.bits_estimate(model, z0, y0)
    payload = 8 * len(learned.unpack(blob)[1])
    assert estimate <= payload <= 1.01 * estimate + 64  # the coder's overhead: under 1% (and one flush)
    torch.testing.assert_close(aezoo.decompress(model, blob), model.reconstruct(x), rtol=0, atol=0)
    assert aezoo.compress(model, x) == blob  # deterministic


def test_files_decode_alike_whatever_wrote_them(trained):
    """Files written with 1 or 2 threads, or under bf16 autocast, decode to exactly their symbols with
    the other settings (the issue's CPU vs CUDA check is the same code path: entropy_parameters runs
    on the CPU in exact arithmetic)."""
    x = torch.rand(30, 1, 8, 8)
    before = torch.get_num_threads()
    settings_ = [(1, False), (2, False), (1, True)]
    try:
        files = []
        for threads, amp in settings_:
            torch.set_num_threads(threads)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                files.append((learned.symbols(trained, x), aezoo.compress(trained, x)))
        for (sym, blob), (threads, _) in zip(files, settings_[::-1]):
            torch.set_num_threads(threads)
            _, z, y = learned.decompress_symbols(trained, blob)
            assert torch.equal(z, sym[0]) and torch.equal(y, sym[1])
    finally:
        torch.set_num_threads(before)


def test_images_of_any_size(trained):
    x = torch.rand(3, 1, 37, 50)
    blob = aezoo.compress(trained, x)
    assert learned.unpack(blob)[0].input_shape == (1, 37, 50)
    assert aezoo.decompress(trained, blob).shape == (3, 1, 37, 50)


def test_hostile_files_are_one_line(trained):
    blob = aezoo.compress(trained, torch.rand(20, 1, 8, 8))
    header, payload = learned.unpack(blob)
    with pytest.raises(DataError, match="checksum"):
        aezoo.decompress(trained, blob[:-5] + bytes([blob[-5] ^ 1]) + blob[-4:])
    with pytest.raises(DataError, match="truncated"):
        aezoo.decompress(trained, blob[:-4])
    # a header claiming 2**32 - 1 inputs (checksums recomputed, as an attacker would) is refused before decoding
    bomb = learned.pack(learned.Header(header.model_hash, 2**32 - 1, header.input_shape, header.blocks, header.codes_crc,
                                       header.model, header.run), payload)
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="need at least"):
        aezoo.decompress(trained, bomb)
    assert time.perf_counter() - t0 < 1
    other = codec()
    with pytest.raises(DataError, match="another model"):
        aezoo.decompress(aezoo.create("scale_hyperprior", input_shape=(1, 8, 8), latent_dim=32, channels=32), blob)
    with pytest.raises(DataError, match="cannot decode"):
        aezoo.decompress(aezoo.create("vq_vae", input_shape=(1, 8, 8)), blob)
    with pytest.raises(DataError, match="channel"):
        aezoo.compress(other, torch.rand(2, 3, 16, 16))


def test_cli_compresses_and_decompresses_a_codec_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "scale_hyperprior", "--data", "digits", "--steps", "20", "--out", str(run), "--quiet", "--no-report",
                 "--set", "channels=16", "--set", "latent_dim=16"]) == 0
    out = tmp_path / "digits.aez"
    assert main(["compress", str(run), "--data", "run", "--limit", "12", "--out", str(out)]) == 0
    assert main(["decompress", str(out), "--out", str(tmp_path / "back.npz")]) == 0
    back = np.load(tmp_path / "back.npz")
    assert back["x"].shape == (12, 1, 8, 8) and back["y"].shape[0] == 12
    capsys.readouterr()
    code = main(["compress", str(run), "--data", "run", "--limit", "2", "--stages", "2", "--out", str(tmp_path / "s.aez")])
    one_line_error(capsys, code, "rate is set by training")


def test_evaluation_measures_it_as_a_codec(trained, digits):
    from aezoo.evaluate.codec import codec_metrics

    m = codec_metrics(trained, digits.test.x[:200])
    assert abs(m["payload_over_estimate"] - 1) < 0.01
    assert m["bpp_file"] >= m["bpp"] and math.isfinite(m["psnr"]) and m["encode_mpps"] > 0


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.exists(), reason="Fashion-MNIST is not installed")
def test_defaults_beat_jpeg_and_webp_on_fashion_mnist():
    """The claim with the CLI's defaults (10 epochs on Fashion-MNIST, about 40 minutes on 2 cores)."""
    from aezoo.evaluate.codec import codec_metrics

    data = aezoo.data.load("fashion-mnist")
    torch.manual_seed(0)
    model = aezoo.create("scale_hyperprior", input_shape=data.input_shape)
    aezoo.train(model, data, epochs=10, progress=False, report=False)
    m = codec_metrics(model.eval(), data.test.x[:500])
    assert m["psnr_gain_vs_jpeg"] > 0 and m["psnr_gain_vs_webp"] > 0, m
