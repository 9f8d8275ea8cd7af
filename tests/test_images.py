"""Issue 13: residual conv nets on colour images of any size, uint8 images, image folders of mixed sizes,
natural-patches, and streaming of data larger than memory (same batches as in memory, exact resume,
also after SIGKILL, and under torchrun)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import aezoo
from aezoo.data import load
from aezoo.data.batching import Batches, make_batches
from aezoo.data.images import ByteImages
from aezoo.data.streaming import StreamBatches
from aezoo.errors import ConfigError
from aezoo.registry import get, list_models
from aezoo.train.checkpoint import load_model, save_model

IMAGE_MODELS = {"ae", "vae", "beta_vae", "cvae", "vq_vae", "vq_vae2"}


def resnet_model(name, shape):
    cls = get(name)
    extra = {"num_classes": 3} if cls.needs_labels else {}
    return aezoo.create(name, **{**cls.tiny, "input_shape": shape, "arch": "resnet", "channels": (8, 16), **extra})


def resnet_models():
    """Every registered member whose config has an ``arch`` field that takes 'resnet' (td_vae's has none:
    it encodes frames with an MLP)."""
    import dataclasses
    import typing

    out = []
    for name in list_models():
        arch = {f.name: f for f in dataclasses.fields(get(name).Config)}.get("arch")
        if arch is None or "resnet" not in typing.get_args(typing.get_type_hints(get(name).Config)["arch"]):
            continue
        resnet_model(name, (3, 8, 8))  # builds, or the test module fails to import with the reason
        out.append(name)
    return out


RESNET_MODELS = resnet_models()


def test_every_image_model_takes_the_residual_nets():
    assert IMAGE_MODELS <= set(RESNET_MODELS)


@pytest.mark.parametrize("shape", [(3, 12, 12), (3, 13, 11)], ids=["colour", "odd"])
@pytest.mark.parametrize("name", RESNET_MODELS)
def test_resnet_contract_on_colour_and_odd_sizes(name, shape, tmp_path):
    model = resnet_model(name, shape)
    x = torch.rand(4, *shape)
    y = torch.arange(4) % 3 if model.needs_labels else None
    out = model.training_step(x, y)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert model.reconstruct(x, y).shape == x.shape
        assert tuple(model.encode(x, y).shape[1:]) == tuple(model.latent_shape)
    save_model(tmp_path, model)
    again = load_model(tmp_path)
    with torch.no_grad():
        assert torch.equal(model.reconstruct(x, y), again.reconstruct(x, y))


@pytest.mark.parametrize("downsample", [4, 8, 16])
@pytest.mark.parametrize("c", [1, 3, 4])
def test_vq_code_grid_follows_downsample_and_channels(downsample, c):
    m = aezoo.create("vq_vae", input_shape=(c, 33, 20), arch="resnet", channels=(8,), latent_dim=4, num_codes=8, downsample=downsample)
    x = torch.rand(2, c, 33, 20)
    grids = m.code_grids(x)
    assert grids[0].shape[1:] == (-(-33 // downsample), -(-20 // downsample))
    assert m.reconstruct(x).shape == x.shape


def test_bad_downsample_names_the_field():
    with pytest.raises(ConfigError, match="downsample"):
        aezoo.create("vae", input_shape=(3, 16, 16), arch="resnet", downsample=6)


def test_resize_decoder_makes_no_checkerboard_at_init():
    """A stride-2 transposed conv's output alternates with pixel parity even for a constant input; resize-conv cannot."""
    from aezoo.nn.resnet import Upsample

    up = Upsample(4, 2, (16, 16))
    out = up(torch.ones(1, 4, 8, 8))[0, :, 1:-1, 1:-1]  # away from the zero padding
    assert torch.allclose(out, out[:, :1, :1].expand_as(out), atol=1e-6)


# --- uint8 in memory ----------------------------------------------------------------------------
def test_uint8_images_stay_bytes_and_read_as_the_same_floats():
    x = np.random.default_rng(0).integers(0, 256, (50, 3, 6, 5), dtype=np.uint8)
    ds = aezoo.data.core.build("b", {"x_train": x, "source": "b"}, val_fraction=0.2)
    assert isinstance(ds.train.x, ByteImages) and ds.train.x.store.dtype == torch.uint8
    idx = ds.train.x.index
    torch.testing.assert_close(ds.train.x[:7], torch.from_numpy(x[idx[:7]]).float() / 255, atol=0, rtol=0)
    batches = Batches(ds.train, 8, seed=1)
    assert batches.x.dtype == torch.uint8  # 4x less than float32
    xb, _ = next(batches.epoch(0))
    assert xb.dtype == torch.float32 and xb.max() <= 1


# --- image folders -------------------------------------------------------------------------------
def make_folder(root, n=6):
    rng = np.random.default_rng(0)
    for c, cls in enumerate(["a", "b"]):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            w, h = [(20, 12), (9, 30), (16, 16)][i % 3]
            mode = ["RGB", "L", "RGBA"][i % 3]
            arr = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
            Image.fromarray(arr, "RGBA").convert(mode).save(root / cls / f"{i}.png")
    (root / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    return root


def test_mixed_folder_with_image_size_and_channels(tmp_path, capsys):
    folder = make_folder(tmp_path / "imgs")
    ds = load(folder, image_size=8, val_fraction=0, test_fraction=0)
    assert ds.input_shape == (3, 8, 8) and len(ds.train) == 12 and ds.num_classes == 2
    assert ds.describe()["preprocessing"]["image"] == {"image_size": 8, "channels": 3, "skipped": 1}
    err = capsys.readouterr().err
    assert "skipped 1 unreadable file of 13" in err and "broken.png" in err
    grey = load(folder, image_size=8, channels=1, val_fraction=0)
    assert grey.input_shape == (1, 8, 8)


def test_mixed_sizes_without_image_size_and_strict_are_one_line(tmp_path, capsys):
    from aezoo.cli import main

    folder = make_folder(tmp_path / "imgs")
    cmd = ["train", "ae", "--data", str(folder), "--steps", "1", "--out", str(tmp_path / "r")]
    assert main(cmd) == 2
    err = capsys.readouterr().err
    assert "--image-size" in err and "Traceback" not in err
    assert main([*cmd, "--image-size", "8", "--strict"]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "Traceback" not in err


def test_natural_patches_split_by_photo():
    from aezoo.data import natural

    raw = natural.natural_patches(size=32)
    assert raw["x_train"].shape[1:] == (3, 32, 32) and raw["x_train"].dtype == np.uint8
    assert set(natural.TRAIN_PHOTOS).isdisjoint(natural.TEST_PHOTOS)
    assert len(raw["x_test"]) > 1000 and len(raw["x_train"]) > 3 * len(raw["x_test"])


# --- streaming -----------------------------------------------------------------------------------
def memmap_split(tmp_path, n=203, shape=(1, 6, 6)):
    x = np.random.default_rng(0).integers(0, 256, (n, *shape), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    return load(tmp_path / "x.npy", stream=True, val_fraction=0.1), load(tmp_path / "x.npy", stream=False, val_fraction=0.1)


@pytest.mark.parametrize("world", [1, 2])
def test_streamed_batches_equal_in_memory_batches(tmp_path, world):
    streamed, memory = memmap_split(tmp_path)
    assert not streamed.train.x.in_memory and memory.train.x.in_memory
    for rank in range(world):
        s = make_batches(streamed.train, 16, seed=5, rank=rank, world_size=world, workers=2)
        m = make_batches(memory.train, 16, seed=5, rank=rank, world_size=world)
        assert isinstance(s, StreamBatches) and len(s) == len(m)
        for epoch, offset in ((0, 0), (1, 48)):  # a resumed epoch starts at an offset
            got, want = list(s.epoch(epoch, offset=offset)), list(m.epoch(epoch, offset=offset))
            assert len(got) == len(want)
            for (a, _), (b, _) in zip(got, want):
                assert torch.equal(a, b)


KILLER = textwrap.dedent("""
    import os, signal, sys
    from aezoo.models.ae import AE
    def on_step(self, step, total):
        if step == int(os.environ["KILL_AT"]):
            os.kill(os.getpid(), signal.SIGKILL)
    AE.on_step = on_step
    from aezoo.cli import main
    sys.exit(main())
""")


def test_streamed_run_resumes_exactly_after_sigkill(tmp_path):
    from aezoo.cli import main

    x = np.random.default_rng(0).integers(0, 256, (300, 1, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    args = ["train", "ae", "--data", str(tmp_path / "x.npy"), "--steps", "24", "--batch-size", "32", "--checkpoint-every", "5",
            "--no-report", "--quiet", "--set", "hidden=[16]"]
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert main([*args, "--no-stream", "--out", str(ref)]) == 0  # in memory, uninterrupted
    (tmp_path / "k.py").write_text(KILLER)
    env = {**os.environ, "AEZOO_OFFLINE": "1", "OMP_NUM_THREADS": "1", "KILL_AT": "13"}
    p = subprocess.run([sys.executable, str(tmp_path / "k.py"), *args, "--stream", "--workers", "2", "--out", str(run)], env=env,
                       capture_output=True, text=True)
    assert p.returncode == -9, p.stderr  # killed at step 13, mid-epoch: the last checkpoint is step 10's
    assert json.loads((run / "config.json").read_text())["finished"] is False
    assert main([*args, "--stream", "--workers", "2", "--resume", "--out", str(run)]) == 0
    a, b = load_file(str(ref / "model.safetensors")), load_file(str(run / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ddp_two_gloo_processes_on_a_streamed_npy_match_one_process(tmp_path):
    from test_distributed import assert_same, torchrun, weights

    from sklearn.datasets import load_digits

    x = (load_digits().images[:498] * 255 / 16).round().astype(np.uint8)  # (N, 8, 8)
    np.save(tmp_path / "d.npy", x)
    train = ["train", "ae", "--data", str(tmp_path / "d.npy"), "--batch-size", "64", "--seed", "3", "--quiet", "--set", "hidden=[32]",
             "--steps", "6", "--no-report"]  # 403 training rows: 6 full batches, the epoch both runs share (DDP drops the last partial one)
    one, two = tmp_path / "one", tmp_path / "two"
    assert aezoo.cli.main([*train, "--no-stream", "--out", str(one)]) == 0
    torchrun(tmp_path, two, [*train, "--stream", "--workers", "1", "--out", str(two)])
    assert_same(weights(one), weights(two))


# --- readers of official files, on files made here (never fetched) -------------------------------
def cifar_records(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n, dtype=np.uint8)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    return np.concatenate([y[:, None], x.reshape(n, -1)], 1).tobytes(), x, y


def test_cifar10_binary_archive(tmp_path):
    import io
    import tarfile

    from aezoo.data.cifar import read_cifar10

    want = {}
    with tarfile.open(tmp_path / "cifar-10-binary.tar.gz", "w:gz") as tar:
        for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
            blob, x, y = cifar_records(4, i)
            want[name] = (x, y)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    ds = load("cifar10", data_dir=tmp_path, val_fraction=0)
    assert ds.input_shape == (3, 32, 32) and len(ds.train) == 20 and len(ds.test) == 4 and ds.class_names[0] == "airplane"
    raw = read_cifar10(tmp_path / "cifar-10-binary.tar.gz")
    assert np.array_equal(raw["x_train"][:4], want["data_batch_1.bin"][0]) and np.array_equal(raw["y_test"], want["test_batch.bin"][1])
    (tmp_path / "cifar-10-binary.tar.gz").unlink()
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"")
    with pytest.raises(aezoo.errors.DataError, match="pickled"):
        load("cifar10", data_dir=tmp_path)


def test_celeba64_crops_resizes_and_splits_by_the_official_partition(tmp_path):
    folder = tmp_path / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(6):
        arr = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / "img_align_celeba" / f"{i:06d}.jpg")
        lines.append(f"{i:06d}.jpg {[0, 0, 0, 1, 2, 2][i]}")
    (folder / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    ds = load("celeba64", data_dir=tmp_path, val_fraction=0)
    assert ds.input_shape == (3, 64, 64) and len(ds.train) == 4 and len(ds.test) == 2
    assert (folder / "celeba-64.npy").exists()  # decoded once, memory-mapped after
    again = load("celeba64", data_dir=tmp_path, val_fraction=0)
    assert torch.equal(ds.test.x[:], again.test.x[:])


def test_cifar10_download_checks_the_checksum_and_lands_whole(tmp_path, monkeypatch):
    import hashlib

    from aezoo.data import cifar

    src = tmp_path / "served.tar.gz"
    src.write_bytes(b"pretend archive")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(cifar, "CIFAR_URL", src.as_uri())
    monkeypatch.setattr(cifar, "CIFAR_SHA256", "0" * 64)
    with pytest.raises(aezoo.errors.DataError, match="SHA-256 mismatch"):
        cifar.find_cifar(tmp_path / "none", download=True)
    assert not list((tmp_path / "home").rglob("*.tar.gz")) and not list((tmp_path / "home").rglob(".*part"))
    monkeypatch.setattr(cifar, "CIFAR_SHA256", hashlib.sha256(src.read_bytes()).hexdigest())
    got = cifar.find_cifar(tmp_path / "none", download=True)
    assert got.read_bytes() == src.read_bytes() and got.parent.name == "cifar-10"


def test_webdataset_shards_read_by_index_stream_like_memory(tmp_path):
    import io

    wds = pytest.importorskip("webdataset")
    rng = np.random.default_rng(0)
    want = rng.integers(0, 256, (30, 10, 12, 3), dtype=np.uint8)
    for s in range(3):  # shards written by WebDataset's own writer
        with wds.TarWriter(str(tmp_path / f"shard-{s:03d}.tar")) as sink:
            for i in range(s * 10, s * 10 + 10):
                buf = io.BytesIO()
                Image.fromarray(want[i]).save(buf, format="PNG")
                sink.write({"__key__": f"{i:05d}", "png": buf.getvalue(), "cls": str(i % 4).encode()})
    memory = load(tmp_path, stream=False, val_fraction=0, test_fraction=0)
    streamed = load(tmp_path, stream=True, val_fraction=0, test_fraction=0)
    assert memory.input_shape == (3, 10, 12) and memory.num_classes == 4
    assert torch.equal(memory.train.x[:], torch.from_numpy(want.transpose(0, 3, 1, 2)).float() / 255)
    s = make_batches(streamed.train, 8, seed=2, workers=1)
    m = make_batches(memory.train, 8, seed=2)
    assert isinstance(s, StreamBatches)
    for (a, ya), (b, yb) in zip(s.epoch(0), m.epoch(0), strict=True):
        assert torch.equal(a, b) and torch.equal(ya, yb)


# --- figures: colour images draw in colour, grey ones in grey ------------------------------------
@pytest.mark.parametrize("channels", [3, 1])
def test_report_figures_draw_colour_in_colour_and_grey_in_grey(tmp_path, channels):
    from aezoo.data.core import build
    from aezoo.viz.report import build_report

    rng = np.random.default_rng(0)
    x = np.zeros((48, 8, 8, 3), np.uint8)
    x[..., 0] = rng.integers(150, 256, (48, 8, 8))  # reddish photos: R well above G and B
    x[..., 1:] = rng.integers(0, 60, (48, 8, 8, 2))
    if channels == 1:
        x = x[..., :1]
    data = build("colours", {"x_train": x, "source": "colours"})
    run = tmp_path / "run"
    torch.manual_seed(0)
    model = aezoo.create("vae", input_shape=data.input_shape, arch="resnet", channels=(8,), latent_dim=2)
    aezoo.train(model, data, steps=2, batch_size=16, out=run, progress=False, report=False)
    build_report(run, model=model, data=data)
    drawn = sorted(p.stem for p in (run / "figures").glob("*.png") if p.stem in ("reconstructions", "samples", "interpolation", "traversals"))
    assert {"reconstructions", "samples", "interpolation", "traversals"} == set(drawn)  # 5 test items make 2 pairs
    for name in drawn:
        img = Image.open(run / "figures" / f"{name}.png")
        if channels == 1:  # a grey PNG, or a matplotlib figure whose image cells are grey
            g = np.asarray(img.convert("RGB")).astype(int)
            assert img.mode == "L" or (g[..., 0] == g[..., 1]).mean() > 0.9, name
            continue
        a = np.asarray(img.convert("RGB")).astype(int)
        cells = a[(a != 255).any(-1)]  # the images, not the white padding between them
        assert img.mode in ("RGB", "RGBA") and (cells[:, 0] != cells[:, 1]).mean() > 0.5, name  # drawn in colour
        if name == "reconstructions":  # the inputs' red shows (a model of 2 steps decodes little else)
            assert cells[:, 0].mean() > cells[:, 1].mean() + 40
