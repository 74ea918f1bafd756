"""Draw a digit and watch report 002's Model Builder CNN see it: every layer's activation maps, live.

    python experiments/activation_viewer.py                  # trains the MNIST net once (~1 min), then serves
    python experiments/activation_viewer.py --port 8080 --open
    python experiments/activation_viewer.py --checkpoint runs/model_builder/checkpoint.npz

Report 002 drew digits into Harley's interactive node-link view of a CNN (SEED_MODELS.md section 5). This is
that view, served from this machine: a page on http://127.0.0.1:PORT/ (the address only this machine can
reach) with a canvas to draw on with the mouse or a finger. After each stroke the page sends the drawing,
scaled to 28×28, to the server, which runs the net in minidl and answers with the ten class probabilities
and every layer's output, caught by forward hooks on the layers. The page shows the probabilities as bars
and the layers left to right, each map a small image joined to the maps of the next layer that it feeds
(every input map feeds every conv output map; ReLU and pooling work map by map); hovering a map shows its
layer, channel and value range. Buttons clear the canvas and load a random test digit.

The net is the base Model Builder CNN (models/builder.py) trained on MNIST by experiments/model_builder.py:
without --checkpoint, the run in the cache folder (``$MINIDL_CACHE`` or ~/.cache/minidl,
``activation_viewer/``) is used, and made there the first time. With --checkpoint, a run folder's
checkpoint.npz; its config.json beside it, when there, gives the net's knobs.

A drawing is centred as MNIST's digits were: its bounding box scaled to fit 20×20 pixels and placed so that
its centre of mass is the image's centre. The page works offline (no web fonts, scripts or styles from
elsewhere). The JSON endpoint, POST /predict, takes ``{"pixels": [784 numbers in [0, 1]], "center": true}``
and answers 400 with a message for anything else (not JSON, the wrong number of pixels, a body over 64 KB);
GET /random gives a random test digit.
"""
from __future__ import annotations

import argparse
import base64
import http.server
import json
import sys
import threading
import time
import webbrowser
from pathlib import Path

import numpy as np

import common
import model_builder

import minidl as mdl
import minidl.nn.functional as F
from minidl import training
from minidl.data.datasets import MNIST
from minidl.data.datasets.download import cache_home
from minidl.serialization import SerializationError
from models.builder import ModelBuilderNet

PAGE = Path(__file__).with_name("activation_viewer.html")
SIDE = 28  # MNIST's images are SIDE × SIDE
BOX = 20  # MNIST's digits fit a BOX × BOX square inside the image
MAX_BODY = 64 * 1024  # a drawing's JSON is ~5-10 KB
MEAN, STD = 0.1307, 0.3081  # MNIST's training pixels, as model_builder normalises them


def center_like_mnist(pixels: np.ndarray) -> np.ndarray:
    """Centre a 28×28 drawing as MNIST's digits were prepared: the ink's bounding box scaled (keeping its
    aspect ratio) so that its longer side is 20 pixels, then placed so that the centre of mass of the ink is
    the image's centre.

    >>> stroke = np.zeros((28, 28)); stroke[2:9, 3] = 1.0      # a short vertical line near a corner
    >>> out = center_like_mnist(stroke)
    >>> out.shape, np.round(np.argwhere(out > 0.5).mean(axis=0))  # now 20 pixels tall, in the middle
    ((28, 28), array([14., 14.]))
    >>> int((out > 0.5).any(axis=1).sum())
    20
    """
    ink = np.argwhere(pixels > 0.05)
    if len(ink) == 0:
        return np.zeros((SIDE, SIDE), dtype=np.float32)
    (top, left), (bottom, right) = ink.min(axis=0), ink.max(axis=0) + 1
    box = mdl.tensor(np.ascontiguousarray(pixels[top:bottom, left:right], dtype=np.float32)[None, None])
    h, w = bottom - top, right - left
    scale = BOX / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if scale < 1:  # shrinking: each output pixel the mean of the pixels it covers
        digit = F.adaptive_avg_pool2d(box, size)
    else:
        digit = F.interpolate(box, size=size, mode="bilinear", align_corners=False)
    digit = np.clip(digit.numpy()[0, 0], 0.0, 1.0)
    rows, cols = np.indices(digit.shape)
    mass = digit.sum()
    cy, cx = (rows * digit).sum() / mass, (cols * digit).sum() / mass
    y0 = int(np.clip(round(SIDE / 2 - 0.5 - cy), 0, SIDE - digit.shape[0]))
    x0 = int(np.clip(round(SIDE / 2 - 0.5 - cx), 0, SIDE - digit.shape[1]))
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    out[y0:y0 + digit.shape[0], x0:x0 + digit.shape[1]] = digit
    return out


def encode_map(values: np.ndarray) -> dict:
    """One activation map for the page: its values scaled to bytes 0-255 between its min and max (base64), the
    min and max themselves, and its shape."""
    low, high = float(values.min()), float(values.max())
    scaled = np.zeros(values.shape, np.uint8) if high == low else \
        np.round((values - low) * (255 / (high - low))).astype(np.uint8)
    return {"data": base64.b64encode(scaled.tobytes()).decode("ascii"), "min": low, "max": high}


class Viewer:
    """The net and what the page asks of it.

    Args:
        model: a ModelBuilderNet for 1×28×28 images, whose layers are ``model.layers``' children.
        test_images: uint8 (N, 28, 28) digits for the "random" button; test_labels: their (N,) labels.
        seed: seeds the random digits.
    """

    def __init__(self, model: ModelBuilderNet, test_images: np.ndarray, test_labels: np.ndarray, seed: int = 0):
        self.model = model.eval()
        self.test_images, self.test_labels = test_images, test_labels
        self.rng = np.random.default_rng(seed)
        self.lock = threading.Lock()  # one forward pass at a time: the hooks fill one shared list
        self.layers = list(model.layers.named_children())
        self._caught: list[tuple[str, str, np.ndarray]] = []
        for name, layer in self.layers:
            layer.register_forward_hook(self._catcher(name))
        self.predict(np.zeros((SIDE, SIDE), np.float32))  # the kernels' first run compiles them: not on a stroke

    def _catcher(self, name: str):
        def hook(module, inputs, output):
            self._caught.append((name, type(module).__name__, output.numpy()[0]))
        return hook

    def predict(self, pixels: np.ndarray, center: bool = True) -> dict:
        """The page's answer for a 28×28 image in [0, 1]: the image the net saw, the probabilities, the
        predicted digit and every layer's output (maps for 3-D outputs, one vector for 1-D ones)."""
        image = center_like_mnist(pixels) if center else pixels.astype(np.float32)
        x = mdl.tensor(((image - MEAN) / STD)[None, None].astype(np.float32))
        start = time.perf_counter()
        with self.lock, mdl.no_grad():
            self._caught = []
            logits = self.model(x)
            caught = self._caught
        probabilities = F.softmax(logits, dim=1).numpy()[0]
        layers = []
        for name, kind, out in caught:
            maps = out if out.ndim == 3 else out.reshape(1, -1, 1)  # a vector: one tall map of width 1
            layers.append({"name": name, "kind": kind, "shape": list(out.shape), "height": maps.shape[1],
                           "width": maps.shape[2], "maps": [encode_map(m) for m in maps]})
        return {"input": {**encode_map(image), "height": SIDE, "width": SIDE},
                "probabilities": [float(p) for p in probabilities], "prediction": int(probabilities.argmax()),
                "layers": layers, "server_ms": 1000 * (time.perf_counter() - start)}

    def random_digit(self) -> dict:
        i = int(self.rng.integers(len(self.test_images)))
        return {"pixels": (self.test_images[i].astype(np.float32) / 255).round(4).ravel().tolist(),
                "label": int(self.test_labels[i]), "index": i}


class BadRequest(ValueError):
    """A request the endpoint refuses with 400 and this message."""


def parse_drawing(body: bytes) -> tuple[np.ndarray, bool]:
    """The pixels (28×28, float32) and the ``center`` flag of a POST /predict body.

    Raises:
        BadRequest: not JSON, not an object with ``pixels``, not 784 finite numbers in [0, 1].
    """
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadRequest(f"the body is not JSON ({err})") from None
    if not isinstance(request, dict) or "pixels" not in request:
        raise BadRequest('expected a JSON object {"pixels": [784 numbers in [0, 1]], "center": true}')
    values = request["pixels"]
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in values):
        raise BadRequest("pixels must be a list of numbers")
    if len(values) != SIDE * SIDE:
        raise BadRequest(f"pixels must hold {SIDE * SIDE} numbers ({SIDE}×{SIDE}, row by row), got {len(values)}")
    pixels = np.asarray(values, dtype=np.float64).reshape(SIDE, SIDE)
    if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 1:
        raise BadRequest("pixels must be finite numbers in [0, 1]")
    center = request.get("center", True)
    if not isinstance(center, bool):
        raise BadRequest("center must be true or false")
    return pixels.astype(np.float32), center


class Handler(http.server.BaseHTTPRequestHandler):
    """GET / (the page), GET /random, POST /predict; everything else 404 (or 501 for other methods)."""

    viewer: Viewer  # set on the subclass that make_server builds
    timeout = 10  # seconds a connection may idle mid-request before it is dropped
    server_version = "minidl-activation-viewer"

    def log_message(self, format, *args):  # noqa: A002 (the base class's name); quiet: no line per request
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path in ("/", "/index.html"):
            self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
        elif self.path == "/random":
            self._json(200, self.viewer.random_digit())
        else:
            self._json(404, {"error": f"no page {self.path}: the viewer serves /, /random and POST /predict"})

    def do_POST(self):  # noqa: N802
        if self.path != "/predict":
            self._json(404, {"error": f"no endpoint {self.path}: POST to /predict"})
            return
        try:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                raise BadRequest("a Content-Length header is needed")
            if int(length) > MAX_BODY:
                self.close_connection = True  # the body is not read: the connection cannot be reused
                raise BadRequest(f"the body is {int(length):,} bytes, more than the {MAX_BODY:,} a drawing needs")
            pixels, center = parse_drawing(self.rfile.read(int(length)))
            self._json(200, self.viewer.predict(pixels, center))
        except BadRequest as err:
            self._json(400, {"error": str(err)})
        except Exception as err:  # a bug: say so, keep serving
            self._json(500, {"error": f"{type(err).__name__}: {err}"})


def make_server(viewer: Viewer, port: int) -> http.server.ThreadingHTTPServer:
    """A server on 127.0.0.1:``port`` (0: a free port) answering for ``viewer``; start it with
    ``serve_forever()``."""
    handler = type("ViewerHandler", (Handler,), {"viewer": viewer})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server


# ----------------------------------------------------------------------------------- the command line
def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring and ``--help``)."""
    p = common.make_parser(__file__, __doc__)
    p.add_argument("--port", type=common.int_at_least(0), default=8000,
                   help="port on 127.0.0.1 (default 8000; 0 picks a free one)")
    p.add_argument("--checkpoint", type=Path, default=None, metavar="FILE",
                   help="a Model Builder MNIST run's checkpoint.npz (default: the cached one, trained if missing)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.add_argument("--data-dir", default=None, metavar="DIR", help="an offline copy of MNIST (as for the "
                   "experiments: default $MINIDL_DATA/mnist, ../shared/data/mnist, the cache, a download)")
    p.add_argument("--seed", type=common.int_at_least(0), default=0, help="seeds the random test digits")
    p.add_argument("--no-progress", action="store_true", help="no progress bars while training the net")
    p.add_argument("--debug", action="store_true", help="full tracebacks for expected errors too")
    return p


def cached_run(args: argparse.Namespace) -> Path:
    """The cached MNIST run's checkpoint, made (or finished) by model_builder.py if needed."""
    folder = cache_home() / "activation_viewer" / "model_builder_mnist"
    if common.read_json(folder / "summary.json") is None:
        print(f"Training the viewer's MNIST net once (about a minute); it is kept in {folder}")
        argv = ["--dataset", "mnist", "--out", str(folder)]
        argv += ["--resume"] if (folder / training.CHECKPOINT_NAME).exists() else ["--overwrite"]
        argv += ["--data-dir", args.data_dir] if args.data_dir else []
        argv += ["--no-progress"] if args.no_progress else []
        if model_builder.main(argv) != 0:
            raise common.ExperimentError(f"training the viewer's net failed (see above); its run folder is {folder}")
    return folder / training.CHECKPOINT_NAME


def load_model(checkpoint: Path) -> ModelBuilderNet:
    """The net of a model_builder run's checkpoint (its knobs from the config.json beside it, if any)."""
    if not checkpoint.is_file():
        raise common.ExperimentError(f"argument --checkpoint: {checkpoint} is not a file: pass a run's "
                                     f"checkpoint.npz, or leave --checkpoint out to use the cached net",
                                     common.EXIT_USAGE)
    config = common.read_json(checkpoint.parent / "config.json") or {}
    if config.get("dataset", "mnist") != "mnist":
        raise common.ExperimentError(f"argument --checkpoint: {checkpoint} is a {config['dataset']} net; the viewer "
                                     f"draws MNIST digits: pass an MNIST run's checkpoint", common.EXIT_USAGE)
    knobs = argparse.Namespace(**{k: config.get(k) for k in model_builder.BASE_NET}, ceil_mode=config.get(
        "ceil_mode", True), dataset="mnist", lr=None, optimizer="sgd")
    model_builder.resolve(knobs)
    model = model_builder.build_model(knobs)
    try:
        state = training.load_checkpoint(checkpoint)["model"]
    except SerializationError as err:
        raise common.ExperimentError(f"argument --checkpoint: {err}: pass the checkpoint.npz of a "
                                     f"model_builder.py run") from err
    try:
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise common.ExperimentError(f"argument --checkpoint: the weights in {checkpoint} do not fit the net of "
                                     f"its config.json: {err}") from err
    return model


def main(argv: list[str] | None = None) -> int:
    """Run the viewer until Ctrl-C; the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        checkpoint = args.checkpoint if args.checkpoint is not None else cached_run(args)
        model = load_model(checkpoint)
        test = common.load_dataset(MNIST, "mnist", args.data_dir, train=False)
        viewer = Viewer(model, test.data, np.asarray(test.targets), seed=args.seed)
        try:
            server = make_server(viewer, args.port)
        except OSError as err:
            raise common.ExperimentError(f"argument --port: 127.0.0.1:{args.port} cannot be used "
                                         f"({err.strerror or err}): pass another --port (0 picks a free one)",
                                         common.EXIT_USAGE) from err
    except common.ExperimentError as err:
        if args.debug:
            raise
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return err.exit_code
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    print(f"Activation viewer: {url} (net: {checkpoint}); Ctrl-C stops it", flush=True)
    if args.open:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    common.exit_without_gc(main())
