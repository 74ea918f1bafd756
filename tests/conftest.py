"""Shared fixtures: a seeded NumPy generator, the PyTorch oracle, and the devices to test on."""
from __future__ import annotations

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
