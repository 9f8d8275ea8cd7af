"""Serve the explorer with uvicorn on a socket bound here, so that the printed URL has the real port
(``--port 0`` picks a free one) and a port in use is one line, not a traceback. Ctrl-C or SIGTERM
stops the server cleanly: uvicorn finishes the requests in flight and returns (it does not re-raise
the signal, so the command exits 0)."""
from __future__ import annotations

import contextlib
import signal
import socket
import threading
import webbrowser

from ..errors import ConfigError
from ..utils import require


def bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ConfigError(f"--host {host!r} cannot be resolved: {e.strerror}") from None
    family, kind, proto, _, addr = infos[0]
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every response waits ~40 ms for the client's delayed ACK (Nagle's algorithm)
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}; choose another --port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket, token: str | None = None, host: str | None = None) -> str:
    """The URL to open: the bound address (this machine's loopback one for a wildcard bind, unless
    ``host`` names another), with the token when there is one."""
    bound, port = sock.getsockname()[:2]
    host = host or {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bound, bound)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/" + (f"?token={token}" if token else "")


def has_display() -> bool:
    """A graphical browser can open: on Linux without a display, ``webbrowser`` would start a text
    browser (lynx, w3m) in the terminal that runs the server."""
    import os
    import sys

    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def make_server(app, sock: socket.socket):
    uvicorn = require("uvicorn", "explore")

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            old = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, h in old.items():
                    signal.signal(s, h)

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5, lifespan="off")
    return Server(config)


def serve(explorer, host: str = "127.0.0.1", port: int = 8765, open_browser: bool = False, on_ready=None) -> None:
    """Serve until Ctrl-C or SIGTERM. ``on_ready(url)`` gets the URL to open; bound to an address other
    machines can reach, a warning and the outward URL go to stderr first (see ``access.py``)."""
    import sys

    from . import create_app
    from .access import for_socket, outward_address

    sock = bind(host, port)
    access = for_socket(host, sock)
    app = create_app(explorer, access)
    url = url_of(sock, access.token)
    server = make_server(app, sock)
    if access.token is not None:
        outward = url_of(sock, access.token, outward_address() if access.hosts is None else None)
        print(f"aezoo explore: warning: --host {host} is reachable from other machines; whoever has the token in the URL sees the run's "
              f"config, metrics and data. Open {outward}", file=sys.stderr, flush=True)
    if on_ready is not None:
        on_ready(url)
    if open_browser and has_display():
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
