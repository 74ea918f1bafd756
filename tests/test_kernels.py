"""Every Numba kernel of ``minidl.kernels.cpu`` equals its plain-loop twin in ``minidl.kernels.reference``,
or, for batch norm and the ReLUs, the math their Functions write (run on ``use_kernels("reference")``).

Each test draws a random small geometry (batch, channels, image size, kernel, stride, padding, dilation,
and for im2col/col2im a band of output rows), runs the fast kernel and the reference on copies of the same
inputs, and requires the same output: bit-equal for copies and max/argmax, within float rounding for
sums (the two add in different orders).
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl.kernels import cpu, kernels_for, reference
from minidl.ops.pool import _pool_output_size

CASES = range(8)
DTYPES = [np.float32, np.float64]


@pytest.fixture(params=["parallel", "serial"], autouse=True)
def compilation(request, monkeypatch):
    """Run every test with the parallel and with the serial compilation of the kernels (the size
    threshold that picks one is set so that every call takes the one under test)."""
    monkeypatch.setattr(cpu, "PARALLEL_MIN_ELEMENTS", 0 if request.param == "parallel" else 2**62)
    return request.param


def assert_sums_close(actual, expected):
    """Equal up to the rounding of sums taken in a different order."""
    tol = 1e-5 if actual.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


def conv_geometry(rng):
    """A random convolution geometry with at least one output row and column."""
    while True:
        N, C = rng.integers(1, 3), rng.integers(1, 4)
        H, W = rng.integers(1, 8, size=2)
        KH, KW, SH, SW = rng.integers(1, 4, size=4)
        PH, PW = rng.integers(0, 3, size=2)
        DH, DW = rng.integers(1, 3, size=2)
        OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
        OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
        if OH >= 1 and OW >= 1:
            return tuple(int(v) for v in (N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW))


def pool_geometry(rng, dilation=True):
    """A random pooling geometry (padding at most half the kernel, as PyTorch requires) and ceil_mode."""
    while True:
        N, C = rng.integers(1, 3), rng.integers(1, 4)
        H, W = rng.integers(1, 8, size=2)
        KH, KW, SH, SW = rng.integers(1, 4, size=4)
        PH, PW = rng.integers(0, KH // 2 + 1), rng.integers(0, KW // 2 + 1)
        DH, DW = rng.integers(1, 3, size=2) if dilation else (1, 1)
        ceil_mode = bool(rng.integers(2))
        OH = _pool_output_size(H, KH, SH, PH, DH, ceil_mode)
        OW = _pool_output_size(W, KW, SW, PW, DW, ceil_mode)
        if OH >= 1 and OW >= 1:
            return tuple(int(v) for v in (N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_im2col(rng, case, dtype):
    N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW = conv_geometry(rng)
    oh0 = int(rng.integers(0, OH))
    R = int(rng.integers(1, OH - oh0 + 1))
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    col, expected = (np.full((C, KH, KW, N, R, OW), np.nan, dtype) for _ in range(2))
    cpu.im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, oh0, col)
    reference.im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, oh0, expected)
    np.testing.assert_array_equal(col, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_col2im_adds_into_x(rng, case, dtype):
    N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW = conv_geometry(rng)
    oh0 = int(rng.integers(0, OH))
    R = int(rng.integers(1, OH - oh0 + 1))
    col = rng.standard_normal((C, KH, KW, N, R, OW)).astype(dtype)
    x0 = rng.standard_normal((N, C, H, W)).astype(dtype)
    x, expected = x0.copy(), x0.copy()
    cpu.col2im(col, SH, SW, PH, PW, DH, DW, oh0, x)
    reference.col2im(col, SH, SW, PH, PW, DH, DW, oh0, expected)
    assert_sums_close(x, expected)


def direct_geometry(rng):
    """A random stride-1 convolution for the direct kernels: groups, dilation, and the padded input's size."""
    while True:
        N, G, Cg, Og = (int(v) for v in rng.integers(1, 4, size=4))
        KH, KW, DH, DW = (int(v) for v in rng.integers(1, 4, size=4))
        Hp, Wp = (int(v) for v in rng.integers(1, 10, size=2))
        OH, OW = Hp - DH * (KH - 1), Wp - DW * (KW - 1)
        if OH >= 1 and OW >= 1:
            return N, G, Cg, Og, KH, KW, DH, DW, Hp, Wp, OH, OW


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_conv_direct(rng, case, dtype):
    """The direct convolution's three kernels (forward, input gradient summed into gx, weight gradient)."""
    N, G, Cg, Og, KH, KW, DH, DW, Hp, Wp, OH, OW = direct_geometry(rng)
    x = rng.standard_normal((N, G * Cg, Hp, Wp)).astype(dtype)
    W = rng.standard_normal((G * Og, Cg, KH, KW)).astype(dtype)
    b = rng.standard_normal(G * Og).astype(dtype)
    gy = rng.standard_normal((N, G * Og, OH, OW)).astype(dtype)
    y, y_ref = (np.full((N, G * Og, OH, OW), np.nan, dtype) for _ in range(2))
    cpu.conv_direct(x, W, b, DH, DW, y)
    reference.conv_direct(x, W, b, DH, DW, y_ref)
    assert_sums_close(y, y_ref)
    gx0 = rng.standard_normal(x.shape).astype(dtype)
    gx, gx_ref = gx0.copy(), gx0.copy()
    cpu.conv_direct_grad_input(gy, W, DH, DW, gx)
    reference.conv_direct_grad_input(gy, W, DH, DW, gx_ref)
    assert_sums_close(gx, gx_ref)
    gW, gW_ref = (np.full(W.shape, np.nan, dtype) for _ in range(2))
    cpu.conv_direct_grad_weight(x, gy, DH, DW, gW)
    reference.conv_direct_grad_weight(x, gy, DH, DW, gW_ref)
    assert_sums_close(gW, gW_ref)


def test_col2im_is_the_adjoint_of_im2col(rng):
    """<im2col(x), c> == <x, col2im(c)> for any x and c: col2im is the transpose of the im2col copy."""
    N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW = conv_geometry(rng)
    x = rng.standard_normal((N, C, H, W))
    c = rng.standard_normal((C, KH, KW, N, OH, OW))
    col, back = np.empty_like(c), np.zeros_like(x)
    cpu.im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, 0, col)
    cpu.col2im(c, SH, SW, PH, PW, DH, DW, 0, back)
    np.testing.assert_allclose((col * c).sum(), (x * back).sum(), rtol=1e-12)


@pytest.mark.parametrize("index_dtype", [np.int64, np.int32])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_max_pool2d(rng, case, dtype, index_dtype):
    """Small integers make many ties, so both kernels must also agree on which tied element wins; in half
    the cases some elements are NaN, which win over any number (the last NaN of a window wins)."""
    while True:
        N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW = pool_geometry(rng)
        x = rng.integers(-3, 4, size=(N, C, H, W)).astype(dtype)
        if case % 2:
            x[rng.random(x.shape) < 0.2] = np.nan
        y_ref, idx_ref = np.empty((N, C, OH, OW), dtype), np.empty((N, C, OH, OW), index_dtype)
        reference.max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, y_ref, idx_ref)
        if not np.isinf(y_ref).any():  # a window entirely in the padding has no element to route back to
            break
    y, idx = np.empty_like(y_ref), np.empty_like(idx_ref)
    cpu.max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, y, idx)
    np.testing.assert_array_equal(y, y_ref)  # NaN equals NaN here
    np.testing.assert_array_equal(idx, idx_ref)

    gy = rng.standard_normal((N, C, OH, OW)).astype(dtype)
    gx, gx_ref = (np.full((N, C, H, W), np.nan, dtype) for _ in range(2))
    cpu.max_pool2d_backward(gy, idx, KH, KW, SH, SW, PH, PW, DH, DW, gx)
    reference.max_pool2d_backward(gy, idx, KH, KW, SH, SW, PH, PW, DH, DW, gx_ref)
    assert_sums_close(gx, gx_ref)


@pytest.mark.parametrize("index_dtype", [np.int64, np.int32])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_max_pool2d_2x2(rng, case, dtype, index_dtype):
    """The fast kernel's own path for 2x2 windows at stride 2 (no padding, no dilation): ties (small
    integers), -inf everywhere in some windows, NaN in half the cases, odd sizes (the last row or column is
    not read), and ceil_mode sizes, whose last window runs past the edge and takes the general path."""
    N, C = (int(v) for v in rng.integers(1, 4, size=2))
    H, W = (int(v) for v in rng.integers(2, 10, size=2))
    ceil_mode = case >= 4
    OH, OW = ((size - 2 + (1 if ceil_mode else 0)) // 2 + 1 for size in (H, W))
    x = rng.integers(-3, 4, size=(N, C, H, W)).astype(dtype)
    x[rng.random(x.shape) < 0.1] = -np.inf
    if case % 2:
        x[rng.random(x.shape) < 0.2] = np.nan
    y_ref, idx_ref = np.empty((N, C, OH, OW), dtype), np.empty((N, C, OH, OW), index_dtype)
    reference.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 1, 1, y_ref, idx_ref)
    y, idx = np.empty_like(y_ref), np.empty_like(idx_ref)
    cpu.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 1, 1, y, idx)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_avg_pool2d(rng, case, dtype):
    N, C, H, W, KH, KW, SH, SW, PH, PW, _, _, OH, OW = pool_geometry(rng, dilation=False)
    count_include_pad = bool(rng.integers(2))
    divisor = int(rng.choice([0, 0, 1, 5]))  # 0: no divisor_override
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    y, y_ref = (np.full((N, C, OH, OW), np.nan, dtype) for _ in range(2))
    cpu.avg_pool2d_forward(x, KH, KW, SH, SW, PH, PW, count_include_pad, divisor, y)
    reference.avg_pool2d_forward(x, KH, KW, SH, SW, PH, PW, count_include_pad, divisor, y_ref)
    assert_sums_close(y, y_ref)

    gy = rng.standard_normal((N, C, OH, OW)).astype(dtype)
    gx, gx_ref = (np.full((N, C, H, W), np.nan, dtype) for _ in range(2))
    cpu.avg_pool2d_backward(gy, KH, KW, SH, SW, PH, PW, count_include_pad, divisor, gx)
    reference.avg_pool2d_backward(gy, KH, KW, SH, SW, PH, PW, count_include_pad, divisor, gx_ref)
    assert_sums_close(gx, gx_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_adaptive_avg_pool2d(rng, case, dtype):
    """Output sizes both below and above the input size, so bins both overlap and repeat elements."""
    N, C = (int(v) for v in rng.integers(1, 3, size=2))
    H, W = (int(v) for v in rng.integers(1, 9, size=2))
    OH, OW = int(rng.integers(1, H + 3)), int(rng.integers(1, W + 3))
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    y, y_ref = (np.full((N, C, OH, OW), np.nan, dtype) for _ in range(2))
    cpu.adaptive_avg_pool2d_forward(x, y)
    reference.adaptive_avg_pool2d_forward(x, y_ref)
    assert_sums_close(y, y_ref)

    gy = rng.standard_normal((N, C, OH, OW)).astype(dtype)
    gx, gx_ref = (np.full((N, C, H, W), np.nan, dtype) for _ in range(2))
    cpu.adaptive_avg_pool2d_backward(gy, gx)
    reference.adaptive_avg_pool2d_backward(gy, gx_ref)
    assert_sums_close(gx, gx_ref)


def test_kernels_for_picks_the_device_module():
    assert kernels_for(np) is cpu


def test_kernels_run_without_jit():
    """With NUMBA_DISABLE_JIT=1 the kernels are plain Python (debuggable) and still equal the reference."""
    script = (
        "import numpy as np\n"
        "from minidl.kernels import cpu, reference\n"
        "x = np.arange(2 * 3 * 5 * 4, dtype=np.float64).reshape(2, 3, 5, 4) % 7\n"
        "for k in (cpu, reference):\n"
        "    col = np.empty((3, 3, 2, 2, 3, 2)); k.im2col(x, 3, 2, 2, 2, 1, 0, 1, 1, 0, col)\n"
        "    g = np.zeros_like(x); k.col2im(col, 2, 2, 1, 0, 1, 1, 0, g)\n"
        "    y = np.empty((2, 3, 3, 2)); i = np.empty(y.shape, np.int64)\n"
        "    k.max_pool2d_forward(x, 3, 2, 2, 2, 1, 0, 1, 1, y, i)\n"
        "    a = np.empty((2, 3, 3, 2)); k.avg_pool2d_forward(x, 3, 2, 2, 2, 1, 0, False, 0, a)\n"
        "    V = np.empty((16, 2 * 3 * 2 * 3)); k.winograd_input(x, 1, 1, 0, 3, 2, V)\n"
        "    r = np.empty_like(x)\n"
        "    if k is cpu: k.leaky_relu_backward(x - 3, x - 2 > 0, 0.1, r)\n"
        "    else: r[...] = np.where(x - 2 > 0, x - 3, (x - 3) * 0.1)  # LeakyReLU's math\n"
        "    print(g.sum(), i.sum(), a.sum(), V.sum(), r.sum())\n"
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    fast, slow = out.stdout.strip().splitlines()
    assert fast == slow


def forward_backward(op, paths, *arrays, gy):
    """``op`` on Tensors of ``arrays`` and its gradients for the upstream ``gy``, on each kernel path:
    {path: [output, grad of each array]} (the Functions' math on "reference", their fast twins on "fast")."""
    results = {}
    for path in paths:
        with minidl.use_kernels(path):
            inputs = [minidl.tensor(a.copy(), requires_grad=True) for a in arrays]
            y = op(*inputs)
            y.backward(minidl.tensor(gy))
        results[path] = [y.numpy()] + [t.grad.numpy() for t in inputs]
    return results


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_batch_norm(rng, case, dtype):
    """The fast twins of BatchNorm's math (kernels.cpu.batch_norm_forward / _backward) against the math the
    Function writes, on (N, C, L) rows of up to 200 values, so the kernels' reordered sums run both their
    vector loop and its tail; the running statistics too."""
    N, C = (int(v) for v in rng.integers(1, 5, size=2))
    L = int(rng.integers(1, 200))
    if N * L == 1:
        N = 2
    x = (rng.standard_normal((N, C, L)) * 3 + rng.standard_normal(C)[:, None]).astype(dtype)
    W, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    running = {path: [minidl.zeros(C, dtype=dtype), minidl.ones(C, dtype=dtype)] for path in ("fast", "reference")}
    results = {}
    for path in ("fast", "reference"):
        def op(x, W, b):
            return F.batch_norm(x, *running[path], W, b, training=True)
        results.update(forward_backward(op, [path], x, W, b, gy=gy))
    for fast, ref in zip(results["fast"] + [t.numpy() for t in running["fast"]],
                         results["reference"] + [t.numpy() for t in running["reference"]]):
        assert_sums_close(fast, ref)


def signed_zeros_and_nans(rng, shape, dtype):
    """Normal values with NaN, 0.0 and -0.0 scattered in."""
    x = rng.standard_normal(shape).astype(dtype)
    kind = rng.random(shape)
    x[kind < 0.1] = np.nan
    x[(0.1 <= kind) & (kind < 0.15)] = 0.0
    x[(0.15 <= kind) & (kind < 0.2)] = -0.0
    return x


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu(rng, dtype):
    """The fast twins of ReLU's math, bit-equal to it on random shapes (some empty) with NaN and zeros of
    both signs; at a NaN the gradient passes, as in PyTorch."""
    for _ in range(4):
        shape = tuple(int(n) for n in rng.integers(0, 6, size=rng.integers(1, 5)))
        x = signed_zeros_and_nans(rng, shape, dtype)
        gy = rng.standard_normal(shape).astype(dtype)
        results = forward_backward(F.relu, ("fast", "reference"), x, gy=gy)
        for fast, ref in zip(results["fast"], results["reference"]):
            np.testing.assert_array_equal(fast, ref)  # NaN equals NaN here
        y, gx = results["fast"]
        assert np.isnan(y[np.isnan(x)]).all()
        np.testing.assert_array_equal(gx[np.isnan(x)], gy[np.isnan(x)])


@pytest.mark.parametrize("negative_slope", [0.01, 0.1, 0.0, -0.5, 1.0, 2.5])
@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu(rng, dtype, negative_slope):
    """Random shapes (some empty) with NaN and zeros of both signs in x; the fast twins bit-equal to
    LeakyReLU's math, with the slope rounded to the dtype (0.1 is not a float32), of any sign and size."""
    for _ in range(4):
        shape = tuple(int(n) for n in rng.integers(0, 6, size=rng.integers(1, 5)))
        x = signed_zeros_and_nans(rng, shape, dtype)
        gy = rng.standard_normal(shape).astype(dtype)
        results = forward_backward(lambda t: F.leaky_relu(t, negative_slope), ("fast", "reference"), x, gy=gy)
        for fast, ref in zip(results["fast"], results["reference"]):
            np.testing.assert_array_equal(fast, ref)
        assert np.isnan(results["fast"][0][np.isnan(x)]).all()


def winograd_geometry(rng, m):
    """A random tile grid of a 3x3 stride-1 convolution with m x m output tiles: input, padding (up to 3,
    beyond the kernel, as a transposed convolution's input gradient has), output size, a band of tile rows."""
    while True:
        N, C = (int(v) for v in rng.integers(1, 3, size=2))
        H, W = (int(v) for v in rng.integers(1, 12, size=2))
        PH, PW = (int(v) for v in rng.integers(-1, 4, size=2))
        OH, OW = H + 2 * PH - 2, W + 2 * PW - 2
        if OH >= 1 and OW >= 1:
            TH, TW = -(-OH // m), -(-OW // m)
            ti0 = int(rng.integers(0, TH))
            TR = int(rng.integers(1, TH - ti0 + 1))
            return N, C, H, W, PH, PW, OH, OW, ti0, TR, TW


@pytest.mark.parametrize("m, prefix", [(2, "winograd_"), (4, "winograd4_")], ids=["F(2x2,3x3)", "F(4x4,3x3)"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_winograd_transforms(rng, case, dtype, m, prefix):
    N, C, H, W, PH, PW, OH, OW, ti0, TR, TW = winograd_geometry(rng, m)
    fast, slow = ({k: getattr(module, prefix + k) for k in ("input", "output", "grad_output")}
                  for module in (cpu, reference))
    positions = (m + 2) ** 2
    O = int(rng.integers(1, 4))
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    L = N * TR * TW * C + int(rng.integers(0, 5))  # the rows may be longer than their entries
    V, V_ref = (np.full((positions, L), np.nan, dtype) for _ in range(2))
    fast["input"](x, PH, PW, ti0, TR, TW, V)
    slow["input"](x, PH, PW, ti0, TR, TW, V_ref)
    assert_sums_close(V, V_ref)

    L = N * TR * TW * O + int(rng.integers(0, 5))
    M = rng.standard_normal((positions, L)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    y, y_ref = (np.full((N, O, OH, OW), np.nan, dtype) for _ in range(2))
    fast["output"](M, b, ti0, TR, TW, y)
    slow["output"](M, b, ti0, TR, TW, y_ref)
    assert_sums_close(y, y_ref)  # the NaNs outside the band must stay where they are

    gy = rng.standard_normal((N, O, OH, OW)).astype(dtype)
    Gy, Gy_ref = (np.full((positions, L), np.nan, dtype) for _ in range(2))
    fast["grad_output"](gy, ti0, TR, TW, Gy)
    slow["grad_output"](gy, ti0, TR, TW, Gy_ref)
    assert_sums_close(Gy, Gy_ref)


@pytest.mark.parametrize("m, prefix", [(2, "WINOGRAD_"), (4, "WINOGRAD4_")], ids=["F(2x2,3x3)", "F(4x4,3x3)"])
def test_winograd_reference_is_a_convolution(rng, m, prefix):
    """The reference transforms themselves: At [(G g Gt) * (Bt d B)] A is the 3x3 cross-correlation of d."""
    d, g = rng.standard_normal((m + 2, m + 2)), rng.standard_normal((3, 3))
    BT, G, AT = (np.array(getattr(reference, prefix + name), dtype=np.float64) for name in ("BT", "G", "AT"))
    y = AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T
    direct = np.array([[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(m)] for i in range(m)])
    np.testing.assert_allclose(y, direct, rtol=1e-12, atol=1e-12)
