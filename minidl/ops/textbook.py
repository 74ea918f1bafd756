"""Textbook conv2d, max pooling, batch norm and ReLU: the fast ops rewritten to be read, in plain NumPy.

Each Function here computes the same numbers as its fast twin, :class:`~minidl.ops.conv.Conv2d` in ops/conv.py,
:class:`~minidl.ops.pool.MaxPool2d` in ops/pool.py, :class:`~minidl.ops.norm.BatchNorm` in ops/norm.py and
:class:`~minidl.ops.activation.ReLU` in ops/activation.py, without any of their speed machinery: no compiled
kernels, no blocks of columns shared among threads, no Winograd, no GPU. Read one class on one screen, its
docstring (shapes, forward, every gradient) and then the code that does just that; tests/test_textbook.py checks
each against finite differences, against its fast twin and against PyTorch. The functions at the bottom take and
return Tensors, like ``minidl.nn.functional``, but only what the textbook needs: groups=1, symmetric padding,
batch norm in training mode. NumPy (CPU) arrays only.

Convolution and max pooling share :func:`im2col` (every window of the input copied out as one column) and
:func:`col2im` (its adjoint: every column entry added back where it came from), both a loop over the KH*KW
taps of a window.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..autograd import Function
from .checks import pair

if TYPE_CHECKING:
    from ..tensor import Tensor

__all__ = ["conv2d", "max_pool2d", "batch_norm", "relu", "im2col", "col2im"]


def _taps(k: int, D: int, S: int, out: int) -> slice:
    """The rows (or columns) of the padded input that tap k reads in windows 0 .. out-1."""
    return slice(k * D, k * D + (out - 1) * S + 1, S)


def im2col(x, KH: int, KW: int, stride, padding, dilation, pad_value=0.0):
    """col (C, KH, KW, N, OH, OW), col[c, kh, kw, n, oh, ow] = xpad[n, c, oh*SH + kh*DH, ow*SW + kw*DW].

    xpad is x (N, C, H, W) with PH rows of ``pad_value`` above and below and PW columns left and right;
    OH = (H + 2*PH - DH*(KH-1) - 1) // SH + 1, OW alike. As a matrix, col is (C*KH*KW, N*OH*OW): one
    column per window.
    """
    (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
    xpad = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)), constant_values=pad_value).swapaxes(0, 1)
    OH = (xpad.shape[2] - DH * (KH - 1) - 1) // SH + 1
    OW = (xpad.shape[3] - DW * (KW - 1) - 1) // SW + 1
    col = np.empty((x.shape[1], KH, KW, x.shape[0], OH, OW), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):  # tap (kh, kw) of every window at once: a strided slice of xpad
            col[:, kh, kw] = xpad[:, :, _taps(kh, DH, SH, OH), _taps(kw, DW, SW, OW)]
    return col


def col2im(gcol, x_shape, stride, padding, dilation):
    """gx (N, C, H, W), the adjoint of :func:`im2col`: gx[n, c, h, w] = the sum of the entries of gcol
    (C, KH, KW, N, OH, OW) that im2col copied from x[n, c, h, w]; what lands in the padding is dropped."""
    (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
    N, C, H, W = x_shape
    _, KH, KW, _, OH, OW = gcol.shape
    gxpad = np.zeros((C, N, H + 2 * PH, W + 2 * PW), dtype=gcol.dtype)
    for kh in range(KH):
        for kw in range(KW):  # windows overlap, so several taps read one pixel: their gradients add up
            gxpad[:, :, _taps(kh, DH, SH, OH), _taps(kw, DW, SW, OW)] += gcol[:, kh, kw]
    return np.ascontiguousarray(gxpad[:, :, PH:PH + H, PW:PW + W].swapaxes(0, 1))


class TextbookConv2d(Function):
    """2-D convolution (a cross-correlation, as PyTorch's), groups=1:  y = W * x + b.

    Notation:
        x    (N, C, H, W)             input
        W    (O, C, KH, KW)           weight, used as the matrix (O, C*KH*KW)
        b    (O,)                     bias, or none
        y    (N, O, OH, OW)           OH = (H + 2*PH - DH*(KH-1) - 1) // SH + 1, OW alike
        col  (C*KH*KW, N*OH*OW)       im2col(x): column (n, oh, ow) is the window that y[n, :, oh, ow] sees
        gy   (O, N*OH*OW)             the upstream gradient, as a matrix like y's
    Forward:
        y = W @ col + b
    Backward:
        gx = col2im(W^T @ gy)         = conv_transpose2d(gy, W): each column entry added back where it came from
        gW = gy @ col^T               the sum over (n, oh, ow) is done by the matrix product
        gb = sum of gy over (n, oh, ow)
    """

    def forward(ctx, x, W, b=None, *, stride, padding, dilation):
        O, C, KH, KW = W.shape
        col = im2col(x, KH, KW, stride, padding, dilation)
        N, OH, OW = col.shape[3:]
        y = W.reshape(O, C * KH * KW) @ col.reshape(C * KH * KW, N * OH * OW)
        if b is not None:
            y += b[:, None]
        ctx.save_for_backward(W, col)
        ctx.x_shape, ctx.geometry = x.shape, (stride, padding, dilation)
        return np.ascontiguousarray(y.reshape(O, N, OH, OW).swapaxes(0, 1))

    def backward(ctx, gy):
        W, col = ctx.saved
        O, K = W.shape[0], W[0].size  # K = C*KH*KW
        gy = gy.swapaxes(0, 1).reshape(O, -1)
        gx = col2im((W.reshape(O, K).T @ gy).reshape(col.shape), ctx.x_shape, *ctx.geometry)
        gW = (gy @ col.reshape(K, -1).T).reshape(W.shape)
        gb = gy.sum(axis=1)  # dropped by autograd when there is no bias
        return gx, gW, gb


class TextbookMaxPool2d(Function):
    """y = the max of each window, the padding counting as -inf.

    Notation:
        x    (N, C, H, W)
        y    (N, C, OH, OW)           OH = (H + 2*PH - DH*(KH-1) - 1) // SH + 1, OW alike
        col  (KH*KW, N, C, OH, OW)    im2col of x padded with -inf, each (H, W) plane taken as a 1-channel image
        idx  (N, C, OH, OW)           which tap k = kh*KW + kw of its window holds the max (the first, on ties)
    Forward:
        y = col[idx],  idx = argmax over k of col
    Backward (only the winner of a window moves y, so it alone gets that window's gradient):
        gx = col2im(onehot(idx) * gy)  col2im adds: a pixel gets the sum of gy over the windows it won

    Where the fast op and PyTorch differ, at values no trained network holds: a window with several NaNs
    sends its gradient to the first NaN (they: the last), and in a window whose inputs are all -inf a padding
    tap may win the tie and drop the gradient (they give it to the window's first input element).
    """

    def forward(ctx, x, *, kernel_size, stride, padding, dilation):
        N, C, H, W = x.shape
        col = im2col(x.reshape(N * C, 1, H, W), *kernel_size, stride, padding, dilation, pad_value=-np.inf)
        col = col.reshape(-1, N, C, *col.shape[-2:])
        idx = col.argmax(axis=0)  # NumPy's argmax returns the first of equal maxima, as PyTorch picks
        ctx.save_for_backward(idx)
        ctx.x_shape, ctx.kernel_size, ctx.geometry = x.shape, kernel_size, (stride, padding, dilation)
        return col.max(axis=0)

    def backward(ctx, gy):
        idx, = ctx.saved
        (N, C, H, W), (KH, KW) = ctx.x_shape, ctx.kernel_size
        taps = np.arange(KH * KW).reshape(-1, 1, 1, 1, 1)
        gcol = np.where(taps == idx, gy, 0)  # (KH*KW, N, C, OH, OW): gy at the winning tap, 0 elsewhere
        gx = col2im(gcol.reshape(1, KH, KW, N * C, *gy.shape[2:]), (N * C, 1, H, W), *ctx.geometry)
        return gx.reshape(ctx.x_shape)


class TextbookBatchNorm(Function):
    """y = W * xhat + b, x normalised per channel with the statistics of this batch (training mode).

    Notation: x (N, C) or (N, C, H, W); W, b (C,), broadcast along axis 1. For each channel, mean() and
    sum() run over the "reduced axes", every axis but 1: the M = N*H*W positions (n, h, w).
    Forward:
        mu = mean(x),  var = mean((x - mu)^2)  (biased, divided by M),  s = 1 / sqrt(var + eps)
        xhat = (x - mu) * s,  y = W * xhat + b
    Backward:
        gb = sum(gy)
        gW = sum(gy * xhat)
        gx = W * s * (gy - mean(gy) - xhat * mean(gy * xhat))

    (mu and var depend on every x of the channel: the two means remove from W * s * gy its shift of the
    whole channel and its part along xhat.) Running statistics, the averages that eval mode normalises
    with, are not kept here: ops/norm.py's BatchNorm updates them; they take no part in the gradient.
    """

    def forward(ctx, x, W, b, *, eps):
        axes = (0,) + tuple(range(2, x.ndim))
        per_channel = (1, -1) + (1,) * (x.ndim - 2)  # a (C,) vector broadcast along axis 1
        mu = x.mean(axis=axes, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
        s = 1 / np.sqrt(var + eps)
        xhat = (x - mu) * s
        ctx.save_for_backward(xhat, s, W)
        ctx.axes = axes
        return W.reshape(per_channel) * xhat + b.reshape(per_channel)

    def backward(ctx, gy):
        xhat, s, W = ctx.saved
        axes = ctx.axes
        gb = gy.sum(axis=axes)
        gW = (gy * xhat).sum(axis=axes)
        mean_gy = gy.mean(axis=axes, keepdims=True)
        mean_gy_xhat = (gy * xhat).mean(axis=axes, keepdims=True)
        gx = W.reshape(s.shape) * s * (gy - mean_gy - xhat * mean_gy_xhat)
        return gx, gW, gb


class TextbookReLU(Function):
    """y = max(x, 0).   gx = gy where x > 0, else 0 (at a NaN x, gy passes, as in PyTorch)."""

    def forward(ctx, x):
        ctx.save_for_backward(x <= 0)  # False at NaN
        return np.maximum(x, 0)

    def backward(ctx, gy):
        blocked, = ctx.saved
        return np.where(blocked, 0, gy)  # not gy * mask: an inf in gy times 0 would give NaN


# ------------------------------------------------------------------------------------- on Tensors

def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1) -> Tensor:
    """Textbook 2-D convolution; ``minidl.nn.functional.conv2d`` with groups=1 and symmetric padding.

    Args:
        input: (N, C, H, W).
        weight: (O, C, KH, KW).
        bias: (O,) or None.
        stride: int or (SH, SW).
        padding: int or (PH, PW) zeros on each side.
        dilation: int or (DH, DW), the spacing between kernel taps.
    Returns:
        (N, O, OH, OW), ``OH = (H + 2*PH - DH*(KH-1) - 1) // SH + 1`` (OW alike).

    >>> import minidl as mdl
    >>> conv2d(mdl.ones(1, 1, 4, 4), mdl.ones(1, 1, 3, 3), padding=1).numpy()[0, 0, 0].tolist()
    [4.0, 6.0, 6.0, 4.0]
    """
    args = (input, weight) if bias is None else (input, weight, bias)
    return TextbookConv2d.apply(*args, stride=pair(stride, "stride", "conv2d"),
                                padding=pair(padding, "padding", "conv2d"),
                                dilation=pair(dilation, "dilation", "conv2d"))


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1) -> Tensor:
    """Textbook 2-D max pooling; ``minidl.nn.functional.max_pool2d`` without ceil_mode or indices.

    Args:
        input: (N, C, H, W).
        kernel_size: int or (KH, KW).
        stride: int or (SH, SW); None (the default) means kernel_size.
        padding: int or (PH, PW) of -inf on each side (PyTorch allows at most half the kernel size).
        dilation: int or (DH, DW), the spacing between window taps.
    Returns:
        (N, C, OH, OW), ``OH = (H + 2*PH - DH*(KH-1) - 1) // SH + 1`` (OW alike).

    >>> import minidl as mdl
    >>> max_pool2d(mdl.arange(16.0).reshape(1, 1, 4, 4), 2).numpy().ravel().tolist()
    [5.0, 7.0, 13.0, 15.0]
    """
    kernel_size = pair(kernel_size, "kernel_size", "max_pool2d")
    stride = kernel_size if stride is None else pair(stride, "stride", "max_pool2d")
    return TextbookMaxPool2d.apply(input, kernel_size=kernel_size, stride=stride,
                                   padding=pair(padding, "padding", "max_pool2d"),
                                   dilation=pair(dilation, "dilation", "max_pool2d"))


def batch_norm(input: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Textbook batch normalisation in training mode: ``minidl.nn.functional.batch_norm(input, None, None,
    weight, bias, training=True, eps=eps)``, normalising with this batch's statistics and keeping none.

    Args:
        input: (N, C) or (N, C, H, W) (any (N, C, *) works).
        weight: (C,) scale, or None for 1.
        bias: (C,) shift, or None for 0.
        eps: added to the variance before the square root.
    Returns:
        A tensor shaped like ``input``.

    >>> import minidl as mdl
    >>> batch_norm(mdl.tensor([[1.0], [3.0]]), eps=0.0).numpy().ravel().tolist()
    [-1.0, 1.0]
    """
    C, dtype = input.shape[1], input.array.dtype
    return TextbookBatchNorm.apply(input, np.ones(C, dtype) if weight is None else weight,
                                   np.zeros(C, dtype) if bias is None else bias, eps=eps)


def relu(input: Tensor) -> Tensor:
    """Textbook ``max(input, 0)``, elementwise; ``minidl.nn.functional.relu``.

    >>> import minidl as mdl
    >>> relu(mdl.tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """
    return TextbookReLU.apply(input)
