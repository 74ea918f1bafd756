"""minidl against PyTorch on the CPU: training steps of every seed model, and per-op micro-benchmarks.

    python benchmarks/vs_torch.py                 # everything; writes benchmarks/RESULTS.md and RESULTS.png
    python benchmarks/vs_torch.py --models lenet  # a subset
    python benchmarks/vs_torch.py --quick         # fewer repetitions
    env -u OPENBLAS_CORETYPE python benchmarks/vs_torch.py --no-ops --no-memory \
        --out benchmarks/RESULTS-openblas-cpu.md  # with the OpenBLAS kernels chosen for this CPU

Both libraries get the same network (the PyTorch one is made from the same ``models/`` source, see
``twins.py``), the same weights, the same batch, and the same optimizer (Adam, lr 1e-3). The first loss must
agree before anything is timed. Steps are timed interleaved (minidl, torch, minidl, torch, ...) in one
process, so a slow moment of this shared machine hits both; the median of each is reported, with the ratio
``torch_time / minidl_time`` (> 1 means minidl is faster). Peak memory is measured in a fresh child process
per library and model (growth of the peak resident set over three training steps, after a warm-up
that loads each library's compiled code; see ``memory_child``).
"""
from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# Idle OpenMP threads sleep in both libraries: interleaved A/B steps would otherwise measure each library
# while the other's threads still spin on the same cores (see minidl/backend/threads.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402 - before minidl, so its OpenBLAS/Numba settings do not touch PyTorch's

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "experiments"))

import minidl as mdl  # noqa: E402
import minidl.nn.functional as F  # noqa: E402
import minidl.optim as optim  # noqa: E402
from common import machine as run_machine  # noqa: E402
from twins import copy_weights, torch_module  # noqa: E402

# name: (models file, class, constructor kwargs, batch, input (C, H, W), segmentation?)
MODELS = {
    "fashion000": ("fashion", "Report000Net", {}, 256, (1, 28, 28), False),
    "fashion001": ("fashion", "Report001Net", {}, 256, (1, 28, 28), False),
    "cifar003": ("cifar", "Report003Net", {}, 64, (3, 32, 32), False),
    "cifar003_best": ("cifar", "Report003Net", {"batch_norm": True}, 64, (3, 32, 32), False),
    "lenet": ("cifar", "LeNet", {}, 4, (3, 32, 32), False),
    "vgg16": ("cifar", "VGG16", {}, 64, (3, 32, 32), False),
    "seg001": ("segmentation", "Report001SegNet", {}, 4, (3, 256, 256), True),
    "seg000": ("segmentation", "Report000SegNet", {}, 2, (3, 128, 128), True),
}


def machine() -> dict:
    """CPU model, core count and library versions, for the results header."""
    import numba
    from minidl.backend import threads
    return {**run_machine(), "numpy": np.__version__, "numba": numba.__version__, "torch": torch.__version__,
            "minidl": mdl.__version__, "date": datetime.date.today().isoformat(),
            "openblas_core": threads.openblas_core(),
            "command": " ".join(["python", "benchmarks/vs_torch.py", *sys.argv[1:]]),
            "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE")}


def gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """float32 GEMM throughput of ``numpy.matmul`` on n×n matrices with OpenBLAS on every core (best of
    ``repeats``): the machine's GEMM speed, whatever minidl's own thread settings are."""
    from minidl.backend import threads
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    threads._set_openblas_threads(os.cpu_count())
    try:
        a @ b
        best = min(_timed(lambda: a @ b) for _ in range(repeats))
    finally:
        threads._set_openblas_threads(1)  # back to minidl's setting (see minidl/backend/threads.py)
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def build_pair(name: str, seed: int = 0):
    """The minidl model, its PyTorch twin with the same weights, and a batch (x, y) as NumPy arrays."""
    import importlib
    file, cls, kwargs, batch, shape, seg = MODELS[name]
    mdl.manual_seed(seed)
    m_model = getattr(importlib.import_module(f"models.{file}"), cls)(**kwargs)
    t_model = getattr(torch_module(file), cls)(**kwargs)
    copy_weights(m_model, t_model)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    classes = 5 if seg else 10
    y = rng.integers(0, classes, size=(batch,) + (shape[1:] if seg else ())).astype(np.int64)
    return m_model, t_model, x, y


def minidl_step(model, opt, x, y):
    """One training step in minidl; returns the loss."""
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def torch_step(model, opt, x, y):
    """The same step in PyTorch."""
    import torch.nn.functional as TF
    opt.zero_grad()
    loss = TF.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def bench_model(name: str, min_steps: int, seconds: float) -> dict:
    """Time interleaved training steps of one model in both libraries."""
    m_model, t_model, x_np, y_np = build_pair(name)
    m_opt = optim.Adam(m_model.parameters(), lr=1e-3)
    t_opt = torch.optim.Adam(t_model.parameters(), lr=1e-3)
    mx, my = mdl.tensor(x_np), mdl.tensor(y_np)
    tx, ty = torch.from_numpy(x_np), torch.from_numpy(y_np)

    m_loss, t_loss = minidl_step(m_model, m_opt, mx, my), torch_step(t_model, t_opt, tx, ty)
    if not np.isclose(m_loss, t_loss, rtol=1e-4, atol=1e-5):
        raise AssertionError(f"{name}: first losses differ: minidl {m_loss:.6f}, torch {t_loss:.6f}")
    minidl_step(m_model, m_opt, mx, my)
    torch_step(t_model, t_opt, tx, ty)

    m_times, t_times, start = [], [], time.perf_counter()
    while len(m_times) < min_steps or time.perf_counter() - start < seconds:
        m_times.append(_timed(lambda: minidl_step(m_model, m_opt, mx, my)))
        t_times.append(_timed(lambda: torch_step(t_model, t_opt, tx, ty)))
        if len(m_times) >= 200:
            break
    m_med, t_med = statistics.median(m_times), statistics.median(t_times)
    batch = x_np.shape[0]
    return {"model": name, "batch": batch, "first_loss_minidl": m_loss, "first_loss_torch": t_loss,
            "steps": len(m_times), "minidl_ms": 1e3 * m_med, "torch_ms": 1e3 * t_med, "ratio": t_med / m_med,
            "minidl_img_s": batch / m_med, "torch_img_s": batch / t_med}


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def memory_child(lib: str, name: str) -> None:
    """Run in a child process: print how far training steps raise the resident set (activations, gradients,
    optimizer state, workspace, and what the allocator keeps of them).

    Loading a library's compiled code is not part of a step, so it is done first, for both libraries alike:
    one forward and backward of the same model on a 2-sample batch (this loads minidl's Numba kernels
    from their on-disk cache, about 100 MB of LLVM and machine code, and makes PyTorch set up its kernels),
    after which the gradients are dropped, and one Adam step on a spare one-element parameter (PyTorch
    imports modules on its first optimizer step, about 70 MB). What the warm-up freed is returned to the
    system (``malloc_trim``; both libraries allocate CPU memory through glibc's malloc), so the steps
    below count the memory they need even where the warm-up had already used it. Then the baseline
    resident set is read, the peak (VmHWM) is reset (``5`` into /proc/self/clear_refs), the Adam
    optimizer is made and three full-batch steps run.
    """
    torch.set_num_threads(os.cpu_count())
    m_model, t_model, x_np, y_np = build_pair(name)
    if lib == "minidl":
        del t_model
        model, make_opt, as_tensor, step = m_model, optim.Adam, mdl.tensor, minidl_step
    else:
        del m_model
        model, make_opt, as_tensor, step = t_model, torch.optim.Adam, torch.from_numpy, torch_step
    warm = model(as_tensor(x_np[:2]))
    warm.sum().backward()
    del warm
    model.zero_grad(set_to_none=True)
    spare = as_tensor(np.ones(1, np.float32)).requires_grad_()  # Adam's code paths, on a spare parameter
    (spare * 2).sum().backward()
    make_opt([spare]).step()
    del spare
    ctypes.CDLL(None).malloc_trim(0)  # hand what the warm-up freed back to the system, for both libraries
    x, y = as_tensor(x_np), as_tensor(y_np)
    base = _status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    opt = make_opt(model.parameters())
    for _ in range(3):
        step(model, opt, x, y)
    print(json.dumps({"peak_mb": _status_mb("VmHWM") - base}))


def bench_memory(name: str) -> dict:
    out = {}
    for lib in ("minidl", "torch"):
        proc = subprocess.run([sys.executable, __file__, "--memory-child", lib, name], capture_output=True,
                              text=True, check=True)
        out[f"{lib}_peak_mb"] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"]
    return out


# ---------------------------------------------------------------------------------------------- per-op
def op_cases():
    """(label, minidl fn, torch fn, input shapes) for the ops and shapes the seed models use."""
    import torch.nn.functional as TF
    return [
        ("conv2d 256x1x28x28, 32x1x3x3", lambda x, w: F.conv2d(x, w), lambda x, w: TF.conv2d(x, w),
         [(256, 1, 28, 28), (32, 1, 3, 3)]),
        ("conv2d 256x32x13x13, 32x32x3x3", lambda x, w: F.conv2d(x, w), lambda x, w: TF.conv2d(x, w),
         [(256, 32, 13, 13), (32, 32, 3, 3)]),
        ("conv2d 64x128x16x16, 128x128x3x3 p1", lambda x, w: F.conv2d(x, w, padding=1),
         lambda x, w: TF.conv2d(x, w, padding=1), [(64, 128, 16, 16), (128, 128, 3, 3)]),
        ("conv2d 4x3x256x256, 32x3x3x3 p1", lambda x, w: F.conv2d(x, w, padding=1),
         lambda x, w: TF.conv2d(x, w, padding=1), [(4, 3, 256, 256), (32, 3, 3, 3)]),
        ("conv_transpose2d 4x64x128x128, 64x32x3x3 s2", lambda x, w: F.conv_transpose2d(x, w, stride=2),
         lambda x, w: TF.conv_transpose2d(x, w, stride=2), [(4, 64, 128, 128), (64, 32, 3, 3)]),
        ("conv_transpose2d 2x256x122x122, 256x128x3x3", lambda x, w: F.conv_transpose2d(x, w),
         lambda x, w: TF.conv_transpose2d(x, w), [(2, 256, 122, 122), (256, 128, 3, 3)]),
        ("max_pool2d 256x32x26x26 k2", lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2),
         [(256, 32, 26, 26)]),
        ("max_pool2d 4x32x256x256 k2", lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2),
         [(4, 32, 256, 256)]),
        ("batch_norm 64x48x12x12 train", _bn(F), _bn(TF), [(64, 48, 12, 12), (48,), (48,)]),
        ("cross_entropy 256x10", lambda x: F.cross_entropy(x, _labels((256,), 10, mdl)),
         lambda x: TF.cross_entropy(x, _labels((256,), 10, None)), [(256, 10)]),
        ("cross_entropy 4x5x256x256", lambda x: F.cross_entropy(x, _labels((4, 256, 256), 5, mdl)),
         lambda x: TF.cross_entropy(x, _labels((4, 256, 256), 5, None)), [(4, 5, 256, 256)]),
        # Tiny inputs: the fixed cost of one op (argument checks, graph recording, dispatch), which is what
        # LeNet at batch 4 mostly pays.
        ("overhead: add 1 + 1", lambda a, b: a + b, lambda a, b: a + b, [(1,), (1,)]),
        ("overhead: relu 4x8", lambda x: F.relu(x), lambda x: TF.relu(x), [(4, 8)]),
        ("overhead: linear 4x8 -> 8", lambda x, w, b: F.linear(x, w, b), lambda x, w, b: TF.linear(x, w, b),
         [(4, 8), (8, 8), (8,)]),
        ("overhead: conv2d 1x1x4x4, 1x1x3x3", lambda x, w: F.conv2d(x, w), lambda x, w: TF.conv2d(x, w),
         [(1, 1, 4, 4), (1, 1, 3, 3)]),
        ("overhead: max_pool2d 1x1x4x4 k2", lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2),
         [(1, 1, 4, 4)]),
    ]


def _bn(functional):
    def fn(x, w, b):
        C = x.shape[1]
        lib = mdl if functional is F else torch
        return functional.batch_norm(x, lib.zeros(C), lib.ones(C), w, b, training=True)
    return fn


def _labels(shape, classes, lib):
    y = np.random.default_rng(0).integers(0, classes, size=shape)
    if lib is None:
        return torch.from_numpy(y)
    return mdl.tensor(y)


def bench_op(label, m_fn, t_fn, shapes, min_steps, seconds) -> dict:
    """Forward and forward+backward times of one op in both libraries, interleaved."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    m_in = [mdl.tensor(a, requires_grad=True) for a in arrays]
    t_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    m_out = m_fn(*m_in)
    gy_np = rng.standard_normal(m_out.shape).astype(np.float32)
    gy_t = torch.from_numpy(gy_np)

    def m_fwd():
        with mdl.no_grad():
            m_fn(*m_in)

    def t_fwd():
        with torch.no_grad():
            t_fn(*t_in)

    def m_both():
        m_fn(*m_in).backward(gy_np)

    def t_both():
        t_fn(*t_in).backward(gy_t)

    res = {"op": label}
    for kind, (mf, tf) in {"fwd": (m_fwd, t_fwd), "fwd+bwd": (m_both, t_both)}.items():
        mf(), tf()
        m_t, t_t, start = [], [], time.perf_counter()
        while len(m_t) < min_steps or time.perf_counter() - start < seconds:
            m_t.append(_timed(mf))
            t_t.append(_timed(tf))
            if len(m_t) >= 100:
                break
        res[f"{kind}_minidl_ms"] = 1e3 * statistics.median(m_t)
        res[f"{kind}_torch_ms"] = 1e3 * statistics.median(t_t)
        res[f"{kind}_ratio"] = statistics.median(t_t) / statistics.median(m_t)
    return res


# ---------------------------------------------------------------------------------------------- report
def seg000_gemm_share(row: dict, gflops: float) -> float:
    """Share of the machine's GEMM throughput that a seg000 training step reaches: the FLOPs of its
    convolutions, counted as direct (im2col) convolutions, per second of the whole step. Winograd does
    fewer multiplications than that count, so the share can pass 100%."""
    file, cls, kwargs, batch, (C, H, W), _ = MODELS["seg000"]
    flops, size = 0, H
    for c_in, c_out in ((3, 64), (64, 128), (128, 256)):
        size -= 2
        flops += 2 * batch * c_out * size * size * c_in * 9
    for c_in, c_out in ((256, 128), (128, 64), (64, 5)):
        flops += 2 * batch * c_in * size * size * c_out * 9
        size += 2
    step_flops = 3 * flops  # forward, input gradient, weight gradient
    return step_flops / (row["minidl_ms"] / 1e3) / 1e9 / gflops


def write_results(info, gflops, model_rows, op_rows, path: Path) -> None:
    lines = [
        "# minidl vs PyTorch (CPU)", "",
        f"Measured {info['date']} on {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
        f"NumPy {info['numpy']}, Numba {info['numba']}, PyTorch {info['torch']} "
        f"(`torch.set_num_threads({info['cores']})`).", "",
        f"Command: `{info['command']}`. Ratio = torch time / minidl time (> 1: minidl faster). "
        "Training step = forward, cross-entropy, backward, Adam step; medians of interleaved steps. "
        "Peak memory = how far three training steps (Adam made just before them) raise the resident set above "
        "its level with the model and batch made and each library's compiled code loaded by a forward and "
        "backward on 2 samples (peak reset before the steps), in a fresh process per library and model. "
        "Both libraries run with "
        "`OMP_WAIT_POLICY=PASSIVE` so neither's idle threads spin on the cores the other needs.", "",
        f"float32 GEMM throughput (`numpy.matmul`, 2048x2048): **{gflops:.1f} GFLOP/s**, OpenBLAS kernels "
        f"`{info['openblas_core']}` (`OPENBLAS_CORETYPE={info['openblas_coretype_env'] or '(unset)'}`).", "",
        "## Training steps", "",
        "| model | batch | first loss minidl / torch | minidl ms | torch ms | ratio | minidl img/s | torch img/s "
        "| minidl peak MB | torch peak MB | mem ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in model_rows:
        mem = (f"{r['minidl_peak_mb']:.0f} | {r['torch_peak_mb']:.0f} | "
               f"{r['minidl_peak_mb'] / max(r['torch_peak_mb'], 1e-9):.2f}") if "minidl_peak_mb" in r else "- | - | -"
        lines.append(f"| {r['model']} | {r['batch']} | {r['first_loss_minidl']:.5f} / {r['first_loss_torch']:.5f} | "
                     f"{r['minidl_ms']:.1f} | {r['torch_ms']:.1f} | **{r['ratio']:.2f}** | "
                     f"{r['minidl_img_s']:.0f} | {r['torch_img_s']:.0f} | {mem} |")
    if model_rows:
        geo = float(np.exp(np.mean([np.log(r["ratio"]) for r in model_rows])))
        lines += ["", f"Geometric mean of the ratios: **{geo:.2f}**; lowest: "
                      f"{min(model_rows, key=lambda r: r['ratio'])['model']} "
                      f"({min(r['ratio'] for r in model_rows):.2f})."]
        seg = [r for r in model_rows if r["model"] == "seg000"]
        if seg:
            lines.append(f"seg000 reaches {100 * seg000_gemm_share(seg[0], gflops):.0f}% of the GEMM throughput above "
                         "(its convolutions' FLOPs counted as direct convolutions, per second of the whole "
                         "step; Winograd multiplies less, so this can pass 100%).")
        if info["openblas_coretype_env"]:
            lines += ["", f"`OPENBLAS_CORETYPE={info['openblas_coretype_env']}` in the environment chose OpenBLAS's "
                          "kernels; PyTorch's convolutions (oneDNN) ignore it and use what the CPU has. The "
                          "same steps with OpenBLAS's own choice: `env -u OPENBLAS_CORETYPE python "
                          "benchmarks/vs_torch.py --no-ops --no-memory --out benchmarks/RESULTS-openblas-cpu.md`."]
    if op_rows:
        lines += ["", "## Ops (forward; forward + backward)", "",
                  "| op | fwd minidl ms | fwd torch ms | fwd ratio | f+b minidl ms | f+b torch ms | f+b ratio |",
                  "|---|---|---|---|---|---|---|"]
        for r in op_rows:
            lines.append(f"| {r['op']} | {r['fwd_minidl_ms']:.3g} | {r['fwd_torch_ms']:.3g} | {r['fwd_ratio']:.2f} | "
                         f"{r['fwd+bwd_minidl_ms']:.3g} | {r['fwd+bwd_torch_ms']:.3g} | {r['fwd+bwd_ratio']:.2f} |")
    path.write_text("\n".join(lines) + "\n")


def plot_ratios(model_rows, op_rows, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [1, 1.6]})
    for ax, rows, key, label, title in ((axes[0], model_rows, "ratio", "model", "training step"),
                                        (axes[1], op_rows, "fwd+bwd_ratio", "op", "op forward + backward")):
        names = [r[label] for r in rows]
        values = [r[key] for r in rows]
        ax.barh(names, values, color=["tab:green" if v >= 1 else "tab:red" for v in values])
        ax.axvline(1.0, color="k", lw=1)
        ax.set_xlabel("torch time / minidl time (> 1: minidl faster)")
        ax.set_title(title)
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--no-ops", action="store_true", help="skip the per-op micro-benchmarks")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--memory-child", nargs=2, metavar=("LIB", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(*args.memory_child)
        return

    torch.set_num_threads(os.cpu_count())
    info = machine()
    gflops = gemm_gflops()
    print(f"{info['cpu']}, {info['cores']} cores; numpy.matmul float32 2048²: {gflops:.1f} GFLOP/s "
          f"(OpenBLAS {info['openblas_core']} kernels)", flush=True)
    min_steps, seconds = (3, 1.0) if args.quick else (10, 8.0)
    model_rows = []
    for name in args.models:
        row = bench_model(name, min_steps, seconds)
        if not args.no_memory:
            row.update(bench_memory(name))
        model_rows.append(row)
        print(json.dumps(row), flush=True)
    op_rows = []
    if not args.no_ops:
        for label, m_fn, t_fn, shapes in op_cases():
            op_rows.append(bench_op(label, m_fn, t_fn, shapes, min_steps, seconds / 4))
            print(json.dumps(op_rows[-1]), flush=True)
    write_results(info, gflops, model_rows, op_rows, args.out)
    if model_rows and op_rows:
        plot_ratios(model_rows, op_rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
