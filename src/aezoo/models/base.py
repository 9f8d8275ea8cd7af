"""The small base every family member shares: the output contract the trainer reads, the common
config fields, and the hooks through which a model that trains differently says so.

The contract (what the trainer, evaluation, CLI and contract tests rely on):

- ``forward(x, y=None) -> ModelOutput``: ``loss`` is the scalar to minimise (per example, averaged
  over the batch), ``terms`` the named scalars to log; ``x_hat`` the reconstruction in data space.
- ``encode(x, y=None)`` -> the code used as an embedding (deterministic: the posterior mean for
  variational models), ``decode(z, y=None)`` -> the mean of p(x|z) in data space.
- ``sample(n, y=None)`` for generative models (``generative = True``).
- Hooks with defaults here: ``training_step``, ``param_groups``, ``on_step``, ``eval_metrics``, ``latent_shape``.
- ``claims``: what the member's paper says it does, declared as data (``Claim``); the run report
  shows the one that applies above the metrics, and ``tests/test_defaults.py`` checks it with the
  defaults the CLI builds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal

import torch
from torch import nn

from ..config import check
from ..errors import NotSupportedError


@dataclass
class ModelOutput:
    loss: torch.Tensor  # scalar
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # named scalars for logging
    x_hat: torch.Tensor | None = None  # (B, *input_shape) reconstruction mean
    z: torch.Tensor | None = None  # (B, *latent_shape) code


@dataclass(frozen=True)
class Claim:
    """A paper's claim about its model, as a run with the defaults should show it.

    ``statement`` is one sentence; ``{field}`` placeholders are filled from the model's config.
    ``metrics`` are the evaluation keys that measure it, ``figure`` the registered figure that shows
    it (``None``: the metrics alone). ``when`` restricts the claim to configs it holds for (e.g. one
    penalty of two); ``reference`` is the value the figure marks (rho, k), from the config."""

    paper: str
    statement: str
    metrics: tuple[str, ...]
    figure: str | None = None
    when: Callable[[Any], bool] | None = None
    reference: Callable[[Any], float] | None = None

    def applies(self, config) -> bool:
        return self.when is None or bool(self.when(config))

    def describe(self, config) -> str:
        return self.statement.format(**{f: getattr(config, f) for f in config.__dataclass_fields__})


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


@dataclass
class ModelConfig:
    """Fields every family member has. Model configs add their own (one field per paper knob)."""

    input_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 16
    arch: Literal["mlp", "conv", "resnet"] = "mlp"  # resnet: residual conv nets for natural images (nn/resnet.py)
    hidden: tuple[int, ...] = (512, 256)  # MLP widths, encoder side; the decoder mirrors them
    channels: tuple[int, ...] = (32, 64)  # conv channels, encoder side
    activation: str = "relu"
    downsample: int = 4  # resnet: the code grid is the input size / downsample (4, 8 or 16)

    def __post_init__(self):
        check(len(self.input_shape) >= 1 and all(d > 0 for d in self.input_shape), "input_shape", f"must be positive sizes, got {self.input_shape}")
        check(self.latent_dim >= 1, "latent_dim", f"must be >= 1, got {self.latent_dim}")
        check(all(h >= 1 for h in self.hidden), "hidden", f"widths must be >= 1, got {self.hidden}")
        check(len(self.channels) >= 1 and all(c >= 1 for c in self.channels), "channels", f"must be >= 1, got {self.channels}")
        check(self.downsample in (4, 8, 16), "downsample", f"must be 4, 8 or 16, got {self.downsample}")
        if self.arch in ("conv", "resnet"):
            check(len(self.input_shape) == 3, "arch", f"{self.arch!r} needs image input (C, H, W), got input_shape {self.input_shape}")


class Autoencoder(nn.Module):
    """Base of every family member. Subclasses set ``Config`` and implement encode/decode/forward."""

    name: ClassVar[str] = ""
    Config: ClassVar[type] = ModelConfig
    generative: ClassVar[bool] = False  # has sample()
    needs_labels: ClassVar[bool] = False  # forward needs y (conditional models)
    # codes are grids of indices (no Jacobian, no Gaussian prior); such a model has ``quantizers`` and
    # ``grid_names`` (one per grid, coarsest first), ``code_grids(x)``, ``decode_codes(grids)``,
    # ``grid_prefixes()`` and a ``prior`` attribute (None until ``aezoo train-prior``)
    discrete_codes: ClassVar[bool] = False
    # training options this member needs to show its paper's behaviour (e.g. a learning rate or a
    # schedule); ``aezoo.train`` and the CLI use them unless the user gives their own
    train_defaults: ClassVar[dict[str, Any]] = {}
    # a tiny config for the contract tests and docs: overridden by models with other inputs
    tiny: ClassVar[dict[str, Any]] = {"input_shape": (1, 8, 8), "latent_dim": 4, "hidden": (16,), "channels": (4, 8)}
    # the paper's claims, first match wins (see ``claim``); every registered member declares at least one
    claims: ClassVar[tuple[Claim, ...]] = ()

    def __init__(self, config):
        super().__init__()
        self.config = config

    # --- the contract -----------------------------------------------------------------------
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> ModelOutput:
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.encode(x, y), y)

    def sample(self, n: int, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotSupportedError(f"model {self.name!r} is not generative: it has no prior to sample from")

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.latent_dim,)

    def claim(self) -> Claim | None:
        """The declared claim that applies to this model's config."""
        return next((c for c in self.claims if c.applies(self.config)), None)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # --- hooks the trainer and evaluation call; defaults fit most models ---------------------------
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

    def eval_metrics(self, x: torch.Tensor, y: torch.Tensor | None, **options: Any) -> dict[str, Any]:
        """Model-specific evaluation on a split (likelihood bounds, codebook usage, ...)."""
        return {}

    def grid_prefixes(self) -> tuple[int, ...]:
        """For ``discrete_codes`` models: the numbers of leading code grids that ``decode_codes``
        accepts, one per rate the model can code at (all grids by default; residual VQ decodes any
        prefix of its stages)."""
        return (len(self.quantizers),)

    def on_load(self, run_dir) -> None:
        """Called by ``aezoo.load`` after the weights: a model with companion files in its run folder
        (a second-stage prior) loads them here."""
