"""Array modules per device.

A Tensor's device is read from its array, never from a global switch: a ``numpy.ndarray`` lives on the
``"cpu"``, a ``cupy.ndarray`` on ``"cuda"``. Ops ask ``get_array_module(*arrays)`` for ``xp`` (numpy or
cupy) and run the same code on either.
"""
from __future__ import annotations

import numpy as np

try:  # CuPy is the optional ``gpu`` extra; a missing or broken install only means "no cuda".
    import cupy as _cupy
except Exception:  # noqa: BLE001 - any import failure (no CUDA driver, wrong wheel) means no GPU
    _cupy = None

DEVICES = ("cpu", "cuda")


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one GPU; never raises."""
    if _cupy is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - a driver error is "not available", not a crash
        return False


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def device_of(array) -> str:
    """``"cuda"`` for a CuPy array, ``"cpu"`` for anything else."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return "cuda"
    return "cpu"


def normalize_device(device) -> str:
    """Accept ``"cpu"``, ``"cuda"``, ``"cuda:0"`` or an object with a ``type`` attribute."""
    name = getattr(device, "type", device)
    name = str(name).split(":")[0]
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {DEVICES}")
    return name


def to_device(array, device: str):
    """Move ``array`` to ``device`` (a no-op when it is already there)."""
    device = normalize_device(device)
    if device == device_of(array):
        return array
    if device == "cpu":
        return _cupy.asnumpy(array)
    if not cuda_is_available():
        raise RuntimeError("device 'cuda' requested but CuPy or a GPU is not available "
                           "(install the 'gpu' extra on a machine with an NVIDIA GPU)")
    return _cupy.asarray(array)


def to_numpy(array) -> np.ndarray:
    """A NumPy view or copy of ``array`` from any device."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy.asnumpy(array)
    return np.asarray(array)
