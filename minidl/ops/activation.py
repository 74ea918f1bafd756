"""Activations: relu, leaky_relu, sigmoid, tanh, softmax, log_softmax, elu, gelu, silu, softplus, hardtanh,
relu6.

Each backward uses what the forward already had (the output, the input, or a mask) so no work is repeated.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..autograd import Function, is_grad_enabled
from ..backend import get_array_module, threads
from ..kernels import fast_twin, serial
from .checks import KERNEL_DTYPES, check_float, check_kernel_float


class ReLU(Function):
    """y = max(x, 0).   gx = gy where y > 0, else 0.

    The backward needs only where y > 0, so that is what is saved: a boolean mask, a quarter of y's bytes
    (float32), and y itself is freed as soon as the next op is done with it (a max pooling after the ReLU
    keeps only its indices). Saving y, as PyTorch does, would keep the whole activation until the backward
    (numbers: docs/PERFORMANCE.md, "ReLU and LeakyReLU save a mask").
    A NaN input stays NaN, and its gradient passes through (``y <= 0`` is False for NaN), as in PyTorch.
    Each method writes the math as array expressions, run on the reference path (``use_kernels``); its
    fast twin, ``kernels.cpu.relu_forward`` / ``relu_backward``, is one pass with no temporary, split across
    the cores (``threads.elementwise``) and run by the kernel's serial compilation (numbers:
    docs/PERFORMANCE.md, "ReLU split across the cores").
    """

    def forward(ctx, x):
        xp = get_array_module(x)
        twin = fast_twin(xp, "relu_forward")
        if twin is None:
            y = xp.maximum(x, 0)  # maximum keeps a NaN
            passes = ~(y <= 0)  # where the gradient passes: y > 0, or NaN
        else:
            y = xp.empty(x.shape, dtype=x.dtype)
            passes = xp.empty(x.shape, dtype=bool)
            _run(xp, twin, y, xp.ascontiguousarray(x), mask=passes)
        ctx.save_for_backward(passes)
        return y

    def backward(ctx, gy):
        passes, = ctx.saved
        xp = get_array_module(gy)
        twin = fast_twin(xp, "relu_backward")
        if twin is None:
            return xp.where(passes, gy, 0)  # not gy * passes: an inf in gy times 0 would give NaN
        gx = xp.empty(passes.shape, dtype=gy.dtype)
        _run(xp, twin, gx, xp.ascontiguousarray(gy), passes)
        return gx


def _run(xp, kernel, out, *arrays, mask=None, **scalars):
    """``kernel(*arrays, **scalars, out=out)``, with ``mask=mask`` too where a forward writes its mask: on the
    CPU in parts across the worker threads (the arrays, out and mask cut alike; the scalars, a slope, go
    whole to every part), else as one call."""
    if xp is not np:
        kernel(*arrays, out=out, **({} if mask is None else {"mask": mask}), **scalars)
        return
    run = functools.partial(serial(kernel), **scalars)
    if mask is None:
        threads.elementwise(run, out, *arrays)
    else:
        threads.elementwise(lambda *parts, out: run(*parts[:-1], out=out, mask=parts[-1]), out, *arrays, mask)


class LeakyReLU(Function):
    """y = x if x > 0 else a*x.   gx = gy if x > 0 else a*gy.

    The backward asks the sign of the input x, so where x > 0 is what is saved, as a boolean mask (a quarter
    of x's bytes in float32; saving x, as PyTorch does, would keep the layer's whole input until the backward):
    with a slope a <= 0 the sign of y would not tell the two sides apart. NaN is not > 0, so it goes through
    a*x and stays NaN (PyTorch's rule). The slope is rounded to x's dtype, as PyTorch does. The math is array
    expressions each way; the fast twins (``kernels.cpu.leaky_relu_forward`` / ``leaky_relu_backward``) are one
    pass each, split across the cores as ReLU's.
    """

    def forward(ctx, x, negative_slope):
        xp = get_array_module(x)
        x = xp.ascontiguousarray(x)
        twin = fast_twin(xp, "leaky_relu_forward")
        if twin is None:
            positive = x > 0
            y = xp.where(positive, x, x * x.dtype.type(negative_slope))
        else:
            y, positive = xp.empty(x.shape, dtype=x.dtype), xp.empty(x.shape, dtype=bool)
            _run(xp, twin, y, x, mask=positive, negative_slope=negative_slope)
        ctx.save_for_backward(positive)
        ctx.negative_slope = negative_slope
        return y

    def backward(ctx, gy):
        positive, = ctx.saved
        xp = get_array_module(gy)
        twin = fast_twin(xp, "leaky_relu_backward")
        if twin is None:
            return xp.where(positive, gy, gy * gy.dtype.type(ctx.negative_slope))
        gx = xp.empty(positive.shape, dtype=gy.dtype)
        _run(xp, twin, gx, xp.ascontiguousarray(gy), positive, negative_slope=ctx.negative_slope)
        return gx


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


class ELU(Function):
    """y = x if x > 0 else a (e^x - 1).   gx = gy if x > 0 else gy (y + a)   (the slope a e^x is y + a)."""

    def forward(ctx, x, alpha):
        xp = get_array_module(x)
        positive = x > 0
        y = xp.where(positive, x, alpha * xp.expm1(xp.minimum(x, 0))).astype(x.dtype, copy=False)
        ctx.save_for_backward(positive, y)
        ctx.alpha = alpha
        return y

    def backward(ctx, gy):
        positive, y = ctx.saved
        return get_array_module(gy).where(positive, gy, gy * (y + ctx.alpha)).astype(gy.dtype, copy=False)


def _erf_loop(x, out):
    for i in range(x.size):
        out[i] = math.erf(x[i])


_compiled = {}


def _erf(x):
    """The error function, elementwise, on the device of ``x``. NumPy has none: on the CPU a Numba loop over
    ``math.erf`` (compiled on first use, so ``import minidl`` does not pay for Numba; run as Python under
    NUMBA_DISABLE_JIT)."""
    xp = get_array_module(x)
    if xp is not np:
        from cupyx.scipy.special import erf
        return erf(x)
    if "erf" not in _compiled:
        from numba import njit
        _compiled["erf"] = njit(cache=True)(_erf_loop)
    out = np.empty(x.shape, dtype=x.dtype)
    _compiled["erf"](np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
    return out


class GELU(Function):
    """y = x Phi(x), Phi the standard normal CDF: each input is kept with the probability that a standard
    normal is below it (Hendrycks & Gimpel, 2016).

    approximate="none":  Phi(x) = (1 + erf(x / sqrt 2)) / 2,   gx = gy (Phi(x) + x phi(x)),
                         phi(x) = e^(-x^2 / 2) / sqrt(2 pi) the normal density.
    approximate="tanh":  y = x (1 + t) / 2 with t = tanh(u), u = sqrt(2 / pi) (x + 0.044715 x^3),
                         gx = gy ((1 + t) / 2 + x (1 - t^2) sqrt(2 / pi) (1 + 3 * 0.044715 x^2) / 2).
    """

    def forward(ctx, x, approximate):
        xp = get_array_module(x)
        if approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            t = xp.tanh(k * (x + 0.044715 * x ** 3))
            y = 0.5 * x * (1 + t)
            ctx.save_for_backward(x, t)
        else:
            cdf = 0.5 * (1 + _erf(x * x.dtype.type(1 / math.sqrt(2))))
            y = x * cdf
            ctx.save_for_backward(x, cdf)
        ctx.approximate = approximate
        return y.astype(x.dtype, copy=False)

    def backward(ctx, gy):
        x, saved = ctx.saved
        xp = get_array_module(x)
        if ctx.approximate == "tanh":
            t, k = saved, math.sqrt(2 / math.pi)
            gx = gy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x))
        else:
            pdf = xp.exp(-0.5 * x * x) * x.dtype.type(1 / math.sqrt(2 * math.pi))
            gx = gy * (saved + x * pdf)
        return gx.astype(gy.dtype, copy=False)


class SiLU(Function):
    """y = x sigmoid(x) (also called swish).   gx = gy s (1 + x (1 - s)), s = sigmoid(x)."""

    def forward(ctx, x):
        xp = get_array_module(x)
        e = xp.exp(-xp.abs(x))
        s = xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        ctx.save_for_backward(x, s)
        return x * s

    def backward(ctx, gy):
        x, s = ctx.saved
        return gy * s * (1 + x * (1 - s))


class Softplus(Function):
    """y = log(1 + e^(b x)) / b, a smooth ReLU; y = x where b x > threshold (there they agree to float precision).

    gx = gy sigmoid(b x) (1 above the threshold). Computed as max(z, 0) + log1p(e^-|z|), z = b x, which
    never overflows.
    """

    def forward(ctx, x, beta, threshold):
        xp = get_array_module(x)
        z = x * beta
        linear = z > threshold
        y = xp.where(linear, x, (xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))) / beta).astype(x.dtype, copy=False)
        ctx.save_for_backward(z, linear)
        return y

    def backward(ctx, gy):
        z, linear = ctx.saved
        xp = get_array_module(z)
        e = xp.exp(-xp.abs(z))
        s = xp.where(z >= 0, 1 / (1 + e), e / (1 + e))
        return xp.where(linear, gy, gy * s).astype(gy.dtype, copy=False)


class Hardtanh(Function):
    """y = min(max(x, lo), hi).   gx = gy where lo < x < hi, else 0 (PyTorch's choice at the corners)."""

    def forward(ctx, x, lo, hi):
        ctx.save_for_backward((x > lo) & (x < hi))
        return get_array_module(x).clip(x, lo, hi).astype(x.dtype, copy=False)

    def backward(ctx, gy):
        inside, = ctx.saved
        return gy * inside


def _maybe_inplace(input, out, inplace: bool):
    """PyTorch's ``inplace=True``: write the result into ``input`` when no graph is being recorded."""
    if inplace and not (is_grad_enabled() and input.requires_grad):
        input.array[...] = out.array
        input._bump_version()  # a graph that saved input (as another op's operand) must not use the new values
        return input
    return out


def relu(input, inplace: bool = False):
    """``max(input, 0)`` elementwise.

    Args:
        input: any shape; float32, float64 or an integer dtype.
        inplace: write the result into ``input`` (only when no graph is being recorded for it).
    """
    if input.dtype not in KERNEL_DTYPES and input.dtype.kind not in "iu":  # the kernel also has integer versions
        check_kernel_float("relu", "input", input)
    return _maybe_inplace(input, ReLU.apply(input), inplace)


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False):
    """``input`` where positive, ``negative_slope * input`` elsewhere.

    Args:
        input: any shape; float32 or float64.
        negative_slope: the slope below 0 (any real number: 0 gives ReLU, above 1 steepens the negative side).
        inplace: write the result into ``input`` (only when no graph is being recorded for it).

    >>> import minidl as mdl
    >>> leaky_relu(mdl.tensor([-2.0, 3.0]), 0.5).tolist()
    [-1.0, 3.0]
    """
    check_kernel_float("leaky_relu", "input", input)
    return _maybe_inplace(input, LeakyReLU.apply(input, float(negative_slope)), inplace)


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


def softmax(input, dim=None, _stacklevel: int = 3, dtype=None):
    """Softmax along ``dim``: non-negative, sums to one.

    Args:
        input: any shape.
        dim: the axis to normalise.
        _stacklevel: PyTorch's internal argument, accepted for compatibility.
        dtype: cast the input to this dtype first (e.g. ``mdl.float64`` for more precision).
    """
    if dtype is not None:
        input = input.to(dtype)
    return Softmax.apply(input, _softmax_dim("softmax", input, dim))


def log_softmax(input, dim=None, _stacklevel: int = 3, dtype=None):
    """``log(softmax(input, dim))``, computed stably.

    Args:
        input: any shape.
        dim: the axis to normalise.
        _stacklevel: PyTorch's internal argument, accepted for compatibility.
        dtype: cast the input to this dtype first.
    """
    if dtype is not None:
        input = input.to(dtype)
    return LogSoftmax.apply(input, _softmax_dim("log_softmax", input, dim))


def elu(input, alpha: float = 1.0, inplace: bool = False):
    """Exponential linear unit: ``input`` where positive, ``alpha * (exp(input) - 1)`` elsewhere.

    Args:
        input: any shape, floating point.
        alpha: the value the output approaches for very negative input is ``-alpha``.
        inplace: write the result into ``input`` (only when no graph is being recorded for it).

    >>> import minidl as mdl
    >>> [round(v, 4) for v in elu(mdl.tensor([-1.0, 2.0])).tolist()]
    [-0.6321, 2.0]
    """
    check_float("elu", "input", input)
    return _maybe_inplace(input, ELU.apply(input, float(alpha)), inplace)


def gelu(input, approximate: str = "none"):
    """Gaussian error linear unit ``x * Phi(x)`` (Phi the standard normal CDF), used by transformers.

    Args:
        input: any shape, floating point.
        approximate: ``"none"`` (exact, with erf) or ``"tanh"`` (the tanh approximation of GPT-2 and BERT).

    >>> import minidl as mdl
    >>> [round(v, 4) for v in gelu(mdl.tensor([-1.0, 1.0])).tolist()]
    [-0.1587, 0.8413]
    """
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    check_float("gelu", "input", input)
    return GELU.apply(input, approximate)


def silu(input, inplace: bool = False):
    """Sigmoid linear unit (swish): ``x * sigmoid(x)``.

    Args:
        input: any shape, floating point.
        inplace: write the result into ``input`` (only when no graph is being recorded for it).
    """
    check_float("silu", "input", input)
    return _maybe_inplace(input, SiLU.apply(input), inplace)


def softplus(input, beta: float = 1.0, threshold: float = 20.0):
    """``log(1 + exp(beta * x)) / beta``, a smooth ReLU; ``x`` itself where ``beta * x > threshold``.

    Args:
        input: any shape, floating point.
        beta: sharpness (the larger, the closer to ReLU).
        threshold: above this value of ``beta * x`` the function is the identity.
    """
    check_float("softplus", "input", input)
    return Softplus.apply(input, float(beta), float(threshold))


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
    """Clamp to ``[min_val, max_val]``; the gradient is 1 strictly inside, 0 outside.

    Args:
        input: any shape, floating point.
        min_val: the lower bound.
        max_val: the upper bound (larger than ``min_val``).
        inplace: write the result into ``input`` (only when no graph is being recorded for it).
    """
    if max_val < min_val:
        raise ValueError(f"hardtanh: max_val ({max_val}) cannot be less than min_val ({min_val})")
    check_float("hardtanh", "input", input)
    return _maybe_inplace(input, Hardtanh.apply(input, float(min_val), float(max_val)), inplace)


def relu6(input, inplace: bool = False):
    """``min(max(x, 0), 6)``, MobileNet's activation (``hardtanh(x, 0, 6)``).

    Args:
        input: any shape, floating point.
        inplace: write the result into ``input`` (only when no graph is being recorded for it).
    """
    return hardtanh(input, 0.0, 6.0, inplace)
