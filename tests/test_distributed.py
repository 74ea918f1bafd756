"""minidl.distributed: DistributedDataParallel, DistributedSampler, SyncBatchNorm, and failures, on MPI.

The multi-process tests start ``mpiexec -n 2`` on this machine's loopback (tests/mpi_worker.py) and skip
cleanly where mpi4py or mpiexec is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minidl as mdl
import minidl.distributed as dist
import minidl.nn.functional as F
from minidl.autograd import queue_callback
from minidl.data import RandomSampler
from minidl.ops.norm import SyncBatchNorm

WORKER = Path(__file__).with_name("mpi_worker.py")
ROOT = WORKER.parent.parent


def mpiexec() -> str | None:
    here = Path(sys.executable).with_name("mpiexec")
    return str(here) if here.exists() else shutil.which("mpiexec")


needs_mpi = pytest.mark.skipif(not dist.is_available() or mpiexec() is None,
                               reason="mpi4py or mpiexec missing (pip install -e '.[distributed]')")


def run_job(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([mpiexec(), "-n", "2", sys.executable, str(WORKER), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)


@needs_mpi
@pytest.mark.parametrize("args", [["--bn", "none"], ["--bn", "sync"], ["--bn", "sync", "--bucket-mb", "0.0001"]],
                         ids=["no-batch-norm", "sync-batch-norm", "sync-batch-norm-buckets"])
def test_two_ranks_train_as_one_process(args):
    """k SGD steps (into a second epoch, so set_epoch's reshuffle is used) on 2 ranks with a global batch of
    8 leave the weights of one process trained on the same global batches, to float64 rounding."""
    proc = run_job("--job", "equal", *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["world"] == 2
    assert result["moved"] > 0.05  # the weights did change
    assert result["max_diff"] < 1e-12, result["diffs"]


@needs_mpi
def test_fit_on_two_ranks_is_fit_in_one_process():
    """training.fit under mpiexec splits each batch of the loader between the ranks, averages the gradients,
    reduces the epoch's figures and shards the validation set: the history and weights are one process's."""
    sys.path.insert(0, str(WORKER.parent))
    import mpi_worker
    alone = mpi_worker.fit_job()
    proc = run_job("--job", "fit")
    assert proc.returncode == 0, proc.stderr[-2000:]
    together = json.loads(proc.stdout.strip().splitlines()[-1])
    for column, values in alone["history"].items():
        np.testing.assert_allclose(together["history"][column], values, rtol=1e-12, err_msg=column)
    for k, w in alone["weights"].items():
        np.testing.assert_allclose(together["weights"][k], w, rtol=0, atol=1e-12, err_msg=k)


@needs_mpi
def test_batch_norm_per_rank_is_not_the_global_batch_norm():
    """As in PyTorch, a plain BatchNorm2d normalises each rank's slice on its own: not one process's result
    (SyncBatchNorm is the way to that)."""
    proc = run_job("--job", "equal", "--bn", "rank")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["max_diff"] > 1e-3


@needs_mpi
@pytest.mark.parametrize("job, message", [("raise", "rank 1 of 2 stopped with an error; ending every rank"),
                                          ("die", "BAD TERMINATION")])
def test_a_failing_rank_ends_the_job(job, message):
    """Rank 1 raises, or is killed with SIGKILL, after one step: rank 0 would wait in its next Allreduce
    forever; the job must instead end, with an error status and a message, well within the timeout."""
    start = time.perf_counter()
    proc = run_job("--job", job, timeout=60)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    if job == "raise":
        assert "ValueError: a deliberate failure on rank 1" in proc.stderr
    assert time.perf_counter() - start < 30


def test_sampler_deals_equal_shards_that_cover_the_dataset_once_per_epoch():
    for n, world in ((40, 2), (41, 2), (10, 3), (7, 4)):
        shards = [list(dist.DistributedSampler(range(n), num_replicas=world, rank=r, seed=3)) for r in range(world)]
        assert len({len(s) for s in shards}) == 1 and len(shards[0]) == -(-n // world)
        together = [i for s in shards for i in s]
        assert sorted(set(together)) == list(range(n))  # every sample, and only padding repeats
        assert len(together) - n == (-n) % world
    # the k-th batches of the ranks together are the k-th batch of one process with the same seed
    n, world, b = 40, 2, 4
    order = list(RandomSampler(range(n), seed=3))
    shards = [list(dist.DistributedSampler(range(n), num_replicas=world, rank=r, seed=3)) for r in range(world)]
    for k in range(n // (world * b)):
        union = sorted(i for s in shards for i in s[k * b:(k + 1) * b])
        assert union == sorted(order[k * world * b:(k + 1) * world * b])


def test_sampler_reshuffles_with_set_epoch_and_drop_last_cuts():
    s = dist.DistributedSampler(range(20), num_replicas=2, rank=1, seed=0)
    first = list(s)
    assert list(s) == first  # the same epoch again
    s.set_epoch(1)
    assert list(s) != first
    assert len(dist.DistributedSampler(range(21), num_replicas=2, rank=0, drop_last=True)) == 10
    with pytest.raises(ValueError, match="Invalid rank 2"):
        dist.DistributedSampler(range(4), num_replicas=2, rank=2)
    assert list(dist.DistributedSampler(range(6), num_replicas=2, rank=1, shuffle=False)) == [1, 3, 5]


def test_without_a_process_group(monkeypatch):
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(key, raising=False)
    assert not dist.launched_by_mpi()
    monkeypatch.setenv("PMI_SIZE", "1")  # mpiexec -n 1: one process, nothing to split
    assert not dist.launched_by_mpi()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert dist.launched_by_mpi()
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="Default process group has not been initialized"):
        dist.get_rank()
    assert dist.rank_and_size() == (0, 1)
    with pytest.raises(ValueError, match="unknown backend 'nccl'"):
        dist.init_process_group("nccl")


def test_sync_batch_norm_on_one_rank_is_batch_norm(rng, torch):
    """With all_sum the identity (one process), the synchronized op is BatchNorm: forward, backward and
    running statistics equal minidl's batch_norm and PyTorch's; and its gradients pass gradcheck in float64
    with a random upstream gradient."""
    x = rng.standard_normal((3, 4, 5, 2))
    W, b = rng.standard_normal(4), rng.standard_normal(4)
    gy = rng.standard_normal(x.shape)
    results = []
    for op in ("sync", "plain"):
        xs, Ws, bs = (mdl.tensor(a, requires_grad=True) for a in (x, W, b))
        rm, rv = mdl.zeros(4, dtype=mdl.float64), mdl.ones(4, dtype=mdl.float64)
        if op == "sync":
            y = SyncBatchNorm.apply(xs, Ws, bs, rm.array, rv.array, 0.1, 1e-5, lambda a: a.copy())
        else:
            y = F.batch_norm(xs, rm, rv, Ws, bs, training=True, momentum=0.1, eps=1e-5)
        y.backward(mdl.tensor(gy))
        results.append([y.numpy(), xs.grad.numpy(), Ws.grad.numpy(), bs.grad.numpy(), rm.numpy(), rv.numpy()])
    tx, tW, tb = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    trm, trv = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tW, tb, training=True, momentum=0.1, eps=1e-5)
    ty.backward(torch.tensor(gy))
    results.append([t.detach().numpy() for t in (ty, tx.grad, tW.grad, tb.grad, trm, trv)])
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_allclose(a, b_, rtol=1e-10, atol=1e-12)
    inputs = [mdl.tensor(a, requires_grad=True) for a in (x, W, b)]
    assert mdl.gradcheck(lambda x, W, b: SyncBatchNorm.apply(x, W, b, None, None, 0.1, 1e-5, lambda a: a.copy()),
                         inputs)


def test_post_accumulate_grad_hook_and_queued_callback():
    events = []
    w = mdl.tensor(np.ones(3), requires_grad=True)
    handle = w.register_post_accumulate_grad_hook(lambda t: events.append(("hook", float(t.grad.sum()))))
    (w * 2).sum().backward()
    (w * w).sum().backward()  # accumulates: grad 2 + 2 = 4 per entry
    assert events == [("hook", 6.0), ("hook", 12.0)]
    handle.remove()

    def with_callback(t):
        queue_callback(lambda: events.append("end of backward"))
    w.register_post_accumulate_grad_hook(with_callback)
    (w * 3).sum().backward()
    assert events[-1] == "end of backward" and len(events) == 3
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (w * 2).register_post_accumulate_grad_hook(print)


FASHION = ROOT.parent / "shared" / "data" / "fashion-mnist"
if os.environ.get("MINIDL_DATA"):
    FASHION = Path(os.environ["MINIDL_DATA"]) / "fashion-mnist"


@needs_mpi
@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(),
                    reason=f"the real Fashion-MNIST files are not in {FASHION}")
def test_an_experiment_runs_unchanged_under_mpirun_and_resumes(tmp_path):
    """``mpiexec -n 2 python experiments/fashion_cnn.py``: rank 0 writes the one run folder (config.json
    states the global and per-rank batch), prints once; ``--resume`` under mpiexec continues the run."""
    out = tmp_path / "run"
    script = [sys.executable, str(ROOT / "experiments" / "fashion_cnn.py"), "--train-subset", "2000",
              "--val-size", "200", "--batch-size", "32", "--lr", "0.002", "--data-dir", str(FASHION),
              "--out", str(out), "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    first = subprocess.run([mpiexec(), "-n", "2", *script, "--epochs", "1"], capture_output=True, text=True,
                           timeout=600, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["distributed"]["world_size"] == 2
    assert config["distributed"]["global_batch_size"] == 32 and config["distributed"]["batch_size_per_rank"] == 16
    assert first.stdout.count("epoch 1/1") == 1  # rank 0 alone prints
    for name in ("metrics.csv", "checkpoint.npz", "report.md", "summary.json", "confusion_matrix.png"):
        assert (out / name).stat().st_size > 0, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written beside it
    assert json.loads((out / "summary.json").read_text())["test_accuracy"] > 0.6

    second = subprocess.run([mpiexec(), "-n", "2", *script, "--epochs", "2", "--resume"], capture_output=True,
                            text=True, timeout=600, env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "1 of 2 epochs done" in second.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and len((out / "metrics.csv").read_text().splitlines()) == 3
