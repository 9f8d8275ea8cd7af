"""What the training engine trains: the contract between ``aezoo.train`` and anything it fits.

It lives below both the models and the engine, so that a trainable thing that is not a family member
(the code prior of the VQ models' second stage, ``nn/priors.py``) obeys it without importing
``models/``, and ``train/`` reads it without knowing any member. ``models/base.Autoencoder`` is a
``Trainable`` with the autoencoder contract on top.

The engine reads:

- ``name`` and ``config`` (a dataclass with ``input_shape``, the shape of one example): both are
  written to the run folder and checked on resume;
- ``training_step(x, y) -> ModelOutput``: ``loss`` is back-propagated once per step, ``terms`` logged;
- ``param_groups()``: what to optimize, one AdamW per group;
- ``on_step(step, total_steps)``, ``on_fit_start(x)``, ``on_fit_end(x)``: progress and data hooks;
- ``needs_labels``: whether ``y`` is passed (the data must then have labels);
- ``train_defaults``: training options the thing needs unless the user gives their own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class ModelOutput:
    loss: torch.Tensor  # scalar
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # named scalars for logging
    x_hat: torch.Tensor | None = None  # (B, *input_shape) reconstruction mean
    z: torch.Tensor | None = None  # (B, *latent_shape) code


@dataclass
class ParamGroup:
    """Parameters a model trains with an optimizer of their own (FactorVAE's discriminator, for instance,
    trains with Adam betas (0.5, 0.9) beside the VAE's). The trainer builds one AdamW per group from
    these settings and never looks at the model's name. A group's loss is the model's business: the
    trainer back-propagates ``out.loss`` once, so a term meant for one group detaches the others' tensors."""

    name: str
    params: list[nn.Parameter]
    lr: float | None = None  # None: the run's --lr; the schedule (warm-up, decay) scales every group alike
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float | None = None  # None: the run's --weight-decay (decoupled; weights with 2+ dims only)


class Trainable(nn.Module):
    """Base of everything ``aezoo.train`` fits. Subclasses implement ``forward(x, y) -> ModelOutput``."""

    name: ClassVar[str] = ""
    needs_labels: ClassVar[bool] = False  # the step reads y (conditional models)
    # training options this thing needs to show its paper's behaviour (e.g. a learning rate or a
    # schedule); ``aezoo.train`` and the CLI use them unless the user gives their own
    train_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, config):
        super().__init__()
        self.config = config

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> ModelOutput:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def training_step(self, x: torch.Tensor, y: torch.Tensor | None = None) -> ModelOutput:
        """One step's loss. Models that train differently (sequences, two stages) override this."""
        return self(x, y)

    def param_groups(self) -> list[ParamGroup]:
        """What the trainer optimizes: one group of every trainable parameter by default. A model with
        parts that train differently returns several groups; together they must hold every trainable
        parameter exactly once."""
        return [ParamGroup("model", [p for p in self.parameters() if p.requires_grad])]

    def on_step(self, step: int, total_steps: int) -> None:
        """Called before each training step: schedules (k-sparse k, capacity C) read progress here."""

    def on_fit_start(self, x: torch.Tensor) -> None:
        """Called once before training with a batch of training data (e.g. data-dependent init)."""

    def on_fit_end(self, x: torch.Tensor) -> None:
        """Called once after training with the training inputs (e.g. fitting an ex-post density to the
        codes, Ghosh et al. 2019); state it sets must live in buffers so the saved model keeps it."""
