"""Map-style datasets: a length and an item per index, like ``torch.utils.data``.

A dataset is anything with ``__len__`` and ``__getitem__(i) -> sample``. Fetching a batch one sample at
a time costs a Python call per image, too slow for 60,000 images an epoch, so a dataset may also have
``__getitems__(indices)`` (PyTorch's batched-fetch protocol): the :class:`~minidl.data.DataLoader`
calls it with a whole batch's index array. The datasets here answer it with a :class:`SampleBatch`,
the samples already stacked into arrays by one fancy-indexing step per field.
"""
from __future__ import annotations

import bisect
import itertools
import math
import warnings
from collections.abc import Sequence

import numpy as np

from ..backend import get_array_module
from ..random import default_generator
from ..tensor import Tensor, tensor

__all__ = ["ConcatDataset", "Dataset", "SampleBatch", "Subset", "TensorDataset", "random_split"]


class Dataset:
    """Base of map-style datasets: subclasses define ``__getitem__`` and ``__len__``.

    A subclass may also define ``__getitems__(indices)`` returning the samples of a whole batch (a list
    of samples, or a :class:`SampleBatch`); the DataLoader then calls it once per batch.
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __add__(self, other: "Dataset") -> "ConcatDataset":
        return ConcatDataset([self, other])


class SampleBatch(Sequence):
    """A batch of samples stored as stacked fields: ``fields[k][i]`` is field k of sample i.

    It reads as the sequence of samples a batched fetch must return (``batch[i]`` is the tuple of sample
    i), so any ``collate_fn`` written for a list of samples works on it; ``default_collate`` sees the
    fields already stacked and turns each into one Tensor without a per-sample loop.

    Args:
        *fields: arrays (NumPy or CuPy) or Tensors sharing their first dimension, the batch size.
    """

    def __init__(self, *fields):
        if not fields:
            raise ValueError("SampleBatch: expected at least one field")
        n = len(fields[0])
        for k, f in enumerate(fields):
            if len(f) != n:
                raise ValueError(f"SampleBatch: field 0 holds {n} samples but field {k} holds {len(f)}")
        self.fields = tuple(fields)

    def __len__(self) -> int:
        return len(self.fields[0])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return tuple(f[i] for f in self.fields)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{tuple(f.shape)} {f.dtype}" for f in self.fields)
        return f"SampleBatch({shapes})"


def _as_array(x):
    """The array behind a Tensor; other array-likes through ``minidl.tensor``'s dtype rule."""
    if isinstance(x, Tensor):
        return x.array
    if isinstance(x, np.ndarray) or get_array_module(x) is not np:
        return x
    return tensor(x).array


class TensorDataset(Dataset):
    """Samples are the rows of tensors that share their first dimension.

    ``TensorDataset(images, labels)[i] == (images[i], labels[i])``; a batch is fetched by fancy-indexing
    each tensor once.

    Args:
        *tensors: minidl Tensors or arrays (NumPy, CuPy, or anything ``minidl.tensor`` takes), all with the
            same size in dimension 0.
    """

    def __init__(self, *tensors) -> None:
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor")
        arrays = tuple(_as_array(t) for t in tensors)
        for k, a in enumerate(arrays):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: tensor {k} is 0-d; every tensor needs a first dimension")
        sizes = [a.shape[0] for a in arrays]
        if any(s != sizes[0] for s in sizes):
            shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
            raise ValueError(f"TensorDataset: size mismatch between tensors, shapes {shapes}: every tensor "
                             f"must have the same size in dimension 0")
        self.tensors = tuple(t if isinstance(t, Tensor) else a for t, a in zip(tensors, arrays))
        self._arrays = arrays

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices) -> SampleBatch:
        idx = np.asarray(indices, dtype=np.int64)
        return SampleBatch(*(a[idx] for a in self._arrays))

    def __len__(self) -> int:
        return self._arrays[0].shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    Args:
        dataset: the dataset to take samples from.
        indices: the positions in ``dataset`` (a sequence of ints or an integer array).
    """

    def __init__(self, dataset, indices) -> None:
        self.dataset = dataset
        self.indices = indices
        self._index_array = np.asarray(indices, dtype=np.int64).reshape(-1)

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[int(self._index_array[i]) for i in idx]]
        return self.dataset[int(self._index_array[idx])]

    def __getitems__(self, indices):
        mapped = self._index_array[np.asarray(indices, dtype=np.int64)]
        getitems = getattr(self.dataset, "__getitems__", None)
        if getitems is not None:
            return getitems(mapped)
        return [self.dataset[i] for i in mapped.tolist()]

    def __len__(self) -> int:
        return len(self._index_array)


class ConcatDataset(Dataset):
    """The samples of several datasets one after another.

    Args:
        datasets: the datasets to chain, in order.
    """

    def __init__(self, datasets) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int):
        if idx < 0:
            if -idx > len(self):
                raise IndexError(f"ConcatDataset: index {idx} out of range for length {len(self)}")
            idx += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        if which == len(self.datasets):
            raise IndexError(f"ConcatDataset: index {idx} out of range for length {len(self)}")
        start = self.cumulative_sizes[which - 1] if which > 0 else 0
        return self.datasets[which][idx - start]


def _split_lengths(n: int, lengths) -> list[int]:
    """Counts from counts or fractions, by PyTorch's rule: floor each fraction, then hand out the
    remainder one by one from the first split on."""
    lengths = list(lengths)
    total = sum(lengths)
    if math.isclose(total, 1) and total <= 1:
        counts = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"random_split: fraction at index {i} is not between 0 and 1: {frac}")
            counts.append(int(math.floor(n * frac)))
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, c in enumerate(counts):
            if c == 0:
                warnings.warn(f"random_split: length of split at index {i} is 0; this gives an empty dataset",
                              stacklevel=3)
        return counts
    for i, c in enumerate(lengths):
        if not float(c).is_integer() or c < 0:
            raise ValueError(f"random_split: lengths must be non-negative counts or fractions summing to 1, "
                             f"got {lengths[i]!r} at index {i}")
    counts = [int(c) for c in lengths]
    if sum(counts) != n:
        raise ValueError(f"random_split: sum of input lengths {counts} = {sum(counts)} does not equal the "
                         f"length of the input dataset ({n})")
    return counts


def random_split(dataset, lengths, seed: int | None = None,
                 generator: np.random.Generator | None = None) -> list[Subset]:
    """Split ``dataset`` at random into non-overlapping :class:`Subset` s of the given lengths.

    ``lengths`` are counts summing to ``len(dataset)``, or fractions summing to 1 (each split gets
    ``floor(n * fraction)`` samples, and the few left over go one each to the first splits, as in PyTorch).

    Args:
        dataset: the dataset to split.
        lengths: counts or fractions, one per split.
        seed: makes the split a fixed function of the seed. ``None`` draws the permutation from minidl's
            default generator (so ``minidl.manual_seed`` makes it reproducible).
        generator: a ``numpy.random.Generator`` to draw from instead (not together with ``seed``).

    Returns:
        One Subset per entry of ``lengths``.
    """
    if seed is not None and generator is not None:
        raise ValueError("random_split: pass seed or generator, not both")
    counts = _split_lengths(len(dataset), lengths)
    if generator is None:
        generator = default_generator() if seed is None else np.random.default_rng(seed)
    perm = generator.permutation(sum(counts))
    ends = list(itertools.accumulate(counts))
    return [Subset(dataset, perm[end - c:end]) for end, c in zip(ends, counts)]
