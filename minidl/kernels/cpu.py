"""Numba CPU kernels for convolution and pooling, the fast twins of ``reference.py``.

Same signatures and the same meaning as the reference (read its docstrings first): inputs, the geometry as
ints, then the output arrays, filled in place. The batch norm and ReLU kernels are fast twins of the math
their Functions write (ops/norm.py, ops/activation.py), and ``adam_update`` of Adam's (optim/adam.py):
that math is what the reference path runs. Every
kernel is written once and compiled twice by :func:`_kernel` (both cached on disk): with
``parallel=True``, where the outer ``prange`` hands each thread whole slabs, rows or (n, c) planes of the
output it writes, so no two threads ever write the same element
(no races, no atomics) and the result does not depend on the thread count; and serially, for small
arrays, where waking the threads would cost more than the work (see ``PARALLEL_MIN_ELEMENTS``).
The pooling sums are accumulated in float64 and rounded once when stored; col2im adds into x in x's dtype,
as PyTorch does.

With ``NUMBA_DISABLE_JIT=1`` these run as plain Python (``prange`` becomes ``range``), so they can be
stepped through in a debugger.
"""
from __future__ import annotations

import functools
import types

import numpy as np
from numba import njit, prange, uint64

from . import reference

# A kernel runs on the calling thread unless its arrays hold at least this many elements in all, times the
# kernel's ``cost`` (its work per element relative to a copy): the OpenMP threads sleep between kernels
# (``OMP_WAIT_POLICY=PASSIVE``, see backend/threads.py), and waking them costs more than a smaller kernel's
# work (numbers: docs/PERFORMANCE.md, "Parallel threshold").
PARALLEL_MIN_ELEMENTS = 1 << 20


def _kernel(fn=None, *, cost: int = 1):
    """Compile ``fn`` twice, parallel and serial, and pick one per call by the size of its array arguments.

    The serial twin is a copy of the function under another name, so that Numba's on-disk cache keeps the
    two compilations apart; in it ``prange`` is a plain ``range``, and it releases the GIL, so that
    minidl's own worker threads can run it on several blocks at once (see ops/conv_blocks.py). Both are exposed
    as ``.parallel`` and ``.serial`` (the tests check each against the reference). Used as ``@_kernel``
    or ``@_kernel(cost=8)``. Both use NumPy's error model (a division by zero gives inf or NaN, as in the
    array expressions they are twins of): with Python's, every division is checked and its loop does not
    vectorize (numbers: docs/PERFORMANCE.md, "Kernels compiled with NumPy's error model").
    """
    if fn is None:
        return functools.partial(_kernel, cost=cost)
    parallel = njit(parallel=True, cache=True, error_model="numpy")(fn)
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                              fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_serial"
    serial = njit(cache=True, nogil=True, error_model="numpy")(twin)

    @functools.wraps(fn)
    def run(*args):
        work = cost * sum(a.size for a in args if isinstance(a, np.ndarray))
        return (parallel if work >= PARALLEL_MIN_ELEMENTS else serial)(*args)

    run.parallel, run.serial = parallel, serial
    return run


# im2col hands out at least this many pieces of work (when there are enough samples), so that the
# threads stay balanced when a convolution has few taps (conv1 of a grey-level net has 9).
MIN_SLABS = 64


@njit(cache=True)
def _tap_ranges(K, D, P, S, size, out_size):
    """For each tap k of a window: the outputs o whose input position o*S - P + k*D lies in [0, size).

    Returns (lo, hi) so that o runs over lo[k] .. hi[k]-1. Computed once per call: the divisions would
    otherwise dominate the inner loops on small images.
    """
    lo, hi = np.empty(K, np.int64), np.empty(K, np.int64)
    for k in range(K):
        off = k * D - P
        lo[k] = min(out_size, max(0, (S - 1 - off) // S))
        hi[k] = max(lo[k], min(out_size, (size - 1 - off) // S + 1))
    return lo, hi


@_kernel
def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, oh0, col):
    # Threads over (c, kh, kw) slabs of col (cut into sample ranges when there are few taps), each
    # written by its thread alone. Three choices make this faster than slicing 2-D views (numbers:
    # docs/PERFORMANCE.md, "im2col and col2im: flat arrays"):
    # the arrays are walked as flat 1-D arrays with running offsets (no view made per row, no integer
    # division per row); the offsets are unsigned, so Numba drops its negative-index wraparound test from
    # the inner loops; and the divisions that split ``t`` happen once per slab.
    N, C, H, W = x.shape
    R, OW = col.shape[4], col.shape[5]
    ow_lo, ow_hi = _tap_ranges(KW, DW, PW, SW, W, OW)
    xf = x.reshape(N * C * H * W)
    cf = col.reshape(C * KH * KW * N * R * OW)
    taps = C * KH * KW
    parts = min(N, (MIN_SLABS + taps - 1) // taps)  # sample ranges per slab
    for t in prange(taps * parts):
        part = t % parts
        tap = t // parts
        kw = tap % KW
        kh = tap // KW % KH
        c = tap // (KW * KH)
        w_off = kw * DW - PW
        lo, hi = ow_lo[kw], ow_hi[kw]
        n0, n1 = N * part // parts, N * (part + 1) // parts
        d = uint64((tap * N + n0) * R * OW)
        for n in range(n0, n1):
            s0 = (n * C + c) * H * W + w_off
            for r in range(R):
                h = (oh0 + r) * SH - PH + kh * DH
                if h < 0 or h >= H:
                    for ow in range(OW):
                        cf[d + uint64(ow)] = 0
                else:
                    for ow in range(lo):
                        cf[d + uint64(ow)] = 0
                    s = uint64(s0 + h * W + lo * SW)  # where the row's first in-range tap reads
                    for ow in range(lo, hi):
                        cf[d + uint64(ow)] = xf[s]
                        s += uint64(SW)
                    for ow in range(hi, OW):
                        cf[d + uint64(ow)] = 0
                d += uint64(OW)


@_kernel
def col2im(col, SH, SW, PH, PW, DH, DW, oh0, x):
    # Gather: threads over input planes (n, c); each sums all col entries read from its own plane: no races.
    # Flat arrays with unsigned running offsets, as in im2col: faster than indexing 2-D views (numbers:
    # docs/PERFORMANCE.md, "im2col and col2im: flat arrays").
    C, KH, KW, N, R, OW = col.shape
    H, W = x.shape[2], x.shape[3]
    ow_lo, ow_hi = _tap_ranges(KW, DW, PW, SW, W, OW)
    xf = x.reshape(N * C * H * W)
    cf = col.reshape(C * KH * KW * N * R * OW)
    for t in prange(N * C):
        n = t % N
        c = t // N
        plane = uint64((n * C + c) * H * W)
        for kh in range(KH):
            for kw in range(KW):
                d = uint64((((c * KH + kh) * KW + kw) * N + n) * R * OW)
                w_off = kw * DW - PW
                lo, hi = ow_lo[kw], ow_hi[kw]
                for r in range(R):
                    h = (oh0 + r) * SH - PH + kh * DH
                    if 0 <= h < H:
                        s = plane + uint64(h * W + w_off + lo * SW)
                        for ow in range(lo, hi):
                            xf[s] += cf[d + uint64(ow)]
                            s += uint64(SW)
                    d += uint64(OW)


@njit(cache=True)
def _tap_offsets(Cg, KH, KW, Hp, Wp, DH, DW):
    """Where each tap (c, kh, kw) of a filter reads the padded input, as an offset from its group's first
    plane: (c*Hp + kh*DH)*Wp + kw*DW, at index j = (c*KH + kh)*KW + kw, as in W[o].ravel(). Padded to a
    multiple of four with taps at offset 0, whose weights are 0, so that a pass can take four taps at once."""
    T = Cg * KH * KW
    taps = np.zeros(-(-T // 4) * 4, np.uint64)
    for c in range(Cg):
        for kh in range(KH):
            for kw in range(KW):
                taps[(c * KH + kh) * KW + kw] = uint64((c * Hp + kh * DH) * Wp + kw * DW)
    return taps


@njit(cache=True, nogil=True, fastmath={"contract"})
def _add_four_taps(run, xf, s0, s1, s2, s3, w):
    """run[p] += w[0]*xf[s0 + p] + w[1]*xf[s1 + p] + w[2]*xf[s2 + p] + w[3]*xf[s3 + p]: four taps of one
    filter in one pass, the run loaded and stored once for four products."""
    w0, w1, w2, w3 = w[0], w[1], w[2], w[3]
    for p in range(uint64(run.size)):
        run[p] += w0 * xf[s0 + p] + w1 * xf[s1 + p] + w2 * xf[s2 + p] + w3 * xf[s3 + p]


@njit(cache=True, nogil=True, fastmath={"contract"})
def _add_four_taps_of_two(run0, run1, xf, s0, s1, s2, s3, w0, w1):
    """:func:`_add_four_taps` for two filters of one group at once: each input value loaded once for two
    products."""
    a0, a1, a2, a3 = w0[0], w0[1], w0[2], w0[3]
    b0, b1, b2, b3 = w1[0], w1[1], w1[2], w1[3]
    for p in range(uint64(run0.size)):
        v0, v1, v2, v3 = xf[s0 + p], xf[s1 + p], xf[s2 + p], xf[s3 + p]
        run0[p] += a0 * v0 + a1 * v1 + a2 * v2 + a3 * v3
        run1[p] += b0 * v0 + b1 * v1 + b2 * v2 + b3 * v3


@_kernel(cost=16)
def conv_direct(x, W, b, DH, DW, y):
    # Threads over output planes (n, o) taken two filters of a group at a time, each written by its thread
    # alone. Each plane is summed in a scratch run of "extended rows": as wide as the padded input (Wp), so
    # that output position p = oh*Wp + ow reads x at p + (kh*DH)*Wp + kw*DW for every (oh, ow) and one tap
    # is one contiguous, vectorized pass over the whole plane; the Wp - OW columns past each row are
    # computed and dropped when the plane is stored. A pass takes four taps of the two filters: a pass per
    # tap would load and store a run for every multiply-add (numbers: docs/PERFORMANCE.md, "Direct
    # convolution for thin filter banks").
    N, C, Hp, Wp = x.shape
    O, Cg, KH, KW = W.shape
    OH, OW = y.shape[2], y.shape[3]
    G = C // Cg
    Og = O // G
    pairs = (Og + 1) // 2  # per group; with an odd count of filters the last one goes alone
    L = (OH - 1) * Wp + OW
    taps = _tap_offsets(Cg, KH, KW, Hp, Wp, DH, DW)
    Wt = np.zeros((O, taps.size), W.dtype)  # Wt[o, j]: the weight of tap j, 0 past the last
    for o in range(O):
        for c in range(Cg):
            for kh in range(KH):
                for kw in range(KW):
                    Wt[o, (c * KH + kh) * KW + kw] = W[o, c, kh, kw]
    xf = x.reshape(N * C * Hp * Wp)
    for t in prange(N * G * pairs):
        n = t // (G * pairs)
        g = t // pairs % G
        o = g * Og + 2 * (t % pairs)
        two = o + 1 < (g + 1) * Og
        runs = np.empty((2, L), y.dtype)
        runs[0, :] = b[o]
        runs[1, :] = b[o + 1] if two else 0
        base = uint64((n * C + g * Cg) * Hp * Wp)
        for j in range(0, taps.size, 4):
            s0, s1, s2, s3 = base + taps[j], base + taps[j + 1], base + taps[j + 2], base + taps[j + 3]
            if two:
                _add_four_taps_of_two(runs[0], runs[1], xf, s0, s1, s2, s3, Wt[o, j:j + 4], Wt[o + 1, j:j + 4])
            else:
                _add_four_taps(runs[0], xf, s0, s1, s2, s3, Wt[o, j:j + 4])
        for k in range(2 if two else 1):
            for oh in range(OH):
                for ow in range(OW):
                    y[n, o + k, oh, ow] = runs[k, oh * Wp + ow]


@njit(cache=True, inline="always")
def _extended_rows(gyf, src, OH, OW, Wp, out):
    """Copy the (OH, OW) plane of the flat ``gyf`` starting at ``src`` into ``out`` as extended rows of width
    Wp (see ``conv_direct``), with zeros in the Wp - OW columns past each row."""
    out[:] = 0
    for oh in range(OH):
        for ow in range(OW):
            out[oh * Wp + ow] = gyf[src + oh * OW + ow]


@_kernel(cost=16)
def conv_direct_grad_input(gy, W, DH, DW, gx):
    # Gather, the forward's passes the other way round: threads over (n, group), each adding into its own gx
    # planes (n, c), two channels at a time: no races. The group's gy planes of sample n are laid out as
    # extended rows (width Wp, zeros past each row) behind a margin of M zeros, so that gx position q gets
    # W[o, c, kh, kw] * gy[n, o] at q - (kh*DH*Wp + kw*DW) for every q of the plane: tap (o, kh, kw) of
    # channel c is one contiguous pass, and a pass takes four of them (see conv_direct).
    N, O, OH, OW = gy.shape
    Cg, KH, KW = W.shape[1], W.shape[2], W.shape[3]
    C, Hp, Wp = gx.shape[1], gx.shape[2], gx.shape[3]
    G = C // Cg
    Og = O // G
    P = Hp * Wp
    M = (KH - 1) * DH * Wp + (KW - 1) * DW  # the largest tap offset
    E = M + P  # one filter's margin and extended rows
    T = Og * KH * KW
    taps = np.zeros(-(-T // 4) * 4, np.uint64)  # past T: offset 0, weight 0
    Wt = np.zeros((C, taps.size), W.dtype)  # Wt[c, j]: the weight of channel c's tap j
    for o in range(Og):
        for kh in range(KH):
            for kw in range(KW):
                j = (o * KH + kh) * KW + kw
                taps[j] = uint64(o * E + M - (kh * DH * Wp + kw * DW))
                for c in range(C):
                    Wt[c, j] = W[c // Cg * Og + o, c % Cg, kh, kw]
    gxf = gx.reshape(N * C * P)
    gyf = gy.reshape(N * O * OH * OW)
    for t in prange(N * G):
        n = t // G
        g = t % G
        rows = np.zeros(Og * E, gy.dtype)
        for o in range(Og):
            _extended_rows(gyf, (n * O + g * Og + o) * OH * OW, OH, OW, Wp, rows[o * E + M:(o + 1) * E])
        for c in range(g * Cg, (g + 1) * Cg, 2):
            two = c + 1 < (g + 1) * Cg
            plane = (n * C + c) * P
            for j in range(0, taps.size, 4):
                s0, s1, s2, s3 = taps[j], taps[j + 1], taps[j + 2], taps[j + 3]
                if two:
                    _add_four_taps_of_two(gxf[plane:plane + P], gxf[plane + P:plane + 2 * P], rows, s0, s1, s2,
                                          s3, Wt[c, j:j + 4], Wt[c + 1, j:j + 4])
                else:
                    _add_four_taps(gxf[plane:plane + P], rows, s0, s1, s2, s3, Wt[c, j:j + 4])


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _four_tap_sums(g, xf, s0, s1, s2, s3, sums):
    """sums[k] += sum_p g[p] * xf[s_k + p] for the four taps k: four dot products in one pass, each added in any
    order (LLVM's ``reassoc``), so in vector registers rather than one chain of dependent adds."""
    zero = g.dtype.type(0)
    a0 = a1 = a2 = a3 = zero
    for p in range(uint64(g.size)):
        u = g[p]
        a0 += u * xf[s0 + p]
        a1 += u * xf[s1 + p]
        a2 += u * xf[s2 + p]
        a3 += u * xf[s3 + p]
    sums[0] += a0
    sums[1] += a1
    sums[2] += a2
    sums[3] += a3


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _four_tap_sums_of_two(g0, g1, xf, s0, s1, s2, s3, sums0, sums1):
    """:func:`_four_tap_sums` for two filters' rows g0, g1 at once: each input value loaded once for two
    products."""
    zero = g0.dtype.type(0)
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = zero
    for p in range(uint64(g0.size)):
        v0, v1, v2, v3 = xf[s0 + p], xf[s1 + p], xf[s2 + p], xf[s3 + p]
        u, w = g0[p], g1[p]
        a0 += u * v0
        a1 += u * v1
        a2 += u * v2
        a3 += u * v3
        b0 += w * v0
        b1 += w * v1
        b2 += w * v2
        b3 += w * v3
    sums0[0] += a0
    sums0[1] += a1
    sums0[2] += a2
    sums0[3] += a3
    sums1[0] += b0
    sums1[1] += b1
    sums1[2] += b2
    sums1[3] += b3


@_kernel(cost=16)
def conv_direct_grad_weight(x, gy, DH, DW, gW):
    # Threads over filters taken two of a group at a time, each writing its own filters' taps of gW. For
    # each sample, the two filters' gy planes are copied into extended rows with zeros past each row (see
    # conv_direct), so that a tap's products are one contiguous pass; a pass takes four taps of the two
    # filters (eight dot products), and each sample's sums are added up in float64.
    N, C, Hp, Wp = x.shape
    O, OH, OW = gy.shape[1], gy.shape[2], gy.shape[3]
    Cg, KH, KW = gW.shape[1], gW.shape[2], gW.shape[3]
    G = C // Cg
    Og = O // G
    pairs = (Og + 1) // 2
    L = (OH - 1) * Wp + OW
    taps = _tap_offsets(Cg, KH, KW, Hp, Wp, DH, DW)
    xf = x.reshape(N * C * Hp * Wp)
    gyf = gy.reshape(N * O * OH * OW)
    for t in prange(G * pairs):
        g = t // pairs
        o = g * Og + 2 * (t % pairs)
        two = o + 1 < (g + 1) * Og
        rows = np.empty((2, L), gy.dtype)
        sums = np.zeros((2, taps.size), np.float64)
        for n in range(N):
            _extended_rows(gyf, (n * O + o) * OH * OW, OH, OW, Wp, rows[0])
            if two:
                _extended_rows(gyf, (n * O + o + 1) * OH * OW, OH, OW, Wp, rows[1])
            base = uint64((n * C + g * Cg) * Hp * Wp)
            for j in range(0, taps.size, 4):
                s0, s1, s2, s3 = base + taps[j], base + taps[j + 1], base + taps[j + 2], base + taps[j + 3]
                if two:
                    _four_tap_sums_of_two(rows[0], rows[1], xf, s0, s1, s2, s3, sums[0, j:j + 4], sums[1, j:j + 4])
                else:
                    _four_tap_sums(rows[0], xf, s0, s1, s2, s3, sums[0, j:j + 4])
        for k in range(2 if two else 1):
            for c in range(Cg):
                for kh in range(KH):
                    for kw in range(KW):
                        gW[o + k, c, kh, kw] = sums[k, (c * KH + kh) * KW + kw]


# The pooling windows' geometry, written once in reference.py and compiled here.
_max_window = njit(cache=True, inline="always")(reference.max_pool_window)
_avg_window = njit(cache=True)(reference.avg_pool_window)


@njit(cache=True, inline="always")
def _max_pool_plane(src, dst, at, KH, KW, SH, SW, PH, PW, DH, DW, nan_aware):
    """Max pooling of one (H, W) plane into dst/at (OH, OW); ``nan_aware`` adds PyTorch's NaN rule."""
    H, W = src.shape
    OH, OW = dst.shape
    for oh in range(OH):
        h0, h1 = _max_window(oh, SH, PH, KH, DH, H)
        for ow in range(OW):
            w0, w1 = _max_window(ow, SW, PW, KW, DW, W)
            best, best_at = src.dtype.type(-np.inf), h0 * W + w0
            h = h0
            while h < h1:
                w = w0
                while w < w1:
                    v = src[h, w]
                    if v > best or (nan_aware and v != v):
                        best, best_at = v, h * W + w
                    w += DW
                h += DH
            dst[oh, ow] = best
            at[oh, ow] = best_at


@njit(cache=True, inline="always")
def _max_pool_plane_2x2(src, dst, at):
    """``_max_pool_plane`` without its NaN rule for 2x2 windows at stride 2 lying inside the plane (no padding,
    no dilation): the seed nets' pooling. The four taps are compared in the same order, with no window
    arithmetic per output (numbers: docs/PERFORMANCE.md, "Max pooling: 2x2 windows")."""
    W = src.shape[1]
    OH, OW = dst.shape
    for oh in range(OH):
        top, bottom = src[2 * oh], src[2 * oh + 1]
        row = 2 * oh * W
        for ow in range(OW):
            best, best_at = top[2 * ow], row + 2 * ow
            v = top[2 * ow + 1]
            if v > best:
                best, best_at = v, row + 2 * ow + 1
            v = bottom[2 * ow]
            if v > best:
                best, best_at = v, row + W + 2 * ow
            v = bottom[2 * ow + 1]
            if v > best:
                best, best_at = v, row + W + 2 * ow + 1
            dst[oh, ow] = best
            at[oh, ow] = best_at


@_kernel(cost=8)
def max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, y, idx):
    # Threads over (n, c) planes, each writing its own y/idx plane. A plane is pooled without the NaN test
    # (a second compare and branch per element), then scanned for NaN in one vectorized pass over the flat
    # array (unsigned indices); only a plane that holds a NaN is pooled again with PyTorch's rule (a NaN
    # wins). Faster than testing every element (numbers: docs/PERFORMANCE.md, "Max pooling: NaN scan
    # afterwards").
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    xf = x.reshape(N * C * H * W)
    two_by_two = (KH == 2 and KW == 2 and SH == 2 and SW == 2 and PH == 0 and PW == 0 and DH == 1 and DW == 1
                  and 2 * OH <= H and 2 * OW <= W)
    for t in prange(N * C):
        n = t // C
        c = t % C
        src, dst, at = x[n, c], y[n, c], idx[n, c]
        if two_by_two:
            _max_pool_plane_2x2(src, dst, at)
        else:
            _max_pool_plane(src, dst, at, KH, KW, SH, SW, PH, PW, DH, DW, False)
        nans = 0
        plane = uint64(t * H * W)
        for i in range(uint64(H * W)):
            v = xf[plane + i]
            nans += v != v
        if nans:
            _max_pool_plane(src, dst, at, KH, KW, SH, SW, PH, PW, DH, DW, True)


@_kernel(cost=8)
def max_pool2d_backward(gy, idx, KH, KW, SH, SW, PH, PW, DH, DW, gx):
    # Scatter within a plane: threads over (n, c) planes; gy of each window goes to its argmax, which lies
    # in the same plane, so each gx plane has one writer. The geometry is not needed here (see reference).
    N, C, OH, OW = gy.shape
    H, W = gx.shape[2], gx.shape[3]
    for t in prange(N * C):
        n = t // C
        c = t % C
        dst = gx[n, c].reshape(H * W)
        dst[:] = 0
        g, at = gy[n, c], idx[n, c]
        for oh in range(OH):
            for ow in range(OW):
                k = at[oh, ow]
                if 0 <= k < H * W:
                    dst[k] += g[oh, ow]


@_kernel(cost=8)
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


@_kernel(cost=8)
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


@_kernel(cost=8)
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


@_kernel(cost=8)
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


# The per-channel sums of batch norm may be added in any order (LLVM's ``reassoc`` flag, and no other
# fast-math flag: NaN and infinities keep their meaning), so LLVM keeps each as several partial sums in
# vector registers instead of one chain of dependent float64 adds, each waiting for the last (numbers:
# docs/PERFORMANCE.md, "Batch norm: sums in any order"). The order is fixed when a helper is compiled, so
# the result does not depend on the thread count.
@njit(cache=True, fastmath={"reassoc"})
def _channel_sum(x, c):
    """sum over n, l of x[n, c, l], in float64."""
    s = 0.0
    for n in range(x.shape[0]):
        for l in range(x.shape[2]):
            s += x[n, c, l]
    return s


@njit(cache=True, fastmath={"reassoc"})
def _channel_squared_deviation(x, c, m):
    """sum over n, l of (x[n, c, l] - m)^2, in float64."""
    q = 0.0
    for n in range(x.shape[0]):
        for l in range(x.shape[2]):
            d = x[n, c, l] - m
            q += d * d
    return q


@njit(cache=True, fastmath={"reassoc"})
def _channel_grad_sums(gy, xhat, c):
    """(sum gy[n, c, l], sum gy[n, c, l] * xhat[n, c, l]) over n, l, in float64."""
    sb = 0.0
    sw = 0.0
    for n in range(gy.shape[0]):
        for l in range(gy.shape[2]):
            g = gy[n, c, l]
            sb += g
            sw += g * xhat[n, c, l]
    return sb, sw


@_kernel(cost=8)
def batch_norm_forward(x, W, b, eps, mean, var, xhat, y):
    # Threads over channels; each makes three passes over its values: the mean, the variance around it
    # (two passes, not E[x^2] - mean^2, which cancels), then xhat and y. Sums in float64.
    N, C, L = x.shape
    M = N * L
    for c in prange(C):
        m = _channel_sum(x, c) / M
        v = _channel_squared_deviation(x, c, m) / M
        inv = 1.0 / np.sqrt(v + eps)
        w, shift = W[c], b[c]
        for n in range(N):
            for l in range(L):
                h = (x[n, c, l] - m) * inv
                xhat[n, c, l] = h
                y[n, c, l] = h * w + shift
        mean[c] = m
        var[c] = v


@_kernel(cost=8)
def batch_norm_backward(gy, xhat, scale, gx, gW, gb):
    # Threads over channels: one pass sums gy and gy * xhat (float64), a second writes gx.
    N, C, L = gy.shape
    M = N * L
    for c in prange(C):
        sb, sw = _channel_grad_sums(gy, xhat, c)
        gb[c] = sb
        gW[c] = sw
        if gx.size:
            k, a, q = scale[c], sb / M, sw / M
            for n in range(N):
                for l in range(L):
                    gx[n, c, l] = k * (gy[n, c, l] - a - xhat[n, c, l] * q)


@_kernel
def relu_forward(x, out, mask):
    # Flat, contiguous arrays with unsigned indices: one vectorized pass, faster than NumPy's maximum
    # (numbers: docs/PERFORMANCE.md, "ReLU forward: one flat pass"), writing y and the mask the backward
    # keeps (y > 0, or NaN: where the gradient passes); the ops split the arrays across worker threads, see
    # threads.elementwise.
    a, r, m = x.reshape(x.size), out.reshape(out.size), mask.reshape(mask.size)
    zero = r.dtype.type(0)
    for i in prange(uint64(a.size)):
        v = a[i]
        passes = v > 0 or v != v
        r[i] = v if passes else zero
        m[i] = passes


@_kernel
def relu_backward(gy, mask, out):
    # One pass over gy and the forward's mask (one byte an element, where y would be four).
    g, m, r = gy.reshape(gy.size), mask.reshape(mask.size), out.reshape(out.size)
    zero = r.dtype.type(0)
    for i in prange(uint64(g.size)):
        r[i] = g[i] if m[i] else zero


@_kernel
def leaky_relu_forward(x, negative_slope, out, mask):
    # One flat pass as in relu_forward (NumPy's where(x > 0, x, a*x) makes a mask and a product first).
    # The slope is rounded to the array's dtype, as PyTorch does; a NaN fails v > 0 and stays NaN in v*a.
    a, r, m = x.reshape(x.size), out.reshape(out.size), mask.reshape(mask.size)
    slope = r.dtype.type(negative_slope)
    for i in prange(uint64(a.size)):
        v = a[i]
        positive = v > 0
        r[i] = v if positive else v * slope
        m[i] = positive


@_kernel
def leaky_relu_backward(gy, mask, negative_slope, out):
    # One flat pass over gy and the forward's mask of x > 0 (x's signs, not y's, pick the slope: see
    # ops/activation.py, LeakyReLU).
    g, m, r = gy.reshape(gy.size), mask.reshape(mask.size), out.reshape(out.size)
    slope = r.dtype.type(negative_slope)
    for i in prange(uint64(g.size)):
        r[i] = g[i] if m[i] else g[i] * slope


@_kernel(cost=2)
def adam_update(theta, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, negate, weight_decay, decay_factor,
                from_start, weight1, complement1, beta2, weight2, step_size, bias_correction2_sqrt, eps, amsgrad):
    # One flat pass of Adam's update over a parameter, its gradient and its state (optim/adam.py writes the
    # math and passes the scalars): each element read once and written once, where the array expressions
    # make a dozen passes. The scalars are rounded to the arrays' dtype, and every operation is done in the
    # order of the expressions, so the results are equal bit for bit (tests/test_optim.py).
    p = theta.reshape(theta.size)  # one name a line: unpacked from one tuple, prange wrote p to a copy (Numba 0.68)
    g0 = grad.reshape(grad.size)
    m = exp_avg.reshape(exp_avg.size)
    v = exp_avg_sq.reshape(exp_avg_sq.size)
    vm = max_exp_avg_sq.reshape(max_exp_avg_sq.size)
    dt = p.dtype.type
    wd, decay, w1, c1 = dt(weight_decay), dt(decay_factor), dt(weight1), dt(complement1)
    b2, w2 = dt(beta2), dt(weight2)
    lr_t, bc2, e = dt(step_size), dt(bias_correction2_sqrt), dt(eps)
    for i in prange(uint64(p.size)):
        gs = -g0[i] if negate else g0[i]
        t = p[i] * decay
        g = gs + wd * t if wd != 0 else gs
        mi = m[i] + w1 * (g - m[i]) if from_start else g - (g - m[i]) * c1  # optimizer.lerp_, nearer end
        vi = v[i] * b2 + w2 * g * g
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vm[i] = np.maximum(vm[i], vi)
        p[i] = t - lr_t * (mi / (np.sqrt(vm[i] if amsgrad else vi) / bc2 + e))


@_kernel(cost=4)
def winograd_input(x, PH, PW, ti0, TR, TW, V):
    # Threads over rows of tiles; each writes its tiles' slots of V alone. A row of tiles first copies the
    # 4 input rows under it, channels last and zero-padded, into a scratch slab s (4, 2 TW + 2, C); then
    # every tile is 16 vectors of channels, combined with contiguous loads and stores: one channel at a
    # time, the tiles would run as scalars (numbers: docs/PERFORMANCE.md, "Winograd transforms on vectors
    # of channels").
    N, C, H, W = x.shape
    SW = 2 * TW + 2
    for nr in prange(N * TR):
        n = nr // TR
        r = nr % TR
        s = np.zeros((4, SW, C), x.dtype)
        for i in range(4):
            h = 2 * (ti0 + r) - PH + i
            if 0 <= h < H:
                for k in range(max(0, PW), min(SW, W + PW)):
                    sk = s[i, k]
                    for c in range(C):
                        sk[c] = x[n, c, h, k - PW]
        e = np.empty((16, C), x.dtype)  # Bt d: row a of the tile at e[4a + j], for each column j
        for tj in range(TW):
            for j in range(4):
                d0, d1, d2, d3 = s[0, 2 * tj + j], s[1, 2 * tj + j], s[2, 2 * tj + j], s[3, 2 * tj + j]
                e0, e1, e2, e3 = e[j], e[4 + j], e[8 + j], e[12 + j]
                for c in range(C):  # rows 0-2, 1+2, 2-1, 1-3
                    e0[c] = d0[c] - d2[c]
                    e1[c] = d1[c] + d2[c]
                    e2[c] = d2[c] - d1[c]
                    e3[c] = d1[c] - d3[c]
            at = ((n * TR + r) * TW + tj) * C
            for a in range(4):  # (Bt d) B: columns 0-2, 1+2, 2-1, 1-3
                s0, s1, s2, s3 = e[4 * a], e[4 * a + 1], e[4 * a + 2], e[4 * a + 3]
                v0, v1 = V[4 * a, at:at + C], V[4 * a + 1, at:at + C]
                v2, v3 = V[4 * a + 2, at:at + C], V[4 * a + 3, at:at + C]
                for c in range(C):
                    v0[c] = s0[c] - s2[c]
                    v1[c] = s1[c] + s2[c]
                    v2[c] = s2[c] - s1[c]
                    v3[c] = s1[c] - s3[c]


@_kernel(cost=4)
def winograd_output(M, b, ti0, TR, TW, y):
    # Threads over rows of tiles, each writing its own output rows: the tiles' 2 output rows are made
    # channels last in a scratch slab, vectors of channels as above, then stored row by row into y.
    N, O, OH, OW = y.shape
    for nr in prange(N * TR):
        n = nr // TR
        r = nr % TR
        out = np.empty((2, 2 * TW, O), M.dtype)
        s = np.empty((8, O), M.dtype)  # At m: row i of the tile at s[4i + q], for each column q
        for tj in range(TW):
            at = ((n * TR + r) * TW + tj) * O
            for q in range(4):  # At m: rows 0+1+2, 1-2-3
                m0, m1 = M[q, at:at + O], M[4 + q, at:at + O]
                m2, m3 = M[8 + q, at:at + O], M[12 + q, at:at + O]
                s0, s1 = s[q], s[4 + q]
                for o in range(O):
                    s0[o] = m0[o] + m1[o] + m2[o]
                    s1[o] = m1[o] - m2[o] - m3[o]
            for i in range(2):  # (At m) A, the same on the columns, plus the bias
                s0, s1, s2, s3 = s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]
                y0, y1 = out[i, 2 * tj], out[i, 2 * tj + 1]
                for o in range(O):
                    y0[o] = s0[o] + s1[o] + s2[o] + b[o]
                    y1[o] = s1[o] - s2[o] - s3[o] + b[o]
        oh = 2 * (ti0 + r)
        for i in range(min(2, OH - oh)):
            for o in range(O):
                row = y[n, o, oh + i]
                for w in range(OW):
                    row[w] = out[i, w, o]


@_kernel(cost=4)
def winograd_grad_output(gy, ti0, TR, TW, Gy):
    # Threads over rows of tiles, each filling its tiles' slots of Gy alone: the 2 rows of gy under a row
    # of tiles are made channels last (zero past the last row or column), then vectors of channels.
    N, O, OH, OW = gy.shape
    for nr in prange(N * TR):
        n = nr // TR
        r = nr % TR
        oh = 2 * (ti0 + r)
        g = np.zeros((2, 2 * TW, O), gy.dtype)
        for i in range(min(2, OH - oh)):
            for w in range(OW):
                gw = g[i, w]
                for o in range(O):
                    gw[o] = gy[n, o, oh + i, w]
        u = np.empty((8, O), gy.dtype)  # A g: row a of the tile at u[2a + j], for each column j
        for tj in range(TW):
            for j in range(2):
                g0, g1 = g[0, 2 * tj + j], g[1, 2 * tj + j]
                u0, u1, u2, u3 = u[j], u[2 + j], u[4 + j], u[6 + j]
                for o in range(O):  # A g: rows g0, g0+g1, g0-g1, -g1
                    u0[o] = g0[o]
                    u1[o] = g0[o] + g1[o]
                    u2[o] = g0[o] - g1[o]
                    u3[o] = -g1[o]
            at = ((n * TR + r) * TW + tj) * O
            for a in range(4):  # (A g) At, the same on the columns
                a0, a1 = u[2 * a], u[2 * a + 1]
                G0, G1 = Gy[4 * a, at:at + O], Gy[4 * a + 1, at:at + O]
                G2, G3 = Gy[4 * a + 2, at:at + O], Gy[4 * a + 3, at:at + O]
                for o in range(O):
                    G0[o] = a0[o]
                    G1[o] = a0[o] + a1[o]
                    G2[o] = a0[o] - a1[o]
                    G3[o] = -a1[o]


# _F4_CONSTANTS: F(4x4, 3x3)'s transforms scale by 2, 4, 5 and 8, written below as constants of the arrays'
# dtype. In Numba a Python int times a float32 is a float64, so ``4 * d[c]`` would run the whole transform in
# double precision: half as many lanes per vector, and conversions both ways (numbers: docs/PERFORMANCE.md,
# "Winograd constants in the arrays' dtype").
@_kernel(cost=8)
def winograd4_input(x, PH, PW, ti0, TR, TW, V):
    # winograd_input for F(4x4, 3x3): 6x6 tiles every 4 rows and columns, V (36, L). Bt d's rows are
    # 4d0 - 5d2 + d4, d3 + d4 - 4(d1 + d2), d4 - d3 + 4(d1 - d2), d4 - d2 + 2(d3 - d1), d4 - d2 + 2(d1 - d3),
    # 4d1 - 5d3 + d5; the same on the columns.
    N, C, H, W = x.shape
    two, four, five = x.dtype.type(2), x.dtype.type(4), x.dtype.type(5)  # see _F4_CONSTANTS
    SW = 4 * TW + 2
    for nr in prange(N * TR):
        n = nr // TR
        r = nr % TR
        s = np.zeros((6, SW, C), x.dtype)
        for i in range(6):
            h = 4 * (ti0 + r) - PH + i
            if 0 <= h < H:
                for k in range(max(0, PW), min(SW, W + PW)):
                    sk = s[i, k]
                    for c in range(C):
                        sk[c] = x[n, c, h, k - PW]
        e = np.empty((36, C), x.dtype)  # Bt d: row p of the tile at e[6p + j], for each column j
        for tj in range(TW):
            for j in range(6):
                d0, d1, d2 = s[0, 4 * tj + j], s[1, 4 * tj + j], s[2, 4 * tj + j]
                d3, d4, d5 = s[3, 4 * tj + j], s[4, 4 * tj + j], s[5, 4 * tj + j]
                e0, e1, e2, e3, e4, e5 = e[j], e[6 + j], e[12 + j], e[18 + j], e[24 + j], e[30 + j]
                for c in range(C):
                    e0[c] = four * d0[c] - five * d2[c] + d4[c]
                    e1[c] = d3[c] + d4[c] - four * (d1[c] + d2[c])
                    e2[c] = d4[c] - d3[c] + four * (d1[c] - d2[c])
                    e3[c] = d4[c] - d2[c] + two * (d3[c] - d1[c])
                    e4[c] = d4[c] - d2[c] + two * (d1[c] - d3[c])
                    e5[c] = four * d1[c] - five * d3[c] + d5[c]
            at = ((n * TR + r) * TW + tj) * C
            for p in range(6):
                d0, d1, d2 = e[6 * p], e[6 * p + 1], e[6 * p + 2]
                d3, d4, d5 = e[6 * p + 3], e[6 * p + 4], e[6 * p + 5]
                v0, v1, v2 = V[6 * p, at:at + C], V[6 * p + 1, at:at + C], V[6 * p + 2, at:at + C]
                v3, v4, v5 = V[6 * p + 3, at:at + C], V[6 * p + 4, at:at + C], V[6 * p + 5, at:at + C]
                for c in range(C):
                    v0[c] = four * d0[c] - five * d2[c] + d4[c]
                    v1[c] = d3[c] + d4[c] - four * (d1[c] + d2[c])
                    v2[c] = d4[c] - d3[c] + four * (d1[c] - d2[c])
                    v3[c] = d4[c] - d2[c] + two * (d3[c] - d1[c])
                    v4[c] = d4[c] - d2[c] + two * (d1[c] - d3[c])
                    v5[c] = four * d1[c] - five * d3[c] + d5[c]


@_kernel(cost=8)
def winograd4_output(M, b, ti0, TR, TW, y):
    # winograd_output for F(4x4, 3x3): M (36, L) into 4x4 output tiles. At m's rows are m0 + m1 + m2 + m3 + m4,
    # m1 - m2 + 2(m3 - m4), m1 + m2 + 4(m3 + m4), m1 - m2 + 8(m3 - m4) + m5; the same on the columns.
    N, O, OH, OW = y.shape
    two, four, eight = M.dtype.type(2), M.dtype.type(4), M.dtype.type(8)  # see _F4_CONSTANTS
    for nr in prange(N * TR):
        n = nr // TR
        r = nr % TR
        out = np.empty((4, 4 * TW, O), M.dtype)
        s = np.empty((24, O), M.dtype)  # At m: row i of the tile at s[6i + q], for each column q
        for tj in range(TW):
            at = ((n * TR + r) * TW + tj) * O
            for q in range(6):
                m0, m1, m2 = M[q, at:at + O], M[6 + q, at:at + O], M[12 + q, at:at + O]
                m3, m4, m5 = M[18 + q, at:at + O], M[24 + q, at:at + O], M[30 + q, at:at + O]
                s0, s1, s2, s3 = s[q], s[6 + q], s[12 + q], s[18 + q]
                for o in range(O):
                    s0[o] = m0[o] + m1[o] + m2[o] + m3[o] + m4[o]
                    s1[o] = m1[o] - m2[o] + two * (m3[o] - m4[o])
                    s2[o] = m1[o] + m2[o] + four * (m3[o] + m4[o])
                    s3[o] = m1[o] - m2[o] + eight * (m3[o] - m4[o]) + m5[o]
            for i in range(4):
                m0, m1, m2 = s[6 * i], s[6 * i + 1], s[6 * i + 2]
                m3, m4, m5 = s[6 * i + 3], s[6 * i + 4], s[6 * i + 5]
                y0, y1, y2, y3 = out[i, 4 * tj], out[i, 4 * tj + 1], out[i, 4 * tj + 2], out[i, 4 * tj + 3]
                for o in range(O):
                    y0[o] = m0[o] + m1[o] + m2[o] + m3[o] + m4[o] + b[o]
                    y1[o] = m1[o] - m2[o] + two * (m3[o] - m4[o]) + b[o]
                    y2[o] = m1[o] + m2[o] + four * (m3[o] + m4[o]) + b[o]
                    y3[o] = m1[o] - m2[o] + eight * (m3[o] - m4[o]) + m5[o] + b[o]
        oh = 4 * (ti0 + r)
        for i in range(min(4, OH - oh)):
            for o in range(O):
                row = y[n, o, oh + i]
                for w in range(OW):
                    row[w] = out[i, w, o]


@_kernel(cost=8)
def winograd4_grad_output(gy, ti0, TR, TW, Gy):
    # winograd_grad_output for F(4x4, 3x3): 4x4 tiles of gy into Gy (36, L). A g's rows are g0,
    # g0 + g1 + g2 + g3, g0 - g1 + g2 - g3, g0 + 2g1 + 4g2 + 8g3, g0 - 2g1 + 4g2 - 8g3, g3; the same on the
    # columns.
    N, O, OH, OW = gy.shape
    two, four, eight = gy.dtype.type(2), gy.dtype.type(4), gy.dtype.type(8)  # see _F4_CONSTANTS
    for nr in prange(N * TR):
        n = nr // TR
        r = nr % TR
        oh = 4 * (ti0 + r)
        g = np.zeros((4, 4 * TW, O), gy.dtype)
        for i in range(min(4, OH - oh)):
            for w in range(OW):
                gw = g[i, w]
                for o in range(O):
                    gw[o] = gy[n, o, oh + i, w]
        u = np.empty((24, O), gy.dtype)  # A g: row p of the tile at u[4p + j], for each column j
        for tj in range(TW):
            for j in range(4):
                g0, g1, g2, g3 = g[0, 4 * tj + j], g[1, 4 * tj + j], g[2, 4 * tj + j], g[3, 4 * tj + j]
                u0, u1, u2, u3, u4, u5 = u[j], u[4 + j], u[8 + j], u[12 + j], u[16 + j], u[20 + j]
                for o in range(O):
                    u0[o] = g0[o]
                    u1[o] = g0[o] + g1[o] + g2[o] + g3[o]
                    u2[o] = g0[o] - g1[o] + g2[o] - g3[o]
                    u3[o] = g0[o] + two * g1[o] + four * g2[o] + eight * g3[o]
                    u4[o] = g0[o] - two * g1[o] + four * g2[o] - eight * g3[o]
                    u5[o] = g3[o]
            at = ((n * TR + r) * TW + tj) * O
            for p in range(6):
                g0, g1, g2, g3 = u[4 * p], u[4 * p + 1], u[4 * p + 2], u[4 * p + 3]
                G0, G1, G2 = Gy[6 * p, at:at + O], Gy[6 * p + 1, at:at + O], Gy[6 * p + 2, at:at + O]
                G3, G4, G5 = Gy[6 * p + 3, at:at + O], Gy[6 * p + 4, at:at + O], Gy[6 * p + 5, at:at + O]
                for o in range(O):
                    G0[o] = g0[o]
                    G1[o] = g0[o] + g1[o] + g2[o] + g3[o]
                    G2[o] = g0[o] - g1[o] + g2[o] - g3[o]
                    G3[o] = g0[o] + two * g1[o] + four * g2[o] + eight * g3[o]
                    G4[o] = g0[o] - two * g1[o] + four * g2[o] - eight * g3[o]
                    G5[o] = g3[o]
