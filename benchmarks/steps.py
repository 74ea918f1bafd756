"""Training steps of one seed model in one library, alone in this process: the user's view.

    python benchmarks/steps.py minidl kth_best --batch 64 --dir /tmp/bench   # prints one JSON line
    python benchmarks/steps.py torch kth_best --batch 64 --dir /tmp/bench

This process imports only the library it measures, with that library's own defaults: minidl with what
``import minidl`` sets up (its thread and allocator settings are part of minidl), PyTorch with
``torch.set_num_threads(cores)`` and nothing else. ``benchmarks/vs_torch.py`` runs it once per library,
model and round, alternating the libraries, and compares.

The net is built by minidl from ``models/`` with seed 0; the minidl process saves its weights and the
batch to ``--dir`` and the PyTorch process loads them into the same net made from the same source
(``twins.py``), so both train the same weights on the same batch. What is printed:

- ``check_loss``: the loss in eval mode before any step (dropout off), which both libraries must agree on;
- ``first_loss``: the loss of the first training step;
- ``peak_mb``: how far three training steps (Adam made just before them) raise the resident set above its
  level after a warm-up that loads the library's compiled code (a forward and backward on 2 samples), with
  what the warm-up freed handed back to the system first (``malloc_trim``);
- ``times``: seconds of each later step (forward, cross-entropy, backward, Adam), at least ``--steps`` of
  them and for at least ``--seconds``.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

# name: (models.SEED_MODELS name, knobs, batch, input (C, H, W), classes, segmentation?). The reports' nets.
MODELS = {
    "fashion_000": ("fashion_000", {}, 256, (1, 28, 28), 10, False),
    "fashion_001": ("fashion_001", {}, 256, (1, 28, 28), 10, False),
    "kth": ("kth", {}, 64, (3, 32, 32), 10, False),  # report 003's default net, its batch 64
    "kth_best": ("kth", {"filters": (64, 128, 256), "kernels": (5, 3, 3), "leaky": True, "batch_norm": True,
                         "dropout": 0.3}, 64, (3, 32, 32), 10, False),  # report 003's best net
    "lenet": ("lenet", {}, 4, (3, 32, 32), 10, False),  # report 004, its batch 4
    "vgg16": ("vgg16", {}, 64, (3, 32, 32), 10, False),
    "seg_001": ("seg_001", {}, 4, (3, 256, 256), 5, True),
    "seg_000": ("seg_000", {}, 2, (3, 128, 128), 5, True),
}


def train_step(functional, model, opt, x, y) -> float:
    """One training step, the same in both libraries: forward, cross-entropy (``functional`` is
    ``minidl.nn.functional`` or ``torch.nn.functional``), backward, optimizer step; returns the loss."""
    opt.zero_grad()
    loss = functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


class Library:
    """What differs between the two libraries, behind the same names."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "minidl":
            import minidl
            import minidl.nn.functional as F
            import minidl.optim as optim
            from minidl.backend import threads
            self.lib, self.F, self.Adam, self.as_tensor = minidl, F, optim.Adam, minidl.tensor
            self.no_grad = minidl.no_grad
            self.openblas_core = threads.openblas_core()
            self.version = minidl.__version__
        else:
            import torch
            import torch.nn.functional as F
            torch.set_num_threads(os.cpu_count())
            self.lib, self.F, self.Adam, self.as_tensor = torch, F, torch.optim.Adam, torch.from_numpy
            self.no_grad = torch.no_grad
            self.openblas_core = None
            self.version = torch.__version__

    def build(self, name: str, batch: int, folder: Path):
        """The model with the shared weights, and the shared batch (x, y) as this library's tensors."""
        registry_name, knobs, _, shape, classes, seg = MODELS[name]
        data = folder / f"{name}.npz"
        if self.name == "minidl":
            import minidl
            from models import build
            minidl.manual_seed(0)
            model = build(registry_name, **knobs)
            if not data.exists():  # the first minidl process writes what the others share
                rng = np.random.default_rng(0)
                samples = 16 if seg else 512  # larger batches repeat them
                x = rng.standard_normal((samples,) + shape).astype(np.float32)
                y = rng.integers(0, classes, size=(samples,) + (shape[1:] if seg else ())).astype(np.int64)
                state = {f"param.{k}": v for k, v in model.state_dict().items()}
                source = np.array([type(model).__module__.rsplit(".", 1)[1], type(model).__name__])
                tmp = folder / f"{name}.tmp.npz"
                np.savez(tmp, x=x, y=y, source=source, **state)
                os.replace(tmp, data)
        saved = np.load(data)
        if self.name != "minidl":  # the same net from the same models/ file, without importing minidl
            import torch
            from twins import torch_module
            file, cls = (str(v) for v in saved["source"])
            model = getattr(torch_module(file), cls)(**knobs)
            state = {k[len("param."):]: torch.from_numpy(saved[k].copy())
                     for k in saved.files if k.startswith("param.")}
            model.load_state_dict(state, strict=True)
        x, y = saved["x"], saved["y"]
        reps = -(-batch // x.shape[0])
        x, y = np.concatenate([x] * reps)[:batch], np.concatenate([y] * reps)[:batch]
        return model, self.as_tensor(np.ascontiguousarray(x)), self.as_tensor(np.ascontiguousarray(y))

    def step(self, model, opt, x, y) -> float:
        return train_step(self.F, model, opt, x, y)


def gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """float32 GEMM throughput of ``numpy.matmul`` on n x n matrices with OpenBLAS on every core (best of
    ``repeats``): the machine's GEMM speed, whatever minidl's own thread settings are."""
    from minidl.backend import threads
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    threads._set_openblas_threads(os.cpu_count())
    try:
        a @ b
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
    finally:
        threads._set_openblas_threads(1)  # back to minidl's setting (see minidl/backend/threads.py)
    return 2 * n ** 3 / best / 1e9


def measure(lib_name: str, name: str, batch: int, folder: Path, min_steps: int, seconds: float,
            gemm: bool = False) -> dict:
    lib = Library(lib_name)
    gflops = gemm_gflops() if gemm and lib_name == "minidl" else None
    model, x, y = lib.build(name, batch, folder)
    model.eval()
    with lib.no_grad():
        check_loss = lib.F.cross_entropy(model(x), y).item()
    model.train()
    # Warm-up: load the compiled code (and PyTorch's optimizer modules, on a spare parameter), then give
    # back what it freed, so the peak below counts what the steps need.
    warm = model(x[:2])
    warm.sum().backward()
    del warm
    model.zero_grad(set_to_none=True)
    spare = lib.as_tensor(np.ones(1, np.float32)).requires_grad_()
    (spare * 2).sum().backward()
    lib.Adam([spare]).step()
    del spare
    ctypes.CDLL(None).malloc_trim(0)
    base = status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM)
    opt = lib.Adam(model.parameters(), lr=1e-3)
    first_loss = lib.step(model, opt, x, y)
    for _ in range(2):
        lib.step(model, opt, x, y)
    peak_mb = status_mb("VmHWM") - base
    times, start = [], time.perf_counter()
    while len(times) < min_steps or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        lib.step(model, opt, x, y)
        times.append(time.perf_counter() - t0)
        if len(times) >= 5000:
            break
    return {"lib": lib_name, "model": name, "batch": batch, "check_loss": check_loss, "first_loss": first_loss,
            "peak_mb": peak_mb, "times": times, "version": lib.version, "gemm_gflops": gflops,
            "openblas_core": lib.openblas_core,
            "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lib", choices=["minidl", "torch"])
    parser.add_argument("model", choices=list(MODELS))
    parser.add_argument("--batch", type=int, help="default: the model's batch in MODELS")
    parser.add_argument("--dir", type=Path, required=True, help="where the shared weights and batch are kept")
    parser.add_argument("--steps", type=int, default=10, help="at least this many timed steps")
    parser.add_argument("--seconds", type=float, default=5.0, help="and for at least this long")
    parser.add_argument("--gemm", action="store_true", help="minidl: also measure numpy.matmul's GEMM throughput")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    batch = args.batch or MODELS[args.model][2]
    print(json.dumps(measure(args.lib, args.model, batch, args.dir, args.steps, args.seconds, args.gemm)), flush=True)


if __name__ == "__main__":
    main()
