"""Factories: zeros, ones, full, empty, eye, arange, linspace, randn, rand, randint, randperm, the ``*_like``
forms, ``from_numpy`` and ``as_tensor``.

Like PyTorch, they make the default dtype (float32, see :func:`~minidl.set_default_dtype`) unless given a
``dtype``; integer arguments of ``arange`` and ``full`` make int64, as do ``randint`` and ``randperm``.
Every random one draws from minidl's generator (:func:`~minidl.manual_seed`).
"""
from __future__ import annotations

import numpy as np

from .backend import device_of, get_array_module, to_device
from .random import default_generator
from .tensor import Tensor, _infer_array, _sizes, get_default_dtype


def _size(name: str, size: tuple, kwargs: dict) -> tuple:
    """``f(2, 3)``, ``f((2, 3))`` and ``f(size=(2, 3))`` alike (Python has no ``*size`` and ``size=`` together)."""
    size_kw = kwargs.pop("size", None)
    if kwargs:
        raise TypeError(f"{name}: unexpected arguments {sorted(kwargs)}")
    if size_kw is not None:
        if size:
            raise TypeError(f"{name}: give the size positionally or as size=, not both")
        size = (size_kw,)
    return _sizes(size)


def _rng(generator):
    """The generator to draw from: the one passed, else minidl's."""
    return default_generator() if generator is None else generator


def _make(arr, dtype, requires_grad, device):
    arr = arr.astype(get_default_dtype() if dtype is None else dtype, copy=False)
    return Tensor(to_device(arr, device), requires_grad=requires_grad)


def zeros(*size, dtype=None, requires_grad: bool = False, device="cpu", **kwargs) -> Tensor:
    """A tensor of zeros, e.g. ``zeros(2, 3)``, ``zeros((2, 3))`` or ``zeros(size=(2, 3))``."""
    return _make(np.zeros(_size("zeros", size, kwargs)), dtype, requires_grad, device)


def ones(*size, dtype=None, requires_grad: bool = False, device="cpu", **kwargs) -> Tensor:
    """A tensor of ones."""
    return _make(np.ones(_size("ones", size, kwargs)), dtype, requires_grad, device)


def empty(*size, dtype=None, requires_grad: bool = False, device="cpu", **kwargs) -> Tensor:
    """An uninitialised tensor."""
    shape = _size("empty", size, kwargs)
    return _make(np.empty(shape, dtype=get_default_dtype() if dtype is None else dtype), dtype, requires_grad, device)


def full(size, fill_value, dtype=None, requires_grad: bool = False, device="cpu") -> Tensor:
    """A tensor of ``size`` filled with ``fill_value``; its dtype follows the value (bool, int64 or the
    default float), as ``torch.full``'s does.

    >>> full((2,), 7).dtype, full((2,), 7.0).dtype
    (dtype('int64'), dtype('float32'))
    """
    if dtype is None:
        dtype = _infer_array(fill_value.array if isinstance(fill_value, Tensor) else fill_value).dtype
    return _make(np.full(_sizes((size,)), fill_value), dtype, requires_grad, device)


def eye(n: int, m: int | None = None, dtype=None, requires_grad: bool = False, device="cpu") -> Tensor:
    """The identity matrix."""
    return _make(np.eye(n, m), dtype, requires_grad, device)


def randn(*size, dtype=None, requires_grad: bool = False, device="cpu", generator=None, **kwargs) -> Tensor:
    """Samples of N(0, 1) from minidl's generator."""
    return _make(_rng(generator).standard_normal(_size("randn", size, kwargs)), dtype, requires_grad, device)


def rand(*size, dtype=None, requires_grad: bool = False, device="cpu", generator=None, **kwargs) -> Tensor:
    """Samples of U[0, 1) from minidl's generator."""
    return _make(_rng(generator).random(_size("rand", size, kwargs)), dtype, requires_grad, device)


def randint(*args, size=None, dtype=None, requires_grad: bool = False, device="cpu", generator=None,
            **kwargs) -> Tensor:
    """Integers in [low, high), int64 unless told otherwise: ``randint(high, size)``,
    ``randint(low, high, size)``, or with ``low=``, ``high=``, ``size=`` keywords (``torch.randint``'s forms).

    >>> randint(10, (3,)).shape, randint(5, 10, size=(2, 2)).dtype
    ((3,), dtype('int64'))
    """
    low, high = kwargs.pop("low", None), kwargs.pop("high", None)
    if kwargs:
        raise TypeError(f"randint: unexpected arguments {sorted(kwargs)}")
    args = list(args)
    if size is None and args and isinstance(args[-1], (tuple, list)):
        size = args.pop()
    if size is None:
        raise TypeError("randint: size is required, e.g. randint(10, (3,))")
    if len(args) == 2:
        low, high = args
    elif len(args) == 1:
        if high is None:
            high = args[0]
        else:
            low = args[0]
    elif args:
        raise TypeError(f"randint: expected (high, size) or (low, high, size), got {len(args) + 1} arguments")
    if high is None:
        raise TypeError("randint: high is required")
    arr = _rng(generator).integers(0 if low is None else low, high, size=_sizes((size,)), dtype=np.int64)
    return _make(arr, np.int64 if dtype is None else dtype, requires_grad, device)


def randperm(n: int, *, dtype=None, requires_grad: bool = False, device="cpu", generator=None) -> Tensor:
    """A random permutation of ``0 .. n-1`` (int64)."""
    return _make(_rng(generator).permutation(n), np.int64 if dtype is None else dtype, requires_grad, device)


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False, device="cpu") -> Tensor:
    """``start, start + step, ...`` below ``end``; int64 for int arguments, the default float dtype otherwise."""
    arr = np.arange(start, end, step) if end is not None else np.arange(start)
    if dtype is None:
        dtype = np.int64 if arr.dtype.kind in "iu" else get_default_dtype()
    return _make(arr, dtype, requires_grad, device)


def linspace(start, end, steps: int, dtype=None, requires_grad: bool = False, device="cpu") -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end``, both included."""
    return _make(np.linspace(start, end, steps), dtype, requires_grad, device)


def _like(t: Tensor, fill, dtype, requires_grad, device):
    xp = get_array_module(t.array)
    arr = xp.full(t.shape, fill, dtype=t.dtype if dtype is None else dtype)
    return Tensor(arr if device is None else to_device(arr, device), requires_grad=requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """Zeros with ``t``'s shape, dtype and device."""
    return _like(t, 0, dtype, requires_grad, device)


def ones_like(t: Tensor, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """Ones with ``t``'s shape, dtype and device."""
    return _like(t, 1, dtype, requires_grad, device)


def full_like(t: Tensor, fill_value, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """``fill_value`` with ``t``'s shape, dtype and device."""
    return _like(t, fill_value, dtype, requires_grad, device)


def empty_like(t: Tensor, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """An uninitialised tensor (here: zeros) with ``t``'s shape, dtype and device."""
    return _like(t, 0, dtype, requires_grad, device)


def _random_like(name: str, t: Tensor, draw, dtype, requires_grad, device) -> Tensor:
    dtype = t.dtype if dtype is None else np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating-point dtype, got {dtype}; pass dtype=minidl.float32")
    return _make(draw(default_generator())(t.shape), dtype, requires_grad,
                 device_of(t.array) if device is None else device)


def randn_like(t: Tensor, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """N(0, 1) samples with ``t``'s shape, dtype and device."""
    return _random_like("randn_like", t, lambda rng: rng.standard_normal, dtype, requires_grad, device)


def rand_like(t: Tensor, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """U[0, 1) samples with ``t``'s shape, dtype and device."""
    return _random_like("rand_like", t, lambda rng: rng.random, dtype, requires_grad, device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing ``array``'s memory and dtype."""
    return Tensor(array)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like :func:`~minidl.tensor`, but without copying when it need not: a Tensor or NumPy array that already
    has ``dtype`` and lives on ``device`` is shared (a Tensor is returned as it is)."""
    if isinstance(data, Tensor):
        return data.to(*(a for a in (device, dtype) if a is not None))
    arr = _infer_array(data, dtype)
    return Tensor(arr if device is None else to_device(arr, device))
