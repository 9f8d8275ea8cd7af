"""File readers and the IDX downloader: round trips, and a one-line DataError naming the file for
every kind of bad input. All fixtures are written here; downloads use file:// and 127.0.0.1 only."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aezoo.data import download
from aezoo.data.download import FILES, IdxDataset, download_file, find_idx_files, search_dirs
from aezoo.data.readers import (
    check_finite,
    read_array_file,
    read_csv,
    read_idx,
    read_idx_pair,
    read_image_folder,
)
from aezoo.errors import DataError

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    code = IDX_CODES[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray) -> Path:
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tiny_split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 4, 3), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def write_tiny_set(folder: Path, gz: bool) -> dict[str, np.ndarray]:
    """The four IDX files of a small MNIST-like set in ``folder``; returns the arrays by key."""
    folder.mkdir(parents=True, exist_ok=True)
    (xi, yi), (xt, yt) = tiny_split(6, 0), tiny_split(4, 1)
    arrays = {"train_images": xi, "train_labels": yi, "test_images": xt, "test_labels": yt}
    for key, arr in arrays.items():
        write_idx(folder / (FILES[key] + (".gz" if gz else "")), arr)
    return arrays


# ---- IDX ----


@pytest.mark.parametrize("dtype", list(IDX_CODES))
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    arr = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    if dtype == np.uint8:
        arr = np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    out = read_idx(write_idx(tmp_path / f"a.idx{suffix}", arr))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)
    out[0, 0, 0] = 1  # writable


def test_idx_pair_round_trip(tmp_path):
    x, y = tiny_split(5)
    images, labels = read_idx_pair(write_idx(tmp_path / "i.gz", x), write_idx(tmp_path / "l", y))
    assert images.dtype == np.uint8 and images.shape == (5, 4, 3)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images, x)
    np.testing.assert_array_equal(labels, y)


def test_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.idx: no such file"):
        read_idx(tmp_path / "nope.idx")


@pytest.mark.parametrize("head", [b"PK\x03\x04", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00", b"\x00"])
def test_idx_wrong_magic(tmp_path, head):
    path = tmp_path / "bad.idx"
    data = head + bytes(8)
    path.write_bytes(data)
    with pytest.raises(DataError, match=rf"bad\.idx: not an IDX file: magic number is 0x{data[:4].hex().upper()}, expected 0x0000"):
        read_idx(path)


def test_idx_empty_file(tmp_path):
    path = tmp_path / "empty.idx"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.idx: .*empty file"):
        read_idx(path)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_truncated_payload(tmp_path, suffix):
    data = idx_bytes(np.zeros((10, 4, 4), np.uint8))[:-20]
    path = tmp_path / f"short.idx{suffix}"
    path.write_bytes(gzip.compress(data) if suffix else data)
    with pytest.raises(DataError, match=r"short\.idx(\.gz)?: truncated IDX file: .*\(10, 4, 4\) = 160 bytes .*found 140"):
        read_idx(path)


def test_idx_truncated_header(tmp_path):
    path = tmp_path / "hdr.idx"
    path.write_bytes(idx_bytes(np.zeros((2, 2, 2), np.uint8))[:9])
    with pytest.raises(DataError, match=r"hdr\.idx: truncated IDX header: expected 16 bytes, found 9"):
        read_idx(path)


def test_idx_trailing_bytes(tmp_path):
    path = tmp_path / "long.idx"
    path.write_bytes(idx_bytes(np.zeros((2, 2), np.uint8)) + b"xyz")
    with pytest.raises(DataError, match=r"long\.idx: IDX file has 3 bytes after"):
        read_idx(path)


def test_idx_truncated_gzip(tmp_path):
    path = write_idx(tmp_path / "cut.gz", np.arange(4000, dtype=np.int32))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"cut\.gz: corrupt or truncated gzip file"):
        read_idx(path)


def test_idx_corrupt_gzip(tmp_path):
    path = write_idx(tmp_path / "bits.gz", np.arange(4000, dtype=np.int32))
    data = bytearray(path.read_bytes())
    data[20:60] = bytes(40)  # zero a stretch of the deflate stream
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"bits\.gz: corrupt or truncated gzip file"):
        read_idx(path)


def test_idx_float_nan(tmp_path):
    path = write_idx(tmp_path / "f.idx", np.array([1.0, np.nan, np.inf], np.float32))
    with pytest.raises(DataError, match=r"f\.idx: contains 2 NaN/Inf values"):
        read_idx(path)


def test_idx_pair_count_mismatch(tmp_path):
    x, _ = tiny_split(5)
    _, y = tiny_split(4)
    images, labels = write_idx(tmp_path / "imgs.idx", x), write_idx(tmp_path / "labs.idx", y)
    with pytest.raises(DataError, match=r"imgs\.idx holds 5 images but .*labs\.idx holds 4 labels"):
        read_idx_pair(images, labels)


def test_idx_pair_labels_not_1d(tmp_path):
    x, _ = tiny_split(5)
    images = write_idx(tmp_path / "imgs.idx", x)
    labels = write_idx(tmp_path / "labs.idx", np.zeros((5, 2), np.uint8))
    with pytest.raises(DataError, match=r"labs\.idx: expected 1-D integer labels, found uint8 \(5, 2\)"):
        read_idx_pair(images, labels)


# ---- .npy / .npz ----


def test_npy_round_trip(tmp_path):
    x = np.random.default_rng(0).random((4, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    out = read_array_file(tmp_path / "a.npy")
    assert list(out) == ["x"]
    np.testing.assert_array_equal(out["x"], x)


@pytest.mark.parametrize(
    "keys, expected",
    [
        (("data", "labels"), ("x", "y")),
        (("X", "target"), ("x", "y")),
        (("images", "y"), ("x", "y")),
        (("x_train", "y_train", "x_test", "y_test"), ("x_train", "y_train", "x_test", "y_test")),
        (("train_x", "train_y", "test_x", "test_y"), ("x_train", "y_train", "x_test", "y_test")),
        (("X_train", "Y_train", "images_test"), ("x_train", "y_train", "x_test")),
    ],
)
def test_npz_key_names(tmp_path, keys, expected):
    arrays = {k: np.full((3, 2) if k.lower().startswith(("x", "data", "images", "train_x", "test_x")) else 3, i)
              for i, k in enumerate(keys)}
    np.savez(tmp_path / "a.npz", **arrays, notes=np.zeros(1))
    out = read_array_file(tmp_path / "a.npz")
    assert sorted(out) == sorted(expected)
    for k, name in zip(keys, expected):
        np.testing.assert_array_equal(out[name], arrays[k])


def test_npz_unknown_layout(tmp_path):
    np.savez(tmp_path / "odd.npz", foo=np.zeros(3), bar=np.zeros(3))
    with pytest.raises(DataError, match=r"odd\.npz: no input array among keys \['foo', 'bar'\]; accepted names: x, X, data"):
        read_array_file(tmp_path / "odd.npz")


def test_npz_object_array(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([1, "a", None], dtype=object))
    with pytest.raises(DataError, match=r"obj\.npz: holds an object array .*object arrays are not supported"):
        read_array_file(tmp_path / "obj.npz")


def test_npy_object_array(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"obj\.npy: .*object arrays are not supported"):
        read_array_file(tmp_path / "obj.npy")


def test_npz_non_numeric(tmp_path):
    np.savez(tmp_path / "s.npz", x=np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"s\.npz: array 'x' has dtype <U1; only numeric"):
        read_array_file(tmp_path / "s.npz")


def test_npz_nan(tmp_path):
    np.savez(tmp_path / "n.npz", x=np.array([[0.0, np.nan]]))
    with pytest.raises(DataError, match=r"n\.npz: array 'x': contains 1 NaN/Inf values"):
        read_array_file(tmp_path / "n.npz")


def test_npz_length_mismatch(tmp_path):
    np.savez(tmp_path / "m.npz", x=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(DataError, match=r"m\.npz: 'x' has 4 rows but 'y' has 3"):
        read_array_file(tmp_path / "m.npz")


def test_npz_not_an_archive(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(DataError, match=r"text\.npz: not a \.npy/\.npz file \(no \.npy or zip header\)"):
        read_array_file(tmp_path / "text.npz")


def test_npz_truncated(tmp_path):
    np.savez(tmp_path / "cut.npz", x=np.zeros((100, 10)))
    path = tmp_path / "cut.npz"
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(DataError, match=r"cut\.npz: not a valid"):
        read_array_file(path)


# ---- image folders ----


def save_image(path: Path, mode: str, size=(5, 4), value=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode in ("L", "1") else (value, 255 - value, 7)
    Image.new(mode, size, color).save(path)
    return path


def test_image_folder_with_classes(tmp_path):
    save_image(tmp_path / "dog" / "b.png", "L", value=20)
    save_image(tmp_path / "dog" / "a.PNG", "L", value=10)
    save_image(tmp_path / "cat" / "c.bmp", "L", value=30)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    x, y, names = read_image_folder(tmp_path)
    assert names == ["cat", "dog"]
    assert x.shape == (3, 1, 4, 5) and x.dtype == np.uint8  # (N, C, H, W)
    np.testing.assert_array_equal(y, [0, 1, 1])
    assert y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0, 0, 0], [30, 10, 20])


def test_image_folder_flat_rgb(tmp_path):
    save_image(tmp_path / "a.png", "L", value=50)
    save_image(tmp_path / "b.jpg", "RGB", value=200)
    save_image(tmp_path / "c.gif", "P", value=0)
    x, y, names = read_image_folder(tmp_path)
    assert y is None and names == []
    assert x.shape == (3, 3, 4, 5)
    np.testing.assert_array_equal(x[0, :, 0, 0], [50, 50, 50])  # greyscale expanded to RGB


def test_image_folder_empty(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=rf"{tmp_path.name}: no images found; supported extensions: \.png, \.jpg, \.jpeg, \.bmp, \.gif"):
        read_image_folder(tmp_path)


def test_image_folder_mixed_sizes(tmp_path):
    save_image(tmp_path / "a.png", "L", size=(5, 4))
    save_image(tmp_path / "b.png", "L", size=(5, 4))
    save_image(tmp_path / "c.png", "L", size=(6, 4))
    with pytest.raises(DataError, match=r"c\.png: image is 6x4 but a\.png is 5x4"):
        read_image_folder(tmp_path)


def test_image_folder_unreadable(tmp_path):
    save_image(tmp_path / "a.png", "L")
    (tmp_path / "b.png").write_bytes(b"not really a png")
    with pytest.raises(DataError, match=r"b\.png: cannot read image"):
        read_image_folder(tmp_path)


def test_image_folder_truncated_image(tmp_path):
    save_image(tmp_path / "a.png", "L")
    path = save_image(tmp_path / "b.png", "RGB", size=(5, 4))
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DataError, match=r"b\.png: cannot read image"):
        read_image_folder(tmp_path)


def test_image_folder_loose_and_classes(tmp_path):
    save_image(tmp_path / "a.png", "L")
    save_image(tmp_path / "cls" / "b.png", "L")
    with pytest.raises(DataError, match=r"holds both images \(a\.png, \.\.\.\) and class subfolders"):
        read_image_folder(tmp_path)


# ---- CSV ----


def test_csv_header_and_label_name(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,label,b\n1,3,2.5\n\n4,1,-5e-1\n")
    x, y, header, names = read_csv(path, label_column="label")
    np.testing.assert_array_equal(x, np.array([[1, 2.5], [4, -0.5]], np.float32))
    assert x.dtype == np.float32
    np.testing.assert_array_equal(y, [3, 1])
    assert y.dtype == np.int64
    assert header == ["a", "label", "b"] and names is None


def test_csv_no_header_string_labels(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,2,dog\n3,4,cat\n5,6,dog\n")
    x, y, header, names = read_csv(path, label_column=-1)
    assert header is None and x.shape == (3, 2)
    assert names == ["cat", "dog"]
    np.testing.assert_array_equal(y, [1, 0, 1])


def test_csv_no_label(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("1\t2\n3\t4\n")
    x, y, header, names = read_csv(path)
    np.testing.assert_array_equal(x, [[1, 2], [3, 4]])
    assert y is None and header is None and names is None


def test_csv_whitespace_separated(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("1 2  3\n4 5 6\n")
    x, *_ = read_csv(path)
    assert x.shape == (2, 3)


def test_csv_non_numeric_cell(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,y\n1,2,0\n3,oops,1\n")
    with pytest.raises(DataError, match=r"t\.csv: row 3, column 2 \('b'\): 'oops' is not a number"):
        read_csv(path, label_column="y")


def test_csv_ragged(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,2,3\n4,5,6\n7,8\n")
    with pytest.raises(DataError, match=r"t\.csv: row 3 has 2 columns, expected 3"):
        read_csv(path)


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_csv_empty(tmp_path, text):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=r"t\.csv: empty file"):
        read_csv(path)


def test_csv_header_only(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n")
    with pytest.raises(DataError, match=r"t\.csv: has a header row but no data rows"):
        read_csv(path)


def test_csv_unknown_label_name(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"t\.csv: no column named 'y'; header is \['a', 'b'\]"):
        read_csv(path, label_column="y")


def test_csv_fractional_labels(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,0.5\n2,1\n")
    with pytest.raises(DataError, match=r"t\.csv: label column 2 holds non-integer numbers"):
        read_csv(path, label_column=1)


def test_csv_nan(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,nan\n2,3\n")
    with pytest.raises(DataError, match=r"t\.csv: contains 1 NaN/Inf values"):
        read_csv(path)


def test_check_finite():
    check_finite(np.array([1, 2]), "ints")
    check_finite(np.array([1.0, 2.0]), "floats")
    with pytest.raises(DataError, match=r"here: contains 3 NaN/Inf values"):
        check_finite(np.array([np.nan, -np.inf, np.inf, 0.0]), "here")


# ---- finding and downloading IDX files ----


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """A registered IDX dataset "tiny" with files served from a file:// mirror, and a clean HOME."""
    mirror = tmp_path / "mirror"
    arrays = write_tiny_set(mirror, gz=True)
    hashes = {f"{stem}.gz": sha256(mirror / f"{stem}.gz") for stem in FILES.values()}
    monkeypatch.setitem(download.IDX_DATASETS, "tiny", IdxDataset(mirrors=(mirror.as_uri() + "/",), sha256=hashes))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AEZOO_DATA", raising=False)
    return arrays


def assert_tiny_set(files: dict[str, Path], arrays: dict[str, np.ndarray]):
    x, y = read_idx_pair(files["train_images"], files["train_labels"])
    np.testing.assert_array_equal(x, arrays["train_images"])
    np.testing.assert_array_equal(y, arrays["train_labels"])
    x, y = read_idx_pair(files["test_images"], files["test_labels"])
    np.testing.assert_array_equal(x, arrays["test_images"])


def test_search_dirs_order(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    monkeypatch.setenv("AEZOO_DATA", str(tmp_path / "env"))
    assert search_dirs("mnist", tmp_path / "dd") == [
        tmp_path / "dd",
        tmp_path / "dd" / "mnist",
        tmp_path / "env",
        tmp_path / "env" / "mnist",
        tmp_path / "h" / ".cache" / "aezoo" / "mnist",
        Path("/usr/share/datasets/mnist"),
    ]


@pytest.mark.parametrize("gz", [False, True])
def test_find_in_data_dir(tiny, tmp_path, gz):
    arrays = write_tiny_set(tmp_path / "dd", gz=gz)
    files = find_idx_files("tiny", data_dir=tmp_path / "dd", download=False)
    assert all(p.parent == tmp_path / "dd" and (p.suffix == ".gz") == gz for p in files.values())
    assert_tiny_set(files, arrays)


@pytest.mark.parametrize("gz", [False, True])
def test_find_in_env_subfolder(tiny, tmp_path, monkeypatch, gz):
    arrays = write_tiny_set(tmp_path / "env" / "tiny", gz=gz)
    monkeypatch.setenv("AEZOO_DATA", str(tmp_path / "env"))
    files = find_idx_files("tiny", download=False)
    assert files["train_images"].parent == tmp_path / "env" / "tiny"
    assert_tiny_set(files, arrays)


def test_not_found_message(tiny, tmp_path):
    folder = tmp_path / "dd"
    write_tiny_set(folder, gz=False)
    (folder / FILES["test_labels"]).unlink()
    with pytest.raises(DataError) as err:
        find_idx_files("tiny", data_dir=folder, download=False)
    message = str(err.value)
    assert "\n" not in message
    assert f"{folder} lacks t10k-labels-idx1-ubyte" in message
    assert "downloading is off" in message
    assert "--data-dir DIR, $AEZOO_DATA or " + str(tmp_path / "home" / ".cache" / "aezoo" / "tiny") in message
    assert "apt-get" not in message


def test_unknown_dataset():
    with pytest.raises(DataError, match=r"no IDX dataset named 'cifar'; known: mnist, fashion-mnist"):
        find_idx_files("cifar")


def test_download_from_mirrors(tiny, tmp_path):
    dead = (tmp_path / "nothing-here").as_uri() + "/"
    good = (tmp_path / "mirror").as_uri() + "/"
    files = find_idx_files("tiny", mirrors=[dead, good])
    cache = tmp_path / "home" / ".cache" / "aezoo" / "tiny"
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{stem}.gz" for stem in FILES.values())
    assert all(p.parent == cache for p in files.values())
    assert_tiny_set(files, tiny)
    assert find_idx_files("tiny", download=False) == files  # found in the cache next time


def test_download_wrong_sha256(tiny, tmp_path, monkeypatch):
    spec = download.IDX_DATASETS["tiny"]
    wrong = {name: "0" * 64 for name in spec.sha256}
    monkeypatch.setitem(download.IDX_DATASETS, "tiny", IdxDataset(mirrors=spec.mirrors, sha256=wrong))
    with pytest.raises(DataError, match=r"tiny: .*download failed: .*train-images-idx3-ubyte\.gz: SHA-256 mismatch"):
        find_idx_files("tiny")
    cache = tmp_path / "home" / ".cache" / "aezoo" / "tiny"
    assert list(cache.iterdir()) == []  # neither the file nor a temp file is left


def test_download_file(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload" * 1000)
    dest = tmp_path / "out" / "dst.bin"
    assert download_file(src.as_uri(), dest, sha256(src)) == dest
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(DataError, match=r"src\.bin: SHA-256 mismatch, got [0-9a-f]{64}, expected f{64}"):
        download_file(src.as_uri(), tmp_path / "out" / "again.bin", "f" * 64)
    with pytest.raises(DataError, match=r"missing\.bin: unreachable"):
        download_file((tmp_path / "missing.bin").as_uri(), tmp_path / "out" / "m.bin", "f" * 64)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dst.bin"]


@pytest.fixture
def http_mirror(tmp_path):
    """An HTTP server on 127.0.0.1 serving an empty folder: every file is a 404."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_http_404_then_next_mirror(tiny, tmp_path, http_mirror):
    files = find_idx_files("tiny", mirrors=[http_mirror, (tmp_path / "mirror").as_uri() + "/"])
    assert_tiny_set(files, tiny)
    with pytest.raises(DataError, match=r"HTTP 404"):
        download_file(http_mirror + "x.gz", tmp_path / "x.gz", "0" * 64)


# ---- the real Fashion-MNIST files that Debian's dataset-fashion-mnist installs ----

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")

# Debian re-gzips Zalando's files, so these differ from the download hashes in
# download.IDX_DATASETS (sha256sum of the files of dataset-fashion-mnist 0.0~git20200523.55506a9-1).
DEBIAN_FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AEZOO_DATA", raising=False)
    files = find_idx_files("fashion-mnist", download=False)
    assert all(p.parent == DEBIAN_FASHION for p in files.values())
    assert {p.name: sha256(p) for p in files.values()} == DEBIAN_FASHION_SHA256
    x, y = read_idx_pair(files["train_images"], files["train_labels"])
    assert x.shape == (60000, 28, 28) and y.shape == (60000,)
    np.testing.assert_array_equal(np.bincount(y), [6000] * 10)
    x, y = read_idx_pair(files["test_images"], files["test_labels"])
    assert x.shape == (10000, 28, 28) and y.shape == (10000,)
    np.testing.assert_array_equal(np.bincount(y), [1000] * 10)
