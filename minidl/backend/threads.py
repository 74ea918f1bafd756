"""CPU threads: one pool of cores shared by Numba's kernels and the BLAS products, with no spinning.

minidl runs two kinds of parallel work on the CPU: Numba kernels (im2col, pooling, ...) on Numba's
OpenMP threads, and matrix products in OpenBLAS. Left alone, each library starts one thread per core and
keeps its idle threads busy-waiting for a while after every call, so on a small machine the two pools
take the cores from each other (a kernel that follows a GEMM waits for OpenBLAS's spinning threads to
give up their core, and the other way round) and a step can take several times as long, worse still
when another process is using a core. So, at ``import minidl``:

* OpenBLAS gets one thread (through its ``openblas_set_num_threads``, as numpy has usually loaded it
  already). minidl shares its work among the cores itself, on a small pool of Python threads that sleep
  when idle (one per core, the caller included; :func:`run_each`): the convolutions hand each thread
  whole blocks (ops/conv_blocks.py), large products are split into column blocks (:func:`matmul`), and large
  elementwise passes into row ranges (:func:`elementwise`). NumPy's BLAS calls and ufuncs, and the
  kernels' serial compilations (``nogil``), release the GIL, so the threads do run at the same time;
* OpenMP threads (Numba's parallel kernels, and any other OpenMP runtime loaded later) sleep as soon as
  they are idle: ``OMP_WAIT_POLICY=PASSIVE``.

A setting the user made wins: nothing is changed when ``OPENBLAS_NUM_THREADS``, ``GOTO_NUM_THREADS`` or
``OMP_NUM_THREADS`` (for OpenBLAS) or ``OMP_WAIT_POLICY`` is already in the environment. The step times
with these settings and with the libraries' defaults: docs/PERFORMANCE.md, "Thread settings".
"""
from __future__ import annotations

import ctypes
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# A product is split across threads only above this many multiply-adds: a smaller product would not win
# back the cost of handing a block to another thread (docs/PERFORMANCE.md, "Product split threshold").
SPLIT_MACS = 2_000_000
# An elementwise pass is split across threads only above this many elements, enough work to pay for the
# hand-over (docs/PERFORMANCE.md, "Elementwise split threshold").
SPLIT_ELEMENTS = 250_000

_OPENBLAS_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
                     "openblas_set_num_threads")
_pool: ThreadPoolExecutor | None = None
_workers = 1


def _openblas_libraries():
    """The OpenBLAS shared libraries loaded in this process (numpy's among them), from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    except OSError:  # not Linux: leave OpenBLAS as it is
        return []
    return sorted(p for p in paths if ".so" in p)


def _set_openblas_threads(n: int) -> bool:
    """Call ``openblas_set_num_threads(n)`` in every loaded OpenBLAS; False if none could be found."""
    done = False
    for path in _openblas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _OPENBLAS_SETTERS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(ctypes.c_int(n))
                done = True
                break
    return done


def openblas_core() -> str | None:
    """The CPU kernels OpenBLAS chose at load time ("Haswell", "SkylakeX", ...; None without OpenBLAS).

    OpenBLAS picks them from the CPU unless ``OPENBLAS_CORETYPE`` names some: on a CPU with AVX-512,
    ``OPENBLAS_CORETYPE=Haswell`` halves the float32 GEMM peak (AVX2 kernels), so benchmarks print it.
    """
    for path in _openblas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"):
            getter = getattr(lib, name, None)
            if getter is not None:
                getter.restype = ctypes.c_char_p
                return getter().decode()
    return None


def configure() -> None:
    """Apply the settings described in the module docstring (called once by ``import minidl``)."""
    global _workers
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not any(k in os.environ for k in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"  # for an OpenBLAS loaded after this point
        if _set_openblas_threads(1):
            _workers = _core_count()


def _core_count() -> int:
    """The cores this process may run on (Numba's default thread count), honouring NUMBA_NUM_THREADS."""
    if "NUMBA_NUM_THREADS" in os.environ:
        return max(1, int(os.environ["NUMBA_NUM_THREADS"]))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def workers() -> int:
    """How many threads minidl's CPU work is shared among (1 when the user set BLAS or OpenMP threads)."""
    return _workers


def set_num_threads(n: int) -> None:
    """Share minidl's CPU work among ``n`` threads: its own pool and Numba's kernels (PyTorch's
    ``torch.set_num_threads``). ``minidl.distributed`` gives each of several processes on one machine its
    share of the cores this way."""
    global _workers, _pool
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive number of threads, got {n!r}")
    import numba
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None
    _workers = n


def get_num_threads() -> int:
    """The number of threads minidl's CPU work is shared among (PyTorch's ``torch.get_num_threads``)."""
    return _workers


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_workers - 1, thread_name_prefix="minidl-worker")
    return _pool


def _forget_pool() -> None:
    """In a forked child: the pool's threads were not copied, so start a new pool when one is needed."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def run_each(fn, items: list) -> list:
    """``[fn(item) for item in items]``, the first on the calling thread and the others on the pool.

    ``fn`` must release the GIL for most of its time (NumPy's BLAS calls and large ufuncs do, and so do
    Numba kernels compiled with ``nogil=True``) or nothing runs at the same time. An error in any call is
    raised here, after every call has finished.
    """
    futures = [_get_pool().submit(fn, item) for item in items[1:]]
    try:
        first = fn(items[0])
    finally:
        rest = [f.result() for f in futures] if futures else []
    return [first] + rest


def elementwise(fn, out, *arrays):
    """``fn(*arrays, out=out)``, split along axis 0 across the cores when large.

    ``fn`` is elementwise and releases the GIL: a NumPy ufunc, or a kernel's serial (``nogil``)
    compilation. All arrays have ``out``'s shape. A large memory-bound pass runs faster split than whole
    (numbers: docs/PERFORMANCE.md, "ReLU split across the cores").
    """
    n = out.shape[0] if out.ndim else 0
    parts = min(_workers, n)
    if parts < 2 or out.size < SPLIT_ELEMENTS:
        fn(*arrays, out=out)
        return out
    bounds = [n * i // parts for i in range(parts + 1)]
    run_each(lambda s: fn(*(a[s] for a in arrays), out=out[s]),
             [slice(i0, i1) for i0, i1 in zip(bounds[:-1], bounds[1:])])
    return out


def matmul(a, b, out=None):
    """``numpy.matmul(a, b, out=out)`` with the columns of ``b`` split across cores when it is worth it.

    a (..., M, K) and b (..., K, P), NumPy arrays. Each thread computes ``a @ b[..., :, j0:j1]`` into the
    matching columns of ``out``: disjoint writes, and every block is still one BLAS call on the original
    memory (a column block of a C-contiguous matrix is a valid BLAS operand, so nothing is copied).
    """
    P = b.shape[-1]
    parts = min(_workers, P // 64)
    if parts < 2:  # the common small case first, at the cost of a comparison (LeNet's Linear layers)
        return np.matmul(a, b, out=out)
    batch_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) if a.ndim > 2 or b.ndim > 2 else ()
    if math.prod(batch_shape) * a.shape[-2] * a.shape[-1] * P < SPLIT_MACS:
        return np.matmul(a, b, out=out)
    if out is None:
        out = np.empty(batch_shape + (a.shape[-2], P), dtype=np.result_type(a, b))
    bounds = [P * i // parts for i in range(parts + 1)]
    run_each(lambda j: np.matmul(a, b[..., j[0]:j[1]], out=out[..., j[0]:j[1]]),
             list(zip(bounds[:-1], bounds[1:])))
    return out
