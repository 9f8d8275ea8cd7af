"""Issue 22, part B: hostile uses of the index folders, ``search``, the explorer and ``train-prior``.
Each probe of the issue is a test here: it must end in one line naming the file or field (exit 2 from
the CLI, a 4xx from the explorer), in bounded memory and time, and never in a silently wrong answer."""
import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aezoo
from aezoo.cli import main

pytest.importorskip("faiss")


def run_cli(*args, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(Path(aezoo.__file__).parents[1]), "AEZOO_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "aezoo", *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def assert_one_line(p, pattern):
    import re

    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, (p.returncode, p.stderr)
    assert re.search(pattern, lines[0]), lines[0]


def refused(path, pattern, **kw):
    """load_index refuses with one line matching ``pattern``."""
    with pytest.raises(aezoo.errors.AezooError, match=pattern) as e:
        aezoo.load_index(path, **kw)
    assert "\n" not in str(e.value), str(e.value)
    return str(e.value)


# --- fixtures: one tiny run, an index folder of each kind, copied per test ---------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from explore_runs import make_run

    return make_run(tmp_path_factory.mktemp("hostile") / "run", "ae", latent_dim=8)


@pytest.fixture(scope="module")
def built(run, tmp_path_factory):
    data = aezoo.data.load("digits", limit=300)
    root = tmp_path_factory.mktemp("indexes")
    params = {"flat": {}, "hnsw": {"M": 8}, "ivf-pq": {"nlist": 4, "pq_bits": 4, "pq_m": 2}}
    return {kind: aezoo.index(run, data, kind=kind, **p).save(root / kind) for kind, p in params.items()}


@pytest.fixture
def folder(built, tmp_path):
    def copy(kind="flat"):
        dst = tmp_path / f"idx-{kind}"
        shutil.copytree(built[kind], dst)
        return dst

    return copy


def manifest(path):
    return json.loads((path / "manifest.json").read_text())


def write_manifest(path, m):
    (path / "manifest.json").write_text(json.dumps(m))


def test_the_folders_load_as_built(built):
    for kind, path in built.items():
        index = aezoo.load_index(path)
        assert index.kind == kind and len(index) == index.manifest["count"] > 0


# --- hand-edited manifest.json -------------------------------------------------------------------------
EDITS = [  # (kind of index, edit of the manifest, what the one line must name)
    ("flat", {"kind": "lsh"}, "'kind'"),
    ("flat", {"kind": "hnsw"}, "params of a hnsw index"),
    ("flat", {"params": {"M": 8}}, "params of a flat index"),
    ("flat", {"params": []}, "'params'"),
    ("ivf-pq", {"params": {"nlist": 4, "nprobe": 0, "pq_m": 2, "pq_bits": 4, "rerank": 0}}, r"params\.nprobe must be in 1\.\.4"),
    ("ivf-pq", {"params": {"nlist": 4, "nprobe": -3, "pq_m": 2, "pq_bits": 4, "rerank": 0}}, r"params\.nprobe"),
    ("hnsw", {"params": {"M": 8, "ef_construction": 80, "ef_search": "64"}}, r"params\.ef_search must be an integer"),
    ("hnsw", {"params": {"M": 8, "ef_construction": 80, "ef_search": 1e12}}, r"params\.ef_search must be an integer"),
    ("hnsw", {"params": {"M": 8, "ef_construction": 80, "ef_search": 10**12}}, r"params\.ef_search must be in"),
    ("hnsw", {"params": {"M": 16, "ef_construction": 80, "ef_search": 64}}, "field 'params'"),  # in range, but not what was built
    ("flat", {"run": 42}, "'run'"),
    ("flat", {"metric": "cosine"}, "field 'metric' is \"cosine\" but the index was built with \"l2\""),
    ("flat", {"metric": "manhattan"}, "'metric'"),
    ("flat", {"labelled": False}, "field .labelled."),
    ("flat", {"count": 10}, "field 'count'"),
    ("flat", {"dim": 9}, "field 'dim'"),
    ("flat", {"model_hash": "0" * 64}, "field 'model_hash'"),
    ("flat", {"data": {"name": "digits", "split": "test"}}, "field 'data'"),
    ("flat", {"extra": 1}, "field 'extra' is 1 but the index was built with absent"),
    ("flat", {"files": {"index.faiss": "x"}}, "'files'"),
    ("flat", {"format": "aezoo-index/1"}, "older aezoo"),
]


@pytest.mark.parametrize("kind,edit,needle", EDITS, ids=[f"{k}-{next(iter(e))}-{i}" for i, (k, e, _) in enumerate(EDITS)])
def test_a_hand_edited_manifest_is_refused_naming_the_field(folder, kind, edit, needle):
    path = folder(kind)
    write_manifest(path, {**manifest(path), **edit})
    refused(path, needle)


def test_a_deeply_nested_or_huge_manifest_is_one_line(folder):
    path = folder()
    (path / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    refused(path, "corrupt manifest")
    (path / "manifest.json").write_text(json.dumps({"format": "aezoo-index/2", "pad": "x" * (2 << 20)}))
    refused(path, "more than a manifest can take")


def test_a_moved_run_is_named_and_the_weights_still_checked(folder, run, tmp_path):
    path = folder()
    write_manifest(path, {**manifest(path), "run": str(tmp_path / "gone")})  # the run moved: not an answer-changing field
    refused(path, "not there any more")
    assert len(aezoo.load_index(path, model=aezoo.load(run))) > 0  # --run names it; its weights hash as recorded


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_edit_of_any_manifest_field_is_refused_in_one_line(built, tmp_path, data):
    """Random values in random fields (and in the params): every edit that changes the field's JSON is
    refused with one line; the folder loads only when the value is unchanged."""
    kind = data.draw(st.sampled_from(sorted(built)))
    path = tmp_path / "idx"
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(built[kind], path)
    m = manifest(path)
    key = data.draw(st.sampled_from(sorted(set(m) - {"run"}) + ["params." + p for p in m["params"]]))
    value = data.draw(JSON_VALUES)
    edited = json.loads(json.dumps(m))
    if key.startswith("params."):
        edited["params"][key.split(".", 1)[1]] = value
    else:
        edited[key] = value
    write_manifest(path, edited)
    if json.dumps(edited, sort_keys=True) == json.dumps(m, sort_keys=True):
        assert len(aezoo.load_index(path)) == m["count"]
    else:
        refused(path, ".")


def test_cli_search_on_an_edited_manifest_is_one_line(folder):
    path = folder("hnsw")
    write_manifest(path, {**manifest(path), "params": {"M": 8, "ef_construction": 80, "ef_search": "64"}})
    assert_one_line(run_cli("search", path, "--data", "digits", "--limit", "2"), r"params\.ef_search must be an integer")


# --- crafted or swapped files ---------------------------------------------------------------------------
def _reseal(path, name):
    """What a careful forger does: update the manifest's checksum of the file they replaced."""
    import hashlib

    m = manifest(path)
    m["files"][name] = hashlib.sha256((path / name).read_bytes()).hexdigest()
    write_manifest(path, m)


def _items(path):
    with np.load(path / "items.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_crafted_items_npz_is_refused_before_its_data_is_read(folder):
    path = folder()
    items = _items(path)
    np.savez(path / "items.npz", **{**items, "labels": np.array([object()] * len(items["ids"]), dtype=object)})
    _reseal(path, "items.npz")
    refused(path, "labels holds Python objects")  # never unpickled
    np.savez(path / "items.npz", **{**items, "labels": items["labels"][:-1]})
    _reseal(path, "items.npz")
    refused(path, r"labels is int64 of shape \(\d+,\), expected int64 of shape")
    np.savez(path / "items.npz", **{k: v for k, v in items.items() if k != "manifest"})
    _reseal(path, "items.npz")
    refused(path, "holds no manifest.npy")
    np.savez(path / "items.npz", **{**items, "extra": np.zeros(3)})
    _reseal(path, "items.npz")
    refused(path, "holds extra.npy, ids.npy, labels.npy, manifest.npy, expected ids.npy, labels.npy, manifest.npy")
    (path / "items.npz").write_bytes(b"PK\x03\x04 not a zip")
    _reseal(path, "items.npz")
    refused(path, "not a readable items file")


def test_edited_or_swapped_files_fail_their_checksums(folder, built):
    path = folder()
    items = _items(path)
    for edit in ({"ids": items["ids"][::-1].copy()}, {"labels": (items["labels"] + 1) % 10}):  # items order, labels
        np.savez(path / "items.npz", **{**items, **edit})
        refused(path, "items.npz does not match its manifest's checksum")
    shutil.copy(built["flat"] / "items.npz", path / "items.npz")
    shutil.copy(built["hnsw"] / "index.faiss", path / "index.faiss")  # a FAISS file of another index of the run
    refused(path, "index.faiss does not match its manifest's checksum")
    _reseal(path, "index.faiss")  # even with the checksum updated, the kind does not fit
    refused(path, "not a FAISS flat index")


def test_index_files_that_are_not_regular_files_are_refused_without_reading(folder, tmp_path):
    path = folder()
    (path / "index.faiss").unlink()
    (path / "index.faiss").symlink_to("/dev/zero")
    refused(path, r"index\.faiss is not a regular file \(a character device\)")
    (path / "index.faiss").unlink()
    os.mkfifo(path / "index.faiss")  # opening a FIFO to read would wait for a writer
    outcome = []
    t = threading.Thread(target=lambda: outcome.append(pytest.raises(aezoo.CheckpointError, aezoo.load_index, path).value), daemon=True)
    t.start()
    t.join(30)
    assert outcome and "a FIFO" in str(outcome[0]), "load_index blocked on a FIFO"
    (path / "index.faiss").unlink()
    with open(path / "index.faiss", "wb") as f:  # sparse: 8 GiB on paper, nothing on disk
        f.truncate(8 << 30)
    refused(path, r"index\.faiss is 8,589,934,592 bytes, more than a flat index of \d+ codes of size 8 can take")
    (path / "manifest.json").unlink()
    (path / "manifest.json").symlink_to("/dev/zero")
    refused(path, "manifest.json is not a regular file")


# --- search with queries that cannot be searched --------------------------------------------------------------
@pytest.mark.parametrize("value", [1e38, float("nan"), float("inf")])
def test_unsearchable_queries_are_refused_not_answered_with_zero_hits(built, value):
    index = aezoo.load_index(built["flat"])
    q = np.zeros((3, 8), np.float32)
    q[1] = value
    with pytest.raises(aezoo.DataError, match=r"the codes of 1 of 3 queries \(rows 1\) are (not finite|too long for float32)"):
        index.search_codes(q, 3)
    with pytest.raises(aezoo.DataError, match="nothing was indexed"):
        aezoo.search.build_index(None, None, codes=q)
    if value == 1e38:  # a finite input whose code is finite but overflows float32 distances
        x = torch.full((2, 1, 8, 8), value)
        with pytest.raises(aezoo.DataError, match="too long for float32 distances"):
            index.search(x, 3)


def test_cli_search_never_reports_hits_it_did_not_write(built, tmp_path):
    np.savez(tmp_path / "q.npz", x=np.full((2, 8, 8), 1e38, np.float32))
    p = run_cli("search", built["flat"], tmp_path / "q.npz", "-k", "3", "--out", tmp_path / "hits.json")
    assert_one_line(p, r"the codes of 2 of 2 queries \(.*q\.npz\[0\], .*q\.npz\[1\]\) are too long .*nothing was searched")
    assert not (tmp_path / "hits.json").exists()
    n = aezoo.load_index(built["flat"]).manifest["count"]
    assert main(["search", str(built["flat"]), "--data", "digits", "--limit", "2", "-k", str(n + 5), "--out", str(tmp_path / "hits.json")]) == 0
    hits = json.loads((tmp_path / "hits.json").read_text())["queries"]
    assert all(len(q["hits"]) == n for q in hits)  # the summary below counts the same


def test_search_summary_counts_the_hits_in_the_file(capsys):
    from aezoo.commands.search import hits_summary

    assert hits_summary([{"hits": [1, 2, 3]}] * 2, 3, 100) == "3 hits each"
    assert hits_summary([{"hits": [1, 2]}, {"hits": [1, 2, 3]}], 3, 100).startswith("5 hits in all, fewer than 3 for 1 of them")
    assert "the index holds 2 items" in hits_summary([{"hits": [1, 2]}], 3, 2)


# --- the explorer's doors -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def explorer(run):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from aezoo.explore import Explorer
    from aezoo.train.checkpoint import run_meta
    from aezoo.viz.report import data_of_run

    meta = run_meta(run)
    return Explorer(aezoo.load(run), data_of_run(meta), run, meta)


def client(explorer, access=None, base="http://127.0.0.1:8765"):
    from aezoo.explore import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    return TestClient(create_app(explorer, access), base_url=base)


@pytest.mark.parametrize("host,status", [("127.0.0.1:8765", 200), ("localhost:8765", 200), ("LOCALHOST.:8765", 200), ("[::1]:8765", 200),
                                         ("evil.example:8765", 403), ("127.0.0.1.evil.example", 403), ("", 403), ("[::1", 403)])
def test_the_host_header_must_name_this_server(explorer, host, status):
    r = client(explorer).get("/api/info", headers={"host": host})
    assert r.status_code == status, r.text
    if status == 403:
        assert "DNS rebinding" in r.json()["detail"]


def test_the_token_is_needed_on_every_request_then_kept_in_a_cookie(explorer):
    from aezoo.explore.access import Access

    c = client(explorer, Access(None, "s3cret", 8765))
    for path in ("/", "/api/info", "/static/app.js", "/report"):
        assert c.get(path).status_code == 403
    assert c.get("/api/info", params={"token": "wrong"}).status_code == 403
    assert c.get("/", params={"token": "s3cret"}).status_code == 200
    cookie = c.cookies.get("aezoo_token_8765")
    assert cookie == "s3cret"
    assert c.get("/api/info").status_code == 200  # the page's own requests carry the cookie
    c.cookies.clear()
    assert c.get("/api/info").status_code == 403
    assert c.get("/api/info", headers={"host": "anything:8765"}, params={"token": "s3cret"}).status_code == 200  # bound to every interface


def test_access_rules_follow_the_bound_address(explorer):
    import socket

    from aezoo.explore.access import for_socket
    from aezoo.explore.server import bind, url_of

    for host, token, hosts in (("127.0.0.1", False, {"127.0.0.1", "localhost", "::1"}), ("0.0.0.0", True, None)):
        sock = bind(host, 0)
        try:
            a = for_socket(host, sock)
            assert (a.token is not None) == token
            assert a.hosts is None if hosts is None else hosts <= a.hosts
            assert ("?token=" in url_of(sock, a.token)) == token
        finally:
            sock.close()
    a1, a2 = (for_socket("0.0.0.0", s) for s in (bind("0.0.0.0", 0), bind("0.0.0.0", 0)))
    assert a1.token != a2.token and len(a1.token) >= 32  # drawn per start


def test_explore_on_every_interface_warns_and_prints_the_token_url(run, explorer):
    import signal
    import urllib.request
    from urllib.error import HTTPError

    env = {**os.environ, "PYTHONPATH": str(Path(aezoo.__file__).parents[1]), "AEZOO_OFFLINE": "1"}
    p = subprocess.Popen([sys.executable, "-m", "aezoo", "explore", str(run), "--host", "0.0.0.0", "--port", "0", "--no-browser"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert "?token=" in line, (line, p.stderr.read() if p.poll() is not None else "")
        url = line.split("at ", 1)[1].split()[0]
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with pytest.raises(HTTPError) as e:
            opener.open(url.split("?")[0] + "api/info", timeout=30)
        assert e.value.code == 403
        assert b'"model":"ae"' in opener.open(url.replace("/?", "/api/info?"), timeout=30).read()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
        err = p.stderr.read()
        assert "warning: --host 0.0.0.0 is reachable from other machines" in err and url.split("token=")[1] in err
    finally:
        if p.poll() is None:
            p.kill()


@pytest.mark.parametrize("params", [{"x": 1e39, "y": 0}, {"x": 0, "y": -1e39}, {"x": 1e308, "y": 0}, {"x": "1e999", "y": 0},
                                    {"x": "nan", "y": 0}, {"x": "-inf", "y": 0}, {"x": 10**400, "y": 0}])
def test_decode_point_out_of_range_is_one_clear_400(explorer, params):
    r = client(explorer).get("/api/decode_point", params=params)
    assert r.status_code in (400, 422) and "\n" not in r.json()["detail"], r.text


@settings(max_examples=60, deadline=None)
@given(x=st.floats() | st.integers(-(10**400), 10**400), y=st.floats(-10, 10))
def test_decode_point_answers_an_image_or_one_4xx_line_for_any_number(explorer, x, y):
    r = client(explorer).get("/api/decode_point", params={"x": x, "y": y})
    lo, hi = explorer.map_lo.tolist(), explorer.map_hi.tolist()
    on_map = lo[0] <= x <= hi[0] and lo[1] <= y <= hi[1]  # NaN compares false
    assert r.status_code == (200 if on_map else 400), (x, y, r.text)
    if r.status_code == 200:
        assert all(np.isfinite(r.json()["code"]))
    else:
        assert "\n" not in r.json()["detail"]


def test_decode_bodies_are_bounded_and_checked(explorer):
    c = client(explorer)
    dim = explorer.code_dim
    for body, status in (({"codes": [[1e39] * dim]}, 400), ({"codes": [[0.0] * (dim + 1)]}, 400), ({"codes": [[0.0] * 100_000]}, 400),
                         ({"codes": [[0.0] * dim] * 65}, 422), ({"codes": []}, 422), ({"codes": "x"}, 422)):
        r = c.post("/api/decode", json=body)
        assert r.status_code == status and "\n" not in r.json()["detail"], (body if len(str(body)) < 80 else "...", r.text)
    for raw in ('{"codes": [[NaN, 0, 0, 0, 0, 0, 0, 0]]}', '{"codes": ' + "[" * 50_000 + "]" * 50_000 + "}"):
        r = c.post("/api/decode", content=raw, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, r.text
    big = '{"codes": [[' + ",".join(["0"] * 3_000_000) + "]]}"
    assert c.post("/api/decode", content=big, headers={"content-type": "application/json"}).status_code == 413


# --- train-prior and the run folder's lock ------------------------------------------------------------------
def test_train_prior_refuses_a_run_another_process_holds(tmp_path, capsys):
    from explore_runs import make_run
    from aezoo.train.rundir import LOCK, is_locked

    run = make_run(tmp_path / "vq", "vq_vae", num_codes=8, latent_dim=4, channels=(4, 8), train={"epochs": 1})
    args = ["train-prior", str(run), "--epochs", "1", "--width", "16", "--layers", "1", "--heads", "1", "--no-report", "--quiet"]
    fd = os.open(run / LOCK, os.O_RDWR | os.O_CREAT)  # what a running `aezoo train --resume` holds
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"4242\n")
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "in use by another aezoo process (pid 4242)" in err and "train-prior" in err, err
        assert not (run / "prior.safetensors").exists()
    finally:
        os.close(fd)
    assert main(args) == 0 and (run / "prior.safetensors").exists()
    assert not is_locked(run)  # released when train-prior ends
    assert main(["train-prior", str(tmp_path / "nope")]) == 2 and not (tmp_path / "nope").exists()  # no folder made by the lock
