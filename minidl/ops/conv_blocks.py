"""The block engine of the convolutions: im2col + one GEMM per block of samples, shared among the cores.

ops/conv.py states the math of conv2d and conv_transpose2d as four products (y, gx, gW, gb) of the
im2col columns; :func:`conv_blocks` computes any of them in one pass over the output grid (n, oh, ow).
The columns of all the samples of a block sit side by side in one matrix, channel-major:

    col[(c, kh, kw), (n, oh, ow)] = x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]    (0 in the padding)
    yT = W @ col         W as (O, C*KH*KW),  yT as (O, N*OH*OW)
    y[n, o] = yT[o, n] + b[o]                 one pass that puts the sample axis first and adds the bias

One large GEMM per block runs near the BLAS peak where one small GEMM per sample (say 32x121 columns
on 288 rows) does not; and the weight gradient sum_n gy[n] @ col[n]^T is then one GEMM over the joint
(n, oh, ow) axis, with no per-sample partial products to add up. The price is the transposing pass above
and a transposed copy of gy in the backward (``gyT``, (O, N, OH, OW)), both made block by block. Where a
sample alone has enough positions for a GEMM of its own (``SAMPLE_COLUMNS``), y, gx and gb are computed a
sample at a time instead, on y and gy as they lie, and those passes are skipped (:func:`conv_blocks`);
the bias then joins y's GEMM as one more column of W against a row of ones under the columns.

The columns are built for a block of samples at a time (or for bands of output rows of one sample, when
a single sample is larger than that), about ``blocks.BLOCK_BYTES`` each, so the buffers stay small
whatever the batch size. On the CPU the blocks are shared among worker threads, one per core, each running
im2col, the GEMM and the transposing pass of its own blocks while they sit in its core's cache
(``blocks.on_workers``): faster than running each step on all cores in turn, as the threads never wait for
each other between steps (numbers: docs/PERFORMANCE.md, "Blocks on worker threads").
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module, threads
from ..kernels import kernels_for
from . import blocks


# A sample's products are GEMMs of their own (below) when a sample of the block has at least this many output
# positions: wide enough for the BLAS, and then no pass is spent moving the sample axis (numbers:
# docs/PERFORMANCE.md, "Samples apart in the block engine").
SAMPLE_COLUMNS = 128
# ... and the weight gradient takes them apart too when a group's columns have at most this many rows (a
# 3x3 kernel on 1 or 3 channels): there the copy of gy that the joint GEMM needs costs more than the GEMM.
THIN_ROWS = 32


def _swapped_block(xp, buf, g, n0: int, n1: int, oh0: int, oh1: int):
    """Block (n0:n1, oh0:oh1) of g (N, O, OH, OW) with its first two axes swapped, (O, Nb, R, OW), copied
    into ``buf``: the block's columns of ``gT`` in the GEMMs below. Each worker swaps its own blocks,
    so the copy is shared among the cores and stays in cache for the GEMM that reads it."""
    O, OW = g.shape[1], g.shape[3]
    buf, block = blocks.buffer(xp, buf, (O, n1 - n0, oh1 - oh0, OW), g.dtype)
    xp.copyto(block, g[n0:n1, :, oh0:oh1].swapaxes(0, 1))
    return buf, block


def _matrices(block, G: int, rows: int, Nb: int, apart: bool):
    """A block of columns laid out (G, rows, Nb, positions per sample), e.g. im2col's, as GEMM operands:
    (Nb, G, rows, positions), one matrix per sample and group (``apart``; strided views, which BLAS takes
    as they are), or (1, G, rows, Nb*positions), the samples side by side."""
    block = block.reshape(G, rows, Nb, -1)
    return block.transpose(2, 0, 1, 3) if apart else block.reshape(1, G, rows, -1)


def _weight_product(matmul, gy, col, in_worker: bool):
    """sum_s gy[s] @ col[s]^T, (G, O/G, K), from gy (S, G, O/G, P) and col (S, G, K, P): a block's weight
    gradient, S its samples taken apart (or 1, side by side; see :func:`_matrices`).

    Inside a worker thread, when col has at least max(64, O/G) rows, each product is computed as
    (col @ gy^T)^T, the GEMM K rows high: OpenBLAS runs it faster than the product O/G rows high, 1.15-1.85x for
    K >= 75 and O/G <= 64 (numbers: docs/PERFORMANCE.md, "Weight gradient, the columns' rows first"). Not in a
    single block, whose product is split across the cores by the second operand's columns: every thread
    would pack all of col."""
    K, O = col.shape[-2], gy.shape[-2]
    if in_worker and K >= max(64, O):
        products = matmul(col, gy.swapaxes(-1, -2)).swapaxes(-1, -2)
    else:
        products = matmul(gy, col.swapaxes(-1, -2))
    return products[0] if len(products) == 1 else products.sum(axis=0)


def conv_blocks(KH: int, KW: int, OH: int, OW: int, stride, padding, dilation, groups: int, *, x=None, W=None,
                b=None, gy=None, input_size=None, y=False, gx=False, gW=False, gb=False):
    """The products of a convolution over the output grid (n, oh, ow), block by block: whichever of
    y, gx, gW, gb are asked for, from one pass over the blocks.

    x (N, C, H, W_in) the input (needed for y and gW); W (O, C/G, KH, KW); b (O,) or None; gy (N, O, OH, OW)
    the output gradient (needed for gx, gW, gb); ``input_size`` (H, W_in) when x is not given; ``padding``
    is (top, left), the bottom/right padding being whatever OH, OW imply. Per block, with col its im2col
    columns (G, K, Nb*R*OW), K = C/G*KH*KW:
        y[n, g]  = W[g] @ col[g][:, n] + b               (O/G, R*OW)
        gW[g]   += gy[:, g] @ col[g]^T                   (O/G, K): the sum over the block's samples in the GEMM
        gb      += sum of gy over the block's positions
        gx      += col2im(W[g]^T @ gy[:, g])             the adjoint of the im2col + GEMM of y
    The GEMMs take the samples of a block one of two ways. Side by side, as one matrix of Nb*R*OW columns: y
    then comes out with its first two axes swapped (O, Nb, R, OW), and gy must be copied so
    (:func:`_swapped_block`). Or apart, one GEMM per sample on the arrays as they lie, with no pass to swap
    axes: when a sample has SAMPLE_COLUMNS positions or more, and for gW (whose per-sample products
    are then added up) only when the block is a single sample or a band of one, or col has at most
    THIN_ROWS rows.
    Each worker thread adds up the gW and gb of its own blocks; the workers' sums are added at the end.
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
    K = C // G * KH * KW  # rows of one group's columns
    out_y = xp.empty((N, O, OH, OW), dtype=dtype) if y else None
    out_gx = xp.zeros((N, C, H, W_in), dtype=dtype) if gx else None
    if W is not None:
        Wg = W.reshape(G, O // G, K)
    unfold = y or gW
    # With one group, y's bias joins its GEMM where the samples are apart: y[n] = [W b] @ [col[:, n]; 1], a
    # row of ones under the columns, and no pass over y to add b (numbers: docs/PERFORMANCE.md, "Bias in the GEMM").
    Wb = xp.concatenate([Wg[0], b.reshape(O, 1)], axis=1) if y and b is not None and G == 1 else None

    def work(share, in_worker):
        im2col, matmul = blocks.tools(xp, kernels.im2col, in_worker)
        col2im = blocks.tools(xp, kernels.col2im, in_worker)[0]
        col_buf = yT_buf = gyT_buf = gcol_buf = sum_gW = sum_gb = None
        for n0, n1, oh0, oh1 in share:
            Nb, R = n1 - n0, oh1 - oh0
            apart = xp is np and (Nb == 1 or R * OW >= SAMPLE_COLUMNS)
            ones = apart and Wb is not None
            if unfold:
                col_buf, cols = blocks.buffer(xp, col_buf, (C * KH * KW + ones, Nb * R * OW), dtype)
                col = cols[:C * KH * KW].reshape(C, KH, KW, Nb, R, OW)
                im2col(x[n0:n1], KH, KW, SH, SW, PH, PW, DH, DW, oh0, col)
                if ones:
                    cols[-1] = 1
            if y and apart:  # straight into y
                yb = out_y[n0:n1, :, oh0:oh1].reshape(Nb, G, O // G, R * OW)
                if ones:
                    matmul(Wb, _matrices(cols, 1, K + 1, Nb, True), out=yb)
                else:
                    matmul(Wg, _matrices(col, G, K, Nb, True), out=yb)
                    if b is not None:
                        xp.add(yb, b.reshape(G, O // G, 1), out=yb)
            elif y:
                yT_buf, yT = blocks.buffer(xp, yT_buf, (G, O // G, Nb * R * OW), dtype)
                matmul(Wg, _matrices(col, G, K, Nb, False)[0], out=yT)
                yT = yT.reshape(O, Nb, R, OW).swapaxes(0, 1)
                if b is None:
                    out_y[n0:n1, :, oh0:oh1] = yT
                else:
                    xp.add(yT, b.reshape(O, 1, 1), out=out_y[n0:n1, :, oh0:oh1])
            if gy is None:
                continue
            # gW's products would have to be summed over the samples: apart only for a single sample (or a band
            # of one), or where col has so few rows (K <= THIN_ROWS) that copying gy costs more than the GEMM.
            apart = apart and (Nb == 1 or not gW or K <= THIN_ROWS)
            if apart:  # gy as it lies
                gyb = gy[n0:n1, :, oh0:oh1].reshape(Nb, G, O // G, R * OW)
            else:
                gyT_buf, gyT = _swapped_block(xp, gyT_buf, gy, n0, n1, oh0, oh1)
                gyb = gyT.reshape(1, G, O // G, Nb * R * OW)
            if gb:
                part = gyb.sum(axis=(0, 3)).reshape(O)
                sum_gb = part if sum_gb is None else xp.add(sum_gb, part, out=sum_gb)
            if gW:
                part = _weight_product(matmul, gyb, _matrices(col, G, K, Nb, apart), in_worker)
                sum_gW = part if sum_gW is None else xp.add(sum_gW, part, out=sum_gW)
            if gx:
                gcol_buf, gcol = blocks.buffer(xp, gcol_buf, (C, KH, KW, Nb, R, OW), dtype)
                matmul(Wg.transpose(0, 2, 1), gyb, out=_matrices(gcol, G, K, Nb, apart))
                col2im(gcol, SH, SW, PH, PW, DH, DW, oh0, out_gx[n0:n1])
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


def add_bias(y, b) -> None:
    """y[:, o] += b[o] in place, split across the cores on the CPU (a full pass over a large output)."""
    b4 = b.reshape(1, -1, 1, 1)
    if isinstance(y, np.ndarray):
        threads.elementwise(np.add, y, y, np.broadcast_to(b4, y.shape))
    else:
        y += b4


def channel_sums(g):
    """g.sum(axis=(0, 2, 3)), on the CPU as partial sums over sample ranges, one per core (when g is large
    enough to pay for handing work to another thread: threads.SPLIT_ELEMENTS)."""
    if not isinstance(g, np.ndarray) or threads.workers() < 2 or g.shape[0] < 2 or g.size < threads.SPLIT_ELEMENTS:
        return g.sum(axis=(0, 2, 3))
    N, parts = g.shape[0], min(threads.workers(), g.shape[0])
    ranges = [slice(N * i // parts, N * (i + 1) // parts) for i in range(parts)]
    return sum(threads.run_each(lambda s: g[s].sum(axis=(0, 2, 3)), ranges))
