"""Small helpers used by more than one part of aezoo: optional dependencies, fingerprints of weights,
whether bf16 pays on a device."""
from __future__ import annotations

import hashlib
import importlib
import os
from types import ModuleType

import torch

from .errors import NotSupportedError


def require(module: str, extra: str) -> ModuleType:
    """Import the optional ``module`` (installed by ``pip install "aezoo[extra]"``), or say in one
    line how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise NotSupportedError(f"this needs the optional package {module!r}: pip install \"aezoo[{extra}]\"") from None


def weights_hash(*modules: torch.nn.Module | None) -> str:
    """SHA-256 (hex) of the modules' state: every tensor's name, dtype, shape and bytes, in key order.
    Two models hash alike exactly when they compute alike; None entries are skipped."""
    h = hashlib.sha256()
    for i, module in enumerate(modules):
        if module is None:
            continue
        for name, t in sorted(module.state_dict().items()):
            t = t.detach().to("cpu").contiguous()
            h.update(f"{i}:{name}:{t.dtype}:{tuple(t.shape)};".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def bf16_pays(device: torch.device | str) -> bool:
    """Whether bf16 matmuls run natively, hence faster than fp32, on ``device``: a CUDA GPU with bf16,
    or a CPU with AVX512-BF16 or AMX. Elsewhere bf16 autocast is emulated and slower than fp32
    (benchmarks/README.md, issue 16)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, so probed: absent means no
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def memory_bytes() -> int:
    """This machine's physical memory in bytes (a generous bound for sizes read from files and configs)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX: no bound worth guessing
        return 2**63
