"""ops/textbook.py: each textbook op passes gradcheck and equals its fast twin and PyTorch, forward and backward.

Geometries are drawn at random from the ``rng`` fixture (seeded by the test name and case): batch, channels,
image size, kernel, stride, padding (int or pair), dilation, bias or not. Gradients are compared with one random
upstream gradient, never ``.sum()``. Inputs of ReLU keep away from 0, and inputs of max pooling are distinct and
spaced (a shuffled ramp), so that finite differences never cross a kink; ties get a test of their own.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import compare_with_torch

import minidl as mdl
import minidl.nn.functional as F
from minidl.backend import threads
from minidl.ops import blocks, direct, textbook, winograd

CASES = range(4)


# ------------------------------------------------------------------------------------------ inputs

def conv_case(rng) -> dict:
    """Arrays and arguments of a random small conv2d (groups=1) with at least one output pixel."""
    while True:
        N, C, O = (int(v) for v in rng.integers(1, 4, size=3))
        H, W = (int(v) for v in rng.integers(3, 8, size=2))
        KH, KW = (int(v) for v in rng.integers(1, 4, size=2))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        padding = int(rng.integers(0, 3)) if rng.integers(2) else (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        PH, PW = (padding, padding) if isinstance(padding, int) else padding
        if H + 2 * PH > dilation[0] * (KH - 1) and W + 2 * PW > dilation[1] * (KW - 1):
            arrays = [rng.standard_normal((N, C, H, W)), rng.standard_normal((O, C, KH, KW))]
            if rng.integers(2):
                arrays.append(rng.standard_normal(O))
            return dict(arrays=arrays, kwargs=dict(stride=stride, padding=padding, dilation=dilation))


def spaced(rng, shape) -> np.ndarray:
    """Distinct values 2/size apart, shuffled: no two entries of a window within a finite-difference step."""
    return rng.permutation(np.linspace(-1, 1, int(np.prod(shape)))).reshape(shape)


def pool_case(rng) -> dict:
    """An input and arguments of a random small max_pool2d (padding at most half the kernel, as PyTorch)."""
    while True:
        N, C = (int(v) for v in rng.integers(1, 3, size=2))
        H, W = (int(v) for v in rng.integers(2, 8, size=2))
        kernel_size = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = None if rng.integers(3) == 0 else (int(rng.integers(1, 3)), int(rng.integers(1, 4)))
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel_size)
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        extent = [d * (k - 1) + 1 for d, k in zip(dilation, kernel_size)]
        if H + 2 * padding[0] >= extent[0] and W + 2 * padding[1] >= extent[1]:
            return dict(arrays=[spaced(rng, (N, C, H, W))],
                        kwargs=dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation))


def batch_norm_case(rng) -> dict:
    """A random (N, C) or (N, C, H, W) input, per-channel weight and bias, and eps."""
    shape = [(int(rng.integers(2, 6)), int(rng.integers(1, 4))),
             (int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(2, 5)))
             ][rng.integers(2)]
    C = shape[1]
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)
    return dict(arrays=[x, rng.standard_normal(C), rng.standard_normal(C)],
                kwargs=dict(eps=float(rng.choice([1e-5, 1e-3, 0.1]))))


def relu_case(rng) -> dict:
    """A random input with no entry within 0.01 of the kink at 0."""
    shape = tuple(int(v) for v in rng.integers(1, 5, size=int(rng.integers(1, 5))))
    x = rng.standard_normal(shape)
    return dict(arrays=[x + 0.01 * np.sign(x)], kwargs={})


# Each op: (textbook function, fast function, case maker); the fast function, and the PyTorch one from
# torch_fn, take the textbook's arguments.
def fast_batch_norm(x, weight, bias, eps):
    return F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)


def torch_batch_norm(torch):
    return lambda x, weight, bias, eps: torch.nn.functional.batch_norm(x, None, None, weight, bias,
                                                                       training=True, eps=eps)


OPS = {
    "conv2d": (textbook.conv2d, F.conv2d, conv_case),
    "max_pool2d": (textbook.max_pool2d, F.max_pool2d, pool_case),
    "batch_norm": (textbook.batch_norm, fast_batch_norm, batch_norm_case),
    "relu": (textbook.relu, F.relu, relu_case),
}


def torch_fn(torch, name):
    return torch_batch_norm(torch) if name == "batch_norm" else getattr(torch.nn.functional, name)


# ------------------------------------------------------------------------------------------ tests

@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", OPS)
def test_gradcheck(rng, name, case):
    fn, _, make = OPS[name]
    cfg = make(rng)
    inputs = [mdl.tensor(a, requires_grad=True) for a in cfg["arrays"]]
    assert mdl.gradcheck(lambda *t: fn(*t, **cfg["kwargs"]), inputs, seed=case)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", OPS)
def test_equals_fast_op(rng, name, case, dtype):
    """Same output and, for one random upstream gradient, the same gradient of every input as the fast op."""
    fn, fast, make = OPS[name]
    cfg = make(rng)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    results = []
    for f in (fn, fast):
        inputs = [mdl.tensor(a.astype(dtype), requires_grad=True) for a in cfg["arrays"]]
        y = f(*inputs, **cfg["kwargs"])
        gy = np.random.default_rng(case).standard_normal(y.shape).astype(dtype)
        y.backward(mdl.tensor(gy))
        results.append([y.numpy()] + [t.grad.numpy() for t in inputs])
    for what, mine, theirs in zip(["y"] + [f"grad of input {i}" for i in range(len(cfg["arrays"]))], *results):
        assert mine.dtype == theirs.dtype == dtype, what
        np.testing.assert_allclose(mine, theirs, **tol, err_msg=f"{name}: {what}")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", OPS)
def test_equals_torch(torch, rng, name, case):
    fn, _, make = OPS[name]
    cfg = make(rng)
    compare_with_torch(torch, lambda *t: fn(*t, **cfg["kwargs"]),
                       lambda *t: torch_fn(torch, name)(*t, **cfg["kwargs"]), cfg["arrays"], rng)


@pytest.mark.parametrize("path", ["winograd", "row-bands"])
def test_conv2d_equals_each_fast_path(rng, monkeypatch, path):
    """The fast conv2d takes Winograd's algorithm for 3x3 stride-1 convolutions with many channels, and cuts
    its columns into blocks shared by threads; forced onto each path with few channels, it equals the textbook."""
    if path == "winograd":
        monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)
        monkeypatch.setattr(winograd, "MIN_POSITIONS", 1)
        monkeypatch.setattr(winograd, "MAX_COLUMNS_PER_POSITION", float("inf"))
        assert winograd.suits(3, 3, (1, 1), (1, 1), 1, 3, 4, 1, (7, 6))
    else:
        monkeypatch.setattr(direct, "MAX_FILTERS", 0)  # 4 filters: keep them on the block engine
        monkeypatch.setattr(blocks, "BLOCK_BYTES", 1)
        monkeypatch.setattr(blocks, "MIN_COLUMNS", 1)
        monkeypatch.setattr(threads, "_workers", 2)
    arrays = [rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)]
    gy = rng.standard_normal((2, 4, 7, 6))
    results = []
    for f in (textbook.conv2d, F.conv2d):
        inputs = [mdl.tensor(a, requires_grad=True) for a in arrays]
        y = f(*inputs, padding=1)
        y.backward(mdl.tensor(gy))
        results.append([y.numpy()] + [t.grad.numpy() for t in inputs])
    for mine, theirs in zip(*results):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


def test_relu_at_zero_and_with_infinite_gradient(torch):
    """relu'(0) = 0 (for -0.0 too), a gradient of inf where x < 0 gives 0, not inf * 0 = NaN, and at a NaN
    input the gradient passes (PyTorch's rule), on the textbook op, the fast one and its reference path."""
    x = np.array([-1.0, 0.0, -0.0, 2.0, -3.0, np.nan])
    gy = np.array([np.inf, 5.0, 4.0, 1.0, -np.inf, 7.0])
    grads = []
    for f, kernels in ((textbook.relu, "fast"), (F.relu, "fast"), (F.relu, "reference")):
        t = mdl.tensor(x, requires_grad=True)
        with mdl.use_kernels(kernels):
            f(t).backward(mdl.tensor(gy))
        grads.append(t.grad.numpy())
    tx = torch.tensor(x, requires_grad=True)
    torch.relu(tx).backward(torch.tensor(gy))
    for g in grads:
        np.testing.assert_array_equal(g, [0.0, 0.0, 0.0, 1.0, 0.0, 7.0])
    np.testing.assert_array_equal(tx.grad.numpy(), grads[0])


def test_max_pool2d_ties_go_to_the_first_max(torch, rng):
    """Windows full of equal values (and overlapping, stride 1): the gradient goes to the first maximum in
    row-major window order, as PyTorch's and the fast op's; a pixel that wins several windows gets their sum."""
    x = rng.integers(0, 3, size=(2, 3, 6, 5)).astype(np.float64)
    kwargs = dict(kernel_size=(3, 2), stride=1, padding=1)
    compare_with_torch(torch, lambda t: textbook.max_pool2d(t, **kwargs),
                       lambda t: torch.nn.functional.max_pool2d(t, **kwargs), [x], rng)
    grads = []
    for f in (textbook.max_pool2d, F.max_pool2d):
        t = mdl.tensor(x, requires_grad=True)
        y = f(t, **kwargs)
        y.backward(mdl.ones(*y.shape, dtype=mdl.float64))
        grads.append(t.grad.numpy())
    np.testing.assert_array_equal(*grads)


def test_max_pool2d_infinite_gradient_reaches_only_the_winner(rng):
    """An inf in gy goes to the window's maximum alone; the other pixels get 0, not inf * 0 = NaN."""
    x = spaced(rng, (1, 2, 5, 5))
    gy = rng.standard_normal((1, 2, 5, 4))
    gy[0, 1, 2, 1] = np.inf
    grads = []
    for f in (textbook.max_pool2d, F.max_pool2d):
        t = mdl.tensor(x, requires_grad=True)
        f(t, 2, stride=1, padding=(1, 0), dilation=(2, 1)).backward(mdl.tensor(gy))
        grads.append(t.grad.numpy())
    assert np.isinf(grads[0]).sum() == 1 and not np.isnan(grads[0]).any()
    np.testing.assert_allclose(*grads, rtol=1e-12)


def test_max_pool2d_pads_with_minus_infinity(rng):
    """All inputs negative: a window that reaches into the padding still takes an input value, never 0."""
    x = -np.abs(spaced(rng, (1, 2, 4, 4))) - 1
    y = textbook.max_pool2d(mdl.tensor(x), 3, stride=2, padding=1)
    np.testing.assert_array_equal(y.numpy(), F.max_pool2d(mdl.tensor(x), 3, stride=2, padding=1).numpy())
    assert (y.numpy() < -1).all()


def test_batch_norm_without_weight_and_bias_is_the_normalised_input(rng):
    x = rng.standard_normal((4, 3, 2, 2)) * 5 + 2
    y = textbook.batch_norm(mdl.tensor(x), eps=0.0).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-12)


def test_conv2d_col2im_is_the_adjoint_of_im2col(rng):
    """<im2col(x), g> = <x, col2im(g)> for any x and g: col2im is exactly im2col's transpose."""
    x = rng.standard_normal((2, 3, 7, 6))
    geometry = ((2, 1), (1, 2), (2, 1))
    col = textbook.im2col(x, 3, 2, *geometry)
    g = rng.standard_normal(col.shape)
    np.testing.assert_allclose((col * g).sum(), (x * textbook.col2im(g, x.shape, *geometry)).sum(), rtol=1e-12)
