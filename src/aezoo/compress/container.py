"""The ``.aez`` container: a small versioned binary header, then the entropy coder's payload.

Layout (little-endian), format version 1:

    magic "AEZC" | version u8 | model hash 8 bytes (SHA-256 of the model's and the prior's weights)
    | count u32 (inputs) | chunk u16 (inputs per coding batch: the prior runs on exactly these shapes)
    | grids u8, then per grid: h u16, w u16, K u32 | input ndim u8, then each size u16
    | CRC-32 of the codes u32 | CRC-32 of the rest of the file u32 | payload bytes u32
    | model name (u8 length + UTF-8) | run folder (u16 length + UTF-8, may be empty)
    | version 2 only: the inputs' names (u32 length + UTF-8 JSON list, may be empty; issue 23:
      ``aezoo decompress`` restores the file names)
    | payload: the range coder's 32-bit words

Version 1 files (no names) still read.

``grids`` is how many leading code grids the file holds (for residual VQ, the stages: the rate).
The codes' CRC is checked after decoding, so a decoder whose prior computed different numbers (another
CPU or torch build) says so instead of returning wrong images.
"""
from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from ..nn.entropy import CODER_PRECISION

MAGIC = b"AEZC"
VERSION = 2
READS = (1, 2)  # versions this aezoo reads
PRECISION = CODER_PRECISION  # bits of the range coder's fixed-point probabilities (constriction's default for the queue coder)
SLACK_BITS = 64  # what a range coder's flush may add beyond the codes' information
_FIXED = struct.Struct("<4sB8sIHB")  # magic, version, hash, count, chunk, grids


@dataclass
class Header:
    model_hash: bytes  # 8 bytes
    count: int
    chunk: int
    grids: list[tuple[int, int, int]]  # (h, w, K) of each coded grid, coarsest first
    input_shape: tuple[int, ...]
    codes_crc: int
    model: str
    run: str
    version: int = VERSION
    names: tuple[str, ...] = ()  # each input's source (version 2)

    def _head(self) -> bytes:
        out = [_FIXED.pack(MAGIC, self.version, self.model_hash, self.count, self.chunk, len(self.grids))]
        out += [struct.pack("<HHI", h, w, k) for h, w, k in self.grids]
        out.append(struct.pack("<B", len(self.input_shape)) + b"".join(struct.pack("<H", d) for d in self.input_shape))
        return b"".join(out)

    def _tail(self) -> bytes:
        return pack_tail(self.model, self.run, self.names, with_names=self.version >= 2)


def pack_tail(model: str, run: str, names: tuple[str, ...], with_names: bool = True) -> bytes:
    """The model name, the run folder and (``with_names``) the inputs' names, as both file kinds end
    their headers (the learned codec's, ``compress/learned.py``, too)."""
    name, run_b = model.encode()[:255], run.encode()[:65535]
    out = struct.pack("<B", len(name)) + name + struct.pack("<H", len(run_b)) + run_b
    if with_names:
        names_b = json.dumps(list(names)).encode() if names else b""
        out += struct.pack("<I", len(names_b)) + names_b
    return out


def read_tail(blob: bytes, pos: int, with_names: bool = True) -> tuple[str, str, tuple[str, ...], int]:
    """(model, run, names, end) read from ``pos``: the inverse of ``pack_tail``; raises struct.error,
    UnicodeDecodeError or ValueError on a cut or garbled tail."""
    (n,) = struct.unpack_from("<B", blob, pos)
    name = blob[pos + 1 : pos + 1 + n].decode()
    pos += 1 + n
    (n,) = struct.unpack_from("<H", blob, pos)
    run = blob[pos + 2 : pos + 2 + n].decode()
    pos += 2 + n
    names: tuple[str, ...] = ()
    if with_names:
        (n,) = struct.unpack_from("<I", blob, pos)
        if pos + 4 + n > len(blob):
            raise struct.error("names past the end")
        names = tuple(json.loads(blob[pos + 4 : pos + 4 + n])) if n else ()
        pos += 4 + n
    return name, run, names, pos


def crc32(*arrays: np.ndarray) -> int:
    c = 0
    for a in arrays:
        c = zlib.crc32(np.ascontiguousarray(a, dtype="<i4").tobytes(), c)
    return c


def pack(header: Header, payload: bytes) -> bytes:
    """The file: header, then payload; its checksum covers every byte but its own four."""
    head, tail = header._head(), header._tail()
    checksum = zlib.crc32(payload, zlib.crc32(tail, zlib.crc32(head + struct.pack("<I", header.codes_crc))))
    return head + struct.pack("<III", header.codes_crc, checksum, len(payload)) + tail + payload


def unpack(blob: bytes, where: str = "input") -> tuple[Header, bytes]:
    """(header, payload) of a container, or a one-line DataError naming what is wrong with it."""
    if len(blob) < len(MAGIC) or blob[: len(MAGIC)] != MAGIC:
        raise DataError(f"{where}: not an aezoo compressed file (no AEZC header)")
    if len(blob) < _FIXED.size:
        raise DataError(f"{where}: truncated in its header ({len(blob)} bytes)")
    _, version, mhash, count, chunk, n_grids = _FIXED.unpack_from(blob)
    if version not in READS:
        raise DataError(f"{where}: format version {version}; this aezoo reads versions {', '.join(map(str, READS))} (a newer aezoo wrote it?)")
    pos = _FIXED.size
    try:
        grids = []
        for _ in range(n_grids):
            grids.append(struct.unpack_from("<HHI", blob, pos))
            pos += 8
        (ndim,) = struct.unpack_from("<B", blob, pos)
        shape = struct.unpack_from(f"<{ndim}H", blob, pos + 1)
        pos += 1 + 2 * ndim
        head = blob[:pos]
        codes_crc, checksum, payload_len = struct.unpack_from("<III", blob, pos)
        pos += 12
        tail_start = pos
        name, run, names, pos = read_tail(blob, pos, with_names=version >= 2)
    except (struct.error, UnicodeDecodeError, ValueError, TypeError, RecursionError):  # ValueError covers JSONDecodeError
        raise DataError(f"{where}: truncated or corrupt header") from None
    payload = blob[pos:]
    if len(payload) < payload_len:
        raise DataError(f"{where}: truncated: {len(payload)} of its {payload_len} payload bytes")
    if len(payload) > payload_len:
        raise DataError(f"{where}: corrupt: {len(payload) - payload_len} bytes after the payload")
    if zlib.crc32(payload, zlib.crc32(blob[tail_start:pos], zlib.crc32(head + struct.pack("<I", codes_crc)))) != checksum:
        raise DataError(f"{where}: corrupt: the file does not match its checksum")
    if count < 1 or chunk < 1 or n_grids < 1 or payload_len % 4:
        raise DataError(f"{where}: corrupt header (count {count}, chunk {chunk}, grids {n_grids})")
    if names and (len(names) != count or not all(isinstance(v, str) for v in names)):
        raise DataError(f"{where}: corrupt header ({len(names)} names for {count} inputs)")
    _check_sizes(where, count, grids, 8 * payload_len)
    return Header(mhash, count, chunk, [tuple(g) for g in grids], tuple(shape), codes_crc, name, run, version, names), payload


def min_bits(k: int) -> float:
    """The fewest bits one cell of K codes can cost: the coder's "leaky" quantisation gives each of the
    other K - 1 codes at least 1 / 2**PRECISION, so no code is likelier than 1 - (K - 1) / 2**PRECISION."""
    return -math.log2(1 - (k - 1) / 2**PRECISION)


def _check_sizes(where: str, count: int, grids: list[tuple[int, int, int]], payload_bits: int) -> None:
    """Refuse, before anything is allocated or decoded, a header whose sizes its payload cannot hold
    (issue 22: a 90-byte file claiming 2**32 - 1 inputs decoded for weeks). Every cell costs at least
    ``min_bits(K)``, so the payload bounds count x cells; a file that passes decodes in time and memory
    proportional to its payload's capacity, and its codes' CRC catches the rest."""
    for h, w, k in grids:
        if h < 1 or w < 1 or not 2 <= k <= 2**PRECISION:
            raise DataError(f"{where}: corrupt header (a code grid of {h}x{w} cells of {k} codes)")
    per_input = sum(h * w * min_bits(k) for h, w, k in grids)
    if count * per_input > payload_bits + SLACK_BITS:
        raise DataError(f"{where}: corrupt header: {count} inputs of {sum(h * w for h, w, _ in grids)} code cells need at least "
                        f"{count * per_input:.0f} bits, and its payload holds {payload_bits}")
