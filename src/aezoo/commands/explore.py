"""``aezoo explore RUN``: a local web app to move through a run's latent space (issue 15)."""
from __future__ import annotations

import sys

from ..cli import command
from ._common import add_data_args, load_run, run_data


def _args(p):
    p.add_argument("run_dir")
    add_data_args(p, run=True)
    p.add_argument("--split", choices=["train", "val", "test"], help="whose items to map (default: test, else train)")
    p.add_argument("--max-points", type=int, default=2000, help="items on the map (default 2000, at most 20000)")
    p.add_argument("--projection", default="auto", choices=["auto", "pca", "tsne", "umap"],
                   help="auto: the codes when 2-D, else PCA (decodes anywhere); tsne, umap: no decoding off the points")
    p.add_argument("--port", type=int, default=8765, help="default 8765; 0 picks a free port")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser; only print the URL")
    p.add_argument("--device", default="cpu", help="default cpu (decodes of one item are fastest there)")


@command("explore", help="explore a run's latent space in the browser (map, decode anywhere, sliders, interpolation)", args=_args)
def explore_cmd(args):
    from ..utils import require

    require("fastapi", "explore")
    require("uvicorn", "explore")
    from ..explore import Explorer, serve

    model, meta = load_run(args.run_dir, args.device)
    data = run_data(args, meta)
    explorer = Explorer(model, data, args.run_dir, meta, projection=args.projection, max_points=args.max_points, split=args.split)

    def ready(url):
        print(f"aezoo explore: {model.name} on {explorer.x.shape[0]} {data.name} {explorer.split_name} items at {url}  (Ctrl-C stops)", flush=True)

    serve(explorer, args.host, args.port, open_browser=not args.no_browser, on_ready=ready)
    print("aezoo explore: stopped", file=sys.stderr)
