"""Each family member at its defaults (issue 11): the command a user types, and the figure that shows
its paper's claim.

Every run goes through the CLI (``aezoo.cli.main``, in this process), so the command in the table is
exactly what ran: the model's Config defaults and declared ``train_defaults``, the CLI's default
budget (10 epochs) unless the row says otherwise. Comparisons that need a second model (the AE of the
same size for the DAE, lambda = 0 for the contractive AE, the VAE for beta-VAE) train it the same way;
the CVAE's samples are judged by a small CNN trained on the real training images.

    python benchmarks/bench_defaults.py                      # every row (about an hour on 2 loaded cores)
    python benchmarks/bench_defaults.py --only vae cvae      # some rows
    python benchmarks/bench_defaults.py --reuse              # re-measure finished runs without training

Run folders (with report.html, the claim above the metrics) land in ``runs/bench_defaults/``; the
rows are printed as the markdown table of benchmarks/README.md and written to ``results.json`` there.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import time
from pathlib import Path

import torch

import aezoo
from aezoo.cli import main as cli

OUT = Path("runs/bench_defaults")


def run(args: list[str], reuse: bool) -> tuple[Path, float]:
    """Run ``aezoo ARGS`` (a `train` command with ``--out``); returns the run folder and seconds."""
    out = Path(args[args.index("--out") + 1])
    if reuse and (out / "eval.json").exists():
        return out, float("nan")
    if out.exists():
        import shutil

        shutil.rmtree(out)
    t0 = time.perf_counter()
    code = cli([*args, "--quiet"])
    if code != 0:
        raise SystemExit(f"aezoo {' '.join(args)} exited with {code}")
    return out, time.perf_counter() - t0


def ev(run_dir: Path) -> dict:
    return json.loads((run_dir / "eval.json").read_text())


def eval_with(run_dir: Path, *extra: str) -> dict:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli(["eval", str(run_dir), "--json", "--iw-samples", "0", *extra]) == 0
    return json.loads(buf.getvalue())


def cmd(args: list[str]) -> str:
    shown = [a for a in args if not a.startswith(str(OUT))]
    return "aezoo " + " ".join(shlex.quote(a) for a in shown if a != "--out")


def train_args(model: str, data: str, name: str, *extra: str) -> list[str]:
    return ["train", model, "--data", data, *extra, "--out", str(OUT / name)]


# --- one function per row: (member, claim, measured figure, commands, seconds) --------------------
def row_ae(reuse):
    a = train_args("ae", "fashion-mnist", "ae")
    r, s = run(a, reuse)
    m = ev(r)
    return "ae", "beats PCA with as many components (Hinton & Salakhutdinov 2006)", \
        f"recon MSE {m['recon_mse']:.4f} = {m['pca_mse_ratio']:.2f} x PCA-16's", [a], s


def row_linear(reuse):
    out, secs, cmds = [], 0.0, []
    for data in ("digits", "fashion-mnist"):
        a = train_args("linear_ae", data, f"linear_ae-{data}", "--latent-dim", "8", "--epochs", "30")
        r, s = run(a, reuse)
        m = ev(r)
        out.append(f"{data}: pca_mse_ratio {m['pca_mse_ratio']:.4f}, largest angle {m['pca_angle_max_deg']:.2f} deg")
        secs += s
        cmds.append(a)
    return "linear_ae", "reaches PCA by optimisation: ratio <= 1.02, largest angle < 5 deg (Baldi & Hornik 1989)", "; ".join(out), cmds, secs


def row_dae(reuse):
    a = train_args("denoising_ae", "fashion-mnist", "denoising_ae")
    r, s = run(a, reuse)
    m = ev(r)
    ae_dir, s2 = run(train_args("ae", "fashion-mnist", "ae"), True)
    base = eval_with(ae_dir, "--corrupt", m["corrupt"])
    return "denoising_ae", "denoises masked inputs better than the AE of the same size (Vincent et al. 2008)", \
        (f"{m['corrupt']}: corrupted {m['noisy_psnr']:.2f} dB -> DAE {m['denoise_psnr']:.2f} dB; "
         f"AE (same 512-256-16 nets) {base['denoise_psnr']:.2f} dB"), [a, ["eval", "AE_RUN", "--corrupt", m["corrupt"]]], s


def row_sparse(reuse):
    out, secs, cmds = [], 0.0, []
    for data in ("fashion-mnist", "digits"):
        a = train_args("sparse_ae", data, f"sparse_ae-{data}")
        r, s = run(a, reuse)
        m = ev(r)
        out.append(f"{data}: {m['units_near_rho']:.0%} of units within 25% of rho, rho_hat in "
                   f"[{m['mean_activation_min']:.4f}, {m['mean_activation_max']:.4f}]; largest activation "
                   f"{m['activation_max']:.2f}, units never above 0.5 {m['units_never_active']:.0%}, "
                   f"{m['active_units_per_input']:.2f} active units per input, active_mass {m['active_mass']:.3f}")
        secs += s
        cmds.append(a)
    return "sparse_ae", ("every unit's mean activation within 25% of rho = 0.05; Ng's picture (each unit above 0.5 on a few "
                         "inputs, near 0 otherwise) measured beside it, not reached (Ng 2011; issue 24)"), "; ".join(out), cmds, secs


def row_ksparse(reuse):
    a = train_args("k_sparse_ae", "fashion-mnist", "k_sparse_ae")
    r, s = run(a, reuse)
    m = ev(r)
    return "k_sparse_ae", ("exactly k = 25 non-zeros in every code of 1000 linear units (Makhzani & Frey 2013); "
                           "AuxK keeps units alive: < 1% dead over the last 200 training steps (Gao et al. 2024)"), \
        (f"code_l0 {m['code_l0']:g}; recon MSE {m['recon_mse']:.4f}; dead units {m['dead_units_train']:.1%} (last 200 "
         f"training steps), {m['dead_units_test']:.1%} never in the top k on the test split"), [a], s


def row_contractive(reuse):
    a = train_args("contractive_ae", "fashion-mnist", "contractive_ae")
    b = train_args("contractive_ae", "fashion-mnist", "contractive_ae-lam0", "--set", "lam=0")
    (r, s), (r0, s0) = run(a, reuse), run(b, reuse)
    m, m0 = ev(r), ev(r0)
    return "contractive_ae", "the penalty shrinks the encoder's Jacobian (Rifai et al. 2011)", \
        (f"||J||_F^2 {m['jacobian_fro']:.3g} vs {m0['jacobian_fro']:.3g} with lambda = 0 "
         f"({m0['jacobian_fro'] / m['jacobian_fro']:.1f}x smaller); recon MSE {m['recon_mse']:.4f} vs {m0['recon_mse']:.4f}"), [a, b], s + s0


def row_vae(reuse):
    a = train_args("vae", "fashion-mnist", "vae")
    b = train_args("vae", "digits", "vae-digits", "--epochs", "10")
    (r, s), (rd, sd) = run(a, reuse), run(b, reuse)
    m, md = ev(r), ev(rd)
    return "vae", "ELBO <= log p(x) (IWAE tighter), codes fill N(0, I), active units; the demo on digits works (Kingma & Welling 2014)", \
        (f"Fashion: -ELBO {m['neg_elbo']:.1f} >= nll_iw(K=100) {m['nll_iw']:.1f} nats, KL {m['kl']:.1f}, {m['active_units']} active units, "
         f"agg. var {m['agg_var']:.2f}; digits (the `--data auto` fallback): KL {md['kl']:.2f}, {md['active_units']} active units"), [a, b], s + sd


def row_beta(reuse):
    a = train_args("beta_vae", "fashion-mnist", "beta_vae")
    c = train_args("beta_vae", "fashion-mnist", "beta_vae-capacity", "--set", "c_max=25")
    (r, s), (rc, sc) = run(a, reuse), run(c, reuse)
    vae, _ = run(train_args("vae", "fashion-mnist", "vae"), True)
    m, mc, mv = ev(r), ev(rc), ev(vae)
    recs = [json.loads(ln) for ln in (rc / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    gap = max(abs(x["train/kl"] - x["train/capacity"]) for x in recs[1:])
    return "beta_vae", "beta = 4 lowers the KL (Higgins et al. 2017); with c_max the KL follows C(t) (Burgess et al. 2017)", \
        (f"beta 4: KL {m['kl']:.1f} vs the VAE's {mv['kl']:.1f} nats (recon {m['recon_nll']:.1f} vs {mv['recon_nll']:.1f}); "
         f"c_max 25: test KL {mc['kl']:.1f} at C = {mc['capacity']:.1f}, |KL - C| per epoch <= {gap:.2f} after epoch 1"), [a, c], s + sc


def row_cvae(reuse, judge_steps: int):
    """Issue 24: at latent sizes 32 (the default), 16 and 2, fidelity as a share of the judge's accuracy on
    real test images (target >= 90%), and the samples' spread within each class against the data's."""
    from aezoo.evaluate.fidelity import class_fidelity, predict, train_classifier

    data = aezoo.data.load("fashion-mnist")
    t0 = time.perf_counter()
    clf = train_classifier(data.train.x, data.train.y, 10, steps=judge_steps)
    acc = float((predict(clf, data.test.x) == data.test.y).float().mean())
    cells, cmds, seconds = [], [], time.perf_counter() - t0
    for latent in (32, 16, 2):
        extra = () if latent == 32 else ("--latent-dim", str(latent))
        a = train_args("cvae", "fashion-mnist", f"cvae-{latent}", *extra)  # the CLI defaults: 10 epochs
        r, s = run(a, reuse)
        share, per = class_fidelity(aezoo.load(r), clf, 10)
        m = ev(r)
        worst = sorted(zip(per, data.class_names))[:2]
        cells.append(f"latent {latent}: {share:.1%} = {share / acc:.0%} of the judge's; diversity {m['class_diversity']:.2f} "
                     f"(lowest: {', '.join(f'{n} {p:.0%}' for p, n in worst)})")
        cmds.append(a)
        seconds += s
    return "cvae", ("samples are of the asked class, >= 90% of an independent judge's accuracy on real images, at latent 2, 16 "
                    "and 32; style transfer keeps the style (Sohn et al. 2015)"), \
        f"judge (max-pool CNN, {judge_steps} steps, own seed) {acc:.1%} on real test images; " + "; ".join(cells), cmds, seconds


def row_cv_ae(reuse):
    a = train_args("cv_ae", "fashion-mnist", "cv_ae")
    r, s = run(a, reuse)
    m = ev(r)
    return "cv_ae", "ex-post GMM density makes it generative (Ghosh et al. 2019)", \
        (f"test codes: -log GMM {m['expost_code_nll']:.2f} vs {m['gaussian_code_nll']:.2f} nats under one Gaussian; "
         f"recon MSE {m['recon_mse']:.4f}"), [a], s


def row_vq(reuse):
    a = train_args("vq_vae", "fashion-mnist", "vq_vae")
    r, s = run(a, reuse)
    m = ev(r)
    b = train_args("vq_vae", "fashion-mnist", "vq_vae-no-restart", "--set", "restart=false")
    r2, s2 = run(b, reuse)
    m2 = ev(r2)
    return "vq_vae", ("the codebook is used thanks to dead-code restarts (Dhariwal et al. 2020, on van den Oord et al. "
                      "2017); the paper's algorithm alone (restart=false) beside it"), \
        (f"perplexity {m['perplexity']:.0f} of 512, dead codes {m['dead_codes']:.0%}; recon MSE {m['recon_mse']:.4f}; "
         f"restart=false: perplexity {m2['perplexity']:.1f}, dead codes {m2['dead_codes']:.0%}, recon MSE {m2['recon_mse']:.4f}"), [a, b], s + s2


def row_vq2(reuse, prior_epochs: int):
    a = train_args("vq_vae2", "fashion-mnist", "vq_vae2")
    r, s = run(a, reuse)
    p = ["train-prior", str(r), "--epochs", str(prior_epochs), "--quiet"]
    t0 = time.perf_counter()
    if not (reuse and (r / "prior.json").exists()):
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli(p) == 0
    m = ev(r)
    return "vq_vae2", "both grids' codebooks are used (EMA); the bottom prior reads the whole top grid (Razavi et al. 2019)", \
        (f"perplexity top {m['perplexity_top']:.0f} / bottom {m['perplexity_bottom']:.0f} of 512, dead codes "
         f"{m['dead_codes_top']:.0%} / {m['dead_codes_bottom']:.0%}; prior ({prior_epochs} epochs) {m.get('prior_nll_bits', float('nan')):.0f} "
         f"of {m['bits_per_input']:.0f} bits"), [a, ["train-prior", "RUN", "--epochs", str(prior_epochs)]], s + time.perf_counter() - t0


def row_td(reuse):
    a = train_args("td_vae", "moving-digits", "td_vae")
    r, s = run(a, reuse)
    m = ev(r)
    return "td_vae", "rollouts beat the last frame, the mean frame, linear extrapolation and the best of them per step (Gregor et al. 2019)", \
        (f"rollout MSE {m['rollout_mse']:.4f} vs last frame {m['rollout_mse_last_frame']:.4f}, mean frame "
         f"{m['rollout_mse_mean_frame']:.4f}, linear {m['rollout_mse_linear']:.4f}, best per step {m['rollout_mse_best_baseline']:.4f} "
         f"({m['rollout_predict']} steps after {m['rollout_observe']} observed)"), [a], s


ROWS = {"ae": row_ae, "linear_ae": row_linear, "denoising_ae": row_dae, "sparse_ae": row_sparse, "k_sparse_ae": row_ksparse,
        "contractive_ae": row_contractive, "vae": row_vae, "beta_vae": row_beta, "cvae": row_cvae, "cv_ae": row_cv_ae,
        "vq_vae": row_vq, "vq_vae2": row_vq2, "td_vae": row_td}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=list(ROWS), help="rows to run (default: all)")
    ap.add_argument("--reuse", action="store_true", help="measure finished runs again instead of retraining them")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--judge-steps", type=int, default=1500, help="training steps of the CVAE's CNN judge (batch 128)")
    ap.add_argument("--prior-epochs", type=int, default=3)
    ap.add_argument("--table", action="store_true", help="only print the table of the rows measured so far")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    results_path = OUT / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name in [] if args.table else args.only or list(ROWS):
        fn = ROWS[name]
        extra = {"cvae": (args.judge_steps,), "vq_vae2": (args.prior_epochs,)}.get(name, ())
        member, claim, figure, cmds, seconds = fn(args.reuse, *extra)
        if seconds != seconds and name in results:  # reused runs keep the time they were trained in
            seconds = results[name]["seconds"]
        results[name] = {"member": member, "claim": claim, "figure": figure, "commands": [cmd(c) for c in cmds], "seconds": round(seconds, 1)}
        results_path.write_text(json.dumps(results, indent=1))
        print(json.dumps(results[name]), flush=True)
    cell = lambda t: t.replace("|", "\\|")  # noqa: E731  (|KL - C| inside a markdown table)
    print("\n| member | claim | measured at the defaults | command | s |\n|---|---|---|---|---|")
    for name in ROWS:
        if name in results:
            r = results[name]
            cmds = "<br>".join(f"`{c}`" for c in r["commands"])
            print(f"| `{r['member']}` | {cell(r['claim'])} | {cell(r['figure'])} | {cmds} | {r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
