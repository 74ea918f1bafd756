"""Matrix products: ``a @ b`` with NumPy's broadcasting rules, and the fused ``linear`` layer.

Both run on BLAS (``numpy.matmul``) in the forward and the backward pass.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..backend import threads
from .checks import check_same_dtype
from .elementwise import sum_to


class MatMul(Function):
    """y = a @ b.   ga = gy @ b^T,  gb = a^T @ gy  (batch axes summed back where they were broadcast).

    A 1-D ``a`` acts as a row (1, K) and a 1-D ``b`` as a column (K, 1), as in NumPy.
    """

    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 dim, got shapes {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied "
                             f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})")
        ctx.save_for_backward(a, b)
        return a @ b

    def backward(ctx, gy):
        a, b = ctx.saved
        xp = get_array_module(gy)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        # Put back the unit axes NumPy dropped for 1-D operands, so gy is (..., M, N) like a2 @ b2.
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        gy = gy.reshape(batch + (a2.shape[-2], b2.shape[-1]))
        need_a, need_b = ctx.needs_input_grad
        ga = sum_to(gy @ xp.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape) if need_a else None
        gb = sum_to(xp.swapaxes(a2, -1, -2) @ gy, b2.shape).reshape(b.shape) if need_b else None
        return ga, gb


def _gemm(a, b):
    """``a @ b`` for 2-D arrays: split over the CPU cores (see minidl/backend/threads.py), plain on a GPU."""
    if isinstance(a, np.ndarray):
        return threads.matmul(a, b)
    return a @ b


class Linear(Function):
    """y = x W^T + b.

    Notation: x (..., IN), W (OUT, IN), b (OUT,), y (..., OUT); leading axes are flattened into one
    batch axis M so each product is a single GEMM.
        gx = gy W            (M, OUT) @ (OUT, IN)
        gW = gy^T x          (OUT, M) @ (M, IN)
        gb = sum_M gy
    """

    def forward(ctx, x, W, b=None):
        x2 = x.reshape(-1, x.shape[-1])
        y = _gemm(x2, W.T)
        if b is not None:
            y += b
        ctx.save_for_backward(x2, W)
        ctx.x_shape = x.shape
        return y.reshape(x.shape[:-1] + (W.shape[0],))

    def backward(ctx, gy):
        x2, W = ctx.saved
        need_x, need_W, need_b = (ctx.needs_input_grad + (False,))[:3]
        gy2 = gy.reshape(-1, gy.shape[-1])
        gx = _gemm(gy2, W).reshape(ctx.x_shape) if need_x else None
        gW = _gemm(gy2.T, x2) if need_W else None
        gb = gy2.sum(axis=0) if need_b else None
        return gx, gW, gb


def linear(input, weight, bias=None):
    """``y = input @ weight.T + bias``, PyTorch's ``F.linear``.

    Args:
        input: (..., in_features).
        weight: (out_features, in_features).
        bias: (out_features,) or None.
    Returns:
        (..., out_features).
    """
    check_same_dtype("linear", input=input, weight=weight, bias=bias)
    if weight.ndim != 2:
        raise ValueError(f"linear: expected a 2-D weight (out_features, in_features), got shape {weight.shape}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: expected input with last dimension {weight.shape[1]} (weight is "
                         f"{tuple(weight.shape)}), got input of shape {tuple(input.shape)}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear: expected bias of shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    if bias is None:
        return Linear.apply(input, weight)
    return Linear.apply(input, weight, bias)
