"""``aezoo compress`` and ``aezoo decompress``: a learned codec's symbols (``scale_hyperprior``), or a
VQ run's codes entropy-coded with its prior, into an ``.aez`` file, and back."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from ..cli import command
from ..errors import ConfigError, DataError
from . import _inputs


def _compress_args(p):
    p.add_argument("run_dir")
    _inputs.add_input_args(p, "inputs to compress")
    p.add_argument("--out", required=True, help="FILE.aez")
    p.add_argument("--stages", type=int, help="VQ runs: code the first N grids only (RVQ stages: the rate); default all")
    p.add_argument("--device", default="auto")


@command("compress", help="entropy-code inputs into an .aez file with a learned codec's run (scale_hyperprior) or a VQ run and its prior", args=_compress_args)
def compress_cmd(args):
    from ..compress import compress
    from ..runs import atomic_write
    from ..utils import require
    from ._common import open_run

    require("constriction", "compress")
    if not args.out.lower().endswith(".aez"):
        raise ConfigError(f"--out must end in .aez, got {args.out!r}")
    run = open_run(args.run_dir, args.device)
    model = run.model
    items = _inputs.read(args, run)
    x = items.x
    blob = compress(model, x, stages=args.stages, run=str(Path(args.run_dir).resolve()), names=items.sources)
    atomic_write(args.out, blob)
    pixels = x.shape[0] * math.prod(x.shape[2:] if x.dim() == 4 else x.shape[1:])
    raw = x[0].numel() * x.shape[0]  # bytes as 8-bit values
    print(f"wrote {args.out}: {x.shape[0]} inputs in {len(blob)} bytes, {8 * len(blob) / pixels:.4f} bits per pixel "
          f"({raw / len(blob):.1f}x smaller than 8-bit values)")


def _decompress_args(p):
    p.add_argument("file", help="FILE.aez")
    p.add_argument("--run", help="the run that wrote it (default: the run folder the file records)")
    p.add_argument("--out", required=True, help="DIR (one PNG per input) or FILE.npz (x, and the codes)")
    p.add_argument("--scaled", action="store_true", help="vectors and tables: keep the run's scaled values, not the original units")
    p.add_argument("--device", default="auto")


@command("decompress", help="decode an .aez file back to inputs with the run that wrote it", args=_decompress_args)
def decompress_cmd(args):
    from ..compress import decode_grids, decompress_codes, learned, read_header
    from ..models.base import LearnedCodec
    from ..utils import require
    from ._common import open_run

    require("constriction", "compress")
    path = Path(args.file)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    header = read_header(blob, str(path))
    run = args.run or header.run
    if not run:
        raise DataError(f"{path} does not record the run that wrote it: pass --run RUN_DIR")
    if not Path(run).exists():
        raise DataError(f"{path} was written by run {run}, which is not there: pass --run RUN_DIR")
    out = Path(args.out)
    if not out.suffix and out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is a folder that is not empty: choose a new one (the PNGs are written whole or not at all)")
    opened = open_run(run, args.device)
    model, meta = opened.model, opened.meta
    if learned.is_learned(blob):  # a learned codec's symbols (issue 25)
        if not isinstance(model, LearnedCodec):
            raise DataError(f"{path} holds a learned codec's symbols and run {run} is a {model.name!r}: pass --run with the run that wrote it")
        _, z, y = learned.decompress_symbols(model, blob, str(path))
        x = learned.decode_images(model, z, y, tuple(header.input_shape[1:]))
        codes = {"z": z.numpy(), "y": y.numpy()}
        what = "a learned codec's symbols"
    else:
        grids = decompress_codes(model, blob, str(path))
        x = decode_grids(model, grids)
        names = model.grid_names[: len(grids)]
        codes = {("codes" if len(names) == 1 else f"codes_{n}"): g.numpy() for n, g in zip(names, grids)}
        what = f"{len(header.grids)} code grid(s)"
    if not args.scaled:
        from ..data.scaling import to_original_units

        x = to_original_units(x, meta)
    # written whole or not at all (issue 22: a decompress killed midway left a half folder that later
    # trained silently): the .npz through atomic_write, the PNGs in a temporary folder beside --out,
    # renamed to it at the end
    if out.suffix.lower() == ".npz":
        import io

        from ..train.checkpoint import atomic_write

        arrays = {"x": x.numpy().astype(np.float32), **({"sources": np.array(header.names)} if header.names else {}), **codes}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write(out, buf.getvalue())
    elif out.suffix:
        raise ConfigError(f"--out must be a folder or end in .npz, got {args.out!r}")
    else:
        import os
        import secrets
        import shutil

        from PIL import Image

        from ..viz.figures import as_images

        imgs = as_images(x)
        if imgs is None:
            raise DataError(f"inputs of shape {tuple(x.shape[1:])} are not images: use --out FILE.npz")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
        tmp.mkdir()
        try:
            for name, im in zip(output_names(header.names, len(imgs)), imgs):  # the inputs' own names (issue 23)
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im).save(tmp / name)
            os.replace(tmp, out)  # onto a missing or empty folder
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    print(f"wrote {out}: {x.shape[0]} inputs decoded from {what} of {path}", file=sys.stdout)


def output_names(sources, n: int) -> list[str]:
    """PNG names for decoded inputs: each input's source (``new/cat.jpg`` -> ``cat.png``, the folder
    shared by all left out; rows of an array -> ``q.npz[3].png``), else numbered; never outside the
    output folder, never twice."""
    import re
    from pathlib import PurePosixPath

    if not sources or len(sources) != n:
        width = max(6, len(str(n - 1)))
        return [f"{i:0{width}d}.png" for i in range(n)]
    parts = [[p for p in PurePosixPath(s.replace("\\", "/")).parts if p not in ("/", "..", ".")] for s in sources]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    names, seen = [], set()
    for i, p in enumerate(parts):
        stem = "/".join(re.sub(r"[^A-Za-z0-9._\-\[\]]", "_", q) for q in p[common:]) or f"{i}"
        base = stem[: -len(PurePosixPath(stem).suffix)] if PurePosixPath(stem).suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp") else stem
        name = f"{base}.png"
        if name in seen:
            name = f"{base}-{i}.png"
        seen.add(name)
        names.append(name)
    return names
