"""Convolution and transposed convolution: the math, as four products of the im2col columns.

A 2-D convolution (PyTorch's conv2d is a cross-correlation) is a matrix product once every window of the
input is copied into a column (im2col, "unfold"; with G groups, per group):

    col[(c, kh, kw), (n, oh, ow)] = x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]    (0 in the padding)
    y  = W @ col + b               W as (O, C*KH*KW): the forward
and the chain rule gives the rest:
    gW = gy @ col^T                the sum over (n, oh, ow) done by the GEMM
    gx = col2im(W^T @ gy)          col2im ("fold"), the adjoint of im2col, adds each entry back where it came from
    gb = sum of gy over (n, oh, ow)

gx is the transposed convolution of gy with the same W; so a transposed convolution's forward is conv2d's
gx, and its gradients are conv2d's y and gW with x and gy swapping roles. The four functions below,
:func:`conv_output`, :func:`conv_grad_input`, :func:`conv_grad_weight` and :func:`conv_grad_bias`, are all
both Functions need. Each is one pass of the block engine (ops/conv_blocks.py: the columns made block by
block and shared among the cores), or, for a 3x3 stride-1 convolution with enough channels on the CPU, of
Winograd's algorithm (ops/winograd.py), which computes the same numbers with fewer multiplications, or, for a
thin filter bank at stride 1 on the CPU (a few filters on a few channels per group: LeNet's first layer, a
depthwise convolution), of the same sums taken tap by tap with no columns (ops/direct.py): there the GEMM
would be a few rows high and slow, and the columns would outweigh everything else the layer holds.

ops/textbook.py has the same convolution in plain NumPy, one screen long.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from . import direct, winograd
from .checks import check_kernel_float, check_ndim, check_same_dtype, pair
from .conv_blocks import add_bias, channel_sums, conv_blocks

if TYPE_CHECKING:
    from ..tensor import Tensor


def _winograd(W, geometry, x, out_size) -> bool:
    """Whether Winograd's algorithm computes a product of this convolution (CPU arrays, and
    ``winograd.suits``): ``x`` is the product's input (the input, or the output's gradient), ``out_size`` the
    size of the maps it makes."""
    stride, _, dilation, groups = geometry
    return (get_array_module(x) is np
            and winograd.suits(*W.shape[2:], stride, dilation, groups, W.shape[1] * groups, W.shape[0],
                               x.shape[0] * x.shape[2] * x.shape[3], out_size))


def _direct(W, geometry, x, out_size, input_grad: bool = False) -> bool:
    """Whether the direct sums compute a product of this convolution (CPU arrays, and ``direct.suits``):
    ``out_size`` the convolution's output size, ``input_grad`` for its input gradient."""
    stride, _, _, groups = geometry
    return get_array_module(x) is np and direct.suits(W, stride, groups, out_size, input_grad)


def conv_output(x, W, b, geometry, out_size):
    """y (N, O, OH, OW) = W * x + b:  y[n, g] = W[g] @ col(x)[g][:, n] + b.

    ``geometry`` is (stride, padding (top, left), dilation, groups); ``out_size`` (OH, OW)."""
    if _winograd(W, geometry, x, out_size):
        return winograd.conv_output(x, W, b, geometry[1], out_size)
    if _direct(W, geometry, x, out_size):
        return direct.conv_output(x, W, b, *geometry[1:3], out_size)
    return conv_blocks(*W.shape[2:], *out_size, *geometry, x=x, W=W, b=b, y=True)[0]


def conv_grad_input(gy, W, geometry, input_size):
    """gx (N, C, H, W) = col2im(W[g]^T @ gy[g]): the gradient of W * x in x, which is conv_transpose2d(gy, W)."""
    if _winograd(W, geometry, gy, input_size):
        return winograd.conv_grad_input(gy, W, geometry[1], input_size)
    if _direct(W, geometry, gy, gy.shape[2:], input_grad=True):
        return direct.conv_grad_input(gy, W, *geometry[1:], input_size)
    return conv_blocks(*W.shape[2:], *gy.shape[2:], *geometry, W=W, gy=gy, input_size=input_size, gx=True)[1]


def conv_grad_weight(x, gy, W, geometry):
    """gW (O, C/G, KH, KW) = gy[g] @ col(x)[g]^T: the gradient of W * x in W, summed over (n, oh, ow) by the
    GEMM. W gives the shape (its values are not read)."""
    if _winograd(W, geometry, x, gy.shape[2:]):
        return winograd.conv_grad_weight(x, gy, geometry[1])
    if _direct(W, geometry, x, gy.shape[2:]):
        return direct.conv_grad_weight(x, gy, W, *geometry[1:3])
    return conv_blocks(*W.shape[2:], *gy.shape[2:], *geometry, x=x, W=W, gy=gy, gW=True)[2]


def conv_grad_bias(gy):
    """gb (O,) = the sum of gy over (n, oh, ow)."""
    return channel_sums(gy)


class Conv2d(Function):
    """2-D convolution (a cross-correlation, as in PyTorch):  y = W * x + b.

    Notation (G groups; group g holds input channels g*C/G .. and filters g*O/G ..):
        x    (N, C, H, W)                 input
        W    (O, C/G, KH, KW)             weight
        b    (O,)                         bias
        y    (N, O, OH, OW)               OH = (H + PT + PB - DH*(KH-1) - 1) // SH + 1, OW alike
        col  (G, C/G*KH*KW, N*OH*OW)      im2col(x): column (n, oh, ow) is the window y[n, :, oh, ow] sees
    Forward:
        y[n, g] = W[g] @ col[g][:, n] + b     W[g] as (O/G, C/G*KH*KW)
    Backward:
        gx    = col2im(W[g]^T @ gy[g])        = conv_transpose2d(gy, W): the forward of ConvTranspose2d
        gW[g] = gy[g] @ col[g]^T              = sum_n gy[n, g] @ col[n, g]^T, the sum done by the GEMM
        gb    = sum over n, oh, ow of gy

    ``padding`` is ((PT, PB), (PL, PR)), top/bottom and left/right, so "same" can pad unevenly.
    """

    def forward(ctx, x, W, b=None, *, stride, padding, dilation, groups):
        (PT, PB), (PL, PR) = padding
        OH = (x.shape[2] + PT + PB - dilation[0] * (W.shape[2] - 1) - 1) // stride[0] + 1
        OW = (x.shape[3] + PL + PR - dilation[1] * (W.shape[3] - 1) - 1) // stride[1] + 1
        ctx.geometry = (stride, (PT, PL), dilation, groups)
        ctx.save_for_backward(x, W)
        return conv_output(x, W, b, ctx.geometry, (OH, OW))

    def backward(ctx, gy):
        x, W = ctx.saved
        need_x, need_W, need_b = (ctx.needs_input_grad + (False,))[:3]
        geometry, out_size = ctx.geometry, gy.shape[2:]
        elsewhere_x = need_x and (_winograd(W, geometry, gy, x.shape[2:])
                                  or _direct(W, geometry, gy, out_size, input_grad=True))
        elsewhere_W = need_W and (_winograd(W, geometry, x, out_size) or _direct(W, geometry, x, out_size))
        if (need_x or need_W) and not (elsewhere_x or elsewhere_W):
            # On the block engine, the three lines below in one pass, each block of gy transposed once
            # for all of them (docs/PERFORMANCE.md, "Convolution backward in one pass").
            _, gx, gW, gb = conv_blocks(*W.shape[2:], *out_size, *geometry, x=x if need_W else None, W=W,
                                        gy=gy, input_size=x.shape[2:], gx=need_x, gW=need_W, gb=need_b)
            return gx, gW, gb
        # Otherwise each product takes its own path (Winograd where its tiles fit the maps it makes).
        gx = conv_grad_input(gy, W, ctx.geometry, x.shape[2:]) if need_x else None
        gW = conv_grad_weight(x, gy, W, ctx.geometry) if need_W else None
        gb = conv_grad_bias(gy) if need_b else None
        return gx, gW, gb


class ConvTranspose2d(Function):
    """2-D transposed convolution (the adjoint of conv2d, sometimes called deconvolution):  y = W *^T x + b.

    Notation (G groups):
        x    (N, C, H, W)                 input, C = in_channels
        W    (C, O/G, KH, KW)             weight (PyTorch's layout: in_channels first)
        b    (O,)                         bias
        y    (N, O, OH, OW)               OH = (H-1)*SH - 2*PH + DH*(KH-1) + OPH + 1, OW alike
    y is what conv2d with the same W, stride, padding and dilation sends back as the input gradient of
    an (N, O, OH, OW) input whose output is shaped like x. So, with col(y) = im2col of y-shaped arrays:
    Forward:
        y[n] = col2im(W[g]^T @ x[n, g]) + b          conv2d's gx, with gy := x
    Backward:
        gx[n, g] = W[g] @ col(gy)[n, g]              = conv2d(gy, W), conv2d's forward
        gW[g]    = sum_n x[n, g] @ col(gy)[n, g]^T   conv2d's gW, with x := gy and gy := x
        gb       = sum over n, oh, ow of gy
    The output padding OPH only adds rows at the bottom.
    """

    def forward(ctx, x, W, b=None, *, stride, padding, output_padding, dilation, groups):
        OH = (x.shape[2] - 1) * stride[0] - 2 * padding[0] + dilation[0] * (W.shape[2] - 1) + output_padding[0] + 1
        OW = (x.shape[3] - 1) * stride[1] - 2 * padding[1] + dilation[1] * (W.shape[3] - 1) + output_padding[1] + 1
        ctx.geometry = (stride, padding, dilation, groups)
        ctx.save_for_backward(x, W)
        y = conv_grad_input(x, W, ctx.geometry, (OH, OW))
        if b is not None:
            add_bias(y, b)
        return y

    def backward(ctx, gy):
        x, W = ctx.saved
        need_x, need_W, need_b = (ctx.needs_input_grad + (False,))[:3]
        geometry, size = ctx.geometry, x.shape[2:]  # the size of the maps both products make
        if need_x and need_W and not _winograd(W, geometry, gy, size) and not _direct(W, geometry, gy, size):
            # The same two products in one pass of the engine, from one im2col of gy for both.
            gx, _, gW, _ = conv_blocks(*W.shape[2:], *x.shape[2:], *ctx.geometry, x=gy, W=W, gy=x, y=True,
                                       gW=True)
        else:
            gx = conv_output(gy, W, None, ctx.geometry, x.shape[2:]) if need_x else None
            gW = conv_grad_weight(gy, x, W, ctx.geometry) if need_W else None
        gb = conv_grad_bias(gy) if need_b else None
        return gx, gW, gb


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-D convolution over an NCHW batch, PyTorch's ``F.conv2d``.

    ``y[n, o] = b[o] + sum_{c in o's group, kh, kw} W[o, c, kh, kw] * x[n, c, oh*SH - PT + kh*DH, ow*SW - PL + kw*DW]``

    Args:
        input: (N, C, H, W), or (C, H, W) for a single image.
        weight: (O, C/groups, KH, KW).
        bias: (O,) or None.
        stride: int or (SH, SW).
        padding: int or (PH, PW) zeros on each side; ``"valid"`` (no padding) or ``"same"`` (output as large as
            the input; stride 1 only; when the total padding DH*(KH-1) is odd the extra row goes to the bottom
            and the extra column to the right, as in PyTorch).
        dilation: int or (DH, DW), the spacing between kernel taps.
        groups: split the channels into this many groups convolved separately (groups=C: depthwise).
    Returns:
        (N, O, OH, OW) with ``OH = (H + PT + PB - DH*(KH-1) - 1) // SH + 1`` (OW alike), or (O, OH, OW).

    >>> import minidl as mdl
    >>> conv2d(mdl.ones(1, 1, 4, 4), mdl.ones(1, 1, 3, 3), padding="same").shape
    (1, 1, 4, 4)
    """
    op = "conv2d"
    _check_conv_args(op, input, weight, bias, groups)
    stride = _positive_pair(stride, "stride", op)
    dilation = _positive_pair(dilation, "dilation", op)
    O, Cg, KH, KW = weight.shape
    if Cg < 1:
        raise ValueError(f"{op}: expected weight with at least one input channel, got weight of shape "
                         f"{tuple(weight.shape)}")
    if O % groups:
        raise ValueError(f"{op}: out_channels (weight.shape[0] = {O}) must be divisible by groups={groups} "
                         f"(weight {tuple(weight.shape)})")
    C = input.shape[-3]
    if C != Cg * groups:
        raise ValueError(f"{op}: expected input with {_channels(Cg * groups)} (weight {tuple(weight.shape)}, "
                         f"groups={groups}), got input of shape {tuple(input.shape)}")
    if bias is not None and tuple(bias.shape) != (O,):
        raise ValueError(f"{op}: expected bias of shape ({O},) for weight {tuple(weight.shape)}, "
                         f"got {tuple(bias.shape)}")
    if isinstance(padding, str):
        if padding == "valid":
            padding = ((0, 0), (0, 0))
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions "
                                 f"(stride {stride})")
            total_h, total_w = dilation[0] * (KH - 1), dilation[1] * (KW - 1)
            padding = ((total_h // 2, total_h - total_h // 2), (total_w // 2, total_w - total_w // 2))
        else:
            raise ValueError(f"{op}: invalid padding string {padding!r}; expected 'same', 'valid', "
                             f"an int or a pair of ints")
    else:
        PH, PW = _padding_pair(padding, op)
        padding = ((PH, PH), (PW, PW))
    H, W = input.shape[-2:]
    padded = (H + sum(padding[0]), W + sum(padding[1]))
    kernel = (dilation[0] * (KH - 1) + 1, dilation[1] * (KW - 1) + 1)
    if padded[0] < kernel[0] or padded[1] < kernel[1]:
        raise ValueError(f"{op}: input {tuple(input.shape)} is smaller than the dilated kernel "
                         f"{kernel[0]}x{kernel[1]} (padded size {padded[0]}x{padded[1]}, weight "
                         f"{tuple(weight.shape)}, dilation {dilation})")
    x, unbatched = add_batch_axis(input)
    args = (x, weight) if bias is None else (x, weight, bias)
    y = Conv2d.apply(*args, stride=stride, padding=padding, dilation=dilation, groups=groups)
    return y.reshape(y.shape[1:]) if unbatched else y


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """2-D transposed convolution over an NCHW batch, PyTorch's ``F.conv_transpose2d``.

    The adjoint of :func:`conv2d`: each input pixel scatters ``x[n, c, h, w] * W[c, o]`` into the output
    window at (h*SH - PH, w*SW - PW), so it upsamples by the stride.

    Args:
        input: (N, C, H, W), or (C, H, W) for a single image.
        weight: (C, O/groups, KH, KW): in_channels first, as in PyTorch.
        bias: (O,) or None.
        stride: int or (SH, SW).
        padding: int or (PH, PW): rows and columns removed from each side of the full output.
        output_padding: int or (OPH, OPW): extra rows/columns added at the bottom/right, to pick among the
            output sizes a strided conv2d maps to the same input size. Must be smaller than the stride or
            the dilation.
        groups: split the channels into this many groups.
        dilation: int or (DH, DW).
    Returns:
        (N, O, OH, OW) with ``OH = (H-1)*SH - 2*PH + DH*(KH-1) + OPH + 1`` (OW alike), or (O, OH, OW).

    >>> import minidl as mdl
    >>> conv_transpose2d(mdl.ones(1, 2, 4, 4), mdl.ones(2, 3, 3, 3), stride=2).shape
    (1, 3, 9, 9)
    """
    op = "conv_transpose2d"
    _check_conv_args(op, input, weight, bias, groups)
    stride = _positive_pair(stride, "stride", op)
    dilation = _positive_pair(dilation, "dilation", op)
    padding = _padding_pair(padding, op)
    output_padding = pair(output_padding, "output_padding", op)
    Cw, Og, KH, KW = weight.shape
    if Cw % groups:
        raise ValueError(f"{op}: in_channels (weight.shape[0] = {Cw}) must be divisible by groups={groups} "
                         f"(weight {tuple(weight.shape)})")
    if input.shape[-3] != Cw:
        raise ValueError(f"{op}: expected input with {_channels(Cw)} (weight {tuple(weight.shape)}, "
                         f"groups={groups}), got input of shape {tuple(input.shape)}")
    if bias is not None and tuple(bias.shape) != (Og * groups,):
        raise ValueError(f"{op}: expected bias of shape ({Og * groups},) for weight {tuple(weight.shape)} and "
                         f"groups={groups}, got {tuple(bias.shape)}")
    for i in range(2):
        if not 0 <= output_padding[i] < max(stride[i], dilation[i]):
            raise ValueError(f"{op}: output_padding {output_padding} must be non-negative and smaller than "
                             f"either stride {stride} or dilation {dilation}")
    H, W = input.shape[-2:]
    OH = (H - 1) * stride[0] - 2 * padding[0] + dilation[0] * (KH - 1) + output_padding[0] + 1
    OW = (W - 1) * stride[1] - 2 * padding[1] + dilation[1] * (KW - 1) + output_padding[1] + 1
    if OH < 1 or OW < 1:
        raise ValueError(f"{op}: output size {OH}x{OW} is too small for input {tuple(input.shape)}, weight "
                         f"{tuple(weight.shape)}, stride {stride}, padding {padding}, dilation {dilation}")
    x, unbatched = add_batch_axis(input)
    args = (x, weight) if bias is None else (x, weight, bias)
    y = ConvTranspose2d.apply(*args, stride=stride, padding=padding, output_padding=output_padding,
                              dilation=dilation, groups=groups)
    return y.reshape(y.shape[1:]) if unbatched else y


# ----------------------------------------------------------------------------- argument checks

def add_batch_axis(input):
    """``(x, unbatched)``: a 3-D (C, H, W) input gets a batch axis of 1, removed again from the output."""
    if input.ndim == 3:
        return input.reshape(1, *input.shape), True
    return input, False


def _positive_pair(value, name: str, op: str) -> tuple:
    value = pair(value, name, op)
    if min(value) < 1:
        raise ValueError(f"{op}: {name} must be positive, got {value}")
    return value


def _padding_pair(value, op: str) -> tuple:
    if isinstance(value, str):
        raise ValueError(f"{op}: padding must be an int or a pair of ints, got {value!r}")
    value = pair(value, "padding", op)
    if min(value) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {value}")
    return value


def _channels(n: int) -> str:
    return f"{n} channel" + ("" if n == 1 else "s")


def _check_conv_args(op: str, input, weight, bias, groups):
    """The checks shared by conv2d and conv_transpose2d: ranks, dtypes, devices, groups."""
    check_ndim(op, "input", input, (3, 4))
    check_ndim(op, "weight", weight, 4)
    check_kernel_float(op, "input", input)
    check_same_dtype(op, input=input, weight=weight, bias=bias)
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if min(input.shape[-2:]) < 1:
        raise ValueError(f"{op}: expected input with non-zero height and width, got input of shape "
                         f"{tuple(input.shape)}")
    if min(weight.shape[2:]) < 1:
        raise ValueError(f"{op}: kernel size should be greater than zero, got weight of shape {tuple(weight.shape)}")
