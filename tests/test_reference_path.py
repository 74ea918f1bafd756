"""Every seed model trains the same on the textbook path (``use_kernels("reference")``: plain-loop kernels,
im2col for every convolution) as on the fast one (Numba kernels, Winograd where it pays)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import minidl as mdl
import minidl.nn.functional as F
from minidl import optim
from minidl.kernels import cpu, reference
from minidl.ops import winograd
from models import build

MNIST, CIFAR = (1, 28, 28), (3, 32, 32)

# (name, knobs, input size): every net of models.SEED_MODELS, and the variants that bring other layers in
# (batch norm, leaky ReLU, dropout, pooling with ceil_mode, extra convolutions).
NETS = [
    ("fashion_000", {}, MNIST),
    ("fashion_001", {}, MNIST),
    ("seg_000", {}, (3, 12, 12)),
    ("seg_001", {}, (3, 16, 16)),
    ("kth", {}, CIFAR),
    ("kth", dict(filters=(64, 128, 256), kernels=(7, 5, 3), leaky=True, dropout=0.3, batch_norm=True,
                 extra_fc=128), CIFAR),
    ("lenet", {}, CIFAR),
    ("vgg16", {}, CIFAR),
    ("model_builder", {}, MNIST),
    ("model_builder", dict(blocks=2, conv_stride=5, ceil_mode=True, extra_convs_per_block=1), MNIST),
]


def counting(monkeypatch, module, names):
    """Count the calls of the kernels ``names`` of ``module`` (the fast or the reference one), made through
    the kernel or, for a fast kernel, through its serial compilation (``.serial``, in worker threads)."""
    calls = {name: 0 for name in names}

    def count(name, fn):
        def counted(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return counted

    for name in names:
        kernel = getattr(module, name)
        counted = count(name, kernel)
        if hasattr(kernel, "serial"):
            counted.serial = count(name, kernel.serial)
        monkeypatch.setattr(module, name, counted)
    return calls


def train_step(name, knobs, input_size, kernels: str):
    """One SGD step of the net in float64 from seed 0: (loss, gradients, new parameters)."""
    mdl.manual_seed(0)
    model = build(name, **knobs).double()
    rng = np.random.default_rng(0)
    x = mdl.tensor(rng.standard_normal((2, *input_size)))
    with mdl.use_kernels(kernels):
        mdl.manual_seed(1)  # the same dropout masks on both paths
        out = model(x)
        target = rng.integers(0, out.shape[1], (out.shape[0], *out.shape[2:]))
        loss = F.cross_entropy(out, mdl.tensor(target))
        optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loss.backward()
        optimizer.step()
    grads = {k: p.grad.numpy().copy() for k, p in model.named_parameters()}
    params = {k: p.numpy().copy() for k, p in model.named_parameters()}
    return float(loss.item()), grads, params


@pytest.mark.parametrize("name, knobs, input_size", NETS,
                         ids=[f"{n} {'+'.join(k) or 'default'}" for n, k, _ in NETS])
def test_training_step_same_on_both_paths(monkeypatch, name, knobs, input_size):
    fast_calls = counting(monkeypatch, cpu, ["im2col", "conv_direct", "max_pool2d_forward", "relu_forward"])
    winograd_calls = counting(monkeypatch, winograd, ["conv_output"])
    fast = train_step(name, knobs, input_size, "fast")
    ref_calls = counting(monkeypatch, reference, ["im2col", "col2im", "max_pool2d_forward"])
    winograd_before, fast_before = winograd_calls["conv_output"], dict(fast_calls)
    slow = train_step(name, knobs, input_size, "reference")

    # the fast step ran the fast kernels (LeNet's convolutions: the direct sums)
    assert fast_calls["im2col"] > 0 or fast_calls["conv_direct"] > 0 or winograd_before > 0
    assert fast_calls["relu_forward"] > 0 or name == "kth" and knobs  # (leaky ReLU there)
    # the slow one did not: the reference loops, the ReLUs' own math, no Winograd
    assert ref_calls["im2col"] > 0 and winograd_calls["conv_output"] == winograd_before
    assert fast_calls == fast_before
    if name == "vgg16":
        assert winograd_before > 0
    assert slow[0] == pytest.approx(fast[0], rel=1e-12)
    for k in fast[1]:  # float64 sums in another order (batch norm's cancel): relative to the largest entry
        for what, a, b in (("gradient", slow[1][k], fast[1][k]), ("parameter", slow[2][k], fast[2][k])):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-9 * np.abs(b).max(), err_msg=f"{what} {k}")


def test_winograd_switch_sends_convolutions_to_im2col(monkeypatch, rng):
    """``winograd.enabled = False`` keeps the fast kernels but turns Winograd off: same numbers, im2col."""
    monkeypatch.setattr(winograd, "MIN_POSITIONS", 1)
    x = mdl.tensor(rng.standard_normal((2, 64, 8, 8)))
    W = mdl.tensor(rng.standard_normal((64, 64, 3, 3)) / 24)
    calls = counting(monkeypatch, winograd, ["conv_output"])
    with_winograd = F.conv2d(x, W, padding=1).numpy()
    assert calls["conv_output"] == 1
    monkeypatch.setattr(winograd, "enabled", False)
    without = F.conv2d(x, W, padding=1).numpy()
    assert calls["conv_output"] == 1
    np.testing.assert_allclose(without, with_winograd, rtol=1e-10, atol=1e-12)


def test_use_kernels_restores_and_refuses_unknown_names():
    assert mdl.kernels_in_use() == "fast"
    with mdl.use_kernels("reference"):
        assert mdl.kernels_in_use() == "reference"
    assert mdl.kernels_in_use() == "fast"
    with pytest.raises(ValueError, match="use_kernels: unknown kernels 'numba'; choose one of fast, reference"):
        mdl.use_kernels("numba")
    assert mdl.kernels_in_use() == "fast"


def test_environment_variable_chooses_the_kernels():
    code = "import minidl; print(minidl.kernels_in_use())"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, MINIDL_KERNELS="reference"),
                         capture_output=True, text=True, cwd=root)
    assert out.stdout.strip() == "reference"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, MINIDL_KERNELS="numba"),
                         capture_output=True, text=True, cwd=root)
    assert out.returncode != 0 and "MINIDL_KERNELS: unknown kernels 'numba'" in out.stderr
