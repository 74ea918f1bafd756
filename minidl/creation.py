"""Factories: zeros, ones, randn, rand, arange, empty, full, eye and the ``*_like`` forms.

Like PyTorch, they make float32 unless given a ``dtype`` (``arange`` of ints makes int64).
"""
from __future__ import annotations

import numpy as np

from .backend import get_array_module, to_device
from .random import default_generator
from .tensor import Tensor


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(size[0])
    return tuple(size)


def _make(arr, dtype, requires_grad, device):
    arr = arr.astype(np.float32 if dtype is None else dtype, copy=False)
    return Tensor(to_device(arr, device), requires_grad=requires_grad)


def zeros(*size, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """A tensor of zeros, e.g. ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    return _make(np.zeros(_shape(size)), dtype, requires_grad, device)


def ones(*size, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """A tensor of ones."""
    return _make(np.ones(_shape(size)), dtype, requires_grad, device)


def full(size, fill_value, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """A tensor of ``size`` filled with ``fill_value``."""
    return _make(np.full(_shape((size,)), fill_value), dtype, requires_grad, device)


def empty(*size, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """An uninitialised tensor."""
    return _make(np.empty(_shape(size), dtype=np.float32 if dtype is None else dtype), dtype, requires_grad, device)


def eye(n: int, m: int | None = None, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """The identity matrix."""
    return _make(np.eye(n, m), dtype, requires_grad, device)


def randn(*size, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """Samples of N(0, 1) from minidl's generator."""
    return _make(default_generator().standard_normal(_shape(size)), dtype, requires_grad, device)


def rand(*size, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """Samples of U[0, 1) from minidl's generator."""
    return _make(default_generator().random(_shape(size)), dtype, requires_grad, device)


def randint(low: int, high: int, size, device: str = "cpu") -> Tensor:
    """Integers in [low, high) as int64."""
    return Tensor(to_device(default_generator().integers(low, high, size=_shape((size,)), dtype=np.int64), device))


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """``start, start + step, ...`` below ``end``; int64 for int arguments, float32 otherwise."""
    arr = np.arange(start, end, step) if end is not None else np.arange(start)
    if dtype is None:
        dtype = np.int64 if arr.dtype.kind in "iu" else np.float32
    return _make(arr, dtype, requires_grad, device)


def _like(t: Tensor, fill, dtype, requires_grad):
    xp = get_array_module(t.array)
    arr = xp.full(t.shape, fill, dtype=t.dtype if dtype is None else dtype)
    return Tensor(arr, requires_grad=requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    """Zeros with ``t``'s shape, dtype and device."""
    return _like(t, 0, dtype, requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    """Ones with ``t``'s shape, dtype and device."""
    return _like(t, 1, dtype, requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing ``array``'s memory and dtype."""
    return Tensor(array)
