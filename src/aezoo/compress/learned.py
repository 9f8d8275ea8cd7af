"""Files of a learned image codec (a ``LearnedCodec``, e.g. the scale hyperprior): its integer symbols,
range-coded with its own entropy model through constriction, all values of a kind in one call.

    blob = aezoo.compress(codec, x)        # x (N, C, H, W) of any H, W
    x_hat = aezoo.decompress(codec, blob)

Order in the payload (constriction's queue range coder, first in first out): the hyper-latents z
channel by channel, each with that channel's fixed table (``CodingTables.z_pmf``, a categorical with
constriction's leaky quantisation), then every latent at once with a quantized Gaussian of mean 0 and
the scale its index picks in ``scale_table``.

Bit-exact decoding, by construction: the decoder needs, for each latent, the same scale as the
encoder. The scale comes from z alone (which the file holds), through the model's integer
hyper-decoder (``entropy_parameters``, exact arithmetic: ``nn/integer.py``) and a stored table, so the
probabilities are equal bits on every machine, whatever the thread count, device or autocast the file
was written with. Only the latents' values depend on where they were computed, and the file holds
them. A CRC-32 of the symbols still guards against a decoder bug.

Layout (little-endian), format version 1:

    magic "AEZL" | version u8 | model hash 8 bytes (SHA-256 of the model's weights, tables included)
    | count u32 | input C u8, H u16, W u16
    | z: channels u16, h u16, w u16, symbols K u32 | y: the same
    | CRC-32 of the symbols u32 | CRC-32 of the rest of the file u32 | payload bytes u32
    | model name, run folder, input names (as ``container.pack_tail``) | payload: 32-bit words
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError
from ..utils import require, weights_hash
from . import container

MAGIC = b"AEZL"
VERSION = 1
READS = (1,)
BATCH = 64  # images per pass of the transforms
_FIXED = struct.Struct("<4sB8sIBHH")  # magic, version, hash, count, C, H, W
_BLOCK = struct.Struct("<HHHI")  # channels, h, w, K


@dataclass
class Header:
    model_hash: bytes
    count: int
    input_shape: tuple[int, int, int]  # (C, H, W) of every input
    blocks: tuple[tuple[int, int, int, int], tuple[int, int, int, int]]  # (channels, h, w, K) of z and y
    codes_crc: int
    model: str
    run: str
    names: tuple[str, ...] = ()
    version: int = VERSION

    def _head(self) -> bytes:
        c, h, w = self.input_shape
        return _FIXED.pack(MAGIC, self.version, self.model_hash, self.count, c, h, w) + b"".join(_BLOCK.pack(*b) for b in self.blocks)


def is_learned(blob: bytes) -> bool:
    return blob[: len(MAGIC)] == MAGIC


def fingerprint(model) -> bytes:
    return bytes.fromhex(weights_hash(model))[:8]


def _crc(z: torch.Tensor, y: torch.Tensor) -> int:
    return container.crc32(z.numpy(), y.numpy())


def pack(header: Header, payload: bytes) -> bytes:
    head, tail = header._head(), container.pack_tail(header.model, header.run, header.names)
    checksum = zlib.crc32(payload, zlib.crc32(tail, zlib.crc32(head + struct.pack("<I", header.codes_crc))))
    return head + struct.pack("<III", header.codes_crc, checksum, len(payload)) + tail + payload


def unpack(blob: bytes, where: str = "input") -> tuple[Header, bytes]:
    """(header, payload), or a one-line DataError naming what is wrong with the file."""
    if not is_learned(blob):
        raise DataError(f"{where}: not a learned-codec .aez file (no AEZL header)")
    if len(blob) < _FIXED.size + 2 * _BLOCK.size + 12:
        raise DataError(f"{where}: truncated in its header ({len(blob)} bytes)")
    _, version, mhash, count, c, h, w = _FIXED.unpack_from(blob)
    if version not in READS:
        raise DataError(f"{where}: learned-codec format version {version}; this aezoo reads {', '.join(map(str, READS))} (a newer aezoo wrote it?)")
    pos = _FIXED.size
    blocks = tuple(_BLOCK.unpack_from(blob, pos + i * _BLOCK.size) for i in range(2))
    pos += 2 * _BLOCK.size
    head = blob[:pos]
    codes_crc, checksum, payload_len = struct.unpack_from("<III", blob, pos)
    pos += 12
    tail_start = pos
    try:
        name, run, names, pos = container.read_tail(blob, pos)
    except (struct.error, UnicodeDecodeError, ValueError, TypeError, RecursionError):
        raise DataError(f"{where}: truncated or corrupt header") from None
    payload = blob[pos:]
    if len(payload) != payload_len:
        raise DataError(f"{where}: truncated: {len(payload)} of its {payload_len} payload bytes" if len(payload) < payload_len
                        else f"{where}: corrupt: {len(payload) - payload_len} bytes after the payload")
    if zlib.crc32(payload, zlib.crc32(blob[tail_start:pos], zlib.crc32(head + struct.pack("<I", codes_crc)))) != checksum:
        raise DataError(f"{where}: corrupt: the file does not match its checksum")
    if count < 1 or c < 1 or h < 1 or w < 1 or payload_len % 4:
        raise DataError(f"{where}: corrupt header (count {count}, input {c}x{h}x{w})")
    if names and (len(names) != count or not all(isinstance(v, str) for v in names)):
        raise DataError(f"{where}: corrupt header ({len(names)} names for {count} inputs)")
    for ch, bh, bw, k in blocks:
        if min(ch, bh, bw) < 1 or not 2 <= k <= 2**container.PRECISION:
            raise DataError(f"{where}: corrupt header (a block of {ch}x{bh}x{bw} symbols of {k} values)")
    # each symbol costs at least min_bits(K) (leaky quantisation): refuse a count the payload cannot hold
    # before anything is allocated (issue 22's bound, for this kind of file)
    per_input = sum(ch * bh * bw * container.min_bits(k) for ch, bh, bw, k in blocks)
    if count * per_input > 8 * payload_len + container.SLACK_BITS:
        raise DataError(f"{where}: corrupt header: {count} inputs need at least {count * per_input:.0f} bits, and its payload holds {8 * payload_len}")
    return Header(mhash, count, (c, h, w), blocks, codes_crc, name, run, tuple(names), version), payload


def _blocks(model, size: tuple[int, int]):
    tables = model.coding_tables()
    zs, ys = model.symbol_shapes(size)
    return (tuple(zs) + (2 * tables.z_radius + 1,), tuple(ys) + (2 * tables.y_radius + 1,))


def _images(model, x) -> torch.Tensor:
    x = torch.as_tensor(x if isinstance(x, torch.Tensor) else np.asarray(x)).float()
    c = model.config.input_shape[0]
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != c:
        raise DataError(f"inputs have shape {tuple(x.shape[1:])}; model {model.name!r} codes images of {c} channel(s), any height and width")
    if x.shape[0] == 0:
        raise DataError("nothing to compress: no inputs")
    if not (1 <= x.shape[2] <= 65535 and 1 <= x.shape[3] <= 65535):
        raise DataError(f"images of {x.shape[2]}x{x.shape[3]} pixels: at most 65535 on a side")
    if x.shape[0] >= 2**32:
        raise DataError(f"at most {2**32 - 1} inputs per file, got {x.shape[0]}")
    return x


@torch.no_grad()
def symbols(model, x: torch.Tensor, batch: int = BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, y) of images ``x``, int64 on the CPU, in batches."""
    model.eval()
    parts = [model.symbols(x[i : i + batch].to(model.device)) for i in range(0, x.shape[0], batch)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _scales(model, z: torch.Tensor, y_size, batch: int = BATCH) -> np.ndarray:
    """Each latent's scale, float64, flattened as the latents are: from z alone (exact arithmetic)."""
    table = model.coding_tables().scale_table
    index = torch.cat([model.entropy_parameters(z[i : i + batch], y_size)[0] for i in range(0, z.shape[0], batch)])
    return table[index.numpy().ravel()]


def _constriction():
    return require("constriction", "compress")


def encode(model, z: torch.Tensor, y: torch.Tensor) -> bytes:
    """Symbols -> the range coder's payload."""
    constriction = _constriction()
    tables = model.coding_tables()
    encoder = constriction.stream.queue.RangeEncoder()
    for c in range(z.shape[1]):
        encoder.encode(z[:, c].numpy().ravel().astype(np.int32) + tables.z_radius,
                       constriction.stream.model.Categorical(tables.z_pmf[c], perfect=False))
    scales = _scales(model, z, tuple(y.shape[-2:]))
    encoder.encode(y.numpy().ravel().astype(np.int32), constriction.stream.model.QuantizedGaussian(-tables.y_radius, tables.y_radius),
                   np.zeros_like(scales), scales)
    return encoder.get_compressed().astype("<u4").tobytes()


def decode(model, payload: bytes, count: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Payload -> (z, y) symbols of ``count`` images of ``size``: the inverse of ``encode``."""
    constriction = _constriction()
    tables = model.coding_tables()
    (cz, hz, wz), (m, hy, wy) = model.symbol_shapes(size)
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
    z = np.empty((cz, count * hz * wz), np.int64)
    for c in range(cz):
        z[c] = decoder.decode(constriction.stream.model.Categorical(tables.z_pmf[c], perfect=False), count * hz * wz)
    z_t = torch.from_numpy(z - tables.z_radius).view(cz, count, hz, wz).transpose(0, 1).contiguous()
    scales = _scales(model, z_t, (hy, wy))
    y = decoder.decode(constriction.stream.model.QuantizedGaussian(-tables.y_radius, tables.y_radius), np.zeros_like(scales), scales)
    return z_t, torch.from_numpy(y.astype(np.int64)).view(count, m, hy, wy)


def compress(model, x, *, run: str = "", names=()) -> bytes:
    """The bytes of an ``.aez`` file holding images ``x`` (N, C, H, W), any H and W."""
    x = _images(model, x)
    size = tuple(x.shape[-2:])
    z, y = symbols(model, x)
    payload = encode(model, z, y)
    header = Header(fingerprint(model), x.shape[0], tuple(x.shape[1:]), _blocks(model, size), _crc(z, y), model.name, str(run),
                    tuple(map(str, names)))
    return pack(header, payload)


def decompress_symbols(model, blob: bytes, where: str = "input") -> tuple[Header, torch.Tensor, torch.Tensor]:
    header, payload = unpack(blob, where)
    if header.model_hash != fingerprint(model):
        raise DataError(f"{where} was compressed with another model: {header.model!r} (weights {header.model_hash.hex()}), "
                        f"not this {model.name!r} ({fingerprint(model).hex()}); decompress it with the run that wrote it")
    c, h, w = header.input_shape
    if c != model.config.input_shape[0] or header.blocks != _blocks(model, (h, w)):
        raise DataError(f"{where}: its symbol blocks {header.blocks} for {c}x{h}x{w} images do not fit model {model.name!r}")
    try:
        z, y = decode(model, payload, header.count, (h, w))
    except (ValueError, RuntimeError, AssertionError) as e:  # constriction refuses a payload that is invalid
        raise DataError(f"{where}: corrupt payload ({e})") from None
    if _crc(z, y) != header.codes_crc:
        raise DataError(f"{where}: the decoded symbols fail their checksum (a corrupt payload)")
    return header, z, y


@torch.no_grad()
def decode_images(model, z: torch.Tensor, y: torch.Tensor, size: tuple[int, int], batch: int = BATCH) -> torch.Tensor:
    model.eval()
    return torch.cat([model.decode_symbols(z[i : i + batch], y[i : i + batch], size).float().cpu() for i in range(0, z.shape[0], batch)])


def decompress(model, blob: bytes, where: str = "input") -> torch.Tensor:
    """The images an ``.aez`` file of a learned codec stands for: (N, C, H, W) on the CPU."""
    header, z, y = decompress_symbols(model, blob, where)
    return decode_images(model, z, y, header.input_shape[1:])


def file_bpp(blob: bytes) -> float:
    header, _ = unpack(blob)
    return 8 * len(blob) / (header.count * header.input_shape[1] * header.input_shape[2])


def bits_estimate(model, z: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    """The entropy model's bits for all symbols (what the payload should cost)."""
    return float(sum(model.estimated_bits(z[i : i + batch], y[i : i + batch]).sum() for i in range(0, z.shape[0], batch)))


__all__ = ["Header", "compress", "decode", "decode_images", "decompress", "decompress_symbols", "encode", "file_bpp",
           "is_learned", "pack", "symbols", "unpack"]
