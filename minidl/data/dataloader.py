"""DataLoader: batches of a dataset as minidl Tensors, with PyTorch's arguments.

One epoch is: the batch sampler yields lists of indices; each list is fetched from the dataset (with one
``dataset.__getitems__(indices)`` call where the dataset has it, else ``dataset[i]`` per index) and the
samples are collated into Tensors. With ``num_workers > 0`` that fetching runs in background threads,
batch n on worker n % num_workers, while the training step works on the previous batch.

Reproducibility: the loader owns a seed (the ``seed`` argument, or one drawn from minidl's default
generator when the loader is made). Epoch k's shuffled order is a fixed function of (seed, k), and the
loader counts epochs itself: each ``iter(loader)`` is the next epoch, and ``set_epoch(k)`` jumps to epoch
k, so a run resumed at epoch k sees exactly the batches an uninterrupted run would.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from ..backend import get_array_module
from ..ops.shape import stack
from ..tensor import Tensor
from .dataset import SampleBatch
from .sampler import BatchSampler, RandomSampler, SequentialSampler, draw_seed
from .worker import WorkerInfo, batch_generator, set_worker_info

__all__ = ["DataLoader", "default_collate", "default_convert"]

_COLLATE_TYPES = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def _is_array(x) -> bool:
    return isinstance(x, np.ndarray) or get_array_module(x) is not np


def _stack_arrays(batch) -> Tensor:
    elem = batch[0]
    if elem.dtype.kind in "SUO":
        raise TypeError(_COLLATE_TYPES.format(elem.dtype))
    for i, a in enumerate(batch):
        if a.shape != elem.shape:
            raise RuntimeError(f"default_collate: stack expects each array to be equal size, but got "
                               f"{tuple(elem.shape)} at entry 0 and {tuple(a.shape)} at entry {i}")
    return Tensor(get_array_module(elem).stack(batch))


def _field_to_tensor(field):
    if isinstance(field, Tensor):
        return field
    if _is_array(field):
        if field.dtype.kind in "SUO":
            return field.tolist()
        return Tensor(field)
    return default_collate(list(field))


def default_collate(batch):
    """Stack a list of samples into a batch of Tensors, keeping the samples' structure.

    - Tensors and arrays are stacked along a new first dimension (dtype kept: a uint8 image stays uint8,
      ``ToTensor`` makes float32); NumPy scalars become a 1-D Tensor of their dtype.
    - Python ints become int64, floats float64, bools bool (PyTorch's rule); strings stay a list.
    - A dict is collated key by key, a namedtuple field by field; a tuple of fields gives a tuple of
      batches (PyTorch gives a list here; a tuple unpacks the same way), a list gives a list.
    - A :class:`SampleBatch` (what a batched ``__getitems__`` returns) is already stacked: each field
      becomes one Tensor, with no per-sample work.

    Args:
        batch: the samples of one batch.

    Returns:
        The collated batch.
    """
    if isinstance(batch, SampleBatch):
        return tuple(_field_to_tensor(f) for f in batch.fields)
    if len(batch) == 0:
        raise ValueError("default_collate: got an empty batch")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return stack(list(batch), 0)
    if _is_array(elem):
        return _stack_arrays(list(batch))
    if isinstance(elem, np.generic):
        if elem.dtype.kind in "SUO":
            raise TypeError(_COLLATE_TYPES.format(elem.dtype))
        return Tensor(np.array(batch))
    if isinstance(elem, bool):
        return Tensor(np.array(batch, dtype=bool))
    if isinstance(elem, int):
        return Tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, Mapping):
        collated = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return type(elem)(collated)
        except TypeError:
            return collated
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, Sequence):
        size = len(elem)
        if any(len(s) != size for s in batch):
            raise RuntimeError("default_collate: each element in list of batch should be of equal size")
        columns = [default_collate(list(s)) for s in zip(*batch)]
        if isinstance(elem, (tuple, list)):
            return tuple(columns) if isinstance(elem, tuple) else columns
        try:
            return type(elem)(columns)
        except TypeError:
            return columns
    raise TypeError(_COLLATE_TYPES.format(type(elem)))


def default_convert(data):
    """Turn the arrays inside one sample into Tensors, without batching (``batch_size=None``).

    Args:
        data: a sample: an array, a number, or a dict/tuple/list of them.

    Returns:
        The same structure with every non-string array (and NumPy scalar) made a Tensor.
    """
    if isinstance(data, Tensor):
        return data
    if _is_array(data) or isinstance(data, np.generic):
        return data if data.dtype.kind in "SUO" else Tensor(get_array_module(data).asarray(data))
    if isinstance(data, Mapping):
        converted = {key: default_convert(v) for key, v in data.items()}
        try:
            return type(data)(converted)
        except TypeError:
            return converted
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return tuple(default_convert(d) for d in data)
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        return [default_convert(d) for d in data]
    return data


class DataLoader:
    """Iterate over a dataset in batches of Tensors.

    ``for x, y in DataLoader(dataset, batch_size=64, shuffle=True, seed=0)`` gives ``x`` of shape
    ``(64, ...)`` and ``y`` of shape ``(64,)``; ``len(loader)`` is the number of batches.

    Args:
        dataset: a map-style dataset (``__len__`` and ``__getitem__``; ``__getitems__`` is used when present).
        batch_size: samples per batch; ``None`` yields single samples, uncollated but converted to Tensors.
        shuffle: a new random order every epoch (epoch k's order is a function of (seed, k)).
        sampler: yields the indices instead (not with ``shuffle``).
        batch_sampler: yields whole lists of indices (not with batch_size, shuffle, sampler, drop_last).
        num_workers: 0 prepares batches in the calling thread; n > 0 uses n background threads, each
            preparing every n-th batch, ``prefetch_factor`` batches ahead. Threads, not processes: they help
            where fetching waits on disk or runs NumPy/PIL code that releases the GIL. The datasets here
            prepare a batch so quickly that 0 is as fast or faster for them (numbers: docs/PERFORMANCE.md,
            "DataLoader workers").
        collate_fn: turns a list of samples into a batch; default :func:`default_collate`.
        pin_memory: not supported (raises NotImplementedError): move a batch with ``Tensor.to("cuda")``.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        timeout: with workers, seconds to wait for a batch before raising (0: wait forever).
        worker_init_fn: called as ``worker_init_fn(worker_id)`` in each worker thread as it starts.
        multiprocessing_context: not supported (workers are threads); must be None.
        generator: a ``numpy.random.Generator`` to shuffle with, its stream continuing across epochs
            (instead of the per-epoch seeding; not with ``seed``).
        prefetch_factor: batches each worker prepares ahead; default 2 when ``num_workers > 0``.
        persistent_workers: keep the worker threads alive between epochs.
        pin_memory_device: not supported; must be "".
        in_order: with workers, yield batches in sampler order (True) or as soon as each is ready (False).
        seed: the loader's seed; default drawn once from minidl's default generator when the loader is made
            (so ``minidl.manual_seed`` makes runs reproducible). Worker threads seed each batch's random
            transforms with (seed, epoch, batch number).
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = False, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn=None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn=None, multiprocessing_context=None,
                 generator: np.random.Generator | None = None, *, prefetch_factor: int | None = None,
                 persistent_workers: bool = False, pin_memory_device: str = "", in_order: bool = True,
                 seed: int | None = None) -> None:
        if not hasattr(dataset, "__getitem__"):
            raise NotImplementedError(f"DataLoader: dataset must be map-style (define __getitem__ and __len__); "
                                      f"got {type(dataset).__name__}, iterable-style datasets are not supported")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers option should be non-negative; use num_workers=0 to "
                             f"prepare batches in the main thread (got {num_workers!r})")
        if timeout < 0:
            raise ValueError(f"DataLoader: timeout option should be non-negative, got {timeout}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor option could only be specified with num_workers > 0; "
                             "otherwise set prefetch_factor to None")
        if prefetch_factor is not None and (not isinstance(prefetch_factor, int) or prefetch_factor < 1):
            raise ValueError(f"DataLoader: prefetch_factor should be a positive integer, got {prefetch_factor!r}")
        if persistent_workers and num_workers == 0:
            raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
        if pin_memory:
            raise NotImplementedError("DataLoader: pin_memory=True is not supported; move each batch to the GPU "
                                      "with Tensor.to('cuda')")
        if pin_memory_device:
            raise NotImplementedError(f"DataLoader: pin_memory_device={pin_memory_device!r} is not supported")
        if multiprocessing_context is not None:
            raise NotImplementedError("DataLoader: multiprocessing_context is not supported: minidl's workers "
                                      "are threads of this process")
        if seed is not None and generator is not None:
            raise ValueError("DataLoader: pass seed or generator, not both")
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("DataLoader: batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")

        self.seed = int(seed) if seed is not None else draw_seed()
        if sampler is None:
            if shuffle:
                sampler = (RandomSampler(dataset, generator=generator) if generator is not None
                           else RandomSampler(dataset, seed=self.seed))
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor if prefetch_factor is not None or num_workers == 0 else 2
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if batch_sampler is not None else default_convert)
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.generator = generator
        self.persistent_workers = persistent_workers
        self.in_order = in_order
        self.epoch = 0
        self._workers: list[cf.ThreadPoolExecutor] | None = None

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter(loader)`` epoch ``epoch`` (its shuffled order and its workers' seeds);
        later iterations count on from there."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.batch_sampler) if self._auto_collation else len(self.sampler)

    def _indices(self):
        return iter(self.batch_sampler) if self._auto_collation else iter(self.sampler)

    def _fetch(self, index):
        """One batch (or, without auto-collation, one sample) from the dataset, collated."""
        if not self._auto_collation:
            return self.collate_fn(self.dataset[index])
        getitems = getattr(self.dataset, "__getitems__", None)
        if getitems is not None:
            samples = getitems(np.asarray(index, dtype=np.int64))
        else:
            samples = [self.dataset[i] for i in index]
        return self.collate_fn(samples)

    def _fetch_seeded(self, index, epoch: int, batch_no: int):
        with batch_generator(np.random.default_rng((self.seed, epoch, batch_no))):
            return self._fetch(index)

    def __iter__(self) -> Iterator:
        epoch = self.epoch
        self.epoch += 1
        for s in (self.sampler, self.batch_sampler):
            if hasattr(s, "set_epoch"):
                s.set_epoch(epoch)
        indices = self._indices()
        if self.num_workers == 0:
            return (self._fetch(index) for index in indices)
        return self._threaded(indices, epoch)

    def _start_workers(self) -> list[cf.ThreadPoolExecutor]:
        def init(worker_id):
            set_worker_info(WorkerInfo(worker_id, self.num_workers, self.seed, self.dataset))
            if self.worker_init_fn is not None:
                self.worker_init_fn(worker_id)
        # One single-thread executor per worker, so batch n always goes to worker n % num_workers.
        return [cf.ThreadPoolExecutor(1, thread_name_prefix=f"minidl-data-{i}", initializer=init, initargs=(i,))
                for i in range(self.num_workers)]

    def _threaded(self, indices: Iterator, epoch: int):
        workers = self._workers or self._start_workers()
        if self.persistent_workers:
            self._workers = workers
        jobs = enumerate(indices)
        pending = collections.deque()
        timeout = self.timeout if self.timeout > 0 else None

        def submit_next() -> None:
            for batch_no, index in jobs:
                pending.append(workers[batch_no % len(workers)].submit(self._fetch_seeded, index, epoch, batch_no))
                return

        try:
            for _ in range(self.num_workers * self.prefetch_factor):
                submit_next()
            while pending:
                if self.in_order:
                    future = pending.popleft()
                else:
                    done, _ = cf.wait(pending, timeout=timeout, return_when=cf.FIRST_COMPLETED)
                    if not done:
                        raise RuntimeError(f"DataLoader timed out after {self.timeout} seconds")
                    future = next(iter(done))
                    pending.remove(future)
                try:
                    batch = future.result(timeout=timeout)
                except cf.TimeoutError:
                    raise RuntimeError(f"DataLoader timed out after {self.timeout} seconds") from None
                submit_next()
                yield batch
        finally:
            for future in pending:
                future.cancel()
            if not self.persistent_workers:
                for w in workers:
                    w.shutdown(wait=False, cancel_futures=True)
