"""Plain-Python twins of every kernel: slow, obvious, and the oracle the fast kernels are tested against.

Each function has exactly the signature of its twin in ``cpu.py`` and ``cuda.py``: inputs first, then the
geometry as ints, then the output arrays, which the function fills in place (nothing is returned).

Notation (NCHW): x (N, C, H, W) is the input of a convolution or pooling, y (N, C, OH, OW) its output.
Kernel KH x KW, stride SH, SW, padding PH, PW (top/left; the bottom/right padding is implied by OH, OW),
dilation DH, DW. Output element (oh, ow) looks at input rows ``oh*SH - PH + kh*DH`` for kh = 0..KH-1 and
columns ``ow*SW - PW + kw*DW`` for kw = 0..KW-1; positions outside the input are padding.
"""
from __future__ import annotations

import math


def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, oh0, col):
    """Copy every kernel window of ``x`` into a column: the unfold that turns a convolution into a GEMM.

    col (C, KH, KW, N, R, OW) holds output rows oh0 .. oh0+R-1 (R = col.shape[4]) of every sample:
        col[c, kh, kw, n, r, ow] = x[n, c, (oh0+r)*SH - PH + kh*DH, ow*SW - PW + kw*DW], or 0 in the padding.
    Channel-major, so col.reshape(C*KH*KW, N*R*OW) is one matrix whose columns are the windows of all the
    samples: a single GEMM with the weight then convolves the whole block.
    """
    N, C, H, W = x.shape
    R, OW = col.shape[4], col.shape[5]
    for n in range(N):
        for c in range(C):
            for kh in range(KH):
                for kw in range(KW):
                    for r in range(R):
                        for ow in range(OW):
                            h = (oh0 + r) * SH - PH + kh * DH
                            w = ow * SW - PW + kw * DW
                            inside = 0 <= h < H and 0 <= w < W
                            col[c, kh, kw, n, r, ow] = x[n, c, h, w] if inside else 0


def col2im(col, SH, SW, PH, PW, DH, DW, oh0, x):
    """The adjoint of :func:`im2col` (the fold): add every column entry back where im2col read it from.

    col (C, KH, KW, N, R, OW) as im2col writes it. ``x += fold(col)``: x[n, c, h, w] grows by the sum of the
    col entries that im2col copied from (h, w). Written here as the obvious scatter; the fast kernels
    compute the same sums as a gather.
    """
    C, KH, KW, N, R, OW = col.shape
    H, W = x.shape[2], x.shape[3]
    for n in range(N):
        for c in range(C):
            for kh in range(KH):
                for kw in range(KW):
                    for r in range(R):
                        for ow in range(OW):
                            h = (oh0 + r) * SH - PH + kh * DH
                            w = ow * SW - PW + kw * DW
                            if 0 <= h < H and 0 <= w < W:
                                x[n, c, h, w] += col[c, kh, kw, n, r, ow]


def conv_direct(x, W, b, DH, DW, y):
    """A stride-1 convolution summed tap by tap, with no columns: y = W * x + b for thin filter banks.

    x (N, C, Hp, Wp) is the input with its padding already around it; W (O, C/G, KH, KW); b (O,); y (N, O, OH, OW).
    Filter o belongs to group g = o // (O/G) and reads that group's channels:
        y[n, o, oh, ow] = b[o] + sum_{c, kh, kw} W[o, c, kh, kw] * x[n, g*C/G + c, oh + kh*DH, ow + kw*DW]
    """
    N, O, OH, OW = y.shape
    Cg, KH, KW = W.shape[1:]
    Og = O // (x.shape[1] // Cg)
    for n in range(N):
        for o in range(O):
            g = o // Og
            for oh in range(OH):
                for ow in range(OW):
                    total = b[o]
                    for c in range(Cg):
                        for kh in range(KH):
                            for kw in range(KW):
                                total += W[o, c, kh, kw] * x[n, g * Cg + c, oh + kh * DH, ow + kw * DW]
                    y[n, o, oh, ow] = total


def conv_direct_grad_input(gy, W, DH, DW, gx):
    """The adjoint of :func:`conv_direct` in x: ``gx +=`` each output gradient sent back along every tap.

    gy (N, O, OH, OW); W (O, C/G, KH, KW); gx (N, C, Hp, Wp), padded like conv_direct's x, summed into:
        gx[n, g*C/G + c, oh + kh*DH, ow + kw*DW] += W[o, c, kh, kw] * gy[n, o, oh, ow]
    Written as the scatter; the fast kernel gathers into each gx plane.
    """
    N, O, OH, OW = gy.shape
    Cg, KH, KW = W.shape[1:]
    Og = O // (gx.shape[1] // Cg)
    for n in range(N):
        for o in range(O):
            g = o // Og
            for c in range(Cg):
                for kh in range(KH):
                    for kw in range(KW):
                        for oh in range(OH):
                            for ow in range(OW):
                                gx[n, g * Cg + c, oh + kh * DH, ow + kw * DW] += W[o, c, kh, kw] * gy[n, o, oh, ow]


def conv_direct_grad_weight(x, gy, DH, DW, gW):
    """The gradient of :func:`conv_direct` in W: each tap's products with gy, summed over (n, oh, ow).

    x (N, C, Hp, Wp) padded; gy (N, O, OH, OW); gW (O, C/G, KH, KW), written:
        gW[o, c, kh, kw] = sum_{n, oh, ow} gy[n, o, oh, ow] * x[n, g*C/G + c, oh + kh*DH, ow + kw*DW]
    """
    N, O, OH, OW = gy.shape
    Cg, KH, KW = gW.shape[1:]
    Og = O // (x.shape[1] // Cg)
    for o in range(O):
        g = o // Og
        for c in range(Cg):
            for kh in range(KH):
                for kw in range(KW):
                    total = 0.0
                    for n in range(N):
                        for oh in range(OH):
                            for ow in range(OW):
                                total += gy[n, o, oh, ow] * x[n, g * Cg + c, oh + kh * DH, ow + kw * DW]
                    gW[o, c, kh, kw] = total


def max_pool_window(o, S, P, K, D, size):
    """The taps of output o's max-pooling window along one axis that lie inside the input: (first, stop),
    the positions first, first + D, ... below stop. The window starts at o*S - P and spans (K-1)*D + 1;
    taps in the padding are skipped by whole steps of D, so first is the first tap at or after 0.
    (Written once: ``cpu.py`` compiles this very function; ``cuda.py`` has it in CUDA C.)
    """
    first = o * S - P
    stop = min(first + (K - 1) * D + 1, size)
    while first < 0:
        first += D
    return first, stop


def max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, y, idx):
    """y = the max of each window (padding counts as -inf); idx = its flat position h*W + w in the plane.

    idx may be int64 or int32 (the ops use int32 internally where the plane has fewer than 2**31 elements).

    The first maximum wins a tie and a NaN always wins, as in PyTorch. A window that lies entirely in the
    padding gives -inf and PyTorch's index of its first in-range row and column.
    """
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    h0, h1 = max_pool_window(oh, SH, PH, KH, DH, H)
                    w0, w1 = max_pool_window(ow, SW, PW, KW, DW, W)
                    best, best_at = -math.inf, h0 * W + w0
                    for h in range(h0, h1, DH):
                        for w in range(w0, w1, DW):
                            v = x[n, c, h, w]
                            if v > best or v != v:
                                best, best_at = v, h * W + w
                    y[n, c, oh, ow] = best
                    idx[n, c, oh, ow] = best_at


def max_pool2d_backward(gy, idx, KH, KW, SH, SW, PH, PW, DH, DW, gx):
    """gx = each window's gy routed to the position of its maximum: gx[n, c, idx[n, c, oh, ow]] += gy[...].

    The geometry is not needed by this scatter; it is in the signature because the fast twins gather.
    """
    N, C, OH, OW = gy.shape
    H, W = gx.shape[2], gx.shape[3]
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    gx[n, c, h, w] = 0
            for oh in range(OH):
                for ow in range(OW):
                    k = idx[n, c, oh, ow]
                    if 0 <= k < H * W:
                        gx[n, c, k // W, k % W] += gy[n, c, oh, ow]


def avg_pool_window(oh, ow, H, W, KH, KW, SH, SW, PH, PW, count_include_pad, divisor):
    """PyTorch's averaging window for output (oh, ow): (h0, h1, w0, w1, divisor), rows h0..h1-1 inside x.

    The divisor is ``divisor`` when given (non-zero); else the window's size clipped to the padded input
    (``count_include_pad``, so a ceil_mode window that runs past the padding is not counted there), or
    the number of real input elements in it. (Written once: ``cpu.py`` compiles this very function;
    ``cuda.py`` has it in CUDA C.)
    """
    h0, w0 = oh * SH - PH, ow * SW - PW
    h1, w1 = min(h0 + KH, H + PH), min(w0 + KW, W + PW)
    padded_size = (h1 - h0) * (w1 - w0)
    h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
    if divisor == 0:
        divisor = padded_size if count_include_pad else (h1 - h0) * (w1 - w0)
    return h0, h1, w0, w1, divisor


def avg_pool2d_forward(x, KH, KW, SH, SW, PH, PW, count_include_pad, divisor, y):
    """y = the sum of each window over the real input elements, divided by PyTorch's divisor
    (:func:`avg_pool_window`); a window with no input element gives 0."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    h0, h1, w0, w1, d = avg_pool_window(oh, ow, H, W, KH, KW, SH, SW, PH, PW,
                                                        count_include_pad, divisor)
                    s = 0.0
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            s += x[n, c, h, w]
                    y[n, c, oh, ow] = s / d if h0 < h1 and w0 < w1 else 0


def avg_pool2d_backward(gy, KH, KW, SH, SW, PH, PW, count_include_pad, divisor, gx):
    """gx[h, w] = sum over the windows that contain (h, w) of gy / that window's divisor."""
    N, C, OH, OW = gy.shape
    H, W = gx.shape[2], gx.shape[3]
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    gx[n, c, h, w] = 0
            for oh in range(OH):
                for ow in range(OW):
                    h0, h1, w0, w1, d = avg_pool_window(oh, ow, H, W, KH, KW, SH, SW, PH, PW,
                                                        count_include_pad, divisor)
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            gx[n, c, h, w] += gy[n, c, oh, ow] / d


def adaptive_avg_pool2d_forward(x, y):
    """y[oh, ow] = the mean of x over rows floor(oh*H/OH) .. ceil((oh+1)*H/OH)-1 and the same for columns."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    h0, h1 = oh * H // OH, -(-(oh + 1) * H // OH)
                    w0, w1 = ow * W // OW, -(-(ow + 1) * W // OW)
                    s = 0.0
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            s += x[n, c, h, w]
                    y[n, c, oh, ow] = s / ((h1 - h0) * (w1 - w0))


def adaptive_avg_pool2d_backward(gy, gx):
    """gx[h, w] = sum over the bins that contain (h, w) of gy / that bin's size."""
    N, C, OH, OW = gy.shape
    H, W = gx.shape[2], gx.shape[3]
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    gx[n, c, h, w] = 0
            for oh in range(OH):
                for ow in range(OW):
                    h0, h1 = oh * H // OH, -(-(oh + 1) * H // OH)
                    w0, w1 = ow * W // OW, -(-(ow + 1) * W // OW)
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            gx[n, c, h, w] += gy[n, c, oh, ow] / ((h1 - h0) * (w1 - w0))


# Winograd's minimal filtering F(m x m, 3x3) (Lavin & Gray, 2016): an m x m output tile of a 3x3 convolution,
# y = At [(G g Gt) * (Bt d B)] A, from the (m+2) x (m+2) input tile d under it and the 3x3 filter g, with
# (m+2)^2 multiplications instead of 9 m^2. Two sizes: F(2x2, 3x3), 16 instead of 36, whose transforms only
# add and subtract; and F(4x4, 3x3), 36 instead of 144, whose transforms also scale by 2, 4, 5 and 8, and
# so round a little more.
WINOGRAD_BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
WINOGRAD_G = ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1))
WINOGRAD_AT = ((1, 1, 1, 0), (0, 1, -1, -1))

WINOGRAD4_BT = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0),
                (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
WINOGRAD4_G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6), (1 / 24, 1 / 12, 1 / 6),
               (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))
WINOGRAD4_AT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))


def winograd_input(x, PH, PW, ti0, TR, TW, V, BT=WINOGRAD_BT):
    """Transform every input tile d of ``x`` into Bt d B: the input side of Winograd's F(m x m, 3x3).

    With a = m + 2 = len(BT) (F(2x2, 3x3) unless another BT is given), tile (ti, tj), for tile rows
    ti = ti0 .. ti0+TR-1 and columns tj = 0 .. TW-1, lies under output rows m ti .. m ti + m-1 and columns
    m tj .. m tj + m-1, and reads
        d[i, j] = x[n, c, m ti - PH + i, m tj - PW + j]    for i, j in 0..a-1, 0 in the padding.
    V (a*a, L) gets, in row a p + q, at slot t*C + c with t = (n*TR + ti - ti0)*TW + tj the tile's number,
        V[a p + q, t*C + c] = sum_ij Bt[p][i] d[i, j] Bt[q][j].
    So V[:, :T*C].reshape(a*a, T, C) (T = N*TR*TW tiles) is a*a matrices, tiles by channels: one GEMM
    each with the transformed filters. Slots past T*C (L may be longer) are left alone.
    """
    N, C, H, W = x.shape
    a = len(BT)
    m = a - 2
    for n in range(N):
        for r in range(TR):
            for tj in range(TW):
                t = (n * TR + r) * TW + tj
                for c in range(C):
                    h, w = m * (ti0 + r) - PH, m * tj - PW
                    d = [[x[n, c, h + i, w + j] if 0 <= h + i < H and 0 <= w + j < W else 0 for j in range(a)]
                         for i in range(a)]
                    for p in range(a):
                        for q in range(a):
                            V[a * p + q, t * C + c] = sum(BT[p][i] * d[i][j] * BT[q][j]
                                                          for i in range(a) for j in range(a))


def winograd_output(M, b, ti0, TR, TW, y, AT=WINOGRAD_AT):
    """Transform every product tile of ``M`` back into an output tile At M_tile A, plus the bias.

    With a = len(AT[0]) and tiles of m = len(AT) outputs a side (F(2x2, 3x3) unless another AT is given):
    M (a*a, L) laid out as V in :func:`winograd_input`, with the output channel o in place of c; b (O,);
    y (N, O, OH, OW):
        y[n, o, m ti + i, m tj + j] = sum_pq At[i][p] M[a p + q, t*O + o] At[j][q] + b[o]
    for i, j in 0..m-1 and t = (n*TR + ti - ti0)*TW + tj; the part of a tile past the last row or column
    of y (OH or OW not a multiple of m) is dropped.
    """
    N, O, OH, OW = y.shape
    m, a = len(AT), len(AT[0])
    for n in range(N):
        for r in range(TR):
            for tj in range(TW):
                t = (n * TR + r) * TW + tj
                for o in range(O):
                    for i in range(m):
                        for j in range(m):
                            oh, ow = m * (ti0 + r) + i, m * tj + j
                            if oh < OH and ow < OW:
                                y[n, o, oh, ow] = sum(AT[i][p] * M[a * p + q, t * O + o] * AT[j][q]
                                                      for p in range(a) for q in range(a)) + b[o]


def winograd_grad_output(gy, ti0, TR, TW, Gy, AT=WINOGRAD_AT):
    """Transform every m x m tile g of the output gradient into A g At: the adjoint of :func:`winograd_output`.

    gy (N, O, OH, OW); Gy (a*a, L) laid out as M in :func:`winograd_output`:
        Gy[a p + q, t*O + o] = sum_ij At[i][p] g[i, j] At[j][q],   g[i, j] = gy[n, o, m ti + i, m tj + j]
    (0 past the last row or column). This is the gradient of the products M that :func:`winograd_output`
    reads, so the sum over tiles of Gy * V is the gradient of the transformed filters (ops/winograd.py).
    """
    N, O, OH, OW = gy.shape
    m, a = len(AT), len(AT[0])
    for n in range(N):
        for r in range(TR):
            for tj in range(TW):
                t = (n * TR + r) * TW + tj
                for o in range(O):
                    oh, ow = m * (ti0 + r), m * tj
                    g = [[gy[n, o, oh + i, ow + j] if oh + i < OH and ow + j < OW else 0 for j in range(m)]
                         for i in range(m)]
                    for p in range(a):
                        for q in range(a):
                            Gy[a * p + q, t * O + o] = sum(AT[i][p] * g[i][j] * AT[j][q]
                                                           for i in range(m) for j in range(m))


def winograd4_input(x, PH, PW, ti0, TR, TW, V):
    """:func:`winograd_input` for F(4x4, 3x3): 6x6 input tiles under 4x4 output tiles; V (36, L)."""
    winograd_input(x, PH, PW, ti0, TR, TW, V, WINOGRAD4_BT)


def winograd4_output(M, b, ti0, TR, TW, y):
    """:func:`winograd_output` for F(4x4, 3x3): M (36, L) back into 4x4 output tiles."""
    winograd_output(M, b, ti0, TR, TW, y, WINOGRAD4_AT)


def winograd4_grad_output(gy, ti0, TR, TW, Gy):
    """:func:`winograd_grad_output` for F(4x4, 3x3): 4x4 tiles of gy into Gy (36, L)."""
    winograd_grad_output(gy, ti0, TR, TW, Gy, WINOGRAD4_AT)
