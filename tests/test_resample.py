"""pad (constant, reflect, replicate, circular) and interpolate (nearest, nearest-exact, linear family).

Inputs are random normals. Every mode is compared with PyTorch forward and backward in float64 with a random
upstream gradient (positive, negative and mixed pads; sizes and integer, fractional and per-axis scale
factors), and gradients are checked by finite differences on randomized shapes and pads.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import tensor64

import minidl as mdl
import minidl.nn.functional as F


def compare(torch, rng, m_fn, t_fn, x, device="cpu", backward=True):
    """Run both libraries on x; compare output and input gradient (random upstream gradient)."""
    xm = mdl.tensor(x, requires_grad=True, device=device)
    xt = torch.tensor(x, requires_grad=True)
    y, yt = m_fn(xm), t_fn(xt)
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-6, atol=1e-12)
    if not backward:
        return y
    gy = rng.standard_normal(y.shape)
    y.backward(mdl.tensor(gy, device=device))
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-12)
    return y


# ----------------------------------------------------------------------------------------- pad
PAD_CASES = [
    ("constant", (2, 3, 5), (1, 2)),
    ("constant", (2, 2, 4, 5), (2, 0, 1, 3)),
    ("constant", (2, 2, 4, 5), (-1, 2, 0, -2)),
    ("constant", (1, 2, 3, 4, 3), (1, 1, 1, 1, 1, 1)),
    ("constant", (2, 2, 4, 5), (0, 0, 2, 1, 1, 0, 0, 1)),
    ("constant", (3, 4), (-3, -1)),
    ("reflect", (2, 3, 5), (4, 2)),
    ("reflect", (3, 5), (1, 3)),
    ("reflect", (2, 2, 4, 5), (1, 3, 3, 2)),
    ("reflect", (2, 4, 5), (-2, 3, 1, -1)),
    ("reflect", (1, 2, 3, 4, 3), (1, 2, 2, 1, 0, 2)),
    ("replicate", (2, 3, 5), (3, 6)),
    ("replicate", (2, 2, 4, 5), (1, 3, 5, 0)),
    ("replicate", (2, 2, 4, 5), (-2, 3, 2, -3)),
    ("replicate", (1, 2, 3, 4, 3), (2, 1, 1, 3, 2, 2)),
    ("circular", (2, 3, 5), (5, 2)),
    ("circular", (2, 2, 4, 5), (1, 3, 4, 2)),
    ("circular", (2, 4, 5), (-2, 3, 1, -1)),
    ("circular", (1, 2, 3, 4, 3), (1, 2, 3, 1, 0, 2)),
]


@pytest.mark.parametrize("mode,shape,pads", PAD_CASES, ids=[f"{m}-{len(s)}d-{p}" for m, s, p in PAD_CASES])
def test_pad_matches_torch(rng, torch, device, mode, shape, pads):
    x = rng.standard_normal(shape)
    compare(torch, rng, lambda t: F.pad(t, pads, mode=mode), lambda t: torch.nn.functional.pad(t, pads, mode=mode),
            x, device)


@pytest.mark.parametrize("value", [0.0, 1.5, -3.0])
def test_pad_constant_value_matches_torch(rng, torch, value):
    x = rng.standard_normal((2, 3, 4))
    compare(torch, rng, lambda t: F.pad(t, (2, -1, 1, 1), value=value),
            lambda t: torch.nn.functional.pad(t, (2, -1, 1, 1), value=value), x)


def random_pads(rng, mode, k):
    """k random (before, after) pairs, negative ones included, valid for ``mode`` on sizes >= 4."""
    low = -2 if mode == "constant" else -1
    return tuple(int(p) for p in rng.integers(low, 3, 2 * k))


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_pad_gradcheck(rng, mode, k):
    shape = tuple(int(n) for n in rng.integers(1, 3, int(rng.integers(1, 3)))) + \
        tuple(int(n) for n in rng.integers(4, 6, k))
    x = tensor64(rng, *shape)
    pads = random_pads(rng, mode, k)
    assert mdl.gradcheck(lambda t: F.pad(t, pads, mode=mode, value=0.5 if mode == "constant" else None), [x])


def test_pad_examples_and_dtype():
    x = mdl.arange(4.0).reshape(1, 4)
    assert F.pad(x, (2, 2), mode="reflect").tolist() == [[2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0, 1.0]]
    assert F.pad(x, (2, 2), mode="replicate").tolist() == [[0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 3.0, 3.0]]
    assert F.pad(x, (2, 2), mode="circular").tolist() == [[2.0, 3.0, 0.0, 1.0, 2.0, 3.0, 0.0, 1.0]]
    assert F.pad(x, (1, -2), value=9.0).tolist() == [[9.0, 0.0, 1.0]]
    for mode in ("constant", "reflect", "replicate", "circular"):
        assert F.pad(x, (1, 1), mode=mode).dtype == np.float32


def test_pad_zero_pads_copy_the_input():
    x = mdl.ones(2, 3, 4)
    for mode in ("constant", "reflect"):
        y = F.pad(x, (0, 0), mode=mode)
        y.array[...] = 5
        assert x.numpy().max() == 1


def test_pad_errors():
    x = mdl.zeros(1, 2, 4)
    with pytest.raises(ValueError, match=r"pad: padding length must be divisible by 2, got pad \(1,\)"):
        F.pad(x, (1,))
    with pytest.raises(ValueError, match=r"pad: padding length should be less than or equal to two times the input "
                                         r"dimension but got padding length 8 and input of shape \(1, 2, 4\)"):
        F.pad(x, (1,) * 8)
    with pytest.raises(TypeError, match="pad: argument 'pad' must be a tuple of ints"):
        F.pad(x, (1.0, 1))
    with pytest.raises(NotImplementedError, match="pad: unrecognised padding mode 'foo'"):
        F.pad(x, (1, 1), mode="foo")
    with pytest.raises(ValueError, match=r"pad: padding size should be less than the corresponding input dimension "
                                         r"for reflect padding, but got padding \(4, 0\) at dimension 2 of input of "
                                         r"shape \(1, 2, 4\)"):
        F.pad(x, (4, 0), mode="reflect")
    with pytest.raises(ValueError, match=r"pad: circular padding \(5, 0\) .* wrapping around more than once"):
        F.pad(x, (5, 0), mode="circular")
    with pytest.raises(ValueError, match="pad: padding mode 'replicate' doesn't take in value argument"):
        F.pad(x, (1, 1), mode="replicate", value=1.0)
    with pytest.raises(NotImplementedError, match=r"pad: padding size 2 is not supported for 1D input tensor "
                                                  r"\(shape \(4,\)\)"):
        F.pad(mdl.zeros(4), (1, 1), mode="reflect")
    with pytest.raises(ValueError, match=r"pad: the input size 4, plus negative padding -3 and -2, resulted in a "
                                         r"negative output size at dimension 2 of input of shape \(1, 2, 4\)"):
        F.pad(x, (-3, -2))
    with pytest.raises(ValueError, match=r"pad: input \(size 4\) is too small for padding \(-2, -2\)"):
        F.pad(x, (-2, -2), mode="replicate")


# ----------------------------------------------------------------------------------------- interpolate
NEAREST_SHAPES = [(2, 3, 5), (2, 2, 5, 7), (1, 2, 3, 4, 5)]
NEAREST_KWARGS = [dict(size=6), dict(size=3), dict(scale_factor=2), dict(scale_factor=3.0),
                  dict(scale_factor=1.5), dict(scale_factor=0.6), dict(scale_factor=1.05), dict(scale_factor=2.3),
                  dict(scale_factor=1.7, recompute_scale_factor=True)]


def torch_nearest_backward_disagrees_with_its_forward(shape, mode, kwargs) -> bool:
    """PyTorch 2.13's 1-D and 3-D 'nearest' backward (not its forward) copies when out == in and halves the index
    when out == 2 in, whatever the scale factor; where that differs from the forward's floor(j / scale_factor),
    PyTorch's gradient is not the gradient of its output (its own gradcheck fails), so it is no oracle there."""
    if mode != "nearest" or len(shape) == 4 or "scale_factor" not in kwargs or kwargs.get("recompute_scale_factor"):
        return False
    s = kwargs["scale_factor"]
    for n in shape[2:]:
        out = int(n * s)
        rule = np.floor(np.arange(out, dtype=np.float32) * np.float32(1.0 / s)).astype(int)
        if out in (n, 2 * n) and not np.array_equal(np.minimum(rule, n - 1), np.arange(out) // (out // n)):
            return True
    return False


@pytest.mark.parametrize("shape", NEAREST_SHAPES, ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("kwargs", NEAREST_KWARGS, ids=str)
def test_interpolate_nearest_matches_torch(rng, torch, device, shape, mode, kwargs):
    x = rng.standard_normal(shape)
    torch_grad_ok = not torch_nearest_backward_disagrees_with_its_forward(shape, mode, kwargs)
    compare(torch, rng, lambda t: F.interpolate(t, mode=mode, **kwargs),
            lambda t: torch.nn.functional.interpolate(t, mode=mode, **kwargs), x, device, backward=torch_grad_ok)
    if not torch_grad_ok:  # our gradient is checked against finite differences instead
        assert mdl.gradcheck(lambda t: F.interpolate(t, mode=mode, **kwargs), [tensor64(rng, *shape)])


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_interpolate_nearest_per_axis_sizes_and_factors(rng, torch, mode):
    for shape, kwargs in [((2, 2, 5, 7), dict(size=(9, 4))), ((2, 2, 5, 7), dict(scale_factor=(2, 0.7))),
                          ((1, 2, 3, 4, 5), dict(size=(2, 8, 5))), ((1, 2, 3, 4, 5), dict(scale_factor=(1.5, 2, 0.5)))]:
        compare(torch, rng, lambda t: F.interpolate(t, mode=mode, **kwargs),
                lambda t: torch.nn.functional.interpolate(t, mode=mode, **kwargs), rng.standard_normal(shape))


def test_interpolate_nearest_index_rule_sweep(torch):
    """Non-integer factors and sizes pick exactly PyTorch's pixels (arange inputs make any mix-up visible)."""
    rng = np.random.default_rng(0)
    for _ in range(150):
        spatial = tuple(int(n) for n in rng.integers(1, 10, int(rng.integers(1, 4))))
        x = np.arange(np.prod(spatial), dtype=np.float64).reshape((1, 1) + spatial)
        mode = ["nearest", "nearest-exact"][rng.integers(2)]
        kwargs = dict(scale_factor=float(np.round(rng.uniform(0.4, 3.5), 2))) if rng.random() < 0.6 else \
            dict(size=tuple(int(n) for n in rng.integers(1, 20, len(spatial))))
        try:
            expected = torch.nn.functional.interpolate(torch.tensor(x), mode=mode, **kwargs).numpy()
        except RuntimeError:  # an output size of 0
            continue
        np.testing.assert_array_equal(F.interpolate(mdl.tensor(x), mode=mode, **kwargs).numpy(), expected,
                                      err_msg=f"{mode} {spatial} {kwargs}")


LINEAR_CASES = [("linear", (2, 3, 5)), ("bilinear", (2, 2, 5, 7)), ("trilinear", (1, 2, 3, 4, 5))]
LINEAR_KWARGS = [dict(size=9), dict(size=3), dict(scale_factor=2), dict(scale_factor=1.7), dict(scale_factor=0.6),
                 dict(scale_factor=2.5, recompute_scale_factor=True)]


@pytest.mark.parametrize("mode,shape", LINEAR_CASES, ids=[c[0] for c in LINEAR_CASES])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("kwargs", LINEAR_KWARGS, ids=str)
def test_interpolate_linear_matches_torch(rng, torch, device, mode, shape, align_corners, kwargs):
    x = rng.standard_normal(shape)
    compare(torch, rng, lambda t: F.interpolate(t, mode=mode, align_corners=align_corners, **kwargs),
            lambda t: torch.nn.functional.interpolate(t, mode=mode, align_corners=align_corners, **kwargs), x, device)


@pytest.mark.parametrize("align_corners", [None, False, True])
def test_interpolate_bilinear_per_axis_and_default_align(rng, torch, align_corners):
    for kwargs in [dict(size=(3, 11)), dict(scale_factor=(2, 0.5)), dict(size=(5, 14))]:
        compare(torch, rng, lambda t: F.interpolate(t, mode="bilinear", align_corners=align_corners, **kwargs),
                lambda t: torch.nn.functional.interpolate(t, mode="bilinear", align_corners=align_corners, **kwargs),
                rng.standard_normal((2, 2, 5, 7)))


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-6), (np.float64, 1e-12)])
def test_interpolate_float32_stays_float32_and_matches_torch(rng, torch, dtype, rtol):
    x = rng.standard_normal((2, 3, 6, 5)).astype(dtype)
    for kwargs in [dict(mode="nearest", scale_factor=2), dict(mode="nearest", scale_factor=1.5),
                   dict(mode="bilinear", scale_factor=1.5), dict(mode="bilinear", size=(4, 9), align_corners=True)]:
        y = F.interpolate(mdl.tensor(x), **kwargs)
        assert y.dtype == dtype
        np.testing.assert_allclose(y.numpy(), torch.nn.functional.interpolate(torch.tensor(x), **kwargs).numpy(),
                                   rtol=rtol, atol=1e-6 if dtype == np.float32 else 1e-14)


INTERP_GRADCHECK = [("nearest", 3, dict(scale_factor=2)), ("nearest", 4, dict(scale_factor=1.6)),
                    ("nearest", 5, dict(size=(2, 3, 1))), ("nearest-exact", 4, dict(scale_factor=0.7)),
                    ("linear", 3, dict(scale_factor=2.5)), ("bilinear", 4, dict(size=(5, 2))),
                    ("trilinear", 5, dict(scale_factor=1.5))]


@pytest.mark.parametrize("mode,ndim,kwargs", INTERP_GRADCHECK, ids=[f"{m}-{k}" for m, _, k in INTERP_GRADCHECK])
def test_interpolate_gradcheck(rng, mode, ndim, kwargs):
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) + tuple(int(n) for n in rng.integers(2, 4, ndim - 2))
    x = tensor64(rng, *shape)
    for align_corners in ([None] if mode.startswith("nearest") else [False, True]):
        assert mdl.gradcheck(lambda t: F.interpolate(t, mode=mode, align_corners=align_corners, **kwargs), [x])


@pytest.mark.parametrize("shape,factor", [((2, 3, 4), 3), ((2, 3, 4, 5), 2), ((2, 3, 4, 5), (2, 3)),
                                          ((1, 2, 2, 3, 2), (1, 2, 3))])
def test_interpolate_nearest_integer_factor_takes_the_repeat_path(rng, shape, factor):
    x = tensor64(rng, *shape)
    y = F.interpolate(x, scale_factor=factor)
    assert type(y.grad_fn).__name__ == "NearestRepeat"
    factors = factor if isinstance(factor, tuple) else (factor,) * (len(shape) - 2)
    expected = x.numpy()
    for axis, s in enumerate(factors):
        expected = expected.repeat(s, axis=2 + axis)
    np.testing.assert_array_equal(y.numpy(), expected)
    gy = rng.standard_normal(y.shape)
    y.backward(mdl.tensor(gy))
    blown = shape[:2] + tuple(d for n, s in zip(shape[2:], factors) for d in (n, s))
    np.testing.assert_allclose(x.grad.numpy(), gy.reshape(blown).sum(axis=tuple(range(3, len(blown), 2))),
                               rtol=1e-12)


def test_interpolate_errors():
    x3, x4 = mdl.zeros(1, 2, 4), mdl.zeros(1, 2, 4, 4)
    for mode in ("bicubic", "area", "lanczos", "foo"):
        with pytest.raises(NotImplementedError, match=f"interpolate: mode '{mode}' is not implemented"):
            F.interpolate(x4, size=3, mode=mode)
    with pytest.raises(NotImplementedError, match=r"interpolate: got 3D input \(shape \(1, 2, 4\)\), but bilinear "
                                                  r"mode needs 4D input"):
        F.interpolate(x3, size=3, mode="bilinear")
    with pytest.raises(NotImplementedError, match=r"interpolate: only 3D, 4D and 5D input tensors are supported "
                                                  r"\(got input of shape \(2, 4\)\)"):
        F.interpolate(mdl.zeros(2, 4), size=3)
    with pytest.raises(ValueError, match="interpolate: align_corners option can only be set with the interpolating "
                                         "modes"):
        F.interpolate(x4, size=3, align_corners=False)
    with pytest.raises(ValueError, match="interpolate: only one of size or scale_factor should be defined"):
        F.interpolate(x4, size=3, scale_factor=2)
    with pytest.raises(ValueError, match="interpolate: either size or scale_factor should be defined"):
        F.interpolate(x4)
    with pytest.raises(ValueError, match=r"interpolate: input and output must have the same number of spatial "
                                         r"dimensions, but got input of shape \(1, 2, 4\)"):
        F.interpolate(x3, size=(3, 3))
    with pytest.raises(ValueError, match="interpolate: recompute_scale_factor is not meaningful with an explicit "
                                         "size"):
        F.interpolate(x4, size=3, recompute_scale_factor=True)
    with pytest.raises(ValueError, match=r"interpolate: input and output sizes should be greater than 0, but got "
                                         r"input of shape \(1, 2, 4, 4\) and output size \(0, 0\)"):
        F.interpolate(x4, scale_factor=0.1)
    with pytest.raises(NotImplementedError, match="interpolate: antialias=True is not implemented"):
        F.interpolate(x4, size=3, mode="bilinear", antialias=True)
    with pytest.raises(TypeError, match="interpolate: expected size to be an int or a tuple of ints"):
        F.interpolate(x4, size=3.0)
