"""MNIST and Fashion-MNIST: find their four IDX files on disk, or download them once into the cache.

Downloads are checked against SHA-256 and written atomically (temp file, fsync, ``os.replace``),
so an interrupted download or two processes downloading at once (DDP ranks) never leave a
half-written file under the real name.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

# Key -> file name without ".gz"; mirrors serve "<base><name>.gz".
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

TIMEOUT_S = 20.0


@dataclass(frozen=True)
class IdxDataset:
    mirrors: tuple[str, ...]  # base URLs, each ending in "/"
    sha256: dict[str, str]  # of each ".gz" file, by its file name
    apt_package: str | None = None  # Debian/Ubuntu package that installs the files


IDX_DATASETS = {
    # SHA-256 of the four .gz files as published by LeCun, Cortes and Burges. Confirmed identical
    # in independent public loaders: ankane/torchvision-ruby lib/torchvision/datasets/mnist.rb
    # (the same two mirrors as torchvision) and notwa/mnists mnists/__init__.py, among others.
    "mnist": IdxDataset(
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        sha256={
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    ),
    # SHA-256 of the .gz files on Zalando's mirror, confirmed in two independent public loaders:
    # Britefury/batchup batchup/datasets/fashion_mnist.py and notwa/mnists mnists/__init__.py.
    # Not the Debian files: dataset-fashion-mnist re-gzips them (other gzip header, 24 bytes
    # shorter, MD5s differ from the ones Zalando publishes), so their hashes would reject every
    # real download. Files found on disk are read as they are, never checked against these.
    "fashion-mnist": IdxDataset(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        sha256={
            "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
            "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
            "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
            "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
        },
        apt_package="dataset-fashion-mnist",
    ),
}


class _MirrorUnreachable(DataError):
    """The mirror did not answer at all, so the other files need not be tried there."""


def cache_dir(name: str) -> Path:
    # expanduser reads $HOME, so tests can point it elsewhere.
    return Path(os.path.expanduser("~")) / ".cache" / "aezoo" / name


def search_dirs(name: str, data_dir=None) -> list[Path]:
    """Folders searched in order: ``data_dir`` and ``$AEZOO_DATA`` (each itself, then
    ``<folder>/<name>``), the download cache, then where Debian packages install datasets."""
    dirs = []
    for root in (data_dir, os.environ.get("AEZOO_DATA")):
        if root:
            root = Path(root).expanduser()
            dirs += [root, root / name]
    dirs += [cache_dir(name), Path("/usr/share/datasets") / name]
    return list(dict.fromkeys(dirs))


def _find_in(folder: Path) -> dict[str, Path]:
    """Those of the four files present in ``folder``, gzipped or raw (also Kaggle's
    ``train-images.idx3-ubyte`` spelling)."""
    found = {}
    for key, stem in FILES.items():
        for base in (stem, stem.replace("-idx", ".idx")):
            for candidate in (folder / f"{base}.gz", folder / base):
                if key not in found and candidate.is_file():
                    found[key] = candidate
    return found


def find_idx_files(name: str, data_dir=None, download: bool = True, mirrors=None) -> dict[str, Path]:
    """Paths of the four IDX files of ``name`` (keys ``train_images``, ``train_labels``,
    ``test_images``, ``test_labels``), all from the first folder of ``search_dirs`` that holds
    the four; else, if ``download``, the missing ones are fetched into ``cache_dir(name)`` from
    ``mirrors`` (default: the table's), each mirror in turn."""
    if name not in IDX_DATASETS:
        raise DataError(f"no IDX dataset named {name!r}; known: {', '.join(IDX_DATASETS)}")
    spec = IDX_DATASETS[name]
    dirs = search_dirs(name, data_dir)
    partial = None
    for folder in dirs:
        found = _find_in(folder)
        if len(found) == len(FILES):
            return found
        if found and partial is None:
            partial = (folder, [FILES[k] for k in FILES if k not in found])

    cache = cache_dir(name)
    if not download:
        raise _not_found(name, spec, dirs, partial, "downloading is off")
    found = _find_in(cache)
    dead: set[str] = set()
    for key in (k for k in FILES if k not in found):
        file_name = f"{FILES[key]}.gz"
        reasons = []
        for base in spec.mirrors if mirrors is None else mirrors:
            if base in dead:
                continue
            try:
                found[key] = download_file(base + file_name, cache / file_name, spec.sha256[file_name])
                break
            except _MirrorUnreachable as e:
                dead.add(base)
                reasons.append(str(e))
            except DataError as e:
                reasons.append(str(e))
        else:
            reason = " | ".join(reasons) or "no mirror left to try"
            raise _not_found(name, spec, dirs, partial, f"download failed: {reason}")
    return found


def _not_found(name: str, spec: IdxDataset, dirs: list[Path], partial, reason: str) -> DataError:
    files = ", ".join(f"{stem}[.gz]" for stem in FILES.values())
    lacking = f" ({partial[0]} lacks {', '.join(partial[1])})" if partial else ""
    fix = f"put the four IDX files in --data-dir DIR, $AEZOO_DATA or {cache_dir(name)}"
    if spec.apt_package:
        fix += f", or on Debian/Ubuntu run `apt-get install {spec.apt_package}`"
    where = ", ".join(str(d) for d in dirs)
    return DataError(f"{name}: no folder holds all of {files}{lacking}; looked in {where}; {reason}. To fix: {fix}")


def download_file(url: str, dest, sha256: str, *, timeout: float = TIMEOUT_S) -> Path:
    """Fetch ``url`` to ``dest`` if its SHA-256 matches; on any failure nothing is left behind."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as e:
        raise DataError(f"{dest.parent}: cannot write the download there ({e.strerror or e})") from None
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    size = int(response.headers.get("Content-Length") or 0) or None
                    bar = _progress_bar(size, dest.name)
                    try:
                        while chunk := response.read(1 << 16):
                            digest.update(chunk)
                            out.write(chunk)
                            if bar is not None:
                                bar.update(len(chunk))
                    finally:
                        if bar is not None:
                            bar.close()
            except urllib.error.HTTPError as e:  # the server answered: other files may be there
                raise DataError(f"{url}: HTTP {e.code} {e.reason}") from None
            except urllib.error.URLError as e:
                raise _MirrorUnreachable(f"{url}: unreachable ({e.reason})") from None
            except (OSError, http.client.HTTPException) as e:  # timeouts and broken connections mid-read
                raise _MirrorUnreachable(f"{url}: download failed ({e or type(e).__name__})") from None
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise DataError(f"{url}: SHA-256 mismatch, got {digest.hexdigest()}, expected {sha256}")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _progress_bar(total: int | None, desc: str):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)
