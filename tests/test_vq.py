"""VQ-VAE / VQ-VAE-2 claims (van den Oord et al. 2017, arXiv:1711.00937; Razavi et al. 2019,
arXiv:1906.00446) stated as assertions, on constructed tensors."""
import math

import numpy as np
import pytest
import torch

import aezoo
from aezoo.cli import main
from aezoo.run import fit_prior
from aezoo.models.code_prior import save_prior
from aezoo.nn.priors import CodePrior, CodePriorConfig
from aezoo.nn.quantizer import VectorQuantizer, nearest_code
from aezoo.train.checkpoint import load_model


def test_straight_through_forward_is_the_code_and_backward_is_identity():
    q = VectorQuantizer(8, 4).eval()
    z_e = torch.randn(3, 4, 5, 5, requires_grad=True)
    z_q, idx, _ = q(z_e)
    assert idx.shape == (3, 5, 5)
    assert torch.equal(z_q, q.codebook[idx].movedim(-1, 1))  # the selected codebook vector, exactly
    flat = z_e.detach().movedim(1, -1).reshape(-1, 4)
    assert torch.equal(idx.flatten(), torch.cdist(flat, q.codebook.detach()).argmin(1))  # nearest by Euclidean distance
    g = torch.randn_like(z_q)
    (z_q * g).sum().backward()  # a decoder's gradient dL/dz_q = g
    assert torch.equal(z_e.grad, g)  # reaches the encoder unchanged


def test_commitment_moves_only_the_encoder_and_codebook_term_only_the_codebook():
    q = VectorQuantizer(8, 4, beta=0.25).eval()
    z_e = torch.randn(3, 4, 2, 2, requires_grad=True)
    _, _, aux = q(z_e)
    aux["commitment"].backward(retain_graph=True)
    assert z_e.grad.abs().sum() > 0
    assert q.codebook.grad is None or q.codebook.grad.abs().sum() == 0
    z_e.grad = None
    aux["codebook"].backward()
    assert q.codebook.grad.abs().sum() > 0
    assert z_e.grad is None or z_e.grad.abs().sum() == 0
    assert torch.allclose(aux["commitment"], 0.25 * aux["codebook"])  # same distance, beta apart


def test_ema_moves_each_used_code_to_the_running_mean_of_its_vectors():
    decay, eps = 0.5, 1e-5
    q = VectorQuantizer(3, 2, ema=True, decay=decay, eps=eps, restart=False)
    q.codebook.data = torch.tensor([[0.0, 0.0], [10.0, 10.0], [-50.0, 50.0]])
    q.ema_sum.copy_(q.codebook.data)
    a = torch.tensor([[0.0, 2.0], [2.0, 0.0]])  # assigned to code 0, mean (1, 1)
    b = torch.tensor([[9.0, 9.0], [11.0, 11.0], [10.0, 13.0]])  # code 1, mean (10, 11)
    z = torch.cat([a, b]).view(5, 2, 1, 1)
    q.train()
    q(z)
    # one step of appendix A.1: N <- d N + (1 - d) n, m <- d m + (1 - d) sum, e = m / N (Laplace-smoothed N)
    n_i = torch.tensor([2.0, 3.0, 0.0])
    count = decay * 1 + (1 - decay) * n_i
    total = count.sum()
    smoothed = (count + eps) / (total + 3 * eps) * total
    m = decay * torch.tensor([[0.0, 0.0], [10.0, 10.0], [-50.0, 50.0]]) + (1 - decay) * torch.stack([a.sum(0), b.sum(0), torch.zeros(2)])
    assert torch.allclose(q.codebook, m / smoothed[:, None], atol=1e-5)
    for _ in range(40):
        q(z)
    assert torch.allclose(q.codebook[0], a.mean(0), atol=1e-3)
    assert torch.allclose(q.codebook[1], b.mean(0), atol=1e-3)
    assert torch.isfinite(q.codebook[2]).all()  # unused: Laplace smoothing keeps m / N finite as N -> 0


def _stranded(restart: bool, ema: bool):
    """16 tight clusters; every code starts at one far point, so nearest-neighbour uses one code."""
    torch.manual_seed(0)
    centres = torch.stack(torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij"), -1).view(16, 2) * 5
    q = VectorQuantizer(16, 2, ema=ema, decay=0.9, restart=restart)
    q.codebook.data = torch.full((16, 2), 100.0)
    if ema:
        q.ema_sum.copy_(q.codebook.data)
    opt = torch.optim.Adam([q.codebook], lr=0.5) if not ema else None
    q.train()
    for _ in range(80):
        z = (centres[torch.randint(0, 16, (256,))] + 0.1 * torch.randn(256, 2)).view(256, 2, 1, 1)
        _, _, aux = q(z)
        assert all(torch.isfinite(v).all() for v in aux.values())
        if opt is not None:
            opt.zero_grad()
            aux["loss"].backward()
            opt.step()
    assert torch.isfinite(q.codebook).all()
    z = (centres.repeat(20, 1) + 0.1 * torch.randn(320, 2))
    return torch.bincount(nearest_code(z, q.codebook.detach()), minlength=16)


@pytest.mark.parametrize("ema", [False, True])
def test_dead_code_restart_revives_stranded_codes(ema):
    assert (_stranded(restart=False, ema=ema) == 0).any()  # without restarts some stay stranded
    counts = _stranded(restart=True, ema=ema)
    assert (counts > 0).all(), counts


def test_quantizer_distances_in_fp32_under_autocast():
    q = VectorQuantizer(32, 8).eval()
    z = torch.randn(4, 8, 3, 3)
    _, idx32, _ = q(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z_q, idx, aux = q(z.bfloat16())
    assert z_q.dtype == torch.bfloat16 and aux["commitment"].dtype == torch.float32
    assert (idx == idx32).float().mean() > 0.9  # only bf16 rounding of the inputs can flip a choice


def test_kmeans_init_uses_the_data():
    model = aezoo.create("vq_vae", input_shape=(1, 8, 8), latent_dim=4, channels=(4, 8), num_codes=8, kmeans_init=True)
    x = torch.rand(64, 1, 8, 8)
    before = model.eval_metrics(x)["perplexity"]
    model.on_fit_start(x)
    assert model.eval_metrics(x)["perplexity"] > before


def test_prior_is_causal_and_conditions_the_bottom_on_the_top():
    cfg = CodePriorConfig(heights=(2, 3), widths=(2, 3), num_codes=(5, 7), width=16, layers=2, heads=2, dropout=0.0)
    prior = CodePrior(cfg).eval()
    top, bottom = prior.grids
    t = torch.randint(0, 5, (4, 4))
    b = torch.randint(0, 7, (4, 9))
    with torch.no_grad():
        base = bottom.logits(b, t)
        for j in range(9):
            b2 = b.clone()
            b2[:, j] = (b2[:, j] + 1) % 7
            changed = bottom.logits(b2, t)
            assert torch.allclose(changed[:, : j + 1], base[:, : j + 1], atol=1e-5), f"cell {j} leaked backwards"
            if j < 8:
                assert not torch.allclose(changed[:, j + 1 :], base[:, j + 1 :])
        t2 = (t + 1) % 5
        assert not torch.allclose(bottom.logits(b, t2), base)  # the bottom reads the top codes
        tb = top.logits(t)
        for j in range(4):
            t3 = t.clone()
            t3[:, j] = (t3[:, j] + 1) % 5
            assert torch.allclose(top.logits(t3)[:, : j + 1], tb[:, : j + 1], atol=1e-5)
        codes = prior.sample(3, temperature=0.7)
    assert [c.shape for c in codes] == [(3, 2, 2), (3, 3, 3)]
    assert codes[0].max() < 5 and codes[1].max() < 7
    x = torch.cat([c.flatten(1) for c in codes], 1)
    assert torch.isfinite(prior.nll(x)).all() and (prior.nll(x) > 0).all()


@pytest.mark.parametrize("name", ["vq_vae", "vq_vae2"])
def test_second_stage_prior_round_trip(name, tmp_path):
    model = aezoo.create(name, input_shape=(1, 8, 8), latent_dim=4, channels=(4, 8), num_codes=16)
    data = aezoo.data.from_arrays(torch.rand(96, 1, 8, 8), val_fraction=0.25)
    aezoo.train(model, data, out=tmp_path, epochs=1, batch_size=32, progress=False, report=False)
    with pytest.raises(aezoo.NotSupportedError, match="train-prior"):
        model.sample(2)
    prior, _ = fit_prior(model, data, width=16, layers=1, heads=2, epochs=1, batch_size=32, progress=False)
    save_prior(tmp_path, prior)
    again = load_model(tmp_path)  # load_model picks the prior up through the model's on_load hook
    assert again.prior is not None and "prior" not in dict(again.named_children())
    torch.manual_seed(1)
    s = again.sample(5, temperature=0.5)
    assert s.shape == (5, 1, 8, 8) and torch.isfinite(s).all()
    m = again.eval_metrics(data.test.x)
    grids = again.code_grids(data.test.x[:1])
    assert m["bits_per_input"] == sum(g[0].numel() for g in grids) * math.log2(16)
    assert 0 < m["prior_nll_bits"] < 10 * m["bits_per_input"]
    assert {k for k in m if k.startswith("perplexity")} == ({"perplexity"} if name == "vq_vae" else {"perplexity_top", "perplexity_bottom"})


def test_cli_train_prior_then_sample(tmp_path, capsys):
    run = tmp_path / "run"
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).random((120, 8, 8)).astype(np.float32))
    data = ["--data", str(tmp_path / "d.npz")]
    assert main(["train", "vq_vae", *data, "--epochs", "1", "--out", str(run), "--quiet", "--no-report",
                 "--set", "num_codes=16", "--set", "latent_dim=4", "--set", "channels=4,8"]) == 0
    assert main(["sample", str(run), "--out", str(tmp_path / "s.png")]) == 2  # no prior yet: says how to train one
    assert "train-prior" in capsys.readouterr().err
    assert main(["train-prior", str(run), *data, "--epochs", "1", "--min-steps", "0", "--width", "16", "--layers", "1", "--heads", "2", "--quiet"]) == 0
    assert (run / "prior.safetensors").exists() and (run / "prior.json").exists()
    assert "prior_nll_bits" in (run / "eval.json").read_text()
    assert main(["sample", str(run), "-n", "8", "--temperature", "0.8", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (8, 1, 8, 8)
