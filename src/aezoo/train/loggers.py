"""Where a run's numbers go. ``metrics.jsonl`` (one record per epoch) is always written; ``--log NAME``
adds a logger from ``LOGGERS``. A logger is three methods, so wandb or mlflow is one more class:

    @logger("wandb")
    class WandB(Logger):
        def __init__(self, run_dir, config, resume_step): self.run = wandb.init(dir=run_dir, config=config, resume="allow")
        def epoch(self, record): self.run.log(record, step=record["step"])
        def step(self, step, scalars): self.run.log(scalars, step=step)

Only rank 0 logs. Records are dicts of numbers keyed ``train/loss``, ``val/kl``, ...; step scalars
(``loss``, ``lr``, ``grad_norm``) come every ``STEP_EVERY`` steps.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError

STEP_EVERY = 20  # steps between step scalars (they cost a host sync on a GPU)
LOGGERS: dict[str, Callable[..., "Logger"]] = {}


def logger(name: str):
    def deco(cls):
        LOGGERS[name] = cls
        return cls

    return deco


class Logger:
    wants_steps = False  # step scalars cost a host sync: only for loggers that want them

    def epoch(self, record: dict[str, Any]) -> None:
        """A record of an epoch (or of the partial epoch a step budget ends in)."""

    def step(self, step: int, scalars: dict[str, float]) -> None:
        """Scalars of one training step."""

    def close(self) -> None:
        pass


class MetricsFile(Logger):
    """``metrics.jsonl``: one JSON record per epoch, appended."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "metrics.jsonl"

    def epoch(self, record):
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


class EpochLines(Logger):
    """One line per epoch on stderr: what CI logs, ``nohup`` and cluster jobs get instead of a
    progress bar's thousands of carriage returns."""

    def __init__(self, epochs: int | None, total_steps: int):
        self.epochs, self.total = epochs, total_steps

    def epoch(self, record):
        of = f"/{self.epochs}" if self.epochs else ""
        part = f" (partial: {record['epoch_fraction']:.0%})" if record.get("partial") else ""
        keys = ("train/loss", "val/loss", "val_ema/loss", "train/grad_norm")
        terms = ", ".join(f"{k.replace('/', ' ')} {record[k]:.4g}" for k in keys if isinstance(record.get(k), float))
        speed = f", {record['images_per_s']:.0f} images/s" if record.get("images_per_s") else ""
        print(f"epoch {record['epoch']}{of}{part} step {record['step']}/{self.total}: {terms} ({record['seconds']:.1f}s{speed})",
              file=sys.stderr, flush=True)


@logger("tensorboard")
class TensorBoard(Logger):
    """TensorBoard event files in ``RUN/tensorboard`` (``tensorboard --logdir runs/`` finds every run).
    A resumed run purges the events after its checkpoint's step, so a killed run's tail is not drawn twice."""

    wants_steps = True

    def __init__(self, run_dir: Path, config: dict[str, Any], resume_step: int = 0):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError('--log tensorboard needs the tensorboard package: pip install "aezoo[tensorboard]"') from None
        # events after the checkpoint's step are the killed run's tail: TensorBoard hides them
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)
        if not resume_step:
            self.writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```", 0)

    def epoch(self, record):
        for k, v in record.items():
            if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                self.writer.add_scalar(k, v, record["step"])
        self.writer.flush()

    def step(self, step, scalars):
        for k, v in scalars.items():
            self.writer.add_scalar(f"step/{k}", v, step)

    def close(self):
        self.writer.close()


def check_names(names) -> None:
    for n in names:
        if n not in LOGGERS:
            raise ConfigError(f"config field 'log': unknown logger {n!r}; choose from {', '.join(sorted(LOGGERS))}")
