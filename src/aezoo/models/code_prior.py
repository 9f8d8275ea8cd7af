"""The second stage of the models with code grids (``CodeGridModel``: VQ-VAE, VQ-VAE-2): the
autoregressive prior over their codes, attached to the first stage, saved beside it, sampled through
it. van den Oord et al. 2017 (arXiv:1711.00937), sec. 3.1; Razavi et al. 2019 (arXiv:1906.00446),
sec. 3.3. The prior network itself is ``nn.priors.CodePrior``; ``aezoo.run.fit_prior`` (what
``aezoo train-prior`` runs) trains it. Not a family member: it registers nothing."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ..config import build, construct
from ..errors import AezooError, CheckpointError, NotSupportedError
from ..nn.priors import CodePrior, CodePriorConfig
from ..nn.quantizer import perplexity
from .base import CodeGridModel

PRIOR_WEIGHTS, PRIOR_CONFIG = "prior.safetensors", "prior.json"


def attach_prior(model: CodeGridModel, prior: CodePrior | None) -> None:
    """Keep ``prior`` beside ``model`` but outside its module tree: it is trained and saved on its
    own (prior.safetensors), so model.safetensors stays the first stage's weights."""
    model.__dict__["prior"] = prior


def prior_config(model: CodeGridModel, **network: Any) -> CodePriorConfig:
    """The ``CodePriorConfig`` for ``model``'s grids (sizes and codebooks); ``network``: width, layers,
    heads, dropout, cond_layers."""
    grids = [g[0] for g in model.code_grids(torch.zeros(1, *model.config.input_shape, device=model.device))]
    return build(CodePriorConfig, {"heights": [g.shape[0] for g in grids], "widths": [g.shape[1] for g in grids],
                                   "num_codes": [q.num_codes for q in model.quantizers], **network})


@torch.no_grad()
def flat_code_grids(model: CodeGridModel, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Inputs (N, ...) -> their code grids flattened and concatenated, coarsest first: (N, L) int64,
    what the prior is trained on."""
    out = []
    for i in range(0, x.shape[0], batch_size):
        grids = model.code_grids(x[i : i + batch_size].to(model.device))
        out.append(torch.cat([g.flatten(1) for g in grids], 1).cpu())
    return torch.cat(out)


def sample_from_prior(model: CodeGridModel, n: int, temperature: float = 1.0) -> torch.Tensor:
    """Draw code grids from the model's prior (top first, then bottom) and decode them."""
    prior = model.prior
    if prior is None:
        raise NotSupportedError(f"model {model.name!r} samples through a prior over its codes and none is trained: run `aezoo train-prior RUN_DIR` first")
    if temperature <= 0:
        raise NotSupportedError(f"temperature must be > 0, got {temperature}")
    prior.to(model.device).eval()
    return model.decode_codes(prior.sample(n, temperature))


@torch.no_grad()
def code_metrics(model: CodeGridModel, x: torch.Tensor, batch_size: int = 1024) -> dict[str, float]:
    """Codebook usage over ``x`` per grid (``perplexity``, ``dead_codes``: the fraction of codes no
    input uses; suffixed ``_top``/``_bottom``... when there are several grids), the code's size
    ``bits_per_input`` = cells x log2 K, and with a trained prior ``prior_nll_bits``, its negative
    log-likelihood of the codes in bits per input."""
    grids = [torch.cat(parts) for parts in zip(*(model.code_grids(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)))]
    out: dict[str, float] = {}
    names = model.grid_names
    for name, q, c in zip(names, model.quantizers, grids):
        counts = torch.bincount(c.flatten(), minlength=q.num_codes)
        suffix = f"_{name}" if len(names) > 1 else ""
        out[f"perplexity{suffix}"] = float(perplexity(counts))
        out[f"dead_codes{suffix}"] = float((counts == 0).float().mean())
    out["bits_per_input"] = float(sum(c[0].numel() * q.bits() for q, c in zip(model.quantizers, grids)))
    prior = model.prior
    if prior is not None:
        prior.to(model.device).eval()
        flat = torch.cat([c.flatten(1) for c in grids], 1)
        nll = torch.cat([prior.nll(flat[i : i + batch_size]) for i in range(0, flat.shape[0], batch_size)])
        out["prior_nll_bits"] = float(nll.mean() / math.log(2))
    return out


# --- the prior's files in the run folder: prior.safetensors and prior.json, in the checkpoint format -----
# prior.safetensors is written first, then prior.json with the weights' checksum: a train-prior killed
# between the two leaves a pair that does not match, which loads as an UnreadablePrior (issue 22).
def save_prior(run_dir: str | Path, prior: CodePrior, extra: dict[str, Any] | None = None) -> None:
    from ..train.checkpoint import save_model

    save_model(run_dir, prior, extra, weights=PRIOR_WEIGHTS, config=PRIOR_CONFIG, pair=True)


class UnreadablePrior:
    """Stands in for a prior whose files cannot be loaded (a missing or mismatched pair, a damaged file):
    every use raises the one-line error that says why and how to recover, while the model itself still
    loads, so that ``aezoo train-prior`` can train a new prior over it."""

    def __init__(self, error: CheckpointError):
        self.error = error

    def __getattr__(self, name: str):
        raise self.error


def load_prior(run_dir: str | Path, device: str | torch.device = "cpu") -> CodePrior | UnreadablePrior | None:
    """The prior saved in ``run_dir``, None when none has been trained, or an ``UnreadablePrior``."""
    from ..train.checkpoint import check_pair, read_json

    run_dir = Path(run_dir)
    weights, config = run_dir / PRIOR_WEIGHTS, run_dir / PRIOR_CONFIG
    if not config.exists():
        return None
    recover = f"train the prior again (aezoo train-prior {run_dir}) or delete both files"
    try:
        meta = read_json(config)
        try:
            if not isinstance(meta.get("config"), dict):
                raise CheckpointError("no 'config' object")
            prior = construct(CodePrior, build(CodePriorConfig, meta["config"]))  # sizes memory cannot hold: one line
        except (AezooError, TypeError, ValueError) as e:
            raise CheckpointError(f"{config}: {e}; {recover}") from None
        tensors = check_pair(weights, config, meta, recover)
        own = prior.state_dict()
        missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
        wrong = [k for k in tensors if k in own and tuple(tensors[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or wrong:
            hint = ("; priors trained before the whole-grid conditioning of issue 11 must be retrained (aezoo train-prior RUN)"
                    if any("cond_" in k for k in missing) else f"; {recover}")
            raise CheckpointError(f"{weights}: weights do not match {PRIOR_CONFIG} (missing {missing[:3]}, unexpected {unexpected[:3]}, "
                                  f"other shapes {wrong[:3]}){hint}")
    except CheckpointError as e:
        return UnreadablePrior(e if recover in str(e) else CheckpointError(f"{e}; {recover}"))
    prior.load_state_dict(tensors)
    return prior.to(device).eval()
