"""minidl.nn.init and the layers' default initialisation, against PyTorch's formulas and PyTorch itself.

The generators differ, so values cannot match PyTorch's one by one; instead each test draws a large
tensor and checks the distribution: the bound of a uniform (max |w| just below it), its standard
deviation (bound / sqrt(3)), the standard deviation of a normal, within a few percent.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import minidl as mdl
import minidl.nn as nn
from minidl.nn import init


@pytest.mark.parametrize("nonlinearity,param", [("linear", None), ("conv2d", None), ("conv_transpose2d", None),
                                                ("sigmoid", None), ("tanh", None), ("relu", None),
                                                ("leaky_relu", None), ("leaky_relu", 0.2),
                                                ("leaky_relu", math.sqrt(5)), ("selu", None)])
def test_calculate_gain_is_torchs(torch, nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity,
                                                                                                    param))


def test_calculate_gain_rejects_unknown():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'gelu'"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", "steep")


def check_uniform(w: np.ndarray, bound: float) -> None:
    """U(-bound, bound): every |w| below the bound, the largest close to it, std = bound / sqrt(3).

    The weights are float32, so a draw just under the bound may round up to the bound's float32 value,
    which can lie just above the float64 bound (0.05 -> 0.0500000007): that value is the limit.
    """
    assert np.abs(w).max() <= np.float32(bound)
    assert np.abs(w).max() > 0.99 * bound
    assert abs(w.mean()) < 0.02 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)


# (shape, a, mode, nonlinearity): fan_in = shape[1] * prod(shape[2:]), fan_out = shape[0] * prod(shape[2:]).
KAIMING = [((200, 300), 0, "fan_in", "leaky_relu"), ((64, 32, 3, 3), math.sqrt(5), "fan_in", "leaky_relu"),
           ((64, 32, 3, 3), 0, "fan_out", "relu"), ((300, 100), 0.1, "fan_out", "tanh")]


@pytest.mark.parametrize("shape,a,mode,nonlinearity", KAIMING)
def test_kaiming_uniform_bound(rng, shape, a, mode, nonlinearity):
    """bound = gain * sqrt(3 / fan)."""
    w = init.kaiming_uniform_(mdl.zeros(*shape), a=a, mode=mode, nonlinearity=nonlinearity)
    fan = shape[1 if mode == "fan_in" else 0] * int(np.prod(shape[2:]))
    check_uniform(w.array.astype(np.float64), init.calculate_gain(nonlinearity, a) * math.sqrt(3 / fan))
    assert w.dtype == np.float32


@pytest.mark.parametrize("shape,a,mode,nonlinearity", KAIMING)
def test_kaiming_normal_std(rng, shape, a, mode, nonlinearity):
    """std = gain / sqrt(fan), mean 0."""
    w = init.kaiming_normal_(mdl.zeros(*shape, dtype=mdl.float64), a=a, mode=mode, nonlinearity=nonlinearity).array
    fan = shape[1 if mode == "fan_in" else 0] * int(np.prod(shape[2:]))
    std = init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    assert w.std() == pytest.approx(std, rel=0.02) and abs(w.mean()) < 0.02 * std


@pytest.mark.parametrize("gain", [1.0, 5 / 3])
def test_xavier(rng, gain):
    """xavier_uniform_: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)); xavier_normal_: std = gain *
    sqrt(2 / (fan_in + fan_out))."""
    shape, fans = (40, 50, 3, 3), (50 * 9 + 40 * 9)
    check_uniform(init.xavier_uniform_(mdl.zeros(*shape), gain=gain).array.astype(np.float64),
                  gain * math.sqrt(6 / fans))
    w = init.xavier_normal_(mdl.zeros(*shape), gain=gain).array
    assert w.std() == pytest.approx(gain * math.sqrt(2 / fans), rel=0.02)


def test_simple_fills(rng):
    """uniform_(a, b), normal_(mean, std), constant_, zeros_, ones_ fill in place and return the tensor."""
    t = mdl.zeros(300, 300)
    assert init.uniform_(t, -2.0, 3.0) is t
    assert t.array.min() >= -2 and t.array.max() < 3 and t.array.mean() == pytest.approx(0.5, abs=0.02)
    init.normal_(t, mean=1.5, std=0.5)
    assert t.array.mean() == pytest.approx(1.5, abs=0.01) and t.array.std() == pytest.approx(0.5, rel=0.02)
    assert np.all(init.constant_(t, 0.25).array == 0.25)
    assert np.all(init.zeros_(t).array == 0) and np.all(init.ones_(t).array == 1)
    assert t.dtype == np.float32


def test_generators_and_seed_make_it_reproducible():
    """The default generator follows minidl.manual_seed; an explicit generator= is used instead of it."""
    mdl.manual_seed(3)
    a = nn.Linear(4, 5).weight.array.copy()
    mdl.manual_seed(3)
    assert np.array_equal(nn.Linear(4, 5).weight.array, a)
    g1, g2 = np.random.default_rng(7), np.random.default_rng(7)
    assert np.array_equal(init.kaiming_uniform_(mdl.zeros(3, 4), generator=g1).array,
                          init.kaiming_uniform_(mdl.zeros(3, 4), generator=g2).array)


def test_fan_needs_two_dims():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(mdl.zeros(5))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(mdl.zeros(3, 3), mode="fan_avg")


# ------------------------------------------------------------------------------- the layers' defaults
# (layer builder, fan_in): PyTorch computes fan_in from the weight's own shape, which for ConvTranspose2d
# (in, out/groups, KH, KW) is out/groups * KH * KW.
LAYERS = [(lambda n: n.Linear(400, 300), 400), (lambda n: n.Conv2d(48, 96, 3), 48 * 9),
          (lambda n: n.Conv2d(64, 96, (3, 5), groups=4), 16 * 15),
          (lambda n: n.ConvTranspose2d(96, 64, 3), 64 * 9),
          (lambda n: n.ConvTranspose2d(96, 64, (2, 3), groups=2), 32 * 6)]


@pytest.mark.parametrize("build,fan_in", LAYERS, ids=["linear", "conv", "conv_groups", "convT", "convT_groups"])
def test_default_init_matches_torch(torch, rng, build, fan_in):
    """Weights and biases are U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform_ with a=sqrt(5) for the
    weight), the same distribution as the equivalent PyTorch layer's."""
    bound = 1 / math.sqrt(fan_in)
    m, t = build(nn), build(torch.nn)
    w, tw = m.weight.array.astype(np.float64), t.weight.detach().numpy().astype(np.float64)
    assert m.weight.shape == tuple(t.weight.shape) and m.weight.dtype == np.float32
    check_uniform(w, bound)
    check_uniform(tw, bound)  # the formula is PyTorch's own
    assert w.std() == pytest.approx(tw.std(), rel=0.03)
    b = m.bias.array.astype(np.float64)
    assert np.abs(b).max() <= np.float32(bound) and b.std() > 0.4 * bound


def test_batchnorm_init():
    bn = nn.BatchNorm2d(5)
    assert np.all(bn.weight.array == 1) and np.all(bn.bias.array == 0)
    assert np.all(bn.running_mean.array == 0) and np.all(bn.running_var.array == 1)
    assert bn.num_batches_tracked.array.dtype == np.int64 and int(bn.num_batches_tracked.array) == 0
    bn.running_mean.array[...] = 3
    bn.num_batches_tracked.array[...] = 4
    bn.reset_running_stats()
    assert np.all(bn.running_mean.array == 0) and int(bn.num_batches_tracked.array) == 0


@pytest.mark.parametrize("a, b", [(-2.0, 2.0), (9.0, 10.0), (-10.0, -9.0), (0.5, 0.6), (-0.01, 0.01),
                                  (3.0, float("inf")), (-float("inf"), -0.2), (0.2, 4.0)])
def test_trunc_normal_has_the_truncated_moments_even_far_in_a_tail(a, b):
    """Mean and variance of N(0, 1) restricted to [a, b], from the closed forms; [9, 10] holds 1e-19 of the
    mass, so drawing normals until they land there would never end."""
    phi = lambda x: 0.0 if math.isinf(x) else math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    # Phi(b) - Phi(a) through erfc, from the side of the tail the interval is in: no cancellation.
    mass = (math.erfc(a / math.sqrt(2)) - math.erfc(b / math.sqrt(2))) / 2
    if b < 0:
        mass = (math.erfc(-b / math.sqrt(2)) - math.erfc(-a / math.sqrt(2))) / 2
    mean = (phi(a) - phi(b)) / mass
    a_phi = 0.0 if math.isinf(a) else a * phi(a)
    b_phi = 0.0 if math.isinf(b) else b * phi(b)
    var = 1 + (a_phi - b_phi) / mass - mean ** 2
    z = init.trunc_normal_(mdl.zeros(200_000, dtype=mdl.float64), a=a, b=b, generator=np.random.default_rng(0))
    z = z.numpy()
    assert z.min() >= a and z.max() <= b
    assert abs(z.mean() - mean) < 5 * math.sqrt(var / z.size) + 1e-12
    assert abs(z.var() - var) < 0.02 * var + 1e-12
