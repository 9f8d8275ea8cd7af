"""Images as uint8 in memory (issue 13): ``ByteImages`` holds (N, C, H, W) bytes (a tensor, a memory-mapped
``.npy`` or a folder decoded on demand) and reads as float32 in [0, 1]; folders of photos of mixed sizes
and modes, resized on the short side and centre-cropped (``image_size``), with unreadable files skipped
and counted (or an error with ``strict``).

A streamed ``.npy`` is memory-mapped only to read its header: rows are read with pread (``RowFile``).
A float32 copy is 4x the bytes: 200,000 colour 64x64 images are 2.5 GB as uint8 and 10 GB as float32.
Training batches become float on the device, one batch at a time (``data.batching``); code that reads
``split.x[a:b]`` gets float32 rows, so evaluation and figures need no change.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import DataError
from .readers import IMAGE_EXTENSIONS, _image_files

SHOW_SKIPPED = 5  # names of unreadable files printed on stderr


class ByteImages:
    """uint8 images (N, C, H, W) that read as float32 / ``scale``.

    ``store`` is a uint8 ``torch.Tensor`` or NumPy array (in memory), or rows read on demand: a
    ``RowFile`` (a streamed ``.npy``), ``ImageFiles`` (a folder) or ``TarShards``; ``index`` picks and orders its rows (a split is a view, never a copy). Indexing
    (``x[a:b]``, ``x[idx]``) reads only those rows and returns float32; anything else (``x.mean()``,
    ``torch.cat([x])``) sees the whole split as a float32 tensor, made on the spot."""

    def __init__(self, store, scale: float = 255.0, index: np.ndarray | None = None):
        self.store, self.scale = store, float(scale)
        self.index = None if index is None else np.asarray(index, dtype=np.int64)

    # --- what a tensor of shape (N, C, H, W) answers without reading pixels -------------------------
    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.store.shape[1:]))

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else int(self.store.shape[0])

    def dim(self) -> int:
        return len(self.shape)

    ndim = property(dim)
    dtype = torch.float32
    device = torch.device("cpu")

    def size(self, d: int | None = None):
        return self.shape if d is None else self.shape[d]

    def numel(self) -> int:
        return self.shape.numel()

    @property
    def nbytes(self) -> int:
        """Bytes of the uint8 rows of this split."""
        return self.numel()

    @property
    def in_memory(self) -> bool:
        return isinstance(self.store, (torch.Tensor, np.ndarray))

    # --- reading ---------------------------------------------------------------------------------
    def positions(self, idx) -> np.ndarray:
        """Rows of ``store`` for ``idx`` (an int, slice, or integer array/tensor) into this split."""
        if isinstance(idx, torch.Tensor):
            idx = idx.cpu().numpy()
        rows = np.arange(len(self))[idx] if isinstance(idx, slice) else np.asarray(idx, dtype=np.int64)
        return rows if self.index is None else self.index[rows]

    def bytes(self, idx) -> torch.Tensor:
        """uint8 rows (n, C, H, W) of ``idx``."""
        rows = self.positions(idx)
        if isinstance(self.store, torch.Tensor):
            return self.store[torch.from_numpy(np.atleast_1d(rows))]
        flat = np.atleast_1d(rows)
        order = np.argsort(flat, kind="stable")  # reads go in file order
        out = np.empty((len(flat), *self.store.shape[1:]), np.uint8)
        out[order] = self.store[flat[order]]
        return torch.from_numpy(out)

    def __getitem__(self, idx) -> torch.Tensor:
        single = isinstance(idx, (int, np.integer))
        x = self.bytes(idx).float().div_(self.scale)
        return x[0] if single else x

    def take(self, idx) -> "ByteImages":
        return ByteImages(self.store, self.scale, self.positions(idx))

    def materialize(self) -> torch.Tensor:
        return self[:]

    def to(self, *args, **kwargs) -> torch.Tensor:
        return self.materialize().to(*args, **kwargs)

    def float(self) -> torch.Tensor:
        return self.materialize()

    def __array__(self, dtype=None, copy=None):
        a = self.materialize().numpy()
        return a if dtype is None else a.astype(dtype)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("store", "scale", "index"):
            raise AttributeError(name)
        return getattr(self.materialize(), name)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        def conv(a):
            if isinstance(a, ByteImages):
                return a.materialize()
            if isinstance(a, (list, tuple)):
                return type(a)(conv(b) for b in a)
            return a

        return func(*conv(args), **{k: conv(v) for k, v in (kwargs or {}).items()})

    def __repr__(self) -> str:
        return f"ByteImages(shape={tuple(self.shape)}, store={type(self.store).__name__})"


# --- folders of photographs ------------------------------------------------------------------------
def _fit(im, size: int):
    """Resize the short side to ``size`` and crop the centre to size x size."""
    from PIL import Image, ImageOps

    return ImageOps.fit(im, (size, size), method=Image.BICUBIC, centering=(0.5, 0.5))


def decode(path, mode: str, image_size: int | None) -> np.ndarray:
    """One image file as (C, H, W) uint8 in ``mode`` ('L' or 'RGB'), resized and cropped to ``image_size``."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert(mode)
        if image_size is not None:
            im = _fit(im, image_size)
        pixels = np.asarray(im, dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


class ImageFiles:
    """A folder's images decoded on demand: ``files[idx]`` -> (n, C, H, W) uint8 (the store of a streamed
    folder; DataLoader workers call it)."""

    def __init__(self, files: Sequence[str], mode: str, size: tuple[int, int], image_size: int | None):
        self.files, self.mode, self.image_size = list(map(str, files)), mode, image_size
        self.shape = (len(self.files), 1 if mode == "L" else 3, *size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, rows) -> np.ndarray:
        out = np.empty((len(rows), *self.shape[1:]), np.uint8)
        for i, r in enumerate(rows):
            try:
                out[i] = decode(self.files[r], self.mode, self.image_size)
            except Exception as e:  # Pillow raises many types on damaged bytes
                raise DataError(f"{self.files[r]}: cannot read image ({e}); it passed the header check when the folder was opened") from None
        return out


def _listing(folder: Path) -> tuple[list[Path], np.ndarray | None, list[str]]:
    loose = _image_files(folder)
    classes = [(d.name, _image_files(d)) for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    classes = [(name, files) for name, files in classes if files]
    if classes and loose:
        raise DataError(f"{folder}: holds both images ({loose[0].name}, ...) and class subfolders ({classes[0][0]}, ...); "
                        "put every image in a class subfolder, or none")
    if classes:
        files = [f for _, fs in classes for f in fs]
        y = np.repeat(np.arange(len(classes), dtype=np.int64), [len(fs) for _, fs in classes])
        return files, y, [name for name, _ in classes]
    if not loose:
        raise DataError(f"{folder}: no images found; supported extensions: {', '.join(IMAGE_EXTENSIONS)} "
                        "(in the folder itself or in one subfolder per class)")
    return loose, None, []


def _report_skipped(folder: Path, bad: list[tuple[Path, str]], total: int, strict: bool) -> None:
    if not bad:
        return
    names = ", ".join(f"{p.name} ({why})" for p, why in bad[:SHOW_SKIPPED]) + (", ..." if len(bad) > SHOW_SKIPPED else "")
    if strict:
        raise DataError(f"{folder}: {len(bad)} of {total} files cannot be read as images: {names}")
    print(f"aezoo: skipped {len(bad)} unreadable file{'s' * (len(bad) != 1)} of {total} in {folder}: {names} "
          "(--strict makes this an error)", file=sys.stderr)


def open_folder(path, image_size: int | None = None, channels: int | None = None, strict: bool = False, stream: bool | None = None) -> dict[str, Any]:
    """A folder of images (class subfolders give labels) as a raw dataset dict with ``x_train`` a
    ``ByteImages``: decoded now, or on demand with ``stream``. Each file's header is read first, so
    unreadable files are found (and skipped, or an error with ``strict``) and mixed sizes are
    caught before decoding: without ``image_size`` every image must have the same size."""
    from PIL import Image

    folder = Path(path)
    if image_size is not None and image_size < 1:
        raise DataError(f"--image-size must be >= 1, got {image_size}")
    if channels not in (None, 1, 3):
        raise DataError(f"--channels must be 1 or 3, got {channels}")
    files, y, class_names = _listing(folder)
    keep, modes, sizes, bad = [], set(), {}, []
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                sizes.setdefault(im.size, f)
                modes.add(im.mode)
            keep.append(i)
        except Exception as e:  # Pillow raises many types on damaged bytes
            bad.append((f, type(e).__name__))
    _report_skipped(folder, bad, len(files), strict)
    if not keep:
        raise DataError(f"{folder}: none of its {len(files)} image files can be read")
    files = [files[i] for i in keep]
    y = None if y is None else y[keep]
    if image_size is None and len(sizes) > 1:
        (a, fa), (b, fb) = list(sizes.items())[:2]
        raise DataError(f"{folder}: images of {len(sizes)} sizes ({fa.name} is {a[0]}x{a[1]}, {fb.name} is {b[0]}x{b[1]}); "
                        "give --image-size N to resize the short side to N and crop the centre")
    if channels is None:
        channels = 1 if modes <= {"L", "1", "I;16", "I", "F"} else 3
    mode = "L" if channels == 1 else "RGB"
    w, h = (image_size, image_size) if image_size is not None else next(iter(sizes))
    store = ImageFiles(files, mode, (h, w), image_size)
    if not should_stream(int(np.prod(store.shape)), stream):
        x = np.empty(store.shape, np.uint8)
        ok = np.ones(len(files), bool)
        late = []
        for i, f in enumerate(files):
            try:
                x[i] = decode(f, mode, image_size)
            except Exception as e:  # a readable header over damaged pixels
                ok[i] = False
                late.append((f, type(e).__name__))
        _report_skipped(folder, late, len(files) + len(bad), strict)
        if not ok.all():
            x, y = x[ok], None if y is None else y[ok]
            files = [f for f, good in zip(files, ok) if good]
        store = torch.from_numpy(x)
        bad += late
    # what reloading the folder needs (resume, `aezoo eval`): recorded in config.json
    pre = {"image_size": image_size, "channels": channels, "skipped": len(bad)}
    # each item's file, relative to the folder: what search hits, scores and encodings name (issue 23)
    names = [f.relative_to(folder).as_posix() for f in map(Path, files)]
    return {"x_train": ByteImages(store), "y_train": y, "class_names": class_names, "source": str(folder), "image": pre,
            "item_names": names}


# --- uint8 arrays and the choice between memory and streaming ---------------------------------------
def memory_budget() -> int:
    """Bytes of training data to hold in memory: $AEZOO_MEMORY_BUDGET (e.g. "2G", "500M"), else half of
    the memory available now. Data above it streams."""
    env = os.environ.get("AEZOO_MEMORY_BUDGET")
    if env:
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
        try:
            return int(float(env[:-1]) * units[env[-1].upper()]) if env[-1].upper() in units else int(float(env))
        except ValueError:
            raise DataError(f"AEZOO_MEMORY_BUDGET must be a number of bytes, optionally with K, M, G or T, got {env!r}") from None
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024 // 2
    except (OSError, KeyError, ValueError):
        return (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")) // 2


def should_stream(nbytes: int, stream: bool | None) -> bool:
    """``stream`` if given (--stream / --no-stream), else whether ``nbytes`` exceed the memory budget."""
    return bool(stream) if stream is not None else nbytes > memory_budget()


def _channels_first(x: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W); (N, H, W, C) with C in {1, 3, 4} -> (N, C, H, W); views, never copies."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        return x.transpose(0, 3, 1, 2)
    return x


def byte_inputs(raw: dict[str, Any], binarize: str, normalize: str, where: str):
    """(train, test, preprocessing) as ``ByteImages`` when the inputs are uint8 images scaled by 255 and
    not binarized, else None (the float path). A memory map stays one when the data stream: chosen by
    ``raw["stream"]`` (True/False) or by the memory budget."""
    x = raw["x_train"]
    if isinstance(x, ByteImages) and binarize != "none":  # binarized data are float: the float path
        raw["x_train"] = x.bytes(slice(None)).numpy()
        return None
    if not isinstance(x, ByteImages):
        usable = (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim in (3, 4) and raw.get("images", True)
                  and normalize == "auto" and raw.get("scale") in (None, 255, 255.0) and binarize == "none")
        if not usable:
            return None
        if x.shape[0] == 0:
            raise DataError(f"{where}: the dataset is empty")
    xt = _as_bytes(x, raw.get("stream"))
    xs = None if raw.get("x_test") is None else _as_bytes(raw["x_test"], raw.get("stream"))
    if xs is not None and xs.shape[1:] != xt.shape[1:]:
        raise DataError(f"{where}: train inputs have shape {tuple(xt.shape[1:])} but test inputs {tuple(xs.shape[1:])}")
    return xt, xs, {"scale": 255.0}  # as the float path records it: the values are the same, bit for bit


class RowFile:
    """The rows of a C-ordered uint8 ``.npy`` read with ``os.pread`` (the store of a streamed ``.npy``).
    A memory map would serve the same bytes, but every page it touches (and the kernel's fault-around
    neighbours) stays mapped and counts in the reader's resident memory; pread leaves them in the page
    cache, so a worker's memory does not grow with the file."""

    def __init__(self, mm: np.memmap):
        self.path, self.offset, self.raw_shape = str(mm.filename), int(mm.offset), tuple(mm.shape)
        self.row = int(np.prod(mm.shape[1:]))
        probe = _channels_first(np.empty((0, *mm.shape[1:]), np.uint8))
        self.shape = (mm.shape[0], *probe.shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.atleast_1d(np.asarray(rows, np.int64))
        out = np.empty((len(rows), *self.raw_shape[1:]), np.uint8)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for i, r in enumerate(rows):
                buf = os.pread(fd, self.row, self.offset + int(r) * self.row)
                if len(buf) != self.row:
                    raise DataError(f"{self.path}: row {int(r)} lies past the end of the file (truncated?)")
                out[i] = np.frombuffer(buf, np.uint8).reshape(self.raw_shape[1:])
        finally:
            os.close(fd)
        return _channels_first(out)


def _as_bytes(x, stream: bool | None) -> ByteImages:
    if isinstance(x, ByteImages):
        return x
    if not (isinstance(x, np.ndarray) and x.dtype == np.uint8):
        raise DataError(f"test inputs must be uint8 images like the training inputs, got {getattr(x, 'dtype', type(x))}")
    if isinstance(x, np.memmap) and x.flags.c_contiguous and should_stream(x.nbytes, stream):
        return ByteImages(RowFile(x))
    x = _channels_first(x)
    return ByteImages(torch.from_numpy(np.array(x, order="C")))  # a copy: a memory map is read-only


# --- WebDataset tar shards ---------------------------------------------------------------------------
class TarShards:
    """Images in WebDataset tar shards (``KEY.png|jpg|jpeg`` members, optional ``KEY.cls`` labels), read
    by index: each member's offset is found once from the tar headers, and a worker seeks to the bytes
    it needs. Random access keeps the per-epoch permutation, per-rank shares and exact resume of every
    other source (WebDataset's own sequential pipeline shuffles in a buffer and cannot resume mid-epoch)."""

    def __init__(self, entries: list[tuple[str, int, int]], mode: str, size: tuple[int, int], image_size: int | None):
        self.entries, self.mode, self.image_size = entries, mode, image_size  # (shard, offset, size) per image
        self.shape = (len(entries), 1 if mode == "L" else 3, *size)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, rows) -> np.ndarray:
        import io

        out = np.empty((len(rows), *self.shape[1:]), np.uint8)
        for i, r in enumerate(rows):
            shard, offset, size = self.entries[r]
            with open(shard, "rb") as f:
                f.seek(offset)
                blob = f.read(size)
            try:
                out[i] = decode(io.BytesIO(blob), self.mode, self.image_size)
            except Exception as e:  # Pillow raises many types on damaged bytes
                raise DataError(f"{shard} at byte {offset}: cannot read image ({e})") from None
        return out


def open_shards(path, image_size: int | None = None, channels: int | None = None, strict: bool = False, stream: bool | None = None) -> dict[str, Any]:
    """A ``.tar`` shard or a folder of them as a raw dataset dict (``x_train`` a ``ByteImages``)."""
    import io
    import tarfile

    from PIL import Image

    path = Path(path)
    shards = sorted(path.glob("*.tar")) if path.is_dir() else [path]
    entries, labels, modes, sizes, bad = [], [], set(), {}, []
    for shard in shards:
        try:
            with tarfile.open(shard, "r:") as tar:
                members = [m for m in tar.getmembers() if m.isfile()]
                cls = {m.name.rsplit(".", 1)[0]: tar.extractfile(m).read() for m in members if m.name.endswith(".cls")}
                for m in members:
                    key, _, ext = m.name.rpartition(".")
                    if "." + ext.lower() not in IMAGE_EXTENSIONS:
                        continue
                    try:
                        with Image.open(io.BytesIO(tar.extractfile(m).read(min(m.size, 1 << 16)))) as im:
                            sizes.setdefault(im.size, f"{shard.name}:{m.name}")
                            modes.add(im.mode)
                    except Exception as e:  # a header Pillow cannot read
                        bad.append((Path(f"{shard.name}:{m.name}"), type(e).__name__))
                        continue
                    entries.append((str(shard), m.offset_data, m.size))
                    labels.append(int(cls[key]) if key in cls else -1)
        except (tarfile.TarError, OSError, ValueError) as e:
            raise DataError(f"{shard}: not a readable tar shard ({e})") from None
    _report_skipped(path, bad, len(entries) + len(bad), strict)
    if not entries:
        raise DataError(f"{path}: no images in {len(shards)} tar shard(s)")
    if image_size is None and len(sizes) > 1:
        raise DataError(f"{path}: images of {len(sizes)} sizes; give --image-size N to resize the short side to N and crop the centre")
    if channels is None:
        channels = 1 if modes <= {"L", "1"} else 3
    mode = "L" if channels == 1 else "RGB"
    w, h = (image_size, image_size) if image_size is not None else next(iter(sizes))
    store = TarShards(entries, mode, (h, w), image_size)
    if not should_stream(int(np.prod(store.shape)), stream):
        store = torch.from_numpy(store[range(len(store))])
    y = np.array(labels, np.int64) if labels and min(labels) >= 0 else None
    return {"x_train": ByteImages(store), "y_train": y, "source": str(path), "image": {"image_size": image_size, "channels": channels, "skipped": len(bad)}}
