"""Entropy coding of code grids with the model's autoregressive prior, through constriction's range
coder (Bamler 2022, "Understanding Entropy Coding With Asymmetric Numeral Systems (ANS): a
Statistician's Perspective", arXiv:2201.01741; constriction is its library).

Bit-exact decoding is the crux: the decoder computes cell i's distribution from the cells it has
decoded, so the encoder must compute exactly the same numbers. Both therefore run one function,
``cell_probabilities``, on the same inputs and shapes:

- cell by cell, batched over a chunk of ``chunk`` inputs (the chunk size is in the file's header):
  the prior's logits for cell i are read from a pass over the prefix c_<i (plus a placeholder that
  causal attention never reads), exactly as the decoder, which knows only that prefix, computes them;
- on the CPU, in float32, without autocast, with the prior in eval mode and ``THREADS`` torch threads;
- the softmax is taken in float64 and constriction's categorical model quantises it to integer
  frequencies with its "leaky" fixed-point quantisation (24-bit precision), which gives every code a
  non-zero probability, so any code can be coded whatever the prior thinks of it.

What stays machine-dependent is floating-point arithmetic itself: another CPU type or torch build may
round the prior's logits differently. The file keeps a CRC-32 of the codes, so such a decoder reports
the mismatch in one line instead of returning wrong images.

Cost: sum_i i cells of transformer per grid (L(L+1)/2 for L cells), for the encoder as for the
decoder; see benchmarks/README.md for images per second.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from ..utils import require

THREADS = 1  # torch threads while coding; fixed so that both ends take the same code paths
# Once the decoder has read every word of the payload, what is left to decode lives in its 64-bit state:
# a valid file decodes at most ~64 bits of information after that point (58 at most over 300 random
# streams; tests/test_hostile.py holds the property), a file whose header claims more inputs than it
# holds decodes zeros forever (issue 22: "hangs for weeks"). Past this many bits it is refused.
EXHAUSTED_BITS = 96


@contextlib.contextmanager
def deterministic_cpu():
    """Run the prior with a fixed thread count and no autocast; restores the caller's settings."""
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            yield
    finally:
        torch.set_num_threads(before)


def conditioning(flat: list[torch.Tensor], g: int) -> torch.Tensor | None:
    """What grid g's prior is conditioned on, as ``CodePrior.nll`` passes it: the previous grid's codes."""
    return flat[g - 1] if g else None


def cell_probabilities(grid_prior, prefix: torch.Tensor, cond: torch.Tensor | None) -> np.ndarray:
    """(B, i) codes of cells < i -> (B, K) float64 probabilities of cell i. Encoder and decoder call
    exactly this, with equal tensors, so they compute equal numbers."""
    probe = torch.cat([prefix, prefix.new_zeros(prefix.shape[0], 1)], 1)  # cell i's logits do not read cell i
    logits = grid_prior.logits(probe, cond)[:, -1]  # (B, K) float32
    return torch.softmax(logits.double(), -1).numpy()


def _model_family():
    constriction = require("constriction", "compress")
    return constriction, constriction.stream.model.Categorical(perfect=False)


def encode(prior, grids: list[torch.Tensor], chunk: int) -> bytes:
    """Code grids [(N, h_g, w_g) int64], coarsest first, with ``prior`` -> the range coder's payload."""
    constriction, family = _model_family()
    encoder = constriction.stream.queue.RangeEncoder()
    n = grids[0].shape[0]
    with deterministic_cpu():
        for start in range(0, n, chunk):
            flat = [g[start : start + chunk].flatten(1).long().contiguous() for g in grids]  # each (B, L_g)
            for gi, (gp, c) in enumerate(zip(prior.grids, flat)):
                cond = conditioning(flat, gi)
                for i in range(c.shape[1]):
                    p = cell_probabilities(gp, c[:, :i].contiguous(), cond)
                    encoder.encode(c[:, i].numpy().astype(np.int32), family, p)
    return encoder.get_compressed().astype("<u4").tobytes()


def decode(prior, payload: bytes, count: int, shapes: list[tuple[int, int]], chunk: int) -> list[torch.Tensor]:
    """Payload -> code grids [(count, h_g, w_g) int64], the inverse of ``encode`` for the same prior."""
    constriction, family = _model_family()
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
    out: list[list[torch.Tensor]] = [[] for _ in shapes]
    after_end = 0.0  # bits of information decoded after the payload's last word was read
    with deterministic_cpu():
        for start in range(0, count, chunk):
            b = min(chunk, count - start)
            flat: list[torch.Tensor] = []
            for gi, ((h, w), gp) in enumerate(zip(shapes, prior.grids)):
                cond = conditioning(flat, gi)
                c = torch.zeros(b, 0, dtype=torch.long)
                for _ in range(h * w):
                    p = cell_probabilities(gp, c, cond)
                    exhausted = decoder.maybe_exhausted()
                    sym_np = decoder.decode(family, p)
                    if exhausted:  # each code costs at least its quantised probability, >= 2**-24
                        after_end -= float(np.log2(np.maximum(p[np.arange(b), sym_np], 2.0**-24)).sum())
                        if after_end > EXHAUSTED_BITS:
                            raise ValueError(f"the payload ends before the {count} inputs its header counts (at input {start})")
                    sym = torch.from_numpy(sym_np.astype(np.int64))
                    c = torch.cat([c, sym[:, None]], 1)
                flat.append(c)
                out[gi].append(c.view(b, h, w))
    return [torch.cat(parts) for parts in out]
