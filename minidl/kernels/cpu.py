"""Numba CPU kernels for convolution and pooling, the fast twins of ``reference.py``.

Same signatures and the same meaning as the reference (read its docstrings first): inputs, the geometry as
ints, then the output arrays, filled in place. Every kernel is ``@njit(parallel=True, cache=True)``: the
outer ``prange`` hands each thread whole rows of the output it writes, so no two threads ever write the
same element (no races, no atomics) and the result does not depend on the thread count. Sums are
accumulated in float64 and rounded once when stored.

With ``NUMBA_DISABLE_JIT=1`` these run as plain Python (``prange`` becomes ``range``), so they can be
stepped through in a debugger.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, oh0, col):
    # Threads over (n, c, kh, kw) blocks of col, each written by its thread alone; rows r, then ow contiguous.
    N, C, H, W = x.shape
    R, OW = col.shape[4], col.shape[5]
    for t in prange(N * C * KH * KW):
        kw = t % KW
        kh = t // KW % KH
        c = t // (KW * KH) % C
        n = t // (KW * KH * C)
        w_off = kw * DW - PW
        # ow_lo .. ow_hi-1 are the output columns whose input column ow*SW + w_off lies inside [0, W)
        ow_lo = min(OW, max(0, (SW - 1 - w_off) // SW))
        ow_hi = max(ow_lo, min(OW, (W - 1 - w_off) // SW + 1))
        for r in range(R):
            h = (oh0 + r) * SH - PH + kh * DH
            if h < 0 or h >= H:
                for ow in range(OW):
                    col[n, c, kh, kw, r, ow] = 0
                continue
            for ow in range(ow_lo):
                col[n, c, kh, kw, r, ow] = 0
            for ow in range(ow_lo, ow_hi):
                col[n, c, kh, kw, r, ow] = x[n, c, h, ow * SW + w_off]
            for ow in range(ow_hi, OW):
                col[n, c, kh, kw, r, ow] = 0


@njit(parallel=True, cache=True)
def col2im(col, SH, SW, PH, PW, DH, DW, oh0, x):
    # Gather: threads over input rows (n, c, h); each sums all col entries read from its own row, so no races.
    N, C, KH, KW, R, OW = col.shape
    H, W = x.shape[2], x.shape[3]
    # ow_lo[kw] .. ow_hi[kw]-1: the output columns whose input column ow*SW + kw*DW - PW lies inside [0, W);
    # computed once here, as the divisions would otherwise dominate the inner loops on small images
    ow_lo, ow_hi = np.empty(KW, np.int64), np.empty(KW, np.int64)
    for kw in range(KW):
        w_off = kw * DW - PW
        ow_lo[kw] = min(OW, max(0, (SW - 1 - w_off) // SW))
        ow_hi[kw] = max(ow_lo[kw], min(OW, (W - 1 - w_off) // SW + 1))
    for t in prange(N * C * H):
        h = t % H
        c = t // H % C
        n = t // (H * C)
        for kh in range(KH):
            th = h + PH - kh * DH  # equals (oh0 + r) * SH when row r of col read input row h
            if th < 0 or th % SH != 0:
                continue
            r = th // SH - oh0
            if r < 0 or r >= R:
                continue
            for kw in range(KW):
                w_off = kw * DW - PW
                for ow in range(ow_lo[kw], ow_hi[kw]):
                    x[n, c, h, ow * SW + w_off] += col[n, c, kh, kw, r, ow]


@njit(parallel=True, cache=True)
def max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, y, idx):
    # Threads over output rows (n, c, oh), then ow, then the window; each y/idx row has one writer.
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for t in prange(N * C * OH):
        oh = t % OH
        c = t // OH % C
        n = t // (OH * C)
        for ow in range(OW):
            h0, w0 = oh * SH - PH, ow * SW - PW
            h1, w1 = min(h0 + (KH - 1) * DH + 1, H), min(w0 + (KW - 1) * DW + 1, W)
            while h0 < 0:
                h0 += DH
            while w0 < 0:
                w0 += DW
            best, best_at = -np.inf, h0 * W + w0
            for h in range(h0, h1, DH):
                for w in range(w0, w1, DW):
                    v = x[n, c, h, w]
                    if v > best or v != v:
                        best, best_at = v, h * W + w
            y[n, c, oh, ow] = best
            idx[n, c, oh, ow] = best_at


@njit(parallel=True, cache=True)
def max_pool2d_backward(gy, idx, KH, KW, SH, SW, PH, PW, DH, DW, gx):
    # Gather: threads over gx rows (n, c, h); each element sums gy of the windows whose argmax it is; one writer.
    N, C, OH, OW = gy.shape
    H, W = gx.shape[2], gx.shape[3]
    for t in prange(N * C * H):
        h = t % H
        c = t // H % C
        n = t // (H * C)
        # windows oh whose rows oh*SH - PH .. oh*SH - PH + (KH-1)*DH span row h
        oh_lo = max(0, (h + PH - (KH - 1) * DH + SH - 1) // SH)
        oh_hi = min(OH - 1, (h + PH) // SH)
        for w in range(W):
            ow_lo = max(0, (w + PW - (KW - 1) * DW + SW - 1) // SW)
            ow_hi = min(OW - 1, (w + PW) // SW)
            at = h * W + w
            s = 0.0
            for oh in range(oh_lo, oh_hi + 1):
                for ow in range(ow_lo, ow_hi + 1):
                    if idx[n, c, oh, ow] == at:
                        s += gy[n, c, oh, ow]
            gx[n, c, h, w] = s


@njit(cache=True)
def _avg_window(oh, ow, H, W, KH, KW, SH, SW, PH, PW, count_include_pad, divisor):
    """PyTorch's averaging window (h0, h1, w0, w1, divisor); see ``reference.avg_pool_window``."""
    h0, w0 = oh * SH - PH, ow * SW - PW
    h1, w1 = min(h0 + KH, H + PH), min(w0 + KW, W + PW)
    padded_size = (h1 - h0) * (w1 - w0)
    h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
    if divisor == 0:
        divisor = padded_size if count_include_pad else (h1 - h0) * (w1 - w0)
    return h0, h1, w0, w1, divisor


@njit(parallel=True, cache=True)
def avg_pool2d_forward(x, KH, KW, SH, SW, PH, PW, count_include_pad, divisor, y):
    # Threads over output rows (n, c, oh), then ow, then the window; each y row has one writer.
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for t in prange(N * C * OH):
        oh = t % OH
        c = t // OH % C
        n = t // (OH * C)
        for ow in range(OW):
            h0, h1, w0, w1, d = _avg_window(oh, ow, H, W, KH, KW, SH, SW, PH, PW, count_include_pad, divisor)
            s = 0.0
            for h in range(h0, h1):
                for w in range(w0, w1):
                    s += x[n, c, h, w]
            y[n, c, oh, ow] = s / d if h0 < h1 and w0 < w1 else 0.0


@njit(parallel=True, cache=True)
def avg_pool2d_backward(gy, KH, KW, SH, SW, PH, PW, count_include_pad, divisor, gx):
    # Gather: threads over gx rows (n, c, h); each element sums gy / divisor of the windows holding it; one writer.
    N, C, OH, OW = gy.shape
    H, W = gx.shape[2], gx.shape[3]
    for t in prange(N * C * H):
        h = t % H
        c = t // H % C
        n = t // (H * C)
        # windows oh whose rows oh*SH - PH .. oh*SH - PH + KH - 1 contain row h
        oh_lo = max(0, (h + PH - KH + SH) // SH)
        oh_hi = min(OH - 1, (h + PH) // SH)
        for w in range(W):
            ow_lo = max(0, (w + PW - KW + SW) // SW)
            ow_hi = min(OW - 1, (w + PW) // SW)
            s = 0.0
            for oh in range(oh_lo, oh_hi + 1):
                for ow in range(ow_lo, ow_hi + 1):
                    d = _avg_window(oh, ow, H, W, KH, KW, SH, SW, PH, PW, count_include_pad, divisor)[4]
                    s += gy[n, c, oh, ow] / d
            gx[n, c, h, w] = s


@njit(parallel=True, cache=True)
def adaptive_avg_pool2d_forward(x, y):
    # Threads over output rows (n, c, oh), then ow, then the window; each y row has one writer.
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for t in prange(N * C * OH):
        oh = t % OH
        c = t // OH % C
        n = t // (OH * C)
        h0, h1 = oh * H // OH, ((oh + 1) * H + OH - 1) // OH
        for ow in range(OW):
            w0, w1 = ow * W // OW, ((ow + 1) * W + OW - 1) // OW
            s = 0.0
            for h in range(h0, h1):
                for w in range(w0, w1):
                    s += x[n, c, h, w]
            y[n, c, oh, ow] = s / ((h1 - h0) * (w1 - w0))


@njit(cache=True)
def _bins_containing(i, size, out_size):
    """The first and last adaptive bins (start floor(j*size/out), end ceil((j+1)*size/out)) holding i.

    Bin j = floor(i*out/size) holds i and the bin before it ends at ceil(j*size/out) <= i, so j is the
    first; the following bins hold i too as long as they start at or before i.
    """
    first = last = i * out_size // size
    while last < out_size - 1 and (last + 1) * size // out_size <= i:
        last += 1
    return first, last


@njit(parallel=True, cache=True)
def adaptive_avg_pool2d_backward(gy, gx):
    # Gather: threads over gx rows (n, c, h); each element sums gy / bin size of the bins holding it; one writer.
    N, C, OH, OW = gy.shape
    H, W = gx.shape[2], gx.shape[3]
    for t in prange(N * C * H):
        h = t % H
        c = t // H % C
        n = t // (H * C)
        oh_lo, oh_hi = _bins_containing(h, H, OH)
        for w in range(W):
            ow_lo, ow_hi = _bins_containing(w, W, OW)
            s = 0.0
            for oh in range(oh_lo, oh_hi + 1):
                bin_h = ((oh + 1) * H + OH - 1) // OH - oh * H // OH
                for ow in range(ow_lo, ow_hi + 1):
                    bin_w = ((ow + 1) * W + OW - 1) // OW - ow * W // OW
                    s += gy[n, c, oh, ow] / (bin_h * bin_w)
            gx[n, c, h, w] = s
