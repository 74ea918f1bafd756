"""Run under ``mpiexec -n 2`` by tests/test_distributed.py: one job per ``--job``, a JSON line from rank 0.

- ``equal``: k SGD steps of a small float64 conv net (without batch norm, or with it per rank or synchronized) under
  DistributedDataParallel with a DistributedSampler; rank 0 also trains the same net alone on the same
  global batches, and prints the largest difference of the weights (and of the batch norm statistics).
- ``fit``: :func:`fit_job`, ``training.fit`` with a validation set, its history and weights from rank 0.
- ``die`` / ``raise``: rank 1 kills itself (SIGKILL) or raises during training; the job must end.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys

import numpy as np

import minidl as mdl
import minidl.distributed as dist
import minidl.nn as nn
import minidl.nn.functional as F
from minidl import optim
from minidl.data import DataLoader, TensorDataset


def net(bn: str) -> nn.Module:
    """conv -> [batch norm] -> ReLU -> max pool -> linear, float64, the same weights on every call."""
    mdl.manual_seed(0)
    norm = nn.Identity() if bn == "none" else nn.BatchNorm2d(4)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), norm, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 3 * 3, 3)).double()
    return nn.SyncBatchNorm.convert_sync_batchnorm(model) if bn == "sync" else model


def train(model, loader, steps: int, epochs: int):
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    done = 0
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch) if hasattr(loader.sampler, "set_epoch") else loader.set_epoch(epoch)
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            done += 1
            if done == steps:
                return


def fit_job() -> dict:
    """Two epochs of ``training.fit`` (with a validation set) on the no-batch-norm net: the history and the
    weights. Run under mpiexec it trains data-parallel; run in a plain process, alone."""
    from minidl import training
    rng = np.random.default_rng(2)
    train = TensorDataset(mdl.tensor(rng.standard_normal((36, 2, 8, 8))), mdl.tensor(rng.integers(0, 3, 36)))
    val = TensorDataset(mdl.tensor(rng.standard_normal((11, 2, 8, 8))), mdl.tensor(rng.integers(0, 3, 11)))
    model = net("none")
    history = training.fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                           DataLoader(train, batch_size=6, shuffle=True, seed=3), DataLoader(val, batch_size=4),
                           epochs=2, progress=False, log=lambda message: None)
    return {"history": {k: history[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc")},
            "weights": {k: v.ravel().tolist() for k, v in model.state_dict().items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--job", choices=["equal", "fit", "die", "raise"], required=True)
    parser.add_argument("--bn", choices=["none", "rank", "sync"], default="sync",
                        help="no batch norm, per rank (PyTorch's default), or synchronized")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--bucket-mb", type=float)
    args = parser.parse_args()
    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.job == "fit":
        result = fit_job()
        if rank == 0:
            print(json.dumps(result))
        return
    rng = np.random.default_rng(1)
    data = TensorDataset(mdl.tensor(rng.standard_normal((40, 2, 8, 8))), mdl.tensor(rng.integers(0, 3, 40)))
    global_batch = 8
    model = dist.DistributedDataParallel(net(args.bn), bucket_cap_mb=args.bucket_mb)
    sampler = dist.DistributedSampler(data, seed=5)
    loader = DataLoader(data, batch_size=global_batch // world, sampler=sampler)
    if args.job in ("die", "raise"):
        opt = optim.SGD(model.parameters(), lr=0.1)
        for step, (x, y) in enumerate(loader):
            if rank == 1 and step == 1:
                if args.job == "die":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise ValueError("a deliberate failure on rank 1")
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return
    train(model, loader, args.steps, epochs=3)
    if rank == 0:
        alone = net("none" if args.bn == "none" else "rank")  # one process: batch norm over the global batch
        train(alone, DataLoader(data, batch_size=global_batch, shuffle=True, seed=5), args.steps, epochs=3)
        mine, theirs = model.module.state_dict(), alone.state_dict()
        diffs = {k: float(np.abs(mine[k] - theirs[k]).max()) for k in theirs
                 if mine[k].dtype.kind == "f"}
        print(json.dumps({"world": world, "max_diff": max(diffs.values()), "diffs": diffs,
                          "moved": float(np.abs(mine["0.weight"] - net("none").state_dict()["0.weight"]).max())}))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
