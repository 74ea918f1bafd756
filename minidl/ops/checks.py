"""Argument checks shared by the public op functions.

Errors name the op, the argument and the shapes, like PyTorch's, e.g.
``conv2d: expected input with 1 channel, got input of shape (2, 3, 8, 8)``.
"""
from __future__ import annotations

import numpy as np


def check_same_dtype(op: str, **tensors) -> None:
    """Raise if the given tensors (None allowed) differ in dtype or device, naming the op and arguments."""
    items = [(name, t) for name, t in tensors.items() if t is not None]
    name0, t0 = items[0]
    for name, t in items[1:]:
        if t.dtype != t0.dtype:
            raise TypeError(f"{op}: {name} has dtype {t.dtype} but {name0} has dtype {t0.dtype}; "
                            f"convert one with .to(dtype) (e.g. model.double() or x.float())")
        if type(t.array) is type(t0.array) is np.ndarray:  # both on the CPU: skip the device lookup
            continue
        if t.device != t0.device:
            raise RuntimeError(f"{op}: {name} is on {t.device} but {name0} is on {t0.device}; "
                               f"move them to one device with .to(device)")


def check_ndim(op: str, name: str, t, ndims) -> None:
    """Raise unless ``t.ndim`` is one of ``ndims``."""
    ndims = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if t.ndim not in ndims:
        want = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{op}: expected {want} {name}, got {name} of shape {tuple(t.shape)}")


def check_float(op: str, name: str, t) -> None:
    """Raise unless ``t`` holds floating-point numbers."""
    if t.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point {name}, got dtype {t.dtype} (shape {tuple(t.shape)}); "
                        f"use .float()")


# The dtypes the compiled kernels (minidl/kernels) are built for. Numba has no float16 arithmetic, and a
# kernel called with one fails deep inside Numba ("NotImplementedError: float16"), so the ops that call a
# kernel check first.
KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_kernel_float(op: str, name: str, t) -> None:
    """Raise unless ``t`` is float32 or float64, the dtypes the compiled kernels run in (one comparison
    when it is)."""
    if t.dtype in KERNEL_DTYPES:
        return
    check_float(op, name, t)
    raise TypeError(f"{op}: {name} has dtype {t.dtype}, but minidl's compiled kernels run in float32 or float64 "
                    f"only; convert it with {name}.float() (and the model with model.float())")


def pair(value, name: str, op: str) -> tuple:
    """``3 -> (3, 3)``; ``(1, 2)`` stays; anything else is an error naming the argument."""
    if isinstance(value, int):
        return (value, value)
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) for v in value):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return value
