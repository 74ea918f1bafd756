"""minidl: a deep-learning engine written from scratch on NumPy, Numba and CuPy.

    import minidl as mdl
    x = mdl.randn(4, 3, requires_grad=True)
    (x * x).sum().backward()      # x.grad == 2 x

The public names follow PyTorch (see ``shared/design/API.md``): ``minidl.nn``, ``minidl.nn.functional``,
``minidl.optim``, ``minidl.data``.
"""
from __future__ import annotations

import numpy as np

from . import backend
from .backend import allocator as _allocator
from .backend import threads as _threads
from .autograd import Function, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .creation import (arange, empty, eye, from_numpy, full, ones, ones_like, rand, randint, randn, zeros,
                       zeros_like)
from .gradcheck import gradcheck
from .ops.elementwise import where
from .ops.shape import cat, concatenate, stack
from .random import manual_seed
from .summary import summary
from .tensor import Tensor, tensor

__all__ = ["Function", "Tensor", "arange", "cat", "concatenate", "cuda", "double", "empty", "enable_grad", "eye",
           "float", "float32", "float64", "from_numpy", "full", "gradcheck", "int64", "is_grad_enabled", "long",
           "manual_seed", "no_grad", "ones", "ones_like", "rand", "randint", "randn", "set_grad_enabled", "stack",
           "summary", "tensor", "where", "zeros", "zeros_like"]

_threads.configure()  # before any kernel or BLAS call: see minidl/backend/threads.py
_allocator.configure()  # reuse large blocks between steps: see minidl/backend/allocator.py

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int64 = np.dtype("int64")
float = float32  # noqa: A001 - PyTorch's alias
double = float64
long = int64


class cuda:  # noqa: N801 - spelled like ``torch.cuda``
    """``minidl.cuda.is_available()``: True only where CuPy and a GPU are present; never raises."""

    @staticmethod
    def is_available() -> bool:
        return backend.cuda_is_available()


def __getattr__(name):
    # Submodules that pull in heavier code load on first use: minidl.nn, minidl.optim, minidl.viz, ...
    import importlib
    if name in ("nn", "optim", "data", "viz", "metrics", "training", "serialization", "kernels"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'minidl' has no attribute {name!r}")


__version__ = "0.1.0"
