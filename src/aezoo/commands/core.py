"""The core commands: models, datasets, train, eval, sample, reconstruct, encode, report."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

from ..cli import command
from ..errors import ConfigError, DataError
from ..data.scaling import to_original_units
from ._common import add_data_args, add_scaled_arg, add_weights_arg, load_data, load_run, open_run, run_data, save_output


@command("models", help="list the registered models")
def models(args):
    from ..models.base import capabilities
    from ..registry import get, list_models

    for name in list_models():
        cls = get(name)
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
        can = (["generative"] if cls.generative else []) + capabilities(cls)
        print(f"{name:16s} {doc[0] if doc else ''}" + (f"\n{'':16s} ({', '.join(can)})" if can else ""))


@command("datasets", help="list the named datasets")
def datasets(args):
    from ..data import list_datasets

    print("\n".join(list_datasets()))


def _setup_train(p):
    from ..train.loggers import LOGGERS

    p.add_argument("model", help="model name (see `aezoo models`)")
    add_data_args(p)
    p.add_argument("--out", help="run folder (default runs/MODEL-DATASET)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--steps", type=int, help="total optimizer steps (overrides --epochs)")
    p.add_argument("--min-steps", type=int, help="with --epochs, train at least N steps (default: the model's, for small data; 0: off)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--lr-schedule", choices=["constant", "cosine", "linear"], help="decay of the learning rate over the run (default: the model's, else constant)")
    p.add_argument("--warmup-steps", type=float, help="linear warm-up: N steps, or a fraction of the run when < 1")
    p.add_argument("--min-lr", type=float, help="where cosine/linear decay ends (default 0)")
    p.add_argument("--weight-decay", type=float, help="decoupled weight decay (AdamW) on weights with 2+ dims (default 0)")
    p.add_argument("--clip-grad-norm", type=float, help="clip the gradient norm to X; the pre-clip norm is logged as grad_norm")
    p.add_argument("--ema-decay", type=float, help="keep an EMA of the weights (e.g. 0.999): evaluated, reported and served "
                   "as model.safetensors, the raw weights beside it as model-raw.safetensors")
    p.add_argument("--log", action="append", choices=sorted(LOGGERS), help="also log to TensorBoard (RUN/tensorboard)")
    p.add_argument("--latent-dim", type=int)
    p.add_argument("--arch", choices=["mlp", "conv", "resnet"], help="resnet: residual conv nets for photos (--set downsample=4|8|16)")
    p.add_argument("--workers", type=int, help="DataLoader worker processes for streamed data (default 2)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--amp", action="store_true", help="bf16 mixed precision")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default: each epoch)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any model config field, type-checked")
    p.add_argument("--config", help="YAML/JSON file with model fields (and a 'train' section)")
    p.add_argument("--resume", nargs="?", const="yes", choices=["yes", "auto"],
                   help="continue the run in --out from its last checkpoint (on its own data unless --data is given; "
                   "the step budget, batch size, lr and its schedule may change, the model may not); "
                   "'auto': only if it has one (torchrun --max-restarts)")
    p.add_argument("--no-report", action="store_true", help="skip the final evaluation and report")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")


TRAIN_FLAGS = ("epochs", "steps", "min_steps", "batch_size", "lr", "lr_schedule", "warmup_steps", "min_lr", "weight_decay", "clip_grad_norm",
               "ema_decay", "log", "seed", "device", "checkpoint_every", "workers")


@command("train", help="train a model and write a run folder with its report", args=_setup_train)
def train_cmd(args):
    from ..config import parse_overrides
    from ..run import build, run_training
    from ..runs import Run

    fields = parse_overrides(args.set)
    fields.update({k: v for k in ("latent_dim", "arch") if (v := getattr(args, k)) is not None})
    from ..train.checkpoint import CHECKPOINT

    resume = args.resume == "yes" or (args.resume == "auto" and args.out is not None and (Path(args.out) / CHECKPOINT).exists())
    data = None
    if args.out is None or args.data or not resume:  # the default folder is named after the data
        args.data = args.data or "auto"
        data = load_data(args)
    out = Path(args.out or f"runs/{args.model}-{data.name}")
    if data is None:  # a resumed run goes on with its own data unless --data names other data
        data = Run(out, device="cpu").dataset()
    if "auto_fallback" in data.preprocessing:
        print(f"aezoo: {data.preprocessing['auto_fallback']}; using scikit-learn's digits", file=sys.stderr)
    print(f"aezoo: data {data.name} from {data.source or 'memory'}: {len(data.train)} train, "
          f"{len(data.val) if data.val else 0} val, {len(data.test) if data.test else 0} test, shape {data.input_shape}", file=sys.stderr)
    opts = {k: v for k in TRAIN_FLAGS if (v := getattr(args, k)) is not None}
    if args.steps is not None and args.epochs is None:
        opts["epochs"] = None
    opts.update({k: True for k in ("amp", "compile") if getattr(args, k)})
    opts.update(progress=not args.quiet, report=not args.no_report)
    model, data, opts, resume = build(args.model, data, out=out, resume=resume, config=args.config, fields=fields, **opts)
    result = run_training(model, data, out=out, resume=resume, **opts)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for the run
        return
    print(f"run folder: {out}" + (f"  (report: {out / 'report.html'})" if result.metrics is not None else ""))
    if result.metrics:  # this run's own numbers, never an older eval.json's (issue 17 item 10)
        print("test: " + ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items() if isinstance(v, float) and "/" not in k))


def _check_n(n: int) -> None:
    if n < 1:
        raise ConfigError(f"-n must be >= 1, got {n}")


def _eval_cmd_args(p):
    p.add_argument("run_dir")
    add_data_args(p, run=True)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--iw-samples", type=int, default=1000, help="importance samples K for nll_iw (0: skip)")
    p.add_argument("--corrupt", help="corruption for denoising metrics, e.g. mask:0.5, gaussian:0.3, salt_pepper:0.2")
    p.add_argument("--retrieval", action="store_true", help="search metrics: split queried against FAISS indexes of the train codes (flat, hnsw, ivf-pq)")
    p.add_argument("--rate-distortion", nargs="?", type=int, const=500, default=0, metavar="N", help="VQ runs: bits per pixel and PSNR at each rate, beside PNG/JPEG/WebP, on N test images (500)")
    p.add_argument("--anomaly", metavar="LABEL[,LABEL...]", help="treat these classes (labels or class names) as anomalies: "
                   "AUROC and AUPRC of every score kind the model offers (see `aezoo score`)")
    p.add_argument("--generation", nargs="?", type=int, const=2000, default=0, metavar="N",
                   help="generative models: Frechet distance, precision/recall, density/coverage of N samples (2000) against "
                        "the split, in the features of a net aezoo trains on the training split (cached); writes "
                        "generation.json into the run folder and adds it to the report")
    p.add_argument("--device", default="auto")
    add_weights_arg(p)
    p.add_argument("--json", action="store_true")


@command("eval", help="evaluate a run on a split; --json prints one JSON object", args=_eval_cmd_args)
def eval_cmd(args):
    from ..evaluate import evaluate
    from ..train.checkpoint import dumps as ckpt_dumps

    run = open_run(args.run_dir, args.device, raw=args.raw)
    model, meta = run.model, run.meta
    data = run_data(args, run)
    opts = {"corrupt": args.corrupt} if args.corrupt else {}
    opts.update(retrieval=args.retrieval, rate_distortion=args.rate_distortion)
    if args.anomaly:
        opts.update(anomaly=args.anomaly, anomaly_iw_samples=args.iw_samples)
    if args.generation:
        opts.update(generation=args.generation)
    m = evaluate(model, data, args.split, iw_samples=args.iw_samples, **opts)
    if args.generation:
        _save_generation(args.run_dir, model, data, m, args.split)
    if args.json:
        print(ckpt_dumps(m))  # strict JSON: a non-finite metric is null, named in "non_finite" and a warning
    else:
        for k, v in m.items():
            print(f"{k:24s} {v:.6g}" if isinstance(v, float) else f"{k:24s} {v}")


def _save_generation(run_dir: str, model, data, metrics: dict, split: str) -> None:
    """generation.json beside eval.json (the report's "Generation" section and `aezoo compare` read it)."""
    from ..train.checkpoint import write_json
    from ..viz.report import build_report

    gen = {k: v for k, v in metrics.items() if k.startswith("gen_")}
    write_json(Path(run_dir) / "generation.json", {"split": split, **gen})
    build_report(run_dir, model=model, data=data)
    print(f"aezoo: wrote {Path(run_dir) / 'generation.json'} and rebuilt the report", file=sys.stderr)


def _sample_cmd_args(p):
    p.add_argument("run_dir")
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--label", type=int, help="class to generate (conditional models)")
    p.add_argument("--like", help="file of inputs (.npy/.npz) whose style to keep (conditional models)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    add_weights_arg(p)
    add_scaled_arg(p)
    p.add_argument("--out", required=True, help="FILE.png (grid) or FILE.npy (raw array)")


@command("sample", help="draw samples from a generative model's prior", args=_sample_cmd_args)
def sample_cmd(args):
    _check_n(args.n)
    model, meta = load_run(args.run_dir, args.device, raw=args.raw)
    torch.manual_seed(args.seed)
    kwargs = {}
    if args.temperature != 1.0:
        if "temperature" not in model.sample_options:
            raise ConfigError(f"model {model.name!r} has no sampling temperature")
        kwargs["temperature"] = args.temperature
    if args.like:
        if "like" not in model.sample_options:
            raise ConfigError(f"model {model.name!r} cannot keep the style of given inputs (--like)")
        from ..data.readers import read_array_file

        arr = read_array_file(args.like)
        x = arr.get("x", arr.get("x_train"))
        kwargs["like"] = torch.as_tensor(np.asarray(x), dtype=torch.float32).to(model.device)
    y = None
    if args.label is not None:
        if not model.needs_labels:
            raise ConfigError(f"model {model.name!r} is not conditional: --label does not apply")
        y = torch.full((args.n,), args.label, dtype=torch.long, device=model.device)
    with torch.no_grad():
        x = model.sample(args.n, y, **kwargs) if y is not None or kwargs else model.sample(args.n)
    save_output(x if args.scaled else to_original_units(x, meta), args.out, cols=8)


def _reconstruct_cmd_args(p):
    p.add_argument("run_dir")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders, patterns or .npy/.npz files to reconstruct "
                   "(resized and converted as the run was trained); default: --data's --split")
    add_data_args(p, run=True)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("-n", type=int, default=16)
    p.add_argument("--device", default="auto")
    add_weights_arg(p)
    add_scaled_arg(p)
    p.add_argument("--out", required=True, help="FILE.png (inputs above reconstructions) or FILE.npy")


@command("reconstruct", help="reconstruct inputs from a dataset", args=_reconstruct_cmd_args)
def reconstruct_cmd(args):
    _check_n(args.n)
    run = open_run(args.run_dir, args.device, raw=args.raw)
    model, meta = run.model, run.meta
    if args.inputs and args.data:
        raise DataError("give input files or --data, not both")
    items = run.prepare(args.inputs, limit=args.n) if args.inputs else run.prepare(run_data(args, run), split=args.split, limit=args.n)
    for note in items.notes:
        print(f"aezoo: {note}", file=sys.stderr)
    x = items.x.to(model.device)
    y = None if items.labels is None or (items.labels < 0).any() else items.labels.to(model.device)
    if model.needs_labels and y is None:
        raise DataError(f"model {model.name!r} needs labels in its own classes; these inputs have none")
    with torch.no_grad():
        x_hat = model.reconstruct(x, y)
    if not args.scaled:  # vectors and tables: in the data's original units (issue 18)
        x, x_hat = to_original_units(x, meta), to_original_units(x_hat, meta)
    if args.out.lower().endswith(".npy"):
        save_output(x_hat, args.out)
    else:
        save_output(torch.cat([x, x_hat.view_as(x)]), args.out, cols=x.shape[0])


def _encode_cmd_args(p):
    p.add_argument("run_dir")
    add_data_args(p, run=True)
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    p.add_argument("--device", default="auto")
    add_weights_arg(p)
    p.add_argument("--out", required=True, help="FILE.npz with arrays z, sources (each row's file or row), and y and labels (class names) where labelled")


@command("encode", help="encode a dataset to codes (embeddings) in an .npz", args=_encode_cmd_args)
def encode_cmd(args):
    from ..evaluate import encode_batched

    run = open_run(args.run_dir, args.device, raw=args.raw)
    model, meta = run.model, run.meta
    data = run_data(args, run)
    names = ["train", "val", "test"] if args.split == "all" else [args.split]
    out = {}
    for name in names:
        part = data.split(name)
        if part is None:
            continue
        y = None if part.y is None else part.y.to(model.device)
        z = encode_batched(model, part.x.to(model.device), y)
        suffix = "" if len(names) == 1 else f"_{name}"
        out[f"z{suffix}"] = z.cpu().numpy()
        out[f"sources{suffix}"] = np.array(data.sources(name))  # each row's file or row in its source (issue 23)
        if part.y is not None:
            out[f"y{suffix}"] = part.y.numpy()
            if data.class_names:
                out[f"labels{suffix}"] = np.array(data.label_names(part.y))
    if not args.out.endswith(".npz"):
        raise ConfigError(f"--out must end in .npz, got {args.out!r}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **out)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v.shape}" for k, v in out.items()))


def _report_cmd_args(p):
    p.add_argument("run_dir")


@command("report", help="rebuild a run folder's report.html", args=_report_cmd_args)
def report_cmd(args):
    from ..viz.report import build_report

    print(f"wrote {build_report(args.run_dir)}")
