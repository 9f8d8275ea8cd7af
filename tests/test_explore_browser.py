"""``aezoo explore`` in a real browser (issue 15): headless Chromium, driven over the DevTools protocol
as in ``test_report_browser.py`` (whose client and browser fixture this reuses), loads the page of a
``vae``, a ``cvae`` and a ``vq_vae`` run served by uvicorn, and checks what a user does: hover a
point, click it (the neighbours appear), move a slider (the decoded image changes), click an empty
spot (decode anywhere), shift-click a second point (the interpolation strip appears), with no
console error; then it takes a screenshot (kept under AEZOO_SCREENSHOT_DIR when set)."""
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from test_report_browser import browser, screenshot  # noqa: F401 - the fixture is used by name

pytestmark = pytest.mark.browser
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

RUNS = {"vae": {"latent_dim": 4}, "cvae": {"latent_dim": 4}, "vq_vae": {"latent_dim": 4, "num_codes": 16, "channels": (4, 8),
                                                                            # trained enough that a slider's end moves pixels
                                                                            "train": {"epochs": 6, "lr": 1e-2}}}


def js(tools, expression):
    r = tools.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
    if "exceptionDetails" in r:
        raise AssertionError(f"{expression}: {r['exceptionDetails'].get('text')} {r['exceptionDetails'].get('exception', {}).get('description', '')}")
    return r["result"].get("value")


def wait_until(tools, expression, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = js(tools, expression)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {expression}; errors: {tools.errors()}")


def click(tools, x, y, modifiers=0, kind="mousePressed"):
    tools.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y, modifiers=modifiers)
    if kind == "mouseMoved":
        return
    tools.call("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left", clickCount=1, modifiers=modifiers)
    tools.call("Input.dispatchMouseEvent", type="mouseReleased", x=x, y=y, button="left", clickCount=1, modifiers=modifiers)


POINT = """(() => { const S = window.aezoo, v = S.view, r = document.getElementById('map').getBoundingClientRect();
  const i = %d; return [r.left + (S.map.x[i] - v.x0) / (v.x1 - v.x0) * r.width, r.top + (1 - (S.map.y[i] - v.y0) / (v.y1 - v.y0)) * r.height]; })()"""


@pytest.fixture
def served(tmp_path):
    """Start uvicorn in a thread for a run; yields a function run_name -> URL."""
    from explore_runs import make_run

    import aezoo
    from aezoo.explore import Explorer, create_app
    from aezoo.explore.server import bind, make_server, url_of
    from aezoo.train.checkpoint import run_meta
    from aezoo.viz.report import data_of_run

    servers = []

    def start(name):
        run = make_run(tmp_path / name, name, **RUNS[name])
        meta = run_meta(run)
        explorer = Explorer(aezoo.load(run), data_of_run(meta), run, meta)
        sock = bind("127.0.0.1", 0)
        server = make_server(create_app(explorer), sock)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        servers.append((server, thread, sock))
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return url_of(sock)

    yield start
    for server, thread, sock in servers:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def decoded_src(tools):
    return js(tools, "document.getElementById('decoded').getAttribute('src') || ''")


@pytest.mark.parametrize("name", list(RUNS))
def test_explore_page_in_chromium(browser, served, tmp_path, name):  # noqa: F811
    url = served(name)
    tools = browser
    tools.events.clear()
    tools.call("Page.navigate", url=url)
    tools.wait_for("Page.loadEventFired")
    wait_until(tools, "document.body.dataset.ready === '1'")
    assert js(tools, "document.title").startswith(f"aezoo explore: {name}")
    n_sliders = js(tools, "document.querySelectorAll('#sliders input').length")
    assert n_sliders == min(32, js(tools, "window.aezoo.info.code_dim"))

    # hover a point: the tooltip shows its input
    x, y = js(tools, POINT % 0)
    click(tools, x, y, kind="mouseMoved")
    wait_until(tools, "!document.getElementById('tooltip').hidden && document.getElementById('tip-img').naturalWidth > 0")

    # click it: pinned, with its reconstruction and its neighbours in code space
    click(tools, x, y)
    wait_until(tools, "document.querySelectorAll('#neighbours img').length === 8")
    wait_until(tools, "Array.from(document.querySelectorAll('#neighbours img')).every(i => i.complete && i.naturalWidth > 0)")
    pinned = js(tools, "window.aezoo.pinA")
    assert pinned is not None and js(tools, "document.getElementById('pin-recon').naturalWidth") > 0

    # move the slider of the dimension that carries most: the decoded image changes
    before = decoded_src(tools)
    js(tools, "(() => { const s = document.querySelector('#sliders input'); s.value = (+s.value < (+s.min + +s.max) / 2) ? s.max : s.min; "
              "s.dispatchEvent(new Event('input', {bubbles: true})); })()")
    wait_until(tools, f"(document.getElementById('decoded').getAttribute('src') || '') !== {json.dumps(before)} && window.aezoo.rtts.length > 0")

    # click an empty spot of the map: the point decodes (inverse PCA)
    before = decoded_src(tools)
    corner = js(tools, "(() => { const r = document.getElementById('map').getBoundingClientRect(); return [r.left + 2, r.top + 2]; })()")
    click(tools, *corner)
    wait_until(tools, f"window.aezoo.spot !== null && window.aezoo.spot !== undefined && document.getElementById('decoded').getAttribute('src') !== {json.dumps(before)}")

    # shift-click another point: B is pinned and the interpolation strip appears
    other = next(i for i in range(1, 50) if i != pinned)
    bx, by = js(tools, POINT % other)
    click(tools, bx, by, modifiers=8)
    wait_until(tools, "document.querySelectorAll('#interp-strip img').length === 9 && !document.getElementById('interp-card').hidden")
    wait_until(tools, "document.getElementById('interp-img').naturalWidth > 0")

    # the model's own panel
    if name == "cvae":
        wait_until(tools, "document.querySelectorAll('#style-strip img').length === 10")
        assert js(tools, "document.querySelectorAll('#class-pick option').length") == 10
    if name == "vq_vae":
        wait_until(tools, "document.querySelectorAll('#code-maps img').length === 1 && document.querySelectorAll('#usage canvas').length === 1")
        assert js(tools, "document.getElementById('prior-sample').disabled")  # no prior trained: the button says so
    if name == "vae":
        js(tools, "document.getElementById('sample').click()")
        wait_until(tools, "document.querySelectorAll('#sample-strip img').length === 8")
    assert js(tools, "document.getElementById('status').textContent") == ""
    assert tools.errors() == []

    shot = screenshot(tools, tmp_path / f"explore-{name}.png")
    from PIL import Image

    with Image.open(shot) as im:
        assert im.format == "PNG" and im.width >= 800
        assert len(np.unique(np.asarray(im.convert("L")))) > 10
    if os.environ.get("AEZOO_SCREENSHOT_DIR"):
        keep = Path(os.environ["AEZOO_SCREENSHOT_DIR"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, keep / f"explore-{name}.png")
