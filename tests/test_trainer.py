"""The training engine: determinism across stop/resume (also after SIGKILL), atomic safetensors
checkpoints, non-finite losses, and run-folder safety."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import aezoo
from aezoo.models.base import ModelOutput


@pytest.fixture(scope="module")
def digits():
    return aezoo.data.load("digits", limit=512)


def _new(name="vae", seed=0, shape=(1, 8, 8)):
    torch.manual_seed(seed)
    return aezoo.create(name, input_shape=shape, latent_dim=3, hidden=(32,))


def test_stop_and_resume_equals_uninterrupted(digits, tmp_path):
    full = aezoo.train(_new(), digits, steps=40, batch_size=32, out=tmp_path / "a", progress=False, report=False)
    part = tmp_path / "b"
    aezoo.train(_new(), digits, steps=17, batch_size=32, out=part, progress=False, report=False)
    resumed = aezoo.train(_new(seed=123), digits, steps=40, batch_size=32, out=part, resume=True, progress=False, report=False)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    steps = [json.loads(ln)["step"] for ln in (part / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 40


def test_dynamic_binarization_resume_is_deterministic(tmp_path):
    data = aezoo.data.load("digits", limit=256, binarize="dynamic")
    a = aezoo.train(_new(), data, steps=20, batch_size=32, out=tmp_path / "a", progress=False, report=False)
    aezoo.train(_new(), data, steps=9, batch_size=32, out=tmp_path / "b", progress=False, report=False)
    b = aezoo.train(_new(), data, steps=20, batch_size=32, out=tmp_path / "b", resume=True, progress=False, report=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def _cli(*args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "aezoo", *map(str, args)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _checkpoint_step(run: Path) -> int | None:
    from aezoo.train.checkpoint import load_tensors

    try:
        _, meta = load_tensors(run / "checkpoint.safetensors")
        return meta["progress"]["step"]
    except Exception:
        return None


def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    args = ["train", "ae", "--data", "digits", "--limit", "512", "--steps", "300", "--batch-size", "16", "--set", "hidden=64",
            "--latent-dim", "4", "--checkpoint-every", "7", "--quiet", "--no-report"]
    ref = _cli(*args, "--out", tmp_path / "ref")
    assert ref.wait(timeout=120) == 0, ref.stderr.read()
    run = tmp_path / "killed"
    p = _cli(*args, "--out", run)
    deadline = time.time() + 60
    while time.time() < deadline and (_checkpoint_step(run) or 0) < 20:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed_at = _checkpoint_step(run)
    assert killed_at is not None and killed_at < 300, "the run finished before it could be killed"
    r = _cli(*args, "--out", run, "--resume")
    assert r.wait(timeout=120) == 0, r.stderr.read()
    a, b = load_file(tmp_path / "ref" / "model.safetensors"), load_file(run / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not list(run.glob(".*.tmp")), "temporary checkpoint files were left behind"


def test_nonfinite_loss_names_step_and_term_and_keeps_checkpoint(digits, tmp_path):
    model = _new()
    real = model.training_step
    calls = {"n": 0}

    def step(x, y=None):
        calls["n"] += 1
        out = real(x, y)
        if calls["n"] == 12:
            kl = out.terms["kl"] * float("nan")
            return ModelOutput(out.loss + kl, {**out.terms, "kl": kl})
        return out

    model.training_step = step
    with pytest.raises(aezoo.TrainingError, match=r"step 11 .*'kl'"):
        aezoo.train(model, digits, steps=30, batch_size=32, checkpoint_every=5, out=tmp_path, progress=False)
    assert _checkpoint_step(tmp_path) == 10


def test_refuses_to_overwrite_a_run(digits, tmp_path):
    aezoo.train(_new(), digits, steps=3, batch_size=32, out=tmp_path, progress=False, report=False)
    with pytest.raises(aezoo.TrainingError, match="--resume"):
        aezoo.train(_new(), digits, steps=3, batch_size=32, out=tmp_path, progress=False, report=False)


def test_shape_mismatch_is_a_clear_error(digits):
    model = aezoo.create("ae", input_shape=(1, 28, 28), latent_dim=2)
    with pytest.raises(aezoo.DataError, match=r"\(1, 8, 8\).*\(1, 28, 28\)"):
        aezoo.train(model, digits, steps=1, progress=False)


def test_checkpoint_is_safetensors_and_json_only(digits, tmp_path):
    aezoo.train(_new(), digits, steps=5, batch_size=32, out=tmp_path, progress=False, report=False)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl"} <= names
    for p in tmp_path.iterdir():
        if p.is_file():
            head = p.read_bytes()[:2]
            assert head != b"\x80\x04" and head[:1] != b"\x80", f"{p.name} looks pickled"
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["format"] == "aezoo-run/1" and cfg["model"] == "vae" and cfg["data"]["name"] == "digits"


def test_corrupt_checkpoint_is_a_clear_error(digits, tmp_path):
    aezoo.train(_new(), digits, steps=3, batch_size=32, out=tmp_path, progress=False, report=False)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(aezoo.CheckpointError, match="model.safetensors"):
        aezoo.load(tmp_path)


def test_python_api_five_lines(tmp_path):
    data = aezoo.data.load("digits", limit=256)
    model = aezoo.create("vae", input_shape=data.input_shape, latent_dim=2, hidden=(32,))
    aezoo.train(model, data, epochs=2, min_steps=0, out=tmp_path / "vae", progress=False)  # 2 epochs, not the VAE's 1,000-step floor
    z = aezoo.load(tmp_path / "vae").encode(data.test.x[:10])
    assert z.shape == (10, 2)
    assert (tmp_path / "vae" / "report.html").exists() and (tmp_path / "vae" / "eval.json").exists()


def test_lr_schedules_follow_their_curves():
    from aezoo.train.trainer import TrainConfig, lr_at

    cos = TrainConfig(lr=1.0, lr_schedule="cosine", warmup_steps=10, min_lr=0.1)
    lrs = [lr_at(cos, s, 110) for s in range(110)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # linear warm-up over 10 steps
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then monotone decay
    assert lrs[60] == pytest.approx(0.55) and lrs[-1] == pytest.approx(0.1, abs=1e-3)
    lin = TrainConfig(lr=1.0, lr_schedule="linear", warmup_steps=0.5)  # a fraction of the run
    assert lr_at(lin, 24, 100) == pytest.approx(0.5) and lr_at(lin, 49, 100) == 1.0 and lr_at(lin, 75, 100) == pytest.approx(0.5)
    assert lr_at(TrainConfig(lr=0.3), 5, 10) == 0.3


def test_model_train_defaults_apply_unless_given(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(type(_new()), "train_defaults", {"lr": 5e-3, "lr_schedule": "cosine"})
    aezoo.train(_new(), digits, steps=3, batch_size=32, out=tmp_path / "a", progress=False, report=False)
    ran = json.loads((tmp_path / "a" / "config.json").read_text())["train"]
    assert ran["lr"] == 5e-3 and ran["lr_schedule"] == "cosine"
    aezoo.train(_new(), digits, steps=3, batch_size=32, lr=1e-4, out=tmp_path / "b", progress=False, report=False)
    ran = json.loads((tmp_path / "b" / "config.json").read_text())["train"]
    assert ran["lr"] == 1e-4 and ran["lr_schedule"] == "cosine"  # the user's value wins
