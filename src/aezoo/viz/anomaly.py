"""The report's section for scored runs (issue 18): the score histogram by class, and the most and
least anomalous examples. Both read ``RUN/scores.npz``, which ``aezoo score`` writes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..evaluate.anomaly import COLUMN, SCORES_FILE
from .figures import _mpl, as_images, figure


def _read(run_dir) -> dict | None:
    path = Path(run_dir) / SCORES_FILE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _class_name(data, c: int) -> str:
    names = data.class_names if data is not None else None
    return names[c] if names and c < len(names) else str(c)


@figure("anomaly_scores", order=60)
def anomaly_scores(model, data, run_dir, out_path):
    s = _read(run_dir)
    if s is None:
        return None
    kind, split, v = str(s["kind"]), str(s["split"]), s["values"]
    finite = np.isfinite(v)
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = np.histogram_bin_edges(v[finite], bins=int(np.clip(finite.sum() // 4, 8, 40))) if finite.any() else 10
    if "labels" in s:
        for c in np.unique(s["labels"]):
            sel = (s["labels"] == c) & finite
            ax.hist(v[sel], bins=bins, histtype="step", linewidth=1.4, label=f"{_class_name(data, int(c))} ({int(sel.sum())})")
        ax.legend(fontsize=7, ncol=2 if len(np.unique(s["labels"])) > 5 else 1)
    else:
        ax.hist(v[finite], bins=bins, color="tab:blue")
    ax.set_xlabel(f"{COLUMN[kind]} (higher: more anomalous)")
    ax.set_ylabel("examples")
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return (f"Anomaly scores ({COLUMN[kind]}) of the {len(v)} {split} examples last scored with `aezoo score`, one histogram "
            "per class: the classes the model was not trained on should sit to the right.")


@figure("anomalous_examples", order=61)
def anomalous_examples(model, data, run_dir, out_path):
    s = _read(run_dir)
    if s is None:
        return None
    kind, v = str(s["kind"]), s["values"]
    top, bottom = s["top"], s["bottom"]
    kinds = (data.preprocessing.get("kind") if data is not None else None) or "images"

    def label(i):
        cls = f", {_class_name(data, int(s['labels'][i]))}" if "labels" in s else ""
        return f"#{int(s['index'][i])}{cls}\n{v[i]:.3g}"

    plt = _mpl()
    images = None if kinds in ("vectors", "table") else (as_images(torch.from_numpy(s["x_top"])), as_images(torch.from_numpy(s["x_bottom"])))
    if images is not None and images[0] is not None and images[1] is not None:
        n = max(len(top), len(bottom))
        fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 3.4), squeeze=False)
        for row, (imgs, picks, title) in enumerate(((images[0], top, "most anomalous"), (images[1], bottom, "least anomalous"))):
            for k in range(n):
                ax = axes[row][k]
                ax.axis("off")
                if k < len(picks):
                    im = imgs[k]
                    ax.imshow(im[..., 0] if im.shape[-1] == 1 else im, cmap="gray", vmin=0, vmax=255)
                    ax.set_title(label(picks[k]), fontsize=7)
            axes[row][0].text(-0.15, 0.5, title, transform=axes[row][0].transAxes, rotation=90, va="center", ha="right", fontsize=8)
    else:  # vectors and tables: each example's features, in the run's scaled units (standard: z-scores)
        x = np.concatenate([s["x_top"].reshape(len(top), -1), s["x_bottom"].reshape(len(bottom), -1)])
        names = (data.preprocessing.get("feature_names") if data is not None else None) or [str(j) for j in range(x.shape[1])]
        lim = float(np.nanmax(np.abs(x))) or 1.0
        fig, ax = plt.subplots(figsize=(min(14, 2 + 0.45 * x.shape[1]), 0.9 + 0.32 * len(x)))
        m = ax.imshow(x, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_yticks(range(len(x)), [("top " if r < len(top) else "bottom ") + label(i).replace("\n", ": ")
                                      for r, i in enumerate(list(top) + list(bottom))], fontsize=7)
        ax.axhline(len(top) - 0.5, color="k", linewidth=1)
        if x.shape[1] <= 60:
            ax.set_xticks(range(x.shape[1]), names[: x.shape[1]], rotation=60, ha="right", fontsize=7)
        fig.colorbar(m, ax=ax, label=data.preprocessing.get("normalize", "scaled") + " units" if data is not None else "scaled units")
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return (f"The {len(top)} most and {len(bottom)} least anomalous examples by {COLUMN[kind]} (row index in their source, "
            "class, score).")
