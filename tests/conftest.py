"""Shared fixtures: a seeded NumPy generator, the PyTorch oracle, and the devices to test on."""
from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

import minidl as mdl

DEVICES = ["cpu"] + (["cuda"] if mdl.cuda.is_available() else [])


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's name, so every test draws the same numbers on every run."""
    seed = zlib.crc32(request.node.nodeid.encode())
    mdl.manual_seed(seed)
    return np.random.default_rng(seed)


@pytest.fixture(scope="session")
def torch():
    """PyTorch, the oracle; tests that use it skip cleanly where it is not installed."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    return torch


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Each device minidl can run on here: cpu always, cuda where CuPy and a GPU are present."""
    return request.param


def tensor64(rng: np.random.Generator, *shape, requires_grad: bool = True, device: str = "cpu") -> mdl.Tensor:
    """A float64 tensor of standard normals, the usual input of a gradcheck."""
    return mdl.tensor(rng.standard_normal(shape), requires_grad=requires_grad, device=device)


def compare_with_torch(torch, mdl_fn, torch_fn, arrays, rng, rtol=1e-6, atol=1e-9):
    """Run ``mdl_fn`` and ``torch_fn`` on the same float64 arrays; assert equal outputs and input gradients.

    The backward pass uses one random upstream gradient for both (never ``.sum()``, which hides
    transposition bugs). Arrays of integer dtype are passed without gradient.
    """
    mx = [mdl.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    tx = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    my, ty = mdl_fn(*mx), torch_fn(*tx)
    np.testing.assert_allclose(my.numpy(), ty.detach().numpy(), rtol=rtol, atol=atol)
    gy = rng.standard_normal(ty.shape)
    my.backward(gy)
    ty.backward(torch.tensor(gy))
    for m, t in zip(mx, tx):
        if t.requires_grad:
            np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol)


# ------------------------------------------------------------------------------------------ op coverage
# With MINIDL_OP_COVERAGE=path, record which Function classes run inside mdl.gradcheck and inside tests
# that use the PyTorch oracle, and write the table to ``path`` (JSON) at the end of the session.
_COVERAGE_PATH = os.environ.get("MINIDL_OP_COVERAGE")
_seen = {"gradcheck": set(), "torch": set()}
_state = {"gradcheck_depth": 0, "torch_test": False}

if _COVERAGE_PATH:
    from minidl import autograd

    _plain_apply = autograd.Function.apply.__func__

    def _recording_apply(cls, *args, **kwargs):
        if _state["gradcheck_depth"]:
            _seen["gradcheck"].add(cls)
        if _state["torch_test"]:
            _seen["torch"].add(cls)
        return _plain_apply(cls, *args, **kwargs)

    autograd.Function.apply = classmethod(_recording_apply)
    _plain_gradcheck = mdl.gradcheck

    def _recording_gradcheck(*args, **kwargs):
        _state["gradcheck_depth"] += 1
        try:
            return _plain_gradcheck(*args, **kwargs)
        finally:
            _state["gradcheck_depth"] -= 1

    mdl.gradcheck = _recording_gradcheck

    @pytest.fixture(autouse=True)
    def _record_torch_tests(request):
        _state["torch_test"] = "torch" in request.fixturenames
        yield
        _state["torch_test"] = False


def _all_ops():
    import importlib
    import pkgutil

    import minidl.ops
    from minidl.autograd import Function
    for info in pkgutil.iter_modules(minidl.ops.__path__):
        importlib.import_module(f"minidl.ops.{info.name}")
    found, stack = set(), list(Function.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("minidl.ops.") and not cls.__name__.startswith("_"):
            found.add(cls)
    return found


def pytest_sessionfinish(session, exitstatus):
    if not _COVERAGE_PATH:
        return
    import json
    ops = sorted(_all_ops(), key=lambda c: (c.__module__, c.__name__))
    table = {f"{c.__module__.rsplit('.', 1)[1]}.{c.__name__}":
             {"gradcheck": c in _seen["gradcheck"], "torch": c in _seen["torch"]} for c in ops}
    with open(_COVERAGE_PATH, "w") as f:
        json.dump(table, f, indent=1)


def write_synthetic_mnist(folder) -> None:
    """A tiny MNIST-shaped data set (300 training, 100 test images) as uncompressed IDX files in ``folder``.

    Each image carries a bar whose position depends on its class, so a net has something to learn in one
    epoch. It is not the official content: load it with ``MNIST(..., check_content=False)``.
    """
    import struct
    from pathlib import Path

    folder = Path(folder)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 300), ("t10k", 100)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, size=(n, 28, 28))
        for i, label in enumerate(labels):
            images[i, 4:24, 2 + 2 * label] = 255
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            # IDX: magic (0, 0, 0x08 = unsigned bytes, ndim), big-endian sizes, then the bytes.
            header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            (folder / f"{prefix}-{kind}-ubyte").write_bytes(header + array.astype(np.uint8).tobytes())


def write_cifar_folder(root, rng, per_file: int, learnable: bool = False) -> None:
    """A tiny CIFAR-10 in the official binary layout: ``per_file`` records in each batch file, every class in
    each (per-class accuracies divide by each class's count). Load it with ``CIFAR10.records_per_file``
    monkeypatched to None (the real files hold 10,000 records each).

    ``learnable``: an image's brightness is set by its class (noise on top), which random crops and flips
    keep, so a net has something to learn in a few steps; else the pixels are pure noise.
    """
    from pathlib import Path

    from minidl.data.datasets import CIFAR10

    folder = Path(root) / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name in CIFAR10.train_list + CIFAR10.test_list:
        labels = rng.permutation(np.arange(per_file, dtype=np.uint8) % 10)
        pixels = rng.integers(0, 256 if not learnable else 60, size=(per_file, 3, 32, 32), dtype=np.uint8)
        if learnable:
            pixels += (19 * labels).astype(np.uint8)[:, None, None, None]
        np.concatenate([labels[:, None], pixels.reshape(per_file, -1)], axis=1).tofile(folder / name)
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10.classes) + "\n")


def write_facades_folder(root, rng, sizes=(12, 4, 4), side: int = 32) -> None:
    """A tiny CMP-facades folder (``train/val/test.npz`` of ``sizes`` images, ``side`` x ``side``) in ``root``.

    Each label map is horizontal bands of random classes with a few random rectangles on top; each pixel's
    colour is its class's palette colour plus noise, so a per-pixel net learns it in a few steps.
    """
    from pathlib import Path

    palette = np.array([[30, 30, 30], [40, 60, 200], [40, 180, 60], [230, 150, 40], [200, 40, 40]])
    Path(root).mkdir(parents=True, exist_ok=True)
    for split, n in zip(("train", "val", "test"), sizes):
        labels = np.repeat(rng.integers(0, 5, size=(n, side // 4, 1)), 4, axis=1).repeat(side, axis=2)
        for k in range(n):
            for _ in range(3):
                top, left = rng.integers(0, side - 4, size=2)
                labels[k, top:top + rng.integers(2, side // 2), left:left + rng.integers(2, side // 2)] = \
                    rng.integers(0, 5)
        labels[:, 0, :5] = np.arange(5)  # every class in every image
        images = np.clip(palette[labels] + rng.integers(-40, 40, size=labels.shape + (3,)), 0, 255)
        np.savez(Path(root) / f"{split}.npz", images=images.astype(np.uint8), labels=labels.astype(np.uint8),
                 ids=np.array([f"cmp_b{k:04d}" for k in range(n)]))
