"""Blocks of work shared among the CPU's worker threads: how the convolutions keep their buffers small.

A convolution's buffers (im2col's columns, Winograd's transformed tiles) grow with the batch and the image.
Built for the whole batch at once they would hold tens of megabytes and leave the cache between the step
that writes them and the GEMM that reads them. So the output grid (sample, output row) is cut into blocks
of about ``BLOCK_BYTES`` (:func:`split`), and each worker thread takes whole blocks (:func:`on_workers`),
running every step of a block itself while the block sits in its core's cache. ``ops/conv_blocks.py`` and
``ops/winograd.py`` both work this way.
"""
from __future__ import annotations

import math

import numpy as np

from .. import kernels
from ..backend import threads

# Size of one block: its buffers (im2col's columns or Winograd's tiles) plus the GEMM's output block. On
# the CPU each worker thread builds a block's buffers and multiplies them at once, so they are still in
# that core's L2 cache (1 MiB here) when the GEMM reads them; a block has at least MIN_COLUMNS columns
# (output positions, or Winograd tiles), below which the GEMM loses speed.
BLOCK_BYTES = 2**20
MIN_COLUMNS = 256


def split(N: int, OH: int, OW: int, column_bytes: int):
    """Split the output grid (sample, output row) into blocks (n0, n1, oh0, oh1) of about BLOCK_BYTES.

    ``column_bytes`` is what one output position (n, oh, ow) costs in buffers. As many whole samples as
    fit; when one sample alone is larger, bands of its output rows. Every block is a contiguous range of
    the joint (n, oh, ow) axis. When there is more than one block, their count is a multiple of the worker
    threads and their sizes differ by at most a sample (or a row), so that every thread gets the same
    work: 3 blocks of 28, 28 and 8 samples would leave one thread with 36 and the other with 28 (numbers:
    docs/PERFORMANCE.md, "Blocks shared evenly"). (A single small block is not cut in two for two
    threads to share: the hand-over costs more than it saves; numbers: docs/PERFORMANCE.md, "Small blocks
    stay whole".)
    """
    if N == 0:
        return []
    target = max(BLOCK_BYTES, MIN_COLUMNS * column_bytes)
    row_bytes = OW * column_bytes
    workers = threads.workers()
    if OH * row_bytes <= target:
        count = -(-N // max(1, target // (OH * row_bytes)))
        if count > 1:
            count = min(N, -(-count // workers) * workers)
        bounds = [N * i // count for i in range(count + 1)]
        return [(n0, n1, 0, OH) for n0, n1 in zip(bounds[:-1], bounds[1:])]
    bands = -(-OH // max(1, target // row_bytes))
    if N % workers:
        bands = min(OH, -(-bands // workers) * workers)
    bounds = [OH * i // bands for i in range(bands + 1)]
    return [(n, n + 1, oh0, oh1) for n in range(N) for oh0, oh1 in zip(bounds[:-1], bounds[1:])]


def on_workers(xp, blocks, work, by_sample: bool = False) -> list:
    """Share ``blocks`` among the CPU's worker threads and return what ``work(share, in_worker)`` gives each.

    On the CPU with several cores and blocks, each worker takes every k-th block (or, with ``by_sample``,
    every k-th sample's blocks, so that bands of one sample, whose col2im writes overlap, stay on one
    thread) and runs every step of each block itself (im2col or Winograd's transforms, the GEMMs, the
    rest): no thread waits for another between the steps, and the block stays in its core's cache.
    ``in_worker`` tells ``work`` to use the kernels' serial compilations and single-threaded BLAS, since the
    parallelism is already here.
    Otherwise (a GPU, one core, one block) ``work(blocks, False)`` runs once, with the parallel kernels
    and the split GEMM.
    """
    workers = threads.workers() if xp is np else 1
    if by_sample:
        groups: dict = {}
        for block in blocks:
            groups.setdefault(block[0], []).append(block)
        units = list(groups.values())
    else:
        units = [[block] for block in blocks]
    if workers < 2 or len(units) < 2:
        return [work(blocks, False)]
    shares = [[block for unit in units[i::workers] for block in unit] for i in range(min(workers, len(units)))]
    return threads.run_each(lambda share: work(share, True), shares)


def buffer(xp, buf, shape, dtype):
    """A C-contiguous (shape) view of ``buf``, made anew only when ``buf`` is None or too small.

    A worker's first block is usually its largest, but not always: with bands of rows, a worker may start
    on a sample's short last band and go on to a full band of the next sample."""
    if buf is None or buf.size < math.prod(shape):
        buf = xp.empty(math.prod(shape), dtype=dtype)
    return buf, buf[:math.prod(shape)].reshape(shape)


def tools(xp, kernel, in_worker: bool):
    """The kernel and the matmul for one block: serial ones inside a worker thread (see :func:`on_workers`);
    else the kernel as given and, on the CPU, NumPy's matmul split across the cores (``backend.threads``)."""
    if in_worker:
        return kernels.serial(kernel), np.matmul
    return kernel, (threads.matmul if xp is np else xp.matmul)
