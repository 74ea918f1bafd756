"""minidl: a deep-learning engine written from scratch on NumPy, Numba and CuPy.

    import minidl as mdl
    x = mdl.randn(4, 3, requires_grad=True)
    (x * x).sum().backward()      # x.grad == 2 x

The public names follow PyTorch (see ``shared/design/API.md``): ``minidl.nn``, ``minidl.nn.functional``,
``minidl.optim``, ``minidl.data`` (also reachable as ``minidl.utils.data``), and at the top level the
``torch.*`` functions a training script uses (``minidl.max(x, 1)``, ``minidl.device("cpu")``,
``minidl.save``, ...), so that ``import minidl as torch`` runs the PyTorch tutorials.
"""
from __future__ import annotations

import builtins as _builtins

import numpy as np

from . import backend
from .backend import allocator as _allocator
from .backend import threads as _threads
from .autograd import Function, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .creation import (arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like, linspace, ones,
                       ones_like, rand, rand_like, randint, randn, randn_like, randperm, zeros, zeros_like)
from .gradcheck import gradcheck
from .kernels import kernels_in_use, use_kernels
from .ops.elementwise import where
from .ops.reduce import einsum
from .ops.shape import cat, concatenate, stack
from .random import Generator, get_rng_state, manual_seed, set_rng_state
from .summary import summary
from .tensor import Tensor, device, get_default_dtype, set_default_dtype, tensor

_threads.configure()  # before any kernel or BLAS call: see minidl/backend/threads.py
set_num_threads, get_num_threads = _threads.set_num_threads, _threads.get_num_threads
_allocator.configure()  # reuse large blocks between steps: see minidl/backend/allocator.py

# ------------------------------------------------------------------------------------------ dtypes
# NumPy dtypes under PyTorch's names: ``x.dtype == minidl.float32`` and ``dtype=minidl.long`` both work.
float16 = half = np.dtype("float16")
float32 = np.dtype("float32")
float64 = double = np.dtype("float64")
uint8 = np.dtype("uint8")
int8 = np.dtype("int8")
int16 = short = np.dtype("int16")
int32 = np.dtype("int32")
int64 = long = np.dtype("int64")
float = float32  # noqa: A001 - PyTorch's aliases: from here on, this module's float/int/bool are dtypes
int = int32  # noqa: A001
bool = np.dtype("bool")  # noqa: A001
finfo, iinfo = np.finfo, np.iinfo
Size = tuple  # ``x.shape`` is a plain tuple; ``minidl.Size([2, 3]) == x.shape`` compares as in PyTorch


# ------------------------------------------------------------------------------------------ devices
class cuda:  # noqa: N801 - spelled like ``torch.cuda``
    """``minidl.cuda.is_available()``: True only where CuPy and a GPU are present; never raises."""

    @staticmethod
    def is_available() -> _builtins.bool:
        return backend.cuda_is_available()

    @staticmethod
    def device_count() -> _builtins.int:
        """1 where a GPU is available (minidl drives one), else 0."""
        return 1 if backend.cuda_is_available() else 0

    @staticmethod
    def manual_seed(seed: _builtins.int) -> None:
        """Seed minidl's one generator, which draws for every device (the same as :func:`manual_seed`)."""
        manual_seed(seed)

    manual_seed_all = manual_seed


class accelerator:  # noqa: N801 - spelled like ``torch.accelerator``
    """``torch.accelerator``: the GPU where there is one (``current_accelerator().type == "cuda"``)."""

    @staticmethod
    def is_available() -> _builtins.bool:
        return backend.cuda_is_available()

    @staticmethod
    def current_accelerator():
        """``device("cuda")`` where a GPU is available, else None."""
        return device("cuda") if backend.cuda_is_available() else None

    @staticmethod
    def device_count() -> _builtins.int:
        return cuda.device_count()


class backends:  # noqa: N801 - spelled like ``torch.backends``
    """``torch.backends.cudnn`` and ``torch.backends.mps`` as scripts read and set them. minidl uses neither
    cuDNN nor Apple's MPS: the flags can be set and read back, and change nothing."""

    class cudnn:  # noqa: N801
        enabled = True
        benchmark = False
        deterministic = False

        @staticmethod
        def is_available() -> _builtins.bool:
            return False

    class mps:  # noqa: N801
        @staticmethod
        def is_available() -> _builtins.bool:
            return False

        @staticmethod
        def is_built() -> _builtins.bool:
            return False


class inference_mode(no_grad):  # noqa: N801
    """PyTorch's ``inference_mode``: in minidl the same as :class:`no_grad` (``inference_mode(False)`` records)."""

    def __init__(self, mode: _builtins.bool = True):
        self.mode = not mode


def compile(model, *args, **kwargs):  # noqa: A001 - torch.compile
    """``torch.compile``: minidl has no compiler, so the model (or function) comes back as it is. It computes the
    same values; only PyTorch's speed-up is missing."""
    return model


# ------------------------------------------------------------------------------------------ functions
def is_tensor(obj) -> _builtins.bool:
    """Whether ``obj`` is a minidl Tensor."""
    return isinstance(obj, Tensor)


def _write_out(out: Tensor, y: Tensor) -> Tensor:
    """PyTorch's ``out=`` argument: the result written into ``out`` (resized if need be), in place."""
    if y.requires_grad:
        raise RuntimeError("out=: functions with out=... arguments don't support automatic differentiation, but "
                           "one of the arguments requires grad")
    out._check_inplace("out=")
    if out.shape == y.shape:
        out.array[...] = y.array
    else:
        out.array = y.array.astype(out.dtype)
    out._bump_version()
    return out


def _function_of(name: str):
    """``minidl.<name>(input, *args, **kwargs)``: the Tensor method ``input.<name>(*args, **kwargs)``, with
    PyTorch's ``out=``."""
    method = getattr(Tensor, name)

    def fn(input, *args, out=None, **kwargs):
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}(): argument 'input' must be a Tensor, not {type(input).__name__}")
        y = method(input, *args, **kwargs)
        if out is None:
            return y
        if isinstance(y, tuple):  # (values, indices) into out=(values, indices)
            written = [_write_out(o, r) for o, r in zip(out, y)]
            return type(y)(*written) if hasattr(y, "_fields") else tuple(written)
        return _write_out(out, y)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``minidl.{name}(input, ...)`` is ``input.{name}(...)``; see :meth:`Tensor.{name}`."
    return fn


# torch.X(input, ...) for the Tensor methods of the same name and meaning.
_METHOD_FUNCTIONS = (
    "abs", "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "neg", "negative",
    "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "square", "reciprocal", "sin", "cos", "tanh", "sigmoid",
    "relu", "sign", "floor", "ceil", "trunc", "round", "clamp", "clip", "maximum", "minimum", "softmax",
    "log_softmax", "masked_fill", "matmul", "mm", "bmm", "dot",
    "sum", "mean", "std", "var", "prod", "cumsum", "logsumexp", "norm", "max", "min", "amax", "amin", "argmax",
    "argmin", "all", "any", "sort", "argsort", "topk", "unique", "nonzero",
    "eq", "ne", "gt", "lt", "ge", "le", "logical_not", "logical_and", "logical_or", "isnan", "isinf",
    "isfinite", "allclose", "equal",
    "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "transpose", "swapaxes", "swapdims", "permute",
    "t", "split", "chunk", "unbind", "flip", "narrow", "index_select", "gather", "clone", "numel",
    "is_floating_point",
)
for _name in _METHOD_FUNCTIONS:
    globals()[_name] = _function_of(_name)
del _name


def pow(input, exponent, *, out=None):  # noqa: A001 - torch.pow
    """``input ** exponent``; ``input`` may be a number when ``exponent`` is a Tensor."""
    y = input ** exponent
    return y if out is None else _write_out(out, y)


# ``from minidl import *`` leaves Python's own float, int, bool, max, sum, abs, ... alone.
__all__ = sorted(name for name in ["Function", "Generator", "Size", "Tensor", "accelerator", "arange", "as_tensor",
                                   "backends", "cat", "concatenate", "cuda", "device", "double", "einsum", "empty",
                                   "empty_like", "enable_grad", "eye", "finfo", "float16", "float32", "float64",
                                   "from_numpy", "full", "full_like", "get_default_dtype", "get_rng_state",
                                   "get_num_threads", "gradcheck", "half", "iinfo", "inference_mode", "int8",
                                   "int16", "int32", "int64",
                                   "is_grad_enabled", "is_tensor", "kernels_in_use", "linspace", "load", "long",
                                   "manual_seed",
                                   "no_grad", "ones", "ones_like", "rand", "rand_like", "randint", "randn",
                                   "randn_like", "randperm", "save", "set_default_dtype", "set_grad_enabled",
                                   "set_num_threads", "set_rng_state", "short", "stack", "summary", "tensor",
                                   "uint8", "use_kernels", "where",
                                   "zeros",
                                   "zeros_like", *_METHOD_FUNCTIONS]
                 if not hasattr(_builtins, name))


def __getattr__(name):
    # Submodules that pull in heavier code load on first use: minidl.nn, minidl.optim, minidl.viz, ...
    import importlib
    if name in ("nn", "optim", "data", "viz", "metrics", "training", "serialization", "kernels", "utils",
                "distributed"):
        return importlib.import_module(f".{name}", __name__)
    if name in ("save", "load"):  # torch.save / torch.load
        return getattr(importlib.import_module(".serialization", __name__), name)
    raise AttributeError(f"module 'minidl' has no attribute {name!r}")


__version__ = "0.1.0"
