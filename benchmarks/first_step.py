"""Time to the first training step of ``aezoo train vae --data fashion-mnist`` (issue 16): each phase
of a fresh process (interpreter start, ``import aezoo``, the CLI's parse and data load, the model
build, the trainer's set-up, then the first step), and which optional heavy packages (matplotlib,
scikit-learn, SciPy, FAISS, ...) had been imported by then: none should be.

Each repeat is a new process (the OS file cache is warm after the first); the figure is the median.

    python benchmarks/first_step.py --repeats 5        # ~30 s
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HEAVY = ("matplotlib", "sklearn", "scipy", "faiss", "PIL", "constriction", "fastapi", "uvicorn", "tensorboard", "webdataset", "pandas", "skimage", "sympy")

# runs in the child: marks the phases by wrapping the functions the CLI calls, and stops at the first step
CHILD = r"""
import sys, time, json
T = {"start": time.perf_counter()}
import aezoo
T["import aezoo"] = time.perf_counter()
import aezoo.data
from aezoo import registry
from aezoo.train import trainer
def wrap(obj, name, mark):
    f = getattr(obj, name)
    def g(*a, **k):
        T.setdefault(mark + " (start)", time.perf_counter())
        out = f(*a, **k)
        T[mark] = time.perf_counter()
        return out
    setattr(obj, name, g)
wrap(aezoo.data, "load", "data load")  # before the CLI modules bind these names
wrap(registry, "create", "model build")
import aezoo.cli
step = trainer.Fit._train_step
def first(self, x, y):
    T["trainer set-up"] = time.perf_counter()
    step(self, x, y)
    T["first step"] = time.perf_counter()
    T["modules"] = sorted({m.split(".")[0] for m in sys.modules})
    print("@@" + json.dumps(T), file=sys.stderr, flush=True)
    raise SystemExit(0)
trainer.Fit._train_step = first
sys.argv = ["aezoo", "train", "vae", "--data", "fashion-mnist", "--out", sys.argv[1], "--epochs", "1", "--quiet"]
aezoo.cli.main()
"""


def one(out: Path) -> dict:
    import time

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(out)], capture_output=True, text=True, env={**os.environ})
    wall = time.perf_counter() - t0
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("@@")]
    if not line:
        raise SystemExit(f"the child failed:\n{proc.stderr[-2000:]}")
    t = json.loads(line[0][2:])
    start = t.pop("start")
    mods = t.pop("modules")
    phases = {k: v - start for k, v in t.items() if not k.endswith("(start)")}
    return {"phases": phases, "process_wall": wall, "heavy_imported": [m for m in HEAVY if m in mods]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            runs.append(one(Path(tmp) / f"run{i}"))
    order = list(runs[0]["phases"])
    med = {k: round(statistics.median(r["phases"][k] for r in runs), 3) for k in order}
    prev = 0.0
    print(f"median of {args.repeats} fresh processes (seconds since the interpreter ran the first line; load {os.getloadavg()[0]:.1f}):")
    for k in order:
        print(f"  {k:>16}: {med[k]:6.2f} s  (+{med[k] - prev:.2f})")
        prev = med[k]
    wall = statistics.median(r["process_wall"] for r in runs)
    print(f"  process wall time to the end of the first step (with interpreter start): {wall:.2f} s")
    print(f"  optional packages imported by then: {runs[0]['heavy_imported'] or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"median": med, "process_wall": wall, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
