"""The explorer's decode round trip (issue 15): how long from a slider move to the new image on screen.

For each MLP member at the CLI's defaults on Fashion-MNIST's shape (and ``vq_vae``, convolutional, for
reference), four figures, each the median and 95th percentile of ``--repeats`` trials:

1. ``decode``: ``model.decode`` of one code, in process;
2. ``+ png``: ``Explorer.decode``: the decode, the PNG and its base64 data URL;
3. ``http``: POST /api/decode to uvicorn serving the app on localhost, over one keep-alive connection;
4. ``page``: in headless Chromium, a slider's ``input`` event to the decoded image decoded by the
   browser (``img.decode()``), as the page itself measures it (``window.aezoo.rtts``); skipped
   without Chromium.

    python benchmarks/bench_explore.py [--models ae,vae,cvae,denoising_ae,vq_vae] [--repeats 200] [--threads 2]

The weights are freshly initialised (a decode's cost does not depend on their values); the items are
the first 2,000 Fashion-MNIST test images. The issue's target is a round trip under 50 ms for the MLP
models on this CPU.
"""
from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

import aezoo
from aezoo.explore import Explorer, create_app
from aezoo.explore.server import bind, make_server, url_of


def stats(ms: list[float]) -> tuple[float, float]:
    ms = sorted(ms)
    return statistics.median(ms), ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]


def timed(fn, repeats: int) -> list[float]:
    for _ in range(5):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def http_trials(url: str, code: list[float], repeats: int) -> list[float]:
    host, port = url.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as browsers do
    body = json.dumps({"codes": [code]})

    def once():
        conn.request("POST", "/api/decode", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        assert r.status == 200, data[:200]

    try:
        return timed(once, repeats)
    finally:
        conn.close()


def page_trials(url: str, repeats: int) -> list[float] | None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import subprocess
    import tempfile
    import urllib.request

    from test_report_browser import FLAGS, DevTools, find_chromium

    exe = find_chromium()
    if exe is None:
        return None
    profile = tempfile.mkdtemp(prefix="aezoo-bench-")
    proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        while not (port_file.exists() and port_file.read_text().strip()):
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        page = next(t for t in json.loads(opener.open(f"http://127.0.0.1:{port}/json/list").read()) if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        tools.call("Page.enable")
        tools.call("Page.navigate", url=url)
        tools.wait_for("Page.loadEventFired")

        def js(expr):
            return tools.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)["result"].get("value")

        while not js("document.body.dataset.ready === '1'"):
            time.sleep(0.05)
        # pin item 0 through the page's own code path: a click on its point
        js("""(() => { const S = window.aezoo, v = S.view, c = document.getElementById('map'), r = c.getBoundingClientRect();
              const x = r.left + (S.map.x[0] - v.x0) / (v.x1 - v.x0) * r.width, y = r.top + (1 - (S.map.y[0] - v.y0) / (v.y1 - v.y0)) * r.height;
              c.dispatchEvent(new MouseEvent('click', {clientX: x, clientY: y, bubbles: true})); })()""")
        while not js("window.aezoo.pinA !== null"):
            time.sleep(0.05)
        for k in range(repeats + 5):
            n = js("window.aezoo.rtts.length")
            js(f"(() => {{ const s = document.querySelector('#sliders input'); s.value = +s.min + (+s.max - +s.min) * {(k % 20) / 19}; "
               "s.dispatchEvent(new Event('input')); })()")
            while js("window.aezoo.rtts.length") == n:
                time.sleep(0.002)
        return js("window.aezoo.rtts")[5:]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="ae,vae,cvae,denoising_ae,vq_vae")
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-browser", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = aezoo.data.load("fashion-mnist", limit=2000)
    rows = []
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = aezoo.create(name, input_shape=data.input_shape, **({"num_classes": 10} if name == "cvae" else {}))
        t0 = time.perf_counter()
        ex = Explorer(model, data)
        start = time.perf_counter() - t0
        code = ex.z[0].tolist()
        z = ex.z[:1].view(-1, *model.latent_shape)
        y = torch.zeros(1, dtype=torch.long) if model.needs_labels else None
        with torch.no_grad():
            decode = timed(lambda: model.decode(z, y), args.repeats)
        png = timed(lambda: ex.decode([code]), args.repeats)
        sock = bind("127.0.0.1", 0)
        server = make_server(create_app(ex), sock)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        url = url_of(sock)
        try:
            web = http_trials(url, code, args.repeats)
            page = None if args.no_browser else page_trials(url, min(args.repeats, 100))
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()
        row = {"model": name, "arch": model.config.arch, "code": ex.code_dim, "start_s": round(start, 2)}
        for key, ms in (("decode", decode), ("png", png), ("http", web), ("page", page)):
            if ms:
                med, p95 = stats(ms)
                row[key] = f"{med:.2f} / {p95:.2f}"
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| model | net | code size | explorer start (s) | decode ms (median / p95) | + PNG | HTTP round trip | page round trip |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| `{r['model']}` | {r['arch']} | {r['code']} | {r['start_s']} | {r['decode']} | {r['png']} | {r['http']} | {r.get('page', 'n/a')} |")


if __name__ == "__main__":
    main()
