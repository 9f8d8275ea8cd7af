"""The training loop. It trains any registered model through the model's own hooks
(``training_step``, ``param_groups``, ``on_step``, ``on_fit_start``, ``on_fit_end``), never looks at
the model's name, and draws nothing: evaluation and the report are the run layer's (``aezoo.run``).

Determinism: batches depend only on (seed, epoch, position), the checkpoint stores weights, optimizer
state, EMA, RNG state and the partial epoch's sums after a step, the learning rate and the EMA decay
are pure functions of the step, and validation runs on a forked, seeded RNG; so a run stopped at any
checkpoint and resumed ends with the same weights and the same metrics.jsonl as an uninterrupted run.

A checkpoint is committed to disk only once the loss of its weights has been seen finite (at the
next training step, or on a probe batch at the end), so a non-finite loss never leaves poisoned
weights behind as "the last good checkpoint" (issue 17).
"""
from __future__ import annotations

import contextlib
import math
import os
import secrets
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..config import build, check, drop_retired, to_dict
from ..data.batching import make_batches
from ..data.core import data_root
from ..errors import ConfigError, DataError, RunWarning, TrainingError
from ..utils import bf16_pays
from . import checkpoint as ckpt
from . import distributed, loggers, rundir
from .ema import WeightEMA


EPOCH_CHECKPOINTS = 20  # epoch-end checkpoints per run, at most about this many (issue 23)


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
    weight_decay: float = 0.0  # decoupled (AdamW), on weights with 2+ dims (not biases or norms)
    clip_grad_norm: float | None = None  # clip each parameter group's gradient norm; the pre-clip norm is logged as grad_norm
    ema_decay: float | None = None  # keep an EMA of the weights; model.safetensors then serves it
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = False  # bf16 autocast: bf16 matmuls/convs, fp32 master weights and optimizer, fp32 KL and log-densities
    compile: bool = False  # torch.compile the training step
    workers: int = 2  # DataLoader worker processes reading streamed data (0: in the training process)
    checkpoint_every: int = 0  # steps between checkpoints (0: epoch ends and every checkpoint_minutes)
    checkpoint_minutes: float = 10.0
    progress: bool = True  # a progress bar on a terminal, else one line per epoch on stderr
    log: tuple[str, ...] = ()  # loggers besides metrics.jsonl: tensorboard
    report: bool = True  # evaluate and write report.html at the end (with ``out``; the run layer's)
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
        check(0 <= self.weight_decay < math.inf, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        check(self.clip_grad_norm is None or 0 < self.clip_grad_norm < math.inf, "clip_grad_norm", f"must be > 0, got {self.clip_grad_norm}")
        check(self.ema_decay is None or 0 < self.ema_decay < 1, "ema_decay", f"must be in (0, 1), e.g. 0.999, got {self.ema_decay}")
        check(self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0")
        check(self.workers >= 0, "workers", f"must be >= 0, got {self.workers}")
        check(self.eval_iw_samples >= 0, "eval_iw_samples", "must be >= 0")
        loggers.check_names(self.log)


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


def make_optimizers(model, cfg: TrainConfig) -> dict[str, tuple[torch.optim.Optimizer, Any]]:
    """One AdamW per parameter group the model declares (``Autoencoder.param_groups``): name -> (optimizer, group).
    Weight decay is decoupled (Loshchilov & Hutter 2019) and applies to weights with 2+ dims only."""
    groups = model.param_groups()
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    seen: set[int] = set()
    for g in groups:
        if any(id(p) in seen for p in g.params):
            raise ConfigError(f"model {model.name!r}: parameter group {g.name!r} repeats parameters of another group")
        seen |= {id(p) for p in g.params}
    if len({g.name for g in groups}) != len(groups) or seen != trainable:
        raise ConfigError(f"model {model.name!r}: param_groups must name each group once and hold every trainable parameter exactly once")
    out = {}
    for g in groups:
        decay = [p for p in g.params if p.dim() >= 2]
        rest = [p for p in g.params if p.dim() < 2]
        wd = cfg.weight_decay if g.weight_decay is None else g.weight_decay
        torch_groups = [{"params": ps, "weight_decay": w} for ps, w in ((decay, wd), (rest, 0.0)) if ps]
        dev = g.params[0].device.type if g.params else "cpu"
        # fused AdamW: one kernel per step instead of several per parameter (CPU and CUDA in torch >= 2.4)
        opt = torch.optim.AdamW(torch_groups, lr=g.lr or cfg.lr, betas=g.betas, eps=g.eps, fused=dev in ("cpu", "cuda"))
        out[g.name] = (opt, g)
    return out


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


def _rank() -> int:
    return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0


@dataclass
class Position:
    """Where the run is: what a checkpoint stores besides tensors, and what the epoch's record sums."""

    step: int = 0
    epoch: int = 0  # 0-based epoch in progress
    offset: int = 0  # examples of this epoch's permutation already trained on
    sums: dict[str, torch.Tensor] = field(default_factory=dict)  # loss terms summed over this epoch's steps
    n_steps: int = 0  # steps of this epoch (since its start, across resumptions)
    n_seen: int = 0  # examples of this epoch, on this rank
    seconds: float = 0.0  # training seconds of this epoch before the current process


@dataclass
class _Pending:
    """A checkpoint serialized after a step, written once the loss of its weights is seen finite."""

    step: int
    files: dict[str, bytes]


class Fit:
    """One invocation of the training loop: ``Fit(...)()`` trains and returns the model; each named
    method is one step of it. Its caller holds the run folder's lock (``fit`` and ``aezoo.run`` do)."""

    def __init__(self, model, data, out: str | Path | None, resume: bool | str, options: dict[str, Any]):
        self.model, self.data = model, data
        self.run = Path(out) if out is not None else None
        if self.run is None and resume:
            raise ConfigError("resume needs a run folder (out)")
        self.is_main = _rank() == 0
        self.resume, self.meta, self.changed, self.cfg = self._open_run(resume, options)
        _check_data(model, data)
        self._setup_device()
        model.to(self.device).train()
        self.batches = make_batches(data.train, self.cfg.batch_size, self.device, self.cfg.seed, self.ctx.rank, self.ctx.world_size,
                                    data.dynamic_binarization, self.cfg.workers)
        if len(self.batches) == 0:
            raise DataError(f"dataset {data.name!r} has {len(data.train)} training examples, fewer than one batch")
        self.optimizers = make_optimizers(model, self.cfg)
        self.pos = Position()
        self.committed: int | None = None  # step of the newest checkpoint on disk
        self.pending: _Pending | None = None
        self.ema: WeightEMA | None = None
        self.last_save = time.monotonic()
        if self.resume:
            self._restore()
        else:
            torch.manual_seed(self.cfg.seed + 1 + self.ctx.rank)
            model.on_fit_start(data.train.x[: min(len(data.train), 4096)].to(self.device))
            self.ema = WeightEMA(model, self.cfg.ema_decay) if self.cfg.ema_decay else None
        self.last_saved_step = self.pos.step
        self.lengthened: dict[str, Any] | None = None  # set by _total_steps when min_steps lengthens the run
        self.total = self._total_steps()
        if self.lengthened is not None and self.is_main and not self.resume:
            n = self.lengthened
            print(f"aezoo: {len(data.train)} training examples make {n['steps_by_epochs']} steps in {n['epochs']} epochs; training "
                  f"{n['min_steps']} steps (~{n['epochs_run']:g} epochs), the model's min_steps for small data (--min-steps 0: off)", file=sys.stderr)
        self._write_config()
        self.stepper = self._wrap_step()
        self.loggers = self._open_loggers()

    # --- setting up -------------------------------------------------------------------------
    def _open_run(self, resume, options):
        """Fresh or resumed; the options that apply (the recorded ones, changed where --resume may)."""
        run, model = self.run, self.model
        meta, changed = None, {}
        if run is not None:
            has_ckpt = (run / ckpt.CHECKPOINT).exists()
            if resume == "auto":
                resume = has_ckpt
            if resume:
                if not has_ckpt:
                    raise TrainingError(f"nothing to resume: no {ckpt.CHECKPOINT} in {run}")
                meta = ckpt.run_meta(run)  # the format is checked on every load (issue 17 item 6)
                recorded = {**meta, "config": drop_retired(type(model.config), meta["config"])}  # fields since removed
                rundir.check_same_model_and_data(run, recorded, model.name, to_dict(model.config), self.data.describe())
                options, changed = rundir.resume_options(meta.get("train", {}), options)
            elif has_ckpt or (run / ckpt.MODEL).exists():
                hint = " (a torchrun restart: launch with --resume auto)" if int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) else ""
                raise TrainingError(f"{run} already holds a run; pass --resume to continue it or choose another --out{hint}")
        defaults = {} if resume else model.train_defaults
        return bool(resume), meta, changed, build(TrainConfig, {**defaults, **options})

    def _setup_device(self) -> None:
        cfg = self.cfg
        self.device = pick_device(cfg.device)
        self.ctx = distributed.init(self.device.type)
        if self.ctx.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.ctx.local_rank)
        if cfg.batch_size % self.ctx.world_size:  # unequal shares would weight DDP's gradient mean unevenly
            raise ConfigError(f"batch_size {cfg.batch_size} is the global batch; it must be divisible by the {self.ctx.world_size} processes")
        # --amp is bf16 autocast on CPUs too: the weights and Adam stay fp32 (autocast casts them for each
        # matmul), and nn.distributions upcasts before any KL or log-density sums. On a CPU with
        # AVX512-BF16 it runs the VAE-MLP step 1.9x faster at the same ELBO (benchmarks/README.md, issue 16);
        # without native bf16 it is emulated and slower than fp32, which the user is told.
        if cfg.amp and self.is_main and not bf16_pays(self.device):
            warnings.warn(RunWarning(f"--amp: this {self.device.type.upper()} has no native bf16 (AVX512-BF16 or AMX on a CPU), "
                                     "so bf16 autocast is emulated and likely slower than fp32"), stacklevel=2)
        self.autocast = (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)) if cfg.amp else contextlib.nullcontext
        # A host read (isfinite, float) every step would stall a GPU's queue, and ranks must agree on
        # time-based checkpoints; so on a GPU or under torchrun the loop counts non-finite losses on the
        # device and syncs every `sync_every` steps (and before committing a checkpoint). One CPU
        # process checks every step.
        self.sync_every = 1 if self.device.type == "cpu" and not self.ctx.enabled else 20
        self.n_bad = torch.zeros((), device=self.device)
        self.synced = 0

    def _restore(self) -> None:
        """Weights, optimizers, EMA, RNG and position from the checkpoint."""
        model, cfg = self.model, self.cfg
        tensors, meta = ckpt.read_checkpoint(self.run, model.name)
        path = self.run / ckpt.CHECKPOINT
        ckpt.load_state(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, path, meta.get("config"))
        info = meta["optimizer"]
        if meta["version"] == 1:  # one optimizer, tensors optim.{param}.{key}
            if list(self.optimizers) != ["model"]:
                raise TrainingError(f"{path}: a format-1 checkpoint has one optimizer, the model declares {list(self.optimizers)}")
            ckpt.restore_optimizer("model", self.optimizers["model"][0], tensors, info, prefix="optim.")
        else:
            if sorted(info) != sorted(self.optimizers):
                raise TrainingError(f"{path}: the checkpoint has optimizers {sorted(info)}, the model declares {sorted(self.optimizers)}")
            for name, (opt, _) in self.optimizers.items():
                ckpt.restore_optimizer(name, opt, tensors, info[name])
        if cfg.ema_decay:
            self.ema = WeightEMA(model, cfg.ema_decay)
            ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
            if set(ema) != set(self.ema.names):
                raise TrainingError(f"{path}: the checkpoint holds no weight EMA for this run's ema_decay")
            self.ema.load(ema)
        torch.set_rng_state(tensors["rng.torch"])
        cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        p = meta["progress"]
        self.pos = Position(step=int(p["step"]), epoch=int(p["epoch"]), offset=int(p.get("offset", (p["step"] % len(self.batches)) * cfg.batch_size)),
                            sums={k: tensors[f"sums.{k}"].to(self.device) for k in p.get("terms", [])},
                            n_steps=int(p.get("n_steps", 0)), n_seen=int(p.get("n_seen", 0)), seconds=float(p.get("seconds", 0.0)))
        if self.ctx.enabled:
            distributed.restore_rng(self.ctx, tensors, self.device, cfg.seed, self.pos.step)
        self.committed = self.pos.step
        self.synced = self.pos.step

    def _total_steps(self) -> int:
        """The step budget, from where the run stands (a resumed run may change epochs, steps or batch_size)."""
        p, cfg = self.pos, self.cfg
        if cfg.steps is not None:
            if cfg.steps < p.step:
                raise ConfigError(f"config field 'steps': the run is already at step {p.step}; --steps {cfg.steps} is behind it")
            return cfg.steps
        if p.epoch >= cfg.epochs:
            by_epochs = p.step
        else:
            by_epochs = p.step + self.batches.batches_from(p.offset) + (cfg.epochs - p.epoch - 1) * len(self.batches)
        if cfg.min_steps > by_epochs:  # small data: the member's declared floor (or --min-steps); say so (issue 23)
            self.lengthened = {"epochs": cfg.epochs, "steps_by_epochs": by_epochs, "min_steps": cfg.min_steps,
                               "epochs_run": round(cfg.min_steps / len(self.batches), 1)}
        return max(by_epochs, cfg.min_steps)

    def _write_config(self) -> None:
        """config.json says what runs now, and that the run has not finished (yet)."""
        run = self.run
        if run is None or not self.is_main:
            return
        ckpt.clean_temp_files(run)  # a writer killed mid-write leaves these; we hold the lock (issue 17 item 9)
        for stale in ("eval.json", "report.html"):  # they describe weights about to change
            (run / stale).unlink(missing_ok=True)
        if self.resume:
            rundir.keep_metrics_until(run / "metrics.jsonl", self.pos.step, self.pos.epoch)
            meta = self.meta
            meta["resumed"] = [*meta.get("resumed", []), {"step": self.pos.step, "changed": self.changed}]
        else:
            (run / "metrics.jsonl").unlink(missing_ok=True)
            shutil.rmtree(run / "tensorboard", ignore_errors=True)  # of a run killed before its first checkpoint
            meta = {"format": ckpt.FORMAT, "model": self.model.name, "config": to_dict(self.model.config), "data": self.data.describe(),
                    "run_id": secrets.token_hex(8)}  # its checkpoints record it (issue 22: another run's checkpoint is refused)
            root = data_root(self.data.source)
            if root is not None:  # a run trained from data/photos is usable from another folder (issue 23)
                meta["data_root"] = root
        meta.update({"format": ckpt.FORMAT, "train": to_dict(self.cfg), "world_size": self.ctx.world_size,
                     "total_steps": self.total, "finished": False})
        if self.lengthened is not None:
            meta["lengthened"] = self.lengthened  # the report says it (issue 23)
        meta.pop("stopped", None)
        self.meta = meta
        self._disk(ckpt.write_json, run / "config.json", meta)

    def _wrap_step(self) -> nn.Module:
        stepper: nn.Module = _Step(self.model)
        if self.ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            stepper = DDP(stepper, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.cfg.compile:
            stepper = torch.compile(stepper)
        return stepper

    def _open_loggers(self) -> list[loggers.Logger]:
        cfg, out = self.cfg, []
        if cfg.log and self.run is None:
            raise ConfigError("config field 'log': loggers write into the run folder; give out")
        if not self.is_main:
            return out
        if self.run is not None:
            out.append(loggers.MetricsFile(self.run))
            out += [loggers.LOGGERS[name](self.run, to_dict(cfg), self.pos.step) for name in cfg.log]
        from tqdm.auto import tqdm

        tty = sys.stderr.isatty()
        self.bar = tqdm(total=self.total, initial=self.pos.step, disable=not (cfg.progress and tty), unit="step", dynamic_ncols=True, leave=True)
        if cfg.progress and not tty:
            by_epochs = cfg.steps is None and self.total > cfg.min_steps  # with the floor in force, epochs are not the budget
            out.append(loggers.EpochLines(cfg.epochs if by_epochs else None, self.total))
        return out

    # --- the loop -----------------------------------------------------------------------------
    def __call__(self):
        try:
            while self.pos.step < self.total:
                self._train_epoch()
            self._finish()
        except TrainingError as e:
            self._stopped(str(e))
            raise
        finally:
            if self.is_main:
                self.bar.close()
                for lg in self.loggers:
                    lg.close()
        return self.model

    def _train_epoch(self) -> None:
        p = self.pos
        t0 = time.perf_counter() - p.seconds
        completed = True
        for x, y in self.batches.epoch(p.epoch, offset=p.offset):
            self._train_step(x, y)
            if self._checkpoint_due():
                p.seconds = time.perf_counter() - t0
                self._prepare_checkpoint()
            if p.step >= self.total:
                completed = self.batches.batches_from(p.offset) == 0
                break
        self._end_epoch(time.perf_counter() - t0, completed)

    def _train_step(self, x, y) -> None:
        model, cfg, p = self.model, self.cfg, self.pos
        model.on_step(p.step, self.total)
        lr = lr_at(cfg, p.step, self.total)
        for opt, group in self.optimizers.values():
            for g in opt.param_groups:
                g["lr"] = lr if group.lr is None else group.lr * lr / cfg.lr
        with self.autocast():
            res = self.stepper(x, y)
        self._check_finite(res)
        if self.pending is not None:
            self._commit()  # the loss of its weights has just been seen finite
        for opt, _ in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        res.loss.backward()
        terms = {"loss": res.loss, **res.terms}
        if cfg.clip_grad_norm:
            for i, (name, (_, group)) in enumerate(self.optimizers.items()):
                norm = torch.nn.utils.clip_grad_norm_(group.params, cfg.clip_grad_norm)  # the norm before clipping
                terms["grad_norm" if i == 0 else f"grad_norm_{name}"] = norm
        for opt, _ in self.optimizers.values():
            opt.step()
        if self.ema is not None:
            self.ema.update(p.step)
        p.step += 1
        p.n_steps += 1
        p.n_seen += x.shape[0]
        p.offset += cfg.batch_size
        for k, v in terms.items():
            p.sums[k] = p.sums.get(k, 0) + v.detach().float()
        if self.is_main:
            self.bar.update(1)
            if p.n_steps % loggers.STEP_EVERY == 0 or p.step == self.total:
                self.bar.set_postfix({k: f"{float(v) / p.n_steps:.4g}" for k, v in list(p.sums.items())[:4]}, refresh=False)
                if any(lg.wants_steps for lg in self.loggers):
                    scalars = {k: float(v.detach()) for k, v in terms.items()} | {"lr": lr}
                    for lg in self.loggers:
                        lg.step(p.step, scalars)

    def _check_finite(self, res) -> None:
        p = self.pos
        if self.sync_every == 1:
            if not torch.isfinite(res.loss):
                bad = [k for k, v in res.terms.items() if not torch.isfinite(v).all()]
                name = bad[0] if bad else "loss"
                value = float(res.terms[name].detach()) if bad else float(res.loss.detach())
                raise TrainingError(f"non-finite loss at step {p.step} (epoch {p.epoch + 1}): term {name!r} = {value}; training stopped; {self._on_disk()}")
            return
        self.n_bad += ~torch.isfinite(res.loss.detach())
        if self.pending is not None:
            self._sync(p.step + 1)

    def _sync(self, upto: int) -> bool:
        """Agree over ranks on non-finite losses so far (raising if any) and on rank 0's clock; True when a
        time-based checkpoint is due."""
        late = self.is_main and time.monotonic() - self.last_save > 60 * self.cfg.checkpoint_minutes
        flags = self.ctx.all_reduce_sum(torch.stack([self.n_bad, torch.tensor(float(late), device=self.device)]))
        bad, late = flags.tolist()  # rank 0's clock decides for everyone
        if bad:
            raise TrainingError(f"non-finite loss in steps {self.synced}..{upto - 1} (epoch {self.pos.epoch + 1}); training stopped; {self._on_disk()}")
        self.synced = upto
        return late > 0

    def _checkpoint_due(self) -> bool:
        step, cfg = self.pos.step, self.cfg
        due = bool(cfg.checkpoint_every) and step % cfg.checkpoint_every == 0
        if self.sync_every == 1:
            return self.run is not None and (due or time.monotonic() - self.last_save > 60 * cfg.checkpoint_minutes)
        if due or step % self.sync_every == 0 or step == self.total:
            due = self._sync(step) or due
        return self.run is not None and due

    def _end_epoch(self, seconds: float, completed: bool) -> None:
        """The epoch's record (marked partial when a step budget ends it mid-way), validation, and the
        epoch-end checkpoint."""
        p, cfg, ctx = self.pos, self.cfg, self.ctx
        if self.sync_every > 1:
            self._sync(p.step)
        record: dict[str, Any] = {"epoch": p.epoch + 1, "step": p.step, "seconds": round(seconds, 4)}
        record["images_per_s"] = round(p.n_seen * ctx.world_size / seconds, 1) if seconds > 0 else None
        if not completed:
            record["partial"] = True
            record["epoch_fraction"] = round(min(p.offset / len(self.data.train), 1.0), 4)
        sums = p.sums
        if ctx.enabled and sums:  # the mean over ranks of equal-share batch means is the global batch mean
            sums = dict(zip(sums, ctx.all_reduce_mean(torch.stack(list(sums.values())))))
        record.update({f"train/{k}": float(v) / max(p.n_steps, 1) for k, v in sums.items()})
        if self.data.val is not None:
            bs = max(cfg.batch_size, 512)
            record.update({f"val/{k}": v for k, v in validate(self.model, self.data.val, bs, cfg.seed, self.autocast, ctx).items()})
            if self.ema is not None:
                with self.ema.swapped_in(self.model):
                    record.update({f"val_ema/{k}": v for k, v in validate(self.model, self.data.val, bs, cfg.seed, self.autocast, ctx).items()})
        if self.is_main:
            self.bar.set_postfix({k.replace("/", "_"): f"{v:.4g}" for k, v in record.items() if k.startswith("val/")}, refresh=True)
            for lg in self.loggers:
                self._disk(lg.epoch, record)
        if completed:
            self.pos = Position(step=p.step, epoch=p.epoch + 1)
        else:
            p.seconds = seconds
        if self.run is not None and self._epoch_checkpoint_due():
            self._prepare_checkpoint()

    def _epoch_checkpoint_due(self) -> bool:
        """An epoch's end checkpoints unless epochs are tiny: at most about EPOCH_CHECKPOINTS of them per run,
        plus the last (issue 23: 247 images at the VAE's 1,000-step floor wrote 500 checkpoints of 154 MB).
        Steps (--checkpoint-every) and time (checkpoint_minutes) checkpoint on their own, mid-epoch."""
        step = self.pos.step
        return step >= self.total or step - self.last_saved_step >= self.total / EPOCH_CHECKPOINTS

    # --- checkpoints --------------------------------------------------------------------------
    def _served_state(self) -> dict[str, torch.Tensor]:
        """The weights model.safetensors serves: the EMA when the run keeps one, else the weights."""
        state = ckpt.model_state(self.model)
        if self.ema is not None:
            state.update(self.ema.tensors())
        return state

    def _weight_files(self, finished: bool) -> dict[str, bytes]:
        head = {"step": self.pos.step, "finished": finished}
        if self.ema is None:
            return {ckpt.MODEL: ckpt.encode(self._served_state(), ckpt.weights_header(self.model, weights="raw", **head))}
        return {ckpt.RAW: ckpt.encode(ckpt.model_state(self.model), ckpt.weights_header(self.model, weights="raw", **head)),
                ckpt.MODEL: ckpt.encode(self._served_state(), ckpt.weights_header(self.model, weights="ema", **head))}

    def _prepare_checkpoint(self) -> None:
        """Serialize the state after this step; ``_commit`` writes it once its loss is seen finite."""
        p, ctx = self.pos, self.ctx
        rngs = distributed.gather_rng(ctx, self.device)  # collective: every rank calls it, rank 0 writes
        sums = p.sums
        if ctx.enabled and sums:
            sums = dict(zip(sums, ctx.all_reduce_mean(torch.stack(list(sums.values())))))
        self.last_save = time.monotonic()
        self.last_saved_step = p.step
        if not self.is_main:
            self.pending = _Pending(p.step, {})
            return
        tensors = {f"model.{k}": v for k, v in ckpt.model_state(self.model).items()}
        tensors.update(rngs)
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
        if self.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.ema.tensors().items()})
        tensors.update({f"sums.{k}": v for k, v in sums.items()})
        optim = {}
        for name, (opt, _) in self.optimizers.items():
            t, optim[name] = ckpt.optimizer_tensors(name, opt)
            tensors.update(t)
        progress = {"step": p.step, "epoch": p.epoch, "offset": p.offset, "n_steps": p.n_steps, "n_seen": p.n_seen,
                    "seconds": p.seconds, "total_steps": self.total, "terms": list(sums)}
        meta = {"format": ckpt.CKPT_FORMAT, "model": self.model.name, "config": to_dict(self.model.config), "progress": progress, "optimizer": optim,
                "run": ckpt.run_identity(self.meta or {})}
        self.pending = _Pending(p.step, {ckpt.CHECKPOINT: ckpt.encode(tensors, meta), **self._weight_files(finished=False)})

    def _commit(self) -> None:
        pending, self.pending = self.pending, None
        for name, data in pending.files.items():  # checkpoint first: a reader takes the newer of it and the weights
            self._disk(ckpt.atomic_write, self.run / name, data)
            if name == ckpt.CHECKPOINT:
                self.committed = pending.step

    def _on_disk(self) -> str:
        """What a stopped run leaves to resume from, in words (issue 17 item 5)."""
        if self.run is None:
            return "no run folder"
        if self.committed is None:
            return "no checkpoint was written before it (they come at epoch ends and every --checkpoint-every steps), so there is nothing to resume"
        return (f"the last checkpoint on disk is of step {self.committed}, whose loss was finite: --resume continues from it "
                "(a lower --lr or --clip-grad-norm may help)")

    def _disk(self, write, *args) -> None:
        """Run a write into the run folder; a full disk or a permission error names the file and what is intact."""
        try:
            write(*args)
        except OSError as e:
            kept = f"the checkpoint of step {self.committed} is intact" if self.committed is not None else "no checkpoint had been written yet"
            raise TrainingError(f"cannot write {e.filename or self.run}: {e.strerror or e}; {kept}; "
                                "free space (or fix permissions) and continue with --resume") from None

    # --- the end ------------------------------------------------------------------------------
    @torch.no_grad()
    def _probe_is_finite(self) -> bool:
        """The loss of the final weights on a fixed training batch (eval mode, forked RNG): the check that
        the next training step gives every other checkpoint."""
        x = self.data.train.x[: self.cfg.batch_size].to(self.device)
        y = None if self.data.train.y is None else self.data.train.y[: self.cfg.batch_size].to(self.device)
        self.model.eval()
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []), self.autocast():
            ok = bool(torch.isfinite(self.model.training_step(x, y).loss))
        self.model.train()
        return ok

    def _finish(self) -> None:
        model, data = self.model, self.data
        if not self._probe_is_finite():
            raise TrainingError(f"the weights after the last step (step {self.pos.step}) give a non-finite loss; training stopped; {self._on_disk()}")
        if self.pending is not None and self.is_main:
            self._commit()
        model.eval()
        served = None
        if self.ema is not None:  # each set of weights gets its own ex-post fit (on_fit_end)
            with self.ema.swapped_in(model):
                model.on_fit_end(data.train.x)
                served = {k: v.clone() for k, v in model.state_dict().items()}
        model.on_fit_end(data.train.x)
        if self.run is not None and self.is_main:
            files = self._weight_files(finished=True)
            if served is not None:
                files[ckpt.MODEL] = ckpt.encode(served, ckpt.weights_header(model, weights="ema", step=self.pos.step, finished=True))
            for name, blob in files.items():
                self._disk(ckpt.atomic_write, self.run / name, blob)
            self.meta.update({"finished": True, "step": self.pos.step})
            self._disk(ckpt.write_json, self.run / "config.json", self.meta)
            ckpt.clean_temp_files(self.run)
        if served is not None:
            model.load_state_dict(served)  # the returned model is the one aezoo.load serves

    def _stopped(self, why: str) -> None:
        if self.run is not None and self.is_main:
            self.meta["stopped"] = why
            with contextlib.suppress(OSError):
                ckpt.write_json(self.run / "config.json", self.meta)


def fit(model, data, *, out: str | Path | None = None, resume: bool | str = False, **options: Any):
    """Train ``model`` on ``data`` (an ``aezoo.data.Dataset``) and return it (in eval mode, holding the
    weights ``aezoo.load`` serves: the EMA when ``ema_decay`` is set). With ``out``, keep the run folder:
    config.json, checkpoint.safetensors, model.safetensors, metrics.jsonl (no evaluation or report:
    ``aezoo.train`` adds those).

    ``options`` are ``TrainConfig`` fields; those not given come from the model's declared
    ``train_defaults``, then from ``TrainConfig``; on resume, from the run's config.json.
    ``resume``: True continues the run in ``out``; "auto" continues it when it has a checkpoint and
    starts it otherwise (for torchrun ``--max-restarts`` and requeued jobs)."""
    run = Path(out) if out is not None else None
    lock = rundir.locked(run, enabled=_rank() == 0) if run is not None else contextlib.nullcontext()
    with lock:
        model = Fit(model, data, out, resume, options)()
    return model
