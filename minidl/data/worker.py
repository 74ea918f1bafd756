"""What a DataLoader worker thread knows about itself, and the generator random transforms draw from.

In the main thread random transforms draw from minidl's default generator. Worker threads (``num_workers
> 0``) prepare batches concurrently, so draws from one shared generator would land in a different order on
every run; instead each batch gets its own generator, seeded by (loader seed, epoch, batch number), and
threaded loading is as reproducible as loading in the main thread.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import numpy as np

from ..random import default_generator

__all__ = ["WorkerInfo", "current_generator", "get_worker_info"]

_local = threading.local()


@dataclass(frozen=True)
class WorkerInfo:
    """Returned by :func:`get_worker_info` inside a worker thread.

    Attributes:
        id: this worker's number, 0 .. num_workers - 1.
        num_workers: how many workers the loader runs.
        seed: the loader's base seed.
        dataset: the loader's dataset.
    """

    id: int
    num_workers: int
    seed: int
    dataset: object


def get_worker_info() -> WorkerInfo | None:
    """The :class:`WorkerInfo` of the calling DataLoader worker thread, or None in any other thread."""
    return getattr(_local, "info", None)


def current_generator() -> np.random.Generator:
    """The generator random transforms draw from: the batch's own one inside a worker thread, else minidl's
    default generator."""
    g = getattr(_local, "generator", None)
    return default_generator() if g is None else g


@contextlib.contextmanager
def batch_generator(generator: np.random.Generator):
    """Make ``generator`` this thread's :func:`current_generator` while one batch is prepared."""
    _local.generator = generator
    try:
        yield
    finally:
        _local.generator = None


def set_worker_info(info: WorkerInfo) -> None:
    """Called once in each worker thread as it starts."""
    _local.info = info
