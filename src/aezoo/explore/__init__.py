"""``aezoo explore``: a local web app to move through one run's latent space (issue 15).

    from aezoo.explore import Explorer, create_app, serve
    serve(Explorer(model, data, run_dir), host="127.0.0.1", port=8765)

``Explorer`` (torch only) computes; ``create_app`` (FastAPI, the ``explore`` extra) serves it.
"""
from .session import Explorer, Panels, panels_for

__all__ = ["Explorer", "Panels", "create_app", "panels_for", "serve"]


def create_app(explorer: Explorer, access=None):
    """The FastAPI app; ``access`` (``explore.access.Access``): allowed Host names and the token
    (default: this machine's loopback names, no token)."""
    from ..utils import require

    require("fastapi", "explore")
    from .app import create_app as make

    return make(explorer, access)


def serve(explorer: Explorer, host: str = "127.0.0.1", port: int = 8765, open_browser: bool = False, on_ready=None) -> None:
    from .server import serve as run

    run(explorer, host, port, open_browser, on_ready)
