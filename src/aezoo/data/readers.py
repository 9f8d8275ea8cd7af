"""Readers for the user's own files: IDX (plain or gzipped), .npy/.npz, image folders and CSV.

Every reader returns plain numpy arrays and reports bad input as a one-line ``DataError`` that
starts with the file's path, never as a traceback from numpy, gzip or Pillow.
"""
from __future__ import annotations

import csv
import errno
import math
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..utils import memory_bytes

# IDX type codes (LeCun's MNIST page); the data is big-endian.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

X_NAMES = ("x", "X", "data", "images", "inputs", "features")
Y_NAMES = ("y", "Y", "labels", "label", "targets", "target")
SPLITS = ("train", "test")


def check_finite(arr: np.ndarray, where: str) -> None:
    """Raise if a float array holds NaN or Inf; ``where`` names the file (and array) for the message."""
    if arr.dtype.kind not in "fc":
        return
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise DataError(f"{where}: contains {bad} NaN/Inf values")


def why_missing(path: Path) -> str | None:
    """Why ``path`` cannot be opened ("no such file", "symbolic link loop", "permission denied"),
    or None when it exists: ``Path.exists`` says False for all of them (issue 17)."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return f"broken symbolic link to {os.readlink(path)!r}" if os.path.islink(path) else "no such file"
        if e.errno == errno.ELOOP:
            return "symbolic link loop (too many levels of symbolic links)"
        return e.strerror or str(e)
    except ValueError as e:  # e.g. a NUL byte in the name
        return str(e)
    return None


def _existing_file(path) -> Path:
    path = Path(path)
    if (why := why_missing(path)) is not None:
        raise DataError(f"{path}: {why}")
    if not path.is_file():
        raise DataError(f"{path}: is not a file")
    return path


def _read_bytes(path: Path, limit: int | None = None) -> tuple[bytes, bool]:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its suffix); of a gzip
    file at most ``limit`` + 1 bytes are decompressed, so that a small file cannot expand to fill the
    memory (issue 22: a gzip bomb). Returns (bytes, whether the file was gzipped)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if data[:2] != b"\x1f\x8b":
        return data, False
    out, room = [], (limit + 1 if limit is not None else -1)
    try:
        while data and room != 0:
            d = zlib.decompressobj(wbits=31)  # one gzip member; a file may hold several
            out.append(d.decompress(data, max(room, 0)))
            room = room - len(out[-1]) if room > 0 else room
            if room != 0 and not d.eof:
                out.append(d.flush())
                room = room - len(out[-1]) if room > 0 else room
                if not d.eof:
                    raise EOFError("compressed file ended before the end-of-stream marker was reached")
            data = d.unused_data if d.eof else b""
    except (EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip file ({e})") from None
    return b"".join(out), True


def read_idx(path) -> np.ndarray:
    """An IDX file (plain or .gz) as a native-endian, writable array of the shape its header gives."""
    path = _existing_file(path)
    data, gz = _read_bytes(path, 4 + 4 * 255)  # the header; a gzip file is then read as far as the header's shape needs
    magic = data[:4]
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES or magic[3] == 0:
        codes = ", ".join(f"0x{c:02X} {t.name}" for c, t in IDX_DTYPES.items())
        found = f"0x{magic.hex().upper()}" if magic else "nothing (empty file)"
        raise DataError(
            f"{path}: not an IDX file: magic number is {found}, expected 0x0000 then a type code "
            f"({codes}) and the number of dimensions"
        )
    if len(data) >= 4 + 4 * magic[3]:
        shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=magic[3], offset=4))
        need = 4 + 4 * magic[3] + math.prod(shape) * IDX_DTYPES[magic[2]].itemsize
        if need > memory_bytes():
            raise DataError(f"{path}: its IDX header promises shape {shape} = {need / 2**30:.1f} GiB, more than this machine's memory")
        data, gz = _read_bytes(path, need)
    dtype, ndim = IDX_DTYPES[magic[2]], magic[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header: expected {header} bytes, found {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    count = math.prod(shape)
    expected, found = count * dtype.itemsize, len(data) - header
    if found < expected:
        raise DataError(
            f"{path}: truncated IDX file: header promises shape {shape} = {expected} bytes of data, "
            f"found {found}"
        )
    if found > expected:
        raise DataError(
            f"{path}: IDX file has {'more' if gz else found - expected} bytes after the {expected} bytes of data its "
            f"header promises for shape {shape}"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape)
    arr = arr.astype(dtype.newbyteorder("="))  # a copy: native byte order, and writable
    check_finite(arr, str(path))
    return arr


def read_idx_pair(images_path, labels_path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) uint8 and labels (N,) int64 from two IDX files, checked against each other."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected uint8 images of shape (N, H, W), found {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{labels_path}: expected 1-D integer labels, found {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    return images, labels.astype(np.int64)


def _normalised_key(key: str) -> str | None:
    """``x``/``y`` or ``x_train``.. ``y_test`` for a recognised array name, else None."""
    if key in X_NAMES:
        return "x"
    if key in Y_NAMES:
        return "y"
    parts = key.split("_")
    if len(parts) != 2:
        return None
    for role, split in (parts, parts[::-1]):
        if split.lower() in SPLITS:
            base = _normalised_key(role) or _normalised_key(role.lower())
            if base is not None:
                return f"{base}_{split.lower()}"
    return None


def _load_npy(path: Path, source):
    try:
        return source()
    except ValueError as e:
        # The magic was checked, so numpy refusing to unpickle means an object array.
        if "pickle" in str(e).lower() or "python objects" in str(e).lower():
            raise DataError(
                f"{path}: holds an object array (stored as a pickle); object arrays are not "
                "supported, save numeric arrays (e.g. x.astype('float32'))"
            ) from None
        raise DataError(f"{path}: not a valid .npy/.npz file ({e})") from None
    except Exception as e:  # noqa: BLE001 - numpy and zipfile raise many types on corrupt bytes
        # (a flipped byte in a header gives tokenize.TokenError, one in a zip entry NotImplementedError,
        # a huge shape MemoryError): all of them mean the file is damaged (issue 17)
        raise DataError(f"{path}: not a valid or a truncated .npy/.npz file ({type(e).__name__}: {e})") from None


def read_array_file(path) -> dict[str, np.ndarray]:
    """Arrays from .npy (``{"x": arr}``) or .npz, keyed ``x``, ``y`` and/or ``x_train``, ``y_train``,
    ``x_test``, ``y_test``. Recognised names and ``train_x``-style split names are normalised to
    these; other arrays in an .npz are ignored. Nothing is unpickled."""
    path = _existing_file(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise DataError(f"{path}: expected a .npy or .npz file")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    # Without either magic numpy would try to unpickle the file; say what it is not instead.
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
        raise DataError(f"{path}: not a .npy/.npz file (no .npy or zip header)")
    # a .npy is memory-mapped: data larger than memory stream from it (issue 13)
    loaded = _load_npy(path, lambda: np.load(path, allow_pickle=False, mmap_mode="r" if magic == b"\x93NUMPY" else None))
    # np.load goes by the file's content, not its suffix.
    if isinstance(loaded, np.ndarray):
        raw = {"x": loaded}
    else:
        raw = {}
        with loaded as archive:
            found = list(archive.files)
            for key in found:
                name = _normalised_key(key)
                if name is None:
                    continue
                if name in raw:
                    other = next(k for k in found if _normalised_key(k) == name)
                    raise DataError(f"{path}: arrays {other!r} and {key!r} both mean {name!r}; keep one")
                raw[name] = _load_npy(path, lambda: archive[key])
        if "x" not in raw and "x_train" not in raw:
            accepted = ", ".join(X_NAMES + Y_NAMES)
            raise DataError(
                f"{path}: no input array among keys {found}; accepted names: {accepted}, "
                "or x_train, y_train, x_test, y_test (also train_x style)"
            )

    for key, arr in raw.items():
        if arr.dtype.kind not in "biuf":
            raise DataError(f"{path}: array {key!r} has dtype {arr.dtype}; only numeric arrays are supported")
        if arr.ndim == 0:
            raise DataError(f"{path}: array {key!r} is a scalar; expected one row per example")
        check_finite(arr, f"{path}: array {key!r}")
    for x_key, y_key in (("x", "y"), ("x_train", "y_train"), ("x_test", "y_test")):
        if y_key in raw and x_key not in raw:
            raise DataError(f"{path}: has {y_key!r} but no {x_key!r}")
        if y_key in raw and len(raw[y_key]) != len(raw[x_key]):
            raise DataError(
                f"{path}: {x_key!r} has {len(raw[x_key])} rows but {y_key!r} has {len(raw[y_key])}"
            )
    return raw


def _image_files(folder: Path) -> list[Path]:
    # Names starting with "." are editor and macOS metadata (.DS_Store, ._img.png), not images.
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def read_image_folder(path) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Images (N, C, H, W) uint8 from a folder, with labels when it holds class subfolders.

    Each subfolder with images is a class (labels follow the sorted folder names); otherwise the
    images directly inside are read, unlabelled. C is 1 when every image is greyscale ("L" or "1"),
    else every image is converted to RGB and C is 3.
    """
    from PIL import Image

    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    loose = _image_files(folder)
    classes = [
        (d.name, _image_files(d))
        for d in sorted(folder.iterdir())
        if d.is_dir() and not d.name.startswith(".")
    ]
    classes = [(name, files) for name, files in classes if files]
    if classes and loose:
        raise DataError(
            f"{folder}: holds both images ({loose[0].name}, ...) and class subfolders "
            f"({classes[0][0]}, ...); put every image in a class subfolder, or none"
        )
    if classes:
        files = [f for _, fs in classes for f in fs]
        y = np.repeat(np.arange(len(classes), dtype=np.int64), [len(fs) for _, fs in classes])
        class_names = [name for name, _ in classes]
    else:
        files, y, class_names = loose, None, []
    if not files:
        raise DataError(
            f"{folder}: no images found; supported extensions: {', '.join(IMAGE_EXTENSIONS)} "
            "(in the folder itself or in one subfolder per class)"
        )

    # Pillow's decoders raise many types on damaged bytes (OSError, SyntaxError, struct.error, ...)
    unreadable = Exception

    # First pass reads headers only (size, mode), so a size mismatch is found before decoding.
    modes = set()
    size = None
    for f in files:
        try:
            with Image.open(f) as im:
                im_size, mode = im.size, im.mode
        except unreadable as e:
            raise DataError(f"{f}: cannot read image ({e})") from None
        if size is None:
            size, first = im_size, f
        elif im_size != size:
            raise DataError(
                f"{f}: image is {im_size[0]}x{im_size[1]} but {first.name} is {size[0]}x{size[1]}; "
                "all images must have the same size"
            )
        modes.add(mode)
    mode = "L" if modes <= {"L", "1"} else "RGB"
    channels = 1 if mode == "L" else 3
    width, height = size
    x = np.empty((len(files), channels, height, width), dtype=np.uint8)  # (N, C, H, W)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                pixels = np.asarray(im.convert(mode), dtype=np.uint8)
        except unreadable as e:
            raise DataError(f"{f}: cannot read image ({e})") from None
        x[i] = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
    return x, y, class_names


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """Non-blank rows as (line number, stripped cells)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else next((d for d in ",\t;" if d in first), None)
    if delimiter is None:  # whitespace-separated, as numpy.savetxt writes by default
        return [(i, line.split()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    try:
        return [(reader.line_num, [c.strip() for c in row]) for row in reader if any(c.strip() for c in row)]
    except csv.Error as e:
        raise DataError(f"{path}: line {reader.line_num}: {e}") from None


def read_csv(
    path, label_column: str | int | None = None
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None, list[str] | None]:
    """A numeric table as (x float32 (N, D), y int64 (N,) or None, header or None, class_names or None).

    The first row is a header when it has a non-numeric cell outside the label column. Labels may
    be integers or strings; strings map to 0..C-1 in sorted order and ``class_names`` lists them.
    Row numbers in errors are line numbers, as an editor shows them.
    """
    path = _existing_file(path)
    rows = _csv_rows(path)
    if not rows:
        raise DataError(f"{path}: empty file, no rows")

    width = len(rows[0][1])
    label = None
    if isinstance(label_column, int):
        if not -width <= label_column < width:
            raise DataError(f"{path}: label column {label_column} is out of range for {width} columns")
        label = label_column % width
    first = rows[0][1]
    has_header = any(not _is_number(c) for j, c in enumerate(first) if j != label)
    header = first if has_header else None
    if isinstance(label_column, str):
        if header is None or label_column not in header:
            found = f"header is {header}" if header else "the file has no header row"
            raise DataError(f"{path}: no column named {label_column!r}; {found}")
        label = header.index(label_column)
    elif label_column is not None and not isinstance(label_column, int):
        raise DataError(f"{path}: label_column must be a column name or index, got {label_column!r}")
    body = rows[1:] if has_header else rows
    if not body:
        raise DataError(f"{path}: has a header row but no data rows")
    for line, cells in body:
        if len(cells) != width:
            raise DataError(f"{path}: row {line} has {len(cells)} columns, expected {width}")

    table = np.array([cells for _, cells in body], dtype=str)  # (N, width)
    features = [j for j in range(width) if j != label]
    if not features:
        raise DataError(f"{path}: no feature columns besides the label column")
    try:
        x = table[:, features].astype(np.float64).astype(np.float32)
    except ValueError:
        # Only on failure, cell by cell: name the first bad cell.
        for line, cells in body:
            for j in features:
                if not _is_number(cells[j]):
                    column = f"column {j + 1}" + (f" ({header[j]!r})" if header else "")
                    raise DataError(f"{path}: row {line}, {column}: {cells[j]!r} is not a number") from None
        # numpy's parser is stricter than Python's float() (which takes "1_000"): use float().
        x = np.array([[float(cells[j]) for j in features] for _, cells in body], dtype=np.float32)
    check_finite(x, str(path))

    y = class_names = None
    if label is not None:
        values = table[:, label]
        try:
            numbers = values.astype(np.float64)
        except ValueError:
            class_names, y = np.unique(values, return_inverse=True)
            class_names, y = [str(c) for c in class_names], y.astype(np.int64)
        else:
            if not np.all(np.isfinite(numbers)) or np.any(numbers != np.round(numbers)):
                raise DataError(
                    f"{path}: label column {label + 1} holds non-integer numbers; "
                    "labels must be integers or class names"
                )
            y = numbers.astype(np.int64)
    return x, y, header, class_names
