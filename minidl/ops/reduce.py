"""Reductions: sum, mean, var, max, min, prod, norm, logsumexp, cumsum, einsum; and picking elements by index
(the values of max/min/topk/sort along a dim, gather).

The backward of a reduction spreads the upstream gradient back over the axes that were reduced:
``expand_back`` re-inserts them (when ``keepdims`` was False) and broadcasts.
"""
from __future__ import annotations

import math

import numpy as np

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
        scale = 2 / ctx.denom if ctx.denom else math.nan  # no spread to measure (n <= correction): nan, as y
        return expand_back(gy, d.shape, ctx.axes, ctx.keepdims) * scale * d


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
    """y = x at ``index`` along ``axis`` (the values of ``x.max(dim)``, ``topk``, ``sort``, ``gather``).

    gx = zeros like x with gy added at ``index``: added, not written, since ``gather`` may pick an element
    twice and then receives both gradients.
    """

    def forward(ctx, x, index, axis):
        ctx.save_for_backward(index)  # saved, so an in-place change of a user's index before backward is caught
        ctx.shape, ctx.axis = x.shape, axis
        return get_array_module(x).take_along_axis(x, index, axis=axis)

    def backward(ctx, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(ctx.shape, dtype=gy.dtype)
        # The full position of every element of gy: its own coordinates, with index's along ``axis``.
        where = [xp.arange(n).reshape((1,) * d + (n,) + (1,) * (gy.ndim - d - 1)) for d, n in enumerate(gy.shape)]
        where[ctx.axis], = ctx.saved
        scatter_add(gx, tuple(where), gy)
        return gx


def scatter_add(gx, key, g) -> None:
    """``gx[key] += g``, summing over repeated positions (NumPy's ``add.at``; CuPy spells it differently)."""
    xp = get_array_module(gx)
    if hasattr(xp.add, "at"):
        xp.add.at(gx, key, g)
    else:
        import cupyx
        cupyx.scatter_add(gx, key, g)


class Prod(Function):
    """y = the product of x over ``axis`` (one axis, or all of them).

    gx_i = gy * (the product of all the other elements), taken as (the product of the elements before i)
    times (the product of those after i): two cumulative products, no division, so zeros in x are fine.
    """

    def forward(ctx, x, axis=None, keepdims=False):
        ctx.save_for_backward(x)
        ctx.axis, ctx.keepdims = axis, keepdims
        return x.prod(axis=axis, keepdims=keepdims)

    def backward(ctx, gy):
        x, = ctx.saved
        if ctx.axis is None:
            others = _products_of_others(x.reshape(-1), 0).reshape(x.shape)
            return gy * others
        axis = ctx.axis % x.ndim
        return expand_back(gy, x.shape, (axis,), ctx.keepdims) * _products_of_others(x, axis)


def _products_of_others(x, axis):
    """For each element, the product of the other elements along ``axis``."""
    xp = get_array_module(x)
    x = xp.moveaxis(x, axis, -1)
    one = xp.ones(x.shape[:-1] + (1,), dtype=x.dtype)
    before = xp.cumprod(xp.concatenate([one, x[..., :-1]], axis=-1), axis=-1)
    after = xp.cumprod(xp.concatenate([one, x[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    return xp.moveaxis(before * after, -1, axis)


class Cumsum(Function):
    """y_i = x_0 + ... + x_i along ``axis``.   gx_j = gy_j + ... + gy_last: a cumulative sum from the end."""

    def forward(ctx, x, axis):
        ctx.axis = axis
        return get_array_module(x).cumsum(x, axis=axis)

    def backward(ctx, gy):
        xp = get_array_module(gy)
        return xp.flip(xp.cumsum(xp.flip(gy, axis=ctx.axis), axis=ctx.axis), axis=ctx.axis)


class Norm(Function):
    """y = (sum |x|^p)^(1/p) over ``axis``; p = inf gives max |x|, p = -inf min |x|, p = 0 the count of non-zeros.

    gx = gy * sign(x) |x|^(p-1) / y^(p-1)   (p = 2: gy * x / y;  p = 1: gy * sign(x));  0 where x = 0.
    For p = +-inf the gradient goes to the elements with |x| = y, shared evenly among ties; p = 0 has none.
    """

    def forward(ctx, x, p, axis=None, keepdims=False):
        xp = get_array_module(x)
        axes = _axes(axis, x.ndim)
        a = xp.abs(x)
        if p == float("inf"):
            y = a.max(axis=axes, keepdims=True)
        elif p == -float("inf"):
            y = a.min(axis=axes, keepdims=True)
        elif p == 0:
            y = (x != 0).sum(axis=axes, keepdims=True).astype(x.dtype)
        elif p == 1:
            y = a.sum(axis=axes, keepdims=True)
        elif p == 2:
            y = xp.sqrt((x * x).sum(axis=axes, keepdims=True))
        else:
            y = ((a ** p).sum(axis=axes, keepdims=True)) ** (1 / p)
        ctx.save_for_backward(x, y)
        ctx.p, ctx.axes, ctx.keepdims = p, axes, keepdims
        return y if keepdims else xp.squeeze(y, axis=axes)

    def backward(ctx, gy):
        x, y = ctx.saved
        xp = get_array_module(gy)
        p, axes = ctx.p, ctx.axes
        g = gy if ctx.keepdims else xp.expand_dims(gy, axes)
        if p == 0:
            return xp.zeros(x.shape, dtype=gy.dtype)
        if abs(p) == float("inf"):
            hit = (xp.abs(x) == y).astype(x.dtype)
            return g * xp.sign(x) * hit / hit.sum(axis=axes, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = x / y if p == 2 else xp.sign(x) * xp.abs(x) ** (p - 1) / y ** (p - 1)
        return g * xp.where(x == 0, 0, scale).astype(x.dtype, copy=False)


class Logsumexp(Function):
    """y = log(sum e^x) over ``axis``, taken as m + log(sum e^(x - m)) with m = max x, so nothing overflows.

    gx = gy * e^(x - y): the softmax of x.
    """

    def forward(ctx, x, axis=None, keepdims=False):
        xp = get_array_module(x)
        axes = _axes(axis, x.ndim)
        m = x.max(axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # a row of -inf sums to 0: log 0 = -inf, with no nan on the way
        y = m + xp.log(xp.exp(x - m).sum(axis=axes, keepdims=True))
        ctx.save_for_backward(x, y)
        ctx.axes, ctx.keepdims = axes, keepdims
        return y if keepdims else xp.squeeze(y, axis=axes)

    def backward(ctx, gy):
        x, y = ctx.saved
        xp = get_array_module(gy)
        g = gy if ctx.keepdims else xp.expand_dims(gy, ctx.axes)
        return g * xp.exp(x - y)


class Einsum(Function):
    """y = einsum(equation, *xs): products of the operands, summed over the letters the output lacks.

    The gradient of operand k is an einsum too: gy times every other operand, summed into operand k's
    letters. For ``'ij,jk->ik'``: ga = einsum('ik,jk->ij', gy, b), gb = einsum('ik,ij->jk', gy, a). A letter
    only operand k has, and the output lacks, was summed away; its gradient is broadcast along it.
    """

    def forward(ctx, *xs, subscripts, output):
        ctx.save_for_backward(*xs)
        ctx.subscripts, ctx.output = subscripts, output
        return get_array_module(*xs).einsum(",".join(subscripts) + "->" + output, *xs)

    def backward(ctx, gy):
        xs = ctx.saved
        xp = get_array_module(gy)
        gxs = []
        for k, (sub, x, need) in enumerate(zip(ctx.subscripts, xs, ctx.needs_input_grad)):
            if not need:
                gxs.append(None)
                continue
            others = [j for j in range(len(xs)) if j != k]
            present = set(ctx.output).union(*(ctx.subscripts[j] for j in others))
            kept = "".join(c for c in sub if c in present)
            spec = ",".join([ctx.output] + [ctx.subscripts[j] for j in others]) + "->" + kept
            g = xp.einsum(spec, gy, *(xs[j] for j in others))
            g = g.reshape(tuple(x.shape[i] if c in present else 1 for i, c in enumerate(sub)))
            gxs.append(xp.broadcast_to(g, x.shape))
        return tuple(gxs)


def parse_einsum(equation: str, n: int) -> tuple:
    """``'ij,jk->ik'`` as (['ij', 'jk'], 'ik'); without ``->`` the output is the letters seen once, sorted."""
    equation = equation.replace(" ", "")
    if "." in equation:
        raise NotImplementedError("einsum: '...' (ellipsis) is not supported by minidl; name every dimension")
    lhs, arrow, output = equation.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != n:
        raise ValueError(f"einsum: the equation names {len(inputs)} operands but {n} were given")
    if not arrow:
        letters = "".join(inputs)
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    for sub in inputs + [output]:
        if len(set(sub)) != len(sub) or not sub.isalpha() and sub:
            raise NotImplementedError(f"einsum: subscripts {sub!r}: repeated letters (diagonals) and other "
                                      "characters are not supported by minidl")
    if not set(output) <= set("".join(inputs)):
        raise ValueError(f"einsum: output letters {output!r} do not all appear in the inputs")
    return inputs, output


def einsum(equation: str, *operands):
    """Sums of products of tensors, written in Einstein notation (``torch.einsum``).

    Args:
        equation: subscripts such as ``"ij,jk->ik"`` (a matrix product) or ``"bhqd,bhkd->bhqk"``. Without
            ``->`` the output is the letters that appear once, in alphabetical order. Not supported: ``...``
            and a letter repeated within one operand (a diagonal).
        *operands: the Tensors, one per comma-separated term (or a single list of them).

    Returns:
        The Tensor the equation describes; gradients flow to every operand.

    >>> import minidl as mdl
    >>> einsum("i,i->", mdl.tensor([1.0, 2.0]), mdl.tensor([3.0, 4.0]))
    tensor(11.)
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    subscripts, output = parse_einsum(equation, len(operands))
    for sub, t in zip(subscripts, operands):
        if len(sub) != t.ndim:
            raise ValueError(f"einsum: subscripts {sub!r} name {len(sub)} dims, but the operand has shape "
                             f"{tuple(t.shape)}")
    return Einsum.apply(*operands, subscripts=subscripts, output=output)


def sort_indices(x, axis: int, descending: bool):
    """The int64 indices that sort ``x`` along ``axis``, keeping equal elements in their order (stable).

    NaN counts as the largest value, as in PyTorch: last in ascending order, first in descending order.
    """
    xp = get_array_module(x)
    key = x
    if descending:
        if x.dtype.kind in "bu":
            key = x.astype("int64")
        key = -key
        if x.dtype.kind == "f":
            key = xp.where(xp.isnan(x), -xp.inf, key)
    return xp.argsort(key, axis=axis, kind="stable").astype("int64", copy=False)


def arg_extreme(x, name: str, axis, keepdims: bool):
    """``argmax``/``argmin`` of an array as int64 (no gradient)."""
    xp = get_array_module(x)
    if axis is None:
        out = getattr(xp, name)(x)
        return xp.asarray(out, dtype="int64").reshape((1,) * x.ndim if keepdims else ())
    return getattr(xp, name)(x, axis=axis, keepdims=keepdims).astype("int64", copy=False)
