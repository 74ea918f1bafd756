"""Dropout: ``dropout`` (each element) and ``dropout2d`` (whole channels).

The masks come from minidl's one generator (:func:`minidl.random.default_generator`), so
``minidl.manual_seed(s)`` reproduces them; on the GPU a CuPy generator is reseeded from it for each mask.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..random import default_generator
from .activation import _maybe_inplace

_cuda_generators = {}


class Dropout(Function):
    """y = x * m,  m = keep / (1 - p) with keep ~ Bernoulli(1 - p).   gx = gy * m.

    ``m`` is drawn by the caller and broadcast against x: one value per element for ``dropout``, one per
    (sample, channel) for ``dropout2d``. Scaling the kept values by 1 / (1 - p) keeps E[y] = x, so nothing
    changes at evaluation time, when dropout is the identity.
    """

    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x * mask

    def backward(ctx, gy):
        mask, = ctx.saved
        return gy * mask


def _uniform(xp, shape):
    """Uniform [0, 1) float32 numbers on the device of ``xp``, drawn from minidl's generator."""
    if xp is np:
        return default_generator().random(shape, dtype=np.float32)
    device = xp.cuda.Device().id
    generator = _cuda_generators.get(device)
    if generator is None:  # Philox: reseeding it is cheap, unlike the default XORWOW
        generator = xp.random.RandomState(method=xp.cuda.curand.CURAND_RNG_PSEUDO_PHILOX4_32_10)
        _cuda_generators[device] = generator
    generator.seed(int(default_generator().integers(2 ** 63)))
    return generator.random_sample(shape, dtype=np.float32)


def _scaled_mask(x, shape, p: float):
    """keep / (1 - p) with keep ~ Bernoulli(1 - p), of ``shape`` and x's dtype and device."""
    xp = get_array_module(x)
    if p == 1:
        return xp.zeros(shape, dtype=x.dtype)
    keep = _uniform(xp, shape) >= p
    return keep.astype(x.dtype) * x.dtype.type(1 / (1 - p))


def _check_p(op: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p), PyTorch's ``F.dropout``.

    Args:
        input: any shape.
        p: probability of zeroing an element, in [0, 1] (p = 1 gives zeros).
        training: apply dropout; with False the input is returned unchanged.
        inplace: write the result into ``input`` (only when no graph is being recorded for it).

    Returns:
        A tensor shaped like ``input``.
    """
    _check_p("dropout", p)
    if not training or p == 0:
        return input
    return _maybe_inplace(input, Dropout.apply(input, _scaled_mask(input.array, input.shape, p)), inplace)


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels with probability ``p`` and scale the rest by 1 / (1 - p), PyTorch's ``F.dropout2d``.

    One draw per (sample, channel) pair of an (N, C, H, W) input: a dropped feature map is zero everywhere.
    Like PyTorch 2.x, a 3-D input is read as (N, C, L) (channel-wise dropout of 1-D feature maps) with a
    warning, and inputs that are not 3-D or 4-D are accepted with a deprecation warning.

    Args:
        input: (N, C, H, W), or (N, C, L) (see above).
        p: probability of zeroing a channel, in [0, 1].
        training: apply dropout; with False the input is returned unchanged.
        inplace: write the result into ``input`` (only when no graph is being recorded for it).

    Returns:
        A tensor shaped like ``input``.
    """
    _check_p("dropout2d", p)
    if input.ndim < 2:
        raise ValueError(f"dropout2d: feature dropout requires at least 2 dimensions in the input, got input of "
                         f"shape {tuple(input.shape)}")
    if input.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated (PyTorch "
                      f"will make it an error); use dropout for it. dropout2d expects (N, C, H, W) input.",
                      stacklevel=2)
    if input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel "
                      "dim (PyTorch's current behaviour). To maintain the 1D channel-wise dropout behavior, use "
                      "dropout1d.", stacklevel=2)
    if not training or p == 0:
        return input
    shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2)
    return _maybe_inplace(input, Dropout.apply(input, _scaled_mask(input.array, shape, p)), inplace)
