"""Search by embedding: FAISS indexes of a run's codes, their files, the commands and the metrics."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import aezoo
from aezoo.cli import main
from aezoo.search import build_index, exact_neighbours, precision_at_k, recall_at_k

pytest.importorskip("faiss")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "aezoo", *map(str, args)], capture_output=True, text=True, env={**os.environ, "AEZOO_OFFLINE": "1"})


def assert_one_line_error(p, pattern):
    import re

    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("aezoo: error:") and "Traceback" not in p.stderr, p.stderr
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    for name, seed in (("ae", 0), ("other", 1)):
        assert main(["train", "ae", "--data", "digits", "--epochs", "2", "--latent-dim", "8", "--set", "hidden=32", "--seed", str(seed),
                     "--out", str(root / name), "--quiet", "--no-report"]) == 0
    return root


def _clustered(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(50, d, generator=g)
    return centres[torch.randint(0, 50, (n,), generator=g)] + 0.5 * torch.randn(n, d, generator=g)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_flat_index_is_exact_and_approximate_kinds_find_the_exact_neighbours(metric):
    z, q = torch.randn(3000, 12), torch.randn(40, 12)
    hits = build_index(None, None, codes=z, metric=metric).search_codes(q, 10)
    dist, idx = exact_neighbours(z, q, 10, metric)
    assert np.array_equal(hits.ids, idx.numpy())  # continuous random data: no ties
    assert np.allclose(hits.distances, dist.numpy(), atol=1e-5)
    brute = torch.cdist(q, z) if metric == "l2" else 1 - torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(z, dim=1).T
    assert torch.allclose(dist, brute.sort(1).values[:, :10], atol=1e-5)  # and the exact neighbours are the brute-force ones
    z, q = _clustered(5000, 16), _clustered(200, 16, seed=1)
    exact = exact_neighbours(z, q, 10, metric)[1].numpy()
    hnsw = build_index(None, None, codes=z, kind="hnsw", metric=metric)
    recall = [recall_at_k(hnsw.search_codes(q, 10, ef_search=ef).ids, exact) for ef in (8, 64, 256)]
    assert recall[0] < recall[1] < recall[2] and recall[2] > 0.99, recall  # more search effort, nearer the exact answer
    ivf = build_index(None, None, codes=z, kind="ivf-pq", metric=metric, params={"pq_m": 8})
    recall = [recall_at_k(ivf.search_codes(q, 10, nprobe=p).ids, exact) for p in (1, 16)]
    assert recall[0] < recall[1] and recall[1] > 0.85, recall


def test_scores():
    assert precision_at_k([[1, 1, 2], [0, 0, 0]], [1, 3]) == pytest.approx(2 / 6)
    assert recall_at_k([[5, 6, 7], [1, 2, -1]], [[7, 6, 9], [3, 4, 5]]) == pytest.approx(2 / 6)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf-pq"])
def test_index_round_trip_gives_the_same_hits(runs, kind, tmp_path):
    data = aezoo.data.load("digits")
    index = aezoo.index(runs / "ae", data, kind=kind)
    assert len(index) == len(data.train) and index.manifest["run"] == str((runs / "ae").resolve())
    hits = index.search(data.test.x[:20], k=5)
    assert hits.ids.shape == (20, 5) and hits.labels.shape == (20, 5)
    assert np.array_equal(hits.labels, data.train.y.numpy()[hits.ids])
    index.save(tmp_path / "idx")
    files = sorted(p.name for p in (tmp_path / "idx").iterdir())
    assert files == ["index.faiss", "items.npz", "manifest.json"]
    again = aezoo.load_index(tmp_path / "idx")  # the model comes from the run the manifest records
    same = again.search(data.test.x[:20], k=5)
    assert np.array_equal(same.ids, hits.ids) and np.array_equal(same.distances, hits.distances)
    with np.load(tmp_path / "idx" / "items.npz", allow_pickle=False) as items:
        assert items["ids"].dtype == np.int64 and items["labels"].shape == (len(data.train),)


def test_manifest_checks(runs, tmp_path):
    data = aezoo.data.load("digits")
    path = aezoo.index(runs / "ae", data).save(tmp_path / "idx")
    other = aezoo.load(runs / "other")
    with pytest.raises(aezoo.CheckpointError, match="another model"):
        aezoo.load_index(path, model=other)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "kind": "lsh"}))
    with pytest.raises(aezoo.CheckpointError, match="bad or missing 'kind'"):
        aezoo.load_index(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(aezoo.CheckpointError, match="corrupt manifest"):
        aezoo.load_index(path)
    (path / "manifest.json").write_text(json.dumps(manifest))
    blob = bytearray((path / "index.faiss").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (path / "index.faiss").write_bytes(bytes(blob))
    with pytest.raises(aezoo.CheckpointError, match="checksum"):
        aezoo.load_index(path)


def test_index_and_search_commands(runs, tmp_path, capsys):
    out = tmp_path / "idx"
    assert main(["index", str(runs / "ae"), "--kind", "hnsw", "--M", "16", "--out", str(out)]) == 0
    assert "1294 codes of size 8" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["params"]["M"] == 16
    assert main(["search", str(out), "--data", "digits", "--limit", "4", "-k", "3", "--out", str(tmp_path / "hits.json")]) == 0
    hits = json.loads((tmp_path / "hits.json").read_text())["queries"]
    assert len(hits) == 4 and all(len(h["hits"]) == 3 and "label" in h["hits"][0] for h in hits)
    x = (aezoo.data.load("digits").test.x[:2, 0].numpy() * 255).astype(np.uint8)
    for i, img in enumerate(x):
        Image.fromarray(img).save(tmp_path / f"q{i}.png")
    np.savez(tmp_path / "q.npz", x=x)
    assert main(["search", str(out), str(tmp_path / "q0.png"), str(tmp_path / "q1.png"), str(tmp_path / "q.npz"), "--out", str(tmp_path / "grid.png")]) == 0
    assert Image.open(tmp_path / "grid.png").size[0] > 300
    capsys.readouterr()
    assert main(["search", str(out), str(tmp_path / "q0.png"), "-k", "2"]) == 0  # JSON lines on stdout
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["query"].endswith("q0.png") and len(first["hits"]) == 2


def test_cli_errors_are_one_line(runs, tmp_path):
    out = tmp_path / "idx"
    assert main(["index", str(runs / "ae"), "--out", str(out)]) == 0
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(tmp_path / "small.png")  # another size: resized to the run's (issue 23)
    (tmp_path / "notes.txt").write_text("not an image")
    assert_one_line_error(run_cli("search", out, tmp_path / "notes.txt"), r"notes\.txt: not an image")
    (out / "manifest.json").write_text("[]")
    assert_one_line_error(run_cli("search", out, tmp_path / "small.png"), "not an aezoo index manifest")


def test_knn_precision_metric_agrees_with_a_flat_faiss_index(runs):
    from aezoo.evaluate.representation import knn_precision

    model, data = aezoo.load(runs / "ae"), aezoo.data.load("digits")
    x, y = data.test.x, data.test.y
    got = knn_precision(model, data, "test", x, y, knn_queries=100000)["knn_precision_at_10"]
    index = aezoo.index(model, x, labels=y)  # leave-one-out: ask for 11 and drop the query itself
    hits = index.search(x, 11)
    keep = hits.ids != np.arange(len(x))[:, None]
    neighbours = np.stack([row[k][:10] for row, k in zip(hits.labels, keep)])
    assert got == pytest.approx(precision_at_k(neighbours, y.numpy()), abs=2e-3)  # equal up to ties in distance


def test_eval_retrieval(runs, capsys):
    assert main(["eval", str(runs / "ae"), "--retrieval", "--iw-samples", "0", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["retrieval_indexed"] == 1294 and m["retrieval_queries"] == 359
    for key in ("retrieval_precision_at_10", "retrieval_qps_flat", "retrieval_build_s_hnsw", "retrieval_index_mb_ivf_pq"):
        assert key in m, key
    assert m["retrieval_recall_at_10_hnsw"] > 0.9 and 0.5 < m["retrieval_precision_at_10"] <= 1


def test_a_missing_optional_package_says_which_extra_to_install(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if faiss-cpu were not installed
    assert main(["index", str(runs / "ae"), "--out", str(tmp_path / "idx")]) == 2
    assert 'pip install "aezoo[search]"' in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "constriction", None)
    assert main(["compress", str(runs / "ae"), "--data", "digits", "--out", str(tmp_path / "a.aez")]) == 2
    assert 'pip install "aezoo[compress]"' in capsys.readouterr().err
