"""Activations: relu, leaky_relu, sigmoid, tanh, softmax, log_softmax.

Inputs are random normals (float64), pushed off the kink at 0 for relu and leaky_relu. Gradients are checked
by finite differences (mdl.gradcheck) and, with a random upstream gradient, against PyTorch.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import tensor64

import minidl as mdl
import minidl.nn.functional as F


def off_kink(rng, shape, gap=1e-3):
    """Standard normals with every |x| >= gap, so finite differences never straddle the kink at 0."""
    x = rng.standard_normal(shape)
    x[np.abs(x) < gap] = gap
    return x


def random_shape(rng, ndim):
    return tuple(int(n) for n in rng.integers(1, 5, ndim))


ELEMENTWISE = [
    ("relu", lambda F, x: F.relu(x)),
    ("leaky_relu_default", lambda F, x: F.leaky_relu(x)),
    ("leaky_relu_0.2", lambda F, x: F.leaky_relu(x, 0.2)),
    ("leaky_relu_neg", lambda F, x: F.leaky_relu(x, negative_slope=-0.5)),
    ("leaky_relu_0", lambda F, x: F.leaky_relu(x, 0.0)),
    ("leaky_relu_2.5", lambda F, x: F.leaky_relu(x, 2.5)),
    ("sigmoid", lambda F, x: F.sigmoid(x)),
    ("tanh", lambda F, x: F.tanh(x)),
]


@pytest.mark.parametrize("name,fn", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
@pytest.mark.parametrize("ndim", [1, 2, 4])
def test_elementwise_gradcheck(rng, name, fn, ndim):
    x = mdl.tensor(off_kink(rng, random_shape(rng, ndim)), requires_grad=True)
    assert mdl.gradcheck(lambda t: fn(F, t), [x])


@pytest.mark.parametrize("name,fn", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
def test_elementwise_matches_torch(rng, torch, device, name, fn):
    x = off_kink(rng, (3, 4, 5)) * 3
    gy = rng.standard_normal(x.shape)
    xm = mdl.tensor(x, requires_grad=True, device=device)
    y = fn(F, xm)
    y.backward(mdl.tensor(gy, device=device))
    xt = torch.tensor(x, requires_grad=True)
    yt = fn(torch.nn.functional, xt)
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name,fn", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
def test_elementwise_keeps_float32(rng, name, fn):
    x = mdl.tensor(off_kink(rng, (4, 3)).astype(np.float32), requires_grad=True)
    y = fn(F, x)
    y.backward(mdl.tensor(rng.standard_normal(y.shape).astype(np.float32)))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_large_inputs_no_overflow(torch, dtype):
    x = np.array([-1e4, -800.0, -100.0, -20.0, 0.0, 20.0, 100.0, 800.0, 1e4], dtype=dtype)
    gy = np.linspace(-1, 1, x.size).astype(dtype)
    xm = mdl.tensor(x, requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = F.sigmoid(xm)
        y.backward(mdl.tensor(gy))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.sigmoid(xt)
    yt.backward(torch.tensor(gy))
    assert np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(xm.grad.numpy()))
    # atol: float32 sigmoid(-100) = 3.8e-44 is subnormal; PyTorch flushes it to 0
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-30)


def test_relu_and_leaky_relu_values_at_known_points():
    x = mdl.tensor([-2.0, -0.5, 0.5, 3.0])
    assert F.relu(x).tolist() == [0.0, 0.0, 0.5, 3.0]
    np.testing.assert_allclose(F.leaky_relu(x, 0.1).numpy(), [-0.2, -0.05, 0.5, 3.0], rtol=1e-6)


@pytest.mark.parametrize("negative_slope", [0.01, 0.0, -0.5, 2.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [60, 300_000])
def test_leaky_relu_bit_equal_to_torch_with_nan(rng, torch, device, dtype, negative_slope, size):
    """NaN and both zeros in the input; 300 000 elements are split across the worker threads. PyTorch
    propagates NaN forward and gives it the gradient slope * gy, like any input that is not > 0."""
    x = rng.standard_normal((size // 60, 60)).astype(dtype)
    x[:, :3] = [np.nan, 0.0, -0.0]
    gy = rng.standard_normal(x.shape).astype(dtype)
    xm = mdl.tensor(x, requires_grad=True, device=device)
    y = F.leaky_relu(xm, negative_slope)
    y.backward(mdl.tensor(gy, device=device))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.leaky_relu(xt, negative_slope)
    yt.backward(torch.tensor(gy))
    assert y.dtype == dtype and xm.grad.dtype == dtype
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(xm.grad.numpy(), xt.grad.numpy())


def test_leaky_relu_rejects_dtypes_without_a_kernel():
    with pytest.raises(TypeError, match="leaky_relu: expected a floating-point input, got dtype int64"):
        F.leaky_relu(mdl.tensor([1, -2]))
    with pytest.raises(TypeError, match="leaky_relu: input has dtype float16"):
        F.leaky_relu(mdl.tensor(np.array([1.0, -2.0], np.float16)))


@pytest.mark.parametrize("fn_name", ["relu", "leaky_relu"])
def test_backward_keeps_the_forward_signs(rng, fn_name):
    """The backward keeps only a mask of the forward's signs, not x or y: changing x in place after the forward
    (here as an optimizer step would) leaves the gradient as the forward made it. (PyTorch, which keeps the
    tensor itself, raises there instead.)"""
    x0 = off_kink(rng, (3, 4))
    x = mdl.tensor(x0, requires_grad=True)
    y = F.relu(x) if fn_name == "relu" else F.leaky_relu(x, 0.2)
    with mdl.no_grad():
        x.mul_(-1)
    y.backward(mdl.ones(3, 4))
    np.testing.assert_array_equal(x.grad.numpy(), np.where(x0 > 0, 1.0, 0.0 if fn_name == "relu" else 0.2))


@pytest.mark.parametrize("fn_name", ["relu", "leaky_relu"])
def test_inplace_without_grad_writes_into_input(rng, fn_name):
    x = mdl.tensor(off_kink(rng, (3, 4)))
    expected = getattr(F, fn_name)(x).numpy()
    out = getattr(F, fn_name)(x, inplace=True)
    assert out is x
    np.testing.assert_array_equal(x.numpy(), expected)


SOFTMAXES = ["softmax", "log_softmax"]


@pytest.mark.parametrize("name", SOFTMAXES)
@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_softmax_gradcheck_every_dim(rng, name, ndim):
    x = tensor64(rng, *random_shape(rng, ndim))
    for dim in range(-ndim, ndim):
        assert mdl.gradcheck(lambda t: getattr(F, name)(t, dim=dim), [x])


@pytest.mark.parametrize("name", SOFTMAXES)
def test_softmax_matches_torch_every_dim(rng, torch, device, name):
    x = rng.standard_normal((2, 3, 4, 5)) * 4
    for dim in range(-4, 4):
        gy = rng.standard_normal(x.shape)
        xm = mdl.tensor(x, requires_grad=True, device=device)
        y = getattr(F, name)(xm, dim=dim)
        y.backward(mdl.tensor(gy, device=device))
        xt = torch.tensor(x, requires_grad=True)
        yt = getattr(torch.nn.functional, name)(xt, dim=dim)
        yt.backward(torch.tensor(gy))
        np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name", SOFTMAXES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_large_logits_stable(rng, torch, name, dtype):
    x = (rng.standard_normal((4, 6)) * 1e4).astype(dtype)
    x[0] = [1e4, 1e4, -1e4, 0, 5e3, 1e4 - 1]
    gy = rng.standard_normal(x.shape).astype(dtype)
    xm = mdl.tensor(x, requires_grad=True)
    with np.errstate(over="raise", invalid="raise"):
        y = getattr(F, name)(xm, dim=1)
        y.backward(mdl.tensor(gy))
    xt = torch.tensor(x, requires_grad=True)
    yt = getattr(torch.nn.functional, name)(xt, dim=1)
    yt.backward(torch.tensor(gy))
    assert y.dtype == dtype and np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(xm.grad.numpy()))
    rtol = 1e-6 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=rtol, atol=1e-30)
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=rtol, atol=1e-6)


def test_softmax_rows_sum_to_one(rng):
    y = F.softmax(mdl.tensor(rng.standard_normal((5, 7))), dim=1)
    np.testing.assert_allclose(y.numpy().sum(axis=1), np.ones(5), rtol=1e-12)


@pytest.mark.parametrize("name", SOFTMAXES)
def test_softmax_dim_errors(name):
    x = mdl.zeros(2, 3)
    with pytest.raises(TypeError, match=f"{name}: dim must be given"):
        getattr(F, name)(x)
    with pytest.raises(IndexError, match=rf"{name}: dim 2 out of range for input of shape \(2, 3\)"):
        getattr(F, name)(x, dim=2)
