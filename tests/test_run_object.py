"""Issue 23: one ``Run`` object opens a trained run; ``prepare`` replays its preprocessing on any input;
every per-item output names the user's item. The photo-folder workflow end to end, from another
working directory, with new photos of other sizes."""
from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aezoo
from aezoo.cli import main

pytest.importorskip("constriction")
pytest.importorskip("faiss")


def _photo(path: Path, w: int, h: int, seed: int) -> None:
    """A colour photo-like image: a smooth gradient with a coloured disc (mixed sizes, RGB)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(0, 1, 3)
    img = np.stack([base[c] * 0.6 + 0.4 * (xx if c == 0 else yy if c == 1 else (xx + yy) / 2) for c in range(3)], -1)
    cy, cx, r = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w, min(h, w) * 0.25
    disc = (np.mgrid[0:h, 0:w][0] - cy) ** 2 + (np.mgrid[0:h, 0:w][1] - cx) ** 2 < r**2
    img[disc] = rng.uniform(0, 1, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((img * 255).astype(np.uint8)).save(path)


SIZES = [(20, 24), (32, 18), (17, 17), (40, 30), (24, 36), (28, 22)]


def _cli(cwd: Path, *args) -> subprocess.CompletedProcess:
    """``aezoo ARGS`` run from folder ``cwd``, in this process (a subprocess per command would spend most
    of the test importing torch): exit code, stdout and stderr as a user sees them."""
    import contextlib
    import io

    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # argparse's own errors
                code = e.code
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory):
    """vq_vae trained (a few steps) on data/photos (two class folders of mixed-size colour images),
    from the project folder, with its prior: the run of the issue, small."""
    home = tmp_path_factory.mktemp("project")
    for i in range(36):
        w, h = SIZES[i % len(SIZES)]
        _photo(home / "data" / "photos" / ("cats" if i % 2 else "dogs") / f"img{i:02d}.png", w, h, i)
    p = _cli(home, "train", "vq_vae", "--data", "data/photos", "--image-size", "16", "--out", "runs/vq", "--steps", "30",
             "--batch-size", "16", "--set", "channels=8,16", "--set", "latent_dim=4", "--set", "num_codes=16", "--quiet", "--no-report")
    assert p.returncode == 0, p.stderr
    p = _cli(home, "train-prior", "runs/vq", "--epochs", "2", "--width", "16", "--layers", "1", "--heads", "1", "--quiet", "--no-report")
    assert p.returncode == 0, p.stderr
    return home


def test_the_photo_folder_workflow_from_another_directory(photo_run, tmp_path):
    run = photo_run / "runs" / "vq"
    elsewhere = tmp_path / "elsewhere"
    for i, (w, h) in enumerate([(50, 40), (23, 31), (64, 64)]):
        _photo(elsewhere / "new" / f"shot{i}.jpg" if i != 2 else elsewhere / "new" / "shot2.png", w, h, 100 + i)

    # the run knows its data root: absolute and as given, and finds it from here
    meta = json.loads((run / "config.json").read_text())
    assert meta["data_root"]["given"] == "data/photos" and Path(meta["data_root"]["absolute"]).is_absolute()
    p = _cli(elsewhere, "encode", run, "--split", "test", "--out", "codes.npz")
    assert p.returncode == 0, p.stderr
    with np.load(elsewhere / "codes.npz") as z:
        assert all(s.startswith(("cats/", "dogs/")) for s in z["sources"]) and len(z["sources"]) == len(z["z"])
        assert set(z["labels"]) <= {"cats", "dogs"}

    # compress files and a folder of other sizes; decompress restores the names
    for inputs in (["new/shot0.jpg", "new/shot1.jpg"], ["new"]):
        p = _cli(elsewhere, "compress", run, *inputs, "--out", "new.aez")
        assert p.returncode == 0, p.stderr
        assert "resized on the short side" in p.stderr
    p = _cli(elsewhere, "decompress", "new.aez", "--out", "back")
    assert p.returncode == 0, p.stderr
    assert sorted(f.name for f in (elsewhere / "back").iterdir()) == ["shot0.png", "shot1.png", "shot2.png"]
    assert Image.open(elsewhere / "back" / "shot0.png").size == (16, 16)

    # search: hits carry the training file and the class name; a grid of the hits draws
    p = _cli(elsewhere, "index", run, "--out", "idx")
    assert p.returncode == 0, p.stderr
    p = _cli(elsewhere, "search", "idx", "new", "-k", "3", "--out", "hits.json")
    assert p.returncode == 0, p.stderr
    q = json.loads((elsewhere / "hits.json").read_text())["queries"]
    assert [r["source"] for r in q] == ["new/shot0.jpg", "new/shot1.jpg", "new/shot2.png"]
    hit = q[0]["hits"][0]
    assert hit["source"].split("/")[0] == hit["label"] and hit["label"] in ("cats", "dogs") and (photo_run / "data" / "photos" / hit["source"]).exists()
    p = _cli(elsewhere, "search", "idx", "new/*.jpg", "-k", "3", "--out", "grid.png")
    assert p.returncode == 0, p.stderr
    assert Image.open(elsewhere / "grid.png").size[0] > 16

    # score: each row names its file
    p = _cli(elsewhere, "score", run, "--data", "new", "--split", "all", "--out", "scores.csv", "--no-report")
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader((elsewhere / "scores.csv").open()))
    assert sorted(r["source"] for r in rows) == ["shot0.jpg", "shot1.jpg", "shot2.png"]

    # reconstruct new files of other sizes, and a grey dataset of another size (converted, with a note)
    p = _cli(elsewhere, "reconstruct", run, "new", "--out", "recon.png")
    assert p.returncode == 0, p.stderr
    p = _cli(elsewhere, "reconstruct", run, "--data", "digits", "--out", "digits.png")
    assert p.returncode == 0, p.stderr
    assert "8x8 grey images converted to the run's 16x16 RGB images" in p.stderr

    # the run knows its size: --image-size is neither needed nor accepted
    p = _cli(elsewhere, "reconstruct", run, "--data", "new", "--image-size", "16", "--out", "r.png")
    assert p.returncode == 2 and "unrecognized arguments: --image-size" in p.stderr


def test_a_run_whose_data_moved_says_where_it_looked(photo_run, tmp_path):
    import shutil

    run = tmp_path / "vq"
    shutil.copytree(photo_run / "runs" / "vq", run)
    meta = json.loads((run / "config.json").read_text())
    meta["data"]["source"] = "gone/photos"
    meta["data_root"] = {"given": "gone/photos", "absolute": str(tmp_path / "gone" / "photos"), "cwd": str(tmp_path)}
    (run / "config.json").write_text(json.dumps(meta))
    p = _cli(tmp_path, "encode", run, "--out", "z.npz")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "'gone/photos'" in p.stderr and str(tmp_path / "gone" / "photos") in p.stderr and "give --data" in p.stderr


def test_prepare_takes_files_folders_arrays_and_datasets(photo_run):
    cwd = os.getcwd()
    os.chdir(photo_run)
    try:
        run = aezoo.open_run("runs/vq", device="cpu")
        assert run.input_shape == (3, 16, 16) and run.config["num_codes"] == 16
        files = run.prepare(["data/photos/cats/img01.png", "data/photos/dogs"])
        assert files.x.shape == (1 + 18, 3, 16, 16) and files.sources[0] == "data/photos/cats/img01.png"
        assert files.label_names[1:] == ["dogs"] * 18 and (files.labels[1:] == run.class_names.index("dogs")).all()
        own = run.data("all")  # every row once, each with its file
        assert len(own) == 36 and len(set(own.sources)) == 36
        pixels = (np.random.default_rng(0).uniform(0, 255, (2, 20, 20, 3))).astype(np.uint8)  # channels-last uint8
        arr = run.prepare(pixels)
        assert arr.x.shape == (2, 3, 16, 16) and 0 <= float(arr.x.min()) and float(arr.x.max()) <= 1 and arr.sources == ["row 0", "row 1"]
        glob = run.prepare("data/photos/cats/*.png", limit=4)
        assert len(glob) == 4 and all(s.startswith("data/photos/cats/") for s in glob.sources)
    finally:
        os.chdir(cwd)


def test_float_image_files_get_the_runs_recorded_scaling(tmp_path):
    """A run trained on float images outside [0, 1] (min-max scaled from its training split): the same
    values named on the command line are scaled as --data scales them (they were not, before)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 5, (60, 1, 6, 6)).astype(np.float32)
    np.save(tmp_path / "train.npy", x)
    np.save(tmp_path / "q.npy", x[:5])
    run = tmp_path / "ae"
    assert main(["train", "ae", "--data", str(tmp_path / "train.npy"), "--out", str(run), "--steps", "2", "--quiet", "--no-report",
                 "--set", "hidden=16", "--latent-dim", "2"]) == 0
    r = aezoo.open_run(run, device="cpu")
    via_files = r.prepare([str(tmp_path / "q.npy")]).x
    via_data = r.dataset(str(tmp_path / "train.npy"))
    part = via_data.split("train")
    rows = {int(i): k for k, i in enumerate(part.index)}
    want = torch.stack([part.x[rows[i]] for i in range(5) if i in rows])
    got = torch.stack([via_files[i] for i in range(5) if i in rows])
    assert float(via_files.min()) >= 0 and float(via_files.max()) <= 1
    torch.testing.assert_close(got, want)


def test_index_all_counts_each_row_once_when_test_is_val(tmp_path):
    """With too few rows for a test split of its own, test = val; --split all indexed val twice."""
    from aezoo.search import split_inputs

    data = aezoo.data.from_arrays(np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32))
    assert data.preprocessing["test_split"] == "val"
    x, _, desc = split_inputs(data, "all")
    assert x.shape[0] == 2 and len(desc["sources"]) == 2 and len(set(desc["sources"])) == 2


def test_train_by_name_builds_what_the_cli_builds(tmp_path, capsys):
    """``aezoo.train("vae", data, ...)`` and ``aezoo train vae`` build the same model: the likelihood
    from the data's kind, input_shape from the data, config-file fields under explicit ones."""
    rng = np.random.default_rng(0)
    rows = "\n".join(",".join(f"{v:.4f}" for v in rng.normal(size=4) * [1, 100, 0.01, 5]) for _ in range(80))
    table = tmp_path / "t.csv"
    table.write_text("a,b,c,d\n" + rows + "\n")
    (tmp_path / "cfg.json").write_text(json.dumps({"latent_dim": 3, "hidden": [16], "train": {"batch_size": 32}}))
    common = dict(out=None, config=str(tmp_path / "cfg.json"), steps=2, epochs=None, progress=False, report=False, seed=1)
    model = aezoo.train("vae", str(table), latent_dim=2, **common)
    assert "likelihood gaussian (real-valued" in capsys.readouterr().err
    assert main(["train", "vae", "--data", str(table), "--config", str(tmp_path / "cfg.json"), "--latent-dim", "2", "--steps", "2",
                 "--seed", "1", "--out", str(tmp_path / "cli"), "--quiet", "--no-report"]) == 0
    cli = aezoo.load(tmp_path / "cli")
    assert model.config == cli.config and model.config.latent_dim == 2 and model.config.hidden == (16,)
    for a, b in zip(model.state_dict().values(), cli.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_small_data_says_min_steps_lengthened_it_and_checkpoints_sparingly(tmp_path, monkeypatch, capsys):
    """Issue 23: 40 rows in 2-step epochs at min_steps 200 -> 100 epochs; one line says so, config.json
    records it, and epoch ends write about 20 checkpoints, not 100 (the last one always)."""
    from aezoo.train.trainer import EPOCH_CHECKPOINTS, Fit

    saved = []
    real = Fit._prepare_checkpoint
    monkeypatch.setattr(Fit, "_prepare_checkpoint", lambda self: (saved.append(self.pos.step), real(self))[1])
    data = aezoo.data.from_arrays(np.random.default_rng(0).normal(size=(48, 4)).astype(np.float32))
    model = aezoo.create("ae", input_shape=(4,), latent_dim=2, hidden=(8,))
    aezoo.train(model, data, epochs=1, min_steps=200, batch_size=20, out=tmp_path / "r", progress=False, report=False)
    err = capsys.readouterr().err
    assert "make 2 steps in 1 epochs; training 200 steps (~100 epochs)" in err
    meta = json.loads((tmp_path / "r" / "config.json").read_text())
    assert meta["lengthened"] == {"epochs": 1, "steps_by_epochs": 2, "min_steps": 200, "epochs_run": 100.0} and meta["total_steps"] == 200
    assert saved[-1] == 200 and len(saved) <= EPOCH_CHECKPOINTS + 1
    assert all(b - a >= 200 / EPOCH_CHECKPOINTS for a, b in zip(saved, saved[1:]))


def test_compressed_files_of_container_version_1_still_read():
    from aezoo.compress import container

    h = container.Header(b"\0" * 8, 2, 2, [(2, 2, 4)], (1, 4, 4), 7, "m", "", version=1)
    blob = container.pack(h, b"\0" * 8)
    back, payload = container.unpack(blob)
    assert back.version == 1 and back.names == () and payload == b"\0" * 8
    h2 = container.Header(b"\0" * 8, 2, 2, [(2, 2, 4)], (1, 4, 4), 7, "m", "", names=("a/cat.png", "b.png"))
    assert container.unpack(container.pack(h2, b"\0" * 8))[0].names == ("a/cat.png", "b.png")


def test_decompressed_names_stay_inside_the_output_folder():
    from aezoo.commands.compress import output_names

    assert output_names(["new/a.jpg", "new/b.png"], 2) == ["a.png", "b.png"]
    assert output_names(["../../etc/x.png", "/abs/y.png"], 2) == ["etc/x.png", "abs/y.png"]
    assert output_names(["q.npz[0]", "q.npz[1]"], 2) == ["q.npz[0].png", "q.npz[1].png"]
    assert output_names(["a/x.png", "b/x.jpg"], 2) == ["a/x.png", "b/x.png"]
    assert output_names(["x.png", "x.jpg"], 2) == ["x.png", "x-1.png"]
    assert output_names([], 3) == ["000000.png", "000001.png", "000002.png"]


def test_prepare_a_table_uses_the_runs_scaling_and_categories(tmp_path):
    """New rows of a CSV: the run's per-feature scaling and one-hot columns (fitted on its training
    split), every row, each named by its row."""
    rng = np.random.default_rng(1)
    colours = ["red", "green", "blue"]
    lines = ["size,colour,weight"] + [f"{rng.normal(10, 3):.3f},{colours[i % 3]},{rng.normal(500, 80):.2f}" for i in range(60)]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "new.csv").write_text("size,colour,weight\n10,blue,500\n13,red,580\n")
    run = tmp_path / "run"
    assert main(["train", "ae", "--data", str(tmp_path / "train.csv"), "--categorical", "colour", "--out", str(run), "--steps", "2",
                 "--latent-dim", "2", "--set", "hidden=8", "--quiet", "--no-report"]) == 0
    r = aezoo.open_run(run, device="cpu")
    items = r.prepare(str(tmp_path / "new.csv"))
    assert items.sources == ["row 0", "row 1"] and items.x.shape == (2, 5)  # 2 numbers + 3 one-hot columns
    from aezoo.data.scaling import of_run

    back = of_run(r.meta).inverse(items.x).numpy()
    names = r.meta["data"]["preprocessing"]["feature_names"]
    assert back[0, names.index("size")] == pytest.approx(10, abs=1e-4) and back[1, names.index("weight")] == pytest.approx(580, abs=1e-3)
    assert back[0, names.index("colour=blue")] == pytest.approx(1, abs=1e-5) and back[0, names.index("colour=red")] == pytest.approx(0, abs=1e-5)


def test_train_by_name_takes_data_options(photo_run):
    model = aezoo.train("ae", str(photo_run / "data" / "photos"), image_size=8, latent_dim=2, steps=1, epochs=None,
                        progress=False, report=False)
    assert tuple(model.config.input_shape) == (3, 8, 8)
    with pytest.raises(aezoo.ConfigError, match="apply when the data is given by name or path"):
        aezoo.train("ae", aezoo.data.load("digits"), image_size=8, steps=1, progress=False)
