"""The run report: one self-contained HTML page (figures embedded as base64 PNG) with the run's
config, metrics and every figure that applies to the model."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from .figures import FIGURES


def _discover() -> None:
    """Import every module of aezoo.viz so their @figure functions register."""
    import importlib
    import pkgutil

    from .. import viz

    for info in pkgutil.iter_modules(viz.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{viz.__name__}.{info.name}")


def render_figures(run_dir: Path, model, data) -> list[tuple[str, Path, str]]:
    """Write every applicable figure into ``run_dir/figures``; returns (name, path, caption)."""
    _discover()
    fig_dir = run_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for name, fn in sorted(FIGURES.items(), key=lambda kv: (getattr(kv[1], "order", 50), kv[0])):
        path = fig_dir / f"{name}.png"
        caption = fn(model, data, run_dir, path)
        if caption:
            out.append((name, path, caption))
    return out


def _table(d: dict[str, Any]) -> str:
    rows = []
    for k, v in d.items():
        if isinstance(v, float):
            v = f"{v:.5g}"
        elif isinstance(v, (list, dict)):
            v = json.dumps(v)
            v = v if len(v) < 200 else v[:200] + "..."
        rows.append(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:14px}
th{background:#f5f5f5}figure{margin:1.5em 0}img{max-width:100%;image-rendering:pixelated;border:1px solid #eee}
figcaption{color:#555;font-size:14px;margin-top:4px}"""


def build_report(run_dir: str | Path, model=None, data=None) -> Path:
    """(Re)build ``run_dir/report.html``; loads the model and data from the run folder if not given."""
    from ..train.checkpoint import load_model, read_json

    run_dir = Path(run_dir)
    meta = read_json(run_dir / "config.json")
    if model is None:
        model = load_model(run_dir)
    if data is None:
        data = data_of_run(meta)
    figs = render_figures(run_dir, model, data)
    metrics = read_json(run_dir / "eval.json") if (run_dir / "eval.json").exists() else {}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>aezoo run: {html.escape(meta['model'])}</title><style>{CSS}</style></head><body>"]
    parts.append(f"<h1>{html.escape(meta['model'])} on {html.escape(meta.get('data', {}).get('name', '?'))}</h1>")
    if meta.get("data", {}).get("preprocessing", {}).get("auto_fallback"):
        parts.append(f"<p><b>Note:</b> {html.escape(meta['data']['preprocessing']['auto_fallback'])}; trained on scikit-learn's digits instead.</p>")
    if metrics:
        parts.append("<h2>Test metrics</h2>" + _table({k: v for k, v in metrics.items() if k not in ("kl_per_dim",)}))
    for name, path, caption in figs:
        b64 = base64.b64encode(path.read_bytes()).decode()
        parts.append(f"<figure id='{name}'><img alt='{html.escape(name)}' src='data:image/png;base64,{b64}'><figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("<h2>Model config</h2>" + _table(meta.get("config", {})))
    parts.append("<h2>Training</h2>" + _table(meta.get("train", {})))
    parts.append("<h2>Data</h2>" + _table(meta.get("data", {})))
    parts.append("</body></html>")
    out = run_dir / "report.html"
    from ..train.checkpoint import atomic_write

    atomic_write(out, "\n".join(parts).encode())
    return out


def data_of_run(meta: dict[str, Any], spec: str | None = None):
    """Reload the dataset a run was trained on, with the same preprocessing."""
    from ..data import load

    d = meta.get("data", {})
    pre = d.get("preprocessing", {})
    source = spec or d.get("source") or d.get("name")
    name = d.get("name")
    from ..data.core import list_datasets

    if spec is None and name in list_datasets():
        source = name
    options = pre.get("options", {}) if source == name else {}
    return load(source, binarize=pre.get("binarize", "none"), val_fraction=pre.get("val_fraction", 0.1), limit=pre.get("limit"), seed=pre.get("seed", 0), **options)
