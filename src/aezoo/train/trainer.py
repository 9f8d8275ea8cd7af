"""The training engine. It trains any registered model through the model's own hooks
(``training_step``, ``on_step``, ``on_fit_start``) and never looks at the model's name.

Determinism: batches depend only on (seed, epoch, position), the checkpoint stores weights,
optimizer state and RNG state after a step, and validation runs on a forked, seeded RNG; so a run
stopped at any checkpoint and resumed ends with the same weights as an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..config import build, check, to_dict
from ..data.batching import Batches
from ..errors import ConfigError, DataError, TrainingError
from . import checkpoint as ckpt
from . import distributed


@dataclass
class TrainConfig:
    epochs: int | None = 10
    steps: int | None = None  # total optimizer steps; when set it overrides epochs
    min_steps: int = 0  # with epochs: train at least this many steps (small data); members declare it in train_defaults
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"  # decay from lr to min_lr over the run
    warmup_steps: float = 0  # linear warm-up: a number of steps, or a fraction of the run when < 1
    min_lr: float = 0.0  # where cosine and linear decay end
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = False  # bf16 autocast
    compile: bool = False  # torch.compile the training step
    checkpoint_every: int = 0  # steps between checkpoints (0: epoch ends and every checkpoint_minutes)
    checkpoint_minutes: float = 10.0
    progress: bool = True
    report: bool = True  # evaluate and write report.html at the end (with ``out``)
    eval_iw_samples: int = 100  # importance samples for the final evaluation's nll_iw

    def __post_init__(self):
        check(self.epochs is not None or self.steps is not None, "epochs", "give epochs or steps")
        check(self.epochs is None or self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        check(self.steps is None or self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        check(self.min_steps >= 0, "min_steps", f"must be >= 0, got {self.min_steps}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.lr > 0 and math.isfinite(self.lr), "lr", f"must be a positive number, got {self.lr}")
        check(self.warmup_steps >= 0 and math.isfinite(self.warmup_steps), "warmup_steps", f"must be >= 0 (steps, or a fraction of the run when < 1), got {self.warmup_steps}")
        check(0 <= self.min_lr <= self.lr, "min_lr", f"must be in [0, lr={self.lr}], got {self.min_lr}")
        check(self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0")
        check(self.eval_iw_samples >= 0, "eval_iw_samples", "must be >= 0")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA GPU is available to this PyTorch build")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None


class _Step(nn.Module):
    """Routes forward to the model's training_step hook, so DDP and torch.compile wrap the step that
    the model defines, whatever it is."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x, y=None):
        return self.model.training_step(x, y)


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total``: a pure function of the
    step, so a resumed run follows the same curve as an uninterrupted one."""
    warm = cfg.warmup_steps * total if cfg.warmup_steps < 1 else cfg.warmup_steps
    if step < warm:
        return cfg.lr * (step + 1) / warm
    if cfg.lr_schedule == "constant":
        return cfg.lr
    t = min(1.0, (step - warm) / max(total - warm, 1))
    frac = 0.5 * (1 + math.cos(math.pi * t)) if cfg.lr_schedule == "cosine" else 1 - t
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * frac


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    dev = params[0].device.type if params else "cpu"
    # fused Adam: one kernel per step instead of several per parameter (CPU and CUDA in torch >= 2.4)
    return torch.optim.Adam(params, lr=lr, fused=dev in ("cpu", "cuda"))


@torch.no_grad()
def validate(model: nn.Module, split, batch_size: int, seed: int, autocast, ctx: distributed.DistContext | None = None) -> dict[str, float]:
    """Mean loss terms over ``split``, on a forked RNG so training's random stream is untouched.
    Under torchrun each rank takes a contiguous shard in the same number of batches (a model may run
    collectives in its forward pass) and the sums are reduced over ranks."""
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    n = 0
    device = model.device
    shard = ctx is not None and ctx.enabled and len(split) >= ctx.world_size
    if shard:
        idx = torch.arange(len(split)).tensor_split(ctx.world_size)[ctx.rank]
        n_batches = math.ceil(math.ceil(len(split) / ctx.world_size) / batch_size)
        spans = [(int(c[0]), int(c[-1]) + 1) for c in idx.tensor_split(n_batches)]
        seed += ctx.rank
    else:
        spans = [(i, min(i + batch_size, len(split))) for i in range(0, len(split), batch_size)]
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for i, j in spans:
            x = split.x[i:j].to(device)
            y = None if split.y is None else split.y[i:j].to(device)
            with autocast():
                out = model.training_step(x, y)
            b = x.shape[0]
            for k, v in {"loss": out.loss, **out.terms}.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float() * b
            n += b
    model.train()
    if shard:
        totals = ctx.all_reduce_sum(torch.stack([*sums.values(), torch.tensor(float(n), device=device)]))
        sums, n = dict(zip(sums, totals[:-1])), float(totals[-1])
    return {k: float(v) / n for k, v in sums.items()}


def _check_data(model, data) -> None:
    want = tuple(model.config.input_shape)
    if tuple(data.input_shape) != want:
        raise DataError(f"dataset {data.name!r} has inputs of shape {tuple(data.input_shape)} but the model expects {want}")
    if model.needs_labels and data.train.y is None:
        raise DataError(f"model {model.name!r} needs class labels, but dataset {data.name!r} has none")


def _keep_metrics_until(path: Path, step: int) -> None:
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    ckpt.atomic_write(path, ("\n".join(keep) + "\n").encode() if keep else b"")


def _nonfinite(out, step: int, epoch: int) -> TrainingError:
    bad = [k for k, v in out.terms.items() if not torch.isfinite(v).all()]
    name = bad[0] if bad else "loss"
    value = float(out.terms[name].detach()) if bad else float(out.loss.detach())
    return TrainingError(f"non-finite loss at step {step} (epoch {epoch + 1}): term {name!r} = {value}; training stopped, the last good checkpoint is kept")


def train(model, data, *, out: str | Path | None = None, resume: bool | str = False, **options: Any):
    """Train ``model`` on ``data`` (an ``aezoo.data.Dataset``). With ``out``, write the run folder:
    config.json, checkpoint.safetensors, metrics.jsonl, model.safetensors, eval.json, report.html.

    ``options`` are ``TrainConfig`` fields: epochs, steps, batch_size, lr, seed, device, amp, compile, ...;
    those not given come from the model's declared ``train_defaults``, then from ``TrainConfig``.
    ``resume``: True continues the run in ``out``; "auto" continues it when it has a checkpoint and
    starts it otherwise (for torchrun ``--max-restarts`` and requeued jobs).
    Returns the trained model (in eval mode)."""
    cfg = build(TrainConfig, {**model.train_defaults, **options})
    _check_data(model, data)
    device = pick_device(cfg.device)
    ctx = distributed.init(device.type)
    if ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
    if cfg.batch_size % ctx.world_size:  # unequal shares would weight DDP's gradient mean unevenly
        raise ConfigError(f"batch_size {cfg.batch_size} is the global batch; it must be divisible by the {ctx.world_size} processes")
    model.to(device).train()
    batches = Batches(data.train, cfg.batch_size, device, cfg.seed, ctx.rank, ctx.world_size, data.dynamic_binarization)
    steps_per_epoch = len(batches)
    if steps_per_epoch == 0:
        raise DataError(f"dataset {data.name!r} has {len(data.train)} training examples, fewer than one batch")
    total = cfg.steps if cfg.steps is not None else max(cfg.epochs * steps_per_epoch, cfg.min_steps)
    opt = make_optimizer(model, cfg.lr)
    run = Path(out) if out is not None else None
    step = 0
    meta = {"data": data.describe(), "train": to_dict(cfg), "world_size": ctx.world_size}
    if run is not None:
        has_ckpt = (run / "checkpoint.safetensors").exists()
        if resume == "auto":
            resume = has_ckpt
        if resume:
            if not has_ckpt:
                raise TrainingError(f"nothing to resume: no checkpoint.safetensors in {run}")
            progress = ckpt.load_checkpoint(run, model, opt)
            step = int(progress["step"])
            if ctx.enabled:
                saved, _ = ckpt.load_tensors(run / "checkpoint.safetensors")
                distributed.restore_rng(ctx, saved, device, cfg.seed, step)
            if ctx.is_main:
                _keep_metrics_until(run / "metrics.jsonl", step)
        elif has_ckpt:
            hint = " (a torchrun restart: launch with --resume auto)" if ctx.restart else ""
            raise TrainingError(f"{run} already holds a run; pass --resume to continue it or choose another --out{hint}")
        if ctx.is_main:
            run.mkdir(parents=True, exist_ok=True)
            if not resume and (run / "metrics.jsonl").exists():
                (run / "metrics.jsonl").unlink()
            ckpt.save_model(run, model, meta) if not resume else None
    elif resume:
        raise ConfigError("resume needs a run folder (out)")
    if step == 0:
        torch.manual_seed(cfg.seed + 1 + ctx.rank)
        model.on_fit_start(data.train.x[: min(len(data.train), 4096)].to(device))

    stepper: nn.Module = _Step(model)
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # a model whose training_step leaves some parameters without gradients sets this class flag
        unused = getattr(model, "ddp_find_unused_parameters", False)
        stepper = DDP(stepper, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=unused)
    if cfg.compile:
        stepper = torch.compile(stepper)
    amp_dtype = torch.bfloat16
    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if cfg.amp else contextlib.nullcontext

    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=step, disable=not (cfg.progress and ctx.is_main), unit="step", dynamic_ncols=True, leave=True)
    last_save = time.monotonic()
    scheduled = cfg.lr_schedule != "constant" or cfg.warmup_steps > 0
    epoch = step // steps_per_epoch
    # A host read (isfinite, float) every step would stall a GPU's queue, and ranks must agree on
    # time-based checkpoints; so on a GPU or under torchrun the loop counts non-finite losses on the
    # device and syncs every `sync_every` steps (and before any checkpoint). One CPU process checks
    # every step, as before.
    sync_every = 1 if device.type == "cpu" and not ctx.enabled else 20
    synced = step
    n_bad = torch.zeros((), device=device)

    def save_checkpoint(progress: dict[str, Any]) -> None:
        rngs = distributed.gather_rng(ctx, device)  # collective: every rank calls it, rank 0 writes
        if ctx.is_main:
            ckpt.save_checkpoint(run, model, opt, progress, extra_tensors=rngs)

    try:
        while step < total:
            start = step % steps_per_epoch
            t0 = time.perf_counter()
            sums: dict[str, torch.Tensor] = {}
            n_steps = n_seen = 0
            for x, y in batches.epoch(epoch, start):
                model.on_step(step, total)
                if scheduled:
                    for g in opt.param_groups:
                        g["lr"] = lr_at(cfg, step, total)
                with autocast():
                    res = stepper(x, y)
                if sync_every == 1:
                    if not torch.isfinite(res.loss):
                        raise _nonfinite(res, step, epoch)
                else:
                    n_bad += ~torch.isfinite(res.loss.detach())
                opt.zero_grad(set_to_none=True)
                res.loss.backward()
                opt.step()
                step += 1
                n_steps += 1
                n_seen += x.shape[0]
                for k, v in {"loss": res.loss, **res.terms}.items():
                    sums[k] = sums.get(k, 0) + v.detach().float()
                bar.update(1)
                if n_steps % 20 == 0 or step == total:
                    bar.set_postfix({k: f"{float(v) / n_steps:.4g}" for k, v in list(sums.items())[:4]}, refresh=False)
                due = bool(cfg.checkpoint_every) and step % cfg.checkpoint_every == 0
                if sync_every == 1:
                    due = due or time.monotonic() - last_save > 60 * cfg.checkpoint_minutes
                elif due or step % sync_every == 0 or step % steps_per_epoch == 0 or step == total:
                    late = ctx.is_main and time.monotonic() - last_save > 60 * cfg.checkpoint_minutes
                    flags = ctx.all_reduce_sum(torch.stack([n_bad, torch.tensor(float(late), device=device)]))
                    bad, late = flags.tolist()  # rank 0's clock decides for everyone
                    if bad:
                        raise TrainingError(f"non-finite loss in steps {synced}..{step - 1} (epoch {epoch + 1}); training stopped, the last good checkpoint is kept")
                    synced, due = step, due or late > 0
                if run is not None and due and step % steps_per_epoch:
                    save_checkpoint({"step": step, "epoch": epoch})
                    last_save = time.monotonic()
                if step >= total:
                    break
            seconds = time.perf_counter() - t0
            record: dict[str, Any] = {"epoch": epoch + 1, "step": step, "seconds": round(seconds, 4)}
            record["images_per_s"] = round(n_seen * ctx.world_size / seconds, 1) if seconds > 0 else None
            if ctx.enabled and sums:  # the mean over ranks of equal-share batch means is the global batch mean
                sums = dict(zip(sums, ctx.all_reduce_mean(torch.stack(list(sums.values())))))
            record.update({f"train/{k}": float(v) / max(n_steps, 1) for k, v in sums.items()})
            if data.val is not None:
                val = validate(model, data.val, max(cfg.batch_size, 512), cfg.seed, autocast, ctx)
                record.update({f"val/{k}": v for k, v in val.items()})
                bar.set_postfix({f"val_{k}": f"{v:.4g}" for k, v in list(val.items())[:3]}, refresh=True)
            if run is not None:
                if ctx.is_main:
                    with open(run / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(record) + "\n")
                save_checkpoint({"step": step, "epoch": epoch + 1})
                last_save = time.monotonic()
            epoch += 1
    finally:
        bar.close()
    model.eval()
    model.on_fit_end(data.train.x)
    # rank 0 alone saves, evaluates and reports (no collectives in there: models run them only in
    # training mode); the other ranks wait at a barrier (see distributed.py on its timeout)
    if run is not None and ctx.is_main:
        ckpt.save_model(run, model, meta)
        if cfg.report:
            finish_run(run, model, data, iw_samples=cfg.eval_iw_samples)
    ctx.barrier()
    return model


def finish_run(run: Path, model, data, iw_samples: int = 100) -> dict[str, Any]:
    """Evaluate on the test split, write eval.json, and build report.html."""
    from ..evaluate import evaluate
    from ..viz.report import build_report

    metrics = evaluate(model, data, "test", iw_samples=iw_samples)
    ckpt.write_json(run / "eval.json", metrics)
    build_report(run, model=model, data=data)
    return metrics
