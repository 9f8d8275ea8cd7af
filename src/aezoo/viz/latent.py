"""Figures of the latent space. Each applies by capability (float codes, a prior, labels, image
inputs), never by model name, and returns None where it does not apply.

- latent scatter of test codes coloured by label: directly for a 2-D code, otherwise after PCA or,
  on request, t-SNE (van der Maaten & Hinton 2008, "Visualizing Data using t-SNE", JMLR 9); with a
  standard-normal prior the 1 and 2 sigma circles show whether the codes fill N(0, I);
- the learned 2-D manifold: Kingma & Welling 2014, "Auto-Encoding Variational Bayes",
  arXiv:1312.6114, Fig. 4: a grid over the unit square mapped through the prior's inverse CDF;
- interpolation between pairs of inputs, linear, or spherical for Gaussian latents (White 2016,
  "Sampling Generative Networks", arXiv:1609.04468: a straight line between two draws of a
  high-dimensional Gaussian passes through a region of low prior density);
- traversals of one latent dimension from -3 to 3 with the others fixed (as in Higgins et al. 2017,
  "beta-VAE", ICLR);
- a class x sample grid for conditional models (Sohn et al. 2015, "Learning Structured Output
  Representation using Deep Conditional Generative Models", NeurIPS);
- samples of several runs side by side (``draw_samples_side_by_side``, on `aezoo compare`'s page), e.g.
  a VAE at latent sizes 2/5/10/20: small codes give blurry, averaged samples, large ones sharper but
  less regular (issue 24).
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import NotSupportedError
from ..models.base import ConditionalModel, LatentVariableModel
from .figures import _mpl, as_images, figure, save_labelled_grid

__all__ = ["draw_interpolation", "draw_latent_scatter", "draw_samples_side_by_side", "has_gaussian_latent", "has_standard_normal_prior", "interpolate",
           "lerp", "pick_pairs", "project_2d", "slerp"]

MAX_POINTS = 2000  # test codes drawn in the scatter


# --- capabilities --------------------------------------------------------------------------------
def _image_data(data) -> bool:
    return as_images(data.train.x[:1]) is not None


def _sequence_data(data) -> bool:
    return data.train.x.dim() == 5  # (N, T, C, H, W)


def has_gaussian_latent(model) -> bool:
    """A flat code with a Gaussian posterior and prior (``LatentVariableModel``) that the model samples from."""
    return bool(model.generative and isinstance(model, LatentVariableModel) and len(model.latent_shape) == 1)


def has_standard_normal_prior(model) -> bool:
    """A Gaussian latent whose prior is declared N(0, I) (``standard_normal_prior``; the contract tests
    check the declaration against ``prior_log_prob``)."""
    return has_gaussian_latent(model) and model.standard_normal_prior


def _split(data):
    return data.test if data.test is not None else data.train


def _labels_for(model, split, n: int):
    return None if split.y is None else split.y[:n].to(model.device)


def _class_names(data, k: int) -> list[str]:
    names = data.class_names or []
    return [str(names[c]) if c < len(names) else str(c) for c in range(k)]


# --- latent scatter ----------------------------------------------------------------------------------
def project_2d(z: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str, str]:
    """(N, D) codes -> (N, 2) points and axis labels. ``auto``: the code itself when D == 2, else PCA."""
    if method not in ("auto", "pca", "tsne", "umap"):
        raise NotSupportedError(f"unknown projection {method!r}; choose auto, pca, tsne or umap")
    d = z.shape[1]
    if method == "auto" and d == 2:
        return z, "$z_1$", "$z_2$"
    if method in ("auto", "pca"):
        from sklearn.decomposition import PCA

        pca = PCA(2, random_state=seed).fit(z)
        r = pca.explained_variance_ratio_ * 100
        return pca.transform(z), f"PC 1 ({r[0]:.0f}% of variance)", f"PC 2 ({r[1]:.0f}% of variance)"
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(z) - 1) / 3)))
        pts = TSNE(2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(z)
        return pts, "t-SNE 1", "t-SNE 2"
    try:
        import umap  # type: ignore[import-not-found]
    except ImportError:
        raise NotSupportedError("UMAP needs the umap-learn package (pip install umap-learn); use pca or tsne") from None
    return umap.UMAP(n_components=2, random_state=seed).fit_transform(z), "UMAP 1", "UMAP 2"


@torch.no_grad()
def draw_latent_scatter(model, data, out_path, method: str = "auto", n: int = MAX_POINTS) -> str | None:
    split = _split(data)
    if _sequence_data(data) or (model.needs_labels and split.y is None):
        return None
    from ..evaluate import encode_batched

    x = split.x[:n].to(model.device)
    z = encode_batched(model, x, _labels_for(model, split, n))
    if not z.is_floating_point() or z.flatten(1).shape[1] < 2:
        return None  # discrete codes or a 1-D code: nothing to scatter
    z = z.flatten(1).float().cpu().numpy()
    pts, xlabel, ylabel = project_2d(z, method)
    direct = method == "auto" and z.shape[1] == 2
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(5.6, 4.6), dpi=100)
    y = None if split.y is None else split.y[:n].cpu().numpy()
    if y is not None:
        k = int(y.max()) + 1
        cmap = plt.get_cmap("tab10" if k <= 10 else "tab20", k)
        sc = ax.scatter(pts[:, 0], pts[:, 1], c=y, cmap=cmap, vmin=-0.5, vmax=k - 0.5, s=6, alpha=0.8, linewidths=0)
        bar = fig.colorbar(sc, ax=ax, ticks=range(k))
        bar.ax.set_yticklabels(_class_names(data, k), fontsize=7)
        bar.set_label("label", fontsize=8)
    else:
        ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.8, linewidths=0)
    prior = direct and has_standard_normal_prior(model)
    if prior:
        for r in (1, 2):
            ax.add_patch(plt.Circle((0, 0), r, fill=False, ls="--", lw=1, color="k", alpha=0.6))
        ax.set_aspect("equal", adjustable="datalim")
        ax.plot([], [], "k--", lw=1, label="N(0, I): 1 and 2 sd")
        ax.legend(fontsize=7, loc="upper right")
    how = "" if direct else {"auto": " (PCA)", "pca": " (PCA)", "tsne": " (t-SNE)", "umap": " (UMAP)"}[method]
    ax.set_title(f"{model.name}: {len(pts)} test codes{how}", fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    caption = f"Codes of {len(pts)} test inputs" + (", coloured by label" if y is not None else "")
    caption += "; the 2-D code itself." if direct else f", projected to 2-D{how.rstrip(')').replace(' (', ' by ')}."
    if prior:
        caption += " Dashed circles: 1 and 2 standard deviations of the N(0, I) prior, which a VAE's codes should fill."
    return caption


@figure("latent_scatter", order=40)
def latent_scatter(model, data, run_dir, out_path):
    return draw_latent_scatter(model, data, out_path)


# --- the learned manifold --------------------------------------------------------------------------
@figure("manifold", order=45)
@torch.no_grad()
def manifold(model, data, run_dir, out_path, n: int = 15):
    if tuple(model.latent_shape) != (2,) or not _image_data(data) or not has_standard_normal_prior(model):
        return None
    q = torch.linspace(0.05, 0.95, n)
    g = torch.distributions.Normal(0.0, 1.0).icdf(q)  # the prior's quantiles, as in Kingma & Welling's Fig. 4
    z2, z1 = torch.meshgrid(g.flip(0), g, indexing="ij")  # rows: z_2 from high (top) to low
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], 1).to(model.device)  # (n*n, 2)
    y, note = None, ""
    if model.needs_labels:
        y = torch.zeros(len(z), dtype=torch.long, device=model.device)
        note = f" conditioned on class {_class_names(data, 1)[0]}"
    images = as_images(model.decode(z, y).view(len(z), *data.input_shape))
    if images is None:
        return None
    ticks = [f"{v:.1f}" for v in g.tolist()]
    save_labelled_grid(images, n, n, out_path, col_labels=ticks, row_labels=ticks[::-1], xlabel="$z_1$", ylabel="$z_2$",
                       title=f"{model.name}: decoded grid over the prior's quantiles{note}")
    return ("The learned 2-D manifold: images decoded from a grid of codes at the N(0, 1) quantiles 0.05..0.95 of each "
            f"latent dimension (Kingma & Welling 2014, Fig. 4){note}.")


# --- interpolation -----------------------------------------------------------------------------------
def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(P, D), (P, D), (S,) -> (S, P, D); exact endpoints at t = 0 and 1."""
    t = t.to(a)[:, None, None]
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (White 2016): (P, D), (P, D), (S,) -> (S, P, D); exact endpoints."""
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).clamp(-1, 1)  # (P,)
    omega = torch.arccos(cos)
    so = torch.sin(omega)
    t = t.to(a)[:, None, None]
    so = so[:, None].clamp_min(1e-12)
    out = torch.sin((1 - t) * omega[:, None]) / so * a + torch.sin(t * omega[:, None]) / so * b  # weights exactly 1, 0 at the ends
    parallel = (so[:, 0] < 1e-6)[None, :, None]  # (anti)parallel codes: the great circle is undefined; go straight
    return torch.where(parallel, lerp(a, b, t[:, 0, 0]), out)


def pick_pairs(y: torch.Tensor | None, n_pairs: int, same_label: bool, n_items: int | None = None) -> list[tuple[int, int]]:
    """Deterministic pairs of distinct examples among ``n_items`` (as many as ``y`` has, when given);
    with labels, pairs of different labels (or of the same label, for conditional models that decode
    with one class along the path)."""
    n = len(y) if y is not None else min(2 * n_pairs, 2 * n_pairs if n_items is None else n_items)
    used: set[int] = set()
    pairs = []
    for i in range(n):
        if i in used:
            continue
        for j in range(i + 1, n):
            if j not in used and (y is None or (bool(y[i] == y[j]) == same_label)):
                pairs.append((i, j))
                used |= {i, j}
                break
        if len(pairs) == n_pairs:
            break
    return pairs


@torch.no_grad()
def interpolate(model, x_a, x_b, steps: int = 10, y_a=None, y_b=None, spherical: bool | None = None) -> torch.Tensor:
    """Decode the path between the codes of x_a and x_b (each (P, *input_shape)) -> (P, steps, *input_shape).
    The first and last steps are decode(encode(x)), the inputs' reconstructions."""
    za, zb = model.encode(x_a, y_a), model.encode(x_b, y_b)
    if not za.is_floating_point():
        raise NotSupportedError(f"model {model.name!r} has discrete codes: there is no path between them to interpolate")
    if spherical is None:
        spherical = has_gaussian_latent(model)
    t = torch.linspace(0, 1, steps)
    path = (slerp if spherical else lerp)(za.flatten(1), zb.flatten(1), t)  # (S, P, D)
    out = [model.decode(path[s].view_as(za), y_a if s < steps / 2 else y_b) for s in range(steps)]
    return torch.stack(out, 1).view(x_a.shape[0], steps, *x_a.shape[1:])


@torch.no_grad()
def draw_interpolation(model, data, out_path, pairs: int = 6, steps: int = 10, split: str | None = None,
                       spherical: bool | None = None) -> str | None:
    """Rows of [input A, decoded path from A's code to B's, input B]; None where it does not apply.
    ``spherical`` None: spherical for Gaussian latents, linear otherwise."""
    part = data.split(split) if split else _split(data)
    if not _image_data(data) or part is None:
        return None
    n = min(len(part), 500)
    y_all = None if part.y is None else part.y[:n]
    if model.needs_labels and y_all is None:
        return None
    idx = pick_pairs(y_all, pairs, same_label=model.needs_labels, n_items=n)
    if not idx:
        return None
    ia, ib = (torch.tensor(v) for v in zip(*idx))
    dev = model.device
    x_a, x_b = part.x[ia].to(dev), part.x[ib].to(dev)
    y_a = None if y_all is None else y_all[ia].to(dev)
    y_b = None if y_all is None else y_all[ib].to(dev)
    z = model.encode(x_a[:1], None if y_a is None else y_a[:1])
    if not z.is_floating_point():
        return None
    spherical = has_gaussian_latent(model) if spherical is None else spherical
    path = interpolate(model, x_a, x_b, steps, y_a, y_b, spherical)  # (P, S, ...)
    rows = torch.cat([x_a[:, None], path.to(x_a), x_b[:, None]], 1)  # (P, S + 2, ...)
    images = as_images(rows.flatten(0, 1))
    if images is None:
        return None
    kind = "spherical" if spherical else "linear"
    cols = ["A"] + [f"{v:.2f}" for v in torch.linspace(0, 1, steps).tolist()] + ["B"]
    save_labelled_grid(images, len(idx), steps + 2, out_path, col_labels=cols, xlabel="interpolation weight t (outer columns: the inputs A and B)",
                       title=f"{model.name}: {kind} interpolation in latent space")
    return (f"{kind.capitalize()} interpolation in latent space between pairs of test inputs (outer columns); "
            "the columns t = 0 and t = 1 are the inputs' reconstructions.")


@figure("interpolation", order=50)
def interpolation(model, data, run_dir, out_path):
    return draw_interpolation(model, data, out_path)


# --- traversals ---------------------------------------------------------------------------------------
@figure("traversals", order=55)
@torch.no_grad()
def traversals(model, data, run_dir, out_path, steps: int = 9, max_dims: int = 10):
    split = _split(data)
    if not has_gaussian_latent(model) or not _image_data(data) or (model.needs_labels and split.y is None):
        return None
    from ..evaluate import encode_batched

    n = min(len(split), 1000)
    y = _labels_for(model, split, n)
    mu = encode_batched(model, split.x[:n].to(model.device), y)  # (N, D)
    var = mu.var(0) if n > 1 else torch.ones(mu.shape[1], device=mu.device)
    dims = var.argsort(descending=True)[:max_dims].tolist()  # most used dimensions first (active units)
    values = torch.linspace(-3, 3, steps, device=mu.device)
    z = mu[:1].repeat(len(dims) * steps, 1)  # every row starts from the first test input's code
    for r, d in enumerate(dims):
        z[r * steps : (r + 1) * steps, d] = values
    y_rows = None if y is None else y[:1].repeat(len(z))
    images = as_images(model.decode(z, y_rows).view(len(z), *data.input_shape))
    if images is None:
        return None
    save_labelled_grid(images, len(dims), steps, out_path, col_labels=[f"{v:.1f}" for v in values.tolist()],
                       row_labels=[f"$z_{{{d + 1}}}$ (var {var[d]:.2f})" for d in dims], xlabel="value of the traversed dimension",
                       title=f"{model.name}: latent traversals from a test input's code")
    return (f"Latent traversals: each row varies one latent dimension from -3 to 3 with the others fixed at the code of one "
            f"test input; rows are the {len(dims)} dimensions whose codes vary most over the test set (variance in brackets).")


# --- conditional generation -------------------------------------------------------------------------
@figure("class_samples", order=31)
@torch.no_grad()
def class_samples(model, data, run_dir, out_path, per_class: int = 10, styles: int = 4):
    """Left: prior draws of z decoded with each class. Right: the codes of a few test inputs (top row),
    each decoded with every class: style transfer, which should change the class and keep the style."""
    if not (model.generative and isinstance(model, ConditionalModel) and _image_data(data)):
        return None
    k = min(model.num_classes, 10)
    dev = model.device
    y = torch.arange(k, device=dev).repeat_interleave(per_class)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(0)
        x = model.sample(len(y), y)
    images = as_images(x)
    if images is None:
        return None
    split = _split(data)
    src = []
    if split.y is not None:  # inputs of distinct classes, in order of appearance
        seen: set[int] = set()
        for i, c in enumerate(split.y[:500].tolist()):
            if c < k and c not in seen:
                seen.add(c)
                src.append(i)
            if len(src) == styles:
                break
    m = len(src)
    cols = per_class + (1 + m if m else 0)
    blank = np.full_like(images[0], 255)
    if m:
        x_src, y_src = split.x[src].to(dev), split.y[src].to(dev)
        z = model.encode(x_src, y_src)  # (m, D): the style of each input
        moved = model.decode(z.repeat(k, *([1] * (z.dim() - 1))), torch.arange(k, device=dev).repeat_interleave(m))
        moved_img, src_img = as_images(moved.view(k * m, *data.input_shape)), as_images(x_src)
        cells = [blank] * (per_class + 1) + list(src_img)
        for c in range(k):
            cells += list(images[c * per_class : (c + 1) * per_class]) + [blank] + list(moved_img[c * m : (c + 1) * m])
        rows, row_labels = k + 1, ["input"] + _class_names(data, k)
        col_labels = [str(i + 1) for i in range(per_class)] + [""] + [f"x{j + 1}" for j in range(m)]
        xlabel = "left: independent draws of z from the prior; right: the code of input x_j (top row) decoded with each class"
    else:
        cells, rows, row_labels, col_labels = list(images), k, _class_names(data, k), None
        xlabel = "independent draws of z from the prior"
    save_labelled_grid(np.stack(cells), rows, cols, out_path, row_labels=row_labels, col_labels=col_labels, ylabel="class y",
                       xlabel=xlabel, title=f"{model.name}: samples per class, and style transfer")
    caption = "Conditional samples: each row decodes prior draws of z with one class label y."
    if m:
        caption += (f" Right: the codes of {m} test inputs (top row) decoded with every class, the style transfer of "
                    "`aezoo sample RUN --like X --label Y`: the class should follow y and the style (thickness, shade, shape) the input.")
    return caption


# --- several runs' samples, side by side ----------------------------------------------------------
@torch.no_grad()
def samples_side_by_side(models, titles: list[str], n: int = 36, seed: int = 0):
    """One panel per model that draws images without a label (``generative``, not ``needs_labels``):
    a grid of ``n`` prior samples titled by its entry of ``titles``. Returns the matplotlib figure,
    or None when fewer than two models apply."""
    from .figures import image_grid

    panels = []
    for model, title in zip(models, titles):
        if not model.generative or model.needs_labels:
            continue
        try:
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                imgs = as_images(model.sample(n))
        except Exception:  # noqa: BLE001 - e.g. a code-grid model without a trained prior: no panel
            continue
        if imgs is not None:
            cols = int(np.ceil(np.sqrt(n)))
            panels.append((title, image_grid(imgs, int(np.ceil(n / cols)), cols)))
    if len(panels) < 2:
        return None
    plt = _mpl()
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9), squeeze=False)
    for ax, (title, grid) in zip(axes[0], panels):
        ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def draw_samples_side_by_side(models, titles: list[str], out_path, n: int = 36):
    """Save ``samples_side_by_side`` as a PNG; returns the path, or None when it does not apply."""
    fig = samples_side_by_side(models, titles, n)
    if fig is None:
        return None
    fig.savefig(out_path, dpi=110)
    _mpl().close(fig)
    return out_path
