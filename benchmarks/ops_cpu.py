"""CPU micro-benchmark of the conv / pool / ReLU kernels and a few training steps, minidl against PyTorch.

    python benchmarks/ops_cpu.py                  # the ops of report 001's net, then the training steps
    python benchmarks/ops_cpu.py --ops            # only the ops
    python benchmarks/ops_cpu.py --steps          # only the training steps
    python benchmarks/ops_cpu.py --more           # also conv shapes of the other seed models

Each case is timed interleaved (minidl, torch, minidl, torch, ...) in one process, so a busy moment of this
shared machine hits both; the medians are printed in ms as ``minidl / torch``. PyTorch gets the cores minidl
gets (``torch.set_num_threads`` = Numba's thread count).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import minidl as mdl  # noqa: E402
import minidl.nn.functional as F  # noqa: E402
import minidl.optim as optim  # noqa: E402


def interleaved(fns, repeats: int, seconds: float) -> list[float]:
    """Median ms of each function in ``fns``, called in turn ``repeats`` times (or for ``seconds``)."""
    for fn in fns:
        fn()
        fn()
    times = [[] for _ in fns]
    start = time.perf_counter()
    while len(times[0]) < repeats or time.perf_counter() - start < seconds:
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        if len(times[0]) >= 10 * repeats:
            break
    return [1e3 * statistics.median(ts) for ts in times]


def op_case(name, m_fn, t_fn, shapes, repeats, seconds):
    import torch
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    mx = [mdl.tensor(a, requires_grad=True) for a in arrays]
    tx = [torch.tensor(a, requires_grad=True) for a in arrays]
    gy = rng.standard_normal(m_fn(*mx).shape).astype(np.float32)
    tgy = torch.from_numpy(gy)

    def m_fwd():
        with mdl.no_grad():
            m_fn(*mx)

    def t_fwd():
        with torch.no_grad():
            t_fn(*tx)

    def m_both():
        m_fn(*mx).backward(gy)

    def t_both():
        t_fn(*tx).backward(tgy)

    mf, tf = interleaved([m_fwd, t_fwd], repeats, seconds)
    mb, tb = interleaved([m_both, t_both], repeats, seconds)
    print(f"{name:44s} fwd {mf:7.2f} / {tf:7.2f}   fwd+bwd {mb:7.2f} / {tb:7.2f}", flush=True)


def op_cases(more: bool):
    import torch.nn.functional as TF
    conv = (lambda **k: (lambda x, w, b: F.conv2d(x, w, b, **k)), lambda **k: (lambda x, w, b: TF.conv2d(x, w, b, **k)))
    pool = (lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2))
    N = 128
    cases = [
        ("conv1 128x1x28x28 w32x1x3x3", conv[0](), conv[1](), [(N, 1, 28, 28), (32, 1, 3, 3), (32,)]),
        ("relu 128x32x26x26", F.relu, TF.relu, [(N, 32, 26, 26)]),
        ("maxpool2 128x32x26x26", *pool, [(N, 32, 26, 26)]),
        ("conv2 128x32x13x13 w32x32x3x3", conv[0](), conv[1](), [(N, 32, 13, 13), (32, 32, 3, 3), (32,)]),
        ("relu 128x32x11x11", F.relu, TF.relu, [(N, 32, 11, 11)]),
        ("maxpool2 128x32x11x11", *pool, [(N, 32, 11, 11)]),
    ]
    if more:
        cases += [
            ("cifar 64x3x32x32 w24x3x3x3 p1", conv[0](padding=1), conv[1](padding=1), [(64, 3, 32, 32), (24, 3, 3, 3), (24,)]),
            ("cifar 64x48x8x8 w96x48x3x3 p1", conv[0](padding=1), conv[1](padding=1), [(64, 48, 8, 8), (96, 48, 3, 3), (96,)]),
            ("vgg 64x64x32x32 w64x64x3x3 p1", conv[0](padding=1), conv[1](padding=1), [(64, 64, 32, 32), (64, 64, 3, 3), (64,)]),
            ("vgg 64x512x2x2 w512x512x3x3 p1", conv[0](padding=1), conv[1](padding=1), [(64, 512, 2, 2), (512, 512, 3, 3), (512,)]),
            ("1x1 64x256x8x8 w128x256x1x1", conv[0](), conv[1](), [(64, 256, 8, 8), (128, 256, 1, 1), (128,)]),
            ("seg 4x3x256x256 w32x3x3x3 p1", conv[0](padding=1), conv[1](padding=1), [(4, 3, 256, 256), (32, 3, 3, 3), (32,)]),
            ("seg 4x64x64x64 w64x64x3x3 p1", conv[0](padding=1), conv[1](padding=1), [(4, 64, 64, 64), (64, 64, 3, 3), (64,)]),
            ("lenet 4x3x32x32 w6x3x5x5", conv[0](), conv[1](), [(4, 3, 32, 32), (6, 3, 5, 5), (6,)]),
            ("maxpool2 64x64x32x32", *pool, [(64, 64, 32, 32)]),
            ("maxpool3s2p1 64x64x32x32", lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1), [(64, 64, 32, 32)]),
        ]
    return cases


def step_case(name: str, batch: int, repeats: int, seconds: float):
    import torch
    import torch.nn.functional as TF

    import interleaved as pair
    from steps import train_step
    m_model, t_model, x, y = pair.build_pair(name, batch)
    m_opt = optim.Adam(m_model.parameters(), lr=1e-3)
    t_opt = torch.optim.Adam(t_model.parameters(), lr=1e-3)
    mx, my, tx, ty = mdl.tensor(x), mdl.tensor(y), torch.from_numpy(x), torch.from_numpy(y)
    m, t = interleaved([lambda: train_step(F, m_model, m_opt, mx, my),
                        lambda: train_step(TF, t_model, t_opt, tx, ty)], repeats, seconds)
    print(f"{'step ' + name + ' batch ' + str(batch):44s} {m:7.2f} / {t:7.2f}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", action="store_true")
    parser.add_argument("--steps", action="store_true")
    parser.add_argument("--more", action="store_true")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    import numba
    import torch
    torch.set_num_threads(numba.get_num_threads())
    both = not (args.ops or args.steps)
    print(f"numba threads {numba.get_num_threads()} (layer {numba.config.THREADING_LAYER}),"
          f" torch threads {torch.get_num_threads()}; ms, minidl / torch")
    if args.ops or both:
        for case in op_cases(args.more):
            op_case(*case, args.repeats, args.seconds)
    if args.steps or both:
        step_case("fashion_001", 128, args.repeats, args.seconds)
        step_case("fashion_001", 256, args.repeats, args.seconds)
        step_case("lenet", 4, 5 * args.repeats, args.seconds)


if __name__ == "__main__":
    main()
