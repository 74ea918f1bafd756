"""Elementwise arithmetic with NumPy broadcasting.

When an input was broadcast in the forward pass, its gradient is the upstream gradient summed over the
broadcast axes (:func:`sum_to`): a bias of shape (C,) added to (N, C) receives the sum over N.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import get_array_module, to_device


def sum_to(g, shape):
    """Sum ``g`` over the axes along which an array of ``shape`` was broadcast to ``g.shape``."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


def _shape(a):
    return getattr(a, "shape", ())


class Add(Function):
    """y = a + b.   ga = gy,  gb = gy  (each summed back to its input's shape)."""

    def forward(ctx, a, b):
        ctx.a_shape, ctx.b_shape = _shape(a), _shape(b)
        return a + b

    def backward(ctx, gy):
        ga, gb = ctx.needs_input_grad
        return (sum_to(gy, ctx.a_shape) if ga else None,
                sum_to(gy, ctx.b_shape) if gb else None)


class Sub(Function):
    """y = a - b.   ga = gy,  gb = -gy."""

    def forward(ctx, a, b):
        ctx.a_shape, ctx.b_shape = _shape(a), _shape(b)
        return a - b

    def backward(ctx, gy):
        ga, gb = ctx.needs_input_grad
        return (sum_to(gy, ctx.a_shape) if ga else None,
                sum_to(-gy, ctx.b_shape) if gb else None)


class Mul(Function):
    """y = a * b.   ga = gy * b,  gb = gy * a."""

    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    def backward(ctx, gy):
        a, b = ctx.saved
        ga, gb = ctx.needs_input_grad
        return (sum_to(gy * b, _shape(a)) if ga else None,
                sum_to(gy * a, _shape(b)) if gb else None)


class Div(Function):
    """y = a / b.   ga = gy / b,  gb = -gy * a / b^2."""

    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    def backward(ctx, gy):
        a, b = ctx.saved
        ga, gb = ctx.needs_input_grad
        return (sum_to(gy / b, _shape(a)) if ga else None,
                sum_to(-gy * a / (b * b), _shape(b)) if gb else None)


class Pow(Function):
    """y = a ** b.   ga = gy * b * a^(b-1),  gb = gy * y * log(a)."""

    def forward(ctx, a, b):
        y = a ** b
        ctx.save_for_backward(a, b, y)
        return y

    def backward(ctx, gy):
        a, b, y = ctx.saved
        ga, gb = ctx.needs_input_grad
        xp = get_array_module(gy)
        return (sum_to(gy * b * a ** (b - 1), _shape(a)) if ga else None,
                sum_to(gy * y * xp.log(a), _shape(b)) if gb else None)


class Neg(Function):
    """y = -x.   gx = -gy."""

    def forward(ctx, x):
        return -x

    def backward(ctx, gy):
        return -gy


class Exp(Function):
    """y = e^x.   gx = gy * y."""

    def forward(ctx, x):
        y = get_array_module(x).exp(x)
        ctx.save_for_backward(y)
        return y

    def backward(ctx, gy):
        y, = ctx.saved
        return gy * y


class Log(Function):
    """y = ln x.   gx = gy / x."""

    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).log(x)

    def backward(ctx, gy):
        x, = ctx.saved
        return gy / x


class Sqrt(Function):
    """y = sqrt(x).   gx = gy / (2 y)."""

    def forward(ctx, x):
        y = get_array_module(x).sqrt(x)
        ctx.save_for_backward(y)
        return y

    def backward(ctx, gy):
        y, = ctx.saved
        return gy / (2 * y)


class Abs(Function):
    """y = |x|.   gx = gy * sign(x)  (0 at x = 0, as in PyTorch)."""

    def forward(ctx, x):
        xp = get_array_module(x)
        ctx.save_for_backward(xp.sign(x))
        return xp.abs(x)

    def backward(ctx, gy):
        sign, = ctx.saved
        return gy * sign


class Clip(Function):
    """y = min(max(x, lo), hi).   gx = gy where lo <= x <= hi, else 0 (PyTorch's clamp rule)."""

    def forward(ctx, x, lo=None, hi=None):
        xp = get_array_module(x)
        if lo is None and hi is None:
            raise ValueError("clip: at least one of min and max must be given")
        inside = xp.ones(x.shape, dtype=bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        ctx.save_for_backward(inside)
        return xp.clip(x, lo, hi).astype(x.dtype, copy=False)

    def backward(ctx, gy):
        inside, = ctx.saved
        return gy * inside


class Where(Function):
    """y = a where cond else b.   ga = gy where cond,  gb = gy where not cond."""

    def forward(ctx, cond, a, b):
        ctx.cond, ctx.a_shape, ctx.b_shape = cond, _shape(a), _shape(b)
        return get_array_module(cond, a, b).where(cond, a, b)

    def backward(ctx, gy):
        _, ga, gb = ctx.needs_input_grad
        zero = gy.dtype.type(0)
        return (None,
                sum_to(get_array_module(gy).where(ctx.cond, gy, zero), ctx.a_shape) if ga else None,
                sum_to(get_array_module(gy).where(ctx.cond, zero, gy), ctx.b_shape) if gb else None)


class Cast(Function):
    """y = x as ``dtype``.   gx = gy cast back to x's dtype."""

    def forward(ctx, x, dtype):
        ctx.x_dtype = x.dtype
        return x.astype(dtype)

    def backward(ctx, gy):
        return gy.astype(ctx.x_dtype)


class ToDevice(Function):
    """y = x copied to ``device``.   gx = gy copied back."""

    def forward(ctx, x, device):
        ctx.x_device = "cpu" if isinstance(x, np.ndarray) else "cuda"
        return to_device(x, device)

    def backward(ctx, gy):
        return to_device(gy, ctx.x_device)


def where(condition, input, other):
    """``input`` where ``condition`` holds, else ``other``; gradients flow to both."""
    return Where.apply(condition, input, other)
