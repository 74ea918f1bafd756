"""``minidl.nn.init``: fill a weight in place with values drawn the way PyTorch's initialisers draw them.

Every function takes the tensor to fill and returns it. Random ones draw from ``generator`` when given
(a ``numpy.random.Generator``) and otherwise from :func:`minidl.random.default_generator`, so
``minidl.manual_seed`` fixes them. Values are drawn in float64 on the CPU, then cast to the tensor's
dtype and copied to its device.

Fans: for a weight of shape (O, I, k1, k2, ...), ``fan_in = I * k1 * k2 * ...`` and
``fan_out = O * k1 * k2 * ...`` (for a Linear weight (OUT, IN): IN and OUT).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..backend import device_of, to_device
from ..random import default_generator
from ..tensor import Tensor

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_", "eye_",
           "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_"]

_LINEAR_LIKE = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain that keeps activations' variance stable through ``nonlinearity``.

    ================= =====================================
    nonlinearity      gain
    ================= =====================================
    linear, conv*,    1
    sigmoid
    tanh              5/3
    relu              sqrt(2)
    leaky_relu        sqrt(2 / (1 + negative_slope^2))
    selu              3/4
    ================= =====================================

    Args:
        nonlinearity: the name of the activation that follows the layer.
        param: the negative slope of ``leaky_relu`` (0.01 when None).
    Returns:
        The gain, a Python float.

    >>> calculate_gain("relu")
    1.4142135623730951
    """
    if nonlinearity in _LINEAR_LIKE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            negative_slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError(f"Fan in and fan out can not be computed for tensor with fewer than 2 dimensions "
                         f"(got shape {tuple(tensor.shape)})")
    receptive_field = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor: Tensor, values: np.ndarray) -> Tensor:
    """Copy float64 ``values`` into ``tensor``'s array, keeping its dtype, device and identity."""
    tensor.array[...] = to_device(values.astype(tensor.dtype, copy=False), device_of(tensor.array))
    tensor._bump_version()
    return tensor


def _generator(generator):
    return default_generator() if generator is None else generator


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill ``tensor`` with samples of U(a, b).

    Args:
        tensor: the tensor to fill in place.
        a: the lower bound.
        b: the upper bound.
        generator: a ``numpy.random.Generator`` to draw from (minidl's default generator when None).
    Returns:
        ``tensor``.
    """
    return _fill(tensor, _generator(generator).uniform(a, b, size=tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill ``tensor`` with samples of N(mean, std^2).

    Args:
        tensor: the tensor to fill in place.
        mean: the mean of the normal distribution.
        std: its standard deviation.
        generator: a ``numpy.random.Generator`` to draw from (minidl's default generator when None).
    Returns:
        ``tensor``.
    """
    return _fill(tensor, _generator(generator).normal(mean, std, size=tensor.shape))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator=None) -> Tensor:
    """Fill ``tensor`` with samples of N(mean, std^2) restricted to [a, b] (the init of vision transformers).

    Drawn by rejection from a proposal that fits the interval (see :func:`_standard_truncated_normal`), which
    gives exactly the truncated distribution however far in a tail [a, b] lies (PyTorch inverts the CDF
    instead: same distribution, other numbers).

    Args:
        tensor: the tensor to fill in place.
        mean: the mean of the normal distribution (before truncation).
        std: its standard deviation.
        a: the lower cut-off (an absolute value, not in units of std).
        b: the upper cut-off.
        generator: a ``numpy.random.Generator`` to draw from (minidl's default generator when None).
    Returns:
        ``tensor``.
    """
    if not a < b:
        raise ValueError(f"trunc_normal_: expected a < b, got a={a}, b={b}")
    if not std > 0:
        raise ValueError(f"trunc_normal_: expected std > 0, got {std}")
    z = _standard_truncated_normal(_generator(generator), (a - mean) / std, (b - mean) / std, tensor.numel())
    return _fill(tensor, (mean + std * z).reshape(tensor.shape))


def _standard_truncated_normal(rng, alpha: float, beta: float, n: int) -> np.ndarray:
    """``n`` samples of N(0, 1) restricted to [alpha, beta], by rejection (Robert, 1995).

    Drawing N(0, 1) and keeping what falls inside accepts the fraction Phi(beta) - Phi(alpha) of the draws:
    fine when the interval holds much of the mass, hopeless in a far tail ([9, 10] keeps 1e-19). So the
    proposal follows the interval: a wide interval around 0 uses the normal itself; a narrow one, a uniform
    draw on it, kept with probability exp((m^2 - z^2) / 2) (m: the point of the interval nearest 0); a tail
    [alpha, beta] with alpha > 0, alpha + an exponential of rate lam = (alpha + sqrt(alpha^2 + 4)) / 2, kept
    with probability exp(-(z - lam)^2 / 2). Each keeps a good share of its draws; a lower tail is the mirror
    image of an upper one.
    """
    if beta <= 0:
        return -_standard_truncated_normal(rng, -beta, -alpha, n)
    out = np.empty(n)
    filled = 0
    while filled < n:
        m = n - filled
        if alpha < 0 and beta - alpha > 1:  # around 0 and wide: at least 38% of normal draws fall inside
            z = rng.standard_normal(m)
            keep = (z >= alpha) & (z <= beta)
        elif beta - alpha <= 1 / max(alpha, 1):  # narrow: the density varies by a factor e^0.5 at most
            z = rng.uniform(alpha, beta, m)
            nearest = max(alpha, 0.0)
            keep = rng.random(m) <= np.exp((nearest * nearest - z * z) / 2)
        else:  # a wide upper tail
            lam = (alpha + math.sqrt(alpha * alpha + 4)) / 2
            z = alpha + rng.exponential(1 / lam, m)
            keep = (z <= beta) & (rng.random(m) <= np.exp(-((z - lam) ** 2) / 2))
        kept = z[keep]
        out[filled:filled + kept.size] = kept
        filled += kept.size
    return out


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill ``tensor`` with the value ``val``.

    Args:
        tensor: the tensor to fill in place.
        val: the value.
    Returns:
        ``tensor``.
    """
    tensor.array[...] = val
    tensor._bump_version()
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    """Fill ``tensor`` with zeros (used for biases and BatchNorm's shift)."""
    return constant_(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill ``tensor`` with ones (used for BatchNorm's scale)."""
    return constant_(tensor, 1)


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D ``tensor`` with the identity matrix (ones on the diagonal), so a Linear layer starts as the
    identity map.

    Args:
        tensor: a 2-D tensor, filled in place.
    Returns:
        ``tensor``.
    """
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only tensors with 2 dimensions are supported, got shape {tuple(tensor.shape)}")
    return _fill(tensor, np.eye(*tensor.shape))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot & Bengio (2010): U(-a, a) with ``a = gain * sqrt(6 / (fan_in + fan_out))``.

    Args:
        tensor: a weight with at least 2 dims, filled in place.
        gain: a scaling factor, e.g. ``calculate_gain("tanh")``.
        generator: a ``numpy.random.Generator`` to draw from (minidl's default generator when None).
    Returns:
        ``tensor``.
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std  # U(-a, a) has standard deviation a / sqrt(3)
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot & Bengio (2010): N(0, std^2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Args:
        tensor: a weight with at least 2 dims, filled in place.
        gain: a scaling factor.
        generator: a ``numpy.random.Generator`` to draw from (minidl's default generator when None).
    Returns:
        ``tensor``.
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float | None:
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return None
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator=None) -> Tensor:
    """He et al. (2015): U(-bound, bound) with ``bound = gain * sqrt(3 / fan)``.

    ``gain = calculate_gain(nonlinearity, a)``. PyTorch's Linear and Conv layers use ``a=sqrt(5)``, which gives
    ``bound = 1 / sqrt(fan_in)``.

    Args:
        tensor: a weight with at least 2 dims, filled in place.
        a: the negative slope of the leaky_relu that follows (only used with ``nonlinearity="leaky_relu"``).
        mode: ``"fan_in"`` keeps the forward activations' variance, ``"fan_out"`` the backward gradients'.
        nonlinearity: the activation's name, see :func:`calculate_gain`.
        generator: a ``numpy.random.Generator`` to draw from (minidl's default generator when None).
    Returns:
        ``tensor``.
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator=None) -> Tensor:
    """He et al. (2015): N(0, std^2) with ``std = gain / sqrt(fan)``, ``gain = calculate_gain(nonlinearity, a)``.

    Args:
        tensor: a weight with at least 2 dims, filled in place.
        a: the negative slope of the leaky_relu that follows (only used with ``nonlinearity="leaky_relu"``).
        mode: ``"fan_in"`` or ``"fan_out"``.
        nonlinearity: the activation's name, see :func:`calculate_gain`.
        generator: a ``numpy.random.Generator`` to draw from (minidl's default generator when None).
    Returns:
        ``tensor``.
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Saxe et al. (2013): a (semi-)orthogonal matrix, times ``gain`` (used for recurrent and RL nets).

    The tensor is seen as a (rows, cols) matrix with ``rows = shape[0]``; a Gaussian matrix is factored as
    Q R and Q, with the signs of R's diagonal folded in so it is uniformly distributed, fills it (its rows are
    orthonormal when rows <= cols, its columns otherwise).

    Args:
        tensor: a tensor with at least 2 dims, filled in place.
        gain: a scaling factor.
        generator: a ``numpy.random.Generator`` to draw from (minidl's default generator when None).
    Returns:
        ``tensor``.
    """
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dimensions are supported, got shape "
                         f"{tuple(tensor.shape)}")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = _generator(generator).normal(0.0, 1.0, size=(rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape))
