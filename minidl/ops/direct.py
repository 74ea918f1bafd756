"""Direct convolution: the sums over the taps, with no columns, for thin filter banks on the CPU.

ops/conv.py states a convolution as products of im2col columns; here the same sums are taken tap by tap,
straight from the (padded) input, by the kernels ``conv_direct`` (y), ``conv_direct_grad_input`` (gx) and
``conv_direct_grad_weight`` (gW) of ``kernels/cpu.py`` (plain twins in ``kernels/reference.py``):

    y[n, o, oh, ow]  = b[o] + sum_{c, kh, kw} W[o, c, kh, kw] * xp[n, g*C/G + c, oh + kh*DH, ow + kw*DW]
    gxp[n, g*C/G + c, oh + kh*DH, ow + kw*DW] += W[o, c, kh, kw] * gy[n, o, oh, ow]
    gW[o, c, kh, kw] = sum_{n, oh, ow} gy[n, o, oh, ow] * xp[n, g*C/G + c, oh + kh*DH, ow + kw*DW]

with xp the input with its padding around it (:func:`pad`), gxp the gradient of xp (:func:`unpad` keeps the
part that is x's), g = o // (O/G) the group of filter o, and stride 1.

It pays where im2col's GEMM is a few rows high (at most 16 filters: LeNet's layers, depthwise convolutions, the
last layer of a segmentation net): there the GEMM runs far below the core's speed, and the columns, KH*KW
copies of the input, are the layer's largest buffer. Each kernel takes four taps of two filters (or, for
the input gradient, two channels) in one pass, so that its runs are loaded and stored once for eight
multiply-adds (:func:`suits`; numbers: docs/PERFORMANCE.md, "Direct convolution for thin filter banks").
"""
from __future__ import annotations

import numpy as np

from ..kernels import kernels_for, kernels_in_use

# The direct sums run a stride-1 convolution with at most MAX_FILTERS filters per group (its input gradient:
# at most MAX_INPUT_GRAD_FILTERS, whose taps its passes run over) on at most MAX_CHANNELS input channels per
# group, whose output planes have at least MIN_POSITIONS positions: shorter passes cost more than they do
# (numbers: docs/PERFORMANCE.md, "Direct convolution for thin filter banks").
MAX_FILTERS = 16
MAX_INPUT_GRAD_FILTERS = 8
MAX_CHANNELS = 64
MIN_POSITIONS = 100


def suits(W, stride, groups: int, out_size, input_grad: bool = False) -> bool:
    """Whether the direct sums compute a product of a convolution of NumPy arrays with conv2d's weight W
    (O, C/G, KH, KW) and output size ``out_size``: its output and weight gradient, or (``input_grad``) its
    input gradient. The fast kernels in use (the reference path keeps im2col, as it does instead of
    Winograd), stride 1, and the limits above."""
    filters = W.shape[0] // groups
    return (kernels_in_use() == "fast" and tuple(stride) == (1, 1)
            and filters <= min(MAX_FILTERS, MAX_INPUT_GRAD_FILTERS if input_grad else MAX_FILTERS)
            and W.shape[1] <= MAX_CHANNELS and out_size[0] * out_size[1] >= MIN_POSITIONS)


def padded_size(W, dilation, out_size) -> tuple:
    """(Hp, Wp): the rows and columns of the padded input that a stride-1 output of ``out_size`` reads."""
    return tuple(o + d * (k - 1) for o, d, k in zip(out_size, dilation, W.shape[2:]))


def pad(x, padding, size):
    """x (N, C, H, W) with its padding around it: rows -PT .. Hp-PT-1 and columns -PL .. Wp-PL-1 of x, zero
    outside it, as one contiguous (N, C, Hp, Wp) array; x itself when there is nothing to add or cut."""
    (PT, PL), (Hp, Wp) = padding, size
    N, C, H, W = x.shape
    if (PT, PL) == (0, 0) and (H, W) == (Hp, Wp):
        return np.ascontiguousarray(x)
    out = np.zeros((N, C, Hp, Wp), dtype=x.dtype)
    h, w = min(H, Hp - PT), min(W, Wp - PL)
    out[:, :, PT:PT + h, PL:PL + w] = x[:, :, :h, :w]
    return out


def unpad(gxp, padding, input_size):
    """The gradient of x (N, C, H, W) from that of :func:`pad`'s output: the padding's part dropped."""
    (PT, PL), (H, W) = padding, input_size
    N, C, Hp, Wp = gxp.shape
    if (PT, PL) == (0, 0) and (H, W) == (Hp, Wp):
        return gxp
    gx = np.zeros((N, C, H, W), dtype=gxp.dtype)
    h, w = min(H, Hp - PT), min(W, Wp - PL)
    gx[:, :, :h, :w] = gxp[:, :, PT:PT + h, PL:PL + w]
    return gx


def conv_output(x, W, b, padding, dilation, out_size):
    """y (N, O, OH, OW) = W * x + b; ``padding`` is (top, left)."""
    y = np.empty((x.shape[0], W.shape[0], *out_size), dtype=x.dtype)
    b = np.zeros(W.shape[0], dtype=x.dtype) if b is None else b
    kernels_for(np).conv_direct(pad(x, padding, padded_size(W, dilation, out_size)), W, b, *dilation, y)
    return y


def conv_grad_input(gy, W, padding, dilation, groups: int, input_size):
    """gx (N, C, H, W): the gradient of W * x in x, i.e. conv_transpose2d(gy, W)."""
    gxp = np.zeros((gy.shape[0], W.shape[1] * groups, *padded_size(W, dilation, gy.shape[2:])), dtype=gy.dtype)
    kernels_for(np).conv_direct_grad_input(np.ascontiguousarray(gy), W, *dilation, gxp)
    return unpad(gxp, padding, input_size)


def conv_grad_weight(x, gy, W, padding, dilation):
    """gW (O, C/G, KH, KW): the gradient of W * x in W. W gives the shape (its values are not read)."""
    gW = np.empty(W.shape, dtype=gy.dtype)
    xp = pad(x, padding, padded_size(W, dilation, gy.shape[2:]))
    kernels_for(np).conv_direct_grad_weight(xp, np.ascontiguousarray(gy), *dilation, gW)
    return gW
