"""Activations: relu, leaky_relu, sigmoid, tanh, softmax, log_softmax.

Each backward uses what the forward already computed (the output, or a mask) so no work is repeated.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, is_grad_enabled
from ..backend import get_array_module, threads
from ..kernels import kernels_for


class ReLU(Function):
    """y = max(x, 0).   gx = gy where y > 0, else 0.

    Memory-bound passes, a few ms on the activations of a batch of 256: on the CPU the arrays are split
    across the cores (``threads.elementwise``), each part run by the kernel's serial compilation.
    """

    def forward(ctx, x):
        xp = get_array_module(x)
        y = xp.empty(x.shape, dtype=x.dtype)
        _run(xp, kernels_for(xp).relu_forward, y, xp.ascontiguousarray(x))
        ctx.save_for_backward(y)
        return y

    def backward(ctx, gy):
        y, = ctx.saved
        xp = get_array_module(gy)
        gx = xp.empty(y.shape, dtype=gy.dtype)
        _run(xp, kernels_for(xp).relu_backward, gx, xp.ascontiguousarray(gy), y)
        return gx


def _run(xp, kernel, out, *arrays):
    """``kernel(*arrays, out)``: on the CPU in parts across the worker threads, else as one call."""
    if xp is np:
        threads.elementwise(kernel.serial, out, *arrays)
    else:
        kernel(*arrays, out=out)


class LeakyReLU(Function):
    """y = x if x > 0 else a*x.   gx = gy if x > 0 else a*gy."""

    def forward(ctx, x, negative_slope):
        positive = x > 0
        ctx.save_for_backward(positive)
        ctx.negative_slope = negative_slope
        return get_array_module(x).where(positive, x, x * x.dtype.type(negative_slope))

    def backward(ctx, gy):
        positive, = ctx.saved
        return get_array_module(gy).where(positive, gy, gy * gy.dtype.type(ctx.negative_slope))


class Sigmoid(Function):
    """y = 1 / (1 + e^-x).   gx = gy * y * (1 - y).

    Computed as ``e^x / (1 + e^x)`` for negative x so no exponential overflows.
    """

    def forward(ctx, x):
        xp = get_array_module(x)
        e = xp.exp(-xp.abs(x))
        y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    def backward(ctx, gy):
        y, = ctx.saved
        return gy * y * (1 - y)


class Tanh(Function):
    """y = tanh(x).   gx = gy * (1 - y^2)."""

    def forward(ctx, x):
        y = get_array_module(x).tanh(x)
        ctx.save_for_backward(y)
        return y

    def backward(ctx, gy):
        y, = ctx.saved
        return gy * (1 - y * y)


class Softmax(Function):
    """y_i = e^(x_i - max) / sum_j e^(x_j - max) along ``dim``.   gx = y * (gy - sum(gy * y))."""

    def forward(ctx, x, dim):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=dim, keepdims=True))
        y = e / e.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    def backward(ctx, gy):
        y, = ctx.saved
        return y * (gy - (gy * y).sum(axis=ctx.dim, keepdims=True))


class LogSoftmax(Function):
    """y = x - max - log(sum e^(x - max)) along ``dim``.   gx = gy - softmax(x) * sum(gy)."""

    def forward(ctx, x, dim):
        xp = get_array_module(x)
        shifted = x - x.max(axis=dim, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    def backward(ctx, gy):
        y, = ctx.saved
        return gy - get_array_module(y).exp(y) * gy.sum(axis=ctx.dim, keepdims=True)


def _maybe_inplace(input, out, inplace: bool):
    """PyTorch's ``inplace=True``: write the result into ``input`` when no graph is being recorded."""
    if inplace and not (is_grad_enabled() and input.requires_grad):
        input.array[...] = out.array
        return input
    return out


def relu(input, inplace: bool = False):
    """``max(input, 0)`` elementwise."""
    return _maybe_inplace(input, ReLU.apply(input), inplace)


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False):
    """``input`` where positive, ``negative_slope * input`` elsewhere."""
    return _maybe_inplace(input, LeakyReLU.apply(input, negative_slope), inplace)


def sigmoid(input):
    """``1 / (1 + exp(-input))``, overflow-free."""
    return Sigmoid.apply(input)


def tanh(input):
    """Hyperbolic tangent."""
    return Tanh.apply(input)


def _softmax_dim(op, input, dim):
    if dim is None:
        raise TypeError(f"{op}: dim must be given (the axis that sums to one)")
    if not -input.ndim <= dim < input.ndim:
        raise IndexError(f"{op}: dim {dim} out of range for input of shape {tuple(input.shape)}")
    return dim % input.ndim


def softmax(input, dim=None):
    """Softmax along ``dim``: non-negative, sums to one."""
    return Softmax.apply(input, _softmax_dim("softmax", input, dim))


def log_softmax(input, dim=None):
    """``log(softmax(input, dim))``, computed stably."""
    return LogSoftmax.apply(input, _softmax_dim("log_softmax", input, dim))
