"""CIFAR-10 and CelebA at 64x64 from their official files (issue 13), found on disk (``--data-dir``,
$AEZOO_DATA, the cache) or, for CIFAR-10, downloaded once with the checksum and atomic write that
MNIST uses (``data.download``).

CIFAR-10 (Krizhevsky 2009): the *binary version* ``cifar-10-binary.tar.gz`` (or its extracted
``cifar-10-batches-bin`` folder): records of 1 label byte and 3,072 pixel bytes (R, G, B planes of
32x32), five training batches and ``test_batch.bin``. The *python version* is a set of pickles, which
aezoo never loads: it is refused with a pointer to the binary one.

CelebA (Liu et al. 2015, "Deep Learning Face Attributes in the Wild"): ``img_align_celeba/`` (or
``img_align_celeba.zip``) and ``list_eval_partition.txt``; each aligned 178x218 photo is cropped to its
central 140x140 and resized to 64x64 (the crop of the beta-VAE and DCGAN papers' CelebA), with the
official train (0) / val (1) / test (2) partition, val joined to train. The decoded images are cached
once as ``celeba-64.npy`` beside the files (written atomically) and memory-mapped after that. CelebA is
served from Google Drive, which needs a browser session: it is not downloaded.
"""
from __future__ import annotations

import io
import os
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .core import dataset
from .download import cache_dir, download_file, search_dirs

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
# SHA-256 of the archive whose MD5 the dataset page publishes (c32a1d4ab5d03f1284b67883e8d87530)
CIFAR_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
CIFAR_TEST = ["test_batch.bin"]
RECORD = 1 + 3 * 32 * 32


def parse_cifar_batch(blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(x (n, 3, 32, 32) uint8, y (n,) int64) from the bytes of one binary batch."""
    if len(blob) == 0 or len(blob) % RECORD:
        raise DataError(f"{where}: {len(blob)} bytes is not a whole number of {RECORD}-byte CIFAR-10 records")
    rec = np.frombuffer(blob, np.uint8).reshape(-1, RECORD)
    y = rec[:, 0].astype(np.int64)
    if y.max() > 9:
        raise DataError(f"{where}: label {int(y.max())} outside 0..9; not a CIFAR-10 binary batch")
    return rec[:, 1:].reshape(-1, 3, 32, 32).copy(), y


def _cifar_members(source: Path) -> dict[str, bytes]:
    """Batch file name -> bytes, from the archive or an extracted folder."""
    if source.is_dir():
        return {p.name: p.read_bytes() for p in source.rglob("*.bin")}
    try:
        with tarfile.open(source, "r:*") as tar:
            names = tar.getnames()
            if any(n.endswith("data_batch_1") for n in names):
                raise DataError(f"{source}: the python version of CIFAR-10 is pickled, which aezoo never loads; "
                                f"use the binary version ({CIFAR_URL})")
            out = {}
            for m in tar.getmembers():  # read in place: nothing is extracted, no path is trusted
                if m.isfile() and m.name.endswith(".bin"):
                    out[Path(m.name).name] = tar.extractfile(m).read()
            return out
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{source}: not a readable CIFAR-10 archive ({e})") from None


def find_cifar(data_dir=None, download: bool = True) -> Path:
    dirs = search_dirs("cifar-10", data_dir)
    for d in dirs:
        for cand in (d / "cifar-10-binary.tar.gz", d / "cifar-10-batches-bin"):
            if cand.exists():
                return cand
        if (d / "cifar-10-python.tar.gz").exists() or (d / "cifar-10-batches-py").exists():
            raise DataError(f"{d}: holds the python version of CIFAR-10, which is pickled; aezoo never unpickles: "
                            f"use the binary version ({CIFAR_URL})")
    if not download:
        raise DataError(f"cifar-10: no cifar-10-binary.tar.gz or cifar-10-batches-bin in {', '.join(map(str, dirs))}; downloading is off. "
                        f"To fix: put the binary version ({CIFAR_URL}) in --data-dir DIR, $AEZOO_DATA or {cache_dir('cifar-10')}")
    return download_file(CIFAR_URL, cache_dir("cifar-10") / "cifar-10-binary.tar.gz", CIFAR_SHA256)


def read_cifar10(source) -> dict[str, Any]:
    source = Path(source)
    members = _cifar_members(source)
    missing = [n for n in CIFAR_TRAIN + CIFAR_TEST if n not in members]
    if missing:
        raise DataError(f"{source}: lacks CIFAR-10 batch files {', '.join(missing)}")
    tr = [parse_cifar_batch(members[n], f"{source}:{n}") for n in CIFAR_TRAIN]
    xs, ys = parse_cifar_batch(members["test_batch.bin"], f"{source}:test_batch.bin")
    return {"x_train": np.concatenate([x for x, _ in tr]), "y_train": np.concatenate([y for _, y in tr]), "x_test": xs, "y_test": ys,
            "class_names": CIFAR_CLASSES, "source": str(source)}


@dataset("cifar10")
def cifar10(data_dir=None, download: bool = True, **_: Any) -> dict[str, Any]:
    return read_cifar10(find_cifar(data_dir, download))


# --- CelebA ----------------------------------------------------------------------------------------
CELEBA_CROP, CELEBA_SIZE = 140, 64


def _celeba_image(data: bytes | Path) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
        im = im.convert("RGB")
        w, h = im.size
        left, top = (w - CELEBA_CROP) // 2, (h - CELEBA_CROP) // 2
        im = im.crop((left, top, left + CELEBA_CROP, top + CELEBA_CROP)).resize((CELEBA_SIZE, CELEBA_SIZE), Image.BICUBIC)
        return np.asarray(im, np.uint8).transpose(2, 0, 1)


def read_celeba(folder) -> dict[str, Any]:
    """CelebA 64x64 from ``folder`` holding ``list_eval_partition.txt`` and ``img_align_celeba/`` or
    ``img_align_celeba.zip``; the decoded array is cached as ``celeba-64.npy`` there."""
    folder = Path(folder)
    parts_file = folder / "list_eval_partition.txt"
    if not parts_file.is_file():
        raise DataError(f"{folder}: no list_eval_partition.txt (CelebA's official train/val/test partition)")
    rows = [line.split() for line in parts_file.read_text().splitlines() if line.strip()]
    try:
        names, part = [r[0] for r in rows], np.array([int(r[1]) for r in rows])
    except (IndexError, ValueError):
        raise DataError(f"{parts_file}: expected lines 'NAME.jpg PARTITION'") from None
    cache = folder / f"celeba-{CELEBA_SIZE}.npy"
    if cache.exists():
        x = np.load(cache, mmap_mode="r", allow_pickle=False)
        if len(x) != len(names):
            raise DataError(f"{cache}: {len(x)} images but list_eval_partition.txt names {len(names)}; delete the cache to rebuild it")
    else:
        x = np.empty((len(names), 3, CELEBA_SIZE, CELEBA_SIZE), np.uint8)
        zpath, ipath = folder / "img_align_celeba.zip", folder / "img_align_celeba"
        try:
            if ipath.is_dir():
                for i, n in enumerate(names):
                    x[i] = _celeba_image(ipath / n)
            elif zpath.is_file():
                with zipfile.ZipFile(zpath) as z:
                    where = {Path(m).name: m for m in z.namelist()}
                    for i, n in enumerate(names):
                        x[i] = _celeba_image(z.read(where[n]))
            else:
                raise DataError(f"{folder}: no img_align_celeba/ folder or img_align_celeba.zip")
        except KeyError as e:
            raise DataError(f"{folder}: image {e} of list_eval_partition.txt is missing") from None
        except (OSError, zipfile.BadZipFile, SyntaxError) as e:
            raise DataError(f"{folder}: cannot read a CelebA image ({e})") from None
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".celeba-", suffix=".npy")
        with os.fdopen(fd, "wb") as f:  # atomic: a killed run leaves no half cache under the real name
            np.save(f, x)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, cache)
        x = np.load(cache, mmap_mode="r", allow_pickle=False)
    tr, te = np.flatnonzero(part != 2), np.flatnonzero(part == 2)
    contiguous = len(tr) == 0 or (tr == np.arange(len(tr))).all()  # the official order: train, val, then test
    return {"x_train": x[: len(tr)] if contiguous else np.asarray(x[tr]), "x_test": x[len(tr):] if contiguous else np.asarray(x[te]),
            "source": str(folder)}


@dataset("celeba64")
def celeba64(data_dir=None, **_: Any) -> dict[str, Any]:
    dirs = search_dirs("celeba", data_dir)
    for d in dirs:
        if (d / "list_eval_partition.txt").is_file():
            return read_celeba(d)
    raise DataError(f"celeba64: no folder with list_eval_partition.txt and img_align_celeba[.zip] in {', '.join(map(str, dirs))}. "
                    "To fix: download CelebA's aligned images and partition file from "
                    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html into --data-dir DIR or $AEZOO_DATA/celeba")
