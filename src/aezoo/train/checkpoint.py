"""Run folders and checkpoints: data, never code.

- ``config.json``: format version, model name and config, data description, training arguments,
  whether the run finished, and the history of its resumptions.
- ``model.safetensors``: the newest weights (and buffers), rewritten with every checkpoint; its
  header says the step they are from, the model config they fit, and whether they are the EMA of
  the weights (``--ema-decay``; the raw weights are then in ``model-raw.safetensors``).
- ``checkpoint.safetensors``: weights, EMA, optimizer tensors, RNG states and the partial epoch's
  sums for resuming; everything else (step, epoch, optimizer hyper-parameters) is JSON inside the
  safetensors header, so the checkpoint is one file, replaced atomically (temp file, fsync, rename).

Every safetensors file aezoo writes carries ``aezoo_sha256`` in its header: the SHA-256 of its aezoo
header and of every tensor's name, dtype, shape and bytes. Loading recomputes it and refuses a file that
does not match, naming it (issue 22: a flipped exponent bit loaded as an infinite weight, an edited
step resumed without a word). A checkpoint also records the run it belongs to (``run``: the run id,
seed and data of config.json), and resuming refuses a checkpoint of another run or a config.json
whose seed or data were edited since.

Nothing is ever unpickled.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..config import depth_check
from ..errors import AezooError, CheckpointError, ConfigError, RunWarning

# 2: model.safetensors is rewritten with each checkpoint and says its step; config.json says whether
#    the run finished; model-raw.safetensors beside EMA weights. Runs of format 1 still load.
FORMAT = "aezoo-run/2"
# 2: one optimizer per parameter group, EMA weights, partial-epoch sums. Format 1 still resumes.
CKPT_FORMAT = "aezoo-checkpoint/2"
MODEL = "model.safetensors"
RAW = "model-raw.safetensors"  # the raw weights of a run trained with --ema-decay
CHECKPOINT = "checkpoint.safetensors"


def check_format(found: Any, current: str, where: str | Path) -> int:
    """The version number of ``found`` (e.g. "aezoo-run/1") in ``current``'s family; refuses other
    families and newer versions with the numbers in the message."""
    family, _, newest = current.partition("/")
    ver = found.partition("/")[2] if isinstance(found, str) and found.startswith(family + "/") else ""
    if not ver.isdigit():
        raise CheckpointError(f"{where}: not an {family} file (format {found!r}, expected {current!r})")
    if int(ver) > int(newest):
        raise CheckpointError(f"{where}: format {found} is newer than this aezoo reads ({current}); upgrade aezoo to load it")
    return int(ver)


# --- atomic files ------------------------------------------------------------------------------
def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one. The file
    gets the permissions of the user's umask, like any file they create (mkstemp's would be 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"  # clean_temp_files knows this pattern
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    except OSError as e:  # name the file the user knows, not the temp file (ENOSPC, EACCES, ...)
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def clean_temp_files(run_dir: str | Path) -> list[Path]:
    """Remove temp files that a killed writer left in ``run_dir`` (call it holding the run's lock)."""
    removed = []
    for p in Path(run_dir).glob(".*.tmp"):
        try:
            p.unlink()
            removed.append(p)
        except FileNotFoundError:
            pass
    return removed


def finite(obj: Any, path: str = "") -> tuple[Any, list[str]]:
    """``obj`` with every NaN or infinite float replaced by None, and the dotted names of those values:
    Python's json writes them as NaN/Infinity, which no other JSON reader accepts (issue 22)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None, [path or "value"]
    if isinstance(obj, dict):
        out, bad = {}, []
        for k, v in obj.items():
            out[k], b = finite(v, f"{path}.{k}" if path else str(k))
            bad += b
        return out, bad
    if isinstance(obj, (list, tuple)):
        pairs = [finite(v, f"{path}[{i}]") for i, v in enumerate(obj)]
        return [v for v, _ in pairs], [b for _, bs in pairs for b in bs]
    return obj, []


def dumps(obj: Any, indent: int | None = None) -> str:
    """Strict JSON: non-finite numbers become null, listed under ``non_finite`` and named in a RunWarning."""
    obj, bad = finite(obj)
    if bad:
        warnings.warn(RunWarning(f"not finite (NaN or infinite), written as null: {', '.join(bad[:8])}"), stacklevel=2)
        if isinstance(obj, dict):
            obj["non_finite"] = bad
    return json.dumps(obj, indent=indent, allow_nan=False)


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write(path, (dumps(obj, indent=2) + "\n").encode())


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object from ``path``; anything else is a one-line CheckpointError naming the file."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"missing file {path}") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"corrupt JSON in {path}: {e}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: nested too deeply to be an aezoo file") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found a {type(obj).__name__}")
    try:
        depth_check(obj, str(path))
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    return obj


def run_meta(run_dir: str | Path) -> dict[str, Any]:
    """config.json of a run, with its format and the keys every reader needs checked."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"no run folder at {run_dir}")
    path = run_dir / "config.json"
    meta = read_json(path)
    check_format(meta.get("format"), FORMAT, path)
    for key, kind in (("model", str), ("config", dict)):
        if key not in meta:
            raise CheckpointError(f"{path}: missing key {key!r}")
        if not isinstance(meta[key], kind):
            raise CheckpointError(f"{path}: {key!r} must be a {'string' if kind is str else 'JSON object'}, found {meta[key]!r:.60}")
    return meta


# --- safetensors -------------------------------------------------------------------------------
def _plain(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared storage; checkpoints are small enough to copy
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


DIGEST = "aezoo_sha256"  # the safetensors metadata key of a file's checksum


def digest(tensors: dict[str, torch.Tensor], header: str | None) -> str:
    """SHA-256 (hex) of a file's aezoo header (the JSON text) and of its tensors in key order."""
    h = hashlib.sha256((header or "").encode())
    for name, t in sorted(tensors.items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def encode_with_digest(tensors: dict[str, torch.Tensor], metadata: dict[str, Any] | None = None) -> tuple[bytes, str]:
    """The safetensors bytes, with the checksum in their header, and that checksum."""
    tensors = _plain(tensors)
    header = json.dumps(metadata) if metadata is not None else None
    sha = digest(tensors, header)
    return st_save(tensors, metadata={**({"aezoo": header} if header is not None else {}), DIGEST: sha}), sha


def encode(tensors: dict[str, torch.Tensor], metadata: dict[str, Any] | None = None) -> bytes:
    return encode_with_digest(tensors, metadata)[0]


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any] | None = None) -> str:
    """Write the file atomically; returns its checksum."""
    data, sha = encode_with_digest(tensors, metadata)
    atomic_write(path, data)
    return sha


def read_header(path: str | Path) -> dict[str, Any] | None:
    """The aezoo metadata in a safetensors header, without reading the tensors (None if absent)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
        return json.loads(meta["aezoo"]) if meta and "aezoo" in meta else None
    except (SafetensorError, ValueError, OSError, json.JSONDecodeError):
        return None


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"missing file {path}") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        tensors = st_load(raw)
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        info = json.loads(meta["aezoo"]) if "aezoo" in meta else None
    except (SafetensorError, ValueError, OSError) as e:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"corrupt safetensors file {path}: {e}") from None
    if DIGEST in meta and digest(tensors, meta.get("aezoo")) != meta[DIGEST]:  # files written before issue 22 have none
        raise CheckpointError(f"{path} is damaged or was edited: its tensors or header no longer match the checksum written with them; "
                              "restore it from a copy or retrain")
    return tensors, info


# --- the model ---------------------------------------------------------------------------------
def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.state_dict())


def weights_header(model, **progress: Any) -> dict[str, Any]:
    """What a weights file says about itself: enough to tell whether it fits config.json."""
    from ..config import to_dict

    return {"format": FORMAT, "model": model.name, "config": to_dict(model.config), **progress}


def save_model(run_dir: str | Path, model, extra: dict[str, Any] | None = None, weights: str = MODEL, config: str = "config.json",
               pair: bool = False) -> None:
    """Write the weights and ``config.json`` (merging ``extra`` into the JSON). Other file names keep a
    second module of the run (e.g. a prior trained afterwards) beside the model. ``pair``: record the
    weights' checksum in the JSON (``weights_sha256``), so that a reader can tell the two files were
    written together (``check_pair``); the weights are written first, the JSON last."""
    from ..config import to_dict

    run_dir = Path(run_dir)
    sha = save_tensors(run_dir / weights, model_state(model), weights_header(model))
    cfg_path = run_dir / config
    meta = read_json(cfg_path) if cfg_path.exists() and not pair else {}  # a pair's JSON describes only its weights
    meta.update({"format": FORMAT, "model": model.name, "config": to_dict(model.config)})
    meta.update(extra or {})
    if pair:
        meta["weights_sha256"] = sha
    write_json(cfg_path, meta)


def check_pair(weights: Path, config: Path, meta: dict[str, Any], recover: str) -> dict[str, torch.Tensor]:
    """The tensors of ``weights`` when they are the ones ``config`` was written with (``save_model(pair=True)``);
    else one line naming both files and saying how to recover."""
    if not weights.exists():
        raise CheckpointError(f"{config} has no {weights.name} beside it (a writer killed between the two files?); {recover}")
    tensors, _ = load_tensors(weights)
    with safe_open(str(weights), framework="pt") as f:
        sha = (f.metadata() or {}).get(DIGEST)
    if "weights_sha256" in meta and sha != meta["weights_sha256"]:
        raise CheckpointError(f"{weights} is not the file {config} was written with (a writer killed between the two files, or one "
                              f"copied from elsewhere); {recover}")
    return tensors


def run_identity(meta: dict[str, Any]) -> dict[str, Any]:
    """What in config.json fixes a run's weights and may not change under its checkpoint: its id (new
    runs), seed and data (where the files are and the class names may change)."""
    data = {k: v for k, v in (meta.get("data") or {}).items() if k not in ("source", "class_names")}
    return json.loads(json.dumps({"run_id": meta.get("run_id"), "seed": (meta.get("train") or {}).get("seed"), "data": data}))


def check_run_identity(path: Path, recorded: dict[str, Any], meta: dict[str, Any]) -> None:
    """Refuse a checkpoint written for another run or under another seed or data than config.json says."""
    from .rundir import _first_difference, _get

    now = run_identity(meta)
    if recorded.get("run_id") and now["run_id"] and recorded["run_id"] != now["run_id"]:
        raise CheckpointError(f"{path} belongs to another run (run id {recorded['run_id']}, config.json's {now['run_id']}): "
                              "resume with the run's own checkpoint, or start a new run")
    for key in ("seed", "data"):
        field = _first_difference(recorded.get(key), now[key], key)
        if field is not None:
            raise CheckpointError(f"{path} was written with {field} = {_get(recorded, field)!r}, but {path.parent / 'config.json'} says "
                                  f"{_get(now, field)!r} (config.json edited?): the checkpoint's weights and data order follow the first")


def _first_difference(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            return k
    return None


def load_state(model, state: dict[str, torch.Tensor], path: Path, saved_config: dict[str, Any] | None = None) -> None:
    """Load ``state`` into ``model``; a mismatch is one line naming the config field that differs
    (when the file says which config it was saved with) or the first tensor that does not fit."""
    from ..config import drop_retired, to_dict

    if saved_config is not None:
        saved_config = drop_retired(type(model.config), saved_config)
        ours = json.loads(json.dumps(to_dict(model.config)))
        field = _first_difference(saved_config, ours)
        if field is not None:
            raise CheckpointError(f"{path}: these weights were saved with config field {field!r} = {saved_config.get(field)!r}, "
                                  f"but the model has {ours.get(field)!r} (config.json edited, or another run's file?)")
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match the model config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(f"{path}: tensor {k!r} has shape {tuple(v.shape)} in the file but {tuple(own[k].shape)} in the "
                                  "model built from config.json: the config does not describe these weights")
    model.load_state_dict(state)


def newest_weights(run_dir: Path, raw: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, Path]:
    """The run's newest weights: ``model.safetensors`` (or ``model-raw``), or the checkpoint's copy when
    the checkpoint is newer (a run killed between writing the two). Returns (state, header, path)."""
    name = RAW if raw and (run_dir / RAW).exists() else MODEL
    path, ckpt_path = run_dir / name, run_dir / CHECKPOINT
    head, ck = (read_header(path) if path.exists() else None), (read_header(ckpt_path) if ckpt_path.exists() else None)
    ck_step = (ck or {}).get("progress", {}).get("step")
    if ck_step is not None and (not path.exists() or (head is not None and head.get("step") is not None and ck_step > head["step"])):
        tensors, ck = load_tensors(ckpt_path)
        prefix = "ema." if any(k.startswith("ema.") for k in tensors) and not raw else "model."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if prefix == "ema.":  # non-float buffers are not averaged: take them from the raw weights
            state.update({k[6:]: v for k, v in tensors.items() if k.startswith("model.") and k[6:] not in state})
        return state, {"step": ck_step, "config": ck.get("config"), "from": CHECKPOINT}, ckpt_path
    tensors, head = load_tensors(path)
    return tensors, head, path


def load_model(run_dir: str | Path, device: str | torch.device = "cpu", weights: str = MODEL, raw: bool = False):
    """Rebuild the model from ``config.json`` and load its newest weights; nothing executes from the files.

    A run trained with ``--ema-decay`` serves the EMA of its weights (what its evaluation and report
    use); ``raw=True`` gives the raw weights. An unfinished run (killed, stopped, or still training)
    serves its newest weights with a ``RunWarning`` that says so."""
    from ..registry import create

    run_dir = Path(run_dir)
    meta = run_meta(run_dir)
    try:
        model = create(meta["model"], **meta["config"])
    except AezooError as e:
        raise CheckpointError(f"{run_dir / 'config.json'}: {e}") from None
    if weights == MODEL:
        state, head, path = newest_weights(run_dir, raw)
    else:
        path = run_dir / weights
        state, head = load_tensors(path)
    load_state(model, state, path, (head or {}).get("config"))
    if meta.get("finished") is False and weights == MODEL:
        warnings.warn(RunWarning(unfinished_note(run_dir, meta, head)), stacklevel=2)
    model = model.to(device).eval()
    model.on_load(run_dir)  # a model with companion files in the run folder loads them
    return model


def unfinished_note(run_dir: Path, meta: dict[str, Any], head: dict[str, Any] | None) -> str:
    from .rundir import is_locked

    step, total = (head or {}).get("step"), meta.get("total_steps")
    at = f"step {step} of {total}" if step is not None else "an unknown step"
    if meta.get("stopped"):
        why = f"it stopped: {meta['stopped']}"
    elif is_locked(run_dir):
        why = "it is still training"
    else:
        why = f"it was interrupted; `aezoo train {meta['model']} --out {run_dir} --resume` continues it"
    return f"{run_dir} is an unfinished run: using its newest weights, from {at} ({why})"


# --- resumable training checkpoints ------------------------------------------------------------
def optimizer_tensors(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """One optimizer's state as tensors ``optim.{name}.{param}.{key}`` and JSON (hyper-parameters, scalars)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{name}.{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(name: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict[str, Any], prefix: str | None = None) -> None:
    """Restore the moments and step counts of ``optimizer``; its hyper-parameters (lr, betas, weight
    decay) stay those it was built with, which are the run's current settings (issue 17: a resumed run
    applies a changed --lr or --weight-decay instead of silently keeping the old one)."""
    prefix = f"optim.{name}." if prefix is None else prefix
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix):
            pid, k = key[len(prefix):].split(".", 1)
            state.setdefault(int(pid), {})[k] = v
    for key, v in info["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    current = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    saved = info["param_groups"]
    if len(saved) != len(current) or any(len(s["params"]) != len(g["params"]) for s, g in zip(saved, optimizer.param_groups)):
        raise CheckpointError(f"the checkpoint's optimizer {name!r} has other parameter groups than the model declares")
    optimizer.load_state_dict({"state": state, "param_groups": saved})
    for g, hyper in zip(optimizer.param_groups, current):
        g.update(hyper)


def read_checkpoint(run_dir: str | Path, model_name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The checkpoint's tensors and header, with its format and model checked."""
    path = Path(run_dir) / CHECKPOINT
    tensors, meta = load_tensors(path)
    if not meta:
        raise CheckpointError(f"{path}: not an aezoo checkpoint (no aezoo header)")
    meta["version"] = check_format(meta.get("format"), CKPT_FORMAT, path)
    if meta.get("model") != model_name:
        raise CheckpointError(f"{path}: checkpoint is of model {meta.get('model')!r}, not {model_name!r}")
    if "run" in meta:  # checkpoints written before issue 22 do not say
        check_run_identity(path, meta["run"], run_meta(run_dir))
    return tensors, meta
