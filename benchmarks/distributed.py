"""Data-parallel throughput on MPI: report 003's best net on 1 and 2 ranks of one thread each, and the cost of
the gradients' Allreduce, with a projection to 8 and 64 nodes.

    python benchmarks/distributed.py            # writes benchmarks/DISTRIBUTED.md
    python benchmarks/distributed.py --quick

Each configuration is its own ``mpiexec`` job (rounds alternated), every rank with ``minidl.set_num_threads(1)``:
- 1 rank, batch 64;
- 2 ranks, global batch 64 (32 per rank): the same training, the work split (strong scaling);
- 2 ranks, 64 per rank (global 128): twice the work in the time of one (weak scaling, how data parallelism
  is used to go faster through an epoch).
Throughput is images per second of the whole job (global batch / step time; the step is the slowest rank's,
timed between barriers). The Allreduce is timed alone on the gradients' flat buffer (float32, the net's
parameter count), 2 ranks, as the step does it once.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

KNOBS = {"filters": (64, 128, 256), "kernels": (5, 3, 3), "leaky": True, "batch_norm": True, "dropout": 0.3}


def worker(batch: int, steps: int, threads: int) -> None:
    """One rank of a job: time training steps of the net under DistributedDataParallel, and Allreduces."""
    import minidl as mdl
    import minidl.distributed as dist
    import minidl.nn.functional as F
    from minidl import optim
    from models import build
    dist.init_process_group(threads=threads)
    rank, world = dist.get_rank(), dist.get_world_size()
    mdl.manual_seed(0)
    model = dist.DistributedDataParallel(build("kth", **KNOBS))
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(rank)
    x = mdl.tensor(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32))
    y = mdl.tensor(rng.integers(0, 10, batch))

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        dist.barrier()
        t0 = time.perf_counter()
        step()
        dist.barrier()
        times.append(time.perf_counter() - t0)
    params = sum(p.numel() for p in model.parameters())
    buf = np.ones(params, np.float32)
    reduce_times = []
    for _ in range(20):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(buf)
        reduce_times.append(time.perf_counter() - t0)
    if rank == 0:
        step_s = statistics.median(times)
        print(json.dumps({"world": world, "batch_per_rank": batch, "threads": threads, "step_s": step_s,
                          "images_per_s": world * batch / step_s, "params": params,
                          "allreduce_s": statistics.median(reduce_times)}), flush=True)


def mpiexec() -> str:
    here = Path(sys.executable).with_name("mpiexec")
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if found is None:
        sys.exit("benchmarks/distributed.py: mpiexec not found: pip install -e \".[distributed]\"")
    return found


def job(ranks: int, batch: int, steps: int, threads: int = 1) -> dict:
    command = [mpiexec(), "-n", str(ranks), sys.executable, __file__, "--worker", "--batch", str(batch),
               "--steps", str(steps), "--threads", str(threads)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def projection(step_node_s: float, batch: int, params: int, nodes: int, bandwidth: float, latency: float) -> float:
    """Speedup of ``nodes`` machines over one, each training ``batch`` images per step in ``step_node_s``
    (weak scaling), with a ring Allreduce of the float32 gradients: 2 (p - 1) / p * bytes / bandwidth plus
    2 (p - 1) latencies, not overlapped with the backward."""
    p = nodes
    allreduce = 2 * (p - 1) / p * 4 * params / bandwidth + 2 * (p - 1) * latency
    return p * step_node_s / (step_node_s + allreduce)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "DISTRIBUTED.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.batch, args.steps, args.threads)
        return
    rounds, steps = (1, 8) if args.quick else (args.rounds, 20)
    configs = {"1 rank, batch 64": (1, 64, 1), "2 ranks, global batch 64 (32 each)": (2, 32, 1),
               "2 ranks, 64 each (global 128)": (2, 64, 1), "1 rank, 2 threads, batch 64": (1, 64, 2)}
    results = {name: [] for name in configs}
    for _ in range(rounds):
        for name, (ranks, batch, threads) in configs.items():
            results[name].append(job(ranks, batch, steps, threads))
            print(name, json.dumps(results[name][-1]), flush=True)
    rows = {name: {"images_per_s": statistics.median(r["images_per_s"] for r in res),
                   "step_s": statistics.median(r["step_s"] for r in res),
                   "allreduce_s": statistics.median(r["allreduce_s"] for r in res), "params": res[0]["params"]}
            for name, res in results.items()}
    base = rows["1 rank, batch 64"]["images_per_s"]
    lines = ["# Data-parallel training on MPI", "",
             f"Measured {datetime.date.today().isoformat()} with `python benchmarks/distributed.py` on "
             f"{os.cpu_count()} cores (MPICH through mpi4py, one machine: shared memory); report 003's best net "
             f"({rows['1 rank, batch 64']['params']:,} parameters), SGD step, medians of {rounds} alternated "
             f"jobs of {steps} steps.", "",
             "| job | step ms | images/s | vs 1 rank, 1 thread | Allreduce of the gradients, ms |",
             "|---|---|---|---|---|"]
    for name, r in rows.items():
        reduce = f"{1e3 * r['allreduce_s']:.2f}" if name.startswith("2") else "-"
        lines.append(f"| {name} | {1e3 * r['step_s']:.1f} | {r['images_per_s']:.0f} | "
                     f"**{r['images_per_s'] / base:.2f}x** | {reduce} |")
    two = rows["2 ranks, 64 each (global 128)"]
    node = rows["1 rank, 2 threads, batch 64"]
    lines += ["", f"The Allreduce takes {1e3 * two['allreduce_s']:.2f} ms of a {1e3 * two['step_s']:.0f} ms step "
                  f"({100 * two['allreduce_s'] / two['step_s']:.1f}%) between two ranks of one machine.", "",
              "## Projection to more machines", "",
              "Each node trains 64 images per step with all its cores in the time measured above for 1 rank with 2 "
              f"threads ({1e3 * node['step_s']:.0f} ms), then the float32 gradients "
              f"({4 * node['params'] / 1e6:.1f} MB) go through a ring Allreduce (2 (p-1)/p of the bytes over "
              "the link, 2 (p-1) latencies; not overlapped with the backward). Speedup over one node:", "",
              "| network | 8 nodes | 64 nodes |", "|---|---|---|"]
    for label, bandwidth, latency in (("10 Gb/s Ethernet (1.25 GB/s, 50 us)", 1.25e9, 50e-6),
                                      ("100 Gb/s InfiniBand (12.5 GB/s, 5 us)", 12.5e9, 5e-6)):
        s8 = projection(node["step_s"], 64, node["params"], 8, bandwidth, latency)
        s64 = projection(node["step_s"], 64, node["params"], 64, bandwidth, latency)
        lines.append(f"| {label} | {s8:.1f}x | {s64:.1f}x |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
