"""Multi-process training (torchrun + DDP, gloo on CPU), mixed precision and torch.compile.

The torchrun tests launch real worker processes through a small launcher script that (on ranks > 0)
fails any write into the run folder, and (for the elastic test) lets rank 1 snapshot the run folder
and SIGKILL itself mid-run on the first attempt. The model is the deterministic ``ae``, so ranks
draw no noise and one process with the same global batch must end with the same weights.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import aezoo
from aezoo.cli import main as cli
from aezoo.nn import distributions as D

# 448 digits train examples: 7 full batches of 64 per epoch for one process (no partial batch) and
# for two (which drop partial batches), each rank taking 32 of every global batch
TRAIN = ["train", "ae", "--data", "digits", "--limit", "498", "--batch-size", "64", "--seed", "3", "--quiet", "--set", "hidden=[32]"]

LAUNCHER = textwrap.dedent(
    """
    import builtins, io, os, shutil, signal, sys
    from pathlib import Path

    run = Path(os.environ["AEZOO_TEST_RUN"]).resolve()
    rank = int(os.environ["RANK"])
    if rank != 0:  # only rank 0 may write into the run folder
        from importlib import import_module

        ckpt = import_module("aezoo.train.checkpoint")  # aezoo.train is also the train() function

        def check(path, mode="w"):
            if not isinstance(path, int) and any(c in mode for c in "wax+") and Path(path).resolve().is_relative_to(run):
                raise RuntimeError(f"rank {rank} wrote {path}")

        real_open, real_atomic = builtins.open, ckpt.atomic_write
        def guarded_open(file, mode="r", *a, **k):
            check(file, mode)
            return real_open(file, mode, *a, **k)
        def guarded_atomic(path, data):
            check(path)
            return real_atomic(path, data)
        builtins.open = io.open = guarded_open
        ckpt.atomic_write = guarded_atomic
        import fcntl

        def no_lock(*a):  # only rank 0 locks the run folder
            raise RuntimeError(f"rank {rank} took a file lock")
        fcntl.flock = no_lock

    kill_at = os.environ.get("AEZOO_TEST_KILL_AT")
    if kill_at and rank == 1 and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0":
        from aezoo.models.ae import AE

        def on_step(self, step, total):
            if step == int(kill_at):  # the latest checkpoint is complete: rank 0 needs us to go further
                shutil.copytree(run, os.environ["AEZOO_TEST_SNAPSHOT"])
                os.kill(os.getpid(), signal.SIGKILL)
        AE.on_step = on_step

    from aezoo.cli import main
    sys.exit(main())
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(tmp_path: Path, run: Path, args: list[str], *, restarts: int = 0, env: dict | None = None):
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", f"--max-restarts={restarts}",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", str(launcher), *args]
    full_env = {**os.environ, "AEZOO_TEST_RUN": str(run), "OMP_NUM_THREADS": "1", **(env or {})}
    p = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def assert_same(a: dict, b: dict, atol: float = 1e-5):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-4, msg=k)


def test_two_processes_match_one_and_only_rank0_writes(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli([*TRAIN, "--steps", "14", "--no-report", "--out", str(one)]) == 0
    p = torchrun(tmp_path, two, [*TRAIN, "--steps", "14", "--out", str(two)])
    assert_same(weights(one), weights(two))
    assert p.stdout.count("run folder:") == 1  # rank 0 speaks for the run
    lines = (two / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # one record per epoch, written once
    assert {"config.json", "model.safetensors", "checkpoint.safetensors", "eval.json", "report.html"} <= {f.name for f in two.iterdir()}
    assert not list(two.glob(".*.tmp"))
    # training and validation losses are reduced over ranks: they match the one-process run's
    rec1 = [__import__("json").loads(s) for s in (one / "metrics.jsonl").read_text().splitlines()]
    rec2 = [__import__("json").loads(s) for s in lines]
    for a, b in zip(rec1, rec2):
        assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-4)
        assert a["val/loss"] == pytest.approx(b["val/loss"], rel=1e-4)


def test_sigkill_under_max_restarts_resumes_from_last_checkpoint(tmp_path):
    run, snapshot, ref = tmp_path / "run", tmp_path / "snapshot", tmp_path / "ref"
    args = [*TRAIN, "--steps", "12", "--checkpoint-every", "3", "--no-report", "--resume", "auto"]
    # rank 1 dies after step 8 of the first attempt; the last checkpoint is step 7's (the epoch end)
    torchrun(tmp_path, run, [*args, "--out", str(run)], restarts=1,
             env={"AEZOO_TEST_KILL_AT": "8", "AEZOO_TEST_SNAPSHOT": str(snapshot)})
    saved = load_file(str(snapshot / "checkpoint.safetensors"))
    assert {"rng.rank0", "rng.rank1"} <= saved.keys()
    assert [__import__("json").loads(s)["step"] for s in (run / "metrics.jsonl").read_text().splitlines()] == [7, 12]
    # the same checkpoint, resumed by an uninterrupted 2-process run
    torchrun(tmp_path, snapshot, [*TRAIN, "--steps", "12", "--checkpoint-every", "3", "--no-report", "--resume", "--out", str(snapshot)])
    assert_same(weights(run), weights(snapshot), atol=0)


def test_resume_auto_starts_fresh_without_a_checkpoint(tmp_path):
    run = tmp_path / "run"
    assert cli([*TRAIN, "--steps", "3", "--no-report", "--resume", "auto", "--out", str(run)]) == 0
    assert cli([*TRAIN, "--steps", "5", "--no-report", "--resume", "auto", "--out", str(run)]) == 0
    # the second run continued the first one's partial epoch: its record (steps 1-5) replaces the partial one (1-3)
    recs = [__import__("json").loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["partial"]) for r in recs] == [(5, True)]


def test_kl_and_log_densities_are_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    mu, logvar, x = torch.randn(8, 300), torch.randn(8, 300) * 0.1, torch.rand(8, 300)
    exact = D.kl_standard_normal(mu, logvar)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mu16, logvar16 = torch.nn.functional.linear(mu, torch.eye(300)), torch.nn.functional.linear(logvar, torch.eye(300))
        assert mu16.dtype == torch.bfloat16
        kl = D.kl_standard_normal(mu16, logvar16)
        lp = D.bernoulli_log_prob(mu16, x)
        nlp = D.normal_log_prob(x, mu16, logvar16)
        lme = D.log_mean_exp(lp[None])
    assert {kl.dtype, lp.dtype, nlp.dtype, lme.dtype} == {torch.float32}
    # only the inputs carry bf16 rounding (~3 significant digits), the 300-term sum does not add to it
    torch.testing.assert_close(kl, exact, rtol=1e-2, atol=0)
    assert D.kl_standard_normal(mu.double(), logvar.double()).dtype == torch.float64  # fp64 passes through


def _tiny_run(model_name: str, **options):
    data = aezoo.data.load("digits", limit=256)
    torch.manual_seed(0)
    model = aezoo.create(model_name, input_shape=list(data.input_shape), latent_dim=4, hidden=(32,))
    aezoo.train(model, data, steps=6, batch_size=32, progress=False, report=False, device="cpu", **options)
    return model, data


@pytest.mark.parametrize("name", ["ae", "vae"])
def test_bf16_autocast_trains_close_to_fp32(name):
    fp32, data = _tiny_run(name)
    bf16, _ = _tiny_run(name, amp=True)
    x = data.val.x[:64]
    torch.manual_seed(1)
    a = float(fp32(x).loss)
    torch.manual_seed(1)
    b = float(bf16(x).loss)
    assert torch.isfinite(torch.tensor(b)) and b == pytest.approx(a, rel=0.05)


def test_compiled_training_step_matches_eager():
    eager, data = _tiny_run("ae")
    compiled, _ = _tiny_run("ae", compile=True)
    for (k, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3, msg=k)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("options", [{}, {"amp": True}, {"compile": True}, {"amp": True, "compile": True}])
def test_gpu_training_paths_match_cpu(options):
    cpu, data = _tiny_run("ae")
    torch.manual_seed(0)
    gpu = aezoo.create("ae", input_shape=list(data.input_shape), latent_dim=4, hidden=(32,))
    aezoo.train(gpu, data, steps=6, batch_size=32, progress=False, report=False, device="cuda", **options)
    x = data.val.x[:64]
    tol = 0.05 if options.get("amp") else 1e-3
    assert float(gpu(x.cuda()).loss) == pytest.approx(float(cpu(x).loss), rel=tol)


@pytest.mark.slow  # a third pair of torchrun launches (~30 s on 2 busy cores)
def test_vq_ema_codebook_statistics_are_summed_over_ranks(tmp_path):
    # EMA codebook (van den Oord et al. 2017, appendix A.1) without random restarts: with counts and
    # sums all-reduced inside the quantizer, two ranks of 32 update the codebook like one batch of 64
    vq = ["train", "vq_vae", "--data", "digits", "--limit", "498", "--batch-size", "64", "--seed", "3", "--quiet",
          "--no-report", "--steps", "7", "--set", "ema=true", "--set", "restart=false", "--set", "num_codes=16",
          "--set", "latent_dim=8", "--set", "channels=[8,16]"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli([*vq, "--out", str(one)]) == 0
    torchrun(tmp_path, two, [*vq, "--out", str(two)])
    a, b = weights(one), weights(two)
    assert any("ema_sum" in k for k in a)
    assert_same(a, b, atol=1e-4)
