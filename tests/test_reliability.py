"""Nothing silently wrong (issue 17): one regression test per failure found by probing aezoo as a
demanding user would (killed runs, two runs at once, a full disk, edited run folders, damaged
files), and hypothesis fuzzing of every data reader so that a damaged file gives a DataError and
nothing else."""
from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import aezoo
from aezoo.errors import DataError, DataWarning
from conftest import one_line_error


# --- fuzzing the readers (item 4) ------------------------------------------------------------------
def _idx(arr: np.ndarray) -> bytes:
    code = {np.uint8: 0x08, np.float32: 0x0D}[arr.dtype.type]
    return bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes() + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _npz(compressed: bool, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def _image(fmt: str, pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


_rng = np.random.default_rng(0)
_X = _rng.integers(0, 256, (6, 8, 8), dtype=np.uint8)
_CSV = ("a,b,label\n" + "".join(f"{i * 0.5},{i % 3},{'cat' if i % 2 else 'dog'}\n" for i in range(8))).encode()
# every format a user's --data may be, as valid bytes (file name -> bytes)
GOOD_FILES = {
    "x.idx": _idx(_X),
    "x.idx.gz": gzip.compress(_idx(_X)),
    "f.idx": _idx(_X.astype(np.float32) / 7),
    "x.npy": _npy(_X.astype(np.float32)),
    "x.npz": _npz(False, x=_X, y=np.arange(6)),
    "xz.npz": _npz(True, x_train=_X, y_train=np.arange(6), x_test=_X[:2]),
    "t.csv": _CSV,
    "imgs/a.png": _image("PNG", _X[0]),
    "imgs/a.jpg": _image("JPEG", _X[0]),
    "imgs/a.bmp": _image("BMP", _X[0]),
    "imgs/a.gif": _image("GIF", _X[0]),
}

damage = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), min_size=1, max_size=4)),
)


def _damaged(good: bytes, how) -> bytes:
    kind, arg = how
    if kind == "truncate":
        return good[: int(arg * len(good))]
    out = bytearray(good)
    for where, bit in arg:
        out[int(where * len(out))] ^= 1 << bit
    return bytes(out)


@pytest.mark.parametrize("name", sorted(GOOD_FILES))
@settings(max_examples=60, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(how=damage)
def test_damaged_files_give_a_data_error_and_nothing_else(name, how):
    """Bit flips and truncations of every supported format, through ``aezoo.data.load`` (reader and
    preprocessing): the data loads (a flip in a pixel is still an image) or a DataError names the
    problem; never a traceback from numpy, gzip, zipfile or Pillow."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(_damaged(GOOD_FILES[name], how))
        if name.startswith("imgs/"):  # an image folder: the damaged image beside a good one
            (path.parent / "b.png").write_bytes(GOOD_FILES["imgs/a.png"])
            path = path.parent
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            try:
                aezoo.data.load(str(path), label_column="label" if name.endswith(".csv") else None)
            except DataError as e:
                assert "\n" not in str(e)


def test_good_files_load():
    # the fuzzing above starts from files that load
    with tempfile.TemporaryDirectory() as tmp:
        for name, good in GOOD_FILES.items():
            path = Path(tmp) / name
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(good)
            data = aezoo.data.load(str(path.parent if name.startswith("imgs/") else path), label_column="label" if name.endswith(".csv") else None)
            assert len(data.train) + len(data.val or []) > 0


def test_corrupt_compressed_npz_names_the_file(tmp_path):
    # issue 17 item 4: a flipped byte in a compressed .npz escaped as tokenize.TokenError
    good = bytearray(_npz(True, x=_X))
    hits = []
    for i in range(0, len(good), 3):
        bad = bytearray(good)
        bad[i] ^= 0x20
        (tmp_path / "d.npz").write_bytes(bytes(bad))
        try:
            aezoo.data.load(str(tmp_path / "d.npz"))
        except DataError as e:
            hits.append(str(e))
    assert hits and all(h.startswith(str(tmp_path / "d.npz")) for h in hits)


# --- misleading data errors (item 8) and the test split's scaling (item 7) --------------------------
def test_test_split_takes_the_training_scaling_and_says_when_values_fall_outside():
    # arrays of images (N, C, H, W) keep one global scale (vectors are scaled per feature: test_tables.py)
    x = np.linspace(0, 1, 60, dtype=np.float32).reshape(10, 1, 2, 3)  # training values in [0, 1]
    with pytest.warns(DataWarning, match=r"test values .* outside \[0, 1\] .*test values \[0, 2\].*clipped"):
        data = aezoo.data.from_arrays(x, x_test=2 * x, val_fraction=0)
    assert float(data.test.x.max()) == 1.0 and data.preprocessing["clipped"]["test"]["range"][1] == 2.0
    # min-max scaling fitted on train maps test with the same offset and span
    data = aezoo.data.from_arrays(10 + 4 * x, x_test=np.full((3, 1, 2, 3), 12, np.float32), val_fraction=0)
    assert data.preprocessing["minmax"] == [10.0, 14.0] and np.allclose(data.test.x.numpy(), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # in range: no warning
        aezoo.data.from_arrays(x, x_test=x[:3], val_fraction=0)


def test_huge_values_are_scaled_in_float64_or_named_as_a_float32_overflow():
    big = np.linspace(-1e300, 1e300, 30).reshape(10, 3)  # float64 near 1e300: not NaN/Inf
    assert float(aezoo.data.from_arrays(big, normalize="minmax").train.x.max()) <= 1.0
    assert bool(np.isfinite(aezoo.data.from_arrays(big).train.x.numpy()).all())  # standardised: squares stay finite
    near_max = np.linspace(-3e38, 3e38, 30, dtype=np.float32).reshape(10, 3)  # the span overflows float32
    x = aezoo.data.from_arrays(near_max, normalize="minmax").train.x
    assert bool(np.isfinite(x.numpy()).all()) and float(x.min()) >= 0 and float(x.max()) <= 1
    with pytest.raises(DataError, match=r"values up to 1e\+300 overflow float32"):
        aezoo.data.core.build("big", {"x_train": big, "images": False}, normalize="none")
    with pytest.raises(DataError, match="1 NaN/Inf"):
        aezoo.data.from_arrays(np.array([[0.0, np.nan]]))


def test_symlink_loop_and_broken_link_are_named(tmp_path):
    (tmp_path / "a.npz").symlink_to(tmp_path / "b.npz")
    (tmp_path / "b.npz").symlink_to(tmp_path / "a.npz")
    (tmp_path / "gone.npz").symlink_to(tmp_path / "nowhere.npz")
    with pytest.raises(DataError, match=r"a\.npz: symbolic link loop"):
        aezoo.data.load(str(tmp_path / "a.npz"))
    with pytest.raises(DataError, match=r"gone\.npz: broken symbolic link"):
        aezoo.data.load(str(tmp_path / "gone.npz"))
    from aezoo.data.readers import read_array_file

    with pytest.raises(DataError, match="symbolic link loop"):
        read_array_file(tmp_path / "a.npz")


# --- run folders ------------------------------------------------------------------------------------
from aezoo.cli import main  # noqa: E402
from aezoo.train import checkpoint as ckpt  # noqa: E402
from aezoo.train import rundir  # noqa: E402

TRAIN = ["train", "ae", "--data", "digits", "--limit", "300", "--batch-size", "32", "--latent-dim", "3", "--set", "hidden=32", "--quiet"]


@pytest.fixture(scope="module")
def digits():
    return aezoo.data.load("digits", limit=300)


def _new(seed=0):
    import torch

    torch.manual_seed(seed)
    return aezoo.create("ae", input_shape=(1, 8, 8), latent_dim=3, hidden=(32,))


class Stop(Exception):
    pass


def _stop_at(model, step):
    def on_step(s, total):
        if s == step:
            raise Stop(s)

    model.on_step = on_step
    return model


def _stopped_run(run: Path, digits, at: int = 12, every: int = 5, **options):
    """A run killed at step ``at`` (its checkpoints every ``every`` steps)."""
    with pytest.raises(Stop):
        aezoo.train(_stop_at(_new(), at), digits, steps=40, batch_size=32, checkpoint_every=every, out=run, progress=False, **options)
    return run


def test_item1_a_killed_run_serves_its_newest_weights_and_says_it_is_unfinished(digits, tmp_path, capsys):
    import torch

    run = _stopped_run(tmp_path / "run", digits)  # killed at step 12: checkpoints of steps 5 and 10 committed
    head = ckpt.read_header(run / "model.safetensors")
    assert head["step"] == 10 and head["finished"] is False
    ck, _ = ckpt.load_tensors(run / "checkpoint.safetensors")
    served = ckpt.load_tensors(run / "model.safetensors")[0]
    assert all(torch.equal(served[k], ck[f"model.{k}"]) for k in served)  # not the step-0 weights
    meta = json.loads((run / "config.json").read_text())
    assert meta["finished"] is False and meta["total_steps"] == 40
    with pytest.warns(aezoo.errors.RunWarning, match=r"unfinished run: using its newest weights, from step 10 of 40 .*interrupted.*--resume"):
        aezoo.load(run)
    # the commands say so in one line on stderr, and go on
    assert main(["eval", str(run), "--iw-samples", "0", "--json"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aezoo: warning:") and "step 10 of 40" in err[0]
    # killed between writing the checkpoint and the weights: the newer checkpoint wins
    (run / "model.safetensors").write_bytes(ckpt.encode(ckpt.model_state(_new(seed=5)), ckpt.weights_header(_new(), step=5, finished=False)))
    with pytest.warns(aezoo.errors.RunWarning, match="step 10 of 40"):
        model = aezoo.load(run)
    assert all(torch.equal(v, ck[f"model.{k}"]) for k, v in model.state_dict().items())
    # finished: no warning
    aezoo.train(_new(), digits, out=run, resume=True, progress=False, eval_iw_samples=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        aezoo.load(run)
    assert json.loads((run / "config.json").read_text())["finished"] is True


def test_item1_a_run_without_a_checkpoint_has_no_weights_to_serve(digits, tmp_path):
    run = _stopped_run(tmp_path / "run", digits, at=3)
    assert not (run / "model.safetensors").exists()  # no step-0 weights posing as a result
    with pytest.raises(aezoo.CheckpointError, match="missing file .*model.safetensors"):
        aezoo.load(run)


def test_item3_a_second_run_on_the_same_folder_is_refused_while_the_first_lives(tmp_path, capsys):
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "aezoo", *TRAIN, "--steps", "100000", "--no-report", "--out", str(run)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not rundir.is_locked(run):
            assert first.poll() is None, first.stderr.read()
            time.sleep(0.05)
        assert rundir.is_locked(run)
        one_line_error(capsys, main([*TRAIN, "--steps", "3", "--out", str(run)]), rf"{run} is in use by another aezoo process \(pid {first.pid}\)")
        one_line_error(capsys, main([*TRAIN, "--steps", "3", "--out", str(run), "--resume", "auto"]), "in use by another aezoo process")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert not rundir.is_locked(run)  # the kernel dropped the lock with the process: nothing stale
    with rundir.locked(run):
        assert rundir.is_locked(run)


def test_item2_resume_applies_a_changed_lr_and_records_it(digits, tmp_path):
    run = _stopped_run(tmp_path / "run", digits)
    from aezoo.train.trainer import Fit

    loop = Fit(_new(), digits, run, True, {"lr": 2e-4})
    assert loop.optimizers["model"][0].param_groups[0]["lr"] == 2e-4  # not the 1e-3 the optimizer state held
    loop()
    meta = json.loads((run / "config.json").read_text())
    assert meta["train"]["lr"] == 2e-4 and meta["resumed"] == [{"step": 10, "changed": {"lr": [1e-3, 2e-4]}}]


def test_item4_resume_with_another_shape_names_the_field(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TRAIN, "--steps", "3", "--no-report", "--out", str(run)]) == 0
    capsys.readouterr()
    one_line_error(capsys, main([*TRAIN, "--steps", "6", "--out", str(run), "--resume", "--latent-dim", "5"]), r"model config field 'latent_dim' \(3 in .*5 asked for\)")
    one_line_error(capsys, main([*TRAIN, "--steps", "6", "--out", str(run), "--resume", "--arch", "conv"]), r"model config field 'arch'")
    # config.json edited by hand: the checkpoint's own header names the field that no longer fits
    meta = json.loads((run / "config.json").read_text())
    meta["config"]["latent_dim"] = 7
    (run / "config.json").write_text(json.dumps(meta))
    one_line_error(capsys, main(["train", "ae", "--out", str(run), "--resume"]), r"saved with config field 'latent_dim' = 3, but the model has 7")
    one_line_error(capsys, main(["eval", str(run)]), r"model.safetensors: these weights were saved with config field 'latent_dim' = 3")


@pytest.mark.parametrize("edit, pattern", [
    (lambda m: [1, 2], r"config.json: expected a JSON object, found a list"),
    (lambda m: {k: v for k, v in m.items() if k != "config"}, r"config.json: missing key 'config'"),
    (lambda m: {**m, "config": {**m["config"], "depth": 3}}, r"config.json: unknown config field 'depth'"),
    (lambda m: {**m, "format": "aezoo-run/9"}, r"format aezoo-run/9 is newer than this aezoo reads \(aezoo-run/2\)"),
    (lambda m: {**m, "format": "something"}, r"not an aezoo-run file"),
])
def test_item4_6_a_damaged_or_newer_config_json_is_one_line(tmp_path, capsys, edit, pattern):
    run = tmp_path / "run"
    assert main([*TRAIN, "--steps", "3", "--no-report", "--out", str(run)]) == 0
    capsys.readouterr()
    before = edit(json.loads((run / "config.json").read_text()))
    (run / "config.json").write_text(json.dumps(before))
    one_line_error(capsys, main(["eval", str(run)]), pattern)
    one_line_error(capsys, main(["sample", str(run), "--out", str(tmp_path / "s.png")]), pattern)
    one_line_error(capsys, main(["train", "ae", "--out", str(run), "--resume"]), pattern)
    assert json.loads((run / "config.json").read_text()) == before  # never rewritten as another format


def test_item6_a_newer_checkpoint_format_is_refused_with_the_versions(digits, tmp_path):
    run = _stopped_run(tmp_path / "run", digits)
    tensors, meta = ckpt.load_tensors(run / "checkpoint.safetensors")
    ckpt.save_tensors(run / "checkpoint.safetensors", tensors, {**meta, "format": "aezoo-checkpoint/3"})
    with pytest.raises(aezoo.CheckpointError, match=r"format aezoo-checkpoint/3 is newer than this aezoo reads \(aezoo-checkpoint/2\)"):
        aezoo.train(_new(), digits, out=run, resume=True, progress=False)


def test_item4_a_full_disk_names_the_file_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    import errno

    run = tmp_path / "run"
    real = os.fdopen
    full = {"on": False}

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(ckpt.os, "fdopen", lambda fd, mode: Full(real(fd, mode)) if full["on"] else real(fd, mode))
    from aezoo.models.ae import AE

    monkeypatch.setattr(AE, "on_step", lambda self, step, total: full.update(on=step >= 12))
    code = main([*TRAIN, "--steps", "40", "--checkpoint-every", "5", "--out", str(run)])
    one_line_error(capsys, code, r"cannot write .*/checkpoint.safetensors: No space left on device; the checkpoint of step 10 is intact; .*--resume")
    assert ckpt.read_header(run / "checkpoint.safetensors")["progress"]["step"] == 10 and not list(run.glob(".*.tmp"))
    full["on"] = False
    monkeypatch.undo()
    assert main([*TRAIN, "--steps", "40", "--checkpoint-every", "5", "--no-report", "--out", str(run), "--resume"]) == 0


def test_item4_an_os_error_anywhere_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert "Not a directory" in one_line_error(capsys, main([*TRAIN, "--steps", "1", "--out", str(tmp_path / "file" / "run")]), r"file/run: Not a directory")


def test_item4_an_unreadable_folder_is_one_line(tmp_path):
    import shutil
    import subprocess
    import sys

    folder = tmp_path / "imgs" / "a"
    folder.mkdir(parents=True)
    Image.fromarray(_X[0]).save(folder / "0.png")
    folder.parent.chmod(0o300)  # neither listable nor readable, but enterable
    cmd = [sys.executable, "-m", "aezoo", *TRAIN[:2], "--data", str(folder.parent), "--steps", "1"]
    if os.geteuid() == 0:
        # root reads everything through CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: the child stays root
        # (so it reads the checkout and the venv wherever they live, e.g. under /root: issue 22) but
        # without those two capabilities, so that the folder's missing read bit holds for it as its owner
        if not shutil.which("setpriv"):
            pytest.skip("running as root, and without setpriv root cannot be made to respect the folder's permissions")
        drop = "-dac_override,-dac_read_search"
        cmd = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *cmd]
        if subprocess.run([*cmd[:3], "true"], capture_output=True).returncode != 0:
            pytest.skip("running as root without CAP_SETPCAP: setpriv cannot drop root's right to read any folder")
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "AEZOO_OFFLINE": "1", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"})
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip().splitlines()[-1] == f"aezoo: error: {folder.parent}: Permission denied"


@pytest.mark.parametrize("n", ["-3", "0"])
def test_item4_sample_and_reconstruct_refuse_n_below_one(tmp_path, capsys, n):
    run = tmp_path / "run"
    assert main(["train", "vae", *TRAIN[2:], "--steps", "2", "--no-report", "--out", str(run)]) == 0
    capsys.readouterr()
    one_line_error(capsys, main(["sample", str(run), "-n", n, "--out", str(tmp_path / "s.png")]), rf"-n must be >= 1, got {n}")
    one_line_error(capsys, main(["reconstruct", str(run), "-n", n, "--out", str(tmp_path / "r.png")]), rf"-n must be >= 1, got {n}")
    assert not (tmp_path / "s.png").exists()


def test_item5_a_nan_at_the_first_step_says_nothing_was_saved(digits, tmp_path):
    model = _new()
    model.training_step = lambda x, y=None: aezoo.models.base.ModelOutput(x.sum() * float("nan"))
    with pytest.raises(aezoo.TrainingError, match=r"non-finite loss at step 0 .*no checkpoint was written before it.*nothing to resume"):
        aezoo.train(model, digits, steps=30, batch_size=32, out=tmp_path, progress=False)
    assert not (tmp_path / "checkpoint.safetensors").exists() and not (tmp_path / "model.safetensors").exists()
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["finished"] is False and "non-finite loss at step 0" in meta["stopped"]


def test_item5_the_checkpoint_kept_after_a_nan_holds_weights_whose_loss_was_finite(digits, tmp_path):
    import torch

    model = _new()
    real, losses = model.training_step, []

    def step(x, y=None):
        out = real(x, y)
        if not model.training:  # validation at the epoch end
            return out
        if len(losses) == 11:  # the weights after step 11 give a NaN loss
            out = aezoo.models.base.ModelOutput(out.loss * float("nan"), out.terms)
        losses.append(float(out.loss.detach()))
        return out

    model.training_step = step
    with pytest.raises(aezoo.TrainingError, match=r"step 11 .*last checkpoint on disk is of step 10, whose loss was finite"):
        aezoo.train(model, digits, steps=30, batch_size=32, checkpoint_every=1, out=tmp_path, progress=False)
    # checkpointed every step, but the weights of step 11 were never written: their loss was NaN
    assert ckpt.read_header(tmp_path / "checkpoint.safetensors")["progress"]["step"] == 10
    assert ckpt.read_header(tmp_path / "model.safetensors")["step"] == 10 and torch.isfinite(torch.tensor(losses[10]))


def test_item9_stale_temp_files_of_a_killed_writer_are_cleaned_on_resume(digits, tmp_path):
    run = _stopped_run(tmp_path / "run", digits)
    orphan = run / ".checkpoint.safetensors.abcd1234.tmp"  # what a kill during a checkpoint write leaves
    orphan.write_bytes(b"half a checkpoint")
    aezoo.train(_new(), digits, out=run, resume=True, progress=False, report=False)
    assert not list(run.glob(".*.tmp"))


def test_item10_resume_without_report_prints_no_stale_metrics(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TRAIN, "--steps", "3", "--out", str(run)]) == 0
    assert "test: " in capsys.readouterr().out and (run / "eval.json").exists()
    assert main([*TRAIN, "--steps", "6", "--out", str(run), "--resume", "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "test: " not in out and "report" not in out
    assert not (run / "eval.json").exists() and not (run / "report.html").exists()  # they described older weights


def test_item7_the_cli_says_in_one_line_when_test_values_are_clipped(tmp_path, capsys):
    x = np.tile(np.linspace(0, 1, 6, dtype=np.float32), (100, 1)).reshape(100, 1, 2, 3)  # images: one global scale
    np.savez(tmp_path / "d.npz", x_train=x, x_test=2 * x[-20:])
    assert main(["train", "ae", "--data", str(tmp_path / "d.npz"), "--steps", "1", "--no-report", "--quiet", "--out", str(tmp_path / "run")]) == 0
    warn = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("aezoo: warning:")]
    assert len(warn) == 1 and "test values" in warn[0] and "clipped to [0, 1]" in warn[0]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"]["preprocessing"]["clipped"]["test"]["range"][1] == 2.0
