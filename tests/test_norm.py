"""batch_norm: training (batch statistics, running-stat updates) and eval (running statistics).

Inputs are random normals of randomized (N, C, *) shapes; gradients are checked by finite differences in
float64 and against PyTorch with a random upstream gradient; running statistics are compared with PyTorch's
over several steps.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import tensor64

import minidl as mdl
import minidl.nn.functional as F

SHAPES = [(4, 3), (3, 2, 5), (2, 3, 3, 4), (2, 2, 2, 3, 2)]


def random_config(rng, ndim):
    """A random (N, C, *) shape with at least 2 values per channel."""
    shape = (int(rng.integers(2, 5)), int(rng.integers(1, 4))) + tuple(int(n) for n in rng.integers(1, 4, ndim - 2))
    return shape


def stats(rng, C):
    return rng.standard_normal(C), rng.random(C) + 0.5


@pytest.mark.parametrize("ndim", [2, 3, 4])
@pytest.mark.parametrize("affine", [True, False])
def test_training_gradcheck(rng, ndim, affine):
    shape = random_config(rng, ndim)
    C = shape[1]
    x = tensor64(rng, *shape)
    W, b = (tensor64(rng, C), tensor64(rng, C)) if affine else (None, None)
    rm, rv = stats(rng, C)
    inputs = [x] + ([W, b] if affine else [])

    def fn(x, W=None, b=None):
        # fresh running statistics each call: the op updates them in place
        return F.batch_norm(x, mdl.tensor(rm.copy()), mdl.tensor(rv.copy()), W, b, training=True,
                            momentum=0.3, eps=1e-3)
    assert mdl.gradcheck(fn, inputs)


@pytest.mark.parametrize("ndim", [2, 3, 4])
def test_training_without_running_stats_gradcheck(rng, ndim):
    shape = random_config(rng, ndim)
    x, W, b = tensor64(rng, *shape), tensor64(rng, shape[1]), tensor64(rng, shape[1])
    assert mdl.gradcheck(lambda x, W, b: F.batch_norm(x, None, None, W, b, training=True), [x, W, b])


@pytest.mark.parametrize("ndim", [2, 3, 4])
@pytest.mark.parametrize("affine", [True, False])
def test_eval_gradcheck(rng, ndim, affine):
    shape = random_config(rng, ndim)
    C = shape[1]
    x = tensor64(rng, *shape)
    rm, rv = (mdl.tensor(a) for a in stats(rng, C))
    if affine:
        W, b = tensor64(rng, C), tensor64(rng, C)
        assert mdl.gradcheck(lambda x, W, b: F.batch_norm(x, rm, rv, W, b, training=False), [x, W, b])
    else:
        assert mdl.gradcheck(lambda x: F.batch_norm(x, rm, rv, training=False), [x])


def _run_both(torch, rng, shape, training, affine, momentum, eps, device="cpu", steps=1, with_stats=True):
    """Run minidl and PyTorch side by side for ``steps`` batches; compare output, grads and running stats."""
    C = shape[1]
    W, b = rng.standard_normal(C), rng.standard_normal(C)
    rm, rv = stats(rng, C)
    rm_m, rv_m = (mdl.tensor(rm, device=device), mdl.tensor(rv, device=device)) if with_stats else (None, None)
    rm_t, rv_t = (torch.tensor(rm), torch.tensor(rv)) if with_stats else (None, None)
    for _ in range(steps):
        x = rng.standard_normal(shape) * 2 + 1
        gy = rng.standard_normal(shape)
        xm = mdl.tensor(x, requires_grad=True, device=device)
        Wm, bm = (mdl.tensor(W, requires_grad=True, device=device), mdl.tensor(b, requires_grad=True, device=device)) \
            if affine else (None, None)
        y = F.batch_norm(xm, rm_m, rv_m, Wm, bm, training=training, momentum=momentum, eps=eps)
        y.backward(mdl.tensor(gy, device=device))
        xt = torch.tensor(x, requires_grad=True)
        Wt, bt = (torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)) if affine else (None, None)
        yt = torch.nn.functional.batch_norm(xt, rm_t, rv_t, Wt, bt, training=training, momentum=momentum, eps=eps)
        yt.backward(torch.tensor(gy))
        np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-6, atol=1e-10)
        np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-10)
        if affine:
            np.testing.assert_allclose(Wm.grad.numpy(), Wt.grad.numpy(), rtol=1e-6, atol=1e-10)
            np.testing.assert_allclose(bm.grad.numpy(), bt.grad.numpy(), rtol=1e-6, atol=1e-10)
        if with_stats:
            np.testing.assert_allclose(rm_m.numpy(), rm_t.numpy(), rtol=1e-6, atol=1e-12)
            np.testing.assert_allclose(rv_m.numpy(), rv_t.numpy(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_matches_torch(rng, torch, device, shape, training, affine):
    _run_both(torch, rng, shape, training, affine, momentum=0.1, eps=1e-5, device=device)


@pytest.mark.parametrize("momentum,eps", [(0.0, 1e-5), (0.5, 1e-3), (1.0, 0.1)])
def test_matches_torch_momentum_eps(rng, torch, momentum, eps):
    _run_both(torch, rng, (5, 3, 4), True, True, momentum, eps, steps=2)
    _run_both(torch, rng, (5, 3, 4), False, True, momentum, eps)


def test_training_without_running_stats_matches_torch(rng, torch):
    _run_both(torch, rng, (4, 3, 2, 2), True, True, 0.1, 1e-5, with_stats=False)


@pytest.mark.parametrize("shape", [(8, 3), (4, 2, 3, 3)])
def test_running_stats_follow_torch_over_steps(rng, torch, shape):
    _run_both(torch, rng, shape, True, True, momentum=0.2, eps=1e-5, steps=5)


def test_running_stats_update_in_place_with_unbiased_variance(rng):
    x = rng.standard_normal((6, 2, 3))
    rm, rv = mdl.zeros(2, dtype=mdl.float64), mdl.ones(2, dtype=mdl.float64)
    rm_array = rm.array
    with mdl.no_grad():
        F.batch_norm(mdl.tensor(x), rm, rv, training=True, momentum=0.25)
    assert rm.array is rm_array
    np.testing.assert_allclose(rm.numpy(), 0.25 * x.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.75 + 0.25 * x.var(axis=(0, 2), ddof=1), rtol=1e-12)


def test_training_output_has_zero_mean_unit_variance(rng):
    x = mdl.tensor(rng.standard_normal((16, 3, 5)) * 4 + 2)
    y = F.batch_norm(x, None, None, training=True, eps=1e-12).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2)), 1, rtol=1e-9)


def test_eval_does_not_touch_running_stats(rng):
    rm, rv = mdl.tensor(rng.standard_normal(3)), mdl.tensor(rng.random(3) + 1)
    before = rm.numpy(), rv.numpy()
    F.batch_norm(mdl.tensor(rng.standard_normal((4, 3))), rm, rv, training=False)
    np.testing.assert_array_equal(rm.numpy(), before[0])
    np.testing.assert_array_equal(rv.numpy(), before[1])


@pytest.mark.parametrize("training", [True, False])
def test_float32_stays_float32(rng, training):
    x = mdl.tensor(rng.standard_normal((4, 3, 2)).astype(np.float32), requires_grad=True)
    W, b = mdl.ones(3, requires_grad=True), mdl.zeros(3, requires_grad=True)
    rm, rv = mdl.zeros(3), mdl.ones(3)
    y = F.batch_norm(x, rm, rv, W, b, training=training)
    y.backward(mdl.tensor(rng.standard_normal(y.shape).astype(np.float32)))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32 and W.grad.dtype == np.float32
    assert rm.dtype == np.float32 and rv.dtype == np.float32


# ----------------------------------------------------------------------------------------- errors
def test_error_one_value_per_channel():
    with pytest.raises(ValueError, match=r"batch_norm: Expected more than 1 value per channel when training, "
                                         r"got input size \(1, 3\)"):
        F.batch_norm(mdl.zeros(1, 3), mdl.zeros(3), mdl.ones(3), training=True)
    with pytest.raises(ValueError, match=r"got input size \(1, 2, 1, 1\)"):
        F.batch_norm(mdl.zeros(1, 2, 1, 1), None, None, training=True)
    F.batch_norm(mdl.zeros(1, 3), mdl.zeros(3), mdl.ones(3), training=False)  # eval mode is fine


@pytest.mark.parametrize("name", ["running_mean", "running_var", "weight", "bias"])
def test_error_wrong_channel_count(name):
    args = dict(running_mean=mdl.zeros(3), running_var=mdl.ones(3), weight=mdl.ones(3), bias=mdl.zeros(3))
    args[name] = mdl.zeros(4)
    with pytest.raises(ValueError, match=rf"batch_norm: expected {name} of shape \(3,\).*input of shape "
                                         rf"\(2, 3, 5\), got {name} of shape \(4,\)"):
        F.batch_norm(mdl.zeros(2, 3, 5), args["running_mean"], args["running_var"], args["weight"], args["bias"],
                     training=True)


def test_error_eval_without_running_stats():
    with pytest.raises(RuntimeError, match="batch_norm: running_mean must be defined in evaluation mode"):
        F.batch_norm(mdl.zeros(2, 3), None, None, training=False)


def test_error_only_one_running_stat():
    with pytest.raises(ValueError, match="batch_norm: running_mean and running_var must either both be None"):
        F.batch_norm(mdl.zeros(2, 3), mdl.zeros(3), None, training=True)


def test_error_dtype_mismatch():
    with pytest.raises(TypeError, match="batch_norm: running_mean has dtype float32 but input has dtype float64"):
        F.batch_norm(mdl.zeros(2, 3, dtype=mdl.float64), mdl.zeros(3), mdl.ones(3), training=True)


def test_error_rank_and_eps():
    with pytest.raises(ValueError, match=r"batch_norm: expected input of 2 or more dims \(N, C, \*\), got input "
                                         r"of shape \(3,\)"):
        F.batch_norm(mdl.zeros(3), mdl.zeros(3), mdl.ones(3))
    with pytest.raises(ValueError, match="batch_norm: eps must be positive during training, but got 0"):
        F.batch_norm(mdl.zeros(2, 3), None, None, training=True, eps=0)


def test_empty_batch_matches_torch(torch):
    """Training on 0 samples: an empty output, zero weight and bias gradients, running statistics kept."""
    import torch.nn.functional as TF
    x = mdl.tensor(np.zeros((0, 3, 4, 4)), requires_grad=True)
    W, b = mdl.tensor(np.ones(3), requires_grad=True), mdl.tensor(np.zeros(3), requires_grad=True)
    rm, rv = mdl.tensor(np.full(3, 0.5)), mdl.tensor(np.full(3, 2.0))
    y = F.batch_norm(x, rm, rv, W, b, training=True)
    y.sum().backward()
    xt = torch.zeros(0, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    Wt = torch.ones(3, dtype=torch.float64, requires_grad=True)
    bt = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    rmt, rvt = torch.full((3,), 0.5, dtype=torch.float64), torch.full((3,), 2.0, dtype=torch.float64)
    yt = TF.batch_norm(xt, rmt, rvt, Wt, bt, training=True)
    yt.sum().backward()
    assert y.shape == tuple(yt.shape) and x.grad.shape == tuple(xt.grad.shape)
    np.testing.assert_array_equal(W.grad.numpy(), Wt.grad.numpy())
    np.testing.assert_array_equal(b.grad.numpy(), bt.grad.numpy())
    np.testing.assert_array_equal(rm.numpy(), rmt.numpy())
    np.testing.assert_array_equal(rv.numpy(), rvt.numpy())
