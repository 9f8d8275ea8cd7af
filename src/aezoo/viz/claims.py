"""Figures that show a member's paper claim (``Claim.figure`` in its model file). Each applies only
when the model's applicable claim names it; the report puts it above the metrics.

- ``unit_activity``: the mean activation of every code unit over the test split, against the
  target rho and the 25% band around it (Ng 2011's sparsity target), the histogram of all activations,
  and lifetime and population sparsity (the share of inputs each unit is active on; active units per input);
- ``code_nonzeros``: how many units each test code keeps, against k (Makhzani & Frey 2013);
- ``kl_capacity``: the KL per epoch against the capacity C(t) it should follow (Burgess et al. 2017);
- ``principal_angles``: the angles between the linear AE's decoder subspace and PCA's (Baldi &
  Hornik 1989).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .figures import _mpl, figure

MAX_CODES = 10_000  # test inputs encoded for the code histograms
# Ng 2011's "active": a sigmoid unit's output near 1 rather than 0 (the sparse AE's eval metrics use the same 0.5)
ACTIVE_SIGMOID = 0.5


def claimed(model, name: str):
    """The model's applicable claim if it names figure ``name``, else None."""
    c = model.claim()
    return c if c is not None and c.figure == name else None


def _codes(model, data) -> torch.Tensor:
    from ..evaluate import encode_batched

    split = data.test if data.test is not None else data.train
    x = split.x[:MAX_CODES].to(model.device)
    y = None if split.y is None else split.y[:MAX_CODES].to(model.device)
    return encode_batched(model, x, y if model.needs_labels else None).flatten(1).double()


def _save(fig, plt, out_path) -> None:
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)


@figure("unit_activity", order=35)
@torch.no_grad()
def unit_activity(model, data, run_dir, out_path):
    c = claimed(model, "unit_activity")
    if c is None:
        return None
    z = _codes(model, data)  # (N, D)
    r = z.mean(0).cpu().numpy()  # (D,) rho_hat_j over the test split
    rho = c.reference(model.config) if c.reference is not None else None
    # Ng's "active": a sigmoid unit near 1 rather than 0 (the claim with a target rho); a ReLU unit above 0
    thr = ACTIVE_SIGMOID if rho is not None else 0.0
    on = (z > thr).double()
    share = on.mean(0).cpu().numpy()  # (D,) lifetime: the share of inputs each unit is active on
    per_input = on.sum(1).cpu().numpy()  # (N,) population: active units per input
    plt = _mpl()
    fig, (ax, ax2, ax3) = plt.subplots(1, 3, figsize=(13.5, 3.4))
    hi = max(float(r.max()), 2 * rho if rho else 0.0) * 1.05 or 1.0
    ax.hist(r, bins=np.linspace(0, hi, 41), color="tab:blue", label=f"{len(r)} code units")
    if rho is not None:
        ax.axvspan(0.75 * rho, 1.25 * rho, color="tab:green", alpha=0.15, label="within 25% of rho")
        ax.axvline(rho, color="tab:green", lw=2, label=f"rho = {rho:g}")
    ax.set_xlabel("mean activation of a unit (rho_hat_j)")
    ax.set_ylabel("units")
    ax.legend(fontsize=8)
    ax.set_title("mean activation of each unit", fontsize=10)
    vals = z.flatten().cpu().numpy()
    ax2.hist(vals, bins=np.linspace(0, max(1.0, float(vals.max())), 51), color="tab:blue")
    ax2.set_yscale("log")
    ax2.axvline(thr, color="tab:red", ls="--", lw=1.5, label=f"active above {thr:g}")
    ax2.set_xlabel("activation h_j(x), every unit and input")
    ax2.set_ylabel("count (log)")
    ax2.legend(fontsize=8)
    ax2.set_title("activation histogram", fontsize=10)
    ax3.plot(np.arange(1, len(share) + 1), np.sort(share)[::-1], color="tab:blue", label="share of inputs a unit is active on")
    if rho is not None:
        ax3.axhline(rho, color="tab:green", lw=1.5, label=f"rho = {rho:g}")
    ax3.set_ylim(0, max(float(share.max()), 2 * rho if rho else 0.0, 0.01) * 1.1)
    ax3.set_xlabel("code unit (sorted)")
    ax3.set_ylabel("share of test inputs")
    ax3.legend(fontsize=8)
    ax3.set_title(f"lifetime sparsity; {per_input.mean():.3g} active units per input", fontsize=10)
    fig.suptitle(f"{model.name}: sparsity of the code over {z.shape[0]} test inputs", fontsize=10)
    _save(fig, plt, out_path)
    near = "" if rho is None else f"; {int((np.abs(r - rho) <= 0.25 * rho).sum())} of {len(r)} within 25% of rho = {rho:g}"
    mass = float((z * on).sum() / z.sum()) if float(z.sum()) > 0 else 0.0
    return (f"Left: mean activation of each code unit over {z.shape[0]} test inputs (min {r.min():.4g}, max {r.max():.4g}{near}). "
            f"Middle: every activation; {100 * mass:.3g}% of the summed activation is in active entries (above {thr:g}), the rest is "
            f"what units emit while silent. Right: the share of inputs each unit is active on (median {np.median(share):.3g}; "
            f"{int((share == 0).sum())} units never active) and, in the title, active units per input (population sparsity).")


@figure("code_nonzeros", order=35)
@torch.no_grad()
def code_nonzeros(model, data, run_dir, out_path):
    c = claimed(model, "code_nonzeros")
    if c is None:
        return None
    z = _codes(model, data)
    nonzero = z != 0
    nz = nonzero.sum(1).cpu().numpy()  # per code
    use = nonzero.double().mean(0).cpu().numpy()  # per unit: the share of codes it is active in
    k = c.reference(model.config) if c.reference is not None else None
    plt = _mpl()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.0, 3.2))
    hi = int(max(nz.max(), 2 * k if k else 0)) + 1
    ax.hist(nz, bins=np.arange(-0.5, hi + 1.5), color="tab:blue", label=f"{len(nz)} test codes")
    if k is not None:
        ax.axvline(k, color="tab:red", ls="--", lw=1.5, label=f"k = {k}")
    ax.set_xlim(-0.5, hi + 0.5)
    ax.set_xlabel(f"non-zero units per code (of {z.shape[1]})")
    ax.set_ylabel("codes")
    ax.legend(fontsize=8)
    ax.set_title("non-zeros per code", fontsize=10)
    dead = int((use == 0).sum())
    ax2.plot(np.arange(1, len(use) + 1), np.sort(use)[::-1], color="tab:blue")
    ax2.set_xlabel("code unit (sorted by use)")
    ax2.set_ylabel("share of codes it is in")
    ax2.set_title(f"use of each unit: {dead} of {len(use)} never active", fontsize=10)
    fig.suptitle(f"{model.name}: exactly k active units per code", fontsize=10)
    _save(fig, plt, out_path)
    return (f"Left: non-zero units in each of {len(nz)} test codes, from {nz.min()} to {nz.max()}"
            + (f" (k = {k})" if k is not None else "") + f". Right: how often each unit is among them; {dead} units never are (dead units).")


@figure("kl_capacity", order=35)
def kl_capacity(model, data, run_dir, out_path):
    if claimed(model, "kl_capacity") is None:
        return None
    path = Path(run_dir) / "metrics.jsonl"
    recs = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []
    recs = [r for r in recs if "train/kl" in r and "train/capacity" in r]
    if not recs:
        return None
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    epochs = [r["epoch"] for r in recs]
    ax.plot(epochs, [r["train/capacity"] for r in recs], "k--", label="capacity C(t), epoch mean")
    ax.plot(epochs, [r["train/kl"] for r in recs], "o-", ms=3, color="tab:blue", label="KL, training epoch mean")
    val = [r for r in recs if "val/kl" in r and "val/capacity" in r]
    if val:  # validation runs at the epoch's end, so its C is the end-of-epoch value
        ax.plot([r["epoch"] for r in val], [r["val/capacity"] for r in val], ":", color="grey", label="C at the epoch's end")
        ax.plot([r["epoch"] for r in val], [r["val/kl"] for r in val], "s:", ms=3, color="tab:orange", label="KL, validation (epoch's end)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats")
    ax.legend(fontsize=8)
    ax.set_title(f"{model.name}: KL against the capacity C(t)", fontsize=10)
    _save(fig, plt, out_path)
    gap = recs[-1]["train/kl"] - recs[-1]["train/capacity"]
    out = f"KL per epoch against the capacity C(t) it is pulled to by gamma |KL - C|: in the last epoch, training KL - C = {gap:+.3g} nats"
    if val:
        out += f", validation KL - C = {val[-1]['val/kl'] - val[-1]['val/capacity']:+.3g} (held-out inputs)"
    return out + "."


@figure("principal_angles", order=35)
@torch.no_grad()
def principal_angles(model, data, run_dir, out_path):
    if claimed(model, "principal_angles") is None:
        return None
    angles = model.principal_angles(data.train.x).numpy()  # ascending
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(6.0, 3.0))
    ax.bar(np.arange(1, len(angles) + 1), angles, color="tab:blue")
    ax.set_xlabel("principal angle (ascending)")
    ax.set_ylabel("degrees")
    ax.set_ylim(0, max(6.0, float(angles.max()) * 1.1))
    ax.axhline(5, color="tab:red", ls=":", lw=1, label="5 degrees")
    ax.legend(fontsize=8)
    ax.set_title(f"{model.name}: decoder subspace against the top-{len(angles)} PCA subspace", fontsize=10)
    _save(fig, plt, out_path)
    return (f"Principal angles between the decoder's column space and the top-{len(angles)} principal subspace of the training "
            f"data: largest {angles.max():.3g} degrees (0 = the same subspace).")
