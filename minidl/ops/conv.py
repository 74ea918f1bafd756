"""Convolution and transposed convolution: im2col + one GEMM per group, and each other's backward.

A 2-D convolution (PyTorch's conv2d is a cross-correlation) becomes a matrix product once every window of
the input is copied into a column (im2col, "unfold"):

    col[n, (c, kh, kw), (oh, ow)] = x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]    (0 in the padding)
    y[n] = W @ col[n]        W as (O, C*KH*KW),  y[n] as (O, OH*OW): already NCHW, no transpose

The adjoint of that copy is col2im ("fold"), which adds each column entry back where it came from. The
two shared computations below are written once, on plain arrays, and both Functions use them:

    unfold_matmul:  im2col(x), then  W @ col  and/or  sum_n gy[n] @ col[n]^T
                    = conv2d forward and conv2d's gW; conv_transpose2d's gx and gW
    matmul_fold:    W^T @ gy, then col2im
                    = conv2d's gx; conv_transpose2d's forward

Every product is one BLAS GEMM per (sample, group) on contiguous operands (``xp.matmul``). The columns are
built for a block of samples at a time (or for bands of output rows of one sample, when a single sample
is larger than that) so the column buffer stays under ``COLUMN_BYTES`` whatever the batch size.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..autograd import Function
from ..backend import get_array_module
from ..kernels import kernels_for
from .checks import check_float, check_ndim, check_same_dtype, pair

if TYPE_CHECKING:
    from ..tensor import Tensor

# Largest column buffer (plus the per-sample weight-gradient products) built at once. 8 MiB keeps a block's
# columns in the last-level cache between im2col and the GEMM that reads them: measured 1.7x faster than
# 64 MiB for Fashion-MNIST's second conv at batch 256, and no slower on 256x256 facade images.
COLUMN_BYTES = 8 * 2**20


def _blocks(N: int, OH: int, sample_bytes: int, row_bytes: int):
    """Split the output grid (sample, output row) into blocks (n0, n1, oh0, oh1) of at most COLUMN_BYTES.

    As many whole samples as fit; when one sample alone is larger, bands of its output rows.
    """
    if sample_bytes <= COLUMN_BYTES:
        step = max(1, COLUMN_BYTES // max(sample_bytes, 1))
        for n0 in range(0, N, step):
            yield n0, min(N, n0 + step), 0, OH
    else:
        rows = max(1, COLUMN_BYTES // row_bytes)
        for n in range(N):
            for oh0 in range(0, OH, rows):
                yield n, n + 1, oh0, min(OH, oh0 + rows)


def _block(a, n0: int, n1: int, oh0: int, oh1: int, G: int):
    """The block of the NCHW array ``a`` as (samples, G, channels per group, rows*OW): a view, not a copy.

    Either whole samples (contiguous) or rows of one sample, whose (rows, OW) axes merge into one axis
    of stride 1, so the GEMM can write its result straight into ``a``.
    """
    return a[n0:n1, :, oh0:oh1].reshape(n1 - n0, G, a.shape[1] // G, (oh1 - oh0) * a.shape[3])


def unfold_matmul(x, KH: int, KW: int, OH: int, OW: int, stride, padding, dilation, groups: int,
                  W=None, gy=None):
    """im2col(x) once per block, then ``y = W @ col`` (if ``W`` is given) and ``gW = sum_n gy @ col^T``
    (if ``gy`` is given).

    x (N, C, H, W); W (O, C/G, KH, KW); gy (N, O, OH, OW); ``padding`` is (top, left), the bottom/right
    padding being whatever OH, OW imply. Returns ``(y, gW)``, each None when not asked for:
        y[n, g]  = W[g] @ col[n, g]                      (O/G, OH*OW)
        gW[g]    = sum_n gy[n, g] @ col[n, g]^T          (O/G, C/G*KH*KW)
    """
    xp = get_array_module(x)
    kernels = kernels_for(xp)
    (SH, SW), (PH, PW), (DH, DW), G = stride, padding, dilation, groups
    x = xp.ascontiguousarray(x)
    N, C = x.shape[:2]
    K = C // G * KH * KW  # rows of one group's columns
    O = W.shape[0] if W is not None else gy.shape[1]
    y = gW = None
    if W is not None:
        y = xp.empty((N, O, OH, OW), dtype=x.dtype)
        Wg = W.reshape(G, O // G, K)
    if gy is not None:
        gy = xp.ascontiguousarray(gy)
        gW = xp.zeros((G, O // G, K), dtype=x.dtype)
    row_bytes = C * KH * KW * OW * x.itemsize
    sample_bytes = OH * row_bytes + (O * K * x.itemsize if gy is not None else 0)
    buf = None
    for n0, n1, oh0, oh1 in _blocks(N, OH, sample_bytes, row_bytes):
        shape = (n1 - n0, C, KH, KW, oh1 - oh0, OW)
        if buf is None:  # the first block is the largest; the others reuse its memory
            buf = xp.empty(math.prod(shape), dtype=x.dtype)
        col = buf[:math.prod(shape)].reshape(shape)
        kernels.im2col(x[n0:n1], KH, KW, SH, SW, PH, PW, DH, DW, oh0, col)
        col = col.reshape(n1 - n0, G, K, (oh1 - oh0) * OW)
        if W is not None:
            xp.matmul(Wg, col, out=_block(y, n0, n1, oh0, oh1, G))
        if gy is not None:
            gW += xp.matmul(_block(gy, n0, n1, oh0, oh1, G), col.swapaxes(-1, -2)).sum(axis=0)
    if gW is not None:
        gW = gW.reshape(O, C // G, KH, KW)
    return y, gW


def matmul_fold(gy, W, H: int, W_in: int, stride, padding, dilation, groups: int):
    """``gcol = W^T @ gy`` per block, then col2im: the adjoint of ``unfold_matmul(x, W=W)`` with respect to x.

    gy (N, O, OH, OW); W (O, C/G, KH, KW); the result gx has shape (N, C, H, W_in):
        gcol[n, g] = W[g]^T @ gy[n, g]                   (C/G*KH*KW, OH*OW)
        gx[n]      = col2im(gcol[n])                     each entry added back where im2col read it
    """
    xp = get_array_module(gy)
    kernels = kernels_for(xp)
    (SH, SW), (PH, PW), (DH, DW), G = stride, padding, dilation, groups
    gy = xp.ascontiguousarray(gy)
    N, O, OH, OW = gy.shape
    Cg, KH, KW = W.shape[1:]
    C, K = Cg * G, Cg * KH * KW
    WgT = W.reshape(G, O // G, K).transpose(0, 2, 1)
    gx = xp.zeros((N, C, H, W_in), dtype=gy.dtype)
    row_bytes = C * KH * KW * OW * gy.itemsize
    buf = None
    for n0, n1, oh0, oh1 in _blocks(N, OH, OH * row_bytes, row_bytes):
        shape = (n1 - n0, G, K, (oh1 - oh0) * OW)
        if buf is None:  # the first block is the largest; the others reuse its memory
            buf = xp.empty(math.prod(shape), dtype=gy.dtype)
        gcol = buf[:math.prod(shape)].reshape(shape)
        xp.matmul(WgT, _block(gy, n0, n1, oh0, oh1, G), out=gcol)
        kernels.col2im(gcol.reshape(n1 - n0, C, KH, KW, oh1 - oh0, OW), SH, SW, PH, PW, DH, DW, oh0,
                       gx[n0:n1])
    return gx


class Conv2d(Function):
    """2-D convolution (a cross-correlation, as in PyTorch):  y = W * x + b.

    Notation (G groups; group g holds input channels g*C/G .. and filters g*O/G ..):
        x    (N, C, H, W)                 input
        W    (O, C/G, KH, KW)             weight
        b    (O,)                         bias
        y    (N, O, OH, OW)               OH = (H + PT + PB - DH*(KH-1) - 1) // SH + 1, OW alike
        col  (N, G, C/G*KH*KW, OH*OW)     im2col(x): column (oh, ow) is the window y[..., oh, ow] sees
    Forward:
        y[n, g] = W[g] @ col[n, g] + b    W[g] as (O/G, C/G*KH*KW)
    Backward:
        gb    = sum over n, oh, ow of gy
        gW[g] = sum_n gy[n, g] @ col[n, g]^T
        gx[n] = col2im(W[g]^T @ gy[n, g]) which is conv_transpose2d(gy, W): the forward of ConvTranspose2d

    ``padding`` is ((PT, PB), (PL, PR)), top/bottom and left/right, so "same" can pad unevenly.
    """

    def forward(ctx, x, W, b=None, *, stride, padding, dilation, groups):
        (PT, PB), (PL, PR) = padding
        OH = (x.shape[2] + PT + PB - dilation[0] * (W.shape[2] - 1) - 1) // stride[0] + 1
        OW = (x.shape[3] + PL + PR - dilation[1] * (W.shape[3] - 1) - 1) // stride[1] + 1
        ctx.geometry = (stride, (PT, PL), dilation, groups)
        y, _ = unfold_matmul(x, W.shape[2], W.shape[3], OH, OW, *ctx.geometry, W=W)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        ctx.save_for_backward(x, W)
        return y

    def backward(ctx, gy):
        x, W = ctx.saved
        need_x, need_W, need_b = (ctx.needs_input_grad + (False,))[:3]
        gx = matmul_fold(gy, W, x.shape[2], x.shape[3], *ctx.geometry) if need_x else None
        gW = unfold_matmul(x, W.shape[2], W.shape[3], gy.shape[2], gy.shape[3], *ctx.geometry,
                           gy=gy)[1] if need_W else None
        gb = gy.sum(axis=(0, 2, 3)) if need_b else None
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
        y[n] = col2im(W[g]^T @ x[n, g]) + b          (conv2d's gx, with gy := x)
    Backward:
        gx[n, g] = W[g] @ col(gy)[n, g]              = conv2d(gy, W), conv2d's forward
        gW[g]    = sum_n x[n, g] @ col(gy)[n, g]^T   (conv2d's gW, with x := gy and gy := x)
        gb       = sum over n, oh, ow of gy
    Both gradients come from one im2col of gy. The output padding OPH only adds rows at the bottom.
    """

    def forward(ctx, x, W, b=None, *, stride, padding, output_padding, dilation, groups):
        OH = (x.shape[2] - 1) * stride[0] - 2 * padding[0] + dilation[0] * (W.shape[2] - 1) + output_padding[0] + 1
        OW = (x.shape[3] - 1) * stride[1] - 2 * padding[1] + dilation[1] * (W.shape[3] - 1) + output_padding[1] + 1
        ctx.geometry = (stride, padding, dilation, groups)
        y = matmul_fold(x, W, OH, OW, *ctx.geometry)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        ctx.save_for_backward(x, W)
        return y

    def backward(ctx, gy):
        x, W = ctx.saved
        need_x, need_W, need_b = (ctx.needs_input_grad + (False,))[:3]
        gx = gW = None
        if need_x or need_W:
            gx, gW = unfold_matmul(gy, W.shape[2], W.shape[3], x.shape[2], x.shape[3], *ctx.geometry,
                                   W=W if need_x else None, gy=x if need_W else None)
        gb = gy.sum(axis=(0, 2, 3)) if need_b else None
        return gx, gW, gb


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
    check_float(op, "input", input)
    check_same_dtype(op, input=input, weight=weight, bias=bias)
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if min(input.shape[-2:]) < 1:
        raise ValueError(f"{op}: expected input with non-zero height and width, got input of shape "
                         f"{tuple(input.shape)}")


def add_batch_axis(input):
    """``(x, unbatched)``: a 3-D (C, H, W) input gets a batch axis of 1, removed again from the output."""
    if input.ndim == 3:
        return input.reshape(1, *input.shape), True
    return input, False


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
