"""Hostile files, round two (issue 22, part A): crafted .aez headers, a prior killed between its two
files, hand-edited config.json, checkpoints and metrics.jsonl, a gzip bomb in an IDX file, a YAML alias
bomb, a decompress killed midway, a damaged model.safetensors. Each gives one line (exit 2) in bounded
memory and time, or is refused naming the file; none is silently wrong. (Part B's probes of the
explorer and the index are in test_hostile_uses.py.)"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import aezoo
from aezoo.cli import main
from aezoo.compress import container
from aezoo.errors import CheckpointError, ConfigError, DataError
from aezoo.train import checkpoint as ckpt
from conftest import one_line_error

TRAIN = ["train", "ae", "--data", "digits", "--limit", "300", "--batch-size", "32", "--latent-dim", "3", "--set", "hidden=32", "--quiet", "--no-report"]


@pytest.fixture(scope="module")
def vq_run(tmp_path_factory):
    """A tiny vq_vae on digits (4x4 grid of 16 codes) with a prior, and an .aez of 3 inputs."""
    pytest.importorskip("constriction")
    run = tmp_path_factory.mktemp("hostile") / "vq"
    assert main(["train", "vq_vae", "--data", "digits", "--steps", "30", "--set", "channels=8", "--set", "latent_dim=4", "--set", "num_codes=16",
                 "--out", str(run), "--quiet", "--no-report"]) == 0
    assert main(["train-prior", str(run), "--epochs", "1", "--width", "16", "--layers", "1", "--heads", "1", "--quiet", "--no-report"]) == 0
    assert main(["compress", str(run), "--data", "digits", "--limit", "3", "--out", str(run.parent / "three.aez")]) == 0
    return run


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    """A finished tiny ae run with a checkpoint every 5 steps (of 10)."""
    run = tmp_path_factory.mktemp("hostile") / "ae"
    assert main([*TRAIN, "--steps", "10", "--checkpoint-every", "5", "--out", str(run)]) == 0
    return run


def _copy(run, tmp_path, name="run"):
    dst = tmp_path / name
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns(".aezoo.lock"))
    return dst


# --- crafted .aez headers ----------------------------------------------------------------------
def _aez(header: container.Header, payload: bytes) -> bytes:
    return container.pack(header, payload)  # a valid checksum: only the sizes are hostile


def _header(**fields) -> container.Header:
    base = dict(model_hash=b"\0" * 8, count=3, chunk=256, grids=[(4, 4, 16)], input_shape=(1, 8, 8), codes_crc=0, model="vq_vae", run="")
    return container.Header(**{**base, **fields})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(0, 2**32 - 1), chunk=st.integers(0, 2**16 - 1),
       grids=st.lists(st.tuples(st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1)), min_size=0, max_size=3),
       words=st.integers(0, 16))
def test_any_aez_header_is_bounded_by_its_payload_or_refused(count, chunk, grids, words):
    blob = _aez(_header(count=count, chunk=chunk, grids=grids), b"\x01\x02\x03\x04" * words)
    try:
        h, payload = container.unpack(blob)
    except DataError:
        return
    # what is accepted is decodable in work proportional to the payload's capacity
    cells = h.count * sum(a * b for a, b, _ in h.grids)
    assert all(2 <= k <= 2**container.PRECISION for _, _, k in h.grids)
    assert cells * min(container.min_bits(k) for _, _, k in h.grids) <= 8 * len(payload) + container.SLACK_BITS


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(2, 512), b=st.integers(1, 256), steps=st.integers(1, 40), log_conc=st.floats(-2, 2))
def test_a_valid_stream_decodes_little_information_after_its_last_word(seed, k, b, steps, log_conc):
    """What coder.decode relies on to stop a file that claims more inputs than it holds: once the range
    decoder may be exhausted, a valid stream has at most its 64-bit state's worth of information left."""
    constriction = pytest.importorskip("constriction")
    from aezoo.compress.coder import EXHAUSTED_BITS

    rng = np.random.default_rng(seed)
    family = constriction.stream.model.Categorical(perfect=False)
    probs = [rng.dirichlet(np.full(k, 10.0**log_conc), size=b) for _ in range(steps)]
    syms = [np.minimum((ps.cumsum(1) < rng.random((b, 1))).sum(1), k - 1).astype(np.int32) for ps in probs]
    enc = constriction.stream.queue.RangeEncoder()
    for s, ps in zip(syms, probs):
        enc.encode(s, family, ps)
    dec = constriction.stream.queue.RangeDecoder(enc.get_compressed())
    after = 0.0
    for s, ps in zip(syms, probs):
        exhausted = dec.maybe_exhausted()
        out = dec.decode(family, ps)
        assert np.array_equal(out, s)
        if exhausted:
            after -= float(np.log2(np.maximum(ps[np.arange(b), out], 2.0**-24)).sum())
    assert after <= 64 < EXHAUSTED_BITS


def test_a_90_byte_aez_claiming_4_billion_inputs_is_refused_before_the_model_loads(vq_run, tmp_path, capsys):
    h, payload = container.unpack((vq_run.parent / "three.aez").read_bytes())
    f = tmp_path / "bomb.aez"
    f.write_bytes(_aez(dataclasses.replace(h, count=2**32 - 1, run="", names=()), payload))  # "": no run to load; no input names
    assert f.stat().st_size < 100
    one_line_error(capsys, main(["decompress", str(f), "--out", str(tmp_path / "out")]),
                   r"bomb\.aez: corrupt header: 4294967295 inputs of 16 code cells need at least \d+ bits, and its payload holds \d+")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("count, chunk", [(10**6, 256), (10**6, 1), (4, 1)])
def test_a_count_the_payload_may_hold_but_does_not_is_one_line(vq_run, tmp_path, capsys, count, chunk):
    h, payload = container.unpack((vq_run.parent / "three.aez").read_bytes())
    f = tmp_path / "lie.aez"
    f.write_bytes(_aez(dataclasses.replace(h, count=count, chunk=chunk, names=()), payload))
    one_line_error(capsys, main(["decompress", str(f), "--out", str(tmp_path / "out.npz")]), r"lie\.aez: (corrupt payload|the decoded codes fail their checksum)")
    assert not (tmp_path / "out.npz").exists()


# --- the prior's two files ---------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["other weights", "no weights", "garbled json", "huge width"])
def test_a_prior_killed_between_its_two_files_is_one_line_and_train_prior_recovers(vq_run, tmp_path, capsys, damage):
    run = _copy(vq_run, tmp_path)
    if damage == "other weights":  # what a train-prior killed after prior.safetensors leaves: new weights, old prior.json
        other = _copy(vq_run, tmp_path, "other")
        assert main(["train-prior", str(other), "--epochs", "1", "--width", "32", "--layers", "1", "--heads", "1", "--quiet", "--no-report"]) == 0
        shutil.copy(other / "prior.safetensors", run / "prior.safetensors")
        pattern = r"prior\.safetensors is not the file .*prior\.json was written with .*aezoo train-prior"
    elif damage == "no weights":
        (run / "prior.safetensors").unlink()
        pattern = r"prior\.json has no prior\.safetensors beside it .*aezoo train-prior"
    elif damage == "garbled json":
        (run / "prior.json").write_text('{"config": ')
        pattern = r"corrupt JSON in .*prior\.json.*aezoo train-prior"
    else:  # a hand edit: sizes no memory holds are named before anything is allocated
        meta = json.loads((run / "prior.json").read_text())
        meta["config"]["width"] = 10**6
        (run / "prior.json").write_text(json.dumps(meta))
        pattern = r"prior\.json: config field 'width' = 1000000: the model's weights would take .*aezoo train-prior"
    capsys.readouterr()
    one_line_error(capsys, main(["compress", str(run), "--data", "digits", "--limit", "3", "--out", str(tmp_path / "x.aez")]), pattern)
    one_line_error(capsys, main(["eval", str(run), "--iw-samples", "0", "--json"]), pattern)
    assert main(["train-prior", str(run), "--epochs", "1", "--width", "16", "--layers", "1", "--heads", "1", "--quiet", "--no-report"]) == 0
    assert main(["compress", str(run), "--data", "digits", "--limit", "3", "--out", str(tmp_path / "x.aez")]) == 0


# --- damaged or foreign weights and checkpoints --------------------------------------------------
def _flip_exponent_bit(path):
    """Flip the top exponent bit of the first float32 of the largest tensor: 0.01 becomes ~3e36."""
    with safe_open(str(path), framework="pt") as f:
        name = max(f.keys(), key=lambda k: int(np.prod(f.get_slice(k).get_shape())))
    raw = bytearray(path.read_bytes())
    (n,) = struct.unpack_from("<Q", raw)
    head = json.loads(raw[8 : 8 + n])
    start = 8 + n + head[name]["data_offsets"][0]
    raw[start + 3] ^= 0x40  # little-endian float32: byte 3 holds the sign and the top exponent bits
    path.write_bytes(bytes(raw))


def test_a_flipped_exponent_bit_in_the_weights_is_refused_naming_the_file(ae_run, tmp_path, capsys):
    run = _copy(ae_run, tmp_path)
    _flip_exponent_bit(run / "model.safetensors")
    capsys.readouterr()
    one_line_error(capsys, main(["eval", str(run), "--iw-samples", "0", "--json"]), r"model\.safetensors is damaged or was edited")
    assert capsys.readouterr().out == ""  # no metrics, let alone invalid JSON


def _rewrite_header(path, edit):
    """Rewrite the aezoo header of a safetensors file as a hand edit would: same tensors, same checksum field."""
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    head = json.loads(meta["aezoo"])
    edit(head)
    meta["aezoo"] = json.dumps(head)
    save_file(tensors, str(path), metadata=meta)


def test_a_checkpoint_with_an_edited_step_is_refused(ae_run, tmp_path, capsys):
    run = _copy(ae_run, tmp_path)
    _rewrite_header(run / "checkpoint.safetensors", lambda h: h["progress"].update(step=7))
    capsys.readouterr()
    one_line_error(capsys, main([*TRAIN, "--steps", "20", "--out", str(run), "--resume"]), r"checkpoint\.safetensors is damaged or was edited")


def test_another_runs_checkpoint_is_refused(ae_run, tmp_path, capsys):
    a, b = _copy(ae_run, tmp_path, "a"), tmp_path / "b"
    assert main([*TRAIN, "--steps", "10", "--checkpoint-every", "5", "--out", str(b)]) == 0  # same model, data and seed
    shutil.copy(b / "checkpoint.safetensors", a / "checkpoint.safetensors")
    capsys.readouterr()
    one_line_error(capsys, main([*TRAIN, "--steps", "20", "--out", str(a), "--resume"]), r"checkpoint\.safetensors belongs to another run")


@pytest.mark.parametrize("field, value", [("train.seed", 5), ("data.preprocessing.seed", 5)])
def test_config_json_edits_of_the_seeds_are_refused_on_resume(ae_run, tmp_path, capsys, field, value):
    run = _copy(ae_run, tmp_path)
    meta = json.loads((run / "config.json").read_text())
    *path, last = field.split(".")
    node = meta
    for k in path:
        node = node[k]
    node[last] = value
    (run / "config.json").write_text(json.dumps(meta))
    capsys.readouterr()
    # resumed on the run's own data (no --data) and options: both come from the edited config.json, so
    # only the checkpoint knows what the weights were trained under
    key = field.split(".", 1)[1] if field.startswith("train.") else field
    one_line_error(capsys, main(["train", "ae", "--steps", "20", "--quiet", "--no-report", "--out", str(run), "--resume"]),
                   rf"checkpoint\.safetensors was written with {re.escape(key)} = 0, but .*config\.json says 5")


def test_non_finite_metrics_print_strict_json(recwarn):
    text = ckpt.dumps({"recon_mse": float("inf"), "nested": {"x": [1.0, float("nan")]}, "ok": 2.5})

    def refuse(name):
        raise AssertionError(f"invalid JSON constant {name}")

    obj = json.loads(text, parse_constant=refuse)
    assert obj == {"recon_mse": None, "nested": {"x": [1.0, None]}, "ok": 2.5, "non_finite": ["recon_mse", "nested.x[1]"]}
    assert any("recon_mse" in str(w.message) for w in recwarn)


def test_eval_json_never_prints_invalid_json(ae_run, capsys, monkeypatch):
    import sys

    # what a model with an infinite weight measured before issue 22 (the module: aezoo.evaluate is the function)
    monkeypatch.setattr(sys.modules["aezoo.evaluate"], "evaluate", lambda *a, **k: {"recon_mse": float("inf"), "n": 3})
    assert main(["eval", str(ae_run), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out, parse_constant=lambda c: pytest.fail(f"invalid JSON {c}")) == {"recon_mse": None, "n": 3, "non_finite": ["recon_mse"]}
    assert "aezoo: warning: not finite (NaN or infinite), written as null: recon_mse" in err


# --- hand-edited config.json and --set sizes ---------------------------------------------------
def test_config_json_nested_deeply_is_one_line(ae_run, tmp_path, capsys):
    run = _copy(ae_run, tmp_path)
    meta = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(meta)[:-1] + ', "junk": ' + "[" * 100_000 + "]" * 100_000 + "}")
    capsys.readouterr()
    one_line_error(capsys, main(["eval", str(run), "--iw-samples", "0"]), r"config\.json: nested too deeply")
    (run / "config.json").write_text(json.dumps({**meta, "junk": json.loads("[" * 200 + "]" * 200)}))
    one_line_error(capsys, main(["eval", str(run), "--iw-samples", "0"]), r"config\.json: nested deeper than 32 levels")


def test_sizes_memory_cannot_hold_are_one_line_naming_the_field(ae_run, tmp_path, capsys):
    tracemalloc.start()
    try:
        args = ["train", "ae", "--data", "digits", "--limit", "300", "--steps", "1", "--quiet", "--no-report"]
        one_line_error(capsys, main([*args, "--set", "latent_dim=1000000000000", "--out", str(tmp_path / "a")]),
                       r"config field 'latent_dim' = 1000000000000: the model's weights would take [\d.]+ GiB")
        run = _copy(ae_run, tmp_path)
        meta = json.loads((run / "config.json").read_text())
        meta["config"]["hidden"] = [10**12]
        (run / "config.json").write_text(json.dumps(meta))
        one_line_error(capsys, main(["eval", str(run), "--iw-samples", "0"]), r"config field 'hidden' = \(1000000000000,\): the model's weights would take")
        assert tracemalloc.get_traced_memory()[1] < 200 * 2**20
    finally:
        tracemalloc.stop()
    assert not (tmp_path / "a").exists()


# --- metrics.jsonl on resume --------------------------------------------------------------------
def test_a_metrics_record_cut_by_a_kill_is_dropped_on_resume(ae_run, tmp_path, capsys):
    run = _copy(ae_run, tmp_path)
    text = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(text + '{"epoch": 3, "step": 12, "train/lo')  # the record a kill -9 cut
    _rewind(run)
    assert main([*TRAIN, "--steps", "20", "--out", str(run), "--resume"]) == 0
    assert all(json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines())


def test_a_garbled_metrics_record_is_one_line_on_resume(ae_run, tmp_path, capsys):
    run = _copy(ae_run, tmp_path)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(["{garbled", *lines[1:]]) + "\n")
    _rewind(run)
    capsys.readouterr()
    one_line_error(capsys, main([*TRAIN, "--steps", "20", "--out", str(run), "--resume"]), r"metrics\.jsonl: line 1 is not a metrics record")


def _rewind(run):
    """Mark a finished run unfinished, as a kill before its end leaves it (--resume continues it)."""
    meta = json.loads((run / "config.json").read_text())
    meta["finished"] = False
    (run / "config.json").write_text(json.dumps(meta))


# --- a gzip bomb in an IDX file and a YAML alias bomb -------------------------------------------
def _gzip_bomb(header: bytes, zeros: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [c.compress(header)]
    block = bytes(1 << 20)
    for _ in range(zeros >> 20):
        out.append(c.compress(block))
    return b"".join(out) + c.flush()


@pytest.mark.parametrize("shape", [(10, 8, 8), (2**31, 2**20, 8)])
def test_a_gzip_bomb_in_an_idx_file_is_one_line_in_bounded_memory(tmp_path, shape):
    f = tmp_path / "bomb-idx3-ubyte.gz"
    f.write_bytes(_gzip_bomb(bytes([0, 0, 8, 3]) + np.asarray(shape, ">u4").tobytes(), 256 << 20))  # 256 MiB of zeros in ~250 KB
    assert f.stat().st_size < 2**20
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"bomb-idx3-ubyte\.gz: (IDX file has more bytes after the 640 bytes|its IDX header promises shape)"):
            aezoo.data.readers.read_idx(f)
        assert tracemalloc.get_traced_memory()[1] < 16 * 2**20
    finally:
        tracemalloc.stop()


def test_a_gzipped_idx_of_several_members_still_reads(tmp_path):
    x = np.arange(128, dtype=np.uint8).reshape(2, 8, 8)
    raw = bytes([0, 0, 8, 3]) + np.asarray(x.shape, ">u4").tobytes() + x.tobytes()
    import gzip

    (tmp_path / "x.idx.gz").write_bytes(gzip.compress(raw[:50]) + gzip.compress(raw[50:]))
    assert np.array_equal(aezoo.data.readers.read_idx(tmp_path / "x.idx.gz"), x)


def test_a_yaml_alias_bomb_is_one_line(tmp_path, capsys):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    f = tmp_path / "bomb.yaml"
    f.write_text("\n".join(lines) + "\nlatent_dim: *a8\n")  # 9**9 = 387 million strings once expanded
    with pytest.raises(ConfigError, match=r"bomb\.yaml: YAML aliases \(\*name\) are not allowed"):
        aezoo.config.load_file(f)
    one_line_error(capsys, main([*TRAIN, "--steps", "1", "--config", str(f), "--out", str(tmp_path / "r")]), r"YAML aliases")


# --- decompress writes whole or nothing ----------------------------------------------------------
def test_a_decompress_killed_midway_leaves_no_folder(vq_run, tmp_path, capsys, monkeypatch):
    from PIL import Image

    real, saved = Image.Image.save, []

    def dies_on_the_third(self, fp, *a, **k):
        if len(saved) == 2:
            raise KeyboardInterrupt  # what SIGINT does midway; SIGKILL leaves only a hidden .tmp folder
        saved.append(fp)
        return real(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", dies_on_the_third)
    assert main(["decompress", str(vq_run.parent / "three.aez"), "--out", str(tmp_path / "imgs")]) not in (0, 2)  # 130: interrupted
    assert len(saved) == 2
    assert not (tmp_path / "imgs").exists() and list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert main(["decompress", str(vq_run.parent / "three.aez"), "--out", str(tmp_path / "imgs")]) == 0
    assert sorted(p.name for p in (tmp_path / "imgs").iterdir()) == ["test_row_0.png", "test_row_1.png", "test_row_2.png"]  # names kept (issue 23)
    capsys.readouterr()
    one_line_error(capsys, main(["decompress", str(vq_run.parent / "three.aez"), "--out", str(tmp_path / "imgs")]), r"imgs is a folder that is not empty")


def test_load_refuses_a_damaged_file_without_a_cli(ae_run, tmp_path):
    run = _copy(ae_run, tmp_path)
    _flip_exponent_bit(run / "checkpoint.safetensors")
    with pytest.raises(CheckpointError, match=r"checkpoint\.safetensors is damaged or was edited"):
        ckpt.load_tensors(run / "checkpoint.safetensors")
    assert torch.isfinite(aezoo.load(run).encode(torch.rand(2, 1, 8, 8))).all()  # model.safetensors is intact and is what loads
