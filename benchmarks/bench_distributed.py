"""Training throughput: one process vs torchrun + DDP on the CPU (gloo), and fp32 / bf16 / compiled
training on one GPU with the achieved TFLOP/s against the GPU's peak.

    python benchmarks/bench_distributed.py cpu [--limit 12000] [--epochs 3]
    python benchmarks/bench_distributed.py gpu [--epochs 3]

``cpu`` runs ``aezoo train`` once as one process and once under ``torchrun --nproc-per-node 2``
(gloo), each in a fresh run folder, and reads images/s from the metrics of the epochs after the
first (which includes start-up). ``gpu`` trains in-process on the whole Fashion-MNIST training set
(60,000 images minus validation) and counts the training step's FLOPs with
``torch.utils.flop_counter`` on one batch (forward + backward; the optimizer is not counted).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# dense bf16 tensor-core peaks (TFLOP/s) of the GPUs we expect; fp32 runs use TF32 when allowed
PEAK_BF16 = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "4090": 165.0}
MODELS = {  # name -> model options; both on Fashion-MNIST
    "vae-mlp": ("vae", {"arch": "mlp", "latent_dim": 32, "hidden": (512, 256)}),
    "vq-vae": ("vq_vae", {}),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_run(nproc: int, args) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"bench-dist-{nproc}-")) / "run"
    train = ["train", args.model, "--data", "fashion-mnist", "--limit", str(args.limit), "--epochs", str(args.epochs),
             "--batch-size", str(args.batch_size), "--device", "cpu", "--no-report", "--quiet", "--out", str(out)]
    if nproc == 1:
        cmd = [sys.executable, "-m", "aezoo", *train]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "aezoo", *train]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, args.threads // nproc))}
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    recs = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    steady = recs[1:] or recs
    ips = sum(r["images_per_s"] for r in steady) / len(steady)
    return {"processes": nproc, "threads_each": env["OMP_NUM_THREADS"], "images_per_s": round(ips),
            "s_per_epoch": round(sum(r["seconds"] for r in steady) / len(steady), 2), "wall_s": round(wall, 1),
            "final_val_loss": round(recs[-1].get("val/loss", float("nan")), 3)}


def train_flops(model, x) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        model.training_step(x).loss.backward()
    model.zero_grad(set_to_none=True)
    return float(fc.get_total_flops())


def gpu_run(name: str, mode: str, data, args) -> dict:
    import aezoo

    key, opts = MODELS[name]
    torch.manual_seed(0)
    model = aezoo.create(key, input_shape=list(data.input_shape), **opts).cuda()
    flops = train_flops(model, data.train.x[: args.batch_size].cuda()) / args.batch_size  # per image
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    with tempfile.TemporaryDirectory() as tmp:
        aezoo.train(model, data, out=tmp, epochs=args.epochs, batch_size=args.batch_size, device="cuda",
                    amp=mode in ("bf16", "bf16+compile"), compile="compile" in mode, progress=False, report=False)
        recs = [json.loads(s) for s in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    steady = recs[1:] or recs  # the first epoch pays for compilation and warm-up
    ips = sum(r["images_per_s"] for r in steady) / len(steady)
    gpu = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16.items() if k in gpu), None)
    tflops = ips * flops / 1e12
    return {"model": name, "mode": mode, "gpu": gpu, "images_per_s": round(ips), "s_per_epoch": round(sum(r["seconds"] for r in steady) / len(steady), 3),
            "gflop_per_image": round(flops / 1e9, 4), "tflops": round(tflops, 2), "pct_bf16_peak": round(100 * tflops / peak, 2) if peak else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("where", choices=["cpu", "gpu"])
    p.add_argument("--model", default="vae", help="cpu: model to train")
    p.add_argument("--limit", type=int, default=12000, help="cpu: training examples (subset, to fit the time budget)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="cpu: threads shared by the processes")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = []
    if args.where == "cpu":
        for nproc in (1, 2):
            rows.append(cpu_run(nproc, args))
            print(rows[-1], file=sys.stderr)
    else:
        import aezoo

        if not torch.cuda.is_available():
            sys.exit("bench_distributed gpu: no CUDA GPU")
        data = aezoo.data.load("fashion-mnist")
        for name in MODELS:
            for mode in ("fp32", "bf16", "fp32+compile", "bf16+compile"):
                rows.append(gpu_run(name, mode, data, args))
                print(rows[-1], file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        keys = list(rows[0])
        print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
        for r in rows:
            print("| " + " | ".join(str(r[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
