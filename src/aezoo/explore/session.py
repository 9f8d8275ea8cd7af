"""What the explorer computes, apart from the web: one run's model, the items of one split, their codes
and a 2-D map of them, and every decode the page asks for. FastAPI lives in ``app.py``; this module
knows only torch, numpy and aezoo, so it is tested and benchmarked without a server.

All that depends on the kind of model is in ``panels_for`` (issue 15): the rest of the explorer reads
the ``Panels`` it returns and never looks at the model's class or attributes.
"""
from __future__ import annotations

import base64
import io
import math
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError, NotSupportedError

# bounds on what one request may ask for, so that no request allocates without limit
MAX_POINTS = 2000  # items on the map (the first N of the split)
MAX_SLIDERS = 32  # latent dimensions with a slider
MAX_BATCH = 64  # codes per decode request
MAX_THUMBS = 256  # thumbnails per request
MAX_NEIGHBOURS = 32
MAX_STEPS = 32  # interpolation steps, rollout jumps
MAX_SAMPLES = 16  # prior samples, rollout samples per request
PROJECTIONS = ("auto", "pca", "tsne", "umap")
MAP_MARGIN = 10  # decode_point answers within the map widened by this many map sizes each side


@dataclass(frozen=True)
class Panels:
    """What the page shows beside the map, sliders and interpolation, by what the model can do."""

    kl_order: bool = False  # a Gaussian posterior: sliders ordered by each dimension's KL
    classes: bool = False  # decodes with a class label: class picker and style transfer
    codebook: bool = False  # discrete code grids: codebook usage and code maps
    prior: bool = False  # ... with a trained prior to sample from
    rollout: bool = False  # a sequence model: roll the pinned sequence forward
    corruption: bool = False  # trained to undo a corruption: the noisy/denoised pair
    codec: bool = False  # a learned image codec: the pinned image as a file, its bits, beside JPEG and WebP
    sample: bool = False  # draws from its prior


def panels_for(model) -> Panels:
    """The one place that asks what the model can do: the capabilities ``models/base.py`` declares."""
    from ..models.base import CodeGridModel, ConditionalModel, DenoisingModel, LatentVariableModel, LearnedCodec, SequenceModel

    discrete = isinstance(model, CodeGridModel)
    has_prior = discrete and model.prior is not None
    return Panels(
        kl_order=isinstance(model, LatentVariableModel),
        classes=isinstance(model, ConditionalModel),
        codebook=discrete,
        prior=has_prior,
        rollout=isinstance(model, SequenceModel),
        corruption=isinstance(model, DenoisingModel),
        codec=isinstance(model, LearnedCodec),
        sample=bool(model.generative) and (not discrete or has_prior),
    )


# --- images ---------------------------------------------------------------------------------------
def to_uint8(x: torch.Tensor) -> np.ndarray:
    """One item in data space -> an (H, W) or (H, W, 3|4) uint8 picture. Images draw as themselves,
    sequences (T, C, H, W) as their frames side by side, anything else as a strip of its values."""
    x = x.detach().float().cpu()
    if x.dim() == 4:  # (T, C, H, W): frames left to right
        x = torch.cat(list(x), dim=-1)
    if x.dim() == 1:
        side = math.isqrt(x.numel())
        if side * side == x.numel() and side >= 2:
            x = x.view(1, side, side)
    if x.dim() == 3 and x.shape[0] in (1, 3, 4) and min(x.shape[1:]) >= 2:
        a = x.clamp(0, 1).permute(1, 2, 0).numpy()
        a = a[..., 0] if a.shape[-1] == 1 else a
    else:  # vectors, series: min-max scaled values as a grey strip
        v = x.flatten()
        lo, hi = float(v.min()), float(v.max())
        a = ((v - lo) / (hi - lo if hi > lo else 1.0)).view(1, -1).numpy()
    return (a * 255).round().astype(np.uint8)


def data_url(a: np.ndarray) -> str:
    """An (H, W) or (H, W, 3|4) uint8 array -> a data: URL of its PNG (deflate level 1: a 28x28 picture is ~0.1 ms)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def png(x: torch.Tensor) -> str:
    """One item -> a data: URL of its PNG."""
    return data_url(to_uint8(x))


def heat_map(values: torch.Tensor, size: tuple[int, int]) -> str:
    """A (h, w) map of non-negative values -> a PNG of ``size`` (nearest upsampling), dark to bright
    (matplotlib's magma) from 0 to the map's maximum."""
    from matplotlib import colormaps

    v = values.double()
    v = (v / v.max()).nan_to_num(0.0) if float(v.max()) > 0 else v
    rows = (torch.arange(size[0]) * v.shape[0] // size[0]).tolist()
    cols = (torch.arange(size[1]) * v.shape[1] // size[1]).tolist()
    return data_url((colormaps["magma"](v[rows][:, cols].numpy())[..., :3] * 255).round().astype(np.uint8))


def colour_codes(grid: torch.Tensor, num_codes: int) -> str:
    """A (h, w) grid of code indices -> a PNG with one hue per code (golden-angle hues: neighbours in
    index differ in colour)."""
    from matplotlib.colors import hsv_to_rgb

    hue = (np.arange(num_codes) * 0.618034) % 1.0
    table = hsv_to_rgb(np.stack([hue, np.full(num_codes, 0.65), np.full(num_codes, 0.95)], 1))  # (K, 3)
    return data_url((table[grid.long().cpu().numpy()] * 255).round().astype(np.uint8))


def finite(v: float) -> float | None:
    """JSON has no infinity: an exact copy's PSNR (inf) is sent as null."""
    return v if math.isfinite(v) else None


def at_size(img: np.ndarray, fmt: str, target: int) -> dict[str, Any]:
    """``img`` (H, W, C) uint8 as a ``fmt`` (JPEG, WEBP) file at the lowest quality whose file has at least
    ``target`` bytes, found by bisection over 1..100: the quality below gives a smaller file (sizes grow
    with quality, up to a few bytes of noise, so this is the nearest size not below ``target``); quality
    100 when no file is that large. Seven encodes, not a hundred: WebP takes ~20 ms a quality at 512x512."""
    from ..evaluate.rate import _psnr, _roundtrip

    lo, hi, tried = 0, 100, {}  # the file at lo is smaller than target (0: no file), the one at hi is not (or hi = 100)
    while hi - lo > 1:
        q = (lo + hi) // 2
        tried[q] = _roundtrip(img, fmt, q)
        lo, hi = (lo, q) if tried[q][0] >= target else (q, hi)
    size, back = tried[hi] if hi in tried else _roundtrip(img, fmt, hi)
    h, w = img.shape[:2]
    return {"quality": hi, "bytes": size, "bpp": 8 * size / (h * w), "psnr": finite(_psnr(back / 255.0, img / 255.0)),
            "image": data_url(back[..., 0] if back.shape[-1] == 1 else back)}


# --- the 2-D map ---------------------------------------------------------------------------------------
@dataclass
class Projection:
    """codes (N, D) <-> map points (N, 2). Exact codes when D == 2; PCA's inverse (the mean plus the
    point along the two components) decodes any spot of the map; t-SNE and UMAP have no inverse."""

    method: str
    axes: tuple[str, str]
    mean: torch.Tensor | None = None  # (D,)
    components: torch.Tensor | None = None  # (2, D)

    @property
    def invertible(self) -> bool:
        return self.method in ("codes", "pca")

    def inverse(self, p: torch.Tensor) -> torch.Tensor:
        if self.method == "codes":
            return p
        if self.method == "pca":
            return self.mean + p @ self.components
        raise NotSupportedError(f"a {self.method} map has no inverse: only codes on it can be decoded (use --projection pca)")


def project(z: torch.Tensor, method: str = "auto", seed: int = 0) -> tuple[torch.Tensor, Projection]:
    if method not in PROJECTIONS:
        raise ConfigError(f"--projection must be one of {', '.join(PROJECTIONS)}, got {method!r}")
    d = z.shape[1]
    if d < 2:
        raise NotSupportedError(f"the codes have {d} dimension: there is no 2-D map to draw")
    if method == "auto" and d == 2:
        return z.clone(), Projection("codes", ("z1", "z2"))
    if method in ("auto", "pca"):
        from sklearn.decomposition import PCA

        pca = PCA(2, random_state=seed).fit(z.numpy())
        r = pca.explained_variance_ratio_ * 100
        proj = Projection("pca", (f"PC 1 ({r[0]:.0f}%)", f"PC 2 ({r[1]:.0f}%)"),
                          torch.as_tensor(pca.mean_, dtype=torch.float32), torch.as_tensor(pca.components_, dtype=torch.float32))
        return (z - proj.mean) @ proj.components.T, proj
    from ..viz.latent import project_2d

    pts, _, _ = project_2d(z.numpy(), method, seed)
    name = "t-SNE" if method == "tsne" else "UMAP"
    return torch.as_tensor(np.asarray(pts), dtype=torch.float32), Projection(method, (f"{name} 1", f"{name} 2"))


# --- the explorer ---------------------------------------------------------------------------------
class Explorer:
    """One run's model and the items it explores. Every method returns plain JSON-able data; bad
    arguments raise ``ConfigError``/``DataError`` (the app answers 400) and ``IndexError`` (404)."""

    def __init__(self, model, data, run_dir: str | Path | None = None, meta: dict[str, Any] | None = None,
                 projection: str = "auto", max_points: int = MAX_POINTS, split: str | None = None):
        if not 2 <= max_points <= 20000:  # 20,000 points keep the map's JSON near 1 MB
            raise ConfigError(f"--max-points must be in 2..20000, got {max_points}")
        self.model = model.eval()
        self.panels = panels_for(model)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.meta = meta or {}
        self.lock = threading.Lock()  # one model call at a time; requests run in the server's thread pool
        names = [split] if split else ["test", "train"]  # the held-out items when there are enough
        part = next((p for n in names if (p := data.split(n)) is not None and len(p) >= 3), None)
        if part is None:
            raise DataError(f"dataset {data.name!r} has fewer than 3 {' or '.join(names)} items: too few to map")
        self.split_name = next(n for n in names if data.split(n) is part)
        n = min(max_points, len(part))
        self.x = part.x[:n].cpu()
        self.y = None if part.y is None else part.y[:n].cpu().long()
        if tuple(self.x.shape[1:]) != tuple(model.config.input_shape):
            raise DataError(f"the data's items have shape {tuple(self.x.shape[1:])}, the model's inputs {tuple(model.config.input_shape)}")
        if self.panels.classes and self.y is None:
            raise DataError(f"model {model.name!r} decodes with class labels and the data {data.name!r} has none")
        self.data_name = data.name
        self.class_names = [str(c) for c in (data.class_names or [])]
        with torch.no_grad():
            self.z = self._encode(self.x, self.y)  # (N, D) float codes
        if not self.z.is_floating_point():
            raise NotSupportedError(f"model {model.name!r} gives integer codes: there is nothing to draw on a map")
        self.z = self.z.float()
        self.points, self.projection = project(self.z, projection)
        lo, hi = self.points.min(0).values, self.points.max(0).values
        span = max(float((hi - lo).max()), 1.0)  # the larger side, at least 1: the page shows a flat axis 1 wide
        # where decode_point may ask: the map widened by ten times its size each side, room to extrapolate;
        # beyond, float32 codes overflow (x=1e39, issue 22) long before a decode means anything
        self.map_lo, self.map_hi = lo - MAP_MARGIN * span, hi + MAP_MARGIN * span
        self.order, self.order_by, self.scores = self._order_dims()
        lo, hi = self.z.min(0).values, self.z.max(0).values
        pad = 0.25 * (hi - lo).clamp_min(1e-3)
        self.lo, self.hi = lo - pad, hi + pad  # slider ranges: the codes' span and a quarter either side
        self.code_dim = self.z.shape[1]
        self._usage = None

    # --- helpers --------------------------------------------------------------------------------
    @property
    def device(self):
        return self.model.device

    def _encode(self, x: torch.Tensor, y: torch.Tensor | None, batch: int = 512) -> torch.Tensor:
        out = []
        with self.lock:
            for i in range(0, x.shape[0], batch):
                yy = None if y is None else y[i : i + batch].to(self.device)
                out.append(self.model.encode(x[i : i + batch].to(self.device), yy).flatten(1).cpu())
        return torch.cat(out)

    def _decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        shape = self.model.latent_shape
        with self.lock, torch.no_grad():
            z = z.to(self.device).view(-1, *shape)
            return self.model.decode(z, None if y is None else y.to(self.device)).cpu()

    def _order_dims(self) -> tuple[list[int], str, torch.Tensor]:
        """Latent dimensions by how much they carry: mean KL(q(z_d|x) || N(0, 1)) for a Gaussian posterior,
        else the codes' variance (a dimension the model does not use comes last)."""
        if self.panels.kl_order:
            with self.lock, torch.no_grad():
                m = min(512, self.x.shape[0])
                q = self.model.posterior(self.x[:m].to(self.device), None if self.y is None else self.y[:m].to(self.device))
                mu, lv = q.mu.flatten(1).cpu(), q.logvar.flatten(1).cpu()
            score, by = (0.5 * (mu.pow(2) + lv.exp() - 1 - lv)).mean(0), "KL"
        else:
            score, by = self.z.var(0), "variance"
        return score.argsort(descending=True).tolist(), by, score

    def picture(self, i: int) -> str:
        """An item's thumbnail: itself, or a sequence's last frame (the one its code predicts)."""
        x = self.x[i]
        return png(x[-1] if x.dim() == 4 else x)

    def item(self, i: int) -> int:
        if not 0 <= i < self.x.shape[0]:
            raise IndexError(f"item {i} does not exist: the map has items 0..{self.x.shape[0] - 1}")
        return i

    def label(self, c: int | None, default: int | None = None) -> torch.Tensor | None:
        if not self.panels.classes:
            if c is not None:
                raise ConfigError(f"model {self.model.name!r} does not decode with a label")
            return None
        c = default if c is None else c
        k = self.model.num_classes
        if c is None or not 0 <= c < k:
            raise ConfigError(f"label must be a class in 0..{k - 1}, got {c}")
        return torch.tensor([c])

    def codes(self, rows: list[list[float]]) -> torch.Tensor:
        if not 1 <= len(rows) <= MAX_BATCH:
            raise ConfigError(f"send 1..{MAX_BATCH} codes per request, got {len(rows)}")
        if any(len(r) != self.code_dim for r in rows):
            raise ConfigError(f"each code must have {self.code_dim} numbers (the model's latent size)")
        z = torch.tensor(rows, dtype=torch.float32)
        if not torch.isfinite(z).all():
            raise ConfigError("codes must be finite numbers")
        return z

    # --- what the endpoints answer ----------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        cfg = self.meta.get("config") or {}
        metrics = {}
        if self.run_dir is not None and (self.run_dir / "eval.json").exists():
            from ..runs import read_json

            ev = read_json(self.run_dir / "eval.json")
            metrics = {k: v for k, v in (ev.get("test") or ev).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        sliders = [{"dim": d, "lo": float(self.lo[d]), "hi": float(self.hi[d]), "score": float(self.scores[d])} for d in self.order[:MAX_SLIDERS]]
        k = self.model.num_classes if self.panels.classes else max(len(self.class_names), 0 if self.y is None else int(self.y.max()) + 1)
        corruption = None
        if self.panels.corruption:
            q = self.model.corruption
            corruption = {"kind": q.kind, "level": q.level, "max": 1.0 if q.kind != "gaussian" else max(1.0, 3 * q.level)}
        return {
            "corruption": corruption,
            "model": self.model.name, "run": self.run_dir.name if self.run_dir else None, "config": cfg,
            "data": self.data_name, "split": self.split_name, "items": int(self.x.shape[0]),
            "code_dim": self.code_dim, "projection": self.projection.method, "axes": list(self.projection.axes),
            "invertible": self.projection.invertible, "order_by": self.order_by, "sliders": sliders,
            "num_classes": k, "class_names": self.class_names, "panels": asdict(self.panels), "metrics": metrics,
            "report": bool(self.run_dir is not None and (self.run_dir / "report.html").exists()),
            "limits": {"batch": MAX_BATCH, "thumbs": MAX_THUMBS, "neighbours": MAX_NEIGHBOURS, "steps": MAX_STEPS, "samples": MAX_SAMPLES},
        }

    def map(self) -> dict[str, Any]:
        p = self.points
        return {"x": [round(v, 5) for v in p[:, 0].tolist()], "y": [round(v, 5) for v in p[:, 1].tolist()],
                "labels": None if self.y is None else self.y.tolist(), "axes": list(self.projection.axes)}

    def thumbs(self, ids: list[int]) -> list[str]:
        if not 1 <= len(ids) <= MAX_THUMBS:
            raise ConfigError(f"ask for 1..{MAX_THUMBS} thumbnails per request, got {len(ids)}")
        return [self.picture(self.item(i)) for i in ids]

    def pin(self, i: int, k: int = 8) -> dict[str, Any]:
        """An item: its input, reconstruction, code, and its k nearest neighbours in code space."""
        from ..search.neighbours import exact_neighbours

        i = self.item(i)
        if not 1 <= k <= MAX_NEIGHBOURS:
            raise ConfigError(f"k must be in 1..{MAX_NEIGHBOURS}, got {k}")
        y = None if self.y is None else self.y[i : i + 1]
        x_hat = self._decode(self.z[i : i + 1], y if self.panels.classes else None)[0]
        k = min(k, self.z.shape[0] - 1)
        d, idx = exact_neighbours(self.z, self.z[i : i + 1], k, exclude=torch.tensor([i]))
        hits = [{"id": int(j), "distance": float(dist), "label": None if self.y is None else int(self.y[j]), "image": self.picture(j)}
                for j, dist in zip(idx[0].tolist(), d[0].tolist())]
        return {"id": i, "label": None if y is None else int(y[0]), "input": self.picture(i), "reconstruction": png(x_hat),
                "code": [round(v, 6) for v in self.z[i].tolist()], "point": self.points[i].tolist(), "neighbours": hits}

    def decode(self, rows: list[list[float]], label: int | None = None) -> list[str]:
        z = self.codes(rows)
        y = self.label(label, 0)
        return [png(x) for x in self._decode(z, None if y is None else y.expand(z.shape[0]))]

    def decode_point(self, px: float, py: float, label: int | None = None) -> dict[str, Any]:
        if not (math.isfinite(px) and math.isfinite(py)):
            raise ConfigError("the point's coordinates must be finite numbers")
        lo, hi = self.map_lo.tolist(), self.map_hi.tolist()
        if not (lo[0] <= px <= hi[0] and lo[1] <= py <= hi[1]):  # x=1e39 is a finite double but inf in float32 (issue 22)
            raise ConfigError(f"the point ({px:.4g}, {py:.4g}) is off the map: x must be in [{lo[0]:.4g}, {hi[0]:.4g}], "
                              f"y in [{lo[1]:.4g}, {hi[1]:.4g}]")
        z = self.projection.inverse(torch.tensor([[px, py]], dtype=torch.float32))
        y = self.label(label, 0)
        return {"code": [round(v, 6) for v in z[0].tolist()], "image": png(self._decode(z, y)[0])}

    def interpolate(self, a: int, b: int, steps: int = 9, mode: str = "linear", t: float | None = None) -> list[str]:
        from ..viz.latent import lerp, slerp

        a, b = self.item(a), self.item(b)
        if mode not in ("linear", "spherical"):
            raise ConfigError(f"mode must be linear or spherical, got {mode!r}")
        if t is not None:
            if not (math.isfinite(t) and 0 <= t <= 1):
                raise ConfigError(f"t must be in [0, 1], got {t}")
            ts = torch.tensor([t])
        else:
            if not 2 <= steps <= MAX_STEPS:
                raise ConfigError(f"steps must be in 2..{MAX_STEPS}, got {steps}")
            ts = torch.linspace(0, 1, steps)
        path = (slerp if mode == "spherical" else lerp)(self.z[a : a + 1], self.z[b : b + 1], ts)[:, 0]  # (S, D)
        if self.panels.classes:  # the class switches half-way, as in the report's interpolation figure
            y = torch.where(ts < 0.5, self.y[a], self.y[b])
            return [png(x) for x in self._decode(path, y)]
        return [png(x) for x in self._decode(path)]

    # --- per-model panels --------------------------------------------------------------------------
    def _need(self, flag: str, what: str) -> None:
        if not getattr(self.panels, flag):
            raise NotSupportedError(f"model {self.model.name!r} has no {what}")

    def style(self, i: int) -> list[str]:
        """The pinned item's code decoded with every class: its style, each class (Sohn et al. 2015)."""
        self._need("classes", "class labels to transfer a style between")
        i = self.item(i)
        k = self.model.num_classes
        return [png(x) for x in self._decode(self.z[i : i + 1].expand(k, -1), torch.arange(k))]

    def codebook(self) -> dict[str, Any]:
        """Codebook usage over the map's items, per code grid."""
        self._need("codebook", "codebook")
        if self._usage is None:
            grids = self._grids(self.x)
            self._usage = [{"name": name, "num_codes": int(q.num_codes), "shape": list(g.shape[1:]),
                            "counts": torch.bincount(g.flatten(), minlength=q.num_codes).tolist()}
                           for name, q, g in zip(self.model.grid_names, self.model.quantizers, grids)]
        return {"grids": self._usage}

    def _grids(self, x: torch.Tensor, batch: int = 512) -> list[torch.Tensor]:
        with self.lock, torch.no_grad():
            parts = [self.model.code_grids(x[i : i + batch].to(self.device)) for i in range(0, x.shape[0], batch)]
        return [torch.cat(p).cpu() for p in zip(*parts)]

    def code_maps(self, i: int) -> dict[str, Any]:
        self._need("codebook", "code grids")
        i = self.item(i)
        grids = self._grids(self.x[i : i + 1])
        return {"grids": [{"name": name, "codes": g[0].tolist(), "image": colour_codes(g[0], int(q.num_codes))}
                          for name, q, g in zip(self.model.grid_names, self.model.quantizers, grids)]}

    def sample(self, n: int = 8, temperature: float = 1.0, label: int | None = None) -> list[str]:
        self._need("sample", "prior to sample from" + (" (train one: aezoo train-prior RUN)" if self.panels.codebook else ""))
        if not 1 <= n <= MAX_SAMPLES:
            raise ConfigError(f"n must be in 1..{MAX_SAMPLES}, got {n}")
        if not (math.isfinite(temperature) and 0.05 <= temperature <= 5):
            raise ConfigError(f"temperature must be in [0.05, 5], got {temperature}")
        kwargs = {"temperature": temperature} if self.panels.codebook else {}
        y = self.label(label, 0) if self.panels.classes else None
        with self.lock, torch.no_grad():
            x = self.model.sample(n, None if y is None else y.expand(n).to(self.device), **kwargs).cpu()
        return [png(v) for v in x]  # a sequence model's draws are whole sequences: frames side by side

    def rollout(self, i: int, observe: int, predict: int, samples: int = 1) -> dict[str, Any]:
        self._need("rollout", "rollouts: it does not model sequences")
        i = self.item(i)
        T = self.x.shape[1]
        if not 1 <= observe <= T:
            raise ConfigError(f"observe must be in 1..{T}, got {observe}")
        if not 1 <= predict <= MAX_STEPS or not 1 <= samples <= 4:
            raise ConfigError(f"predict must be in 1..{MAX_STEPS} and samples in 1..4, got {predict} and {samples}")
        with self.lock, torch.no_grad():
            r = self.model.rollout(self.x[i : i + 1, :observe].to(self.device), predict, 1, samples).cpu()  # (S, 1, N, *frame)
        return {"observed": png(self.x[i, :observe]), "truth": png(self.x[i, observe : observe + predict]) if observe < T else None,
                "rollouts": [png(r[s, 0]) for s in range(samples)]}

    def codec(self, i: int) -> dict[str, Any]:
        """The pinned image as a learned codec's .aez file of its own (issue 25): what the file decodes
        to, its bytes and bits per pixel (header included, and the payload alone), where the bits go
        (each latent position's bits, summed over channels, as a heat map over the image), and JPEG and
        WebP of the same image at the nearest size not below the payload, with their PSNR: who wins."""
        from PIL import features

        from ..compress import learned
        from ..evaluate.rate import _psnr, _uint8, is_image_batch
        from ..nn.entropy import CODER_FLOOR, gaussian_likelihood

        self._need("codec", "learned image codec")
        i = self.item(i)
        x = self.x[i : i + 1]  # (1, C, H, W)
        if not is_image_batch(x):
            raise NotSupportedError("the compression panel needs images (C, H, W) of 1 or 3 channels, at least 2x2")
        with self.lock, torch.no_grad():
            blob = learned.compress(self.model, x)
            x_hat = learned.decompress(self.model, blob)  # what `aezoo decompress` writes
            z, y = learned.symbols(self.model, x)  # (1, N, hz, wz), (1, M, hy, wy)
            index, _ = self.model.entropy_parameters(z, tuple(y.shape[-2:]))
            tables = self.model.coding_tables()
        # each symbol's bits under the coder's own tables, floored as the range coder floors them (leaky
        # quantisation), so they add up to what the model estimates the payload costs
        floor = CODER_FLOOR
        sigma = torch.from_numpy(tables.scale_table)[index]
        bits = -torch.log2(gaussian_likelihood(y.double(), sigma).double().clamp_min(floor))[0].sum(0)  # (hy, wy)
        pz = torch.from_numpy(tables.z_pmf).clamp_min(floor)  # (N, 2 z_radius + 1)
        bits_z = -torch.log2(pz.gather(1, (z[0] + tables.z_radius).flatten(1))).sum()
        payload = len(learned.unpack(blob)[1])
        h, w = x.shape[-2:]
        ref = _uint8(x)[0]  # (H, W, C): the 8-bit image JPEG and WebP get
        formats = [("jpeg", "JPEG")] + ([("webp", "WEBP")] if features.check("webp") else [])
        return {"input": png(x[0]), "decoded": png(x_hat[0]), "psnr": finite(_psnr(_uint8(x_hat)[0] / 255.0, ref / 255.0)),
                "bytes": len(blob), "bpp": 8 * len(blob) / (h * w), "payload_bytes": payload, "payload_bpp": 8 * payload / (h * w),
                "bits_y": float(bits.sum()), "bits_z": float(bits_z), "bit_map": heat_map(bits, (h, w)), "bit_map_max": float(bits.max()),
                "codecs": [{"codec": name, **at_size(ref, fmt, payload)} for name, fmt in formats]}

    def denoise(self, i: int, level: float, seed: int = 0) -> dict[str, Any]:
        """The pinned item corrupted by the model's own kind of corruption at ``level``, and its reconstruction."""
        from ..nn.corruption import Corruption

        self._need("corruption", "corruption process")
        i = self.item(i)
        if not math.isfinite(level) or level > 100:
            raise ConfigError(f"level must be a finite number up to 100, got {level}")
        kind = self.model.corruption.kind
        q = Corruption(kind, level)  # raises ConfigError naming the allowed range
        x_tilde = q(self.x[i : i + 1], torch.Generator().manual_seed(seed))
        with self.lock, torch.no_grad():
            x_hat = self.model.reconstruct(x_tilde.to(self.device)).cpu()
        return {"kind": kind, "level": level, "trained_level": self.model.corruption.level, "noisy": png(x_tilde[0]), "denoised": png(x_hat[0])}
