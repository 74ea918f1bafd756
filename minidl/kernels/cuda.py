"""CuPy GPU kernels for convolution and pooling, the device twins of ``cpu.py`` and ``reference.py``.

Same signatures and meaning as the reference (read its docstrings first). Each kernel is a
``cupy.ElementwiseKernel`` with one GPU thread per element of the array it writes, so every thread writes
only its own element (gather form: no races, no atomics). The CUDA source is compiled on the first call for
each dtype; CuPy keeps the binary in memory and in its on-disk kernel cache. CuPy is imported only when a
kernel is first used, so importing this module never needs a GPU.

Flat indices are ``long long`` so tensors with more than 2**31 elements index correctly; all arrays passed
here are C-contiguous (the ops make them so).
"""
from __future__ import annotations

import functools

_PREAMBLE = r"""
// floor(a / b) for b > 0, also for negative a (C's / truncates toward zero)
__device__ long long floordiv(long long a, long long b) { return (a >= 0 ? a : a - b + 1) / b; }
__device__ long long imin(long long a, long long b) { return a < b ? a : b; }
__device__ long long imax(long long a, long long b) { return a > b ? a : b; }

template <typename T> __device__ T neg_inf();
template <> __device__ float neg_inf<float>() { return __int_as_float(0xff800000); }
template <> __device__ double neg_inf<double>() { return __longlong_as_double(0xfff0000000000000LL); }

// PyTorch's averaging window of output (oh, ow): rows [*h0, *h1) and columns [*w0, *w1) inside the
// input, and its divisor (see reference.avg_pool_window).
__device__ void avg_window(long long oh, long long ow, long long H, long long W, long long KH, long long KW,
                           long long SH, long long SW, long long PH, long long PW, long long count_include_pad,
                           long long divisor, long long* h0, long long* h1, long long* w0, long long* w1,
                           long long* d) {
  long long a0 = oh * SH - PH, b0 = ow * SW - PW;
  long long a1 = imin(a0 + KH, H + PH), b1 = imin(b0 + KW, W + PW);
  long long padded_size = (a1 - a0) * (b1 - b0);
  *h0 = imax(a0, 0); *w0 = imax(b0, 0); *h1 = imin(a1, H); *w1 = imin(b1, W);
  *d = divisor != 0 ? divisor : (count_include_pad ? padded_size : (*h1 - *h0) * (*w1 - *w0));
}

// first and last adaptive bins (start floor(j*size/out), end ceil((j+1)*size/out)) that contain i:
// bin floor(i*out/size) is the first (see cpu._bins_containing), later ones follow while they start <= i
__device__ void bins_containing(long long i, long long size, long long out, long long* first, long long* last) {
  long long b = i * out / size;
  *first = b;
  while (b < out - 1 && (b + 1) * size / out <= i) ++b;
  *last = b;
}
"""

_KERNELS = {
    "im2col": (
        "raw T x, int64 N, int64 C, int64 H, int64 W, int64 KH, int64 KW, int64 SH, int64 SW, int64 PH, "
        "int64 PW, int64 DH, int64 DW, int64 oh0, int64 R, int64 OW",
        "T col",
        r"""
        long long t = i;  // col is (C, KH, KW, N, R, OW)
        const long long ow = t % OW; t /= OW;
        const long long r = t % R; t /= R;
        const long long n = t % N; t /= N;
        const long long kw = t % KW; t /= KW;
        const long long kh = t % KH; t /= KH;
        const long long c = t;
        const long long h = (oh0 + r) * SH - PH + kh * DH;
        const long long w = ow * SW - PW + kw * DW;
        col = (0 <= h && h < H && 0 <= w && w < W) ? x[((n * C + c) * H + h) * W + w] : (T)0;
        """),
    "col2im": (
        "raw T col, int64 N, int64 C, int64 H, int64 W, int64 KH, int64 KW, int64 SH, int64 SW, int64 PH, "
        "int64 PW, int64 DH, int64 DW, int64 oh0, int64 R, int64 OW",
        "T x",
        r"""
        long long t = i;
        const long long w = t % W; t /= W;
        const long long h = t % H; t /= H;
        const long long c = t % C, n = t / C;
        T s = 0;
        for (long long kh = 0; kh < KH; ++kh) {
          const long long th = h + PH - kh * DH;  // equals (oh0 + r) * SH when row r of col read row h
          if (th < 0 || th % SH != 0) continue;
          const long long r = th / SH - oh0;
          if (r < 0 || r >= R) continue;
          for (long long kw = 0; kw < KW; ++kw) {
            const long long tw = w + PW - kw * DW;
            if (tw < 0 || tw % SW != 0) continue;
            const long long ow = tw / SW;
            if (ow >= OW) continue;
            s += col[((((c * KH + kh) * KW + kw) * N + n) * R + r) * OW + ow];
          }
        }
        x += s;
        """),
    "max_pool2d_forward": (
        "raw T x, int64 H, int64 W, int64 KH, int64 KW, int64 SH, int64 SW, int64 PH, int64 PW, "
        "int64 DH, int64 DW, int64 OH, int64 OW",
        "T y, I idx",
        r"""
        long long t = i;
        const long long ow = t % OW; t /= OW;
        const long long oh = t % OH; t /= OH;  // t = n * C + c
        // the window's taps inside x, as reference.max_pool_window
        long long h0 = oh * SH - PH, w0 = ow * SW - PW;
        const long long h1 = imin(h0 + (KH - 1) * DH + 1, H), w1 = imin(w0 + (KW - 1) * DW + 1, W);
        while (h0 < 0) h0 += DH;
        while (w0 < 0) w0 += DW;
        T best = neg_inf<T>();
        long long best_at = h0 * W + w0;
        for (long long h = h0; h < h1; h += DH) {
          for (long long w = w0; w < w1; w += DW) {
            const T v = x[t * H * W + h * W + w];
            if (v > best || v != v) { best = v; best_at = h * W + w; }
          }
        }
        y = best;
        idx = best_at;
        """),
    "max_pool2d_backward": (
        "raw T gy, raw I idx, int64 H, int64 W, int64 KH, int64 KW, int64 SH, int64 SW, int64 PH, "
        "int64 PW, int64 DH, int64 DW, int64 OH, int64 OW",
        "T gx",
        r"""
        long long t = i;
        const long long w = t % W; t /= W;
        const long long h = t % H; t /= H;  // t = n * C + c
        const long long oh_lo = imax(0, floordiv(h + PH - (KH - 1) * DH + SH - 1, SH));
        const long long oh_hi = imin(OH - 1, (h + PH) / SH);
        const long long ow_lo = imax(0, floordiv(w + PW - (KW - 1) * DW + SW - 1, SW));
        const long long ow_hi = imin(OW - 1, (w + PW) / SW);
        const long long at = h * W + w;
        T s = 0;
        for (long long oh = oh_lo; oh <= oh_hi; ++oh) {
          for (long long ow = ow_lo; ow <= ow_hi; ++ow) {
            const long long o = (t * OH + oh) * OW + ow;
            if (idx[o] == at) s += gy[o];
          }
        }
        gx = s;
        """),
    "avg_pool2d_forward": (
        "raw T x, int64 H, int64 W, int64 KH, int64 KW, int64 SH, int64 SW, int64 PH, int64 PW, "
        "int64 count_include_pad, int64 divisor, int64 OH, int64 OW",
        "T y",
        r"""
        long long t = i;
        const long long ow = t % OW; t /= OW;
        const long long oh = t % OH; t /= OH;  // t = n * C + c
        long long h0, h1, w0, w1, d;
        avg_window(oh, ow, H, W, KH, KW, SH, SW, PH, PW, count_include_pad, divisor, &h0, &h1, &w0, &w1, &d);
        T s = 0;
        for (long long h = h0; h < h1; ++h)
          for (long long w = w0; w < w1; ++w) s += x[(t * H + h) * W + w];
        y = (h0 < h1 && w0 < w1) ? s / (T)d : (T)0;
        """),
    "avg_pool2d_backward": (
        "raw T gy, int64 H, int64 W, int64 KH, int64 KW, int64 SH, int64 SW, int64 PH, int64 PW, "
        "int64 count_include_pad, int64 divisor, int64 OH, int64 OW",
        "T gx",
        r"""
        long long t = i;
        const long long w = t % W; t /= W;
        const long long h = t % H; t /= H;  // t = n * C + c
        const long long oh_lo = imax(0, floordiv(h + PH - KH + SH, SH)), oh_hi = imin(OH - 1, (h + PH) / SH);
        const long long ow_lo = imax(0, floordiv(w + PW - KW + SW, SW)), ow_hi = imin(OW - 1, (w + PW) / SW);
        T s = 0;
        for (long long oh = oh_lo; oh <= oh_hi; ++oh) {
          for (long long ow = ow_lo; ow <= ow_hi; ++ow) {
            long long h0, h1, w0, w1, d;
            avg_window(oh, ow, H, W, KH, KW, SH, SW, PH, PW, count_include_pad, divisor, &h0, &h1, &w0, &w1, &d);
            s += gy[(t * OH + oh) * OW + ow] / (T)d;
          }
        }
        gx = s;
        """),
    "adaptive_avg_pool2d_forward": (
        "raw T x, int64 H, int64 W, int64 OH, int64 OW",
        "T y",
        r"""
        long long t = i;
        const long long ow = t % OW; t /= OW;
        const long long oh = t % OH; t /= OH;  // t = n * C + c
        const long long h0 = oh * H / OH, h1 = ((oh + 1) * H + OH - 1) / OH;
        const long long w0 = ow * W / OW, w1 = ((ow + 1) * W + OW - 1) / OW;
        T s = 0;
        for (long long h = h0; h < h1; ++h)
          for (long long w = w0; w < w1; ++w) s += x[(t * H + h) * W + w];
        y = s / (T)((h1 - h0) * (w1 - w0));
        """),
    "adaptive_avg_pool2d_backward": (
        "raw T gy, int64 H, int64 W, int64 OH, int64 OW",
        "T gx",
        r"""
        long long t = i;
        const long long w = t % W; t /= W;
        const long long h = t % H; t /= H;  // t = n * C + c
        long long oh_lo, oh_hi, ow_lo, ow_hi;
        bins_containing(h, H, OH, &oh_lo, &oh_hi);
        bins_containing(w, W, OW, &ow_lo, &ow_hi);
        T s = 0;
        for (long long oh = oh_lo; oh <= oh_hi; ++oh) {
          const long long bin_h = ((oh + 1) * H + OH - 1) / OH - oh * H / OH;
          for (long long ow = ow_lo; ow <= ow_hi; ++ow) {
            const long long bin_w = ((ow + 1) * W + OW - 1) / OW - ow * W / OW;
            s += gy[(t * OH + oh) * OW + ow] / (T)(bin_h * bin_w);
          }
        }
        gx = s;
        """),
    # NaN is not <= 0: it passes, and stays NaN, as in PyTorch's relu.
    "relu_forward": (
        "T x",
        "T y, bool mask",
        "mask = !(x <= 0); y = mask ? x : (T)0;"),
    "relu_backward": (
        "T gy, bool mask",
        "T gx",
        "gx = mask ? gy : (T)0;"),
    # NaN is not > 0: it takes the slope branch and stays NaN, as in PyTorch.
    "leaky_relu_forward": (
        "T x, float64 negative_slope",
        "T y, bool mask",
        "mask = x > 0; y = mask ? x : x * (T)negative_slope;"),
    "leaky_relu_backward": (
        "T gy, bool mask, float64 negative_slope",
        "T gx",
        "gx = mask ? gy : gy * (T)negative_slope;"),
}


@functools.lru_cache(maxsize=None)
def _kernel(name: str):
    """The ElementwiseKernel called ``name``, built once per process (CuPy compiles it per dtype)."""
    import cupy
    in_params, out_params, body = _KERNELS[name]
    return cupy.ElementwiseKernel(in_params, out_params, body, f"minidl_{name}", preamble=_PREAMBLE)


def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, oh0, col):
    # One thread per col element (c, kh, kw, n, r, ow), each reading one input element or the padding.
    N, C, H, W = x.shape
    _kernel("im2col")(x, N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, oh0, col.shape[4], col.shape[5], col)


def col2im(col, SH, SW, PH, PW, DH, DW, oh0, x):
    # Gather: one thread per x element sums the col entries that came from it, then adds them to x.
    C, KH, KW, N, R, OW = col.shape
    _kernel("col2im")(col, N, C, x.shape[2], x.shape[3], KH, KW, SH, SW, PH, PW, DH, DW, oh0, R, OW, x)


def max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, y, idx):
    # One thread per output element scans its window.
    _kernel("max_pool2d_forward")(x, x.shape[2], x.shape[3], KH, KW, SH, SW, PH, PW, DH, DW,
                                  y.shape[2], y.shape[3], y, idx)


def max_pool2d_backward(gy, idx, KH, KW, SH, SW, PH, PW, DH, DW, gx):
    # Gather: one thread per gx element sums gy over the windows whose argmax it is.
    _kernel("max_pool2d_backward")(gy, idx, gx.shape[2], gx.shape[3], KH, KW, SH, SW, PH, PW, DH, DW,
                                   gy.shape[2], gy.shape[3], gx)


def avg_pool2d_forward(x, KH, KW, SH, SW, PH, PW, count_include_pad, divisor, y):
    # One thread per output element sums its window.
    _kernel("avg_pool2d_forward")(x, x.shape[2], x.shape[3], KH, KW, SH, SW, PH, PW, int(count_include_pad),
                                  divisor, y.shape[2], y.shape[3], y)


def avg_pool2d_backward(gy, KH, KW, SH, SW, PH, PW, count_include_pad, divisor, gx):
    # Gather: one thread per gx element sums gy / divisor over the windows that contain it.
    _kernel("avg_pool2d_backward")(gy, gx.shape[2], gx.shape[3], KH, KW, SH, SW, PH, PW, int(count_include_pad),
                                   divisor, gy.shape[2], gy.shape[3], gx)


def adaptive_avg_pool2d_forward(x, y):
    # One thread per output element averages its bin.
    _kernel("adaptive_avg_pool2d_forward")(x, x.shape[2], x.shape[3], y.shape[2], y.shape[3], y)


def adaptive_avg_pool2d_backward(gy, gx):
    # Gather: one thread per gx element sums gy / bin size over the bins that contain it.
    _kernel("adaptive_avg_pool2d_backward")(gy, gx.shape[2], gx.shape[3], gy.shape[2], gy.shape[3], gx)


def batch_norm_forward(x, W, b, eps, mean, var, xhat, y):
    # CuPy reductions (float64 sums) and fused elementwise passes, per channel of x (N, C, L).
    import cupy
    m = x.mean(axis=(0, 2), dtype=cupy.float64)
    d = x - m[None, :, None]
    v = (d * d).mean(axis=(0, 2), dtype=cupy.float64)
    cupy.multiply(d, (1.0 / cupy.sqrt(v + eps))[None, :, None], out=xhat, casting="unsafe")
    cupy.add(xhat * W[None, :, None], b[None, :, None], out=y)
    mean[...] = m
    var[...] = v


def batch_norm_backward(gy, xhat, scale, gx, gW, gb):
    # CuPy reductions (float64 sums) and one fused elementwise pass for gx.
    import cupy
    M = gy.shape[0] * gy.shape[2]
    sb = gy.sum(axis=(0, 2), dtype=cupy.float64)
    sw = (gy * xhat).sum(axis=(0, 2), dtype=cupy.float64)
    gb[...] = sb
    gW[...] = sw
    if gx.size:
        cupy.multiply(scale[None, :, None], gy - (sb / M)[None, :, None] - xhat * (sw / M)[None, :, None],
                      out=gx, casting="unsafe")


def relu_forward(x, out, mask):
    # One thread per element: y, and the mask of where the gradient passes (y > 0, or NaN).
    _kernel("relu_forward")(x, out, mask)


def relu_backward(gy, mask, out):
    # One thread per element.
    _kernel("relu_backward")(gy, mask, out)


def leaky_relu_forward(x, negative_slope, out, mask):
    # One thread per element; the slope is rounded to x's dtype, as in PyTorch; the mask is x > 0.
    _kernel("leaky_relu_forward")(x, negative_slope, out, mask)


def leaky_relu_backward(gy, mask, negative_slope, out):
    # One thread per element; the forward's mask (the sign of its input) picks the branch.
    _kernel("leaky_relu_backward")(gy, mask, negative_slope, out)
