"""Reductions: gradcheck on random shapes and axes, and agreement with PyTorch."""
import warnings

import numpy as np
import pytest
from conftest import compare_with_torch

import minidl as mdl


def _random_case(rng):
    ndim = int(rng.integers(1, 4))
    shape = tuple(int(s) for s in rng.integers(2, 5, size=ndim))
    axis = int(rng.integers(0, ndim))
    return shape, axis, bool(rng.integers(0, 2))


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("op", ["sum", "mean", "var"])
def test_reduction_gradcheck_and_torch(op, case, rng, torch):
    shape, axis, keep = _random_case(rng)
    a = rng.standard_normal(shape)
    fn = lambda x: getattr(x, op)(dim=axis, keepdim=keep)  # noqa: E731 - same call in both libraries
    assert mdl.gradcheck(fn, [mdl.tensor(a, requires_grad=True)])
    compare_with_torch(torch, fn, fn, [a], rng)


@pytest.mark.parametrize("op", ["sum", "mean"])
def test_full_and_multi_axis_reductions(op, rng, torch):
    a = rng.standard_normal((2, 3, 4))
    compare_with_torch(torch, lambda x: getattr(x, op)(), lambda t: getattr(t, op)(), [a], rng)
    compare_with_torch(torch, lambda x: getattr(x, op)(axis=(0, 2)), lambda t: getattr(t, op)(dim=(0, 2)), [a], rng)


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_with_dim_match_torch(op, rng, torch):
    a = rng.permutation(24).reshape(2, 3, 4).astype(np.float64)  # distinct values: no ties
    compare_with_torch(torch, lambda x: getattr(x, op)(dim=1).values, lambda t: getattr(t, op)(dim=1).values,
                       [a], rng)
    compare_with_torch(torch, lambda x: getattr(x, op)(), lambda t: getattr(t, op)(), [a], rng)
    assert mdl.gradcheck(lambda x: getattr(x, op)(axis=2, keepdims=True), [mdl.tensor(a, requires_grad=True)])


def test_max_shares_gradient_among_ties_like_torch_amax(torch):
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    x = mdl.tensor(a, requires_grad=True)
    x.max(axis=1).backward(np.array([1.0, 4.0]))
    t = torch.tensor(a, requires_grad=True)
    t.amax(dim=1).backward(torch.tensor([1.0, 4.0]))
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy())


def test_var_correction_options(rng):
    a = rng.standard_normal((5, 3))
    x = mdl.tensor(a)
    np.testing.assert_allclose(x.var(axis=0, unbiased=False).numpy(), a.var(axis=0))
    np.testing.assert_allclose(x.var(axis=0, correction=2).numpy(), a.var(axis=0, ddof=2))
    with pytest.raises(ValueError, match="only one"):
        x.var(unbiased=True, ddof=0)


def test_max_with_dim_values_gradcheck(rng):
    a = rng.permutation(12).reshape(3, 4).astype(np.float64)
    assert mdl.gradcheck(lambda t: t.max(dim=1).values * 2, [mdl.tensor(a, requires_grad=True)])
    assert mdl.gradcheck(lambda t: t.min(dim=0, keepdim=True).values, [mdl.tensor(a, requires_grad=True)])


def test_var_and_std_of_one_element_are_nan_forward_and_backward_like_torch(torch):
    """n - correction = 0: nothing to measure the spread with. PyTorch gives nan (with a warning) both ways."""
    for name in ("var", "std"):
        grads = []
        for lib in (mdl, torch):
            x = lib.tensor([1.5], dtype=lib.float64, requires_grad=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y = getattr(x, name)()
                y.backward()
            assert np.isnan(y.item())
            grads.append(x.grad.tolist())
        assert np.isnan(grads[0]).all() and np.isnan(grads[1]).all()
