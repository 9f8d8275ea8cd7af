"""``aezoo index`` and ``aezoo search``: search by embedding with a FAISS index of a run's codes."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..cli import command
from ..errors import ConfigError, DataError
from . import _inputs


def _index_args(p):
    from ._common import add_data_args

    p.add_argument("run_dir")
    add_data_args(p, run=True)
    p.add_argument("--split", default="train", choices=["train", "val", "test", "all"], help="what to index (default train; all: train, val and test)")
    p.add_argument("--out", help="index folder (default RUN_DIR/index-KIND)")
    p.add_argument("--kind", default="flat", choices=["flat", "hnsw", "ivf-pq"], help="flat: exact (default); hnsw, ivf-pq: approximate, for large collections")
    p.add_argument("--metric", default="l2", choices=["l2", "cosine"])
    g = p.add_argument_group("index parameters (defaults: aezoo.search.PARAMS)")
    g.add_argument("--M", type=int, help="hnsw: links per node (32)")
    g.add_argument("--ef-construction", type=int, help="hnsw: candidates while building (80)")
    g.add_argument("--ef-search", type=int, help="hnsw: candidates while searching (64)")
    g.add_argument("--nlist", type=int, help="ivf-pq: k-means cells (about 4 sqrt(N))")
    g.add_argument("--nprobe", type=int, help="ivf-pq: cells visited per query (16)")
    g.add_argument("--pq-m", type=int, help="ivf-pq: sub-vectors per code (code size / 4)")
    g.add_argument("--pq-bits", type=int, help="ivf-pq: bits per sub-vector (8)")
    g.add_argument("--rerank", type=int, help="ivf-pq: keep the full vectors and re-rank N*k candidates exactly (0: off)")
    p.add_argument("--device", default="auto")


PARAM_ARGS = ("M", "ef_construction", "ef_search", "nlist", "nprobe", "pq_m", "pq_bits", "rerank")


def _given_params(args) -> dict:
    return {k: getattr(args, k) for k in PARAM_ARGS if getattr(args, k, None) is not None}


@command("index", help="encode a dataset with a run's model and build a FAISS search index of the codes", args=_index_args)
def index_cmd(args):
    from ..search import build_index, split_inputs
    from ..utils import require
    from ._common import open_run, run_data

    require("faiss", "search")
    run = open_run(args.run_dir, args.device)
    model = run.model
    data = run_data(args, run)
    x, labels, desc = split_inputs(data, args.split)
    out = Path(args.out or Path(args.run_dir) / f"index-{args.kind}")
    prov = {"run": str(Path(args.run_dir).resolve()), "data": desc}
    index = build_index(model, x, labels=labels, kind=args.kind, metric=args.metric, params=_given_params(args), provenance=prov)
    index.save(out)
    params = ", ".join(f"{k}={v}" for k, v in index.params.items())
    print(f"wrote {out}: {len(index)} codes of size {index.dim} from {data.name} {args.split}, {args.kind} ({params or 'exact'}), "
          f"{args.metric}, {index.nbytes() / 1e6:.2f} MB, built in {index.manifest['build_seconds']:.2f}s")


def _search_args(p):
    p.add_argument("index_dir")
    _inputs.add_input_args(p, "queries")
    p.add_argument("-k", type=int, default=10, help="neighbours per query (default 10)")
    p.add_argument("--out", help="hits.json (ids, labels, distances) or grid.png (each query beside its neighbours)")
    p.add_argument("--run", help="the run whose model encodes the queries (default: the one the index records)")
    p.add_argument("--ef-search", type=int, help="hnsw: candidates while searching")
    p.add_argument("--nprobe", type=int, help="ivf-pq: cells visited per query")
    p.add_argument("--rerank", type=int, help="ivf-pq built with --rerank: candidates re-ranked per hit")
    p.add_argument("--device", default="auto")


@command("search", help="find the nearest indexed items to query images, .npz rows or dataset items", args=_search_args)
def search_cmd(args):
    from ..runs import Run
    from ..search import load_index
    from ..search.vector_index import unsearchable

    if args.out and Path(args.out).suffix.lower() not in (".json", ".png", ".jpg", ".jpeg"):
        raise ConfigError(f"--out must end in .json or .png, got {args.out!r}")
    run = Run(args.run, args.device) if args.run else None
    index = load_index(args.index_dir, model=None if run is None else run.model, device="cpu" if args.device == "auto" else args.device)
    if run is None:
        run = _run_of(index)
    items = _inputs.read(args, run)
    x, names, labels = items.x, items.sources, items.labels
    labels = None if labels is None or (labels < 0).any() else labels
    params = {k: v for k, v in (("ef_search", args.ef_search), ("nprobe", args.nprobe), ("rerank", args.rerank)) if v is not None}
    z = index.encode(x, labels)
    problem = unsearchable(z, "queries", names)
    if problem:
        raise DataError(f"{problem}: nothing was searched")
    hits = index.search_codes(z, args.k, **params)
    desc = index.manifest.get("data") or {}
    class_names = desc.get("class_names")
    sources = desc.get("sources")
    label = lambda v: None if v is None or v < 0 else (class_names[v] if class_names and v < len(class_names) else int(v))  # noqa: E731
    out = []
    for q, name in enumerate(names):
        rows = [{"rank": r + 1, "id": int(i), **({"source": sources[int(i)]} if sources and 0 <= i < len(sources) else {}), "distance": float(d),
                 **({"label": label(int(hits.labels[q, r]))} if hits.labels is not None else {})}
                for r, (i, d) in enumerate(zip(hits.ids[q], hits.distances[q])) if i >= 0]
        qlabel = items.label_names[q] if items.label_names is not None else None
        out.append({"query": name, "source": name, **({"label": qlabel} if qlabel is not None else {}), "hits": rows})
    if args.out and args.out.lower().endswith(".json"):
        from ..runs import write_json

        write_json(args.out, {"index": str(args.index_dir), "k": args.k, "metric": index.metric, "queries": out})
        print(f"wrote {args.out}: {len(out)} queries, {hits_summary(out, args.k, len(index))}")
    elif args.out:
        _grid(index, run, x, labels, hits, names, class_names, args.out)
        print(f"wrote {args.out}")
    else:
        for row in out:
            print(json.dumps(row))
    if hits.labels is not None and labels is not None:
        from ..search import precision_at_k

        print(f"precision@{args.k} by label: {precision_at_k(hits.labels, labels.numpy()):.4f}", file=sys.stderr)


def hits_summary(out: list[dict], k: int, items: int) -> str:
    """What the file holds, counted from it: '3 hits each', or how many queries got fewer and why."""
    counts = [len(q["hits"]) for q in out]
    if all(c == k for c in counts):
        return f"{k} hits each"
    short = sum(c < k for c in counts)
    why = f"the index holds {items} items" if items < k else "the approximate search found fewer; raise --ef-search or --nprobe"
    return f"{sum(counts)} hits in all, fewer than {k} for {short} of them ({why})"


def _run_of(index):
    """The run the index records (its model already loaded), or one known by the manifest alone."""
    from ..runs import Run
    from ..runs.run import _MetaRun

    m = index.manifest
    if m.get("run") and Path(m["run"]).exists():
        return Run(m["run"], device="cpu", model=index.model)
    return _MetaRun({"config": {"input_shape": m.get("input_shape") or list(index.model.config.input_shape)}, "data": m.get("data") or {}})


def _short(name: str) -> str:
    """A query's name short enough for a thumbnail title: 'test[3]', 'shoe.png'."""
    name = name.rsplit(":", 1)[-1] if ":" in name else Path(name).name
    return name if len(name) <= 16 else "..." + name[-13:]


def _grid(index, run, x, labels, hits, names, class_names, out):
    """Each query beside its hits, read back from the data the index records (through its run, which
    knows the image size and channels: issue 23)."""
    from ..search import split_inputs
    from ..viz.search import hits_grid

    desc = index.manifest.get("data")
    if not desc:
        raise DataError("the index does not record the data it was built from, so its items cannot be drawn; save the hits as .json")
    own = desc.get("source") in (None, "", run.meta.get("data", {}).get("source")) or desc.get("name") == run.meta.get("data", {}).get("name")
    data = run.dataset() if own else run.dataset(desc["source"] or desc["name"])
    items, _, _ = split_inputs(data, desc["split"])
    if items.shape[0] != len(index):
        raise DataError(f"the index's data ({desc.get('name')}, {desc['split']}) now has {items.shape[0]} items, the index {len(index)}: rebuild the index")
    ids = hits.ids.clip(min=0)
    path = hits_grid(x[:32], items[ids[:32]], out, query_labels=None if labels is None else labels.numpy(), hit_labels=hits.labels,
                     distances=hits.distances, class_names=class_names, query_names=[_short(n) for n in names])
    if path is None:
        raise DataError("these inputs are not images; save the hits as .json")
