"""Pooling: max_pool2d, avg_pool2d, adaptive_avg_pool2d over NCHW batches.

Each output element summarises one window of its (H, W) plane; the loops live in kernels (``kernels_for``
picks the device's), the Functions here hold the math. Window of output (oh, ow), PyTorch's convention:
rows ``oh*SH - PH + kh*DH`` for kh < KH, columns ``ow*SW - PW + kw*DW`` for kw < KW.

Output size, per spatial dim, as in PyTorch:
    OH = floor((H + 2*PH - DH*(KH-1) - 1) / SH) + 1                       (ceil_mode=False)
    OH = ceil((H + 2*PH - DH*(KH-1) - 1) / SH) + 1, minus 1 if the last window would start at or past
         H + PH (so every window starts inside the input or its top/left padding)   (ceil_mode=True)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..kernels import kernels_for
from .checks import check_kernel_float, check_ndim, pair
from .conv import add_batch_axis

if TYPE_CHECKING:
    from ..tensor import Tensor


class MaxPool2d(Function):
    """y = the max of each window, padding counting as -inf.

    Notation:
        x    (N, C, H, W)
        y    (N, C, OH, OW)     y[n, c, oh, ow] = max over the window of x[n, c]
        idx  (N, C, OH, OW)     h*W + w: where in its (H, W) plane the max was (PyTorch's indices)
    Backward (the max passes the gradient to the element that won, nothing to the others):
        gx[n, c, h, w] = sum of gy[n, c, oh, ow] over the windows with idx[n, c, oh, ow] = h*W + w

    idx is kept as int32 (half the memory traffic of int64) unless a plane has 2**31 elements or more;
    ``return_indices`` hands out an int64 copy, PyTorch's dtype.
    """

    def forward(ctx, x, *, kernel_size, stride, padding, dilation, output_size, return_indices):
        xp = get_array_module(x)
        x = xp.ascontiguousarray(x)
        shape = x.shape[:2] + output_size
        index_dtype = np.int32 if x.shape[2] * x.shape[3] < 2**31 else np.int64
        y, idx = xp.empty(shape, dtype=x.dtype), xp.empty(shape, dtype=index_dtype)
        kernels_for(xp).max_pool2d_forward(x, *kernel_size, *stride, *padding, *dilation, y, idx)
        ctx.save_for_backward(idx)
        ctx.x_shape, ctx.geometry = x.shape, (*kernel_size, *stride, *padding, *dilation)
        return (y, idx.astype(np.int64)) if return_indices else y

    def backward(ctx, gy, gidx=None):
        idx, = ctx.saved
        xp = get_array_module(gy)
        gx = xp.empty(ctx.x_shape, dtype=gy.dtype)
        kernels_for(xp).max_pool2d_backward(xp.ascontiguousarray(gy), idx, *ctx.geometry, gx)
        return gx


class AvgPool2d(Function):
    """y = the sum of each window over the real input elements, divided by a divisor d(oh, ow).

    Notation: x (N, C, H, W), y (N, C, OH, OW). PyTorch's divisor of window (oh, ow):
        divisor_override                  when given;
        else, count_include_pad=True:     the window's size, clipped to the padded input (a ceil_mode window
                                          that runs past the padding does not count the part outside it);
        else:                             the number of real input elements in the window.
    A window that holds no input element gives 0.
    Backward: gx[n, c, h, w] = sum over the windows that contain (h, w) of gy[n, c, oh, ow] / d(oh, ow).
    """

    def forward(ctx, x, *, kernel_size, stride, padding, output_size, count_include_pad, divisor_override):
        xp = get_array_module(x)
        x = xp.ascontiguousarray(x)
        y = xp.empty(x.shape[:2] + output_size, dtype=x.dtype)
        # 0 tells the kernels "no override": PyTorch rejects divisor_override=0, so it cannot be meant
        ctx.geometry = (*kernel_size, *stride, *padding, bool(count_include_pad), divisor_override or 0)
        ctx.x_shape = x.shape
        kernels_for(xp).avg_pool2d_forward(x, *ctx.geometry, y)
        return y

    def backward(ctx, gy):
        xp = get_array_module(gy)
        gx = xp.empty(ctx.x_shape, dtype=gy.dtype)
        kernels_for(xp).avg_pool2d_backward(xp.ascontiguousarray(gy), *ctx.geometry, gx)
        return gx


class AdaptiveAvgPool2d(Function):
    """y = the mean of x over bins that tile the plane into an OH x OW grid.

    Notation: x (N, C, H, W), y (N, C, OH, OW). Bin (oh, ow) holds rows floor(oh*H/OH) .. ceil((oh+1)*H/OH)-1
    and columns floor(ow*W/OW) .. ceil((ow+1)*W/OW)-1 (neighbouring bins overlap when OH does not divide H).
    Backward: gx[n, c, h, w] = sum over the bins that contain (h, w) of gy[n, c, oh, ow] / (bin size).
    """

    def forward(ctx, x, *, output_size):
        xp = get_array_module(x)
        x = xp.ascontiguousarray(x)
        y = xp.empty(x.shape[:2] + output_size, dtype=x.dtype)
        kernels_for(xp).adaptive_avg_pool2d_forward(x, y)
        ctx.x_shape = x.shape
        return y

    def backward(ctx, gy):
        xp = get_array_module(gy)
        if gy.size == 0:
            return xp.zeros(ctx.x_shape, dtype=gy.dtype)
        gx = xp.empty(ctx.x_shape, dtype=gy.dtype)
        kernels_for(xp).adaptive_avg_pool2d_backward(xp.ascontiguousarray(gy), gx)
        return gx


def _pool_output_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output length along one dim (see the module docstring)."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _pool_args(op: str, input, kernel_size, stride, padding, dilation, ceil_mode: bool):
    """Check a pooling call; return (kernel_size, stride, padding, dilation, output_size) as pairs."""
    check_ndim(op, "input", input, (3, 4))
    check_kernel_float(op, "input", input)
    if min(input.shape[-2:]) < 1:
        raise ValueError(f"{op}: expected input with non-zero height and width, got input of shape "
                         f"{tuple(input.shape)}")
    kernel_size = pair(kernel_size, "kernel_size", op)
    if stride is None or (not isinstance(stride, int) and len(stride) == 0):  # PyTorch also accepts []
        stride = kernel_size
    stride = pair(stride, "stride", op)
    padding = pair(padding, "padding", op)
    dilation = pair(dilation, "dilation", op)
    for name, value in (("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)):
        if min(value) < 1:
            raise ValueError(f"{op}: {name} must be positive, got {value}")
    if min(padding) < 0 or padding[0] > kernel_size[0] // 2 or padding[1] > kernel_size[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be non-negative and at most half of kernel_size "
                         f"{kernel_size}")
    output_size = tuple(_pool_output_size(input.shape[-2 + i], kernel_size[i], stride[i], padding[i],
                                          dilation[i], ceil_mode) for i in range(2))
    if min(output_size) < 1:
        raise ValueError(f"{op}: input of shape {tuple(input.shape)} is too small for kernel_size {kernel_size}, "
                         f"stride {stride}, padding {padding}, dilation {dilation}: the output would be "
                         f"{output_size[0]}x{output_size[1]}")
    return kernel_size, stride, padding, dilation, output_size


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """2-D max pooling, PyTorch's ``F.max_pool2d``.

    Args:
        input: (N, C, H, W), or (C, H, W) for a single image.
        kernel_size: int or (KH, KW).
        stride: int or (SH, SW); None (the default) means kernel_size.
        padding: int or (PH, PW) of -inf on each side, at most half the kernel size.
        dilation: int or (DH, DW), the spacing between window taps.
        ceil_mode: round the output size up instead of down (see the module docstring).
        return_indices: also return, as an int64 Tensor, the flat position h*W + w of each max within
            its (H, W) input plane (what ``max_unpool2d`` needs).
    Returns:
        (N, C, OH, OW) (or (C, OH, OW)), and the indices of the same shape when ``return_indices``.

    >>> import minidl as mdl
    >>> max_pool2d(mdl.arange(16.0).reshape(1, 1, 4, 4), 2).numpy().ravel().tolist()
    [5.0, 7.0, 13.0, 15.0]
    """
    kernel_size, stride, padding, dilation, output_size = _pool_args(
        "max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    x, unbatched = add_batch_axis(input)
    out = MaxPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                          output_size=output_size, return_indices=return_indices)
    if not unbatched:
        return out
    if return_indices:
        return out[0].reshape(out[0].shape[1:]), out[1].reshape(out[1].shape[1:])
    return out.reshape(out.shape[1:])


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """2-D average pooling, PyTorch's ``F.avg_pool2d``.

    Args:
        input: (N, C, H, W), or (C, H, W) for a single image.
        kernel_size: int or (KH, KW).
        stride: int or (SH, SW); None (the default) means kernel_size.
        padding: int or (PH, PW) of zeros on each side, at most half the kernel size.
        ceil_mode: round the output size up instead of down (see the module docstring).
        count_include_pad: count the zero padding in the divisor (see :class:`AvgPool2d`).
        divisor_override: divide every window's sum by this non-zero int instead.
    Returns:
        (N, C, OH, OW), or (C, OH, OW).

    >>> import minidl as mdl
    >>> avg_pool2d(mdl.ones(1, 1, 3, 3), 2, stride=1, padding=1).numpy()[0, 0, 0].tolist()
    [0.25, 0.5, 0.5, 0.25]
    """
    if divisor_override is not None and (not isinstance(divisor_override, int) or divisor_override == 0):
        raise ValueError(f"avg_pool2d: divisor_override must be a non-zero int or None, got {divisor_override!r}")
    kernel_size, stride, padding, _, output_size = _pool_args(
        "avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode)
    x, unbatched = add_batch_axis(input)
    y = AvgPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding, output_size=output_size,
                        count_include_pad=count_include_pad, divisor_override=divisor_override)
    return y.reshape(y.shape[1:]) if unbatched else y


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """2-D adaptive average pooling, PyTorch's ``F.adaptive_avg_pool2d``: average down to a fixed size.

    Args:
        input: (N, C, H, W), or (C, H, W) for a single image.
        output_size: int or (OH, OW); an entry None keeps that input size.
    Returns:
        (N, C, OH, OW), or (C, OH, OW). Bin (oh, ow) averages rows floor(oh*H/OH) .. ceil((oh+1)*H/OH)-1
        and the columns alike.

    >>> import minidl as mdl
    >>> adaptive_avg_pool2d(mdl.ones(2, 3, 7, 5), 1).shape
    (2, 3, 1, 1)
    """
    op = "adaptive_avg_pool2d"
    check_ndim(op, "input", input, (3, 4))
    check_kernel_float(op, "input", input)
    if min(input.shape[-2:]) < 1:
        raise ValueError(f"{op}: expected input with non-zero height and width, got input of shape "
                         f"{tuple(input.shape)}")
    if output_size is None or isinstance(output_size, int):
        sizes = (output_size, output_size)
    else:
        sizes = tuple(output_size)
    if len(sizes) != 2 or not all(s is None or isinstance(s, int) and s >= 0 for s in sizes):
        raise ValueError(f"{op}: output_size must be a non-negative int, None, or a pair of them, "
                         f"got {output_size!r}")
    sizes = tuple(input.shape[-2 + i] if s is None else s for i, s in enumerate(sizes))
    x, unbatched = add_batch_axis(input)
    y = AdaptiveAvgPool2d.apply(x, output_size=sizes)
    return y.reshape(y.shape[1:]) if unbatched else y

