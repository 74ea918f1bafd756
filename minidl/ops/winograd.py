"""3x3 convolutions with Winograd's minimal filtering F(m x m, 3x3): 2.25x (m = 2) or 4x (m = 4) fewer
multiplications than im2col.

A 2x2 tile of a 3x3 convolution's output depends on the 4x4 tile d of the input under it. Lavin and Gray
(2016, "Fast Algorithms for Convolutional Neural Networks") write it with three small constant matrices
(``kernels/reference.py``: Bt 4x4, G 4x3, At 2x4) as

    y_tile = At [ sum_c (G g[o, c] Gt) * (Bt d[c] B) ] A          * elementwise, over the 4x4 positions

where only the 16 elementwise products multiply data by weights (im2col's GEMM does 36 per tile): the
transforms are sums and differences. Over all tiles t and channels, each of the 16 positions xi is a matrix
product, so a convolution becomes

    V[xi]  = Bt d B      (T, C)     the input tiles, transformed       (kernel ``winograd_input``)
    U[xi]  = G g Gt      (C, O)     the filters, transformed           (one small GEMM, :func:`transform_weight`)
    M[xi]  = V[xi] @ U[xi]          16 GEMMs of (T, C) @ (C, O)
    y_tile = At M_tile A + b                                           (kernel ``winograd_output``)

The backward is the adjoint of these linear steps, so it gives the exact gradients of the same function:
with Gy = A gy_tile At (kernel ``winograd_grad_output``), the filter gradient is
``gW = Gt [ sum_t Gy_t * V_t ] G``, again 16 GEMMs (O, T) @ (T, C); and the input gradient, the transposed
convolution, is itself a 3x3 convolution of gy with the filters turned by 180 degrees and transposed, so
it runs through the forward path (:func:`conv_grad_input`).

The same holds for 4x4 output tiles from 6x6 input tiles, F(4x4, 3x3), with 36 positions (matrices of
``kernels/reference.py``'s WINOGRAD4_*): 36 GEMMs whose columns are 2.25 per output, not 4. Its
transforms also scale by 2, 4, 5 and 8, so float32 results are about 10x further from a direct sum
(1e-5 of the output's scale, against 5e-7). :func:`tiling` picks the size per convolution, by the
columns of its GEMMs; with both sizes, VGG-16's training step is faster than with F(2x2, 3x3) alone
(numbers: docs/PERFORMANCE.md, "F(4x4, 3x3) beside F(2x2, 3x3)").

The transform kernels run on vectors of channels: each row of tiles copies the rows of x (or gy) under
it into a small channels-last scratch slab first, and the output tiles go back into NCHW the same way.

Only stride 1, dilation 1, one group, and (:func:`suits`) enough channels for the GEMMs to be worth
their transforms: :data:`MIN_CHANNELS` (numbers: docs/PERFORMANCE.md, "Winograd channel threshold"); and
each product (the output, or a gradient) only where the tiles fit its maps well
(:data:`MAX_COLUMNS_PER_POSITION`).
The transforms are Numba kernels with plain twins in ``kernels/reference.py``; on the GPU every
convolution keeps im2col. The price is rounding: the transforms add, subtract and (F(4x4, 3x3)) scale up to
36 terms, so float32 results are further from a direct sum than im2col's, as said above
(tests/test_conv.py compares the float32 results with PyTorch's).
"""
from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from ..kernels import cpu, kernels_in_use, reference
from . import blocks

# Winograd runs a convolution when both its channel counts are at least this: with fewer, the GEMMs are too
# thin to make up for the transforms (numbers: docs/PERFORMANCE.md, "Winograd channel threshold").
MIN_CHANNELS = 32
# ... and when the maps hold at least this many positions in all (N x H x W of the input, or of the output
# gradient): on fewer, the filter transforms, whose cost does not shrink with the batch, outweigh what the
# tiles save (numbers: docs/PERFORMANCE.md, "Winograd position threshold").
MIN_POSITIONS = 1024
# ... and when its tiles cover the product's output with at most this many GEMM columns per output position
# (tile positions x tiles / output positions): 2.25 where F(4x4, 3x3)'s tiles fit the map, more than 3 on
# square maps of 2, 3, 5, 6, 9, 10, 13 and 17 rows, where many of the tiles' positions fall outside it
# (numbers: docs/PERFORMANCE.md, "Winograd tiles that fit").
MAX_COLUMNS_PER_POSITION = 3.0


# The switch: ``minidl.ops.winograd.enabled = False`` (or ``MINIDL_WINOGRAD=0`` in the environment) sends
# every convolution through im2col + GEMM. The reference kernels (``minidl.use_kernels("reference")``) do too.
enabled = os.environ.get("MINIDL_WINOGRAD", "1") != "0"


def suits(KH: int, KW: int, stride, dilation, groups: int, C: int, O: int, positions: int, out_size) -> bool:
    """Whether Winograd's algorithm computes a product of this convolution (its output, or a gradient), and
    pays: switched on, the fast kernels in use, 3x3, stride 1, no dilation, one group, at least MIN_CHANNELS
    input and output channels, MIN_POSITIONS positions (N x H x W) in the maps, and tiles that fit the
    product's output maps ``out_size`` (:func:`columns_per_position`)."""
    return (enabled and kernels_in_use() == "fast" and (KH, KW) == (3, 3) and tuple(stride) == (1, 1)
            and tuple(dilation) == (1, 1) and groups == 1 and min(C, O) >= MIN_CHANNELS
            and positions >= MIN_POSITIONS and columns_per_position(*out_size) <= MAX_COLUMNS_PER_POSITION)


class Tiling(NamedTuple):
    """One size of the algorithm, F(m x m, 3x3): output tiles m a side, input tiles a = m + 2 a side."""
    m: int
    K: np.ndarray       # (a*a, 9): U[xi] = K[xi] @ g.reshape(9), the filter transform G g Gt
    input: object       # the kernels: V = Bt d B, y = At M A + b, Gy = A g At
    output: object
    grad_output: object

    @property
    def positions(self) -> int:
        """a*a: the number of GEMMs."""
        return (self.m + 2) ** 2

    def grid(self, OH: int, OW: int) -> tuple:
        """(TH, TW): the tiles that cover an OH x OW output."""
        return -(-OH // self.m), -(-OW // self.m)


def _filter_transform(G) -> np.ndarray:
    """K (a*a, 9) with K[p*a + q, kh*3 + kw] = G[p, kh] G[q, kw]: U = K @ g.reshape(9) for one filter g."""
    G = np.array(G, dtype=np.float64)
    return np.einsum("pk,ql->pqkl", G, G).reshape(len(G) ** 2, 9)


F2 = Tiling(2, _filter_transform(reference.WINOGRAD_G), cpu.winograd_input, cpu.winograd_output,
            cpu.winograd_grad_output)
F4 = Tiling(4, _filter_transform(reference.WINOGRAD4_G), cpu.winograd4_input, cpu.winograd4_output,
            cpu.winograd4_grad_output)


def tiling(OH: int, OW: int) -> Tiling:
    """The size for an OH x OW output: the one whose GEMMs have fewer columns (positions x tiles),
    F(2x2, 3x3) on a tie. So F(4x4, 3x3) on 4x4 and from 7x7 up (36 columns per 16 outputs, against 64),
    F(2x2, 3x3) on 2x2 (VGG-16's last block), where a 6x6 tile would be mostly padding."""
    def columns(t: Tiling) -> int:
        TH, TW = t.grid(OH, OW)
        return t.positions * TH * TW
    return F4 if columns(F4) < columns(F2) else F2


def columns_per_position(OH: int, OW: int) -> float:
    """The GEMM columns (tile positions x tiles) that :func:`tiling`'s tiles spend per output position on an
    OH x OW map: im2col's GEMM spends 9 multiplications where a column spends 1, but the columns also cost
    their transforms. 36 x 1 / 16 = 2.25 where F(4x4, 3x3)'s tiles fit (a 4x4 map), 16 x 9 / 36 = 4 on a 6x6
    map (9 tiles of F(2x2, 3x3))."""
    t = tiling(OH, OW)
    TH, TW = t.grid(OH, OW)
    return t.positions * TH * TW / (OH * OW)


def transform_weight(W, t: Tiling, turned: bool = False):
    """U (a*a, C, O) = G W[o, c] Gt for every filter of W (O, C, 3, 3), as one (a*a, 9) @ (9, O*C) GEMM: the
    filters as the tiles' GEMMs (a*a, T, C) @ (a*a, C, O) use them (a transposed view; NumPy's matmul
    passes it to BLAS as it is).

    With ``turned``, the filters of the transposed convolution instead, from its input channels O to its
    output channels C: U (a*a, O, C) of W[o, c] turned by 180 degrees. Turning reverses a filter's 9 taps
    read row by row, so this is K with its columns reversed.
    """
    O, C = W.shape[:2]
    K = (t.K[:, ::-1] if turned else t.K).astype(W.dtype)
    U = (K @ W.reshape(O * C, 9).T).reshape(t.positions, O, C)
    return U if turned else U.swapaxes(1, 2)


def weight_grad(gU, t: Tiling, O, C):
    """gW (O, C, 3, 3) = Gt gU G for every filter: the adjoint of :func:`transform_weight`."""
    return (gU.reshape(t.positions, O * C).T @ t.K.astype(gU.dtype)).reshape(O, C, 3, 3)


def _rows(buf, t: Tiling, T: int, channels: int, dtype):
    """An (a*a, L) buffer for a*a rows of T*channels entries (``blocks.buffer``: reused from ``buf`` when
    large enough), and the (a*a, T, channels) view of those entries that the GEMMs use. L is a little longer
    than T*channels: with rows a multiple of 4 KiB long, the vectors a tile writes or reads would share
    cache sets and evict each other."""
    L = -(-channels * T // 16) * 16 + 16
    buf, rows = blocks.buffer(np, buf, (t.positions, L), dtype)
    return buf, rows, rows[:, :channels * T].reshape(t.positions, T, channels)


def conv_output(x, W, b, padding, out_size):
    """y (N, O, OH, OW) = conv2d(x, W) + b, ops/conv.py's :func:`~minidl.ops.conv.conv_output`.

    x (N, C, H, W_in), W (O, C, 3, 3), b (O,) or None; ``padding`` (PH, PW) top/left, the bottom/right
    padding implied by ``out_size`` (OH, OW): y = convolve(x, G W Gt) + b.
    """
    t = tiling(*out_size)
    return convolve(x, transform_weight(W, t), b, padding, out_size, t)


def conv_grad_input(gy, W, padding, input_size):
    """gx (N, C, H, W_in) = convolve(gy, G W' Gt), W'[c, o] = W[o, c] turned by 180 degrees: the transposed
    convolution is the "full" correlation with W', padding 2 - PH, 2 - PW."""
    PH, PW = padding
    t = tiling(*input_size)
    return convolve(np.ascontiguousarray(gy), transform_weight(W, t, turned=True), None, (2 - PH, 2 - PW),
                    input_size, t)


def conv_grad_weight(x, gy, padding):
    """gW (O, C, 3, 3) = Gt (sum over tiles of Gy * V) G, the tiling picked by gy's size."""
    t = tiling(*gy.shape[2:])
    return weight_grad(filter_grad(x, np.ascontiguousarray(gy), padding, t), t, gy.shape[1], x.shape[1])


def convolve(x, U, b, padding, out_size, t: Tiling):
    """y (N, O, OH, OW) = the 3x3 convolution of x (N, C, H, W) with the filters transformed into U (a*a, C, O).

    ``padding`` (PH, PW) top/left; ``out_size`` (OH, OW) (the bottom/right padding it implies is read as
    zeros by the input transform); ``t`` the :class:`Tiling` U was transformed for. The tiles are cut into
    blocks of whole samples or of bands of tile rows, shared among the CPU's worker threads as the im2col
    blocks are (ops/blocks.py).
    """
    N, C = x.shape[:2]
    O = U.shape[2]
    (PH, PW), (OH, OW) = padding, out_size
    TH, TW = t.grid(OH, OW)
    y = np.empty((N, O, OH, OW), dtype=x.dtype)
    bias = b if b is not None else np.zeros(O, dtype=x.dtype)

    def work(share, in_worker):
        to_tiles, matmul = blocks.tools(np, t.input, in_worker)
        from_tiles = blocks.tools(np, t.output, in_worker)[0]
        V_buf = M_buf = None
        for n0, n1, t0, t1 in share:
            T = (n1 - n0) * (t1 - t0) * TW
            V_buf, V, V_mats = _rows(V_buf, t, T, C, x.dtype)
            to_tiles(x[n0:n1], PH, PW, t0, t1 - t0, TW, V)
            M_buf, M, M_mats = _rows(M_buf, t, T, O, x.dtype)
            matmul(V_mats, U, out=M_mats)
            from_tiles(M, bias, t0, t1 - t0, TW, y[n0:n1])

    blocks.on_workers(np, blocks.split(N, TH, TW, t.positions * (C + O) * x.dtype.itemsize), work)
    return y


def filter_grad(x, gy, padding, t: Tiling):
    """gU (a*a, O, C) = sum over tiles of Gy[xi]^T @ V[xi]: the gradient of the transformed filters U.

    x (N, C, H, W) the input, gy (N, O, OH, OW) the output gradient, ``padding`` (PH, PW) and ``t`` as in
    :func:`convolve`. :func:`weight_grad` turns gU into gW. The input tiles V are transformed again here
    rather than kept from the forward, where they would hold 2-4x the input's memory until the backward.
    """
    N, C = x.shape[:2]
    O, OH, OW = gy.shape[1:]
    PH, PW = padding
    TH, TW = t.grid(OH, OW)

    def work(share, in_worker):
        to_tiles, matmul = blocks.tools(np, t.input, in_worker)
        grad_tiles = blocks.tools(np, t.grad_output, in_worker)[0]
        V_buf = Gy_buf = total = None
        for n0, n1, t0, t1 in share:
            T = (n1 - n0) * (t1 - t0) * TW
            V_buf, V, V_mats = _rows(V_buf, t, T, C, x.dtype)
            to_tiles(x[n0:n1], PH, PW, t0, t1 - t0, TW, V)
            Gy_buf, Gy, Gy_mats = _rows(Gy_buf, t, T, O, x.dtype)
            grad_tiles(gy[n0:n1], t0, t1 - t0, TW, Gy)
            part = matmul(Gy_mats.swapaxes(1, 2), V_mats)
            total = part if total is None else np.add(total, part, out=total)
        return total

    shares = blocks.split(N, TH, TW, t.positions * (C + O) * x.dtype.itemsize)
    parts = [part for part in blocks.on_workers(np, shares, work) if part is not None]
    if not parts:  # an empty batch
        return np.zeros((t.positions, O, C), dtype=x.dtype)
    for part in parts[1:]:  # into the first worker's sum: no third array as large as the others
        parts[0] += part
    return parts[0]
