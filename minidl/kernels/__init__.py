"""Inner loops of convolution and pooling, one module per device, and the switch to the textbook loops.

``reference.py`` holds the plain-Python loops that define what the convolution and pooling kernels compute;
``cpu.py`` (Numba) and ``cuda.py`` (CuPy) are fast twins with the same signatures. Batch norm and the ReLUs
have no loop twin: their Functions write the math as array expressions (run on the reference path) and
ask :func:`fast_twin` for the kernel. Ops never import a device module directly: they
ask :func:`kernels_for` with their array module, so the op code is the same on every device.

:class:`use_kernels` chooses, for NumPy arrays, between the fast kernels (``"fast"``, the default) and the
reference loops (``"reference"``), which any model can run on, slowly, to be read or stepped through in a
debugger; the reference path also turns Winograd's convolutions off, so every convolution is im2col + GEMM.
The environment variable ``MINIDL_KERNELS`` sets the choice for a whole process. CuPy arrays always run on
the CUDA kernels.

>>> import minidl
>>> before = minidl.kernels_in_use()  # "fast", unless MINIDL_KERNELS says otherwise
>>> with minidl.use_kernels("reference"):
...     minidl.kernels_in_use()
'reference'
>>> minidl.kernels_in_use() == before  # switched back on leaving the block
True
"""
from __future__ import annotations

import os
from types import ModuleType

import numpy as np

CHOICES = ("fast", "reference")


def _checked(name, where: str = "use_kernels") -> str:
    if name not in CHOICES:
        raise ValueError(f"{where}: unknown kernels {name!r}; choose one of {', '.join(CHOICES)}")
    return name


_chosen = _checked(os.environ.get("MINIDL_KERNELS") or "fast", "the environment variable MINIDL_KERNELS")


class use_kernels:
    """Run NumPy arrays on the ``"fast"`` (Numba) or the ``"reference"`` (plain-loop) kernels.

    Called alone it switches for the rest of the process; used as a context manager it switches back on
    leaving the block (as ``torch.set_grad_enabled`` does). The choice is global, not per thread.
    """

    def __init__(self, name: str) -> None:
        self._previous = _chosen
        _set(_checked(name))

    def __enter__(self) -> "use_kernels":
        return self

    def __exit__(self, *exc) -> None:
        _set(self._previous)


def _set(name: str) -> None:
    global _chosen
    _chosen = name


def kernels_in_use() -> str:
    """``"fast"`` or ``"reference"``: which kernels NumPy arrays run on (see :class:`use_kernels`)."""
    return _chosen


def kernels_for(xp) -> ModuleType:
    """The kernel module for the array module ``xp``: for NumPy ``kernels.cpu``, or ``kernels.reference`` under
    ``use_kernels("reference")``; ``kernels.cuda`` for CuPy."""
    if xp is np:
        if _chosen == "reference":
            from . import reference
            return reference
        from . import cpu
        return cpu
    from . import cuda
    return cuda


def fast_twin(xp, name: str):
    """The fast kernel ``name`` for ``xp``'s arrays (Numba's for NumPy, CUDA's for CuPy), or None on the
    reference path. Ops whose calculus is a few array expressions (batch norm, the ReLUs; Adam's update) write
    it in their Function and run it when this is None; the kernel is its fast twin, one pass instead of
    several."""
    if xp is np and _chosen == "reference":
        return None
    return getattr(kernels_for(xp), name)


def serial(kernel):
    """The single-threaded compilation of a fast CPU kernel (its ``.serial``), for minidl's own worker threads;
    a reference kernel, plain Python, is already that."""
    return getattr(kernel, "serial", kernel)
