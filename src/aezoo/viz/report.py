"""The run report: one self-contained HTML page (figures embedded as base64 PNG) with the run's
config, metrics and every figure that applies to the model."""
from __future__ import annotations

import base64
import html
import json
import warnings
from pathlib import Path
from typing import Any

from ..runs import data_of_run
from .figures import FIGURES


def _discover() -> None:
    """Import every module of aezoo.viz so their @figure functions register."""
    import importlib
    import pkgutil

    from .. import viz

    for info in pkgutil.iter_modules(viz.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{viz.__name__}.{info.name}")


def render_figures(run_dir: Path, model, data, fig_dir: Path | None = None, strict: bool = False) -> list[tuple[str, Path, str]]:
    """Write every applicable figure into ``fig_dir`` (default ``run_dir/figures``); returns
    (name, path, caption), where a figure that failed has caption ``FAILED: <error>``. ``strict``
    re-raises instead (the tests), so that a run's report never dies at the end of training on one figure."""
    _discover()
    fig_dir = fig_dir or run_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    out = []
    was_training = model.training
    model.eval()
    try:
        for name, fn in sorted(FIGURES.items(), key=lambda kv: (getattr(kv[1], "order", 50), kv[0])):
            path = fig_dir / f"{name}.png"
            try:
                caption = fn(model, data, run_dir, path)
            except Exception as e:  # noqa: BLE001 - reported on the page and as a warning
                if strict:
                    raise
                warnings.warn(f"figure {name!r} failed: {type(e).__name__}: {e}", stacklevel=2)
                out.append((name, path, f"FAILED: {type(e).__name__}: {e}"))
                continue
            if caption:
                out.append((name, path, caption))
    finally:
        model.train(was_training)
    return out


def figure_html(name: str, path: Path, caption: str, heading: str | None = None) -> str:
    """One <figure> with the PNG embedded as base64, so the page opens from disk with nothing beside it."""
    cap = html.escape(caption)
    if caption.startswith("FAILED") or not path.exists():
        return f"<figure id='{html.escape(name)}' class='failed'><figcaption><b>{html.escape(name)}</b>: {cap}</figcaption></figure>"
    b64 = base64.b64encode(path.read_bytes()).decode()
    head = f"<h3>{html.escape(heading)}</h3>" if heading else ""
    return (f"<figure id='{html.escape(name)}'>{head}<img alt='{html.escape(name)}' src='data:image/png;base64,{b64}'>"
            f"<figcaption>{cap}</figcaption></figure>")


def title_of(name: str) -> str:
    return name.replace("_", " ").capitalize()


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


def claim_html(claim, config, metrics: dict[str, Any], figs: list[tuple[str, Path, str]]) -> str:
    """The paper's claim (declared in the model file), the test metrics that measure it and the figure that shows it."""
    rows = {k: metrics.get(k, "not measured") for k in claim.metrics}
    note = metrics.get("likelihood_note")
    out = [f"<h2>The paper's claim</h2><p class='claim'><b>{html.escape(claim.paper)}</b>: {html.escape(claim.describe(config))}</p>",
           _table(rows)]
    if note:
        out.append(f"<p class='note'>{html.escape(note)}</p>")
    for name, path, caption in figs:
        if name == claim.figure:
            out.append(figure_html(name, path, caption, heading=title_of(name)))
    return "\n".join(out)


GENERATION_KEYS = ("gen_fd", "gen_precision", "gen_recall", "gen_density", "gen_coverage", "gen_fd_class_mean", "gen_n", "gen_n_real",
                   "gen_features", "gen_features_hash")


def generation_html(gen: dict[str, Any]) -> str:
    """The "Generation" section: what `aezoo eval --generation` measured (generation.json)."""
    out = ["<h2>Generation</h2><p class='note'>Samples against real inputs of the "
           f"{html.escape(str(gen.get('split', 'test')))} split, in the features of <code>{html.escape(str(gen.get('gen_features')))}</code> "
           f"(weights sha256 {html.escape(str(gen.get('gen_features_hash')))}...): Frechet distance (lower is better), precision "
           "(samples inside the data's manifold) and recall (data inside the samples' manifold), density and coverage. "
           "Numbers are comparable only between runs measured with the same features hash.</p>",
           _table({k: gen[k] for k in GENERATION_KEYS if k in gen})]
    per = gen.get("gen_per_class") or {}
    if per:
        cols = ("fd", "precision", "recall", "density", "coverage")
        head = "<tr><th>class</th>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"
        rows = "".join(f"<tr><th>{html.escape(str(c))}</th>" + "".join(f"<td>{m.get(k, float('nan')):.4g}</td>" for k in cols) + "</tr>"
                       for c, m in per.items())
        out.append(f"<h3>Per class (samples drawn for that class)</h3><table>{head}{rows}</table>")
    return "\n".join(out)


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:14px}
th{background:#f5f5f5}figure{margin:1.5em 0}img{max-width:100%;image-rendering:pixelated;border:1px solid #eee}
figcaption{color:#555;font-size:14px;margin-top:4px}h3{font-size:16px;margin:0 0 .3em}
figure.failed figcaption{color:#a00}p.claim{font-size:15px;background:#f4f8f4;border-left:4px solid #4a4;padding:6px 10px}
p.note{color:#555;font-size:14px}"""


def build_report(run_dir: str | Path, model=None, data=None, strict: bool = False) -> Path:
    """(Re)build ``run_dir/report.html``; loads the model and data from the run folder if not given."""
    from ..runs import load_model, read_json

    run_dir = Path(run_dir)
    meta = read_json(run_dir / "config.json")
    if model is None:
        model = load_model(run_dir)
    if data is None:
        data = data_of_run(meta)
    figs = render_figures(run_dir, model, data, strict=strict)
    metrics = read_json(run_dir / "eval.json") if (run_dir / "eval.json").exists() else {}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>aezoo run: {html.escape(meta['model'])}</title><style>{CSS}</style></head><body>"]
    parts.append(f"<h1>{html.escape(meta['model'])} on {html.escape(meta.get('data', {}).get('name', '?'))}</h1>")
    if meta.get("data", {}).get("preprocessing", {}).get("auto_fallback"):
        parts.append(f"<p><b>Note:</b> {html.escape(meta['data']['preprocessing']['auto_fallback'])}; trained on scikit-learn's digits instead.</p>")
    if meta.get("lengthened"):  # issue 23: small data trained past its epochs, and why
        n = meta["lengthened"]
        parts.append(f"<p><b>Note:</b> {n['epochs']} epochs of this data are {n['steps_by_epochs']} steps; the run trained {n['min_steps']} "
                     f"(about {n['epochs_run']:g} epochs), the model's <code>min_steps</code> for small data.</p>")
    claim = model.claim()
    if claim is not None:
        parts.append(claim_html(claim, model.config, metrics, figs))
        figs = [f for f in figs if f[0] != claim.figure]  # shown with the claim
    if metrics:
        parts.append("<h2>Test metrics</h2>" + _table({k: v for k, v in metrics.items() if k not in ("kl_per_dim",)}))
    if (run_dir / "generation.json").exists():
        parts.append(generation_html(read_json(run_dir / "generation.json")))
    if figs:
        parts.append("<h2>Figures</h2>")
    for name, path, caption in figs:
        parts.append(figure_html(name, path, caption, heading=title_of(name)))
    parts.append("<h2>Model config</h2>" + _table(meta.get("config", {})))
    parts.append("<h2>Training</h2>" + _table(meta.get("train", {})))
    parts.append("<h2>Data</h2>" + _table(meta.get("data", {})))
    parts.append("</body></html>")
    out = run_dir / "report.html"
    from ..runs import atomic_write

    atomic_write(out, "\n".join(parts).encode())
    return out


# --- several runs side by side -------------------------------------------------------------------
COMPARE_CSS = CSS.replace("max-width:1100px", "max-width:none") + """
.row{display:grid;gap:12px;align-items:start}.row figure{margin:0}.row h3{font-size:14px}
.missing{color:#999;font-size:14px;padding:2em 0}td.num{text-align:right;font-variant-numeric:tabular-nums}"""


def _label_runs(run_dirs: list[Path]) -> list[str]:
    names = [p.resolve().name or str(p) for p in run_dirs]
    return [n if names.count(n) == 1 else f"{i + 1}-{n}" for i, n in enumerate(names)]


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"<td class='num'>{v:.5g}</td>"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"<td class='num'>{v}</td>"
    return f"<td>{html.escape('' if v is None else str(v))}</td>"


def _runs_table(labels: list[str], rows: dict[str, list[Any]]) -> str:
    head = "<tr><th></th>" + "".join(f"<th>{html.escape(lb)}</th>" for lb in labels) + "</tr>"
    body = "".join(f"<tr><th>{html.escape(k)}</th>" + "".join(_cell(v) for v in vals) + "</tr>" for k, vals in rows.items())
    return f"<table>{head}{body}</table>"


def compare_runs(run_dirs: list[str | Path], out: str | Path, iw_samples: int = 100, device: str = "cpu") -> Path:
    """One page ``out/compare.html``: the runs' metrics in a table (from each run's eval.json, or by
    evaluating on the test split when it has none), the config fields in which they differ, and
    every figure side by side (e.g. AE vs VAE latent scatter; VAE samples at latent sizes 2/5/10/20)."""
    from ..evaluate import evaluate
    from ..runs import atomic_write, load_model, read_json
    from .latent import draw_samples_side_by_side

    run_dirs = [Path(p) for p in run_dirs]
    out = Path(out)
    labels = _label_runs(run_dirs)
    metas, metrics, figs, models = [], [], [], []
    for run_dir, label in zip(run_dirs, labels):
        meta = read_json(run_dir / "config.json")
        model = load_model(run_dir, device)
        models.append(model)
        data = data_of_run(meta)
        if (run_dir / "eval.json").exists():
            m = read_json(run_dir / "eval.json")
        else:
            m = evaluate(model, data, "test", iw_samples=iw_samples)
        if (run_dir / "generation.json").exists():  # `aezoo eval --generation`
            m = {**m, **{k: v for k, v in read_json(run_dir / "generation.json").items() if k in GENERATION_KEYS}}
        metas.append(meta)
        metrics.append(m)
        figs.append({name: (path, cap) for name, path, cap in render_figures(run_dir, model, data, fig_dir=out / label)})
    cfg_keys = sorted({k for meta in metas for k in meta.get("config", {})})
    differ = {"model": [meta["model"] for meta in metas], "data": [meta.get("data", {}).get("name") for meta in metas]}
    for k in cfg_keys:
        vals = [meta.get("config", {}).get(k) for meta in metas]
        if any(v != vals[0] for v in vals):
            differ[k] = [json.dumps(v) if isinstance(v, (list, dict)) else v for v in vals]
    keys = []
    for m in metrics:
        keys += [k for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in keys and k not in GENERATION_KEYS]
    table = {k: [m.get(k) for m in metrics] for k in keys}
    _discover()
    order = sorted({n for f in figs for n in f}, key=lambda n: (getattr(FIGURES.get(n), "order", 50), n))
    cols = f"grid-template-columns:repeat({len(labels)},minmax(0,1fr))"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>aezoo: {len(labels)} runs compared</title>"
             f"<style>{COMPARE_CSS}</style></head><body><h1>{len(labels)} runs compared</h1>"]
    parts.append("<h2>Runs</h2>" + _runs_table(labels, {"folder": [str(p) for p in run_dirs], **differ}))
    parts.append("<h2>Test metrics</h2>" + _runs_table(labels, table))
    # every run's samples in one figure, titled by what differs (e.g. latent sizes 2/5/10/20; issue 24)
    titles = [", ".join([lb] + [f"{k}={differ[k][i]}" for k in differ if k not in ("model", "data")]) for i, lb in enumerate(labels)]
    side = draw_samples_side_by_side(models, titles, out / "samples_side_by_side.png")
    if side is not None:
        parts.append("<h2>Samples side by side</h2>" + figure_html("samples_side_by_side", side, "Prior samples of each run (the same seed), "
                                                                     "titled by the config fields in which the runs differ."))
    hashes = {m.get("gen_features_hash") for m in metrics if m.get("gen_features_hash")}
    if hashes:
        gen = {k: [m.get(k) for m in metrics] for k in GENERATION_KEYS}
        same = "the same features: comparable" if len(hashes) == 1 else "DIFFERENT features: the generation numbers are not comparable"
        parts.append(f"<h2>Generation</h2><p class='note'>Measured by <code>aezoo eval --generation</code> with {same}.</p>" + _runs_table(labels, gen))
    for name in order:
        parts.append(f"<h2>{html.escape(title_of(name))}</h2><div class='row' style='{cols}'>")
        for label, f in zip(labels, figs):
            if name in f:
                parts.append(figure_html(f"{name}-{label}", f[name][0], f[name][1], heading=label))
            else:
                parts.append(f"<div class='missing'><h3>{html.escape(label)}</h3>does not apply to this model</div>")
        parts.append("</div>")
    parts.append("</body></html>")
    page = out / "compare.html"
    atomic_write(page, "\n".join(parts).encode())
    return page
