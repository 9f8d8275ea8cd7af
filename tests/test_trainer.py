"""The training engine: determinism across stop/resume (also after SIGKILL) with every training knob
on (cosine schedule, warm-up, weight decay, clipping, weight EMA), atomic safetensors checkpoints,
non-finite losses, run-folder safety, and each knob of issue 12."""
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
from torch import nn

import aezoo
from aezoo.models.base import Autoencoder, ModelConfig, ModelOutput, ParamGroup
from aezoo.train.trainer import Fit

# every knob that changes the weights, on: the exact-resume tests run with all of them (issue 12)
KNOBS = dict(lr_schedule="cosine", warmup_steps=6, weight_decay=1e-2, clip_grad_norm=0.5, ema_decay=0.9)


@pytest.fixture(scope="module")
def digits():
    return aezoo.data.load("digits", limit=512)


def _new(name="vae", seed=0, shape=(1, 8, 8)):
    torch.manual_seed(seed)
    return aezoo.create(name, input_shape=shape, latent_dim=3, hidden=(32,))


class Stop(Exception):
    pass


def _stop_at(model, step: int):
    """Make ``model`` raise at training step ``step``: an in-process stand-in for a killed run."""
    real = model.on_step

    def on_step(s, total):
        if s == step:
            raise Stop(s)
        real(s, total)

    model.on_step = on_step
    return model


def _records(run: Path) -> list[dict]:
    drop = ("seconds", "images_per_s")  # wall-clock figures
    return [{k: v for k, v in json.loads(ln).items() if k not in drop} for ln in (run / "metrics.jsonl").read_text().splitlines()]


def _same_files(a: Path, b: Path, names=("model.safetensors", "model-raw.safetensors")):
    for name in names:
        x, y = load_file(a / name), load_file(b / name)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), name


def test_stop_and_resume_equals_uninterrupted(digits, tmp_path):
    opts = dict(steps=40, batch_size=32, checkpoint_every=5, progress=False, report=False, **KNOBS)
    full = aezoo.train(_new(), digits, out=tmp_path / "a", **opts)
    part = tmp_path / "b"
    with pytest.raises(Stop):  # stopped in epoch 2 (15 steps per epoch), after the checkpoint of step 20
        aezoo.train(_stop_at(_new(), 22), digits, out=part, **opts)
    resumed = aezoo.train(_new(seed=123), digits, out=part, resume=True, progress=False)  # the rest comes from config.json
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    _same_files(tmp_path / "a", part)  # the EMA it serves and the raw weights beside it
    # metrics.jsonl equals the uninterrupted run's, the epoch the stop cut in two included (issue 17 item 10)
    assert _records(part) == _records(tmp_path / "a")
    assert [(r["step"], r.get("partial", False)) for r in _records(part)] == [(15, False), (30, False), (40, True)]


def test_dynamic_binarization_resume_is_deterministic(tmp_path):
    data = aezoo.data.load("digits", limit=256, binarize="dynamic")
    a = aezoo.train(_new(), data, steps=20, batch_size=32, out=tmp_path / "a", progress=False, report=False)
    aezoo.train(_new(), data, steps=9, batch_size=32, out=tmp_path / "b", progress=False, report=False)
    b = aezoo.train(_new(), data, steps=20, batch_size=32, out=tmp_path / "b", resume=True, progress=False, report=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def _cli(*args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}  # a tiny model: a second thread only contends
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
            "--latent-dim", "4", "--checkpoint-every", "7", "--quiet", "--no-report", "--lr-schedule", "cosine", "--warmup-steps", "30",
            "--weight-decay", "1e-2", "--clip-grad-norm", "0.5", "--ema-decay", "0.95"]
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
    _same_files(tmp_path / "ref", run)
    assert _records(run) == _records(tmp_path / "ref")
    ran = json.loads((run / "config.json").read_text())["train"]
    assert (ran["lr_schedule"], ran["warmup_steps"], ran["weight_decay"], ran["clip_grad_norm"], ran["ema_decay"]) == ("cosine", 30, 1e-2, 0.5, 0.95)
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
    with pytest.raises(aezoo.TrainingError, match=r"step 11 .*'kl'.*checkpoint on disk is of step 10"):
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
        if p.suffix == ".safetensors":  # a u64 header length, then that JSON (a length of 0x480 starts like pickle's b"\x80\x04")
            raw = p.read_bytes()
            assert json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")]), f"{p.name} is not safetensors"
        elif p.is_file():
            head = p.read_bytes()[:2]
            assert head != b"\x80\x04" and head[:1] != b"\x80", f"{p.name} looks pickled"
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["format"] == "aezoo-run/2" and cfg["finished"] is True and cfg["model"] == "vae" and cfg["data"]["name"] == "digits"


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


# --- the training knobs of issue 12 ----------------------------------------------------------------
def test_weight_decay_is_decoupled_and_skips_biases(digits):
    # a loss with zero gradient: Adam's update is 0, so only the decoupled decay moves the weights,
    # by exactly w * (1 - lr * wd) per step (L2 inside Adam would move them by about lr instead)
    model = _new("ae")
    model.training_step = lambda x, y=None: ModelOutput(sum(p.sum() for p in model.parameters()) * 0.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    aezoo.train(model, digits, steps=3, batch_size=32, lr=0.1, weight_decay=0.5, progress=False)
    for k, v in model.state_dict().items():
        want = before[k] * (1 - 0.1 * 0.5) ** 3 if v.dim() >= 2 else before[k]
        torch.testing.assert_close(v, want, rtol=1e-5, atol=1e-7, msg=k)


def test_clip_grad_norm_logs_the_norm_before_clipping_and_clips(digits, tmp_path):
    model = _new("ae")
    ref = _new("ae")  # the same initial weights: compute the first step's gradient norm by hand
    loop = Fit(model, digits, tmp_path, False, dict(steps=1, batch_size=32, clip_grad_norm=1e-3, progress=False))
    x, y = next(loop.batches.epoch(0))
    ref.training_step(x, y).loss.backward()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ref.parameters()]))
    loop()
    rec = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert rec["train/grad_norm"] == pytest.approx(float(norm), rel=1e-5) and float(norm) > 1
    # Adam's first moment after one step is (1 - beta1) * g: its norm shows the clipped gradient
    opt = loop.optimizers["model"][0]
    m = torch.linalg.vector_norm(torch.stack([opt.state[p]["exp_avg"].norm() for p in model.parameters()]))
    assert float(m) == pytest.approx(0.1 * 1e-3, rel=1e-3)


def test_ema_of_the_weights_is_served_and_the_raw_weights_kept(digits, tmp_path):
    model, seen = _new("ae"), []
    model.on_step = lambda step, total: seen.append({k: v.clone() for k, v in model.state_dict().items()})
    aezoo.train(model, digits, steps=12, batch_size=32, ema_decay=0.8, out=tmp_path, progress=False, eval_iw_samples=0)
    raw = load_file(tmp_path / "model-raw.safetensors")
    # the average by hand: decay min(0.8, (1 + t) / (10 + t)) after step t, starting from the initial weights
    weights = [*seen[1:], raw]  # the weights after each step (on_step sees those before its step)
    ema = {k: v.clone() for k, v in seen[0].items()}
    for t, w in enumerate(weights):
        d = min(0.8, (1 + t) / (10 + t))
        ema = {k: d * ema[k] + (1 - d) * w[k] for k in ema}
    served = aezoo.load(tmp_path).state_dict()
    for k in ema:
        torch.testing.assert_close(served[k], ema[k], rtol=1e-5, atol=1e-6, msg=k)
        assert torch.equal(aezoo.load(tmp_path, raw=True).state_dict()[k], raw[k])
    assert not all(torch.equal(served[k], raw[k]) for k in raw)
    assert all(torch.equal(model.state_dict()[k], served[k]) for k in served)  # aezoo.train returns what load serves
    m = json.loads((tmp_path / "eval.json").read_text())
    assert "recon_mse" in m and "raw/recon_mse" in m and m["recon_mse"] != m["raw/recon_mse"]
    assert "val_ema/loss" in json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])


class CriticAE(Autoencoder):
    """A test model with a part that trains on its own (like FactorVAE's discriminator): an AE, and a
    critic that learns to tell codes from Gaussian noise with Adam betas (0.5, 0.9); the AE is pushed
    to fool it through the critic's detached weights, so each loss moves only its own group."""

    name = "critic_ae"

    def __init__(self, config):
        super().__init__(config)
        d = config.latent_dim
        self.enc, self.dec = nn.Linear(64, d), nn.Linear(d, 64)
        self.critic = nn.Sequential(nn.Linear(d, 8), nn.ReLU(), nn.Linear(8, 1))

    def encode(self, x, y=None):
        return self.enc(x.flatten(1))

    def decode(self, z, y=None):
        return self.dec(z).view(-1, 1, 8, 8)

    def param_groups(self):
        return [ParamGroup("model", [*self.enc.parameters(), *self.dec.parameters()]),
                ParamGroup("critic", list(self.critic.parameters()), lr=2e-3, betas=(0.5, 0.9))]

    def forward(self, x, y=None):
        z = self.encode(x)
        recon = (self.decode(z) - x).pow(2).flatten(1).sum(1).mean()
        frozen = {k: v.detach() for k, v in self.critic.named_parameters()}
        fool = torch.func.functional_call(self.critic, frozen, (z,)).mean()  # moves the encoder only
        real, fake = self.critic(torch.randn_like(z)), self.critic(z.detach())  # moves the critic only
        critic = nn.functional.softplus(-real).mean() + nn.functional.softplus(fake).mean()
        return ModelOutput(recon + 0.1 * fool + critic, {"recon": recon, "critic": critic})


def test_a_model_declares_its_own_parameter_groups_and_optimizers(digits, tmp_path):
    def new():
        torch.manual_seed(0)
        return CriticAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=3))

    model = new()
    opts = dict(steps=20, batch_size=32, checkpoint_every=4, lr=1e-3, lr_schedule="cosine", warmup_steps=4, progress=False, report=False)
    loop = Fit(model, digits, tmp_path / "a", False, opts)
    loop()
    (vae, g1), (critic, g2) = loop.optimizers["model"], loop.optimizers["critic"]
    assert [g["betas"] for g in critic.param_groups] == [(0.5, 0.9)] * 2 and vae.param_groups[0]["betas"] == (0.9, 0.999)
    # the schedule scales each group's own rate: at the last step, lr_at / lr of the run
    assert critic.param_groups[0]["lr"] / vae.param_groups[0]["lr"] == pytest.approx(2.0)
    assert all(p in critic.state for p in model.critic.parameters()) and not any(p in vae.state for p in model.critic.parameters())
    # both optimizers' states are in the checkpoint, and a stopped run resumes exactly
    from aezoo.train.checkpoint import load_tensors

    tensors, _ = load_tensors(tmp_path / "a" / "checkpoint.safetensors")
    assert any(k.startswith("optim.critic.") for k in tensors) and any(k.startswith("optim.model.") for k in tensors)
    with pytest.raises(Stop):
        Fit(_stop_at(new(), 10), digits, tmp_path / "b", False, opts)()
    resumed = Fit(new(), digits, tmp_path / "b", True, {})()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), resumed.state_dict().values()))
    # groups must hold every trainable parameter once
    bad = new()
    bad.param_groups = lambda: [ParamGroup("model", list(bad.enc.parameters()))]
    with pytest.raises(aezoo.ConfigError, match="every trainable parameter"):
        aezoo.train(bad, digits, steps=1, progress=False)


def test_tensorboard_events_read_back_with_tensorboards_own_reader(digits, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    opts = dict(epochs=2, min_steps=0, batch_size=32, log=("tensorboard",), progress=False, report=False)
    with pytest.raises(Stop):  # killed in epoch 2, after the checkpoint of step 15: the events of 16-21 are its tail
        aezoo.train(_stop_at(_new(), 22), digits, out=tmp_path, **opts)
    aezoo.train(_new(), digits, out=tmp_path, resume=True, progress=False)
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "val/loss", "val/kl", "step/loss", "step/lr"} <= set(tags)
    assert [e.step for e in acc.Scalars("train/loss")] == [15, 30]
    steps = [e.step for e in acc.Scalars("step/lr")]
    assert steps == sorted(set(steps))  # each step once: the killed run's tail is purged
    assert acc.Scalars("train/loss")[0].value == pytest.approx(json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])["train/loss"])


def test_tensorboard_missing_says_which_extra_to_install(digits, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if the package were not installed
    with pytest.raises(aezoo.ConfigError, match=r'pip install "aezoo\[tensorboard\]"'):
        aezoo.train(_new(), digits, steps=1, log=("tensorboard",), out=tmp_path, progress=False)


def test_one_line_per_epoch_when_stderr_is_not_a_terminal(digits, capsys):
    aezoo.train(_new(), digits, epochs=3, min_steps=0, batch_size=32, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 3 and all(ln.startswith(f"epoch {i}/3 step {15 * i}/45: train loss ") for i, ln in enumerate(lines, 1))


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_run_folder_permissions_follow_the_umask(digits, tmp_path, umask):
    old = os.umask(umask)
    try:
        aezoo.train(_new(), digits, steps=3, batch_size=32, ema_decay=0.9, out=tmp_path / "run", progress=False, report=False)
    finally:
        os.umask(old)
    run = tmp_path / "run"
    assert run.stat().st_mode & 0o777 == 0o777 & ~umask
    for name in ("config.json", "model.safetensors", "model-raw.safetensors", "checkpoint.safetensors", "metrics.jsonl"):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_a_step_budget_ending_mid_epoch_writes_a_partial_record(digits, tmp_path):
    aezoo.train(_new(), digits, steps=20, batch_size=32, out=tmp_path, progress=False, report=False)
    first, last = _records(tmp_path)
    assert "partial" not in first and first["step"] == 15
    assert last["partial"] is True and last["epoch"] == 2 and last["step"] == 20 and last["epoch_fraction"] == pytest.approx(5 * 32 / 461, abs=1e-3)


def test_resume_applies_a_changed_lr_batch_size_and_budget_and_records_them(digits, tmp_path):
    with pytest.raises(Stop):
        aezoo.train(_stop_at(_new(), 9), digits, epochs=2, min_steps=0, batch_size=32, checkpoint_every=4, out=tmp_path, progress=False, report=False)
    model = _new()
    loop = Fit(model, digits, tmp_path, True, dict(lr=3e-4, batch_size=64, epochs=3))
    assert loop.pos.step == 8 and loop.pos.offset == 8 * 32  # the epoch goes on from the same example
    loop()
    assert loop.optimizers["model"][0].param_groups[0]["lr"] == 3e-4  # applied, not the checkpoint's 1e-3
    # 461 - 256 examples left in epoch 1 at 64 a batch, then two epochs of 8 batches
    assert loop.pos.step == 8 + 4 + 2 * 8
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["train"]["lr"] == 3e-4 and meta["train"]["batch_size"] == 64
    assert meta["resumed"] == [{"step": 8, "changed": {"lr": [1e-3, 3e-4], "batch_size": [32, 64], "epochs": [2, 3]}}]
    with pytest.raises(aezoo.ConfigError, match=r"'steps': the run is already at step 28"):
        aezoo.train(_new(), digits, steps=10, out=tmp_path, resume=True, progress=False)
    with pytest.raises(aezoo.ConfigError, match=r"cannot switch weight EMA on"):
        aezoo.train(_new(), digits, ema_decay=0.9, out=tmp_path, resume=True, progress=False)
    with pytest.raises(aezoo.ConfigError, match=r"cannot change 'seed'"):
        aezoo.train(_new(), digits, seed=1, out=tmp_path, resume=True, progress=False)
    with pytest.raises(aezoo.ConfigError, match=r"model config field 'hidden'"):
        aezoo.train(aezoo.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden=(16,)), digits, out=tmp_path, resume=True, progress=False)
    with pytest.raises(aezoo.ConfigError, match=r"other data: n_test is 103 .* but 52 now"):
        aezoo.train(_new(), aezoo.data.load("digits", limit=256), out=tmp_path, resume=True, progress=False)


def test_knobs_from_a_config_file_and_the_command_line(tmp_path):
    from aezoo.cli import main

    (tmp_path / "c.yaml").write_text("hidden: [32]\ntrain:\n  weight_decay: 0.01\n  ema_decay: 0.99\n  log: tensorboard\n  clip_grad_norm: 2\n")
    args = ["train", "ae", "--data", "digits", "--limit", "200", "--steps", "2", "--quiet", "--no-report", "--config", str(tmp_path / "c.yaml")]
    assert main([*args, "--lr-schedule", "linear", "--warmup-steps", "0.5", "--min-lr", "1e-4", "--clip-grad-norm", "3", "--out", str(tmp_path / "run")]) == 0
    ran = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert ran["weight_decay"] == 0.01 and ran["ema_decay"] == 0.99 and ran["log"] == ["tensorboard"]
    assert ran["clip_grad_norm"] == 3 and ran["lr_schedule"] == "linear" and ran["warmup_steps"] == 0.5 and ran["min_lr"] == 1e-4
    assert (tmp_path / "run" / "model-raw.safetensors").exists() and list((tmp_path / "run" / "tensorboard").iterdir())
