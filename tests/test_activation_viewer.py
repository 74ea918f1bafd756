"""experiments/activation_viewer.py: the drawing's centring, the JSON endpoint and its refusals, the command
line's errors, and the page driven in a real headless Chromium (skipped where Playwright or Chromium is
missing; .ci/run installs both).

The browser test writes its screenshot and the response times it measured (from the end of a stroke to the
drawn answer) to $MINIDL_ARTIFACTS when that is set, else to pytest's temporary folder, and prints them.
"""
import http.client
import json
import os
import shutil
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
import activation_viewer  # noqa: E402
from activation_viewer import Viewer, center_like_mnist, make_server  # noqa: E402

import minidl as mdl  # noqa: E402
from minidl import serialization  # noqa: E402
from models.builder import ModelBuilderNet  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def server():
    """A viewer on a free port of 127.0.0.1 with a seeded, untrained base net and five noise 'test digits'."""
    mdl.manual_seed(0)
    rng = np.random.default_rng(0)
    viewer = Viewer(ModelBuilderNet(), rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.arange(5))
    srv = make_server(viewer, 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(srv, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection(*srv.server_address, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def raw(srv, data: bytes) -> str:
    """Send ``data`` as it is and read the reply to the end (the server closes the connection after it)."""
    with socket.create_connection(srv.server_address, timeout=10) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def drawing(pixels: np.ndarray, center: bool = True) -> bytes:
    return json.dumps({"pixels": pixels.ravel().tolist(), "center": center}).encode()


def stroke() -> np.ndarray:
    pixels = np.zeros((28, 28))
    pixels[5:23, 13:15] = 1.0
    return pixels


# ----------------------------------------------------------------------------------- centring
def test_centring_scales_the_ink_to_20_pixels_and_moves_its_centre_of_mass_to_the_middle():
    pixels = np.zeros((28, 28))
    pixels[1:6, 20:27] = np.linspace(0.2, 1.0, 7)  # a small blob in the top right corner, uneven ink
    out = center_like_mnist(pixels)
    rows, cols = np.nonzero(out > 0.05)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 in (20, 21)  # the longer side: 20 pixels
    mass = out.sum()
    cy = (np.arange(28)[:, None] * out).sum() / mass
    cx = (np.arange(28)[None, :] * out).sum() / mass
    assert abs(cy - 13.5) <= 0.75 and abs(cx - 13.5) <= 0.75
    assert out.min() >= 0 and out.max() <= 1


def test_centring_an_empty_drawing_gives_an_empty_image():
    assert not center_like_mnist(np.zeros((28, 28))).any()


# ----------------------------------------------------------------------------------- the endpoint
def test_predict_answers_with_probabilities_and_every_layer_caught_by_hooks(server):
    status, data = request(server, "POST", "/predict", drawing(stroke()))
    assert status == 200
    answer = json.loads(data)
    assert len(answer["probabilities"]) == 10 and abs(sum(answer["probabilities"]) - 1) < 1e-5
    assert answer["prediction"] == int(np.argmax(answer["probabilities"]))
    assert [(layer["name"], layer["shape"]) for layer in answer["layers"]] == [
        ("conv1", [16, 28, 28]), ("relu1", [16, 28, 28]), ("pool1", [16, 14, 14]), ("conv2", [16, 14, 14]),
        ("relu2", [16, 14, 14]), ("pool2", [16, 7, 7]), ("flatten", [784]), ("fc", [10])]
    # The last layer's values are the logits: their softmax is the answer's probabilities.
    fc = answer["layers"][-1]["maps"][0]
    assert fc["min"] <= fc["max"]
    viewer = server.RequestHandlerClass.viewer
    x = mdl.tensor(((center_like_mnist(stroke()) - activation_viewer.MEAN) / activation_viewer.STD)[None, None]
                   .astype(np.float32))
    with mdl.no_grad():
        logits = viewer.model(x).numpy()[0]
    np.testing.assert_allclose([fc["min"], fc["max"]], [logits.min(), logits.max()], rtol=1e-5)


def test_random_gives_a_test_digit(server):
    status, data = request(server, "GET", "/random")
    digit = json.loads(data)
    assert status == 200 and len(digit["pixels"]) == 784 and 0 <= digit["label"] < 5
    assert 0 <= min(digit["pixels"]) and max(digit["pixels"]) <= 1


@pytest.mark.parametrize("body, message", [
    (b"not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2, 3]", "expected a JSON object"),
    (json.dumps({"pixels": [0.5] * 783}).encode(), "784 numbers (28×28, row by row), got 783"),
    (json.dumps({"pixels": ["a"] * 784}).encode(), "a list of numbers"),
    (json.dumps({"pixels": [1.5] * 784}).encode(), "in [0, 1]"),
    (json.dumps({"pixels": [0] * 784, "center": "yes"}).encode(), "center must be true or false"),
])
def test_bad_requests_get_a_400_with_a_message_and_the_server_goes_on(server, body, message):
    status, data = request(server, "POST", "/predict", body)
    assert status == 400 and message in json.loads(data)["error"]
    assert request(server, "POST", "/predict", drawing(stroke()))[0] == 200


def test_a_huge_body_is_refused_unread(server):
    reply = raw(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 500000000\r\n\r\n" + b"[" * 1000)
    assert reply.startswith("HTTP/1.0 400") and "more than the 65,536 a drawing needs" in reply
    assert request(server, "POST", "/predict", drawing(stroke()))[0] == 200


def test_no_content_length_and_unknown_paths(server):
    reply = raw(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith("HTTP/1.0 400") and "Content-Length header is needed" in reply
    assert request(server, "GET", "/etc/passwd")[0] == 404
    assert request(server, "POST", "/", b"{}", {"Content-Length": "2"})[0] == 404
    assert request(server, "PUT", "/predict", b"{}")[0] == 501


def test_the_server_listens_on_127_0_0_1_only(server):
    assert server.server_address[0] == "127.0.0.1"


# ----------------------------------------------------------------------------------- the command line
def test_a_missing_checkpoint_is_one_clear_error(tmp_path, capsys):
    assert activation_viewer.main(["--checkpoint", str(tmp_path / "none.npz")]) == 2
    err = capsys.readouterr().err
    assert "error: argument --checkpoint" in err and "is not a file" in err and "Traceback" not in err


def save_checkpoint(path: Path, net: ModelBuilderNet) -> Path:
    serialization.save({"kind": "minidl.training checkpoint", "epoch": 1, "model": net.state_dict()}, path)
    return path


def test_a_file_that_is_no_checkpoint_is_refused(tmp_path, capsys):
    serialization.save({"model": ModelBuilderNet().state_dict()}, tmp_path / "weights.npz")
    assert activation_viewer.main(["--checkpoint", str(tmp_path / "weights.npz")]) == 1
    assert "is not a checkpoint written by minidl.training.fit" in capsys.readouterr().err


def test_a_checkpoint_of_another_net_is_refused(tmp_path, capsys):
    save_checkpoint(tmp_path / "checkpoint.npz", ModelBuilderNet(filters=8))
    assert activation_viewer.main(["--checkpoint", str(tmp_path / "checkpoint.npz")]) == 1
    assert "do not fit the net" in capsys.readouterr().err


def test_a_busy_port_is_one_clear_error(tmp_path, capsys, monkeypatch):
    save_checkpoint(tmp_path / "checkpoint.npz", ModelBuilderNet())
    monkeypatch.setattr(activation_viewer.common, "load_dataset",
                        lambda *a, **k: type("T", (), {"data": np.zeros((1, 28, 28), np.uint8), "targets": [0]}))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code = activation_viewer.main(["--checkpoint", str(tmp_path / "checkpoint.npz"), "--port",
                                       str(busy.getsockname()[1])])
    assert code == 2 and "pass another --port (0 picks a free one)" in capsys.readouterr().err


def test_without_checkpoint_the_net_is_trained_once_and_cached(tmp_path, monkeypatch, capsys):
    """The first start trains the base net with model_builder.py into the cache; the second reuses it. (A tiny
    synthetic MNIST and 4 batches stand in for the real data set and the 3000 batches.)"""
    import functools

    import model_builder
    from conftest import write_synthetic_mnist

    from minidl.data.datasets import MNIST
    data = tmp_path / "mnist"
    data.mkdir()
    write_synthetic_mnist(data)
    unchecked = functools.partial(MNIST, check_content=False)
    monkeypatch.setitem(model_builder.DATASETS, "mnist", (unchecked, *model_builder.DATASETS["mnist"][1:]))
    monkeypatch.setattr(activation_viewer, "MNIST", unchecked)
    monkeypatch.setenv("MINIDL_CACHE", str(tmp_path / "cache"))
    train = model_builder.main
    monkeypatch.setattr(model_builder, "main", lambda argv: train([*argv, "--batches", "4", "--eval-every", "2"]))

    def stop(server):
        raise KeyboardInterrupt
    monkeypatch.setattr(activation_viewer.http.server.ThreadingHTTPServer, "serve_forever", stop)
    argv = ["--data-dir", str(data), "--port", "0", "--no-progress"]
    assert activation_viewer.main(argv) == 0
    first = capsys.readouterr().out
    assert "Training the viewer's MNIST net once" in first and "Activation viewer: http://127.0.0.1:" in first
    assert activation_viewer.main(argv) == 0
    second = capsys.readouterr().out
    assert "Training" not in second and "model_builder_mnist/checkpoint.npz" in second


# ----------------------------------------------------------------------------------- in a real browser
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install chromium)")
def test_the_page_in_headless_chromium(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright not installed (pip install "
                                                                 "'minidl[browser]')")
    artifacts = Path(os.environ.get("MINIDL_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 900})
            failed = []
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.on("pageerror", lambda e: failed.append(str(e)))
            page.goto(url)
            pad = page.locator("#pad").bounding_box()

            # A vertical stroke down the middle of the pad.
            x = pad["x"] + pad["width"] / 2
            page.mouse.move(x, pad["y"] + 40)
            page.mouse.down()
            for y in range(40, 241, 10):
                page.mouse.move(x, pad["y"] + y)
            page.mouse.up()
            page.wait_for_function("window.viewerTimings.length === 1")
            assert page.locator("#prediction").inner_text().strip() in list("0123456789")
            widths = page.eval_on_selector_all(".bar", "bars => bars.map(b => parseFloat(b.style.width))")
            assert len(widths) == 10 and abs(sum(widths) - 100) < 1.0 and max(widths) > 0

            # Every layer's canvases hold an image, not one flat colour (a single map may be flat: one that a
            # ReLU zeroed; the classifier's cells are one pixel each, shaded on the layer's range).
            spread = page.evaluate("""() => [...document.querySelectorAll('.layer')].map(column => {
                const canvases = [...column.querySelectorAll('canvas.map')];
                let lo = 255, hi = 0;
                for (const canvas of canvases) {
                    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                    for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }
                }
                return [column.dataset.layer, canvases.length, hi - lo]; })""")
            names = [name for name, _, _ in spread]
            assert names == ["input", "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc"]
            assert all(count >= 1 and top > 0 for _, count, top in spread), spread
            assert page.locator("#links line").count() > 16 * 16  # conv2 alone joins 16 maps to 16

            # Hovering a map names its layer, channel and value range.
            page.locator("canvas.map[data-layer='conv2'][data-channel='3']").hover()
            assert page.locator("#tooltip").is_visible()
            assert page.locator("#tooltip").inner_text().startswith("conv2 · channel 3 · values ")

            page.screenshot(path=str(artifacts / "activation_viewer_stroke.png"), full_page=True)

            page.click("#clear")
            assert page.locator("#prediction").inner_text() == ""
            blank = page.evaluate("""() => { const c = document.getElementById('pad');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                return d.every((v, i) => i % 4 === 3 || v === 0); }""")
            assert blank

            page.click("#random")
            page.wait_for_function("window.viewerTimings.length === 2")
            assert page.locator("#prediction").inner_text().strip() in list("0123456789")
            assert "Test digit #" in page.locator("#status").inner_text()

            # More strokes, for the response time (the first stroke's answer included the page's set-up).
            for k in range(5):
                page.click("#clear")
                page.mouse.move(pad["x"] + 60 + 30 * k, pad["y"] + 60)
                page.mouse.down()
                page.mouse.move(pad["x"] + 120 + 20 * k, pad["y"] + 220, steps=8)
                page.mouse.up()
                page.wait_for_function(f"window.viewerTimings.length === {3 + k}")
            timings = page.evaluate("window.viewerTimings")
            page.screenshot(path=str(artifacts / "activation_viewer.png"), full_page=True)
            assert failed == []
        finally:
            browser.close()
    report = {"stroke_to_answer_ms": timings, "median_ms": float(np.median(timings)),
              "screenshots": ["activation_viewer_stroke.png", "activation_viewer.png"]}
    (artifacts / "activation_viewer_timings.json").write_text(json.dumps(report, indent=2))
    print(f"activation viewer: stroke to drawn answer {report['median_ms']:.0f} ms median over {len(timings)} "
          f"({', '.join(f'{t:.0f}' for t in timings)} ms); screenshots in {artifacts}")
