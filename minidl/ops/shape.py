"""Ops that move elements around without arithmetic: reshape, transpose, broadcast, repeat, indexing, cat,
stack, split.

Their backward moves the gradient back the same way: reshape it back, transpose by the inverse
permutation, sum over broadcast or repeated copies, scatter-add into the indexed positions, split, join.
"""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module
from .elementwise import sum_to


class Reshape(Function):
    """y = x viewed with ``shape``.   gx = gy viewed with x's shape."""

    def forward(ctx, x, shape):
        ctx.x_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} into {tuple(shape)}") from None

    def backward(ctx, gy):
        return gy.reshape(ctx.x_shape)


class Transpose(Function):
    """y = x with its axes permuted by ``axes``.   gx = gy permuted by the inverse permutation."""

    def forward(ctx, x, axes):
        if sorted(axes) != list(range(x.ndim)):
            raise ValueError(f"permute: {axes} is not a permutation of the {x.ndim} dims of shape {x.shape}")
        ctx.inverse = tuple(sorted(range(len(axes)), key=axes.__getitem__))
        return x.transpose(axes)

    def backward(ctx, gy):
        return gy.transpose(ctx.inverse)


class BroadcastTo(Function):
    """y = x broadcast to ``shape``.   gx = gy summed over the broadcast axes."""

    def forward(ctx, x, shape):
        ctx.x_shape = x.shape
        try:
            return get_array_module(x).broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"expand: cannot expand shape {x.shape} to {tuple(shape)}") from None

    def backward(ctx, gy):
        return sum_to(gy, ctx.x_shape)


class Repeat(Function):
    """y = x tiled ``reps[d]`` times along each dim d (PyTorch's ``repeat``, NumPy's ``tile``).

    Notation: x (S0, S1, ...) (with leading 1s when ``reps`` is longer), y (R0*S0, R1*S1, ...).
    gx = gy viewed as (R0, S0, R1, S1, ...) and summed over the R axes: every copy sends its gradient back.
    """

    def forward(ctx, x, reps):
        if len(reps) < x.ndim:
            raise ValueError(f"repeat: {len(reps)} repeats given for a tensor of {x.ndim} dims; give at least one "
                             "per dim")
        ctx.x_shape = x.shape
        ctx.shape = (1,) * (len(reps) - x.ndim) + x.shape
        ctx.reps = tuple(reps)
        return get_array_module(x).tile(x.reshape(ctx.shape), reps)

    def backward(ctx, gy):
        paired = tuple(n for r, s in zip(ctx.reps, ctx.shape) for n in (r, s))
        return gy.reshape(paired).sum(axis=tuple(range(0, len(paired), 2))).reshape(ctx.x_shape)


class Split(Function):
    """y_0, y_1, ... = consecutive pieces of x along ``axis``, of the given ``sizes``.

    gx = the pieces' gradients joined back along ``axis`` (zeros for a piece that got none).
    """

    def forward(ctx, x, sizes, axis):
        ctx.axis = axis
        ends = [sum(sizes[:i + 1]) for i in range(len(sizes) - 1)]
        return tuple(get_array_module(x).split(x, ends, axis=axis))

    def backward(ctx, *gys):
        return get_array_module(*gys).concatenate(gys, axis=ctx.axis)


def unwrap_index(key):
    """Replace Tensors inside an index (``x[idx]``, ``x[:, idx]``) by their arrays."""
    from ..tensor import Tensor
    if isinstance(key, Tensor):
        return key.array
    if isinstance(key, tuple):
        return tuple(k.array if isinstance(k, Tensor) else k for k in key)
    return key


def _is_advanced(key) -> bool:
    keys = key if isinstance(key, tuple) else (key,)
    return any(hasattr(k, "shape") and k.ndim > 0 or isinstance(k, (list, range)) for k in keys)


class GetItem(Function):
    """y = x[key] (basic slicing or integer/boolean arrays).

    gx = zeros like x with gy added at ``key``. Integer arrays may repeat an index, so the gradient is
    scatter-added (``add.at``), which sums repeated positions instead of keeping only the last one.
    """

    def forward(ctx, x, key):
        ctx.x_shape, ctx.key = x.shape, key
        return x[key]

    def backward(ctx, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(ctx.x_shape, dtype=gy.dtype)
        if _is_advanced(ctx.key):
            if hasattr(xp.add, "at"):
                xp.add.at(gx, ctx.key, gy)
            else:  # CuPy spells scatter-add differently
                import cupyx
                cupyx.scatter_add(gx, ctx.key, gy)
        else:
            gx[ctx.key] = gy
        return gx


class Concatenate(Function):
    """y = the inputs joined along ``axis``.   Each gx is gy's slice where that input landed."""

    def forward(ctx, *xs, axis=0):
        ctx.axis = axis % xs[0].ndim
        ctx.sizes = [x.shape[ctx.axis] for x in xs]
        return get_array_module(*xs).concatenate(xs, axis=axis)

    def backward(ctx, gy):
        gxs, start = [], 0
        for size, need in zip(ctx.sizes, ctx.needs_input_grad):
            index = (slice(None),) * ctx.axis + (slice(start, start + size),)
            gxs.append(gy[index] if need else None)
            start += size
        return tuple(gxs)


class Stack(Function):
    """y = the inputs stacked along a new ``axis``.   gx_i = gy taken at position i of that axis."""

    def forward(ctx, *xs, axis=0):
        ctx.axis = axis % (xs[0].ndim + 1)
        return get_array_module(*xs).stack(xs, axis=axis)

    def backward(ctx, gy):
        xp = get_array_module(gy)
        return tuple(xp.take(gy, i, axis=ctx.axis) if need else None
                     for i, need in enumerate(ctx.needs_input_grad))


def cat(tensors, axis: int = 0, *, dim: int | None = None):
    """Join tensors along an existing axis (``axis`` or PyTorch's ``dim``)."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    return Concatenate.apply(*tensors, axis=dim if dim is not None else axis)


concatenate = cat


def stack(tensors, axis: int = 0, *, dim: int | None = None):
    """Stack same-shaped tensors along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: expected tensors of one shape, got shapes {sorted(shapes)}")
    return Stack.apply(*tensors, axis=dim if dim is not None else axis)
