"""Small run folders for the explorer's tests (issue 15): a model trained for a few steps on 300 of
scikit-learn's digits, saved as ``aezoo train`` saves it (config.json with the data, model.safetensors),
with an eval.json of its test reconstruction error and a one-line report.html. The full evaluation
and report of ``aezoo train`` take ~10 s per run here and test nothing the explorer does."""
from pathlib import Path

import torch

import aezoo
from aezoo.train.checkpoint import save_model, write_json


def make_run(folder: Path, name: str, train: dict | None = None, **config) -> Path:
    torch.manual_seed(0)
    data = aezoo.data.load("digits", limit=300)
    from aezoo.registry import get

    net = {} if "hidden" in getattr(get(name).Config, "retired", {}) else {"hidden": (32,)}  # VQ models have no MLP
    model = aezoo.create(name, input_shape=(1, 8, 8), **net, **config)
    aezoo.train(model, data, **{"epochs": 2, "batch_size": 64, "progress": False, "min_steps": 0, **(train or {})})
    run = Path(folder)
    run.mkdir(parents=True, exist_ok=True)
    save_model(run, model, {"data": data.describe(), "finished": True})
    with torch.no_grad():
        x, y = data.test.x, data.test.y
        mse = float((model.reconstruct(x, y if model.needs_labels else None) - x).pow(2).mean())
    write_json(run / "eval.json", {"model": name, "split": "test", "n": len(x), "recon_mse": mse})
    (run / "report.html").write_text(f"<!doctype html><title>aezoo run: {name}</title><p>report of {name}</p>")
    return run
