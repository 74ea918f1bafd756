"""Inner loops of convolution and pooling, one module per device.

``reference.py`` holds the plain-Python loops that define what every kernel computes; ``cpu.py`` (Numba) and
``cuda.py`` (CuPy) are fast twins with the same signatures. Ops never import a device module directly: they
ask :func:`kernels_for` with their array module, so the op code is the same on every device.
"""
from __future__ import annotations

from types import ModuleType

import numpy as np


def kernels_for(xp) -> ModuleType:
    """The kernel module for the array module ``xp``: ``kernels.cpu`` for NumPy, ``kernels.cuda`` for CuPy."""
    if xp is np:
        from . import cpu
        return cpu
    from . import cuda
    return cuda
