"""Elementwise ops with broadcasting: gradcheck, and forward/backward against PyTorch."""
import numpy as np
import pytest
from conftest import compare_with_torch, tensor64

import minidl as mdl

# Pairs of broadcast-compatible shapes, including a scalar-like and a leading-axis broadcast.
SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((4,), (2, 3, 4)), ((2, 1, 3), (2, 4, 1))]

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", SHAPES)
def test_binary_gradcheck(name, shapes, rng):
    a, b = tensor64(rng, *shapes[0]), tensor64(rng, *shapes[1])
    if name == "div":
        b = mdl.tensor(np.sign(b.numpy()) * (np.abs(b.numpy()) + 0.5), requires_grad=True)
    assert mdl.gradcheck(BINARY[name], [a, b])


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", SHAPES)
def test_binary_matches_torch(name, shapes, rng, torch):
    a, b = rng.standard_normal(shapes[0]), rng.uniform(0.5, 2.0, shapes[1])
    compare_with_torch(torch, BINARY[name], BINARY[name], [a, b], rng)


def test_scalar_operands_on_either_side(rng, torch):
    a = rng.uniform(0.5, 2.0, (3, 4))
    for fn in (lambda x: 2.0 - x, lambda x: 3.0 / x, lambda x: x ** 2.5, lambda x: 2.0 ** x, lambda x: -x * 1.5):
        compare_with_torch(torch, fn, fn, [a], rng)


UNARY = {
    "exp": (lambda x: x.exp(), lambda t: t.exp(), (-2, 2)),
    "log": (lambda x: x.log(), lambda t: t.log(), (0.5, 3)),
    "sqrt": (lambda x: x.sqrt(), lambda t: t.sqrt(), (0.5, 3)),
    "abs": (lambda x: x.abs(), lambda t: t.abs(), (0.2, 2)),
    "pow_tensor": (lambda x: x.pow(x), lambda t: t.pow(t), (0.5, 2)),
    "clip": (lambda x: x.clip(-0.5, 0.7), lambda t: t.clamp(-0.5, 0.7), (-2, 2)),
    "clip_min": (lambda x: x.clip(min=0.1), lambda t: t.clamp(min=0.1), (-2, 2)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradcheck_and_torch(name, rng, torch):
    fn, tfn, (lo, hi) = UNARY[name]
    shape = tuple(rng.integers(1, 5, size=rng.integers(1, 4)))
    a = rng.uniform(lo, hi, shape) * (rng.choice([-1, 1], shape) if name == "abs" else 1)
    if name.startswith("clip"):  # keep away from the clip edges, where the derivative jumps
        a = a[(np.abs(a + 0.5) > 0.05) & (np.abs(a - 0.7) > 0.05) & (np.abs(a - 0.1) > 0.05)]
    assert mdl.gradcheck(fn, [mdl.tensor(a, requires_grad=True)])
    compare_with_torch(torch, fn, tfn, [a], rng)


def test_where_routes_gradients(rng, torch):
    cond = rng.random((3, 4)) > 0.5
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4,))
    assert mdl.gradcheck(lambda x, y: mdl.where(mdl.tensor(cond), x, y),
                         [mdl.tensor(a, requires_grad=True), mdl.tensor(b, requires_grad=True)])
    compare_with_torch(torch, lambda x, y: mdl.where(mdl.tensor(cond), x, y),
                       lambda x, y: torch.where(torch.tensor(cond), x, y), [a, b], rng)


def test_mixed_float_dtypes_promote_like_torch():
    y = mdl.ones(2) + mdl.ones(2, dtype=mdl.float64)
    assert y.dtype == mdl.float64


def test_neg_gradcheck(rng):
    assert mdl.gradcheck(lambda t: -t, [tensor64(rng, 3, 2)])


def test_cast_round_trip_gradcheck_and_torch(rng, torch):
    # Through float32 and back: the gradient is the identity, rounded to float32 on the way.
    x = tensor64(rng, 4, 3)
    assert mdl.gradcheck(lambda t: t.float().double() * 3.0, [x], eps=1e-2, atol=1e-4)
    compare_with_torch(torch, lambda t: t.float() * 2, lambda t: t.float() * 2, [rng.standard_normal((3,))], rng,
                       rtol=1e-6, atol=1e-6)


def test_to_device_round_trip(device, rng):
    x = tensor64(rng, 3, device="cpu")
    y = x.to(device) * 2
    assert y.device == device
    y.backward(np.ones(3) if device == "cpu" else y.array * 0 + 1)
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 2.0))
