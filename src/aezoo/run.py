"""What ``aezoo train`` and ``aezoo.train`` do around the training loop: hold the run folder's lock,
train (``aezoo.train.fit``), then on rank 0 evaluate on the test split and write ``eval.json`` and
``report.html``. The loop trains and returns; figures and metrics live up here, so ``train/``
imports nothing from ``viz/`` or ``evaluate/``."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .train import checkpoint as ckpt
from .train import rundir
from .train.trainer import Fit, _rank


@dataclass
class Trained:
    model: Any
    metrics: dict[str, Any] | None  # this invocation's test metrics (None without a report)


def run_training(model, data, *, out: str | Path | None = None, resume: bool | str = False, **options: Any) -> Trained:
    """Train, then evaluate and report; returns the model and the metrics this call measured."""
    import torch.distributed as dist

    run = Path(out) if out is not None else None
    metrics = None
    with rundir.locked(run, enabled=_rank() == 0) if run is not None else contextlib.nullcontext():
        loop = Fit(model, data, out, resume, options)
        model = loop()
        # rank 0 alone evaluates and reports (no collectives in there: models run them only in training
        # mode); the other ranks wait at a barrier (see train/distributed.py on its timeout)
        if run is not None and loop.is_main and loop.cfg.report:
            metrics = finish_run(run, model, data, iw_samples=loop.cfg.eval_iw_samples, raw=loop.ema is not None)
    if dist.is_initialized():
        dist.barrier()
    return Trained(model, metrics)


def train(model, data, *, out: str | Path | None = None, resume: bool | str = False, **options: Any):
    """Train ``model`` on ``data`` (an ``aezoo.data.Dataset``). With ``out``, write the run folder:
    config.json, checkpoint.safetensors, metrics.jsonl, model.safetensors, eval.json, report.html.

    ``options`` are ``TrainConfig`` fields: epochs, steps, batch_size, lr, lr_schedule, warmup_steps,
    weight_decay, clip_grad_norm, ema_decay, log, seed, device, amp, compile, ...; those not given come
    from the model's declared ``train_defaults``, then from ``TrainConfig`` (on resume: from the run).
    ``resume``: True continues the run in ``out``; "auto" continues it when it has a checkpoint and
    starts it otherwise (for torchrun ``--max-restarts`` and requeued jobs).
    Returns the trained model in eval mode: with ``ema_decay``, holding the EMA weights (what
    ``aezoo.load`` serves; ``aezoo.load(run, raw=True)`` gives the raw ones)."""
    return run_training(model, data, out=out, resume=resume, **options).model


def finish_run(run: Path, model, data, iw_samples: int = 100, raw: bool = False) -> dict[str, Any]:
    """Evaluate on the test split, write eval.json, and build report.html. ``raw``: the run keeps an
    EMA of its weights, so evaluate the raw weights too (keys ``raw/...``)."""
    from .evaluate import evaluate
    from .viz.report import build_report

    run = Path(run)
    metrics = evaluate(model, data, "test", iw_samples=iw_samples)
    if raw:
        raw_model = ckpt.load_model(run, model.device, raw=True)
        m = evaluate(raw_model, data, "test", iw_samples=iw_samples)
        metrics.update({f"raw/{k}": v for k, v in m.items() if isinstance(v, float)})
    ckpt.write_json(run / "eval.json", metrics)
    build_report(run, model=model, data=data)
    return metrics


def fit_prior(model, data, *, width: int = 128, layers: int = 4, heads: int = 4, dropout: float = 0.1, **train_options: Any):
    """The second stage of a ``CodeGridModel`` (what ``aezoo train-prior`` runs): encode ``data`` to code
    grids, fit a ``CodePrior`` over them with the training loop, and attach it to ``model``.
    ``train_options`` go to ``aezoo.train.fit`` (epochs, batch_size, lr, device, seed, progress).
    Returns the prior and the dataset of codes it was fitted on."""
    from .data.core import Dataset, Split
    from .errors import NotSupportedError
    from .models.base import CodeGridModel
    from .models.code_prior import attach_prior, flat_code_grids, prior_config
    from .nn.priors import CodePrior
    from .train import fit

    if not isinstance(model, CodeGridModel):
        raise NotSupportedError(f"model {model.name!r} has no discrete codes to fit a prior to")
    model.eval()
    splits = {name: Split(flat_code_grids(model, part.x)) for name in ("train", "val", "test") if (part := data.split(name)) is not None}
    codes = Dataset(name=f"{data.name}-codes", source=f"codes of {data.name}", **splits)
    prior = CodePrior(prior_config(model, width=width, layers=layers, heads=heads, dropout=dropout))
    fit(prior, codes, out=None, **train_options)
    prior.eval()
    attach_prior(model, prior)
    return prior, codes


def score(run, data=None, split: str = "test", by: str | None = None, *, iw_samples: int = 100, seed: int = 0, device: str = "auto"):
    """Anomaly scores (issue 18) of ``split`` (``"all"``: every row) under a trained run: a run folder, or
    a loaded model with a Dataset. ``data``: None for the run's own dataset, a Dataset, or a name/path
    loaded through the run's own preprocessing (per-feature scaling, one-hot columns, imputed values).
    Returns ``evaluate.anomaly.Scores`` (``values``, ``index``, ``labels``, ``csv()``)."""
    from .data import Dataset
    from .errors import DataError
    from .evaluate.anomaly import score_split

    if isinstance(run, (str, Path)):
        from .data.recorded import data_of_run
        from .data.scaling import load_for_run
        from .train.trainer import pick_device

        meta = ckpt.run_meta(run)
        model = ckpt.load_model(run, pick_device(device))
        if data is None:
            data = data_of_run(meta)
        elif not isinstance(data, Dataset):
            data = load_for_run(str(data), meta)
    else:
        model = run
        if not isinstance(data, Dataset):
            raise DataError("aezoo.score(model, data): give the Dataset the model scores (or a run folder instead of a model)")
    return score_split(model, data, split, by, iw_samples=iw_samples, seed=seed)


def save_scores(run: str | Path, scores) -> Path:
    """``RUN/scores.npz`` (atomic), which the report's anomaly section reads."""
    import io

    import numpy as np

    from .evaluate.anomaly import SCORES_FILE

    buf = io.BytesIO()
    np.savez(buf, **scores.for_report())
    path = Path(run) / SCORES_FILE
    ckpt.atomic_write(path, buf.getvalue())
    return path
