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


class Sin(Function):
    """y = sin x.   gx = gy * cos x."""

    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).sin(x)

    def backward(ctx, gy):
        x, = ctx.saved
        return gy * get_array_module(x).cos(x)


class Cos(Function):
    """y = cos x.   gx = -gy * sin x."""

    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).cos(x)

    def backward(ctx, gy):
        x, = ctx.saved
        return -gy * get_array_module(x).sin(x)


class Log1p(Function):
    """y = ln(1 + x), exact for small x.   gx = gy / (1 + x)."""

    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).log1p(x)

    def backward(ctx, gy):
        x, = ctx.saved
        return gy / (1 + x)


class Expm1(Function):
    """y = e^x - 1, exact for small x.   gx = gy * (y + 1)."""

    def forward(ctx, x):
        y = get_array_module(x).expm1(x)
        ctx.save_for_backward(y)
        return y

    def backward(ctx, gy):
        y, = ctx.saved
        return gy * (y + 1)


class Step(Function):
    """y = f(x) for a piecewise-constant f: ``floor``, ``ceil``, ``round``, ``trunc`` or ``sign``.

    gx = 0: f is flat wherever it has a derivative (PyTorch's rule too).
    """

    def forward(ctx, x, fn, decimals=0):
        ctx.x_shape = x.shape
        xp = get_array_module(x)
        if x.dtype.kind in "iub" and fn != "sign":
            return x.copy()
        if fn == "round":
            return xp.round(x, decimals)  # halves to even, as PyTorch
        return getattr(xp, fn)(x)

    def backward(ctx, gy):
        return get_array_module(gy).zeros(ctx.x_shape, dtype=gy.dtype)


class Clone(Function):
    """y = a copy of x, with its own memory.   gx = gy."""

    def forward(ctx, x):
        return x.copy()

    def backward(ctx, gy):
        return gy


class Maximum(Function):
    """y = max(a, b) elementwise.   ga = gy where a > b, gb = gy where b > a; a tie gives each gy / 2
    (PyTorch's rule)."""

    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return get_array_module(a, b).maximum(a, b)

    def backward(ctx, gy):
        a, b = ctx.saved
        return _split_by_winner(ctx, gy, a > b, a == b, _shape(a), _shape(b))


class Minimum(Function):
    """y = min(a, b) elementwise.   ga = gy where a < b, gb = gy where b < a; a tie gives each gy / 2."""

    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return get_array_module(a, b).minimum(a, b)

    def backward(ctx, gy):
        a, b = ctx.saved
        return _split_by_winner(ctx, gy, a < b, a == b, _shape(a), _shape(b))


def _split_by_winner(ctx, gy, a_wins, tie, a_shape, b_shape):
    """The gradients of ``maximum``/``minimum``: all of gy to the winner, half to each on a tie."""
    share_a = (a_wins + 0.5 * tie).astype(gy.dtype, copy=False)
    need_a, need_b = ctx.needs_input_grad
    return (sum_to(gy * share_a, a_shape) if need_a else None,
            sum_to(gy * (1 - share_a), b_shape) if need_b else None)


class MaskedFill(Function):
    """y = value where mask, else x (mask broadcast to x's shape).

    gx = gy where not mask, else 0;   g_value = the sum of gy where mask (when value is a 0-d tensor).
    """

    def forward(ctx, x, mask, value):
        xp = get_array_module(x)
        try:
            mask = xp.broadcast_to(mask, x.shape)
        except ValueError:
            raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to {x.shape}") from None
        if mask.dtype != bool:
            raise TypeError(f"masked_fill: expected a boolean mask, got dtype {mask.dtype}")
        ctx.save_for_backward(mask)  # saved, so an in-place change of the mask before backward is caught
        ctx.value_shape = _shape(value)
        y = x.copy()
        xp.copyto(y, value, where=mask, casting="unsafe")  # PyTorch casts the value to x's dtype
        return y

    def backward(ctx, gy):
        need_x, _, need_value = ctx.needs_input_grad
        mask, = ctx.saved
        xp = get_array_module(gy)
        zero = gy.dtype.type(0)
        return (xp.where(mask, zero, gy) if need_x else None, None,
                xp.where(mask, gy, zero).sum().reshape(ctx.value_shape) if need_value else None)


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


def where(condition, input=None, other=None):
    """``input`` where ``condition`` holds, else ``other``; gradients flow to both.

    Args:
        condition: a boolean Tensor, broadcast with ``input`` and ``other``.
        input, other: Tensors or Python numbers. Two numbers give a tensor of the default dtype (float32)
            or int64, as ``torch.where`` does. With neither, ``where(condition)`` is
            ``condition.nonzero(as_tuple=True)``.

    Returns:
        A Tensor of the broadcast shape.

    >>> import minidl as mdl
    >>> mdl.where(mdl.tensor([True, False]), mdl.tensor([1.0, 2.0]), 0.0)
    tensor([1., 0.])
    """
    from ..tensor import Tensor, tensor
    if input is None and other is None:
        return condition.nonzero(as_tuple=True)
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        dtype = tensor([input, other]).dtype  # torch.tensor's rule, applied to the pair
        input, other = tensor(input, dtype=dtype), tensor(other, dtype=dtype)
    return Where.apply(condition, input, other)
