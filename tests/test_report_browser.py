"""The run report in a real browser (issue 7): headless Chromium opens report.html of a small trained
run from disk, every image loads, the page logs no console errors, and a screenshot is taken.

Chromium is driven over the Chrome DevTools Protocol with a minimal websocket client written here
on the standard library (RFC 6455 text frames only), so the test needs no Python package beyond
the suite's. It needs the Debian package ``chromium`` (``apt-get install -y chromium``); without it
the test skips. Set AEZOO_SCREENSHOT_DIR to keep the screenshot (e.g. as a CI artifact).
"""
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch

import aezoo

pytestmark = pytest.mark.browser

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--remote-allow-origins=*",
         "--remote-debugging-port=0", "--window-size=1200,900"]


def find_chromium():
    for name in (os.environ.get("AEZOO_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class DevTools:
    """One websocket to a page target: ``call`` sends a command and returns its result; events that
    arrive meanwhile are kept in ``events``."""

    def __init__(self, ws_url: str, timeout: float = 60):
        u = urlparse(ws_url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += self._read(1)
        assert b" 101 " in head.split(b"\r\n", 1)[0], head
        self.next_id, self.events = 0, []

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("DevTools websocket closed")
            buf += chunk
        return buf

    def _send(self, payload: bytes, opcode: int = 1) -> None:
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)  # clients must mask every frame
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _receive(self) -> dict:
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)  # server frames are not masked
            opcode = b0 & 0x0F
            if opcode == 8:
                raise ConnectionError("DevTools websocket closed by the browser")
            if opcode == 9:
                self._send(payload, opcode=10)  # pong
                continue
            message += payload
            if b0 & 0x80:
                return json.loads(message)

    def call(self, method: str, **params):
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}).encode())
        while True:
            msg = self._receive()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, event: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self.events:
                if msg.get("method") == event:
                    return msg
            self.events.append(self._receive())
        raise TimeoutError(f"no {event} within {timeout} s")

    def errors(self) -> list[str]:
        out = []
        for m in self.events:
            p = m.get("params", {})
            if m.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m.get("method") == "Runtime.exceptionThrown":
                out.append("exception: " + p.get("exceptionDetails", {}).get("text", ""))
            elif m.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: " + p["entry"].get("text", ""))
        return out

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def browser():
    exe = find_chromium()
    if exe is None:
        pytest.skip("headless Chromium not found: install Debian's `chromium` package (apt-get install -y chromium) "
                    "or point AEZOO_CHROMIUM at a Chrome binary")
    profile = tempfile.mkdtemp(prefix="aezoo-chromium-")
    proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost, never through a proxy
        targets = json.loads(no_proxy.open(f"http://127.0.0.1:{port}/json/list", timeout=30).read())
        page = next(t for t in targets if t.get("type") == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log"):
            tools.call(f"{domain}.enable")
        yield tools
        tools.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(tools: DevTools, path: Path) -> dict:
    """Load ``path`` from disk; returns the status of every <img> and the errors logged."""
    tools.events.clear()
    tools.call("Page.navigate", url=path.resolve().as_uri())
    tools.wait_for("Page.loadEventFired")
    js = ("JSON.stringify(Array.from(document.images, i => ({alt: i.alt, complete: i.complete, "
          "width: i.naturalWidth, height: i.naturalHeight})))")
    images = json.loads(tools.call("Runtime.evaluate", expression=js, returnByValue=True)["result"]["value"])
    title = tools.call("Runtime.evaluate", expression="document.title", returnByValue=True)["result"]["value"]
    return {"images": images, "errors": tools.errors(), "title": title}


def screenshot(tools: DevTools, out: Path) -> Path:
    size = tools.call("Page.getLayoutMetrics")["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000), "scale": 1}
    data = tools.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)["data"]
    out.write_bytes(base64.b64decode(data))
    return out


def test_report_of_a_trained_run_loads_in_chromium(browser, tmp_path):
    torch.manual_seed(0)
    data = aezoo.data.load("digits", limit=300)
    model = aezoo.create("vae", input_shape=(1, 8, 8), latent_dim=2, hidden=(32,))
    run = tmp_path / "run"
    aezoo.train(model, data, out=run, epochs=2, batch_size=64, progress=False, eval_iw_samples=5)

    page = open_page(browser, run / "report.html")
    assert page["title"].startswith("aezoo run: vae")
    assert len(page["images"]) >= 7, page["images"]  # loss curves, reconstructions, samples and the latent figures
    broken = [i["alt"] for i in page["images"] if not (i["complete"] and i["width"] > 0 and i["height"] > 0)]
    assert not broken, f"images that did not load: {broken}"
    assert page["errors"] == []

    shot = screenshot(browser, tmp_path / "report.png")
    from PIL import Image

    with Image.open(shot) as im:
        assert im.format == "PNG" and im.width >= 800 and im.height >= 900
        assert len(np.unique(np.asarray(im.convert("L")))) > 10  # something was drawn
    if os.environ.get("AEZOO_SCREENSHOT_DIR"):
        keep = Path(os.environ["AEZOO_SCREENSHOT_DIR"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, keep / "report.png")


def test_the_check_sees_broken_images_and_console_errors(browser, tmp_path):
    """The harness itself: a page with a broken image and a console error must fail the checks above."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><title>bad</title><img alt='broken' src='data:image/png;base64,AAAA'>"
                   "<script>console.error('boom')</script>")
    page = open_page(browser, bad)
    assert [i["width"] for i in page["images"]] == [0]
    assert any("boom" in e for e in page["errors"])
