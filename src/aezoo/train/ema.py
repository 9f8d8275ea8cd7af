"""An exponential moving average of the weights (``--ema-decay``), as diffusion and VQ training
recipes evaluate it: after optimizer step t, ``ema <- d_t * ema + (1 - d_t) * weights`` with
``d_t = min(decay, (1 + t) / (10 + t))`` (TensorFlow's ExponentialMovingAverage with ``num_updates``:
early steps do not drag the average towards the random initialisation). Floating-point buffers (VQ
codebook statistics, normalisation statistics) are averaged too; integer buffers are the model's own.
A pure function of the step, so a resumed run continues the average exactly.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn


class WeightEMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        state = model.state_dict()
        self.names = [k for k, v in state.items() if v.is_floating_point()]
        self.live = [state[k] for k in self.names]  # views of the model's tensors (load_state_dict copies in place)
        self.shadow = [v.detach().clone() for v in self.live]

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """After optimizer step ``step`` (0-based)."""
        torch._foreach_lerp_(self.shadow, self.live, 1.0 - self.decay_at(step))

    def tensors(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.shadow))

    @torch.no_grad()
    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, s in zip(self.names, self.shadow):
            s.copy_(tensors[name])

    @contextlib.contextmanager
    def swapped_in(self, model: nn.Module):
        """The model holds the EMA weights inside the block and its own weights again after it."""
        with torch.no_grad():
            saved = [v.clone() for v in self.live]
            torch._foreach_copy_(self.live, self.shadow)
        try:
            yield model
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.live, saved)
