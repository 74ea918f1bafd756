"""Input checks shared by the layers.

A layer's error names the layer as it prints (``Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1))``), what it
expected and the shape it got, so a student sees at once which line of the model is wrong:
``Conv2d(1, 32, ...): expected input with 1 channel, got input of shape (2, 3, 28, 28)``.
"""
from __future__ import annotations

import operator

from ..ops.checks import pair
from ..tensor import Tensor

_CAST = {"float32": "float", "float64": "double"}


def check_tensor(layer, x, name: str = "input") -> None:
    """Raise unless ``x`` is a Tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer!r}: expected {name} to be a minidl Tensor, got {type(x).__name__} "
                        f"(wrap arrays with minidl.tensor(...))")


def check_rank(layer, x, ndims: tuple, layout: str) -> None:
    """Raise unless ``x.ndim`` is in ``ndims``; ``layout`` completes "expected ...", e.g.
    ``"4-D input (N, C, H, W)"``."""
    check_tensor(layer, x)
    if x.ndim not in ndims:
        raise ValueError(f"{layer!r}: expected {layout}, got input of shape {tuple(x.shape)}")


def count(n: int, noun: str) -> str:
    """``count(1, "channel") == "1 channel"``, ``count(3, "channel") == "3 channels"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def check_size(layer, x, axis: int, expected: int, phrase: str) -> None:
    """Raise unless ``x.shape[axis] == expected``; ``phrase`` completes "expected input with ..."."""
    if x.shape[axis] != expected:
        raise ValueError(f"{layer!r}: expected input with {phrase}, got input of shape {tuple(x.shape)}")


def check_like(layer, x, ref) -> None:
    """Raise unless ``x`` has the dtype and device of the layer's parameter (or buffer) ``ref``."""
    if ref is None:
        return
    if x.dtype != ref.dtype:
        have, want = _CAST.get(str(x.dtype)), _CAST.get(str(ref.dtype))
        if have and want:
            hint = f"call model.{have}() or x.{want}()"
        elif want:
            hint = f"call x.{want}()"
        else:
            hint = "convert one with .to(dtype)"
        raise TypeError(f"{layer!r}: input has dtype {x.dtype} but the layer's parameters are {ref.dtype}; {hint}")
    if x.device != ref.device:
        raise RuntimeError(f"{layer!r}: input is on {x.device} but the layer's parameters are on {ref.device}; "
                           f"call model.to('{x.device}') or x.to('{ref.device}')")


# ------------------------------------------------------------------------------------ constructor arguments
# A layer checks its arguments once, when it is built, so a nonsense size fails on the line that wrote it
# (``Conv2d: kernel_size must be positive, got (0, 0)``) rather than deep inside the first forward pass, and
# the forward pass itself stays free of checks.

def size_arg(layer: str, name: str, value, minimum: int = 1) -> int:
    """``value`` as an int, if it is an integer ``>= minimum`` (a layer's ``in_channels``, ``num_features``...)."""
    if isinstance(value, bool):
        raise TypeError(f"{layer}: {name} must be an int, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{layer}: {name} must be an int, got {value!r} of type {type(value).__name__}") from None
    if value < minimum:
        raise ValueError(f"{layer}: {name} must be {_AT_LEAST.get(minimum, f'at least {minimum}')}, got {value}")
    return value


def pair_arg(layer: str, name: str, value, minimum: int) -> tuple:
    """``value`` as a pair of ints (``3 -> (3, 3)``), each ``>= minimum`` (a kernel size, stride, padding...)."""
    value = pair(value, name, layer)
    if min(value) < minimum:
        raise ValueError(f"{layer}: {name} must be {_AT_LEAST.get(minimum, f'at least {minimum}')}, got {value}")
    return value


_AT_LEAST = {0: "non-negative", 1: "positive"}
