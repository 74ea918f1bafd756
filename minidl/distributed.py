"""Data-parallel training over MPI, with PyTorch's names: one process per share of the cores or per machine.

Launch any script with ``mpirun -n N python script.py``; each of the N processes (ranks) holds the whole
model and trains on its own slice of every batch:

    import minidl.distributed as dist
    dist.init_process_group()                        # from the MPI world: rank and world size
    model = dist.DistributedDataParallel(net)        # rank 0's parameters and buffers sent to every rank
    sampler = dist.DistributedSampler(train_set, seed=0)
    loader = DataLoader(train_set, batch_size=global_batch // dist.get_world_size(), sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()  # the gradients arrive averaged over the ranks
            optimizer.step()                         # every rank takes the same step

Why the result is the single-process one: the sampler deals rank r the positions r, r + N, r + 2N, ... of the
epoch's permutation, so the k-th batches of the N ranks together are the k-th batch of one process reading
the same permutation with the global batch; the mean loss over the global batch is the average of the
ranks' mean losses, so its gradient is the average of theirs, which one Allreduce computes.
``minidl.training.fit`` does all of this itself when the process group is initialized, so every
experiment runs unchanged under ``mpirun`` (see ``experiments/common.py``).

The MPI is mpi4py's (``pip install -e ".[distributed]"`` brings mpi4py and MPICH from the package index).
A rank that raises stops every rank (``MPI_Abort``) after printing its error, and ``mpirun`` ends the job
when a rank dies, so a failure never leaves the others waiting in a collective.
"""
from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .data.sampler import Sampler, draw_seed
from .nn.module import Module
from .tensor import Tensor

__all__ = ["DistributedDataParallel", "DistributedSampler", "ReduceOp", "all_reduce", "all_sum", "barrier",
           "broadcast", "destroy_process_group", "get_rank", "get_world_size", "init_process_group",
           "is_available", "is_initialized", "launched_by_mpi"]

_comm = None  # the communicator of the process group, once initialized


class ReduceOp:
    """How :func:`all_reduce` combines the ranks' values (PyTorch's names)."""
    SUM, AVG, MAX, MIN = "sum", "avg", "max", "min"


def is_available() -> bool:
    """Whether mpi4py (and so an MPI library) can be imported."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def launched_by_mpi() -> bool:
    """Whether this process is one of several started by ``mpirun``/``mpiexec`` (MPICH's or Open MPI's)."""
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        value = os.environ.get(key, "")
        if value.isdigit() and int(value) > 1:
            return True
    return False


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise RuntimeError("minidl.distributed needs mpi4py and an MPI library: pip install -e \".[distributed]\" "
                           "(mpi4py and MPICH from the package index)") from err
    return MPI


def init_process_group(backend: str = "mpi", *, threads: int | None = None) -> None:
    """Join the MPI world: every process started by ``mpirun`` calls this once, before anything collective.

    Args:
        backend: ``"mpi"`` (the only one on the CPU).
        threads: minidl threads per rank (``minidl.set_num_threads``). Default: the machine's cores shared
            evenly among the ranks on it, unless the environment already fixes a thread count.
    Raises:
        RuntimeError: mpi4py is missing, or the group is already initialized.
        ValueError: an unknown backend.
    """
    global _comm
    if backend != "mpi":
        raise ValueError(f"init_process_group: unknown backend {backend!r}; minidl runs on 'mpi'")
    if _comm is not None:
        raise RuntimeError("init_process_group: trying to initialize the default process group twice")
    MPI = _mpi()
    _comm = MPI.COMM_WORLD.Dup()
    from .backend import threads as _threads
    if threads is None and not any(k in os.environ for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS")):
        local = _comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
        threads = max(1, _threads._core_count() // local)
    if threads is not None:
        _threads.set_num_threads(threads)
    _stop_every_rank_on_error()


def _stop_every_rank_on_error() -> None:
    """An uncaught exception on any rank prints its error and aborts the whole job (MPI_Abort), so the
    other ranks do not wait forever in their next collective."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        if _comm is None or _comm.Get_size() == 1:
            return previous(kind, value, tb)
        sys.stderr.write(f"minidl.distributed: rank {_comm.Get_rank()} of {_comm.Get_size()} stopped with an "
                         f"error; ending every rank\n")
        traceback.print_exception(kind, value, tb)
        sys.stderr.flush()
        abort(1)

    sys.excepthook = hook


def abort(code: int = 1) -> None:
    """End every rank of the job now with exit status ``code`` (MPI_Abort)."""
    if _comm is not None and _comm.Get_size() > 1:
        _comm.Abort(code)
    sys.exit(code)


def is_initialized() -> bool:
    return _comm is not None


def _group():
    if _comm is None:
        raise RuntimeError("Default process group has not been initialized, please make sure to call "
                           "init_process_group.")
    return _comm


def get_rank() -> int:
    """This process's rank, 0 .. world size - 1."""
    return _group().Get_rank()


def get_world_size() -> int:
    """How many processes train together."""
    return _group().Get_size()


def rank_and_size() -> tuple[int, int]:
    """(rank, world size), or (0, 1) when no process group is initialized: for code that runs either way."""
    return (0, 1) if _comm is None else (_comm.Get_rank(), _comm.Get_size())


def barrier() -> None:
    """Wait until every rank has reached this point."""
    _group().Barrier()


def destroy_process_group() -> None:
    """Leave the process group (the MPI world stays up until the process exits)."""
    global _comm
    if _comm is not None:
        _comm.Free()
        _comm = None


def _array(t):
    return t.array if isinstance(t, Tensor) else t


def broadcast(tensor, src: int = 0) -> None:
    """Overwrite ``tensor`` (a Tensor or a NumPy array) on every rank with rank ``src``'s, in place."""
    a = _array(tensor)
    buf = np.ascontiguousarray(a)
    _group().Bcast(buf, root=src)
    if buf is not a:
        a[...] = buf


def all_reduce(tensor, op: str = ReduceOp.SUM) -> None:
    """Combine ``tensor`` (a Tensor or a NumPy array) over the ranks, in place on every rank."""
    MPI = _mpi()
    a = _array(tensor)
    ops = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.MAX: MPI.MAX, ReduceOp.MIN: MPI.MIN}
    if op not in ops:
        raise ValueError(f"all_reduce: unknown op {op!r}; use ReduceOp.SUM, AVG, MAX or MIN")
    buf = np.ascontiguousarray(a)
    _group().Allreduce(MPI.IN_PLACE, buf, op=ops[op])
    if op == ReduceOp.AVG:
        buf /= _group().Get_size()
    if buf is not a:
        a[...] = buf


def all_sum(a: np.ndarray) -> np.ndarray:
    """The sum of the array ``a`` over the ranks (a new array; ``a`` is left as it is)."""
    out = np.array(a, copy=True, order="C")
    all_reduce(out)
    return out


def all_gather(a: np.ndarray) -> list[np.ndarray]:
    """Every rank's array ``a`` (shapes may differ along the first axis), in rank order, on every rank."""
    comm = _group()
    a = np.ascontiguousarray(a)
    counts = comm.allgather(a.shape[0])
    out = np.empty((sum(counts),) + a.shape[1:], a.dtype)
    row = int(np.prod(a.shape[1:], dtype=np.int64))
    comm.Allgatherv(a, [out, [c * row for c in counts]])
    return np.split(out, np.cumsum(counts)[:-1])


# ------------------------------------------------------------------------------------------- sampler
class DistributedSampler(Sampler):
    """Each rank's share of a dataset's indices, reshuffled every epoch: PyTorch's ``DistributedSampler``.

    The epoch's order is a permutation drawn from ``numpy.random.default_rng((seed, epoch))`` (the order a
    ``RandomSampler`` with that seed gives), padded by repeating its start to a multiple of the world size
    (or cut to one, with ``drop_last``); rank r takes the positions r, r + N, r + 2N, ... Every rank gets
    the same number of indices, and together they cover the dataset once per epoch (plus the padding).

    Args:
        dataset: only its length is used.
        num_replicas: the world size (default: the process group's).
        rank: this rank (default: the process group's).
        shuffle: a new permutation each epoch (else the indices in order).
        seed: the permutations' seed; every rank must pass the same. Default: one drawn from minidl's
            generator (so equal on every rank after the same ``minidl.manual_seed``).
        drop_last: cut the tail that does not divide evenly instead of padding.
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None, shuffle: bool = True,
                 seed: int | None = None, drop_last: bool = False) -> None:
        if num_replicas is None:
            num_replicas = get_world_size()
        if rank is None:
            rank = get_rank()
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: Invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.drop_last = shuffle, drop_last
        self.seed = draw_seed() if seed is None else int(seed)
        self.epoch = 0
        n = len(dataset)
        self.num_samples = n // num_replicas if drop_last else -(-n // num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s permutation next: call it at the start of every epoch, on every rank."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        order = (np.random.default_rng((self.seed, self.epoch)).permutation(n) if self.shuffle
                 else np.arange(n))
        if self.total_size > n:
            order = np.concatenate([order] * (-(-self.total_size // n)))
        order = order[:self.total_size]
        return iter(order[self.rank::self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples


# ------------------------------------------------------------------------------------------- the model
class DistributedDataParallel(Module):
    """Wrap a model so that backward leaves on every rank the gradients averaged over all ranks.

    At construction rank 0's parameters and buffers are copied to every rank (one Bcast per dtype). After a
    forward through the wrapper in training, each parameter's hook marks it ready as backward accumulates
    its gradient; when backward has finished, the gradients are packed into one flat buffer per dtype,
    summed over the ranks with one Allreduce each, divided by the world size and handed back as ``.grad``
    (views of that buffer). With ``bucket_cap_mb`` the gradients go in buckets of at most that size, each
    started (non-blocking Iallreduce) as soon as all its gradients have arrived, to overlap the rest of
    the backward; whether that pays depends on the MPI's progress: measure (benchmarks/distributed.py).

    Args:
        module: the model (every rank builds the same architecture).
        broadcast_buffers: also copy rank 0's buffers (batch norm's running statistics) to every rank
            before each forward in training mode, as PyTorch does.
        bucket_cap_mb: the largest bucket, in MB; None for one bucket per dtype.
        find_unused_parameters: accepted for PyTorch's signature; every parameter must get a gradient
            each step (a parameter without one stops the step with an error naming it).
    """

    def __init__(self, module: Module, device_ids=None, broadcast_buffers: bool = True,
                 bucket_cap_mb: float | None = None, find_unused_parameters: bool = False) -> None:
        super().__init__()
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.world_size = get_world_size()
        self._params = [p for p in module.parameters() if p.requires_grad]
        self._sync = True
        self._expect = False  # a forward through the wrapper has asked for this backward's averaging
        self._sync_arrays([p.array for p in module.parameters()] + self._buffer_arrays())
        self._buckets = self._make_buckets(bucket_cap_mb)
        self._bucket_of = {id(p): i for i, bucket in enumerate(self._buckets) for p in bucket}
        self._begin_step()
        for p in self._params:
            p.register_post_accumulate_grad_hook(self._on_grad)

    def _buffer_arrays(self) -> list:
        return [b.array for b in self.module.buffers() if b is not None]

    def _sync_arrays(self, arrays: list) -> None:
        """Rank 0's values into ``arrays`` on every rank: one Bcast per dtype of a packed buffer."""
        by_dtype: dict = {}
        for a in arrays:
            by_dtype.setdefault(a.dtype, []).append(a)
        for group in by_dtype.values():
            flat = np.concatenate([a.reshape(-1) for a in group])
            _group().Bcast(flat, root=0)
            at = 0
            for a in group:
                a[...] = flat[at:at + a.size].reshape(a.shape)
                at += a.size

    def _make_buckets(self, cap_mb: float | None) -> list[list]:
        """The parameters in reverse order (about the order their gradients arrive), grouped by dtype and cut
        at ``cap_mb``."""
        buckets, current, size = [], {}, {}
        for p in reversed(self._params):
            d = p.array.dtype
            if cap_mb is not None and current.get(d) and size[d] + p.array.nbytes > cap_mb * 1e6:
                buckets.append(current.pop(d))
                size[d] = 0
            current.setdefault(d, []).append(p)
            size[d] = size.get(d, 0) + p.array.nbytes
        buckets.extend(current.values())
        return buckets

    def _begin_step(self) -> None:
        self._ready = [set() for _ in self._buckets]
        self._pending: list = []  # (bucket, flat buffer, request or None), in launch order
        self._launched: set = set()
        self._queued = False

    def _on_grad(self, p: Tensor) -> None:
        if not self._expect:
            return
        from .autograd import queue_callback
        if not self._queued:
            queue_callback(self._finish)
            self._queued = True
        i = self._bucket_of[id(p)]
        self._ready[i].add(id(p))
        if len(self._buckets) > 1 and len(self._ready[i]) == len(self._buckets[i]):
            self._launch(i, blocking=False)

    def _launch(self, i: int, blocking: bool) -> None:
        MPI = _mpi()
        bucket = self._buckets[i]
        flat = np.concatenate([p.grad.array.reshape(-1) for p in bucket])
        if blocking:
            _group().Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
            request = None
        else:
            request = _group().Iallreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        self._pending.append((bucket, flat, request))
        self._launched.add(i)

    def _finish(self) -> None:
        """At the end of backward: every gradient summed over the ranks, divided by their number."""
        self._expect = False
        missing = [name for name, p in self.module.named_parameters()
                   if id(p) in self._bucket_of and id(p) not in self._ready[self._bucket_of[id(p)]]]
        if missing:
            self._begin_step()
            raise RuntimeError(f"DistributedDataParallel: no gradient reached {', '.join(missing)} in this "
                               "backward pass: every parameter must take part in the loss on every rank (or "
                               "set requires_grad=False on those that never do)")
        for i in range(len(self._buckets)):
            if i not in self._launched:
                self._launch(i, blocking=True)
        for bucket, flat, request in self._pending:
            if request is not None:
                request.Wait()
            flat /= self.world_size
            at = 0
            for p in bucket:
                p.grad = Tensor(flat[at:at + p.array.size].reshape(p.array.shape))
                at += p.array.size
        self._begin_step()

    def forward(self, *args, **kwargs):
        from .autograd import is_grad_enabled
        if self.training and self.broadcast_buffers:
            buffers = self._buffer_arrays()
            if buffers:
                self._sync_arrays(buffers)
        self._expect = self._sync and is_grad_enabled()
        return self.module(*args, **kwargs)

    @contextmanager
    def no_sync(self):
        """Inside this block, backward accumulates gradients on each rank without averaging (gradient
        accumulation); the first backward after it averages everything accumulated."""
        self._sync = False
        try:
            yield
        finally:
            self._sync = True


# ------------------------------------------------------------------------------ what fit and evaluate use
def shard_training_loader(loader):
    """This rank's part of a training DataLoader: the same dataset, collate function and workers, the
    global batch split evenly among the ranks by a :class:`DistributedSampler` with the loader's own seed
    (so the ranks' batches together are the batches the loader would give one process)."""
    from .data import DataLoader, RandomSampler, SequentialSampler
    world = get_world_size()
    if not isinstance(loader, DataLoader) or not isinstance(loader.sampler, (RandomSampler, SequentialSampler)) \
            or loader.batch_size is None or getattr(loader.sampler, "replacement", False):
        raise ValueError("fit: under MPI the training loader must be a minidl DataLoader with batch_size and "
                         "shuffle=True/False (or the same with a DistributedSampler you made yourself)")
    if loader.batch_size % world:
        raise ValueError(f"fit: the batch size {loader.batch_size} does not split evenly among {world} ranks: "
                         f"use a batch size divisible by {world}")
    shuffle = isinstance(loader.sampler, RandomSampler)
    sampler = DistributedSampler(loader.dataset, shuffle=shuffle, drop_last=loader.drop_last,
                                 seed=loader.sampler.seed if shuffle else 0)
    return DataLoader(loader.dataset, batch_size=loader.batch_size // world, sampler=sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn, drop_last=loader.drop_last,
                      seed=loader.seed)


def shard_evaluation_loader(loader):
    """This rank's contiguous slice of an evaluation DataLoader that reads its dataset in order (rank 0 the
    first part, ...), so the ranks' outputs, gathered in rank order, are the whole set in its order; None
    when the loader is not such a one (then every rank evaluates all of it)."""
    from .data import DataLoader, SequentialSampler, Subset
    if not isinstance(loader, DataLoader) or not isinstance(loader.sampler, SequentialSampler) \
            or loader.batch_size is None:
        return None
    rank, world = get_rank(), get_world_size()
    n = len(loader.dataset)
    part = range(rank * n // world, (rank + 1) * n // world)
    return DataLoader(Subset(loader.dataset, list(part)), batch_size=loader.batch_size,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn)
