"""What --amp means on a CPU and the bf16 importance-weighted estimate (issue 16): fp32 master weights
and optimizer state under bf16 autocast, a one-line warning where bf16 is emulated, and nll_iw's
bf16 decode agreeing with its fp32 one."""
from __future__ import annotations

import warnings

import pytest
import torch

import aezoo
from aezoo.errors import RunWarning
from aezoo.evaluate.likelihood import nll_iw
from aezoo.train import checkpoint as ckpt
from aezoo.train import trainer
from aezoo.utils import bf16_pays


def _train(**options):
    data = aezoo.data.load("digits", limit=256)
    torch.manual_seed(0)
    model = aezoo.create("vae", input_shape=list(data.input_shape), latent_dim=4, hidden=(32,))
    aezoo.train(model, data, steps=30, batch_size=32, lr=3e-3, progress=False, report=False, device="cpu", **options)
    return model, data


def test_amp_keeps_fp32_master_weights_and_says_when_bf16_is_emulated(monkeypatch, tmp_path):
    monkeypatch.setattr(trainer, "bf16_pays", lambda device: False)
    with pytest.warns(RunWarning, match="no native bf16"):
        model, data = _train(amp=True)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    monkeypatch.setattr(trainer, "bf16_pays", lambda device: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RunWarning)
        aezoo.train(model, data, out=tmp_path / "run", steps=2, batch_size=32, amp=True, progress=False, report=False, device="cpu")
    tensors, _ = ckpt.read_checkpoint(tmp_path / "run", "vae")
    moments = {t.dtype for k, t in tensors.items() if k.startswith("optim") and t.dim() > 0}
    assert moments == {torch.float32}  # Adam's moments are fp32 too
    assert {t.dtype for k, t in tensors.items() if k.startswith("model.")} == {torch.float32}


def test_bf16_pays_is_a_plain_answer():
    assert bf16_pays("cpu") in (True, False)
    assert bf16_pays("meta") is False


def test_nll_iw_bf16_decode_agrees_with_fp32():
    model, data = _train()
    x = data.test.x[:64]
    torch.manual_seed(0)
    exact = nll_iw(model, x, k=200, bf16=False)
    torch.manual_seed(0)
    fast = nll_iw(model, x, k=200, bf16=True)
    assert exact.dtype == fast.dtype == torch.float32
    # same samples (the encoder and z stay fp32), only the decoder's matmuls round to bf16
    assert float((fast - exact).abs().mean()) < 0.1 and float((fast.mean() - exact.mean()).abs()) < 0.05
