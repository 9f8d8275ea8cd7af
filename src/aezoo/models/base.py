"""The small base every family member shares: the output contract, the common config fields, the
hooks through which a model that trains differently says so, and the capabilities a model declares.

The contract (what the trainer, evaluation, CLI and contract tests rely on):

- ``forward(x, y=None) -> ModelOutput``: ``loss`` is the scalar to minimise (per example, averaged
  over the batch), ``terms`` the named scalars to log; ``x_hat`` the reconstruction in data space.
- ``encode(x, y=None)`` -> the code used as an embedding (deterministic: the posterior mean for
  variational models), ``decode(z, y=None)`` -> the mean of p(x|z) in data space.
- ``sample(n, y=None, **options)`` for generative models (``generative = True``); the keyword options
  it takes are declared in ``sample_options``.
- The training hooks come from ``aezoo.trainable.Trainable`` (``training_step``, ``param_groups``,
  ``on_step``, ``on_fit_start``, ``on_fit_end``); evaluation calls ``eval_metrics``, ``aezoo.load``
  calls ``on_load``.
- ``claims``: what the member's paper says it does, declared as data (``Claim``); the run report
  shows the one that applies above the metrics, and ``tests/test_defaults.py`` checks it with the
  defaults the CLI builds.

Capabilities: what a model can do beyond the contract is declared by subclassing one of the
capability classes at the end of this file (each lists in ``requires`` the members a model must
implement) (``LatentVariableModel``, ``ConditionalModel``,
``CodeGridModel``, ``SequenceModel``, ``DenoisingModel``, ``LinearSubspaceModel``, ``UnitFilterModel``,
``LearnedCodec``).
Evaluation, figures and commands test ``isinstance(model, Capability)``, never an attribute or a
name; ``tests/test_contract.py`` checks over the registry that every declared capability is
implemented. docs/architecture.md lists who reads which.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal

import torch
from torch import nn

from ..config import check
from ..errors import NotSupportedError
from ..trainable import ModelOutput, ParamGroup, Trainable

if TYPE_CHECKING:
    from ..nn.corruption import Corruption
    from ..nn.distributions import DiagonalGaussian

__all__ = ["CAPABILITIES", "Autoencoder", "BaseConfig", "Claim", "CodeGridModel", "CodingTables", "ConditionalModel",
           "DenoisingModel", "LatentVariableModel", "LearnedCodec", "LinearSubspaceModel", "ModelConfig", "ModelOutput", "ParamGroup", "SequenceModel",
           "UnitFilterModel", "capabilities"]


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
class BaseConfig:
    """Fields every family member has. Model configs add their own (one field per paper knob)."""

    # fields a config no longer has, with the one value they could hold: dropped when an older run
    # folder is loaded (``config.drop_retired``)
    retired: ClassVar[dict[str, Any]] = {}

    input_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 16

    def __post_init__(self):
        check(len(self.input_shape) >= 1 and all(d > 0 for d in self.input_shape), "input_shape", f"must be positive sizes, got {self.input_shape}")
        check(self.latent_dim >= 1, "latent_dim", f"must be >= 1, got {self.latent_dim}")


def check_hidden(hidden: tuple[int, ...]) -> None:
    check(all(h >= 1 for h in hidden), "hidden", f"widths must be >= 1, got {hidden}")


def check_channels(channels: tuple[int, ...]) -> None:
    check(len(channels) >= 1 and all(c >= 1 for c in channels), "channels", f"must be >= 1, got {channels}")


def check_arch(arch: str, input_shape: tuple[int, ...]) -> None:
    if arch in ("conv", "resnet"):
        check(len(input_shape) == 3, "arch", f"{arch!r} needs image input (C, H, W), got input_shape {input_shape}")


def check_downsample(downsample: int) -> None:
    check(downsample in (4, 8, 16), "downsample", f"must be 4, 8 or 16, got {downsample}")


@dataclass
class ModelConfig(BaseConfig):
    """The fields of the shared encoder and decoder (``nn.nets.encoder_for``/``decoder_for``), which most
    members build on. A member with networks of its own starts from ``BaseConfig`` instead."""

    arch: Literal["mlp", "conv", "resnet"] = "mlp"  # resnet: residual conv nets for natural images (nn/resnet.py)
    hidden: tuple[int, ...] = (512, 256)  # MLP widths, encoder side; the decoder mirrors them
    channels: tuple[int, ...] = (32, 64)  # conv channels, encoder side
    activation: str = "relu"
    downsample: int = 4  # resnet: the code grid is the input size / downsample (4, 8 or 16)

    def __post_init__(self):
        super().__post_init__()
        check_hidden(self.hidden)
        check_channels(self.channels)
        check_downsample(self.downsample)
        check_arch(self.arch, self.input_shape)


class Autoencoder(Trainable):
    """Base of every family member. Subclasses set ``Config`` and implement encode/decode/forward."""

    Config: ClassVar[type] = ModelConfig
    generative: ClassVar[bool] = False  # has sample()
    # keyword options ``sample`` takes beyond (n, y), e.g. ("temperature",); `aezoo sample` offers these only
    sample_options: ClassVar[tuple[str, ...]] = ()
    # the config field that picks the decoder's likelihood p(x|z), where the member has one: `aezoo train`
    # sets it from the data's kind when the user does not (issue 18: Gaussian for real-valued vectors and
    # tables, Bernoulli for images in [0, 1]), and says which and why
    likelihood_field: ClassVar[str | None] = None
    # per-example anomaly scores the member offers (``evaluate/anomaly.py``), its default first: recon
    # (every member), elbo and nll_iw (LatentVariableModel), prior_nll (CodeGridModel, once a prior is trained)
    score_kinds: ClassVar[tuple[str, ...]] = ("recon",)
    # a tiny config for the contract tests and docs: overridden by models with other inputs
    tiny: ClassVar[dict[str, Any]] = {"input_shape": (1, 8, 8), "latent_dim": 4, "hidden": (16,), "channels": (4, 8)}
    # the paper's claims, first match wins (see ``claim``); every registered member declares at least one
    claims: ClassVar[tuple[Claim, ...]] = ()

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

    @classmethod
    def config_from_data(cls, data) -> dict[str, Any]:
        """Config fields the data decides (``aezoo train`` sets them unless the user gives them)."""
        return {"input_shape": tuple(data.input_shape)}

    def claim(self) -> Claim | None:
        """The declared claim that applies to this model's config."""
        return next((c for c in self.claims if c.applies(self.config)), None)

    # --- hooks evaluation and loading call; defaults fit most models -------------------------------
    def eval_metrics(self, x: torch.Tensor, y: torch.Tensor | None, **options: Any) -> dict[str, Any]:
        """Model-specific evaluation on a split (likelihood bounds, codebook usage, ...)."""
        return {}

    def on_load(self, run_dir) -> None:
        """Called by ``aezoo.load`` after the weights: a model with companion files in its run folder
        (a second-stage prior) loads them here."""


# --- capabilities: a model states what it can do by subclassing these ----------------------------------
class LatentVariableModel(Autoencoder):
    """A latent-variable model with a Gaussian posterior: q(z|x, y), p(x|z, y) and p(z). Evaluation reads
    the ELBO, the importance-weighted bound and active units from these (``evaluate/likelihood.py``);
    the latent figures draw the prior's circles, the manifold and spherical interpolation."""

    requires: ClassVar[tuple[str, ...]] = ("posterior", "log_likelihood", "prior_log_prob")
    # p(z) is N(0, I) (what the latent scatter's circles and the manifold's inverse CDF assume)
    standard_normal_prior: ClassVar[bool] = True

    def posterior(self, x: torch.Tensor, y: torch.Tensor | None = None) -> DiagonalGaussian:
        raise NotImplementedError

    def log_likelihood(self, z: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x|z, y) for z of shape (K, B, D) -> (K, B)."""
        raise NotImplementedError

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) for z of shape (..., D) -> (...)."""
        raise NotImplementedError


class ConditionalModel(Autoencoder):
    """A model of x given a class label y in 0..num_classes-1: ``forward``, ``encode``, ``decode`` and
    ``sample`` take y, and ``aezoo train`` sets ``num_classes`` from the data."""

    requires: ClassVar[tuple[str, ...]] = ()  # num_classes reads config.num_classes unless overridden
    needs_labels: ClassVar[bool] = True

    @property
    def num_classes(self) -> int:
        return int(self.config.num_classes)

    @classmethod
    def config_from_data(cls, data) -> dict[str, Any]:
        out = super().config_from_data(data)
        if data.num_classes:
            out["num_classes"] = int(data.num_classes)
        return out


class CodeGridModel(Autoencoder):
    """Codes are grids of indices into codebooks (no Jacobian, no Gaussian prior). Generation is a second
    stage: an autoregressive prior over the grids (``models/code_prior.py``; ``prior`` is None until
    ``aezoo train-prior``). Compression, the rate-distortion curve, code figures and the prior read:

    - ``quantizers``: one module per grid, each with ``num_codes`` and ``bits()``;
    - ``grid_names``: one name per grid, coarsest first;
    - ``code_grids(x) -> [(B, h, w) int64]`` and ``decode_codes(grids) -> x_hat``;
    - ``grid_prefixes()``: the numbers of leading grids ``decode_codes`` accepts, one per rate."""

    requires: ClassVar[tuple[str, ...]] = ("quantizers", "grid_names", "code_grids", "decode_codes")
    prior: Any = None  # the second stage, attached beside the module tree (models/code_prior.py)
    sample_options: ClassVar[tuple[str, ...]] = ("temperature",)

    @property
    def quantizers(self) -> list[nn.Module]:
        raise NotImplementedError

    @property
    def grid_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def code_grids(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def decode_codes(self, grids: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def grid_prefixes(self) -> tuple[int, ...]:
        """All grids by default; residual VQ decodes any prefix of its stages."""
        return (len(self.quantizers),)


class SequenceModel(Autoencoder):
    """A model of sequences x (B, T, *frame) that rolls the future forward from observed frames
    (``aezoo rollout``, the ``rollouts`` figure)."""

    requires: ClassVar[tuple[str, ...]] = ("rollout",)

    def rollout(self, x_observed: torch.Tensor, n_steps: int, jump: int = 1, n_samples: int = 1) -> torch.Tensor:
        """Observe x_observed (B, T0, *frame), roll ``n_steps`` jumps of ``jump`` forward:
        (n_samples, B, n_steps, *frame)."""
        raise NotImplementedError


class DenoisingModel(Autoencoder):
    """Trained to undo a corruption q(x_tilde|x): ``corruption`` (``nn.corruption.Corruption``) is the
    training one, which evaluation and the ``denoising`` figure apply to test inputs."""

    requires: ClassVar[tuple[str, ...]] = ()  # corruption is set in __init__ (the contract test checks it)
    corruption: Corruption


class LinearSubspaceModel(Autoencoder):
    """A linear decoder whose column space is compared with PCA's (Baldi & Hornik 1989): evaluation
    reads ``pca_subspace_metrics``, the ``principal_angles`` figure ``principal_angles``."""

    requires: ClassVar[tuple[str, ...]] = ("pca_subspace_metrics", "principal_angles")

    def pca_subspace_metrics(self, x_train: torch.Tensor, x: torch.Tensor) -> dict[str, Any]:
        raise NotImplementedError

    def principal_angles(self, x_train: torch.Tensor) -> torch.Tensor:
        """(k,) principal angles in degrees, ascending, to the top-k PCA subspace of ``x_train``."""
        raise NotImplementedError


class UnitFilterModel(Autoencoder):
    """Each code unit writes a filter into the output (``decoder_filters`` figure)."""

    requires: ClassVar[tuple[str, ...]] = ("decoder_filters",)

    def decoder_filters(self) -> torch.Tensor:
        """(D, *input_shape): what each code unit writes into the output."""
        raise NotImplementedError


@dataclass(frozen=True)
class CodingTables:
    """What a ``LearnedCodec``'s coder needs besides the symbols, as stored numbers (float64 copies of
    buffers saved with the weights, so both ends of a file use the same bits): ``z_pmf`` (Cz, 2 z_radius + 1)
    each hyper-latent channel's probabilities of -z_radius..z_radius; ``scale_table`` (L,) the Gaussian
    scales the scale indices pick; latents minus their means lie in -y_radius..y_radius."""

    z_pmf: Any
    z_radius: int
    scale_table: Any
    y_radius: int


class LearnedCodec(Autoencoder):
    """An image codec learned end to end (nonlinear transform coding): the codes are integers with an
    entropy model, for images of any size. ``compress`` (``compress/learned.py``), the codec metrics
    (``evaluate/codec.py``) and the rate-distortion figure read:

    - ``symbols(x) -> (z, y)``: the integers a file holds for images x (B, C, H, W): hyper-latents
      (B, *zs) and latents minus their means (B, *ys), int64 on the CPU (``symbol_shapes((H, W)) -> (zs, ys)``);
    - ``entropy_parameters(z, y_size) -> (index, mean)``: each latent's index into ``scale_table`` and
      its mean (float64, or None), computed from z alone in exact arithmetic: equal on every machine;
    - ``decode_symbols(z, y, size) -> x_hat``; ``coding_tables() -> CodingTables``;
    - ``estimated_bits(z, y) -> (B,)``: what the entropy model says the symbols cost."""

    requires: ClassVar[tuple[str, ...]] = ("symbols", "symbol_shapes", "entropy_parameters", "decode_symbols",
                                           "coding_tables", "estimated_bits")

    def symbols(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def symbol_shapes(self, size: tuple[int, int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        raise NotImplementedError

    def entropy_parameters(self, z: torch.Tensor, y_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def decode_symbols(self, z: torch.Tensor, y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        raise NotImplementedError

    def coding_tables(self) -> CodingTables:
        raise NotImplementedError

    def estimated_bits(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


CAPABILITIES: tuple[type, ...] = (LatentVariableModel, ConditionalModel, CodeGridModel, SequenceModel, DenoisingModel,
                                  LinearSubspaceModel, UnitFilterModel, LearnedCodec)


def capabilities(model) -> list[str]:
    """The names of the capabilities ``model`` (an instance or a class) declares."""
    cls = model if isinstance(model, type) else type(model)
    return [c.__name__ for c in CAPABILITIES if issubclass(cls, c)]
