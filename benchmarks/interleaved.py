"""Both libraries in this one process, their steps interleaved: the quick A/B mode, not the user's view.

    python benchmarks/vs_torch.py --models kth_best   # vs_torch.py's last table comes from here
    python benchmarks/vs_torch.py --ops               # and the per-op micro-benchmarks

Both libraries get the same network, weights, batch and optimizer (Adam, lr 1e-3); the eval-mode losses must
agree before anything is timed. Steps alternate (minidl, torch, minidl, ...) in one process, so a slow moment
of the machine hits both, and both run with ``OMP_WAIT_POLICY=PASSIVE`` so neither's idle OpenMP threads spin
on the cores the other needs. That setting is minidl's default but not PyTorch's, and slows PyTorch's small
steps: this mode is for quick before/after comparisons of minidl's own changes; ``vs_torch.py`` without
``--interleaved`` measures each library alone in its own process (``steps.py``).
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see the docstring
import torch  # noqa: E402 - before minidl, so its OpenBLAS/Numba settings do not touch PyTorch's

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import minidl as mdl  # noqa: E402
import minidl.nn.functional as F  # noqa: E402
import minidl.optim as optim  # noqa: E402
from models import build  # noqa: E402
from steps import MODELS, train_step  # noqa: E402
from twins import copy_weights, torch_module  # noqa: E402

torch.set_num_threads(os.cpu_count())


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def build_pair(name: str, batch: int | None = None, seed: int = 0):
    """The minidl model, its PyTorch twin with the same weights, and a batch (x, y) as NumPy arrays."""
    registry_name, knobs, default_batch, shape, classes, seg = MODELS[name]
    batch = batch or default_batch
    mdl.manual_seed(seed)
    m_model = build(registry_name, **knobs)
    cls = type(m_model)
    t_model = getattr(torch_module(cls.__module__.rsplit(".", 1)[1]), cls.__name__)(**knobs)
    copy_weights(m_model, t_model)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    y = rng.integers(0, classes, size=(batch,) + (shape[1:] if seg else ())).astype(np.int64)
    return m_model, t_model, x, y


def bench_model(name: str, min_steps: int, seconds: float, batch: int | None = None) -> dict:
    """Interleaved training steps of one model in both libraries: a row of vs_torch.py's table."""
    import torch.nn.functional as TF
    m_model, t_model, x_np, y_np = build_pair(name, batch)
    mx, my = mdl.tensor(x_np), mdl.tensor(y_np)
    tx, ty = torch.from_numpy(x_np), torch.from_numpy(y_np)
    m_model.eval(), t_model.eval()
    with mdl.no_grad(), torch.no_grad():
        m_check, t_check = F.cross_entropy(m_model(mx), my).item(), TF.cross_entropy(t_model(tx), ty).item()
    if not np.isclose(m_check, t_check, rtol=1e-4, atol=1e-5):
        raise AssertionError(f"{name}: eval-mode losses differ: minidl {m_check:.6f}, torch {t_check:.6f}")
    m_model.train(), t_model.train()
    m_opt = optim.Adam(m_model.parameters(), lr=1e-3)
    t_opt = torch.optim.Adam(t_model.parameters(), lr=1e-3)
    for _ in range(2):
        train_step(F, m_model, m_opt, mx, my)
        train_step(TF, t_model, t_opt, tx, ty)
    m_times, t_times, start = [], [], time.perf_counter()
    while len(m_times) < min_steps or time.perf_counter() - start < seconds:
        m_times.append(_timed(lambda: train_step(F, m_model, m_opt, mx, my)))
        t_times.append(_timed(lambda: train_step(TF, t_model, t_opt, tx, ty)))
        if len(m_times) >= 200:
            break
    return {"model": name, "batch": x_np.shape[0], "check_loss_minidl": m_check, "check_loss_torch": t_check,
            "minidl_times": m_times, "torch_times": t_times}


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


