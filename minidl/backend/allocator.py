"""The C allocator under NumPy: keep large freed blocks for reuse instead of returning them to the OS.

A training step allocates and frees the same large arrays (columns, activations, gradients) every
time. glibc serves blocks above ``M_MMAP_THRESHOLD`` (128 KiB, growing only slowly) with fresh ``mmap``
pages and hands them back at ``free``, so every step pays to map and zero-fault its memory again, a large
share of the step time (numbers: docs/PERFORMANCE.md, "Allocator thresholds"). Raising the thresholds
keeps freed blocks in the heap for the next step; the peak resident memory is unchanged (the same blocks
are reused), only it is not given back between steps.

All threads also share one heap (one arena). By default glibc gives each thread that allocates its own arena,
and minidl's worker threads allocate their convolution blocks' buffers: a block freed in one thread's arena
could not serve the next block of another, so each kept its own copies (report 003's default net: 29.5 ->
26.3 MB at its peak, numbers in docs/PERFORMANCE.md, "Allocator thresholds").

Nothing is changed off glibc, or when the user set any ``MALLOC_*`` tuning variable.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

MMAP_THRESHOLD_BYTES = 512 * 2**20  # blocks above this still come straight from mmap
TRIM_THRESHOLD_BYTES = 1024 * 2**20  # free heap above this at the top is given back to the OS


def configure() -> bool:
    """Raise glibc's mmap and trim thresholds and keep one arena; True if the thresholds were set."""
    if any(k.startswith("MALLOC_") for k in os.environ):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt(M_ARENA_MAX, 1)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                  TRIM_THRESHOLD_BYTES))
