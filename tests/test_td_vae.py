"""TD-VAE (Gregor et al. 2019, arXiv:1806.03107) and the sequence datasets: the paper's claims as
assertions. The strong moving-digits check trains ~600 steps and is marked slow; a weaker fast one
stays in the default suite."""
import numpy as np
import pytest
import torch

import aezoo
from aezoo.cli import main
from aezoo.data import load
from aezoo.data.sequences import shift_sequences

TINY = {"input_shape": (6, 1, 4, 4), "latent_dim": 3, "hidden": (16,), "belief_dim": 8, "block_hidden": 8, "max_jump": 3}


def tiny(**kw):
    return aezoo.create("td_vae", **{**TINY, **kw})


def test_shapes():
    m = tiny().eval()
    x = torch.rand(5, 6, 1, 4, 4)
    with torch.no_grad():
        assert m.beliefs(x).shape == (5, 7, 8)
        assert m.encode(x).shape == (5, 6)  # two layers of 3
        assert m.reconstruct(x).shape == x.shape
        assert m.rollout(x[:, :2], n_steps=4, jump=3, n_samples=2).shape == (2, 5, 4, 1, 4, 4)
        assert m.sample(3).shape == (3, 6, 1, 4, 4)
    with pytest.raises(aezoo.ConfigError, match="jump"):
        m.rollout(x, 2, jump=4)


def test_belief_is_causal():
    """b_t summarises x_1..x_t only: changing frames after t leaves b_0..b_t exactly as they were."""
    m = tiny().eval()
    x = torch.rand(4, 6, 1, 4, 4)
    for t in range(6):
        y = x.clone()
        y[:, t:] = torch.rand_like(y[:, t:])  # perturb frames t.. (0-based), seen first by b[:, t + 1]
        with torch.no_grad():
            b, c = m.beliefs(x), m.beliefs(y)
        assert torch.equal(b[:, : t + 1], c[:, : t + 1])
        assert not torch.allclose(b[:, t + 1], c[:, t + 1])


def test_pairs_respect_max_jump():
    m = tiny(max_jump=3)
    t1, t2 = m.sample_pairs(5000)
    assert (t1 >= 0).all() and (t2 <= 6).all()
    assert set((t2 - t1).tolist()) == {1, 2, 3}


def test_loss_is_the_sum_of_its_terms():
    m = tiny()
    out = m(torch.rand(4, 6, 1, 4, 4))
    t = out.terms
    assert torch.allclose(out.loss, t["recon"] + t["kl_smoothing"] + t["kl_transition"])
    assert set(t) == {"recon", "kl_smoothing", "kl_transition", "neg_elbo_per_pair"}  # a bound per (t1, t2) pair (issue 24)


def test_rollout_baselines_are_what_they_say():
    """The three baselines of rollout_errors by hand: the last observed frame repeated, the mean of all
    frames, and x_T0 + k (x_T0 - x_T0-1) clipped to the data's range; on a sequence that brightens
    linearly the linear extrapolation is exact and the others are not."""
    m = tiny()
    ramp = torch.linspace(0.1, 0.6, 6).view(1, 6, 1, 1, 1).expand(3, 6, 1, 4, 4).contiguous()
    e = m.rollout_errors(ramp, observe=3, predict=3)
    assert set(e) == {"rollout", "last_frame", "mean_frame", "linear"} and all(v.shape == (3,) for v in e.values())
    assert float(e["linear"].abs().max()) < 1e-10
    step = 0.1
    torch.testing.assert_close(e["last_frame"], torch.tensor([1.0, 4.0, 9.0]) * step**2)
    torch.testing.assert_close(e["mean_frame"], (torch.tensor([0.4, 0.5, 0.6]) - 0.35) ** 2)
    x = torch.rand(5, 6, 1, 4, 4)
    e = m.rollout_errors(x, observe=2, predict=4)
    k = torch.arange(1, 5).view(1, 4, 1, 1, 1)
    lin = (x[:, 1:2] + k * (x[:, 1:2] - x[:, :1])).clamp(x.min(), x.max())
    torch.testing.assert_close(e["linear"], (lin - x[:, 2:6]).pow(2).flatten(2).mean(-1).mean(0))


def test_kl_terms_match_monte_carlo():
    """The analytic smoothing KL (per layer, given q_S's sample of the layer above) is unbiased for
    E_q[log q_S - log p_B]: over many draws its mean agrees with the Monte Carlo mean within a few
    standard errors."""
    torch.manual_seed(1)
    m = tiny(layers=2).eval()
    x = torch.rand(2, 6, 1, 4, 4)
    reps = 20000
    with torch.no_grad():
        b = m.beliefs(x)
        seq = torch.tensor([0, 1]).repeat(reps)
        t1 = torch.tensor([1, 0]).repeat(reps)
        t2 = torch.tensor([3, 2]).repeat(reps)
        p = m.pair_terms(x, b, seq, t1, t2)
    for s in range(2):
        pick = seq == s
        analytic = p["kl"][pick]
        mc = (p["log_q_t1"] - p["log_pb_t1"])[pick]
        se = (analytic.var() / reps + mc.var() / reps).sqrt()
        assert abs(analytic.mean() - mc.mean()) < 4 * se + 1e-4, (float(analytic.mean()), float(mc.mean()))
        assert (analytic >= -1e-5).all()  # a KL is never negative


def test_single_layer_kl_is_closed_form_gaussian_kl():
    """With one layer, the smoothing KL is exactly the Gaussian KL of q_S to p_B: check it against
    torch.distributions on the same parameters."""
    m = tiny(layers=1).eval()
    x = torch.rand(3, 6, 1, 4, 4)
    with torch.no_grad():
        b = m.beliefs(x)
        seq, t1, t2 = torch.arange(3), torch.tensor([0, 1, 2]), torch.tensor([2, 3, 5])
        torch.manual_seed(3)
        p = m.pair_terms(x, b, seq, t1, t2)
        torch.manual_seed(3)
        z2 = m.p_b(b[seq, t2])[0]
        _, mu_q, lv_q = m.q_s(torch.cat([z2, b[seq, t1], b[seq, t2], m._jump(t2 - t1)], -1))
        _, mu_p, lv_p = m.p_b(b[seq, t1])
    D = torch.distributions
    ref = D.kl_divergence(D.Normal(mu_q, (0.5 * lv_q).exp()), D.Normal(mu_p, (0.5 * lv_p).exp())).sum(-1)
    assert torch.allclose(p["kl"], ref, atol=1e-5)


# --- data ------------------------------------------------------------------------------------------
def test_shift_sequences_is_a_per_sequence_roll():
    img = torch.rand(3, 1, 5, 7)
    direction, start = torch.tensor([1, -1, 1]), torch.tensor([0, 2, 6])
    seq = shift_sequences(img, 4, direction, start)
    for i in range(3):
        for t in range(4):
            assert torch.equal(seq[i, t], torch.roll(img[i], int(start[i] + direction[i] * t), -1))


def test_moving_digits_and_oscillator_shapes():
    ds = load("moving-digits", T=8, n=50)
    assert ds.input_shape == (8, 1, 16, 16) and 0 <= float(ds.train.x.min()) and float(ds.train.x.max()) <= 1
    d = ds.train.factors[:, 0]
    assert set(d.tolist()) <= {-1, 1}
    x = ds.train.x
    assert torch.equal(x[:, 1], torch.stack([torch.roll(x[i, 0], int(d[i]), -1) for i in range(len(x))]))
    osc = load("oscillator", n=100, T=12)
    assert osc.input_shape == (12, 1) and len(osc.train) + len(osc.val) == 100


def test_user_sequences_npz(tmp_path):
    arr = np.random.default_rng(0).random((30, 5, 6, 6)).astype(np.float32)  # (N, T, H, W)
    np.savez(tmp_path / "seq.npz", x=arr)
    ds = load("sequences", path=str(tmp_path / "seq.npz"))
    assert ds.input_shape == (5, 1, 6, 6)
    with pytest.raises(aezoo.DataError, match="path"):
        load("sequences")


# --- training: the rollouts keep the digit moving the observed way -----------------------------------
def _direction_errors(model, ds, observe, predict):
    x, d = ds.test.x, ds.test.factors[:, 0]
    with torch.no_grad():
        pred = model.rollout(x[:, :observe], predict, 1, 8).mean(0)  # (B, N, 1, H, W)
    last = x[:, observe - 1]
    k = torch.arange(1, predict + 1)

    def moved(sign):  # the last observed frame rolled k pixels in the observed (or opposite) direction
        return torch.stack([torch.stack([torch.roll(last[i], int(sign * d[i] * s), -1) for s in k]) for i in range(len(x))])

    mse = lambda a, b: float((a - b).pow(2).mean())  # noqa: E731
    truth = x[:, observe : observe + predict]
    return mse(pred, truth), mse(last[:, None].expand_as(truth), truth), mse(pred, moved(1)), mse(pred, moved(-1))


def _train_moving_digits(steps, T=12):
    torch.manual_seed(0)
    ds = load("moving-digits", T=T)
    model = aezoo.create("td_vae", input_shape=ds.input_shape)
    aezoo.train(model, ds, steps=steps, epochs=None, batch_size=64, lr=2e-3, progress=False, report=False)
    return model, ds


def test_rollouts_beat_the_last_frame_fast():
    model, ds = _train_moving_digits(150)
    err, last, _, _ = _direction_errors(model, ds, observe=6, predict=5)
    assert err < last


@pytest.mark.slow
def test_rollouts_move_the_digit_the_observed_way():
    model, ds = _train_moving_digits(600, T=20)
    err, last, right, wrong = _direction_errors(model, ds, observe=10, predict=3)
    assert err < 0.8 * last
    assert right < 0.8 * wrong
    err5, last5, _, _ = _direction_errors(model, ds, observe=10, predict=10)
    assert err5 < 0.6 * last5


@pytest.mark.slow
def test_rollouts_beat_every_baseline_at_the_cli_defaults():
    """Issue 24: `aezoo train td_vae --data moving-digits` (10 epochs, the declared min_steps) rolls out
    closer to the truth than the last frame, the mean frame and linear extrapolation, and than the
    best of the three chosen at each step after the fact."""
    torch.manual_seed(0)
    ds = load("moving-digits")
    model = aezoo.create("td_vae", input_shape=ds.input_shape)
    aezoo.train(model, ds, progress=False)
    torch.manual_seed(0)
    m = model.eval_metrics(ds.test.x)
    assert m["rollout_mse"] < m["rollout_mse_best_baseline"], m


# --- the CLI: train, eval, rollout and the report --------------------------------------------------
def test_cli_rollout_eval_and_report(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "td_vae", "--data", "moving-digits", "--data-option", "T=8", "--limit", "60", "--steps", "3",
                 "--batch-size", "16", "--out", str(run), "--quiet", "--set", "hidden=[32]"]) == 0
    assert (run / "figures" / "rollouts.png").exists() and (run / "report.html").exists()
    import json

    capsys.readouterr()
    assert main(["eval", str(run), "--json", "--iw-samples", "0"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert {"neg_elbo_per_pair", "rollout_mse", "rollout_mse_last_frame", "rollout_mse_mean_frame", "rollout_mse_linear",
            "rollout_mse_best_baseline"} <= set(m) and "neg_elbo" not in m
    assert m["rollout_mse_best_baseline"] <= min(m["rollout_mse_last_frame"], m["rollout_mse_mean_frame"], m["rollout_mse_linear"])
    assert main(["rollout", str(run), "--observe", "3", "--predict", "2", "--jump", "2", "--out", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").stat().st_size > 0
    assert main(["rollout", str(run), "--observe", "3", "--predict", "4", "--samples", "2", "-n", "5", "--out", str(tmp_path / "r.npy")]) == 0
    assert np.load(tmp_path / "r.npy").shape == (2, 5, 4, 1, 16, 16)
    assert main(["rollout", str(run), "--observe", "3", "--predict", "2", "--jump", "9", "--out", str(tmp_path / "x.png")]) == 2
