"""minidl.data: datasets, random_split, samplers, default_collate and the DataLoader.

Datasets are small TensorDatasets whose sample i carries i itself, so a batch says which samples it holds.
Expected answers come from the contract (sizes, orders, dtypes) and, for collation and split sizes, from
torch.utils.data.
"""
from __future__ import annotations

import threading
import time
from collections import namedtuple

import numpy as np
import pytest

import minidl as mdl
from minidl.data import (BatchSampler, ConcatDataset, DataLoader, Dataset, RandomSampler, SampleBatch,
                         SequentialSampler, Subset, SubsetRandomSampler, TensorDataset, default_collate,
                         get_worker_info, random_split)
from minidl.data import transforms as T


def indexed_dataset(n: int, dim: int = 3) -> TensorDataset:
    """Sample i is (x_i, i) with x_i = [i, i, ...] as float32, so a batch tells which samples it holds."""
    x = np.repeat(np.arange(n, dtype=np.float32)[:, None], dim, axis=1)
    return TensorDataset(x, np.arange(n, dtype=np.int64))


class PerSample(Dataset):
    """Wraps a dataset, hiding its __getitems__, and counts the single fetches."""

    def __init__(self, dataset):
        self.dataset, self.calls = dataset, 0

    def __getitem__(self, i):
        self.calls += 1
        return self.dataset[i]

    def __len__(self):
        return len(self.dataset)


def epoch_labels(loader) -> np.ndarray:
    return np.concatenate([y.numpy() for _, y in loader])


# ------------------------------------------------------------------------------------------ TensorDataset
def test_tensor_dataset_items_and_batches(rng):
    x = rng.standard_normal((6, 2)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    ds = TensorDataset(mdl.tensor(x), y)
    assert len(ds) == 6
    xi, yi = ds[4]
    assert isinstance(xi, mdl.Tensor) and np.array_equal(xi.numpy(), x[4]) and yi == y[4]
    batch = ds.__getitems__([5, 0, 5])
    assert isinstance(batch, SampleBatch) and len(batch) == 3
    np.testing.assert_array_equal(batch.fields[0], x[[5, 0, 5]])
    np.testing.assert_array_equal(batch[1][1], y[0])


def test_tensor_dataset_lists_follow_minidl_dtypes():
    ds = TensorDataset([[1.0, 2.0], [3.0, 4.0]], [0, 1])
    assert ds.tensors[0].dtype == np.float32 and ds.tensors[1].dtype == np.int64


def test_tensor_dataset_errors():
    with pytest.raises(ValueError, match=r"size mismatch.*\(3, 2\), \(4,\)"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(np.zeros(()))


# --------------------------------------------------------------------------------- Subset, ConcatDataset
def test_subset_maps_indices_and_uses_batched_fetch():
    base = indexed_dataset(10)
    sub = Subset(base, [7, 2, 9])
    assert len(sub) == 3 and sub[1][1] == 2
    batch = sub.__getitems__(np.array([2, 0]))
    assert isinstance(batch, SampleBatch)
    np.testing.assert_array_equal(batch.fields[1], [9, 7])
    hidden = PerSample(base)
    samples = Subset(hidden, [7, 2, 9]).__getitems__([2, 0])
    assert [int(s[1]) for s in samples] == [9, 7] and hidden.calls == 2


def test_concat_dataset():
    a, b = indexed_dataset(3), indexed_dataset(2)
    cat = a + b
    assert isinstance(cat, ConcatDataset) and len(cat) == 5
    assert [int(cat[i][1]) for i in range(5)] == [0, 1, 2, 0, 1]
    assert int(cat[-1][1]) == 1
    with pytest.raises(IndexError, match="out of range"):
        cat[5]


# ------------------------------------------------------------------------------------------ random_split
def test_random_split_counts_disjoint_and_covering():
    parts = random_split(indexed_dataset(20), [12, 5, 3], seed=0)
    assert [len(p) for p in parts] == [12, 5, 3]
    everything = np.concatenate([p.indices for p in parts])
    np.testing.assert_array_equal(np.sort(everything), np.arange(20))


@pytest.mark.parametrize("n, fractions", [(11, [0.7, 0.2, 0.1]), (10, [0.33, 0.33, 0.34]), (7, [0.5, 0.5])])
def test_random_split_fraction_sizes_match_torch(torch, n, fractions):
    ours = [len(p) for p in random_split(indexed_dataset(n), fractions, seed=0)]
    theirs = [len(p) for p in torch.utils.data.random_split(range(n), fractions)]
    assert ours == theirs


def test_random_split_reproducible():
    a = random_split(indexed_dataset(50), [0.8, 0.2], seed=3)
    b = random_split(indexed_dataset(50), [0.8, 0.2], seed=3)
    c = random_split(indexed_dataset(50), [0.8, 0.2], seed=4)
    np.testing.assert_array_equal(a[0].indices, b[0].indices)
    assert not np.array_equal(a[0].indices, c[0].indices)
    mdl.manual_seed(9)
    d = random_split(indexed_dataset(50), [40, 10])
    mdl.manual_seed(9)
    e = random_split(indexed_dataset(50), [40, 10])
    np.testing.assert_array_equal(d[1].indices, e[1].indices)


def test_random_split_errors():
    with pytest.raises(ValueError, match=r"sum of input lengths \[3, 3\] = 6 does not equal the length of the input "
                                         r"dataset \(5\)"):
        random_split(indexed_dataset(5), [3, 3])
    with pytest.raises(ValueError, match="not between 0 and 1"):
        random_split(indexed_dataset(5), [1.5, -0.5])
    with pytest.raises(ValueError, match="seed or generator"):
        random_split(indexed_dataset(5), [3, 2], seed=1, generator=np.random.default_rng(1))


# ----------------------------------------------------------------------------------------------- collate
def test_default_collate_structures():
    Point = namedtuple("Point", "x y")
    batch = [({"img": np.full((2, 2), i, np.uint8), "name": f"s{i}"}, i, float(i), Point(i, [i, -i]))
             for i in range(3)]
    out = default_collate(batch)
    assert isinstance(out, tuple) and len(out) == 4
    assert out[0]["img"].shape == (3, 2, 2) and out[0]["img"].dtype == np.uint8
    assert out[0]["name"] == ["s0", "s1", "s2"]
    assert out[1].dtype == np.int64 and out[1].numpy().tolist() == [0, 1, 2]
    assert out[2].dtype == np.float64
    assert isinstance(out[3], Point) and out[3].x.numpy().tolist() == [0, 1, 2]
    assert isinstance(out[3].y, list) and out[3].y[1].numpy().tolist() == [0, -1, -2]


def test_default_collate_matches_torch(rng, torch):
    from torch.utils.data import default_collate as torch_collate
    samples = [(rng.standard_normal((3, 2)).astype(np.float32), int(rng.integers(10)), {"w": float(rng.random())})
               for _ in range(4)]
    ours, theirs = default_collate(samples), torch_collate(samples)
    for a, b in ((ours[0], theirs[0]), (ours[1], theirs[1]), (ours[2]["w"], theirs[2]["w"])):
        assert a.dtype == np.dtype(str(b.dtype).removeprefix("torch."))
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_default_collate_tensors_and_errors():
    out = default_collate([mdl.ones(2), mdl.zeros(2)])
    assert out.shape == (2, 2)
    with pytest.raises(RuntimeError, match=r"equal size, but got \(2,\) at entry 0 and \(3,\) at entry 1"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(TypeError, match="batch must contain"):
        default_collate([object(), object()])


def test_sample_batch_collates_like_its_samples():
    batch = indexed_dataset(6).__getitems__([4, 1, 3])
    fast, slow = default_collate(batch), default_collate(list(batch))
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ---------------------------------------------------------------------------------------- DataLoader
@pytest.mark.parametrize("drop_last, sizes", [(False, [4, 4, 2]), (True, [4, 4])])
def test_loader_batches_and_len(drop_last, sizes):
    loader = DataLoader(indexed_dataset(10), batch_size=4, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(sizes) and [len(y) for _, y in batches] == sizes
    x, y = batches[0]
    assert isinstance(x, mdl.Tensor) and x.dtype == np.float32 and x.shape == (4, 3)
    assert y.dtype == np.int64 and y.numpy().tolist() == [0, 1, 2, 3]


def test_loader_uses_batched_fetch():
    class Batched(Dataset):
        def __init__(self):
            self.calls = []

        def __getitem__(self, i):
            raise AssertionError("the loader must fetch whole batches")

        def __getitems__(self, indices):
            self.calls.append(np.asarray(indices).tolist())
            return SampleBatch(np.asarray(indices, np.float32), np.asarray(indices))

        def __len__(self):
            return 7

    ds = Batched()
    labels = epoch_labels(DataLoader(ds, batch_size=3))
    assert ds.calls == [[0, 1, 2], [3, 4, 5], [6]] and labels.tolist() == list(range(7))


def test_loader_fast_and_per_sample_paths_agree():
    ds = indexed_dataset(23)
    per_sample = PerSample(ds)
    fast = list(DataLoader(ds, batch_size=5, shuffle=True, seed=2))
    slow = list(DataLoader(per_sample, batch_size=5, shuffle=True, seed=2))
    assert per_sample.calls == 23
    for (xa, ya), (xb, yb) in zip(fast, slow, strict=True):
        assert xa.dtype == xb.dtype and ya.dtype == yb.dtype
        np.testing.assert_array_equal(xa.numpy(), xb.numpy())
        np.testing.assert_array_equal(ya.numpy(), yb.numpy())


def test_shuffle_every_sample_once_per_epoch():
    loader = DataLoader(indexed_dataset(103), batch_size=10, shuffle=True, seed=0)
    orders = [epoch_labels(loader) for _ in range(3)]
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), np.arange(103))
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])


def test_shuffle_order_is_a_function_of_seed_and_epoch():
    a = DataLoader(indexed_dataset(50), batch_size=8, shuffle=True, seed=5)
    b = DataLoader(indexed_dataset(50), batch_size=8, shuffle=True, seed=5)
    c = DataLoader(indexed_dataset(50), batch_size=8, shuffle=True, seed=6)
    first = [epoch_labels(a) for _ in range(3)]
    assert all(np.array_equal(x, epoch_labels(b)) for x in first)
    assert not np.array_equal(first[0], epoch_labels(c))
    # The documented rule: epoch k is the permutation of default_rng((seed, k)).
    np.testing.assert_array_equal(first[2], np.random.default_rng((5, 2)).permutation(50))


def test_set_epoch_resumes_the_uninterrupted_order():
    run = DataLoader(indexed_dataset(40), batch_size=6, shuffle=True, seed=1)
    uninterrupted = [epoch_labels(run) for _ in range(4)]
    resumed = DataLoader(indexed_dataset(40), batch_size=6, shuffle=True, seed=1)
    resumed.set_epoch(2)
    np.testing.assert_array_equal(epoch_labels(resumed), uninterrupted[2])
    np.testing.assert_array_equal(epoch_labels(resumed), uninterrupted[3])
    assert resumed.epoch == 4


def test_seed_none_follows_manual_seed():
    mdl.manual_seed(123)
    a = epoch_labels(DataLoader(indexed_dataset(30), batch_size=4, shuffle=True))
    mdl.manual_seed(123)
    b = epoch_labels(DataLoader(indexed_dataset(30), batch_size=4, shuffle=True))
    mdl.manual_seed(124)
    c = epoch_labels(DataLoader(indexed_dataset(30), batch_size=4, shuffle=True))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_shuffle_with_generator_continues_its_stream():
    loader = DataLoader(indexed_dataset(20), batch_size=5, shuffle=True, generator=np.random.default_rng(0))
    first, second = epoch_labels(loader), epoch_labels(loader)
    expected = np.random.default_rng(0)
    np.testing.assert_array_equal(first, expected.permutation(20))
    np.testing.assert_array_equal(second, expected.permutation(20))


def test_batch_size_none_yields_converted_samples():
    loader = DataLoader(indexed_dataset(3), batch_size=None)
    items = list(loader)
    assert len(loader) == 3 and len(items) == 3
    x, y = items[2]
    assert isinstance(x, mdl.Tensor) and x.shape == (3,) and int(y.item()) == 2


def test_custom_collate_gets_the_samples():
    loader = DataLoader(indexed_dataset(5), batch_size=2, collate_fn=lambda samples: [int(s[1]) for s in samples])
    assert list(loader) == [[0, 1], [2, 3], [4]]


def test_sampler_and_batch_sampler_arguments():
    ds = indexed_dataset(10)
    loader = DataLoader(ds, batch_size=3, sampler=[9, 8, 7, 6])
    assert epoch_labels(loader).tolist() == [9, 8, 7, 6]
    loader = DataLoader(ds, batch_sampler=[[1, 2], [0], [5, 5, 5]])
    assert [y.numpy().tolist() for _, y in loader] == [[1, 2], [0], [5, 5, 5]] and len(loader) == 3


def test_loader_argument_errors():
    ds = indexed_dataset(4)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ds, sampler=[0, 1], shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(ds, batch_size=2, batch_sampler=[[0]])
    with pytest.raises(ValueError, match="batch_size=None.*drop_last"):
        DataLoader(ds, batch_size=None, drop_last=True)
    with pytest.raises(ValueError, match="num_workers option should be non-negative"):
        DataLoader(ds, num_workers=-1)
    with pytest.raises(ValueError, match="prefetch_factor"):
        DataLoader(ds, prefetch_factor=2)
    with pytest.raises(ValueError, match="persistent_workers"):
        DataLoader(ds, persistent_workers=True)
    with pytest.raises(NotImplementedError, match="pin_memory"):
        DataLoader(ds, pin_memory=True)
    with pytest.raises(NotImplementedError, match="multiprocessing_context"):
        DataLoader(ds, num_workers=1, multiprocessing_context="spawn")
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(ValueError, match="seed or generator"):
        DataLoader(ds, seed=1, generator=np.random.default_rng())


# ---------------------------------------------------------------------------------------------- workers
@pytest.mark.parametrize("in_order", [True, False])
def test_workers_give_the_same_batches(in_order):
    ds = indexed_dataset(57)
    plain = [y.numpy() for _, y in DataLoader(ds, batch_size=8, shuffle=True, seed=4)]
    threaded = [y.numpy() for _, y in DataLoader(ds, batch_size=8, shuffle=True, seed=4, num_workers=3,
                                                  in_order=in_order)]
    if in_order:
        assert all(np.array_equal(a, b) for a, b in zip(plain, threaded, strict=True))
    else:
        np.testing.assert_array_equal(np.sort(np.concatenate(threaded)), np.arange(57))


def test_workers_random_transforms_are_reproducible(rng):
    images = rng.integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)

    class Images(Dataset):
        transform = T.Compose([T.RandomCrop(6, padding=1), T.RandomHorizontalFlip(), T.ToTensor()])

        def __getitem__(self, i):
            return self.transform(images[i]), i

        def __len__(self):
            return len(images)

    def run():
        loader = DataLoader(Images(), batch_size=4, num_workers=2, seed=8, persistent_workers=True)
        return [x.numpy() for epoch in range(2) for x, _ in loader]

    a, b = run(), run()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], a[10])  # epoch 1 batch 0 draws differently from epoch 0 batch 0


def test_worker_init_fn_and_worker_info():
    seen, lock = {}, threading.Lock()

    class Who(Dataset):
        def __getitem__(self, i):
            info = get_worker_info()
            with lock:
                seen.setdefault(info.id, set()).add(threading.get_ident())
            return i

        def __len__(self):
            return 12

    started = []
    loader = DataLoader(Who(), batch_size=2, num_workers=3, worker_init_fn=started.append)
    assert epoch_labels_plain(loader) == list(range(12))
    assert sorted(started) == [0, 1, 2] and sorted(seen) == [0, 1, 2]
    assert all(len(threads) == 1 for threads in seen.values())
    assert get_worker_info() is None


def epoch_labels_plain(loader) -> list[int]:
    return [int(v) for batch in loader for v in batch.numpy()]


def test_worker_errors_reach_the_caller():
    class Broken(Dataset):
        def __getitem__(self, i):
            if i == 5:
                raise KeyError("sample 5 is broken")
            return i

        def __len__(self):
            return 8

    with pytest.raises(KeyError, match="sample 5 is broken"):
        list(DataLoader(Broken(), batch_size=2, num_workers=2))


def test_worker_timeout():
    class Slow(Dataset):
        def __getitem__(self, i):
            time.sleep(0.5)
            return i

        def __len__(self):
            return 2

    with pytest.raises(RuntimeError, match="timed out after 0.05 seconds"):
        list(DataLoader(Slow(), batch_size=1, num_workers=1, timeout=0.05))


# ---------------------------------------------------------------------------------------------- samplers
def test_samplers():
    ds = indexed_dataset(10)
    assert list(SequentialSampler(ds)) == list(range(10))
    rs = RandomSampler(ds, seed=0)
    assert sorted(rs) == list(range(10)) and len(rs) == 10
    long = list(RandomSampler(ds, num_samples=25, seed=0))
    assert len(long) == 25 and sorted(long[:20]) == sorted(list(range(10)) * 2)
    drawn = list(RandomSampler(ds, replacement=True, num_samples=200, seed=0))
    assert len(drawn) == 200 and len(set(drawn)) == 10
    sub = SubsetRandomSampler([3, 5, 7], seed=1)
    assert sorted(sub) == [3, 5, 7] and len(sub) == 3
    bs = BatchSampler(range(7), 3, drop_last=False)
    assert list(bs) == [[0, 1, 2], [3, 4, 5], [6]] and len(bs) == 3
    assert len(BatchSampler(range(7), 3, drop_last=True)) == 2
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        RandomSampler(ds, num_samples=0)
