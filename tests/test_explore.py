"""``aezoo explore`` (issue 15): every endpoint of the app, with good and bad values, through FastAPI's
test client; the per-model panels on the models that have them; and the command itself in a
subprocess (the URL it prints, one-line errors, a clean stop on SIGTERM)."""
import os
import signal
import subprocess
import sys
import urllib.request
import warnings
from pathlib import Path

import pytest
import torch

import aezoo
from aezoo.explore import Explorer, create_app, panels_for

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx versions
    from fastapi.testclient import TestClient

LOCAL = "http://127.0.0.1"  # the Host the server checks (issue 22); the test client's default, "testserver", is refused

def tiny_run(tmp_path_factory, name, **config):
    from explore_runs import make_run

    return make_run(tmp_path_factory.mktemp(name) / "run", name, **config)


def client_for(run, **options):
    model = aezoo.load(run)
    from aezoo.train.checkpoint import run_meta
    from aezoo.viz.report import data_of_run

    meta = run_meta(run)
    return TestClient(create_app(Explorer(model, data_of_run(meta), run, meta, **options)), base_url=LOCAL)


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    return tiny_run(tmp_path_factory, "vae", latent_dim=4)


@pytest.fixture(scope="module")
def vae(vae_run):
    return client_for(vae_run)


def png_bytes(data_url):
    import base64

    assert data_url.startswith("data:image/png;base64,")
    return base64.b64decode(data_url.split(",", 1)[1])


def test_page_and_static_files_are_served_from_the_package(vae):
    page = vae.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text and "/static/app.css" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN: nothing is fetched from elsewhere
    js = vae.get("/static/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript") and "http" not in js.text
    assert vae.get("/static/app.css").headers["content-type"].startswith("text/css")
    for bad in ("/static/index.py", "/static/..%2fsession.py", "/static/%2e%2e/app.py", "/config.json", "/model.safetensors"):
        r = vae.get(bad)
        assert r.status_code == 404, bad


def test_the_static_files_are_package_data():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    spec = tomllib.loads(Path(__file__).parents[1].joinpath("pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["aezoo.explore"]
    static = Path(aezoo.__file__).parent / "explore" / "static"
    shipped = {p.name for p in static.iterdir()}
    assert {"index.html", "app.js", "app.css"} <= shipped
    import fnmatch

    assert all(any(fnmatch.fnmatch(f"static/{n}", pat) for pat in spec) for n in shipped)


def test_info_map_and_report(vae, vae_run):
    info = vae.get("/api/info").json()
    assert info["model"] == "vae" and info["code_dim"] == 4 and info["projection"] == "pca" and info["invertible"]
    assert info["order_by"] == "KL" and sorted(s["dim"] for s in info["sliders"]) == [0, 1, 2, 3]
    assert all(s["lo"] < s["hi"] for s in info["sliders"])
    assert info["panels"]["sample"] and not info["panels"]["classes"] and not info["panels"]["codebook"]
    assert "recon_mse" in info["metrics"] and info["report"]
    m = vae.get("/api/map").json()
    assert len(m["x"]) == len(m["y"]) == len(m["labels"]) == info["items"] > 0
    assert vae.get("/report").text == (vae_run / "report.html").read_text()


def test_sliders_are_ordered_by_kl(vae_run):
    model = aezoo.load(vae_run)
    from aezoo.train.checkpoint import run_meta
    from aezoo.viz.report import data_of_run

    e = Explorer(model, data_of_run(run_meta(vae_run)), vae_run)
    with torch.no_grad():
        q = model.posterior(e.x)
    kl = (0.5 * (q.mu ** 2 + q.logvar.exp() - 1 - q.logvar)).mean(0)
    assert e.order == kl.argsort(descending=True).tolist()


def test_thumbnails_come_in_bounded_batches(vae):
    r = vae.get("/api/thumbs", params={"ids": "0,1,2"}).json()
    assert r["ids"] == [0, 1, 2] and len(r["images"]) == 3
    from PIL import Image
    import io

    with Image.open(io.BytesIO(png_bytes(r["images"][0]))) as im:
        assert im.size == (8, 8)
    assert vae.get("/api/thumbs", params={"ids": ",".join(["0"] * 257)}).status_code == 400
    assert vae.get("/api/thumbs", params={"ids": "1,two"}).status_code == 400
    assert vae.get("/api/thumbs", params={"ids": ""}).status_code == 400
    assert vae.get("/api/thumbs", params={"ids": "100000"}).status_code == 404
    assert vae.get("/api/thumbs").status_code == 422


def test_pin_gives_reconstruction_code_and_true_neighbours(vae):
    r = vae.get("/api/item/5", params={"k": 4}).json()
    assert r["id"] == 5 and len(r["code"]) == 4 and len(r["neighbours"]) == 4
    ids = [h["id"] for h in r["neighbours"]]
    assert 5 not in ids
    d = [h["distance"] for h in r["neighbours"]]
    assert d == sorted(d)
    # the neighbours are the nearest codes: brute force over every item's code agrees
    info = vae.get("/api/info").json()
    codes = torch.tensor([vae.get(f"/api/item/{i}", params={"k": 1}).json()["code"] for i in range(info["items"])])
    dist = (codes - codes[5]).norm(dim=1)
    dist[5] = float("inf")
    assert ids == dist.argsort()[:4].tolist()
    for bad, code in (("/api/item/-1", 404), ("/api/item/100000", 404), ("/api/item/x", 422)):
        assert vae.get(bad).status_code == code
    assert vae.get("/api/item/1", params={"k": 0}).status_code == 422
    assert vae.get("/api/item/1", params={"k": 33}).status_code == 422


def test_decode_round_trips_and_rejects_bad_codes(vae):
    pin = vae.get("/api/item/2").json()
    same = vae.post("/api/decode", json={"codes": [pin["code"]]}).json()["images"][0]
    assert png_bytes(same) == png_bytes(pin["reconstruction"])
    moved = list(pin["code"])
    moved[0] += 3.0
    assert png_bytes(vae.post("/api/decode", json={"codes": [moved]}).json()["images"][0]) != png_bytes(same)
    two = vae.post("/api/decode", json={"codes": [pin["code"], moved]}).json()["images"]
    assert len(two) == 2
    bad = [
        ({"codes": [[0.0, 1.0]]}, 400),  # wrong size
        ({"codes": []}, 422),
        ({"codes": [[0.0] * 4] * 65}, 422),  # over the batch limit
        ({"codes": [[float("nan")] * 4]}, 400),
        ({"codes": "zero"}, 422),
        ({"codes": [[0.0] * 4], "label": 3}, 400),  # a VAE decodes without a label
        ({}, 422),
    ]
    for body, status in bad:
        import json

        r = vae.post("/api/decode", content=json.dumps(body), headers={"content-type": "application/json"})
        assert r.status_code == status, (body, r.text)
        assert isinstance(r.json()["detail"], str) and "Traceback" not in r.text
    huge = b'{"codes": [[' + b"0.0," * (1 << 20) + b'0.0]]}'
    assert vae.post("/api/decode", content=huge, headers={"content-type": "application/json"}).status_code == 413


def test_decode_anywhere_inverts_the_pca(vae):
    pin = vae.get("/api/item/7").json()
    at = vae.get("/api/decode_point", params={"x": pin["point"][0], "y": pin["point"][1]}).json()
    assert len(at["code"]) == 4
    # the spot of an item decodes its code projected onto the map's plane: near the item's own code
    xs, ys = vae.get("/api/map").json()["x"], vae.get("/api/map").json()["y"]
    corner = {"x": 2 * max(xs) - min(xs), "y": 2 * min(ys) - max(ys)}  # off the points by the map's size, still on the page's canvas
    far = vae.get("/api/decode_point", params=corner).json()
    assert png_bytes(far["image"]) != png_bytes(at["image"])
    r = vae.get("/api/decode_point", params={"x": 1e39, "y": 0})  # finite as a double, inf as float32 (issue 22)
    assert r.status_code == 400 and "off the map" in r.json()["detail"]
    assert vae.get("/api/decode_point", params={"x": "nan", "y": 0}).status_code == 400
    assert vae.get("/api/decode_point", params={"x": "inf", "y": 0}).status_code == 400
    assert vae.get("/api/decode_point", params={"x": "a", "y": 0}).status_code == 422
    assert vae.get("/api/decode_point", params={"x": 0}).status_code == 422


def test_pca_inverse_of_a_point_is_the_codes_projection(vae_run):
    from aezoo.explore.session import project

    z = torch.randn(50, 6) @ torch.randn(6, 6)
    pts, proj = project(z, "pca")
    back = proj.inverse(pts)
    # projecting back onto the plane and forward again gives the same points
    again = (back - proj.mean) @ proj.components.T
    assert torch.allclose(again, pts, atol=1e-4)
    pts2, proj2 = project(z[:, :2])
    assert proj2.method == "codes" and torch.equal(pts2, z[:, :2])


def test_interpolation_linear_and_spherical(vae):
    a, b = vae.get("/api/item/0").json(), vae.get("/api/item/1").json()
    lin = vae.get("/api/interpolate", params={"a": 0, "b": 1, "steps": 5}).json()["images"]
    assert len(lin) == 5
    assert png_bytes(lin[0]) == png_bytes(a["reconstruction"]) and png_bytes(lin[-1]) == png_bytes(b["reconstruction"])
    sph = vae.get("/api/interpolate", params={"a": 0, "b": 1, "steps": 5, "mode": "spherical"}).json()["images"]
    assert png_bytes(sph[0]) == png_bytes(a["reconstruction"])
    one = vae.get("/api/interpolate", params={"a": 0, "b": 1, "t": 1.0}).json()["images"]
    assert len(one) == 1 and png_bytes(one[0]) == png_bytes(b["reconstruction"])
    for params, status in (({"a": 0, "b": 1, "mode": "cubic"}, 400), ({"a": 0, "b": 1, "t": 1.5}, 400), ({"a": 0, "b": 1, "t": "nan"}, 400),
                           ({"a": 0, "b": 1, "steps": 1}, 422), ({"a": 0, "b": 1, "steps": 33}, 422), ({"a": 0, "b": 10**6}, 404), ({"a": 0}, 422)):
        assert vae.get("/api/interpolate", params=params).status_code == status, params


def test_panels_a_model_lacks_answer_400_with_a_message(vae):
    for path in ("/api/style/0", "/api/codebook", "/api/codes/0", "/api/rollout/0", "/api/denoise/0?level=0.2"):
        r = vae.get(path)
        assert r.status_code == 400 and "model 'vae' has no" in r.json()["detail"], path
    r = vae.get("/api/sample", params={"n": 3})
    assert r.status_code == 200 and len(r.json()["images"]) == 3
    for params in ({"n": 0}, {"n": 17}):
        assert vae.get("/api/sample", params=params).status_code == 422
    assert vae.get("/api/sample", params={"temperature": 2.0}).status_code == 200  # a VAE has no temperature, but it is bounded alike
    assert vae.get("/api/sample", params={"temperature": -1}).status_code == 400
    assert vae.get("/api/nothing").status_code == 404


def test_cvae_class_picker_and_style_transfer(tmp_path_factory):
    run = tiny_run(tmp_path_factory, "cvae", latent_dim=4)
    c = client_for(run)
    info = c.get("/api/info").json()
    assert info["panels"]["classes"] and info["num_classes"] == 10
    pin = c.get("/api/item/0").json()
    style = c.get("/api/style/0").json()["images"]
    assert len(style) == 10 and png_bytes(style[pin["label"]]) == png_bytes(pin["reconstruction"])
    as3 = c.post("/api/decode", json={"codes": [pin["code"]], "label": 3}).json()["images"][0]
    assert png_bytes(as3) == png_bytes(style[3])
    assert c.post("/api/decode", json={"codes": [pin["code"]], "label": 10}).status_code == 400
    assert c.get("/api/decode_point", params={"x": 0, "y": 0, "label": -1}).status_code == 400
    assert len(c.get("/api/sample", params={"n": 2, "label": 4}).json()["images"]) == 2
    assert len(c.get("/api/interpolate", params={"a": 0, "b": 1, "steps": 4}).json()["images"]) == 4


def test_vq_codebook_code_maps_and_prior(tmp_path_factory):
    from aezoo.cli import main

    run = tiny_run(tmp_path_factory, "vq_vae", num_codes=16, latent_dim=4, channels=(4, 8))
    c = client_for(run)
    info = c.get("/api/info").json()
    assert info["panels"]["codebook"] and not info["panels"]["prior"] and info["order_by"] == "variance"
    usage = c.get("/api/codebook").json()["grids"]
    assert len(usage) == 1 and usage[0]["num_codes"] == 16
    assert sum(usage[0]["counts"]) == info["items"] * usage[0]["shape"][0] * usage[0]["shape"][1]
    maps = c.get("/api/codes/3").json()["grids"]
    assert len(maps[0]["codes"]) == usage[0]["shape"][0] and png_bytes(maps[0]["image"])
    r = c.get("/api/sample")
    assert r.status_code == 400 and "train-prior" in r.json()["detail"]
    assert main(["train-prior", str(run), "--epochs", "1", "--min-steps", "0", "--width", "16", "--layers", "1", "--heads", "1", "--no-report", "--quiet"]) == 0
    c = client_for(run)
    assert c.get("/api/info").json()["panels"]["prior"]
    assert len(c.get("/api/sample", params={"n": 2, "temperature": 0.5}).json()["images"]) == 2
    assert c.get("/api/sample", params={"temperature": 0}).status_code == 400


def test_denoising_panel_uses_the_models_corruption():
    data = aezoo.data.from_arrays(torch.rand(40, 1, 8, 8), torch.arange(40) % 4)
    model = aezoo.create("denoising_ae", input_shape=(1, 8, 8), latent_dim=4, hidden=(16,))
    c = TestClient(create_app(Explorer(model, data)), base_url=LOCAL)
    info = c.get("/api/info").json()
    assert info["panels"]["corruption"] and info["corruption"] == {"kind": "mask", "level": 0.25, "max": 1.0}
    r = c.get("/api/denoise/0", params={"level": 0.5}).json()
    assert r["kind"] == "mask" and r["trained_level"] == 0.25
    clean = c.get("/api/denoise/0", params={"level": 0.0}).json()
    assert png_bytes(r["noisy"]) != png_bytes(clean["noisy"])
    assert png_bytes(clean["denoised"]) == png_bytes(c.get("/api/item/0").json()["reconstruction"])
    assert c.get("/api/denoise/0", params={"level": 1.5}).status_code == 400
    assert c.get("/api/denoise/0", params={"level": "nan"}).status_code == 400
    assert c.get("/api/denoise/0").status_code == 422
    assert c.get("/report").status_code == 404  # no run folder: no report


def test_td_vae_rollouts():
    from aezoo.registry import get

    model = aezoo.create("td_vae", **get("td_vae").tiny)
    x = torch.rand(12, *model.config.input_shape)
    data = aezoo.data.from_arrays(x)
    c = TestClient(create_app(Explorer(model, data)), base_url=LOCAL)
    info = c.get("/api/info").json()
    assert info["panels"]["rollout"] and info["panels"]["sample"]
    r = c.get("/api/rollout/0", params={"observe": 2, "predict": 3, "samples": 2}).json()
    assert len(r["rollouts"]) == 2 and r["truth"]
    from PIL import Image
    import io

    with Image.open(io.BytesIO(png_bytes(r["rollouts"][0]))) as im:
        assert im.size == (3 * 4, 4)  # three predicted 4x4 frames side by side
    with Image.open(io.BytesIO(png_bytes(c.get("/api/item/0").json()["input"]))) as im:
        assert im.size == (4, 4)  # a sequence's thumbnail is its last frame, the one its belief code decodes to
    assert c.get("/api/rollout/0", params={"observe": 7}).status_code == 400
    assert c.get("/api/rollout/0", params={"observe": 0}).status_code == 400
    assert c.get("/api/rollout/0", params={"predict": 99}).status_code == 422
    assert len(c.get("/api/sample", params={"n": 2}).json()["images"]) == 2


def test_every_registered_model_can_be_explored():
    """Every member at its tiny config gets its panels, a map, a pin, a slider decode and an interpolation."""
    from aezoo.models.base import CodeGridModel, LearnedCodec
    from aezoo.registry import get

    codecs = []
    for name in aezoo.list_models():
        model = aezoo.create(name, **get(name).tiny)
        p = panels_for(model)
        assert p.classes == model.needs_labels and p.codebook == isinstance(model, CodeGridModel), name
        assert p.codec == isinstance(model, LearnedCodec), name
        codecs += [name] * p.codec
        x = torch.rand(12, *model.config.input_shape)
        ex = Explorer(model, aezoo.data.from_arrays(x, torch.arange(12) % 3), max_points=12)
        info = ex.info()
        assert info["panels"] == {k: getattr(p, k) for k in info["panels"]} and len(info["sliders"]) == min(32, ex.code_dim), name
        pin = ex.pin(0, 3)
        assert len(pin["neighbours"]) == 3 and len(ex.decode([pin["code"]], 0 if p.classes else None)) == 1, name
        assert len(ex.interpolate(0, 1, 3)) == 3, name
    assert "scale_hyperprior" in codecs  # it declares the capability: the panel check above is not vacuous


def test_explorer_rejects_bad_setups():
    data = aezoo.data.from_arrays(torch.rand(20, 1, 8, 8))
    with pytest.raises(aezoo.AezooError, match="max-points"):
        Explorer(aezoo.create("vae", input_shape=(1, 8, 8), latent_dim=2, hidden=(8,)), data, max_points=1)
    with pytest.raises(aezoo.AezooError, match="shape"):
        Explorer(aezoo.create("vae", input_shape=(1, 4, 4), latent_dim=2, hidden=(8,)), data)
    with pytest.raises(aezoo.AezooError, match="labels"):
        Explorer(aezoo.create("cvae", input_shape=(1, 8, 8), latent_dim=2, hidden=(8,)), data)
    with pytest.raises(aezoo.AezooError, match="projection"):
        Explorer(aezoo.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden=(8,)), data, projection="mds")
    tsne = Explorer(aezoo.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden=(8,)), data, projection="tsne")
    c = TestClient(create_app(tsne), base_url=LOCAL)
    assert not c.get("/api/info").json()["invertible"]
    r = c.get("/api/decode_point", params={"x": 0, "y": 0})
    assert r.status_code == 400 and "no inverse" in r.json()["detail"]


# --- the command ---------------------------------------------------------------------------------
def _cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(Path(aezoo.__file__).parents[1]), "AEZOO_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "aezoo", "explore", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_command_prints_the_url_serves_and_stops_cleanly_on_sigterm(vae_run):
    p = _cli(str(vae_run), "--port", "0", "--no-browser")
    try:
        line = p.stdout.readline()
        assert "http://127.0.0.1:" in line, (line, p.stderr.read() if p.poll() is not None else "")
        url = line.split("at ", 1)[1].split()[0]
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        assert b'"model":"vae"' in opener.open(url + "api/info", timeout=30).read()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
        assert "stopped" in p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()


def test_command_errors_are_one_line(vae_run, tmp_path, capsys):
    import socket

    from aezoo.cli import main

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    for args, needle in (([str(tmp_path / "nope")], "no run folder"),
                         ([str(vae_run), "--port", str(busy.getsockname()[1])], "cannot listen"),
                         ([str(vae_run), "--port", "70000"], "--port"),
                         ([str(vae_run), "--max-points", "1"], "--max-points")):
        assert main(["explore", *args, "--no-browser"]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err
    busy.close()


def test_the_server_socket_is_tcp_so_responses_are_not_delayed():
    """asyncio turns Nagle's algorithm off (TCP_NODELAY) only for sockets whose proto is TCP; with proto 0
    every response waited ~40 ms for the client's delayed ACK, most of the 50 ms budget."""
    import socket

    from aezoo.explore.server import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


@pytest.fixture(scope="module")
def codec():
    """An untrained scale hyperprior (issue 25) over noise images, a few of them black."""
    torch.manual_seed(0)
    x = torch.rand(20, 1, 8, 8)
    x[::4] = 0
    model = aezoo.create("scale_hyperprior", input_shape=(1, 8, 8), latent_dim=8, channels=8)
    ex = Explorer(model, aezoo.data.from_arrays(x))
    return ex, TestClient(create_app(ex), base_url=LOCAL)


def test_codec_panel_is_the_pinned_images_own_file(codec):
    """The compression panel shows a real .aez file of the one image: its bytes, what it decodes to, and
    bits per latent that add up to the model's estimate of the payload."""
    from PIL import Image, features
    import io

    from aezoo.compress import learned
    from aezoo.explore.session import png

    ex, c = codec
    info = c.get("/api/info").json()
    assert info["panels"]["codec"] and not info["panels"]["codebook"] and not info["panels"]["sample"]
    i = int((ex.x.flatten(1).amax(1) > 0).nonzero()[0])  # a noise image
    r = c.get(f"/api/codec/{i}").json()
    x = ex.x[i : i + 1]
    blob = learned.compress(ex.model, x)
    assert r["bytes"] == len(blob) and 0 < r["payload_bytes"] == len(learned.unpack(blob)[1]) < r["bytes"]
    assert r["bpp"] == pytest.approx(8 * len(blob) / 64) and r["payload_bpp"] == pytest.approx(8 * r["payload_bytes"] / 64)
    assert png_bytes(r["input"]) == png_bytes(png(x[0]))
    assert png_bytes(r["decoded"]) == png_bytes(png(learned.decompress(ex.model, blob)[0]))  # what the file decodes to
    assert r["bits_y"] + r["bits_z"] == pytest.approx(float(ex.model.estimated_bits(*learned.symbols(ex.model, x))[0]))
    assert 0 < r["bit_map_max"] <= r["bits_y"] and r["bits_z"] > 0
    with Image.open(io.BytesIO(png_bytes(r["bit_map"]))) as im:
        assert im.size == (8, 8)  # the latents' map, upsampled to the image
    assert [row["codec"] for row in r["codecs"]] == ["jpeg", "webp"][: 1 + features.check("webp")]
    for row in r["codecs"]:  # an 8x8 JPEG is over 300 bytes at quality 1: more than the whole .aez file
        assert row["quality"] == 1 and row["bytes"] >= r["payload_bytes"] and png_bytes(row["image"])


def test_codec_panel_compares_at_the_nearest_size_not_below():
    from aezoo.evaluate.rate import _roundtrip
    from aezoo.explore.session import at_size

    torch.manual_seed(0)
    img = (torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4), size=(32, 32), mode="bicubic").clamp(0, 1) * 255)
    img = img.round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    size = lambda q: _roundtrip(img, "JPEG", q)[0]  # noqa: E731
    for target in (size(40) - 1, size(70), size(90) + 3):
        row = at_size(img, "JPEG", target)
        assert row["bytes"] == size(row["quality"]) >= target > size(row["quality"] - 1), target
    assert at_size(img, "JPEG", 1)["quality"] == 1
    best = at_size(img, "JPEG", 10**6)
    assert best["quality"] == 100 and best["bytes"] < 10**6


def test_codec_panel_of_an_exact_copy_and_bad_requests(codec):
    ex, c = codec
    black = int((ex.x.flatten(1).amax(1) == 0).nonzero()[0])
    r = c.get(f"/api/codec/{black}")
    assert r.status_code == 200  # WebP copies a black image exactly: an infinite PSNR is sent as null, not a 500
    assert all(row["psnr"] is None or row["psnr"] > 0 for row in r.json()["codecs"])
    n = ex.x.shape[0]
    for i in (n, -1):
        r = c.get(f"/api/codec/{i}")
        assert r.status_code == 404 and r.json()["detail"] == f"item {i} does not exist: the map has items 0..{n - 1}"
    assert c.get("/api/codec/one").status_code == 422
    data = aezoo.data.from_arrays(torch.rand(20, 1, 8, 8))
    vae = TestClient(create_app(Explorer(aezoo.create("vae", input_shape=(1, 8, 8), latent_dim=2, hidden=(8,)), data)), base_url=LOCAL)
    r = vae.get("/api/codec/0")
    assert not vae.get("/api/info").json()["panels"]["codec"]
    assert r.status_code == 400 and r.json()["detail"] == "model 'vae' has no learned image codec"
