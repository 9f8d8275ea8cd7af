"""Run folders and checkpoints: data, never code.

- ``config.json``: format version, model name and config, data description, training arguments.
- ``model.safetensors``: the weights (and buffers) to share.
- ``checkpoint.safetensors``: weights, optimizer tensors and RNG states for resuming; everything
  else (step, epoch, optimizer hyper-parameters) is JSON inside the safetensors header, so the
  checkpoint is one file, replaced atomically (temp file, fsync, rename).

Nothing is ever unpickled.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..errors import CheckpointError

FORMAT = "aezoo-run/1"
CKPT_FORMAT = "aezoo-checkpoint/1"


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"missing file {path}") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"corrupt JSON in {path}: {e}") from None


def _plain(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared storage; checkpoints are small enough to copy
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any] | None = None) -> None:
    meta = {"aezoo": json.dumps(metadata)} if metadata is not None else None
    atomic_write(path, st_save(_plain(tensors), metadata=meta))


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"missing file {path}") from None
    try:
        tensors = st_load(raw)
        from safetensors import safe_open  # header metadata

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
    except (SafetensorError, ValueError, OSError) as e:
        raise CheckpointError(f"corrupt safetensors file {path}: {e}") from None
    info = json.loads(meta["aezoo"]) if meta and "aezoo" in meta else None
    return tensors, info


# --- the model ---------------------------------------------------------------------------------
def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.state_dict())


def save_model(run_dir: str | Path, model, extra: dict[str, Any] | None = None, weights: str = "model.safetensors", config: str = "config.json") -> None:
    """Write ``model.safetensors`` and ``config.json`` (merging ``extra`` into the JSON). Other file
    names keep a second module of the run (e.g. a prior trained afterwards) beside the model."""
    from ..config import to_dict

    run_dir = Path(run_dir)
    save_tensors(run_dir / weights, model_state(model), {"format": FORMAT, "model": model.name})
    cfg_path = run_dir / config
    meta = read_json(cfg_path) if cfg_path.exists() else {}
    meta.update({"format": FORMAT, "model": model.name, "config": to_dict(model.config)})
    meta.update(extra or {})
    write_json(cfg_path, meta)


def load_model(run_dir: str | Path, device: str | torch.device = "cpu", weights: str = "model.safetensors"):
    """Rebuild the model from ``config.json`` and load its weights; nothing executes from the files."""
    from ..registry import create

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise CheckpointError(f"no run folder at {run_dir}")
    meta = read_json(run_dir / "config.json")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{run_dir}/config.json: unknown format {meta.get('format')!r}, expected {FORMAT!r}")
    model = create(meta["model"], **meta["config"])
    path = run_dir / weights
    if not path.exists() and (run_dir / "checkpoint.safetensors").exists():
        path = run_dir / "checkpoint.safetensors"  # a run interrupted before its final save
    tensors, _ = load_tensors(path)
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")} if path.name.startswith("checkpoint") else tensors
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match the model config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model = model.to(device).eval()
    model.on_load(run_dir)  # a model with companion files in the run folder loads them
    return model


# --- resumable training checkpoints ------------------------------------------------------------
def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, k = key.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    for key, v in info["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})


def save_checkpoint(run_dir: str | Path, model, optimizer, progress: dict[str, Any], extra_modules: dict[str, torch.nn.Module] | None = None, extra_tensors: dict[str, torch.Tensor] | None = None) -> None:
    tensors = {f"model.{k}": v for k, v in model_state(model).items()}
    tensors.update(extra_tensors or {})  # e.g. every rank's RNG state in a distributed run
    opt_t, opt_info = optimizer_tensors(optimizer)
    tensors.update(opt_t)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    meta = {"format": CKPT_FORMAT, "model": model.name, "progress": progress, "optimizer": opt_info}
    save_tensors(Path(run_dir) / "checkpoint.safetensors", tensors, meta)


def load_checkpoint(run_dir: str | Path, model, optimizer) -> dict[str, Any]:
    """Restore weights, optimizer and RNG state in place; return the saved progress dict."""
    path = Path(run_dir) / "checkpoint.safetensors"
    tensors, meta = load_tensors(path)
    if not meta or meta.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{path}: not an aezoo checkpoint")
    if meta.get("model") != model.name:
        raise CheckpointError(f"{path}: checkpoint is of model {meta.get('model')!r}, not {model.name!r}")
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(state)
    restore_optimizer(optimizer, tensors, meta["optimizer"])
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    return meta["progress"]
