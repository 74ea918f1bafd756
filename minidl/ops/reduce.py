"""Reductions: sum, mean, var, max, min.

The backward of a reduction spreads the upstream gradient back over the axes that were reduced:
``expand_back`` re-inserts them (when ``keepdims`` was False) and broadcasts.
"""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        return (axis % ndim,) if ndim else ()
    return tuple(a % ndim for a in axis)


def _count(shape, axes):
    n = 1
    for a in axes:
        n *= shape[a]
    return n


def expand_back(gy, shape, axes, keepdims):
    """Broadcast a reduced gradient ``gy`` back to ``shape``."""
    xp = get_array_module(gy)
    if not keepdims:
        gy = xp.expand_dims(gy, axes) if axes else gy
    return xp.broadcast_to(gy, shape)


class Sum(Function):
    """y = sum of x over ``axis``.   gx = gy broadcast back over the summed axes."""

    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, _axes(axis, x.ndim), keepdims
        return x.sum(axis=axis, keepdims=keepdims)

    def backward(ctx, gy):
        return expand_back(gy, ctx.shape, ctx.axes, ctx.keepdims)


class Mean(Function):
    """y = sum(x) / n over ``axis``.   gx = gy / n broadcast back."""

    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, _axes(axis, x.ndim), keepdims
        return x.mean(axis=axis, keepdims=keepdims)

    def backward(ctx, gy):
        n = _count(ctx.shape, ctx.axes)
        return expand_back(gy / n, ctx.shape, ctx.axes, ctx.keepdims)


class Var(Function):
    """y = sum((x - mean)^2) / (n - correction).   gx = gy * 2 (x - mean) / (n - correction)."""

    def forward(ctx, x, axis=None, keepdims=False, correction=1):
        axes = _axes(axis, x.ndim)
        d = x - x.mean(axis=axes, keepdims=True)
        ctx.save_for_backward(d)
        ctx.axes, ctx.keepdims = axes, keepdims
        ctx.denom = max(_count(x.shape, axes) - correction, 0)
        return (d * d).sum(axis=axes, keepdims=keepdims) / ctx.denom

    def backward(ctx, gy):
        d, = ctx.saved
        return expand_back(gy, d.shape, ctx.axes, ctx.keepdims) * (2 / ctx.denom) * d


class _Extreme(Function):
    """y = max (or min) of x over ``axis``.   gx = gy shared evenly among the elements equal to y."""

    reducer = "max"

    def forward(ctx, x, axis=None, keepdims=False):
        axes = _axes(axis, x.ndim)
        y = getattr(x, ctx.reducer)(axis=axes, keepdims=True)
        hit = (x == y).astype(x.dtype)
        ctx.save_for_backward(hit / hit.sum(axis=axes, keepdims=True))
        ctx.axes, ctx.keepdims = axes, keepdims
        return y if keepdims else y.reshape(tuple(s for i, s in enumerate(y.shape) if i not in axes))

    def backward(ctx, gy):
        share, = ctx.saved
        return expand_back(gy, share.shape, ctx.axes, ctx.keepdims) * share


class Max(_Extreme):
    __doc__ = _Extreme.__doc__
    reducer = "max"


class Min(_Extreme):
    __doc__ = _Extreme.__doc__.replace("max (or min)", "min")
    reducer = "min"


class TakeAlong(Function):
    """y = x at ``index`` along ``axis`` (the values of ``x.max(dim)``).   gx = gy put back at ``index``."""

    def forward(ctx, x, index, axis):
        ctx.shape, ctx.index, ctx.axis = x.shape, index, axis
        return get_array_module(x).take_along_axis(x, index, axis=axis)

    def backward(ctx, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(ctx.shape, dtype=gy.dtype)
        xp.put_along_axis(gx, ctx.index, gy, axis=ctx.axis)
        return gx


def arg_extreme(x, name: str, axis, keepdims: bool):
    """``argmax``/``argmin`` of an array as int64 (no gradient)."""
    xp = get_array_module(x)
    if axis is None:
        out = getattr(xp, name)(x)
        return xp.asarray(out, dtype="int64").reshape((1,) * x.ndim if keepdims else ())
    return getattr(xp, name)(x, axis=axis, keepdims=keepdims).astype("int64", copy=False)
