"""Samplers: the order in which a DataLoader visits a dataset, like ``torch.utils.data``'s.

Shuffling is reproducible per epoch: a :class:`RandomSampler` with a seed gives epoch k the permutation
drawn from ``numpy.random.default_rng((seed, k))``, a fixed function of (seed, k). A training run resumed
at epoch k calls ``set_epoch(k)`` and gets exactly the order an uninterrupted run would have seen.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np

from ..random import default_generator

__all__ = ["BatchSampler", "RandomSampler", "Sampler", "SequentialSampler", "SubsetRandomSampler"]


def draw_seed() -> int:
    """A fresh seed from minidl's default generator (so ``minidl.manual_seed`` fixes it)."""
    return int(default_generator().integers(2 ** 63))


class Sampler:
    """Base of samplers: ``__iter__`` yields dataset indices; ``__len__`` says how many, where known."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")


class SequentialSampler(Sampler):
    """Indices 0, 1, ..., len(data_source) - 1 in order.

    Args:
        data_source: the dataset (only its length is used).
    """

    def __init__(self, data_source) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class _EpochSeeded(Sampler):
    """Shared by the random samplers: a generator per epoch, from ``generator`` or from (seed, epoch)."""

    def _init_random(self, generator, seed) -> None:
        if generator is not None and seed is not None:
            raise ValueError(f"{type(self).__name__}: pass generator or seed, not both")
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(f"{type(self).__name__}: generator must be a numpy.random.Generator, "
                            f"got {type(generator).__name__}")
        self.generator = generator
        self.seed = None if generator is not None else (draw_seed() if seed is None else int(seed))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use epoch ``epoch``'s order (later iterations count on from it)."""
        self.epoch = int(epoch)

    def _next_generator(self) -> np.random.Generator:
        if self.generator is not None:
            return self.generator
        rng = np.random.default_rng((self.seed, self.epoch))
        self.epoch += 1
        return rng


class RandomSampler(_EpochSeeded):
    """Indices in random order: a permutation, or draws with replacement.

    Args:
        data_source: the dataset (only its length is used).
        replacement: draw ``num_samples`` indices independently (with repeats) instead of permuting.
        num_samples: how many indices an epoch yields; default ``len(data_source)``. Without replacement and
            more than ``len(data_source)``, whole permutations are chained, the last one cut short (PyTorch's
            rule).
        generator: a ``numpy.random.Generator`` to draw every epoch from (its stream continues across epochs).
        seed: epoch k's order is drawn from ``default_rng((seed, k))``. Default: a seed drawn once, now, from
            minidl's default generator.
    """

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None,
                 generator: np.random.Generator | None = None, seed: int | None = None) -> None:
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement should be a boolean value, but got "
                            f"replacement={replacement!r}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        if not isinstance(self.num_samples, int) or isinstance(self.num_samples, bool) or self.num_samples <= 0:
            raise ValueError(f"RandomSampler: num_samples should be a positive integer value, but got "
                             f"num_samples={self.num_samples!r}")
        self._init_random(generator, seed)

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        rng = self._next_generator()
        n, m = len(self.data_source), self.num_samples
        if self.replacement:
            order = rng.integers(0, n, size=m)
        else:
            parts = [rng.permutation(n) for _ in range(m // n)]
            if m % n:
                parts.append(rng.permutation(n)[:m % n])
            order = np.concatenate(parts)
        return iter(order.tolist())

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(_EpochSeeded):
    """The given indices in random order (a new permutation each epoch).

    Args:
        indices: the dataset indices to draw from.
        generator: a ``numpy.random.Generator`` to draw from.
        seed: as for :class:`RandomSampler`.
    """

    def __init__(self, indices: Sequence[int], generator: np.random.Generator | None = None,
                 seed: int | None = None) -> None:
        self.indices = indices
        self._index_array = np.asarray(indices, dtype=np.int64).reshape(-1)
        self._init_random(generator, seed)

    def __iter__(self) -> Iterator[int]:
        rng = self._next_generator()
        return iter(self._index_array[rng.permutation(len(self._index_array))].tolist())

    def __len__(self) -> int:
        return len(self._index_array)


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size``.

    Args:
        sampler: yields the indices (any iterable of ints).
        batch_size: indices per batch.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
    """

    def __init__(self, sampler, batch_size: int, drop_last: bool) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size!r}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"BatchSampler: drop_last should be a boolean value, but got drop_last={drop_last!r}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def set_epoch(self, epoch: int) -> None:
        """Pass the epoch on to the sampler, where it takes one."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        # The sampler's iterator is made now, not at the first batch, so its epoch is the current one.
        return self._batches(iter(self.sampler))

    def _batches(self, it: Iterator[int]) -> Iterator[list[int]]:
        while True:
            batch = list(itertools.islice(it, self.batch_size))
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
