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
from .errors import CheckpointError, ConfigError
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


def train(model, data=None, *, out: str | Path | None = None, resume: bool | str = False, config: str | dict | None = None, **options: Any):
    """Train ``model`` on ``data`` (an ``aezoo.data.Dataset``, or a dataset name or path). With ``out``,
    write the run folder: config.json, checkpoint.safetensors, metrics.jsonl, model.safetensors,
    eval.json, report.html.

    ``model``: a model, or a registered name (``aezoo.train("vae", "digits", latent_dim=8, epochs=5)``),
    which builds exactly what ``aezoo train`` builds (issue 23): model fields from ``config`` (a
    YAML/JSON file or a dict; its ``train`` section gives training options), then from ``options``
    that name model fields; the decoder likelihood from the data's kind unless given; ``input_shape``
    (and ``num_classes``) from the data; on resume, the run's own fields.
    The other ``options`` are ``TrainConfig`` fields: epochs, steps, batch_size, lr, lr_schedule,
    warmup_steps, weight_decay, clip_grad_norm, ema_decay, log, seed, device, amp, compile, ...; those
    not given come from the model's declared ``train_defaults``, then from ``TrainConfig`` (on resume:
    from the run). ``resume``: True continues the run in ``out``; "auto" continues it when it has a
    checkpoint and starts it otherwise (for torchrun ``--max-restarts`` and requeued jobs).
    Returns the trained model in eval mode: with ``ema_decay``, holding the EMA weights (what
    ``aezoo.load`` serves; ``aezoo.load(run, raw=True)`` gives the raw ones)."""
    if isinstance(model, str):
        model, data, options, resume = build(model, data, out=out, resume=resume, config=config, **options)
    elif config is not None:
        raise ConfigError("config= applies when the model is given by name")
    if data is None or isinstance(data, (str, Path)):
        from .data import load

        data = load(data or "auto")
    return run_training(model, data, out=out, resume=resume, **options).model


def build(name: str, data=None, *, out: str | Path | None = None, resume: bool | str = False, config: str | dict | None = None,
          fields: dict[str, Any] | None = None, say=None, **options: Any):
    """What ``aezoo train NAME`` builds before the loop, and ``aezoo.train(NAME, ...)`` alike: returns
    (model, dataset, training options, resume as a bool). ``options`` naming fields of the model's
    config set them (type-checked; they win over ``config``); with ``data`` a name or path, those naming
    ``aezoo.data.load`` arguments load it (``image_size=64``, ``normalize="minmax"``); the rest are training
    options.
    ``fields``: model config fields given apart (``aezoo train --set``: every key must be one).
    ``say``: where the one-line notes go (stderr by default)."""
    import dataclasses
    import inspect
    import sys

    import torch

    from .config import coerce_fields, load_file
    from .data import Dataset, load
    from .registry import create, get
    from .train.trainer import TrainConfig

    say = say or (lambda msg: print(f"aezoo: {msg}", file=sys.stderr))
    cls = get(name)
    file_cfg = dict(load_file(config) if isinstance(config, (str, Path)) else (config or {}))
    train_file = file_cfg.pop("train", {}) if isinstance(file_cfg.get("train"), dict) else {}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    model_fields = {f.name for f in dataclasses.fields(cls.Config)}
    load_fields = set(inspect.signature(load).parameters) - {"spec"} - train_fields
    data_opts = {k: options.pop(k) for k in list(options) if k in load_fields and k not in model_fields}
    model_cfg = {**file_cfg, **(fields or {}), **{k: v for k, v in options.items() if k in model_fields and k not in train_fields}}
    opts = {**train_file, **{k: v for k, v in options.items() if k not in model_cfg or k in train_fields}}
    model_cfg = coerce_fields(cls.Config, model_cfg)  # fail on a bad field before loading data
    if data is None or isinstance(data, (str, Path)):
        data = load(str(data or "auto"), **data_opts)  # data options by name: image_size, normalize, limit, ...
    elif data_opts:
        raise ConfigError(f"data options {sorted(data_opts)} apply when the data is given by name or path")
    if not isinstance(data, Dataset):
        raise ConfigError(f"data must be a Dataset, a dataset name or a path, got {type(data).__name__}")
    run = Path(out) if out is not None else None
    resume = resume is True or resume == "yes" or (resume == "auto" and run is not None and (run / ckpt.CHECKPOINT).exists())
    if resume:
        if run is None:
            raise ConfigError("resume needs the run folder (out=...)")
        meta = ckpt.run_meta(run)
        if meta["model"] != name:
            raise ConfigError(f"{run} holds a {meta['model']!r} run, not {name!r}")
        try:
            recorded = coerce_fields(cls.Config, meta["config"])
        except ConfigError as e:
            raise CheckpointError(f"{run / 'config.json'}: {e}") from None
        model_cfg = {**recorded, **model_cfg}  # a changed field is refused by the trainer, by name
    if cls.likelihood_field is not None:  # the decoder likelihood follows the data's kind unless chosen (issue 18)
        from .nn.likelihoods import default_likelihood

        field = cls.likelihood_field
        if field in model_cfg:
            why = "the run's own" if resume else "as asked"
        else:
            model_cfg[field], why = default_likelihood(data.preprocessing.get("kind", "images"))
        say(f"likelihood {model_cfg[field]} ({why})")
    for key, value in cls.config_from_data(data).items():  # input_shape; num_classes for conditional models
        model_cfg.setdefault(key, value)
    torch.manual_seed(opts.get("seed", 0))
    return create(name, **model_cfg), data, opts, resume


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
    """Anomaly scores (issue 18) of ``split`` (``"all"``: every row) under a trained run: a run folder or
    ``Run``, or a loaded model with a Dataset. ``data``: None for the run's own dataset, a Dataset, or a name/path
    loaded through the run's own preprocessing (per-feature scaling, one-hot columns, imputed values).
    Returns ``evaluate.anomaly.Scores`` (``values``, ``index``, ``labels``, ``csv()``)."""
    from .data import Dataset
    from .errors import DataError
    from .evaluate.anomaly import score_split

    from .runs import as_run

    opened = as_run(run, device)  # a Run or a run folder; None for a bare model
    if opened is not None:
        model = opened.model
        if not isinstance(data, Dataset):  # the run's own data, or a name/path through its preprocessing
            data = opened.dataset(None if data is None else str(data))
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
