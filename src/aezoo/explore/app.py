"""The explorer's web app (FastAPI): the page, its static files, and a small JSON API over ``Explorer``.

Every request passes the guard of ``access.py`` first (its Host, and the token when the server is
reachable from other machines): 403 otherwise. Every endpoint is a plain ``def``, so FastAPI runs it
in its thread pool and a slow decode never holds up the page's other requests; ``Explorer`` serialises the model calls with a lock. Bad values
answer 4xx with ``{"detail": "<one line>"}``: 400 for a value aezoo rejects, 404 for an item or file
that is not there, 413 for a body over ``MAX_BODY``, 422 for a value of the wrong type.
"""
from __future__ import annotations

from importlib import resources
from typing import Optional

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from ..errors import AezooError
from .access import Access
from .session import MAX_BATCH, MAX_NEIGHBOURS, MAX_SAMPLES, MAX_STEPS, Explorer

MAX_BODY = 4 << 20  # bytes in one request body: 64 codes of a few thousand numbers each
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


def static_text(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


class DecodeRequest(BaseModel):
    codes: list[list[float]] = Field(min_length=1, max_length=MAX_BATCH)
    label: Optional[int] = None


def _field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("query", "path", "body")]
    return ".".join(parts) or "request"


def create_app(explorer: Explorer, access: Access | None = None) -> FastAPI:
    """The app over ``explorer``; ``access``: who may ask (default: this machine's loopback names, no token)."""
    app = FastAPI(title="aezoo explore", docs_url=None, redoc_url=None, openapi_url=None)
    ex = explorer
    access = access or Access()

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = request.headers.get("host")
        if not access.host_allowed(host):
            return JSONResponse({"detail": f"Host {str(host)[:80]!r} is not this server's address ({', '.join(sorted(access.hosts))}): "
                                           "refused, as a web page elsewhere could have pointed its name here (DNS rebinding)"}, status_code=403)
        from_query = request.query_params.get("token")
        if not access.token_ok(from_query if from_query is not None else request.cookies.get(access.cookie)):
            return JSONResponse({"detail": "this explorer needs its token: open the URL that `aezoo explore` printed (it ends in ?token=...)"},
                                status_code=403)
        if request.method == "POST":
            size = request.headers.get("content-length")
            if size is None:
                return JSONResponse({"detail": "a request body needs a Content-Length"}, status_code=411)
            if not size.isdigit() or int(size) > MAX_BODY:
                return JSONResponse({"detail": f"request body over {MAX_BODY} bytes"}, status_code=413)
        response = await call_next(request)
        if access.token is not None and from_query is not None:  # the page's own requests carry it from now on
            response.set_cookie(access.cookie, access.token, httponly=True, samesite="strict", path="/")
        return response

    @app.exception_handler(AezooError)
    async def aezoo_error(request, e: AezooError):
        return JSONResponse({"detail": str(e)}, status_code=400)

    @app.exception_handler(IndexError)
    async def not_found(request, e: IndexError):
        return JSONResponse({"detail": str(e)}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def bad_value(request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        return JSONResponse({"detail": f"{_field(first.get('loc', ()))}: {first.get('msg', 'invalid value')}"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal(request, e: Exception):  # one line, never a traceback
        return JSONResponse({"detail": f"internal error: {type(e).__name__}: {e}"[:500]}, status_code=500)

    # --- the page -------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def index():
        return HTMLResponse(static_text("index.html"))

    @app.get("/static/{name}")
    def static(name: str):
        if name not in STATIC:
            return JSONResponse({"detail": f"no static file {name!r}"}, status_code=404)
        return Response(static_text(name), media_type=STATIC[name])

    @app.get("/report")
    def report():
        path = ex.run_dir / "report.html" if ex.run_dir is not None else None
        if path is None or not path.is_file():
            return JSONResponse({"detail": "this run has no report.html (aezoo report RUN writes one)"}, status_code=404)
        return FileResponse(path, media_type="text/html")

    # --- the API ------------------------------------------------------------------------------------
    @app.get("/api/info")
    def info():
        return ex.info()

    @app.get("/api/map")
    def latent_map():
        return ex.map()

    @app.get("/api/thumbs")
    def thumbs(ids: str = Query(max_length=4096)):
        try:
            wanted = [int(v) for v in ids.split(",") if v.strip()]
        except ValueError:
            return JSONResponse({"detail": f"ids must be integers separated by commas, got {ids[:40]!r}"}, status_code=400)
        return {"ids": wanted, "images": ex.thumbs(wanted)}

    @app.get("/api/item/{i}")
    def item(i: int, k: int = Query(8, ge=1, le=MAX_NEIGHBOURS)):
        return ex.pin(i, k)

    @app.post("/api/decode")
    def decode(req: DecodeRequest):
        return {"images": ex.decode(req.codes, req.label)}

    @app.get("/api/decode_point")
    def decode_point(x: float, y: float, label: Optional[int] = None):
        return ex.decode_point(x, y, label)

    @app.get("/api/interpolate")
    def interpolate(a: int, b: int, steps: int = Query(9, ge=2, le=MAX_STEPS), mode: str = "linear", t: Optional[float] = None):
        return {"images": ex.interpolate(a, b, steps, mode, t)}

    @app.get("/api/style/{i}")
    def style(i: int):
        return {"images": ex.style(i)}

    @app.get("/api/codebook")
    def codebook():
        return ex.codebook()

    @app.get("/api/codes/{i}")
    def codes(i: int):
        return ex.code_maps(i)

    @app.get("/api/sample")
    def sample(n: int = Query(8, ge=1, le=MAX_SAMPLES), temperature: float = 1.0, label: Optional[int] = None):
        return {"images": ex.sample(n, temperature, label)}

    @app.get("/api/rollout/{i}")
    def rollout(i: int, observe: int = 1, predict: int = Query(4, ge=1, le=MAX_STEPS), samples: int = Query(1, ge=1, le=4)):
        return ex.rollout(i, observe, predict, samples)

    @app.get("/api/codec/{i}")
    def codec(i: int):
        return ex.codec(i)

    @app.get("/api/denoise/{i}")
    def denoise(i: int, level: float, seed: int = Query(0, ge=0, le=2**31 - 1)):
        return ex.denoise(i, level, seed)

    return app
