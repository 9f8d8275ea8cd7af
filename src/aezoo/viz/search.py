"""Search figures: queries beside their nearest neighbours in code space (``aezoo search --out
grid.png``), and the report's ``neighbours`` figure (test inputs and their nearest training inputs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .figures import _mpl, _test_batch, as_images, figure

NEIGHBOUR_DATABASE = 10_000  # training inputs searched by the report figure (a subset, for speed)


def hits_grid(queries: torch.Tensor, hits: torch.Tensor, path: str | Path, *, query_labels=None, hit_labels=None, distances=None,
              class_names=None, query_names=None) -> Path | None:
    """One row per query: the query, then its k hits nearest first, each titled with its label (green
    when it matches the query's) and distance. ``hits`` (Q, k, *input_shape); -1 labels are unknown."""
    q_img, h_img = as_images(queries), as_images(hits.flatten(0, 1))
    if q_img is None or h_img is None:
        return None
    n_q, k = hits.shape[:2]
    h_img = h_img.reshape(n_q, k, *h_img.shape[1:])
    name = lambda lab: "" if lab is None or lab < 0 else (class_names[lab] if class_names and lab < len(class_names) else str(lab))  # noqa: E731
    plt = _mpl()
    fig, axes = plt.subplots(n_q, k + 1, figsize=(1.05 * (k + 1), 1.4 * n_q), squeeze=False)
    for r in range(n_q):
        ql = None if query_labels is None else int(query_labels[r])
        axes[r, 0].imshow(q_img[r].squeeze(-1) if q_img.shape[-1] == 1 else q_img[r], cmap="gray", vmin=0, vmax=255)
        title = query_names[r] if query_names else "query"
        axes[r, 0].set_title(f"{title}\n{name(ql)}".strip(), fontsize=6)
        for c in range(k):
            ax = axes[r, c + 1]
            ax.imshow(h_img[r, c].squeeze(-1) if h_img.shape[-1] == 1 else h_img[r, c], cmap="gray", vmin=0, vmax=255)
            hl = None if hit_labels is None else int(hit_labels[r, c])
            dist = "" if distances is None else f"{float(distances[r, c]):.3g}"
            match = ql is not None and ql >= 0 and hl is not None and hl >= 0
            ax.set_title(f"{name(hl)}\n{dist}".strip(), fontsize=6, color=("tab:green" if hl == ql else "tab:red") if match else "black")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for r in range(n_q):  # a gap between each query and its hits
        axes[r, 0].spines[:].set_linewidth(2)
    fig.tight_layout(pad=0.3, h_pad=0.8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


@figure("neighbours", order=45)
@torch.no_grad()
def neighbours(model, data, run_dir, out_path, n: int = 6, k: int = 8):
    """Search by embedding: test inputs and their nearest training inputs by Euclidean distance between codes."""
    from ..search import exact_neighbours
    from ..search.vector_index import encode_codes

    train = data.train
    if model.needs_labels or as_images(train.x[:1]) is None or len(train) <= k:
        return None
    gen = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(train), generator=gen)[:NEIGHBOUR_DATABASE]
    db_x, db_y = train.x[pick], None if train.y is None else train.y[pick]
    x, y = _test_batch(data, n, "cpu")
    z_db = torch.from_numpy(encode_codes(model, db_x))
    z_q = torch.from_numpy(encode_codes(model, x))
    dist, idx = exact_neighbours(z_db, z_q, k)
    hit_labels = None if db_y is None else db_y[idx].numpy()
    hits_grid(x, db_x[idx], out_path, query_labels=None if y is None else y.cpu().numpy(), hit_labels=hit_labels,
              distances=dist.numpy(), class_names=data.class_names)
    caption = (f"Search by embedding: {x.shape[0]} test inputs (left) and their {k} nearest of {len(pick)} training inputs, "
               "by Euclidean distance between codes (shown under each hit)")
    return caption + (", labels green where they match the query's." if hit_labels is not None else ".")
