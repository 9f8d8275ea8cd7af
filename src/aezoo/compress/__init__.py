"""Compression with a model's codes into ``.aez`` files: the code grids of a VQ model (a ``CodeGridModel``),
entropy-coded with the run's trained prior (``aezoo train-prior``), or the symbols of a learned image
codec (a ``LearnedCodec``: the scale hyperprior) with its own entropy model (``learned``, issue 25).
Both decode bit-exactly.

    blob = aezoo.compress(model, x)            # bytes: header + range-coded codes
    x_hat = aezoo.decompress(model, blob)      # (N, *input_shape): the model's decoding of the codes

``stages`` codes only the first grids where the model decodes them alone (residual VQ: the rate).
constriction is the optional extra ``compress``. ``coder`` holds the entropy coder and its
determinism; ``container`` the file format.

(Top-level ``aezoo.compress`` is the function; import this package's parts as
``from aezoo.compress.coder import ...``.)
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import DataError, NotSupportedError
from ..utils import weights_hash
from . import container

CHUNK = 256  # inputs per coding batch (the prior's batch shape, recorded in each file)

__all__ = ["CHUNK", "check_model", "compress", "decompress", "decompress_codes", "file_bits", "grid_shapes", "read_header"]


def check_model(model) -> None:
    """One-line errors unless ``model`` can entropy-code its codes: a learned codec, or discrete codes
    and a trained prior."""
    from ..models.base import CodeGridModel, LearnedCodec
    from ..models.code_prior import UnreadablePrior
    from ..registry import get, list_models

    if isinstance(model, LearnedCodec):
        return
    if not isinstance(model, CodeGridModel):
        codecs = ", ".join(n for n in list_models() if issubclass(get(n), LearnedCodec))
        grid_models = ", ".join(n for n in list_models() if issubclass(get(n), CodeGridModel))
        raise NotSupportedError(f"model {model.name!r} has continuous codes and no entropy model; compression takes a learned codec "
                                f"({codecs}) or discrete code grids with their prior ({grid_models})")
    if model.prior is None:
        raise NotSupportedError(f"model {model.name!r} compresses with the prior over its codes and none is trained: run `aezoo train-prior RUN_DIR` first")
    if isinstance(model.prior, UnreadablePrior):
        raise model.prior.error


def fingerprint(model) -> bytes:
    """8 bytes of the SHA-256 of the model's and its prior's weights: what a file must be decoded with."""
    return bytes.fromhex(weights_hash(model, model.prior))[:8]


def cpu_prior(model):
    """The prior in eval mode on the CPU (a copy when it lives elsewhere): coding always runs there."""
    import copy

    prior = model.prior
    if prior.device.type != "cpu":
        prior = copy.deepcopy(prior).cpu()
    return prior.eval()


def grid_shapes(model) -> list[tuple[int, int, int]]:
    """(h, w, K) of each of the model's code grids, coarsest first."""
    with torch.no_grad():
        grids = model.code_grids(torch.zeros(1, *model.config.input_shape, device=model.device))
    return [(g.shape[1], g.shape[2], q.num_codes) for g, q in zip(grids, model.quantizers)]


def _inputs(model, x) -> torch.Tensor:
    x = torch.as_tensor(x if isinstance(x, torch.Tensor) else np.asarray(x)).float()
    shape = tuple(model.config.input_shape)
    if tuple(x.shape) == shape:
        x = x.unsqueeze(0)
    if tuple(x.shape[1:]) != shape:
        raise DataError(f"inputs have shape {tuple(x.shape[1:])}; model {model.name!r} takes {shape}")
    if x.shape[0] == 0:
        raise DataError("nothing to compress: no inputs")
    return x


@torch.no_grad()
def code_grids(model, x: torch.Tensor, batch_size: int = 1024) -> list[torch.Tensor]:
    """The model's code grids of ``x``, on the CPU: [(N, h_g, w_g) int64], coarsest first."""
    model.eval()
    parts = [model.code_grids(x[i : i + batch_size].to(model.device)) for i in range(0, x.shape[0], batch_size)]
    return [torch.cat([p[g] for p in parts]).cpu().long() for g in range(len(parts[0]))]


@torch.no_grad()
def decode_grids(model, grids: list[torch.Tensor], batch_size: int = CHUNK) -> torch.Tensor:
    """Images (N, *input_shape) on the CPU from code grids, in batches."""
    model.eval()
    n = grids[0].shape[0]
    return torch.cat([model.decode_codes([g[i : i + batch_size].to(model.device) for g in grids]).cpu() for i in range(0, n, batch_size)])


def compress(model, x, *, stages: int | None = None, chunk: int = CHUNK, run: str = "", names=()) -> bytes:
    """Entropy-code ``model``'s codes of inputs ``x`` (N, *input_shape) with its prior: the bytes of
    an ``.aez`` file. ``stages``: how many leading code grids to keep (RVQ: the rate), default all;
    ``run``: the run folder to record for ``aezoo decompress``; ``names``: each input's source, restored
    as file names by ``aezoo decompress`` (issue 23)."""
    from ..models.base import LearnedCodec
    from . import coder, learned

    check_model(model)
    if isinstance(model, LearnedCodec):
        if stages is not None:
            raise NotSupportedError(f"model {model.name!r} is a learned codec: its rate is set by training (lmbda), not --stages")
        return learned.compress(model, x, run=run, names=names)
    allowed = model.grid_prefixes()
    stages = max(allowed) if stages is None else int(stages)
    if stages not in allowed:
        raise NotSupportedError(f"model {model.name!r} decodes {', '.join(map(str, allowed))} code grid(s), not {stages}" + (" (RVQ stages: --set quantizer=rvq)" if len(allowed) == 1 else ""))
    if not 1 <= chunk <= 65535:
        raise ValueError(f"chunk must be in 1..65535, got {chunk}")
    x = _inputs(model, x)
    if x.shape[0] >= 2**32:
        raise DataError(f"at most {2**32 - 1} inputs per file, got {x.shape[0]}")
    grids = code_grids(model, x)[:stages]
    prior = cpu_prior(model)
    payload = coder.encode(prior, grids, chunk)
    shapes = grid_shapes(model)[:stages]
    header = container.Header(fingerprint(model), x.shape[0], chunk, shapes, tuple(model.config.input_shape),
                              container.crc32(*[g.numpy() for g in grids]), model.name, str(run), names=tuple(map(str, names)))
    return container.pack(header, payload)


def read_header(blob: bytes, where: str = "input"):
    """The header of either kind of ``.aez`` file (``container.Header`` or ``learned.Header``)."""
    from . import learned

    return (learned.unpack if learned.is_learned(blob) else container.unpack)(blob, where)[0]


def decompress_codes(model, blob: bytes, where: str = "input") -> list[torch.Tensor]:
    """The code grids an ``.aez`` file holds, exactly as they were coded: [(N, h_g, w_g) int64]."""
    from . import coder, learned

    if learned.is_learned(blob):
        raise DataError(f"{where} holds a learned codec's symbols, not code grids: decompress it with aezoo.decompress")
    header, payload = container.unpack(blob, where)
    check_model(model)
    if header.model_hash != fingerprint(model):
        raise DataError(f"{where} was compressed with another model: {header.model!r} (weights and prior {header.model_hash.hex()}), "
                        f"not this {model.name!r} ({fingerprint(model).hex()}); decompress it with the run that wrote it")
    shapes = grid_shapes(model)
    n = len(header.grids)
    if header.grids != shapes[:n] or n not in model.grid_prefixes() or tuple(header.input_shape) != tuple(model.config.input_shape):
        raise DataError(f"{where}: its code grids {header.grids} and input shape {header.input_shape} do not fit model {model.name!r}")
    prior = cpu_prior(model)
    try:
        grids = coder.decode(prior, payload, header.count, [(h, w) for h, w, _ in header.grids], header.chunk)
    except (ValueError, RuntimeError, AssertionError) as e:  # constriction refuses a payload that runs out or is invalid
        raise DataError(f"{where}: corrupt payload ({e})") from None
    if container.crc32(*[g.numpy() for g in grids]) != header.codes_crc:
        raise DataError(f"{where}: the decoded codes fail their checksum: this machine's prior computed other probabilities than the "
                        "one that wrote the file (another CPU type or torch build)")
    return grids


def decompress(model, blob: bytes, where: str = "input") -> torch.Tensor:
    """The inputs an ``.aez`` file stands for, as the model decodes its codes: (N, *input_shape) on the CPU."""
    from ..models.base import LearnedCodec
    from . import learned

    if learned.is_learned(blob) != isinstance(model, LearnedCodec):
        kind = "a learned codec's symbols" if learned.is_learned(blob) else "code grids"
        raise DataError(f"{where} holds {kind}; model {model.name!r} cannot decode it: decompress it with the run that wrote it")
    if learned.is_learned(blob):
        return learned.decompress(model, blob, where)
    return decode_grids(model, decompress_codes(model, blob, where))


def file_bits(blob: bytes) -> tuple[int, int]:
    """(payload bits, header bits) of an ``.aez`` file."""
    from . import learned

    header, payload = (learned.unpack if learned.is_learned(blob) else container.unpack)(blob)
    return 8 * len(payload), 8 * (len(blob) - len(payload))


def bits_per_pixel(blob: bytes, input_shape) -> float:
    """File bits per input pixel (all channels of one pixel count once), header included."""
    header = read_header(blob)
    pixels = header.count * math.prod(input_shape[1:] if len(input_shape) == 3 else input_shape)
    return 8 * len(blob) / pixels
