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
    x = np.linspace(0, 1, 60, dtype=np.float32).reshape(10, 6)  # training values in [0, 1]
    with pytest.warns(DataWarning, match=r"test values .* outside \[0, 1\] .*test values \[0, 2\].*clipped"):
        data = aezoo.data.from_arrays(x, x_test=2 * x)
    assert float(data.test.x.max()) == 1.0 and data.preprocessing["clipped"]["test"]["range"] == [0.0, 2.0]
    # min-max scaling fitted on train maps test with the same offset and span
    data = aezoo.data.from_arrays(10 + 4 * x, x_test=np.full((3, 6), 12, np.float32))
    assert data.preprocessing["minmax"] == [10.0, 14.0] and np.allclose(data.test.x.numpy(), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # in range: no warning
        aezoo.data.from_arrays(x, x_test=x[:3])


def test_huge_values_are_scaled_in_float64_or_named_as_a_float32_overflow():
    big = np.linspace(-1e300, 1e300, 30).reshape(10, 3)  # float64 near 1e300: not NaN/Inf
    assert float(aezoo.data.from_arrays(big).train.x.max()) <= 1.0
    near_max = np.linspace(-3e38, 3e38, 30, dtype=np.float32).reshape(10, 3)  # the span overflows float32
    x = aezoo.data.from_arrays(near_max).train.x
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
