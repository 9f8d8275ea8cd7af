"""Rollout figures for sequence models (issue 6): observed frames, the true future where the data has
it, and several sampled rollouts. Shared by ``aezoo rollout`` and the run report; for models that
declare ``SequenceModel`` (``rollout(x_observed, n_steps, jump, n_samples)``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..models.base import SequenceModel
from .figures import _mpl, as_images, figure, image_grid


def _image_rows(observed, truth, rollouts) -> np.ndarray:
    """Per sequence one row of observed then true frames, and one row per sample of blanks then
    predictions. observed (B, T0, *f), truth (B, <=N, *f), rollouts (S, B, N, *f) -> (cells, H, W, C)."""
    s, b, n = rollouts.shape[:3]
    t0 = observed.shape[1]
    frame = as_images(observed[:1, 0])
    blank = np.full_like(frame[0], 255)
    cells = []
    for i in range(b):
        top = list(as_images(observed[i])) + list(as_images(truth[i]) if truth.shape[1] else [])
        cells += top + [blank] * (t0 + n - len(top))
        for k in range(s):
            cells += [blank] * t0 + list(as_images(rollouts[k, i]))
    return np.stack(cells)


def draw_rollouts(model, x: torch.Tensor, out_path, observe: int, predict: int, jump: int = 1, n_samples: int = 3) -> Path:
    """Observe x[:, :observe] (B, T, *frame), roll ``predict`` jumps of ``jump`` and save the figure."""
    from PIL import Image

    with torch.no_grad():
        roll = model.rollout(x[:, :observe], predict, jump, n_samples).cpu()  # (S, B, N, *frame)
    x = x.cpu()
    truth = x[:, observe - 1 + jump :: jump][:, :predict]  # (B, <=N, *frame)
    out_path = Path(out_path)
    if x.dim() in (4, 5) and as_images(x[:1, 0]) is not None:  # frames (H, W) or (C, H, W)
        grid = image_grid(_image_rows(x[:, :observe], truth, roll), rows=x.shape[0] * (1 + n_samples), cols=observe + predict)
        img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
        img.resize((img.width * 3, img.height * 3), Image.NEAREST).save(out_path)
        return out_path
    plt = _mpl()  # low-dimensional frames: one panel per sequence, a line per coordinate of the frame
    fig, axes = plt.subplots(1, x.shape[0], figsize=(3.2 * x.shape[0], 2.6), squeeze=False)
    t_obs = np.arange(observe)
    t_pred = observe - 1 + jump * np.arange(1, predict + 1)
    for i, ax in enumerate(axes[0]):
        ax.plot(t_obs, x[i, :observe].flatten(1).numpy(), "k.-", label="observed")
        if truth.shape[1]:
            ax.plot(t_pred[: truth.shape[1]], truth[i].flatten(1).numpy(), "k--", alpha=0.6, label="true")
        for k in range(n_samples):
            ax.plot(t_pred, roll[k, i].flatten(1).numpy(), "-", color="C0", alpha=0.5, label="rollouts" if k == 0 else None)
        ax.axvline(observe - 0.5, color="grey", lw=0.5)
        ax.set_xlabel("t")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path


@figure("rollouts", order=25)
def rollouts(model, data, run_dir, out_path, n: int = 4, n_samples: int = 3):
    split = data.test if data.test is not None else data.train
    if not isinstance(model, SequenceModel) or split.x.dim() < 3:
        return None
    steps = split.x.shape[1]
    observe = max(1, steps // 2)
    predict = steps - observe
    draw_rollouts(model, split.x[:n].to(model.device), out_path, observe, predict, 1, n_samples)
    return (f"Rollouts: after observing {observe} frames, the top row of each block continues with the true "
            f"frames and the {n_samples} rows below are sampled rollouts of the transition model, decoded.")
