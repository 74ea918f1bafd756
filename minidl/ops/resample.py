"""Resampling: ``pad`` (constant, reflect, replicate, circular) and ``interpolate`` (nearest, linear family).

Every op here except constant padding reads, along each spatial axis separately, a few source positions per
output position: ``y[..., j, ...] = sum_k w_k[j] * x[..., idx_k[j], ...]``, with one source of weight 1
(``idx`` a map such as reflect's 2 1 | 0 1 2 3 | 2 1) or two with weights ``1 - l, l`` (linear
interpolation). The tables ``(idx_k, w_k)`` are computed once per call on the host, and one Function,
:class:`Resample`, applies them axis by axis. Its backward adds each output's gradient back, with the same
weight, into every position it read.

Notation: x (N, C, *spatial); spatial is (L,), (H, W) or (D, H, W); O... the output sizes.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from .checks import check_float


# ----------------------------------------------------------------------------------------- helpers
def _rounds(idx: np.ndarray) -> list:
    """Split the positions j of ``idx`` into rounds inside which no two j read the same ``idx[j]``.

    Round r holds the r-th reader of every source position, so adding a round at once is exact (adding
    ``g[j]`` at a repeated index in one step would keep only one of the additions).
    """
    if idx.size == 0:
        return []
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    starts = np.flatnonzero(np.r_[True, sorted_idx[1:] != sorted_idx[:-1]])
    rank = np.arange(idx.size) - np.repeat(starts, np.diff(np.r_[starts, idx.size]))
    return [np.sort(order[rank == r]) for r in range(rank.max() + 1)]


def _slice(start: int, step: int, n: int) -> slice:
    stop = start + step * n
    return slice(start, stop if stop >= 0 else None, step)


def _scatter_runs(idx: np.ndarray) -> list:
    """Slice pairs (si, sj) such that ``gx[si] += g[sj]`` over all pairs adds each g[j] into gx[idx[j]].

    Each round of :func:`_rounds` is cut into runs along which both j and idx[j] move by constant steps,
    so every addition is one strided slice: a handful of them for padding and linear interpolation.
    """
    pairs = []
    for js in _rounds(idx):
        src = idx[js]
        a = 0
        while a < js.size:
            b, dj, di = a + 1, 1, 1
            if b < js.size:
                dj, di = int(js[b] - js[a]), int(src[b] - src[a])
                while b + 1 < js.size and js[b + 1] - js[b] == dj and src[b + 1] - src[b] == di:
                    b += 1
                b += 1
            pairs.append((_slice(int(src[a]), di, b - a), _slice(int(js[a]), dj, b - a)))
            a = b
    return pairs


def _index_add(g, idx: np.ndarray, size: int, axis: int):
    """The backward of ``take(x, idx, axis)``: ``gx[..., i, ...] = sum of g[..., j, ...] over j with idx[j] == i``."""
    xp = get_array_module(g)
    shape = list(g.shape)
    shape[axis] = size
    gx = xp.zeros(shape, dtype=g.dtype)
    lead = (slice(None),) * axis
    for si, sj in _scatter_runs(idx):
        gx[lead + (si,)] += g[lead + (sj,)]
    return gx


def _along(w, axis: int, ndim: int):
    """A per-position weight of ``axis`` shaped to broadcast against an array of ``ndim`` dims."""
    return w.reshape((-1,) + (1,) * (ndim - 1 - axis))


class Resample(Function):
    """Separable gather: along each axis a of ``tables``, y[..., j, ...] = sum_k w_k[j] x[..., idx_k[j], ...].

    ``tables`` is a list of ``(axis, sources)``, sources a list of ``(idx_k, w_k)``: idx_k an int array of
    the output length, w_k its weights (None for 1). The axes are applied one after another; the backward
    undoes them in reverse order, each a scatter-add (done with strided slices, see :func:`_scatter_runs`):
        gx[..., i, ...] = sum over (j, k) with idx_k[j] = i of w_k[j] gy[..., j, ...]
    """

    def forward(ctx, x, tables):
        xp = get_array_module(x)
        y = x
        ctx.in_sizes = []
        for axis, sources in tables:
            ctx.in_sizes.append(y.shape[axis])
            out = None
            for idx, w in sources:
                term = xp.take(y, xp.asarray(idx), axis=axis)
                if w is not None:
                    term *= _along(xp.asarray(w, dtype=x.dtype), axis, y.ndim)
                if out is None:
                    out = term
                else:
                    out += term
            y = out
        ctx.tables = tables
        return y if tables else x.copy()

    def backward(ctx, gy):
        xp = get_array_module(gy)
        g = gy
        for (axis, sources), size in zip(reversed(ctx.tables), reversed(ctx.in_sizes)):
            gx = None
            for idx, w in sources:
                gw = g if w is None else g * _along(xp.asarray(w, dtype=g.dtype), axis, g.ndim)
                term = _index_add(gw, idx, size, axis)
                if gx is None:
                    gx = term
                else:
                    gx += term
            g = gx
        return g


class NearestRepeat(Function):
    """Nearest upsampling by integer factors s_a: every input value is repeated s_a times along axis a.

    Forward: ``x.repeat(s_a, axis=a)`` for each spatial axis. Backward: each input position receives the sum
    of its copies: gy viewed as (N, C, H, SH, W, SW) summed over the SH and SW axes, which is done one axis
    at a time by adding the SH (then SW) strided slices, far faster in NumPy than a sum over small axes.
    """

    def forward(ctx, x, factors):
        y = x
        for axis, s in enumerate(factors, start=2):
            if s > 1:
                y = y.repeat(s, axis=axis)
        ctx.factors, ctx.x_shape = factors, x.shape
        return y if y is not x else x.copy()

    def backward(ctx, gy):
        spatial = ctx.x_shape[2:]
        g = gy.reshape(ctx.x_shape[:2] + tuple(d for n, s in zip(spatial, ctx.factors) for d in (n, s)))
        for k, s in enumerate(ctx.factors):
            lead = (slice(None),) * (3 + k)  # the repeat axis of spatial axis k, earlier ones summed away
            total = g[lead + (0,)] if s == 1 else g[lead + (0,)] + g[lead + (1,)]
            for r in range(2, s):
                total += g[lead + (r,)]
            g = total
        return g


class ConstantPad(Function):
    """y = x placed inside a block of ``value`` (negative pads crop).   gx = the matching block of gy.

    ``src`` and ``dst`` are the slices of x and y that hold the same values.
    """

    def forward(ctx, x, out_shape, src, dst, value):
        xp = get_array_module(x)
        y = xp.full(out_shape, value, dtype=x.dtype)
        y[dst] = x[src]
        ctx.x_shape, ctx.src, ctx.dst = x.shape, src, dst
        return y

    def backward(ctx, gy):
        gx = get_array_module(gy).zeros(ctx.x_shape, dtype=gy.dtype)
        gx[ctx.src] = gy[ctx.dst]
        return gx


# ----------------------------------------------------------------------------------------- pad
_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _pad_index(mode: str, n: int, before: int, after: int) -> np.ndarray:
    """The source position of every output position along one axis padded by (before, after)."""
    src = np.arange(n + before + after) - before
    if mode == "replicate":
        return np.clip(src, 0, n - 1)
    if mode == "reflect":  # mirror about the edge values, which are not repeated: 2 1 | 0 1 2 3 | 2 1
        src = np.abs(src)
        return np.where(src > n - 1, 2 * (n - 1) - src, src)
    # circular: negative pads crop first, then the kept block wraps around
    lo, m = max(-before, 0), n - max(-before, 0) - max(-after, 0)
    return lo + (np.arange(n + before + after) - max(before, 0)) % m


def _check_pad_sizes(mode: str, input, axis: int, before: int, after: int) -> None:
    n, shape = input.shape[axis], tuple(input.shape)
    where = f"at dimension {axis} of input of shape {shape}"
    if mode == "constant":
        if n + min(before, 0) + min(after, 0) < 0:
            raise ValueError(f"pad: the input size {n}, plus negative padding {before} and {after}, resulted in a "
                             f"negative output size {where}")
        return
    if n == 0:
        raise ValueError(f"pad: {mode} padding needs a non-empty dimension, got size 0 {where}")
    if mode == "reflect" and (before >= n or after >= n):
        raise ValueError(f"pad: padding size should be less than the corresponding input dimension for reflect "
                         f"padding, but got padding ({before}, {after}) {where}")
    if mode in ("reflect", "replicate") and n + before + after < 1:
        raise ValueError(f"pad: input (size {n}) is too small for padding ({before}, {after}): the output size "
                         f"would be {n + before + after} {where}")
    if mode == "circular":
        kept = n - max(-before, 0) - max(-after, 0)
        if kept < 1 or before > kept or after > kept:
            raise ValueError(f"pad: circular padding ({before}, {after}) of a dimension of size {n} (kept after "
                             f"cropping: {kept}) causes wrapping around more than once {where}")


def pad(input, pad, mode: str = "constant", value: float | None = None):
    """Pad (or, with negative values, crop) the last dimensions of ``input``, PyTorch's ``F.pad``.

    ``pad`` lists (before, after) pairs starting from the last dimension: ``(left, right)`` pads the last
    one, ``(left, right, top, bottom)`` the last two, and so on.

    Modes (x = 0 1 2 3, pad (2, 2)):

    * ``"constant"``: ``v v | 0 1 2 3 | v v`` with v = ``value``; any number of dimensions; negative pads crop.
    * ``"reflect"``: ``2 1 | 0 1 2 3 | 2 1`` (mirror, edge not repeated); pads must be smaller than the size.
    * ``"replicate"``: ``0 0 | 0 1 2 3 | 3 3``.
    * ``"circular"``: ``2 3 | 0 1 2 3 | 0 1`` (wrap around); pads at most the size.

    The last three pad the last 1, 2 or 3 dimensions of a tensor with 1 or 2 more dims than that
    (e.g. (C, H, W) or (N, C, H, W) for a 4-element ``pad``), like PyTorch.

    Args:
        input: the tensor to pad.
        pad: a sequence of an even number of ints.
        mode: ``"constant"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        value: the fill value of constant padding (None means 0); other modes accept only None or 0.

    Returns:
        The padded tensor.

    >>> import minidl as mdl
    >>> pad(mdl.arange(4.0).reshape(1, 4), (2, 2), mode="reflect").tolist()
    [[2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0, 1.0]]
    """
    if isinstance(pad, (str, bytes)) or not hasattr(pad, "__len__") or not all(
            isinstance(p, Integral) and not isinstance(p, bool) for p in pad):
        raise TypeError(f"pad: argument 'pad' must be a tuple of ints, got {pad!r}")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2:
        raise ValueError(f"pad: padding length must be divisible by 2, got pad {pad} of length {len(pad)}")
    k = len(pad) // 2
    if k > input.ndim:
        raise ValueError(f"pad: padding length should be less than or equal to two times the input dimension but "
                         f"got padding length {len(pad)} and input of shape {tuple(input.shape)}")
    if mode not in _PAD_MODES:
        raise NotImplementedError(f"pad: unrecognised padding mode {mode!r}; expected one of {_PAD_MODES}")
    if mode != "constant":
        if value is not None and value != 0:
            raise ValueError(f"pad: padding mode {mode!r} doesn't take in value argument, got value={value}")
        if k not in (1, 2, 3) or input.ndim not in (k + 1, k + 2):
            raise NotImplementedError(
                f"pad: padding size {len(pad)} is not supported for {input.ndim}D input tensor (shape "
                f"{tuple(input.shape)}) in {mode} mode. Supported combinations for non-constant padding: 2D or 3D "
                f"input with padding size 2 (pads last dimension), 3D or 4D input with padding size 4 (pads last "
                f"2 dimensions), 4D or 5D input with padding size 6 (pads last 3 dimensions)")
    pairs = [(input.ndim - 1 - i, pad[2 * i], pad[2 * i + 1]) for i in range(k)]
    for axis, before, after in pairs:
        _check_pad_sizes(mode, input, axis, before, after)
    if mode == "constant":
        out_shape, src, dst = list(input.shape), [slice(None)] * input.ndim, [slice(None)] * input.ndim
        for axis, before, after in pairs:
            n = input.shape[axis]
            kept = n + min(before, 0) + min(after, 0)
            out_shape[axis] = n + before + after
            src[axis] = slice(max(-before, 0), max(-before, 0) + kept)
            dst[axis] = slice(max(before, 0), max(before, 0) + kept)
        return ConstantPad.apply(input, out_shape=tuple(out_shape), src=tuple(src), dst=tuple(dst),
                                 value=0 if value is None else value)
    tables = [(axis, [(_pad_index(mode, input.shape[axis], before, after), None)])
              for axis, before, after in pairs if before or after]
    return Resample.apply(input, tables=tables)


# ----------------------------------------------------------------------------------------- interpolate
_LINEAR_MODES = {"linear": 3, "bilinear": 4, "trilinear": 5}
_NEAREST_MODES = ("nearest", "nearest-exact")


def _nearest_index(n: int, out: int, scale: float | None, exact: bool, shortcuts: bool = False) -> np.ndarray:
    """PyTorch's source index: floor(j * s) ('nearest') or floor((j + 0.5) * s) ('nearest-exact'), at most n - 1.

    s = 1 / scale_factor when a scale factor is used, else n / out, in float32 as PyTorch computes it (so
    non-integer factors pick exactly PyTorch's pixels). PyTorch's 2-D 'nearest' kernel takes two shortcuts
    first (``shortcuts``): out == n copies and out == 2 n repeats each pixel twice, whatever the scale factor.
    """
    if shortcuts and not exact and out in (n, 2 * n):
        return np.arange(out) // (out // n)
    s = np.float32(1.0 / scale) if scale is not None and scale > 0 else np.float32(n) / np.float32(out)
    if exact:
        src = ((np.arange(out) + 0.5) * np.float64(s)).astype(np.float32)
    else:
        src = np.arange(out, dtype=np.float32) * s
    return np.minimum(np.floor(src).astype(np.int64), n - 1)


def _linear_sources(n: int, out: int, scale: float | None, align_corners: bool, dtype) -> list:
    """The two sources (i0, 1 - l), (i1, l) of linear interpolation along one axis (PyTorch's rule).

    align_corners=True maps the corner pixel centres onto each other: src = j (n - 1) / (out - 1).
    align_corners=False maps pixel areas: src = (j + 0.5) s - 0.5 (clamped at 0), s = 1 / scale_factor when a
    scale factor is used, else n / out. Then i0 = floor(src), i1 = min(i0 + 1, n - 1), l = src - i0.
    The arithmetic follows PyTorch's types (s in the input's dtype, j + 0.5 in float64), so float32 results
    match PyTorch's to the last bit.
    """
    j = np.arange(out)
    if align_corners:
        s = dtype.type(n - 1) / dtype.type(out - 1) if out > 1 else dtype.type(0)
        src = s * j.astype(dtype)
    else:
        s = dtype.type(1.0 / scale) if scale is not None and scale > 0 else dtype.type(n) / dtype.type(out)
        src = np.maximum((np.float64(s) * (j + 0.5) - 0.5).astype(dtype), 0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n - 1)
    lam = np.clip(src - i0.astype(dtype), 0, 1)
    i1 = i0 + (i0 < n - 1)
    return [(i0, 1 - lam), (i1, lam)]


def _is_int(v) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def _output_sizes(input, size, scale_factor, recompute_scale_factor):
    """PyTorch's output sizes and the scale factors the index rules use (None: use in / out)."""
    dims = input.ndim - 2
    spatial = list(input.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError("interpolate: only one of size or scale_factor should be defined")
    if size is None and scale_factor is None:
        raise ValueError("interpolate: either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError("interpolate: recompute_scale_factor is not meaningful with an explicit size.")
    if size is not None:
        sizes = list(size) if isinstance(size, (list, tuple)) else [size] * dims
        if len(sizes) != dims:
            raise ValueError(f"interpolate: input and output must have the same number of spatial dimensions, but "
                             f"got input of shape {tuple(input.shape)} (spatial {spatial}) and output size {size}")
        if not all(_is_int(s) for s in sizes):
            raise TypeError(f"interpolate: expected size to be an int or a tuple of ints, got {size!r}")
        sizes, scales = [int(s) for s in sizes], [None] * dims
    else:
        scales = list(scale_factor) if isinstance(scale_factor, (list, tuple)) else [scale_factor] * dims
        if len(scales) != dims:
            raise ValueError(f"interpolate: input and scale_factor must have the same number of spatial dimensions, "
                             f"but got input of shape {tuple(input.shape)} (spatial {spatial}) and scale_factor "
                             f"{scale_factor}")
        if not all(isinstance(s, Real) and not isinstance(s, bool) for s in scales):
            raise TypeError(f"interpolate: expected scale_factor to be a float or a tuple of floats, got "
                            f"{scale_factor!r}")
        sizes = [math.floor(n * float(s)) for n, s in zip(spatial, scales)]
        if recompute_scale_factor:
            scales = [None] * dims
        else:
            scales = [float(s) for s in scales]
    if not all(n > 0 for n in spatial) or not all(o > 0 for o in sizes):
        raise ValueError(f"interpolate: input and output sizes should be greater than 0, but got input of shape "
                         f"{tuple(input.shape)} and output size {tuple(sizes)}")
    return sizes, scales


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None,
                recompute_scale_factor: bool | None = None, antialias: bool = False):
    """Resize the spatial dimensions of ``input``, PyTorch's ``F.interpolate``.

    The output size is ``size``, or ``floor(input_size * scale_factor)``. Output position j reads from
    source coordinate ``j * s`` (``s = 1 / scale_factor`` when a scale factor is given and
    ``recompute_scale_factor`` is not True, else ``input_size / output_size``):

    * ``"nearest"``: the pixel ``floor(j * s)`` (PyTorch's rule, not a true nearest: upsampling by 2 repeats
      each pixel twice). 3-D, 4-D and 5-D inputs. Integer factors take a fast path (repeat / reshape-sum).
    * ``"nearest-exact"``: the pixel ``floor((j + 0.5) * s)``, the true nearest pixel centre.
    * ``"linear"`` (3-D), ``"bilinear"`` (4-D), ``"trilinear"`` (5-D): linear interpolation between the two
      neighbouring pixels along each axis, from ``(j + 0.5) * s - 0.5`` (``align_corners=False``, the default)
      or ``j * (in - 1) / (out - 1)`` (``align_corners=True``: corner pixels stay in place).

    Args:
        input: (N, C, L), (N, C, H, W) or (N, C, D, H, W).
        size: the output spatial size: an int for all axes, or one per axis.
        scale_factor: a multiplier for the spatial size: a float for all axes, or one per axis.
        mode: ``"nearest"``, ``"nearest-exact"``, ``"linear"``, ``"bilinear"`` or ``"trilinear"``.
        align_corners: linear modes only (None means False).
        recompute_scale_factor: use ``input_size / output_size`` instead of the given ``scale_factor`` in the
            index rule.
        antialias: PyTorch's anti-aliased bilinear/bicubic downsampling; not implemented (True raises).

    Returns:
        (N, C, *output_size).

    Raises:
        NotImplementedError: modes "area", "bicubic", "lanczos" (or unknown ones), ``antialias=True``, an
            input whose rank does not fit the mode.
        ValueError: both or neither of ``size`` and ``scale_factor``, sizes that do not fit the input, a zero
            output size, ``align_corners`` with a nearest mode.
    """
    if mode in _NEAREST_MODES + ("area",):
        if align_corners is not None:
            raise ValueError(f"interpolate: align_corners option can only be set with the interpolating modes: "
                             f"linear | bilinear | bicubic | trilinear, got mode {mode!r}")
    elif align_corners is None:
        align_corners = False
    if antialias:
        if not (mode in ("bilinear", "bicubic", "lanczos") and input.ndim == 4):
            raise ValueError("interpolate: Anti-alias option is restricted to bilinear, bicubic, and lanczos modes "
                             f"and requires a 4-D tensor as input, got mode {mode!r} and input of shape "
                             f"{tuple(input.shape)}")
        raise NotImplementedError("interpolate: antialias=True is not implemented in minidl")
    if mode not in _NEAREST_MODES and mode not in _LINEAR_MODES:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not implemented in minidl (supported: nearest, "
                                  f"nearest-exact, linear, bilinear, trilinear)")
    if input.ndim not in (3, 4, 5):
        raise NotImplementedError(f"interpolate: only 3D, 4D and 5D input tensors are supported (got input of "
                                  f"shape {tuple(input.shape)}) for mode {mode!r}")
    if mode in _LINEAR_MODES and input.ndim != _LINEAR_MODES[mode]:
        raise NotImplementedError(f"interpolate: got {input.ndim}D input (shape {tuple(input.shape)}), but {mode} "
                                  f"mode needs {_LINEAR_MODES[mode]}D input")
    check_float("interpolate", "input", input)
    sizes, scales = _output_sizes(input, size, scale_factor, recompute_scale_factor)
    spatial = input.shape[2:]
    if mode in _NEAREST_MODES:
        idxs = [_nearest_index(n, o, s, mode == "nearest-exact", shortcuts=input.ndim == 4)
                for n, o, s in zip(spatial, sizes, scales)]
        if all(o % n == 0 and np.array_equal(i, np.arange(o) // (o // n)) for n, o, i in zip(spatial, sizes, idxs)):
            return NearestRepeat.apply(input, factors=tuple(o // n for n, o in zip(spatial, sizes)))
        tables = [(2 + a, [(i, None)]) for a, i in enumerate(idxs) if not np.array_equal(i, np.arange(spatial[a]))]
    else:
        dtype = np.dtype(input.dtype)  # an axis whose size does not change is copied, as PyTorch does
        tables = [(2 + a, _linear_sources(n, o, s, align_corners, dtype))
                  for a, (n, o, s) in enumerate(zip(spatial, sizes, scales)) if o != n]
    return Resample.apply(input, tables=tables)
