"""The run folder's guarantees (issue 17): one writer at a time, a config.json equal to what ran, and
the rules of ``--resume``.

The lock is an OS file lock (``flock`` on ``RUN/.aezoo.lock``): the kernel drops it when the process
ends, however it ends, so a SIGKILLed run never leaves a stale lock behind. Under torchrun only rank 0
takes it (only rank 0 writes the folder).

What ``--resume`` may change, applied from the resumed step on: the step budget (``epochs``,
``steps``), ``batch_size`` (the epoch continues from the same example), the learning rate and its
schedule (``lr``, ``lr_schedule``, ``warmup_steps``, ``min_lr``: the curve is recomputed for the new
budget), ``weight_decay``, ``clip_grad_norm``, the ``ema_decay`` value, and how the run is executed
(``device``, ``amp``, ``compile``, checkpoints, logging, the report). Refused with one line naming the
field: any model config field (the weights have its shapes), ``seed`` (it fixes the data order and
the noise), switching weight EMA on or off, and other data. ``config.json`` records what runs now,
and its ``resumed`` list keeps each resumption's step and changed fields.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TrainingError
from . import checkpoint as ckpt

LOCK = ".aezoo.lock"
MAY_CHANGE = frozenset({"epochs", "steps", "min_steps", "batch_size", "lr", "lr_schedule", "warmup_steps", "min_lr", "weight_decay",
                        "clip_grad_norm", "ema_decay", "device", "amp", "compile", "checkpoint_every", "checkpoint_minutes",
                        "progress", "report", "eval_iw_samples", "log", "workers"})
_held: dict[str, list[int]] = {}  # resolved run folder -> [fd, depth] of the locks this process holds


@contextlib.contextmanager
def locked(run: Path, enabled: bool = True):
    """Hold the run folder's lock inside the block (re-entrant within a process)."""
    if not enabled:
        yield
        return
    run.mkdir(parents=True, exist_ok=True)
    key = str(run.resolve())
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    fd = os.open(run / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise TrainingError(f"{run} is in use by another aezoo process (pid {holder}); wait for it to end or choose another --out") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[key] = [fd, 1]
    try:
        yield
    finally:
        del _held[key]
        os.close(fd)  # releases the lock


def is_locked(run: Path) -> bool:
    """Whether a live process (this one included) holds the run folder's lock."""
    if str(Path(run).resolve()) in _held:
        return True
    try:
        fd = os.open(Path(run) / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops a shared lock taken just now


# --- resuming ----------------------------------------------------------------------------------
def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def _first_difference(old: Any, new: Any, path: str = "") -> str | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            d = _first_difference(old.get(k), new.get(k), f"{path}.{k}" if path else str(k))
            if d is not None:
                return d
        return None
    return None if old == new else path


def _get(d: dict, dotted: str) -> Any:
    for k in dotted.split("."):
        d = d.get(k) if isinstance(d, dict) else None
    return d


def check_same_model_and_data(run: Path, meta: dict[str, Any], model_name: str, config: dict[str, Any], data: dict[str, Any]) -> None:
    where = run / "config.json"
    if meta["model"] != model_name:
        raise ConfigError(f"{run} holds a {meta['model']!r} run, not {model_name!r}")
    field = _first_difference(meta["config"], _plain(config))
    if field is not None:
        raise ConfigError(f"--resume cannot change model config field {field!r} ({_get(meta['config'], field)!r} in {where}, "
                          f"{_get(_plain(config), field)!r} asked for): the weights have its shapes; start a new run with another --out")
    if "data" in meta:  # where the files are (source) and the class names may change; the data may not
        strip = lambda d: {k: v for k, v in d.items() if k not in ("source", "class_names")}  # noqa: E731
        field = _first_difference(strip(meta["data"]), strip(_plain(data)))
        if field is not None:
            raise ConfigError(f"--resume with other data: {field} is {_get(meta['data'], field)!r} in {where} but "
                              f"{_get(_plain(data), field)!r} now; resume on the run's own data (leave out --data)")


def resume_options(recorded: dict[str, Any], options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list]]:
    """The training options of a resumed run: the recorded ones, with ``options`` applied where
    ``--resume`` may change them. Returns (options, {field: [old, new]} of what changed)."""
    merged = {**recorded, **options}
    changed = {}
    for k, new in options.items():
        old = recorded.get(k)
        if _plain(new) == _plain(old) or k == "progress":
            continue
        if k not in MAY_CHANGE:
            raise ConfigError(f"--resume cannot change {k!r} (from {old!r} to {new!r}): it fixes the data order and the noise "
                              "the run has drawn; start a new run with another --out" if k == "seed" else
                              f"--resume cannot change {k!r} (from {old!r} to {new!r})")
        if k == "ema_decay" and (old is None) != (new is None):
            raise ConfigError(f"--resume cannot switch weight EMA {'on' if old is None else 'off'} (ema_decay {old!r} -> {new!r}): "
                              "the average would not cover the run")
        changed[k] = _plain([old, new])
    return merged, changed


def keep_metrics_until(path: Path, step: int, epoch: int) -> None:
    """Drop records after the checkpoint's step, and the partial record of the epoch the run continues
    (the full record, from the checkpoint's partial sums, replaces it)."""
    if not path.exists():
        return
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise TrainingError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}; fix or delete it to resume") from None
    lines = text.splitlines()
    keep = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            rec = None
        if not isinstance(rec, dict) or not isinstance(rec.get("step", 0), int):
            if n == len(lines) and not text.endswith("\n"):
                break  # the record a killed run was writing: cut, and after the checkpoint anyway
            raise TrainingError(f"{path}: line {n} is not a metrics record (edited or damaged): delete that line or the file to resume")
        if rec.get("step", 0) <= step and not (rec.get("partial") and rec.get("epoch") == epoch + 1):
            keep.append(line)
    ckpt.atomic_write(path, ("\n".join(keep) + "\n").encode() if keep else b"")
