"""Convolution and transposed convolution: im2col + one GEMM per block of samples, and each other's backward.

A 2-D convolution (PyTorch's conv2d is a cross-correlation) becomes a matrix product once every window of
the input is copied into a column (im2col, "unfold"). The columns of all the samples of a block sit side
by side in one matrix, channel-major:

    col[(c, kh, kw), (n, oh, ow)] = x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]    (0 in the padding)
    yT = W @ col         W as (O, C*KH*KW),  yT as (O, N*OH*OW)
    y[n, o] = yT[o, n] + b[o]                 one pass that puts the sample axis first and adds the bias

One large GEMM per block runs near the BLAS peak, where one small GEMM per sample (say 32x288 @ 288x121)
does not; and the weight gradient sum_n gy[n] @ col[n]^T is then one GEMM over the joint (n, oh, ow)
axis, with no per-sample partial products to add up. The price is the transposing pass above and a
transposed copy of gy in the backward (``gyT``, (O, N, OH, OW)), both made block by block and cheap next
to the GEMMs.

The adjoint of the copy is col2im ("fold"), which adds each column entry back where it came from. Every
product of both Functions is one of four per-block computations, written once in :func:`conv_blocks`:

    y  = W @ im2col(x) (+ b)       conv2d's forward; conv_transpose2d's gx
    gW = gyT @ im2col(x)^T         conv2d's gW; conv_transpose2d's gW (with x and gy swapping roles)
    gx = col2im(W^T @ gyT)         conv2d's gx; conv_transpose2d's forward
    gb = sum of gyT                conv2d's gb
and a backward asks for its gradients in one pass, so each block of gy is transposed once for all.

The columns are built for a block of samples at a time (or for bands of output rows of one sample, when
a single sample is larger than that), about ``blocks.BLOCK_BYTES`` each, so the buffers stay small
whatever the batch size. On the CPU the blocks are shared among worker threads, one per core, each running
im2col, the GEMM and the transposing pass of its own blocks while they sit in its core's cache
(``blocks.on_workers``): measured 1.2-2.2x faster than running each step on all cores in turn (report
001's conv2 forward at batch 128: 6.6 -> 3.5 ms), as the threads never wait for each other between steps.

On the CPU, a 3x3 stride-1 convolution with enough channels takes another road to the same four products:
Winograd's F(2x2, 3x3), with 2.25x fewer multiplications (``ops/winograd.py``; :func:`conv_blocks`
hands it over).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..autograd import Function
from ..backend import get_array_module, threads
from ..kernels import kernels_for
from . import blocks, winograd
from .checks import check_kernel_float, check_ndim, check_same_dtype, pair

if TYPE_CHECKING:
    from ..tensor import Tensor

def _swapped_block(xp, buf, g, n0: int, n1: int, oh0: int, oh1: int):
    """Block (n0:n1, oh0:oh1) of g (N, O, OH, OW) with its first two axes swapped, (O, Nb, R, OW), copied
    into ``buf``: the block's columns of ``gT`` in the GEMMs below. Each worker swaps its own blocks,
    so the copy is shared among the cores and stays in cache for the GEMM that reads it."""
    O, OW = g.shape[1], g.shape[3]
    buf, block = blocks.buffer(xp, buf, (O, n1 - n0, oh1 - oh0, OW), g.dtype)
    xp.copyto(block, g[n0:n1, :, oh0:oh1].swapaxes(0, 1))
    return buf, block


def conv_blocks(KH: int, KW: int, OH: int, OW: int, stride, padding, dilation, groups: int, *, x=None, W=None,
                b=None, gy=None, input_size=None, y=False, gx=False, gW=False, gb=False):
    """The products of a convolution over the output grid (n, oh, ow), block by block: whichever of
    y, gx, gW, gb are asked for, from one pass over the blocks.

    x (N, C, H, W_in) the input (needed for y and gW); W (O, C/G, KH, KW); b (O,) or None; gy (N, O, OH, OW)
    the output gradient (needed for gx, gW, gb); ``input_size`` (H, W_in) when x is not given; ``padding``
    is (top, left), the bottom/right padding being whatever OH, OW imply. Per block, with col its im2col
    columns and gyT its gy with the first two axes swapped (:func:`_swapped_block`):
        y[n, g]  = W[g] @ col[g][:, n] + b               (O/G, OH*OW)
        gW[g]   += gyT[g] @ col[g]^T                     (O/G, C/G*KH*KW): the sum over samples in the GEMM
        gb      += sum of gyT over its columns
        gx      += col2im(W[g]^T @ gyT[g])               the adjoint of the im2col + GEMM of y
    Each worker thread adds up the gW and gb of its own blocks; the workers' sums are added at the end.
    A convolution that ``winograd.suits`` is computed by ``winograd.products`` instead (same results).
    Returns ``(y, gx, gW, gb)``, None for what was not asked for.
    """
    xp = get_array_module(x if x is not None else gy)
    kernels = kernels_for(xp)
    (SH, SW), (PH, PW), (DH, DW), G = stride, padding, dilation, groups
    if x is not None:
        x = xp.ascontiguousarray(x)
        N, C, H, W_in = x.shape
        dtype = x.dtype
    else:
        N, C, (H, W_in), dtype = gy.shape[0], W.shape[1] * G, input_size, gy.dtype
    O = W.shape[0] if W is not None else gy.shape[1]
    if xp is np and winograd.suits(KH, KW, stride, dilation, G, C, O):
        out_y, out_gx, out_gW = winograd.products(OH, OW, padding, x=x, W=W, b=b, gy=gy, input_size=(H, W_in),
                                                  y=y, gx=gx, gW=gW)
        return out_y, out_gx, out_gW, _channel_sums(gy) if gb else None
    K = C // G * KH * KW  # rows of one group's columns
    out_y = xp.empty((N, O, OH, OW), dtype=dtype) if y else None
    out_gx = xp.zeros((N, C, H, W_in), dtype=dtype) if gx else None
    if W is not None:
        Wg = W.reshape(G, O // G, K)
    unfold = y or gW

    def work(share, in_worker):
        im2col, matmul = blocks.tools(xp, kernels.im2col, in_worker)
        col2im = blocks.tools(xp, kernels.col2im, in_worker)[0]
        col_buf = yT_buf = gyT_buf = gcol_buf = sum_gW = sum_gb = None
        for n0, n1, oh0, oh1 in share:
            Nb, R = n1 - n0, oh1 - oh0
            P = Nb * R * OW
            if unfold:
                col_buf, col = blocks.buffer(xp, col_buf, (C, KH, KW, Nb, R, OW), dtype)
                im2col(x[n0:n1], KH, KW, SH, SW, PH, PW, DH, DW, oh0, col)
                col = col.reshape(G, K, P)
            if y:
                yT_buf, yT = blocks.buffer(xp, yT_buf, (G, O // G, P), dtype)
                matmul(Wg, col, out=yT)
                yT = yT.reshape(O, Nb, R, OW).swapaxes(0, 1)
                if b is None:
                    out_y[n0:n1, :, oh0:oh1] = yT
                else:
                    xp.add(yT, b.reshape(O, 1, 1), out=out_y[n0:n1, :, oh0:oh1])
            if gy is None:
                continue
            gyT_buf, gyT = _swapped_block(xp, gyT_buf, gy, n0, n1, oh0, oh1)
            gyT = gyT.reshape(G, O // G, P)
            if gb:
                part = gyT.reshape(O, P).sum(axis=1)
                sum_gb = part if sum_gb is None else xp.add(sum_gb, part, out=sum_gb)
            if gW:
                part = matmul(gyT, col.swapaxes(-1, -2))
                sum_gW = part if sum_gW is None else xp.add(sum_gW, part, out=sum_gW)
            if gx:
                gcol_buf, gcol = blocks.buffer(xp, gcol_buf, (G, K, P), dtype)
                matmul(Wg.transpose(0, 2, 1), gyT, out=gcol)
                col2im(gcol.reshape(C, KH, KW, Nb, R, OW), SH, SW, PH, PW, DH, DW, oh0, out_gx[n0:n1])
        return sum_gW, sum_gb

    column_bytes = dtype.itemsize * (C * KH * KW * (unfold + gx) + O * (y + (gy is not None)))
    sums = blocks.on_workers(xp, blocks.split(N, OH, OW, column_bytes), work, by_sample=gx)
    out_gW = xp.zeros((G, O // G, K), dtype=dtype) if gW else None  # zeros: an empty batch has no blocks
    out_gb = xp.zeros(O, dtype=dtype) if gb else None
    for part_gW, part_gb in sums:
        if part_gW is not None:
            out_gW += part_gW
        if part_gb is not None:
            out_gb += part_gb
    return out_y, out_gx, None if out_gW is None else out_gW.reshape(O, C // G, KH, KW), out_gb


def _add_bias(y, b) -> None:
    """y[:, o] += b[o] in place, split across the cores on the CPU (a full pass over a large output)."""
    b4 = b.reshape(1, -1, 1, 1)
    if isinstance(y, np.ndarray):
        threads.elementwise(np.add, y, y, np.broadcast_to(b4, y.shape))
    else:
        y += b4


def _channel_sums(g):
    """g.sum(axis=(0, 2, 3)), on the CPU as partial sums over sample ranges, one per core."""
    if not isinstance(g, np.ndarray) or threads.workers() < 2 or g.shape[0] < 2:
        return g.sum(axis=(0, 2, 3))
    N, parts = g.shape[0], min(threads.workers(), g.shape[0])
    ranges = [slice(N * i // parts, N * (i + 1) // parts) for i in range(parts)]
    return sum(threads.run_each(lambda s: g[s].sum(axis=(0, 2, 3)), ranges))


class Conv2d(Function):
    """2-D convolution (a cross-correlation, as in PyTorch):  y = W * x + b.

    Notation (G groups; group g holds input channels g*C/G .. and filters g*O/G ..):
        x    (N, C, H, W)                 input
        W    (O, C/G, KH, KW)             weight
        b    (O,)                         bias
        y    (N, O, OH, OW)               OH = (H + PT + PB - DH*(KH-1) - 1) // SH + 1, OW alike
        col  (G, C/G*KH*KW, N*OH*OW)      im2col(x): column (n, oh, ow) is the window y[n, :, oh, ow] sees
        gyT  (G, O/G, N*OH*OW)            gy with its sample and channel axes swapped
    Forward:
        y[n, g] = W[g] @ col[g][:, n] + b     W[g] as (O/G, C/G*KH*KW)
    Backward:
        gb    = sum over n, oh, ow of gy
        gW[g] = gyT[g] @ col[g]^T             = sum_n gy[n, g] @ col[n, g]^T, the sum done by the GEMM
        gx    = col2im(W[g]^T @ gyT[g])       which is conv_transpose2d(gy, W): the forward of ConvTranspose2d

    ``padding`` is ((PT, PB), (PL, PR)), top/bottom and left/right, so "same" can pad unevenly.
    """

    def forward(ctx, x, W, b=None, *, stride, padding, dilation, groups):
        (PT, PB), (PL, PR) = padding
        OH = (x.shape[2] + PT + PB - dilation[0] * (W.shape[2] - 1) - 1) // stride[0] + 1
        OW = (x.shape[3] + PL + PR - dilation[1] * (W.shape[3] - 1) - 1) // stride[1] + 1
        ctx.geometry = (stride, (PT, PL), dilation, groups)
        ctx.save_for_backward(x, W)
        return conv_blocks(*W.shape[2:], OH, OW, *ctx.geometry, x=x, W=W, b=b, y=True)[0]

    def backward(ctx, gy):
        x, W = ctx.saved
        need_x, need_W, need_b = (ctx.needs_input_grad + (False,))[:3]
        _, gx, gW, gb = conv_blocks(*W.shape[2:], *gy.shape[2:], *ctx.geometry, x=x if need_W else None, W=W,
                                    gy=gy, input_size=x.shape[2:], gx=need_x, gW=need_W, gb=need_b)
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
        y = conv_blocks(*W.shape[2:], *x.shape[2:], *ctx.geometry, W=W, gy=x, input_size=(OH, OW), gx=True)[1]
        if b is not None:
            _add_bias(y, b)
        ctx.save_for_backward(x, W)
        return y

    def backward(ctx, gy):
        x, W = ctx.saved
        need_x, need_W, need_b = (ctx.needs_input_grad + (False,))[:3]
        gx, _, gW, _ = conv_blocks(*W.shape[2:], *x.shape[2:], *ctx.geometry, x=gy, W=W, gy=x if need_W else None,
                                   y=need_x, gW=need_W)
        gb = _channel_sums(gy) if need_b else None
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
    check_kernel_float(op, "input", input)
    check_same_dtype(op, input=input, weight=weight, bias=bias)
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if min(input.shape[-2:]) < 1:
        raise ValueError(f"{op}: expected input with non-zero height and width, got input of shape "
                         f"{tuple(input.shape)}")
    if min(weight.shape[2:]) < 1:
        raise ValueError(f"{op}: kernel size should be greater than zero, got weight of shape {tuple(weight.shape)}")


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
