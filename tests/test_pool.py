"""max_pool2d, avg_pool2d, adaptive_avg_pool2d: finite-difference gradients, PyTorch forward/backward, errors.

Geometries are drawn at random from the ``rng`` fixture (seeded by the test name): batch, channels, image
size, kernel, stride, padding (at most half the kernel, as PyTorch requires), dilation, ceil_mode,
count_include_pad, divisor_override, output sizes.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import tensor64

import minidl as mdl
from minidl.ops.pool import _pool_output_size, adaptive_avg_pool2d, avg_pool2d, max_pool2d


def distinct64(rng, *shape) -> mdl.Tensor:
    """A float64 input whose values are all different and at least 0.01 apart, in random order.

    Max pooling has a kink wherever two elements of a window tie; finite differences with eps=1e-6 never
    cross one when no two values are closer than 0.01, so the inputs need no resampling.
    """
    values = (rng.permutation(int(np.prod(shape))) - np.prod(shape) / 2) * 0.01
    return mdl.tensor(values.reshape(shape), requires_grad=True)


def pool_config(rng, dilation: bool = True) -> dict:
    """A random pooling geometry with every window holding at least one real input element."""
    while True:
        N, C = (int(v) for v in rng.integers(1, 3, size=2))
        H, W = (int(v) for v in rng.integers(2, 8, size=2))
        k = tuple(int(v) for v in rng.integers(1, 4, size=2))
        s = tuple(int(v) for v in rng.integers(1, 4, size=2))
        p = tuple(int(rng.integers(0, ki // 2 + 1)) for ki in k)
        d = tuple(int(v) for v in rng.integers(1, 3, size=2)) if dilation else (1, 1)
        ceil_mode = bool(rng.integers(2))
        out = [_pool_output_size(n, ki, si, pi, di, ceil_mode) for n, ki, si, pi, di in zip((H, W), k, s, p, d)]
        # every window needs a tap inside the input (else its max is -inf, as in PyTorch)
        if min(out) >= 1 and all(any(0 <= o * si - pi + j * di < n for j in range(ki))
                                 for n, ki, si, pi, di, on in zip((H, W), k, s, p, d, out) for o in range(on)):
            kwargs = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil_mode)
            if dilation:
                kwargs["dilation"] = d
            return dict(shape=(N, C, H, W), kwargs=kwargs)


def avg_config(rng) -> dict:
    cfg = pool_config(rng, dilation=False)
    cfg["kwargs"].update(count_include_pad=bool(rng.integers(2)),
                         divisor_override=[None, int(rng.integers(1, 6))][rng.integers(2)])
    return cfg


def compare_with_torch(torch, rng, x, fn, torch_fn, kwargs):
    """Forward and, with one random upstream gradient, the input gradient equal PyTorch's (float64)."""
    y = fn(x, **kwargs)
    tx = torch.tensor(x.numpy(), requires_grad=True)
    ty = torch_fn(tx, **kwargs)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-6, atol=1e-12)
    gy = rng.standard_normal(y.shape)
    y.backward(mdl.tensor(gy))
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-12)


# ----------------------------------------------------------------------------------- max_pool2d


@pytest.mark.parametrize("case", range(8))
def test_max_pool2d_gradcheck(rng, case):
    cfg = pool_config(rng)
    assert mdl.gradcheck(lambda x: max_pool2d(x, **cfg["kwargs"]), [distinct64(rng, *cfg["shape"])])


@pytest.mark.parametrize("case", range(12))
def test_max_pool2d_matches_torch(torch, rng, case):
    """Values, int64 indices (flat positions in each H*W plane) and the gradient equal PyTorch's."""
    cfg = pool_config(rng)
    x = distinct64(rng, *cfg["shape"])
    y, idx = max_pool2d(x, **cfg["kwargs"], return_indices=True)
    ty, tidx = torch.nn.functional.max_pool2d(torch.tensor(x.numpy()), **cfg["kwargs"], return_indices=True)
    assert idx.dtype == np.int64 and not idx.requires_grad
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    np.testing.assert_array_equal(y.numpy(), ty.numpy())
    compare_with_torch(torch, rng, x, max_pool2d, torch.nn.functional.max_pool2d, cfg["kwargs"])


@pytest.mark.parametrize("shape", [(2, 3, 8, 6), (1, 2, 7, 5)], ids=["even", "odd"])
def test_max_pool2d_2x2_gradchecks_and_matches_torch(torch, rng, shape):
    """2x2 windows at stride 2, the seed nets' pooling, which the fast kernel runs on a path of its own (on odd
    sizes the last row and column are not read); and ties there pick the first maximum, as PyTorch's do."""
    kwargs = dict(kernel_size=2, stride=2)
    assert mdl.gradcheck(lambda t: max_pool2d(t, **kwargs), [distinct64(rng, *shape)])
    x = distinct64(rng, *shape)
    y, idx = max_pool2d(x, **kwargs, return_indices=True)
    ty, tidx = torch.nn.functional.max_pool2d(torch.tensor(x.numpy()), **kwargs, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    np.testing.assert_array_equal(y.numpy(), ty.numpy())
    compare_with_torch(torch, rng, x, max_pool2d, torch.nn.functional.max_pool2d, kwargs)
    ties = mdl.tensor(rng.integers(0, 2, size=shape).astype(np.float64))
    _, idx = max_pool2d(ties, **kwargs, return_indices=True)
    _, tidx = torch.nn.functional.max_pool2d(torch.tensor(ties.numpy()), **kwargs, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())


def test_max_pool2d_ties_pick_the_first_like_torch(torch, rng):
    """With many equal values, the index (and so the gradient) goes to the first maximum in the window."""
    x = mdl.tensor(rng.integers(0, 2, size=(2, 3, 7, 6)).astype(np.float64), requires_grad=True)
    kwargs = dict(kernel_size=3, stride=2, padding=1, dilation=(1, 2), ceil_mode=True)
    _, idx = max_pool2d(x, **kwargs, return_indices=True)
    _, tidx = torch.nn.functional.max_pool2d(torch.tensor(x.numpy()), **kwargs, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    compare_with_torch(torch, rng, x, max_pool2d, torch.nn.functional.max_pool2d, kwargs)


def test_max_pool2d_gradcheck_with_indices_and_unbatched_input(torch, rng):
    """A (C, H, W) input gives (C, OH, OW) values and indices; the indices carry no gradient."""
    x = distinct64(rng, 3, 6, 5)
    kwargs = dict(kernel_size=(3, 2), stride=(2, 1), padding=1, return_indices=True)
    y, idx = max_pool2d(x, **kwargs)
    ty, tidx = torch.nn.functional.max_pool2d(torch.tensor(x.numpy()), **kwargs)
    assert y.shape == tuple(ty.shape) and idx.shape == tuple(tidx.shape)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    assert mdl.gradcheck(lambda t: max_pool2d(t, **kwargs), [x])


def test_max_pool2d_stride_defaults_to_kernel_size(rng):
    x = distinct64(rng, 1, 2, 6, 6)
    np.testing.assert_array_equal(max_pool2d(x, 3).numpy(), max_pool2d(x, 3, stride=3).numpy())


# ----------------------------------------------------------------------------------- avg_pool2d


@pytest.mark.parametrize("case", range(8))
def test_avg_pool2d_gradcheck(rng, case):
    cfg = avg_config(rng)
    assert mdl.gradcheck(lambda x: avg_pool2d(x, **cfg["kwargs"]), [tensor64(rng, *cfg["shape"])])


@pytest.mark.parametrize("case", range(12))
def test_avg_pool2d_matches_torch(torch, rng, case):
    cfg = avg_config(rng)
    compare_with_torch(torch, rng, tensor64(rng, *cfg["shape"]), avg_pool2d, torch.nn.functional.avg_pool2d,
                       cfg["kwargs"])


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("divisor_override", [None, 3])
@pytest.mark.parametrize("ceil_mode", [True, False])
def test_avg_pool2d_divisor_rules_match_torch(torch, rng, ceil_mode, divisor_override, count_include_pad):
    """A 6x7 input with kernel 3, stride 2, padding 1: with ceil_mode the last windows run past the padded
    edge, where PyTorch counts the padding but not what lies beyond it."""
    kwargs = dict(kernel_size=3, stride=2, padding=1, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                  divisor_override=divisor_override)
    compare_with_torch(torch, rng, tensor64(rng, 2, 2, 6, 7), avg_pool2d, torch.nn.functional.avg_pool2d, kwargs)


def test_avg_pool2d_unbatched_input(torch, rng):
    compare_with_torch(torch, rng, tensor64(rng, 3, 5, 6), avg_pool2d, torch.nn.functional.avg_pool2d,
                       dict(kernel_size=2, stride=1, padding=1, count_include_pad=False))


# ----------------------------------------------------------------------------------- adaptive_avg_pool2d


def adaptive_config(rng) -> dict:
    """A random input and output size: below, equal to or above the input size, an int, a pair, or None."""
    H, W = (int(v) for v in rng.integers(1, 8, size=2))
    OH, OW = int(rng.integers(1, H + 3)), int(rng.integers(1, W + 3))
    output_size = [OH, (OH, OW), (None, OW), (OH, None)][rng.integers(4)]
    return dict(shape=(int(rng.integers(1, 3)), int(rng.integers(1, 3)), H, W), output_size=output_size)


@pytest.mark.parametrize("case", range(8))
def test_adaptive_avg_pool2d_gradcheck(rng, case):
    cfg = adaptive_config(rng)
    assert mdl.gradcheck(lambda x: adaptive_avg_pool2d(x, cfg["output_size"]), [tensor64(rng, *cfg["shape"])])


@pytest.mark.parametrize("case", range(12))
def test_adaptive_avg_pool2d_matches_torch(torch, rng, case):
    cfg = adaptive_config(rng)
    compare_with_torch(torch, rng, tensor64(rng, *cfg["shape"]), adaptive_avg_pool2d,
                       torch.nn.functional.adaptive_avg_pool2d, dict(output_size=cfg["output_size"]))


def test_adaptive_avg_pool2d_unbatched_input(torch, rng):
    compare_with_torch(torch, rng, tensor64(rng, 2, 7, 5), adaptive_avg_pool2d,
                       torch.nn.functional.adaptive_avg_pool2d, dict(output_size=(3, None)))


# ----------------------------------------------------------------------------------- dtypes and errors


@pytest.mark.parametrize("pool", [lambda x: max_pool2d(x, 2), lambda x: avg_pool2d(x, 3, 2, 1, ceil_mode=True),
                                  lambda x: adaptive_avg_pool2d(x, (3, 2))], ids=["max", "avg", "adaptive"])
def test_float32_stays_float32(pool, rng):
    x = mdl.tensor(rng.standard_normal((2, 3, 7, 6)).astype(np.float32), requires_grad=True)
    y = pool(x)
    y.backward(mdl.tensor(rng.standard_normal(y.shape).astype(np.float32)))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    expected = pool(mdl.tensor(x.numpy().astype(np.float64)))
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def t(*shape, dtype=np.float32):
    return mdl.tensor(np.zeros(shape, dtype=dtype))


@pytest.mark.parametrize("call, error, fragments", [
    (lambda: max_pool2d(t(4, 4), 2), ValueError, ["max_pool2d", "input", "(4, 4)"]),
    (lambda: max_pool2d(t(1, 2, 5, 5), 2, padding=2), ValueError,
     ["max_pool2d", "padding (2, 2)", "kernel_size (2, 2)"]),
    (lambda: max_pool2d(t(1, 2, 1, 1), 2), ValueError, ["max_pool2d", "(1, 2, 1, 1)", "0x0"]),
    (lambda: max_pool2d(t(1, 2, 5, 5), 2, stride=0), ValueError, ["max_pool2d", "stride", "(0, 0)"]),
    (lambda: max_pool2d(t(1, 2, 5, 5), 2, dilation=0), ValueError, ["max_pool2d", "dilation"]),
    (lambda: max_pool2d(t(1, 2, 5, 5, dtype=np.int64), 2), TypeError, ["max_pool2d", "int64", "(1, 2, 5, 5)"]),
    (lambda: avg_pool2d(t(2, 1, 5, 5, 5), 2), ValueError, ["avg_pool2d", "(2, 1, 5, 5, 5)"]),
    (lambda: avg_pool2d(t(1, 2, 5, 5), 3, padding=2), ValueError, ["avg_pool2d", "padding (2, 2)"]),
    (lambda: avg_pool2d(t(1, 2, 5, 5), 2, divisor_override=0), ValueError, ["avg_pool2d", "divisor_override"]),
    (lambda: avg_pool2d(t(1, 2, 2, 2), 3, padding=0), ValueError, ["avg_pool2d", "(1, 2, 2, 2)"]),
    (lambda: adaptive_avg_pool2d(t(1, 2, 5, 5), (2, 3, 4)), ValueError, ["adaptive_avg_pool2d", "output_size"]),
    (lambda: adaptive_avg_pool2d(t(1, 2, 5, 5), -1), ValueError, ["adaptive_avg_pool2d", "output_size"]),
    (lambda: adaptive_avg_pool2d(t(5, 5), 2), ValueError, ["adaptive_avg_pool2d", "(5, 5)"]),
])
def test_bad_arguments_raise_naming_op_and_shapes(call, error, fragments):
    with pytest.raises(error) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value)
