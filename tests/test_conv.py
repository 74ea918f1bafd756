"""conv2d and conv_transpose2d: gradients by finite differences, forward and backward against PyTorch, errors.

Geometries are drawn at random from the ``rng`` fixture (seeded by the test name): batch, groups, channels,
image size, kernel, stride, padding (int, pair, "same", "valid"), dilation, output_padding, bias or not.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import tensor64

import minidl as mdl
from minidl.ops import blocks, conv_blocks, direct, winograd
from minidl.backend import threads
from minidl.ops.conv import conv2d, conv_transpose2d

# PyTorch warns that it copies the input for an uneven "same" padding; that is its business, not ours
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


def conv_config(rng) -> dict:
    """Shapes and arguments of a random small conv2d with at least one output pixel."""
    while True:
        G = int(rng.choice([1, 1, 2, 3]))
        N, Cg, Og = (int(v) for v in rng.integers(1, 3, size=3))
        H, W = (int(v) for v in rng.integers(3, 8, size=2))
        KH, KW = (int(v) for v in rng.integers(1, 4, size=2))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        padding = [int(rng.integers(0, 3)), (int(rng.integers(0, 3)), int(rng.integers(0, 3))), "same",
                   "valid"][rng.integers(4)]
        stride = (1, 1) if padding == "same" else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        PH, PW = (0, 0) if isinstance(padding, str) else (padding, padding) if isinstance(padding, int) \
            else padding
        if padding == "same" or (H + 2 * PH > dilation[0] * (KH - 1) and W + 2 * PW > dilation[1] * (KW - 1)):
            return dict(x=(N, Cg * G, H, W), W=(Og * G, Cg, KH, KW), b=(Og * G,) if rng.integers(2) else None,
                        kwargs=dict(stride=stride, padding=padding, dilation=dilation, groups=G))


def conv_transpose_config(rng) -> dict:
    """Shapes and arguments of a random small conv_transpose2d."""
    G = int(rng.choice([1, 1, 2, 3]))
    N, Cg, Og = (int(v) for v in rng.integers(1, 3, size=3))
    H, W = (int(v) for v in rng.integers(2, 6, size=2))
    KH, KW = (int(v) for v in rng.integers(1, 4, size=2))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 4)))
    dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    output_padding = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
    # PyTorch's bound on padding that keeps the output at least one pixel
    padding = tuple(int(rng.integers(0, ((n - 1) * s + d * (k - 1) + op) // 2 + 1))
                    for n, s, d, k, op in zip((H, W), stride, dilation, (KH, KW), output_padding))
    return dict(x=(N, Cg * G, H, W), W=(Cg * G, Og, KH, KW), b=(Og * G,) if rng.integers(2) else None,
                kwargs=dict(stride=stride, padding=padding, output_padding=output_padding, groups=G,
                            dilation=dilation))


def make_inputs(rng, cfg):
    return [tensor64(rng, *cfg[k]) if cfg[k] is not None else None for k in ("x", "W", "b")]


def check_against_torch(torch, rng, mdl_fn, torch_fn, cfg):
    """Forward and, with one random upstream gradient, every input gradient equal PyTorch's (float64)."""
    inputs = make_inputs(rng, cfg)
    y = mdl_fn(*inputs, **cfg["kwargs"])
    t_inputs = [None if t is None else torch.tensor(t.numpy(), requires_grad=True) for t in inputs]
    ty = torch_fn(*t_inputs, **cfg["kwargs"])
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-6, atol=1e-12)
    gy = rng.standard_normal(y.shape)
    y.backward(mdl.tensor(gy))
    ty.backward(torch.tensor(gy))
    for t, tt in zip(inputs, t_inputs):
        if t is not None:
            np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-6, atol=1e-12)


@pytest.fixture(params=["im2col", "direct"])
def path(request, monkeypatch):
    """Run a test on the block engine (im2col + GEMM) and on the direct sums, which then take every stride-1
    convolution, however many filters it has (strided ones stay on the block engine)."""
    limit = 0 if request.param == "im2col" else 2**30
    for name in ("MAX_FILTERS", "MAX_INPUT_GRAD_FILTERS", "MAX_CHANNELS"):
        monkeypatch.setattr(direct, name, limit)
    monkeypatch.setattr(direct, "MIN_POSITIONS", 2**30 - limit)
    return request.param


@pytest.fixture
def direct_calls(monkeypatch):
    """Record which direct kernels ran, so that a test can check that the path it means to test was taken."""
    calls = []
    kernels = mdl.kernels.kernels_for(np)
    for name in ("conv_direct", "conv_direct_grad_input", "conv_direct_grad_weight"):
        def counted(*args, kernel=getattr(kernels, name), name=name):
            calls.append(name)
            return kernel(*args)
        monkeypatch.setattr(kernels, name, counted)
    return calls


# ----------------------------------------------------------------------------------- conv2d


@pytest.mark.parametrize("case", range(8))
def test_conv2d_gradcheck(rng, path, case):
    cfg = conv_config(rng)
    inputs = [t for t in make_inputs(rng, cfg) if t is not None]
    assert mdl.gradcheck(lambda *a: conv2d(*a, **cfg["kwargs"]), inputs)


@pytest.mark.parametrize("case", range(12))
def test_conv2d_matches_torch(torch, rng, path, case):
    check_against_torch(torch, rng, conv2d, torch.nn.functional.conv2d, conv_config(rng))


@pytest.mark.parametrize("kwargs", [
    dict(padding="same"),                                   # even kernel: one extra row/column bottom/right
    dict(padding="same", dilation=(3, 1)),                  # odd total padding through the dilation
    dict(padding="same", dilation=2, groups=4),             # depthwise
    dict(stride=2, padding=(0, 1), groups=4),               # depthwise, strided
], ids=["same-even", "same-dilated", "same-depthwise", "depthwise-strided"])
def test_conv2d_same_and_depthwise_match_torch(torch, rng, path, kwargs):
    """An explicit 2x4 kernel makes "same" pad unevenly, which PyTorch puts at the bottom/right."""
    groups = kwargs.get("groups", 1)
    cfg = dict(x=(2, 4, 6, 7), W=(4, 4 // groups, 2, 4), b=(4,), kwargs=kwargs)
    check_against_torch(torch, rng, conv2d, torch.nn.functional.conv2d, cfg)


@pytest.mark.parametrize("sample_columns", [1, 2**30], ids=["samples-apart", "side-by-side"])
@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("budget", [1, 40000], ids=["row-bands", "sample-blocks"])
def test_conv_column_blocks_match_torch(torch, rng, monkeypatch, budget, workers, sample_columns):
    """A tiny block budget forces bands of output rows (1 byte) or blocks of a few samples, shared among
    1, 2 or 3 worker threads, whose GEMMs take the samples apart or side by side (a band is always
    apart); the results must not depend on how the columns were split, shared or multiplied."""
    monkeypatch.setattr(direct, "MAX_FILTERS", 0)
    monkeypatch.setattr(conv_blocks, "SAMPLE_COLUMNS", sample_columns)
    monkeypatch.setattr(blocks, "BLOCK_BYTES", budget)
    monkeypatch.setattr(blocks, "MIN_COLUMNS", 1)
    monkeypatch.setattr(threads, "_workers", workers)
    cfg = dict(x=(3, 4, 9, 8), W=(6, 2, 3, 2), b=(6,), kwargs=dict(stride=(2, 1), padding=1, dilation=(1, 2),
                                                                   groups=2))
    check_against_torch(torch, rng, conv2d, torch.nn.functional.conv2d, cfg)
    # 72 rows of columns on 4 filters: the weight gradient as (col @ gy^T)^T in the worker threads
    cfg = dict(x=(3, 8, 7, 6), W=(4, 8, 3, 3), b=(4,), kwargs=dict(padding=1))
    check_against_torch(torch, rng, conv2d, torch.nn.functional.conv2d, cfg)
    cfg = dict(x=(3, 4, 5, 4), W=(4, 3, 3, 2), b=(6,), kwargs=dict(stride=2, padding=(1, 0), output_padding=1,
                                                                   groups=2, dilation=1))
    check_against_torch(torch, rng, conv_transpose2d, torch.nn.functional.conv_transpose2d, cfg)


@pytest.mark.parametrize("sample_columns", [1, 2**30], ids=["samples-apart", "side-by-side"])
def test_conv_column_blocks_gradcheck(rng, monkeypatch, sample_columns):
    """gradcheck (float64, random upstream gradient) on blocks of two samples shared by two workers, the
    samples taken apart or side by side: one group with a bias (apart, the bias in the GEMM) and 72 rows of
    columns (the weight gradient as (col @ gy^T)^T); two groups with 12 rows (apart, gW summed per sample)."""
    monkeypatch.setattr(direct, "MAX_FILTERS", 0)
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 40000)
    monkeypatch.setattr(blocks, "MIN_COLUMNS", 1)
    monkeypatch.setattr(threads, "_workers", 2)
    monkeypatch.setattr(conv_blocks, "SAMPLE_COLUMNS", sample_columns)
    for cfg in (dict(x=(3, 8, 7, 6), W=(4, 8, 3, 3), b=(4,), kwargs=dict(padding=1)),
                dict(x=(3, 4, 9, 8), W=(6, 2, 3, 2), b=(6,), kwargs=dict(stride=(2, 1), padding=1, groups=2))):
        inputs = make_inputs(rng, cfg)
        assert mdl.gradcheck(lambda *a: conv2d(*a, **cfg["kwargs"]), inputs)


def record_winograd(monkeypatch) -> list:
    """The names of Winograd's products (conv_output, conv_grad_input, conv_grad_weight), as they run."""
    calls = []
    for name in ("conv_output", "conv_grad_input", "conv_grad_weight"):
        def counted(*args, product=getattr(winograd, name), name=name, **kwargs):
            calls.append(name)
            return product(*args, **kwargs)
        monkeypatch.setattr(winograd, name, counted)
    return calls


@pytest.fixture
def winograd_calls(monkeypatch):
    """Send every 3x3 stride-1 convolution, however few its channels and however its tiles fit, through
    Winograd, and record which of its products ran, so that a test can check the path it means to test
    was taken."""
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)
    monkeypatch.setattr(winograd, "MIN_POSITIONS", 1)
    monkeypatch.setattr(winograd, "MAX_COLUMNS_PER_POSITION", float("inf"))
    return record_winograd(monkeypatch)


@pytest.mark.parametrize("padding", [0, 1])
def test_winograd_only_where_its_tiles_fit(torch, rng, monkeypatch, padding):
    """32 channels on 6x6 maps. Unpadded, the output (4x4) and the weight gradient (tiled on gy's 4x4) take
    F(4x4, 3x3), one tile each, and the input gradient, a 6x6 map whose tiles would spend 4 columns per
    position, takes the block engine; padded, every map is 6x6 and nothing takes Winograd. Either way the
    results are PyTorch's."""
    monkeypatch.setattr(winograd, "MIN_POSITIONS", 1)
    assert winograd.columns_per_position(4, 4) == 2.25 and winograd.columns_per_position(6, 6) == 4.0
    calls = record_winograd(monkeypatch)
    cfg = dict(x=(2, 32, 6, 6), W=(32, 32, 3, 3), b=(32,), kwargs=dict(padding=padding))
    check_against_torch(torch, rng, conv2d, torch.nn.functional.conv2d, cfg)
    assert sorted(calls) == (["conv_grad_weight", "conv_output"] if padding == 0 else [])


def winograd_config(rng) -> dict:
    """A random 3x3, stride-1, dilation-1 conv2d: odd and even sizes, paddings 0 to 3, "same"."""
    N, C, O = (int(v) for v in rng.integers(1, 4, size=3))
    H, W = (int(v) for v in rng.integers(2, 10, size=2))
    padding = [int(rng.integers(0, 4)), (int(rng.integers(0, 4)), int(rng.integers(0, 4))), "same"][rng.integers(3)]
    PH, PW = (1, 1) if padding == "same" else (padding, padding) if isinstance(padding, int) else padding
    H, W = max(H, 3 - 2 * PH), max(W, 3 - 2 * PW)
    return dict(x=(N, C, H, W), W=(O, C, 3, 3), b=(O,) if rng.integers(2) else None, kwargs=dict(padding=padding))


@pytest.mark.parametrize("case", range(8))
def test_winograd_conv2d_matches_torch(torch, rng, winograd_calls, case):
    check_against_torch(torch, rng, conv2d, torch.nn.functional.conv2d, winograd_config(rng))
    assert sorted(winograd_calls) == ["conv_grad_input", "conv_grad_weight", "conv_output"]


@pytest.mark.parametrize("case", range(4))
def test_winograd_conv_transpose2d_matches_torch(torch, rng, winograd_calls, case):
    N, C, O = (int(v) for v in rng.integers(1, 4, size=3))
    H, W = (int(v) for v in rng.integers(1, 7, size=2))
    cfg = dict(x=(N, C, H, W), W=(C, O, 3, 3), b=(O,) if rng.integers(2) else None,
               kwargs=dict(padding=tuple(int(rng.integers(0, min(3, (n + 1) // 2 + 1))) for n in (H, W))))
    check_against_torch(torch, rng, conv_transpose2d, torch.nn.functional.conv_transpose2d, cfg)
    assert sorted(winograd_calls) == ["conv_grad_input", "conv_grad_weight", "conv_output"]


@pytest.mark.parametrize("size, m", [((2, 2), 2), ((8, 7), 4), ((4, 9), 4)])
def test_winograd_each_tiling_gradchecks_and_matches_torch(torch, rng, winograd_calls, size, m):
    """Both tile sizes, each picked on purpose: F(2x2, 3x3) on a 2x2 output, F(4x4, 3x3) on larger ones
    (outputs not a multiple of 4, so the last tiles are partly outside)."""
    assert winograd.tiling(*size).m == m
    cfg = dict(x=(2, 3, *size), W=(4, 3, 3, 3), b=(4,), kwargs=dict(padding=1))
    inputs = [t for t in make_inputs(rng, cfg) if t is not None]
    assert mdl.gradcheck(lambda *a: conv2d(*a, padding=1), inputs)
    check_against_torch(torch, rng, conv2d, torch.nn.functional.conv2d, cfg)
    assert "conv_grad_weight" in winograd_calls


@pytest.mark.parametrize("case", range(4))
def test_winograd_gradcheck(rng, winograd_calls, case):
    cfg = winograd_config(rng)
    inputs = [t for t in make_inputs(rng, cfg) if t is not None]
    assert mdl.gradcheck(lambda *a: conv2d(*a, **cfg["kwargs"]), inputs)
    assert winograd_calls


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("budget", [1, 20000], ids=["tile-row-bands", "sample-blocks"])
def test_winograd_blocks_match_torch(torch, rng, monkeypatch, winograd_calls, budget, workers):
    """Tiles cut into bands of tile rows (odd output size: a half tile at the bottom) or blocks of a few
    samples, shared among 1, 2 or 3 worker threads."""
    monkeypatch.setattr(blocks, "BLOCK_BYTES", budget)
    monkeypatch.setattr(blocks, "MIN_COLUMNS", 1)
    monkeypatch.setattr(threads, "_workers", workers)
    cfg = dict(x=(5, 3, 9, 8), W=(4, 3, 3, 3), b=(4,), kwargs=dict(padding=1))
    check_against_torch(torch, rng, conv2d, torch.nn.functional.conv2d, cfg)
    assert sorted(winograd_calls) == ["conv_grad_input", "conv_grad_weight", "conv_output"]


def test_winograd_float32_matches_torch(torch, rng):
    """At the default threshold and in float32, as the seed models run it (VGG-16's 64->64 layer): the
    transforms round differently from a direct sum, within a few float32 units of PyTorch."""
    x = rng.standard_normal((8, 64, 12, 12)).astype(np.float32)  # 1,152 positions: above MIN_POSITIONS
    W = (rng.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    gy = rng.standard_normal((8, 64, 12, 12)).astype(np.float32)
    assert winograd.suits(3, 3, (1, 1), (1, 1), 1, 64, 64, 8 * 12 * 12, (12, 12))
    mx, mW = mdl.tensor(x, requires_grad=True), mdl.tensor(W, requires_grad=True)
    y = conv2d(mx, mW, padding=1)
    y.backward(mdl.tensor(gy))
    tx, tW = torch.tensor(x, requires_grad=True), torch.tensor(W, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tW, padding=1)
    ty.backward(torch.tensor(gy))
    for ours, theirs in ((y, ty), (mx.grad, tx.grad), (mW.grad, tW.grad)):
        theirs = theirs.detach().numpy()
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=2e-5 * np.abs(theirs).max())


@pytest.mark.parametrize("path", ["im2col", "winograd"])
def test_conv_uneven_bands_on_three_workers_match_torch(torch, rng, monkeypatch, request, path):
    """Bands of 5 and 4 output rows (9 rows per sample), dealt to 3 workers: the second worker starts on a
    short band and goes on to a full one, so its buffers must grow (they once stayed at the first size)."""
    monkeypatch.setattr(direct, "MAX_FILTERS", 0)
    if path == "winograd":
        request.getfixturevalue("winograd_calls")
    x_shape, W_shape = (3, 4, 9, 8), (6, 4, 3, 3)
    column_bytes = 8 * (4 * 9 + 6) if path == "im2col" else 16 * 8 * (4 + 6)  # float64 buffers per column
    width = 8 if path == "im2col" else 4  # output columns, or tile columns
    rows = 5 if path == "im2col" else 3  # output rows, or tile rows (5 tile rows: bands of 3 and 2)
    monkeypatch.setattr(blocks, "BLOCK_BYTES", rows * width * column_bytes)
    monkeypatch.setattr(blocks, "MIN_COLUMNS", 1)
    monkeypatch.setattr(threads, "_workers", 3)
    cfg = dict(x=x_shape, W=W_shape, b=(6,), kwargs=dict(padding=1))
    check_against_torch(torch, rng, conv2d, torch.nn.functional.conv2d, cfg)


def test_conv_empty_batch_matches_torch(torch, rng, path):
    """A batch of 0 images: empty outputs and input gradients, zero weight and bias gradients."""
    cfg = dict(x=(0, 4, 6, 5), W=(6, 4, 3, 3), b=(6,), kwargs=dict(padding=1))
    check_against_torch(torch, rng, conv2d, torch.nn.functional.conv2d, cfg)
    cfg = dict(x=(0, 4, 5, 4), W=(4, 3, 3, 2), b=(3,), kwargs=dict(stride=2))
    check_against_torch(torch, rng, conv_transpose2d, torch.nn.functional.conv_transpose2d, cfg)


def test_conv2d_unbatched_input(torch, rng, path):
    """A (C, H, W) input is one image: the output is (O, OH, OW), the gradient (C, H, W)."""
    cfg = dict(x=(3, 6, 5), W=(4, 3, 3, 3), b=(4,), kwargs=dict(padding=1))
    check_against_torch(torch, rng, conv2d, torch.nn.functional.conv2d, cfg)


def test_conv2d_float32_keeps_dtype(torch, rng, path):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    y = conv2d(mdl.tensor(x), mdl.tensor(w), mdl.tensor(b), padding=1)
    assert y.dtype == np.float32
    expected = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), padding=1)
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)


@pytest.fixture
def small_maps(monkeypatch):
    """The direct sums on maps of any size (the tests' maps are smaller than direct.MIN_POSITIONS)."""
    monkeypatch.setattr(direct, "MIN_POSITIONS", 1)


def direct_config(rng) -> dict:
    """A random stride-1 conv2d with a thin filter bank, thin enough for all three products to take the direct
    sums: groups (depthwise among them), dilation, paddings; an odd or even count of filters and channels per
    group (the kernels take them two at a time)."""
    G = int(rng.choice([1, 2, 3]))
    Cg = int(rng.integers(1, 9))
    N, Og = int(rng.integers(1, 3)), int(rng.integers(1, direct.MAX_INPUT_GRAD_FILTERS + 1))
    KH, KW = (int(v) for v in rng.integers(1, 6, size=2))
    dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    padding = [int(rng.integers(0, 3)), (int(rng.integers(0, 3)), int(rng.integers(0, 3))), "same"][rng.integers(3)]
    H, W = (int(v) for v in rng.integers(1, 9, size=2))
    PH, PW = (0, 0) if padding == "same" else (padding, padding) if isinstance(padding, int) else padding
    H, W = max(H, dilation[0] * (KH - 1) + 1 - 2 * PH), max(W, dilation[1] * (KW - 1) + 1 - 2 * PW)
    return dict(x=(N, Cg * G, H, W), W=(Og * G, Cg, KH, KW), b=(Og * G,) if rng.integers(2) else None,
                kwargs=dict(padding=padding, dilation=dilation, groups=G))


@pytest.mark.parametrize("case", range(8))
def test_direct_conv2d_gradchecks_and_matches_torch(torch, rng, direct_calls, small_maps, case):
    """At the default threshold: thin filter banks take the direct sums for the forward and both gradients."""
    cfg = direct_config(rng)
    inputs = [t for t in make_inputs(rng, cfg) if t is not None]
    assert mdl.gradcheck(lambda *a: conv2d(*a, **cfg["kwargs"]), inputs)
    check_against_torch(torch, rng, conv2d, torch.nn.functional.conv2d, cfg)
    assert set(direct_calls) == {"conv_direct", "conv_direct_grad_input", "conv_direct_grad_weight"}


@pytest.mark.parametrize("case", range(4))
def test_direct_conv_transpose2d_matches_torch(torch, rng, direct_calls, small_maps, case):
    """A stride-1 transposed convolution whose conv2d view has a thin filter bank: its forward is the direct
    input gradient, its gradients the direct forward and weight gradient."""
    G = int(rng.choice([1, 2]))
    N, Cg, Og = (int(v) for v in rng.integers(1, 4, size=3))
    H, W = (int(v) for v in rng.integers(1, 7, size=2))
    dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    output_padding = tuple(int(rng.integers(0, d)) for d in dilation)
    cfg = dict(x=(N, Cg * G, H, W), W=(Cg * G, Og, 3, 2), b=(Og * G,) if rng.integers(2) else None,
               kwargs=dict(padding=(1, 0), output_padding=output_padding, groups=G, dilation=dilation))
    check_against_torch(torch, rng, conv_transpose2d, torch.nn.functional.conv_transpose2d, cfg)
    assert set(direct_calls) == {"conv_direct", "conv_direct_grad_input", "conv_direct_grad_weight"}


def test_direct_conv2d_float32_matches_torch(torch, rng):
    """LeNet's first layer as the seed model runs it: float32, 6 filters of 3x5x5 on 32x32 images."""
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    W = (rng.standard_normal((6, 3, 5, 5)) / 9).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    gy = rng.standard_normal((4, 6, 28, 28)).astype(np.float32)
    mx, mW, mb = (mdl.tensor(a, requires_grad=True) for a in (x, W, b))
    y = conv2d(mx, mW, mb)
    y.backward(mdl.tensor(gy))
    tx, tW, tb = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    ty = torch.nn.functional.conv2d(tx, tW, tb)
    ty.backward(torch.tensor(gy))
    for ours, theirs in ((y, ty), (mx.grad, tx.grad), (mW.grad, tW.grad), (mb.grad, tb.grad)):
        theirs = theirs.detach().numpy()
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=2e-5 * np.abs(theirs).max())


@pytest.mark.parametrize("x_shape, W_shape, expected", [
    ((2, 6, 14, 14), (16, 6, 5, 5), {"conv_direct", "conv_direct_grad_weight"}),  # LeNet's conv2: gx on im2col
    ((2, 32, 12, 12), (5, 32, 2, 2), {"conv_direct", "conv_direct_grad_weight", "conv_direct_grad_input"}),
    ((2, 3, 14, 14), (24, 3, 5, 5), set()),  # more filters than direct.MAX_FILTERS
    ((2, 3, 12, 12), (6, 3, 5, 5), set()),  # 8x8 outputs: fewer positions than direct.MIN_POSITIONS
], ids=["16-filters", "5-filters-32-channels", "24-filters", "small-maps"])
def test_direct_sums_per_product(torch, rng, direct_calls, x_shape, W_shape, expected):
    """Each product takes the direct sums by its own rule (the output and weight gradient up to
    direct.MAX_FILTERS filters, the input gradient up to direct.MAX_INPUT_GRAD_FILTERS, on maps of at least
    direct.MIN_POSITIONS outputs), and every mix gives PyTorch's numbers (float32)."""
    x = rng.standard_normal(x_shape).astype(np.float32)
    W = (rng.standard_normal(W_shape) / np.sqrt(np.prod(W_shape[1:]))).astype(np.float32)
    b = rng.standard_normal(W_shape[0]).astype(np.float32)
    mx, mW, mb = (mdl.tensor(a, requires_grad=True) for a in (x, W, b))
    y = conv2d(mx, mW, mb)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(mdl.tensor(gy))
    tx, tW, tb = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    ty = torch.nn.functional.conv2d(tx, tW, tb)
    ty.backward(torch.tensor(gy))
    assert set(direct_calls) == expected
    for ours, theirs in ((y, ty), (mx.grad, tx.grad), (mW.grad, tW.grad), (mb.grad, tb.grad)):
        theirs = theirs.detach().numpy()
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=2e-5 * np.abs(theirs).max())


def test_conv_transpose2d_is_the_adjoint_of_conv2d(rng):
    """<conv2d(x, W), y> == <x, conv_transpose2d(y, W)> with the same W, stride, padding, dilation, groups."""
    x, W, y = tensor64(rng, 2, 4, 7, 6), tensor64(rng, 6, 2, 3, 2), tensor64(rng, 2, 6, 4, 3)
    kwargs = dict(stride=2, padding=(1, 1), dilation=(1, 2), groups=2)
    conv_x = conv2d(x, W, **kwargs)
    assert conv_x.shape == y.shape
    transposed_y = conv_transpose2d(y, W, output_padding=(0, 1), **kwargs)
    assert transposed_y.shape == x.shape
    np.testing.assert_allclose((conv_x.numpy() * y.numpy()).sum(), (x.numpy() * transposed_y.numpy()).sum(),
                               rtol=1e-12)


# ----------------------------------------------------------------------------------- conv_transpose2d


@pytest.mark.parametrize("case", range(8))
def test_conv_transpose2d_gradcheck(rng, path, case):
    cfg = conv_transpose_config(rng)
    inputs = [t for t in make_inputs(rng, cfg) if t is not None]
    assert mdl.gradcheck(lambda *a: conv_transpose2d(*a, **cfg["kwargs"]), inputs)


@pytest.mark.parametrize("case", range(12))
def test_conv_transpose2d_matches_torch(torch, rng, path, case):
    check_against_torch(torch, rng, conv_transpose2d, torch.nn.functional.conv_transpose2d,
                        conv_transpose_config(rng))


def test_conv_transpose2d_unbatched_input(torch, rng):
    cfg = dict(x=(4, 3, 5), W=(4, 3, 3, 3), b=(6,), kwargs=dict(stride=2, groups=2, output_padding=1))
    check_against_torch(torch, rng, conv_transpose2d, torch.nn.functional.conv_transpose2d, cfg)


# ----------------------------------------------------------------------------------- errors


def t(*shape, dtype=np.float32):
    return mdl.tensor(np.zeros(shape, dtype=dtype))


@pytest.mark.parametrize("call, error, fragments", [
    (lambda: conv2d(t(8, 8), t(8, 3, 3, 3)), ValueError, ["conv2d", "input", "(8, 8)"]),
    (lambda: conv2d(t(2, 3, 8, 8), t(8, 3, 3)), ValueError, ["conv2d", "weight", "(8, 3, 3)"]),
    (lambda: conv2d(t(2, 1, 8, 8), t(8, 3, 3, 3)), ValueError,
     ["conv2d: expected input with 3 channels (weight (8, 3, 3, 3), groups=1), got input of shape (2, 1, 8, 8)"]),
    (lambda: conv2d(t(2, 3, 8, 8), t(8, 1, 3, 3)), ValueError,
     ["conv2d: expected input with 1 channel (", "(2, 3, 8, 8)"]),
    (lambda: conv2d(t(2, 6, 8, 8), t(8, 3, 3, 3), groups=4), ValueError, ["conv2d", "groups=4", "(8, 3, 3, 3)"]),
    (lambda: conv2d(t(2, 6, 8, 8), t(9, 3, 3, 3), groups=2), ValueError, ["conv2d", "groups=2", "(9, 3, 3, 3)"]),
    (lambda: conv2d(t(2, 3, 2, 2), t(8, 3, 3, 3)), ValueError,
     ["conv2d: input (2, 3, 2, 2) is smaller than the dilated kernel 3x3"]),
    (lambda: conv2d(t(2, 3, 5, 5), t(8, 3, 3, 3), dilation=3), ValueError, ["conv2d", "(2, 3, 5, 5)", "7x7"]),
    (lambda: conv2d(t(2, 3, 8, 8), t(8, 3, 3, 3, dtype=np.float64)), TypeError, ["conv2d", "float64", "float32"]),
    (lambda: conv2d(t(2, 3, 8, 8), t(8, 3, 3, 3), t(4)), ValueError, ["conv2d", "bias", "(8,)", "(4,)"]),
    (lambda: conv2d(t(2, 3, 8, 8), t(8, 3, 3, 3), padding="same", stride=2), ValueError, ["conv2d", "same", "stride"]),
    (lambda: conv2d(t(2, 3, 8, 8), t(8, 3, 3, 3), padding="full"), ValueError, ["conv2d", "'full'"]),
    (lambda: conv2d(t(2, 3, 8, 8), t(8, 3, 3, 3), padding=-1), ValueError, ["conv2d", "padding", "(-1, -1)"]),
    (lambda: conv2d(t(2, 3, 8, 8), t(8, 3, 3, 3), stride=0), ValueError, ["conv2d", "stride", "(0, 0)"]),
    (lambda: conv2d(t(2, 3, 8, 8), t(8, 3, 3, 3), groups=0), ValueError, ["conv2d", "groups"]),
    (lambda: conv_transpose2d(t(2, 3, 5, 5), t(4, 2, 3, 3)), ValueError,
     ["conv_transpose2d: expected input with 4 channels (weight (4, 2, 3, 3), groups=1), got input of shape "
      "(2, 3, 5, 5)"]),
    (lambda: conv_transpose2d(t(2, 3, 5, 5), t(3, 2, 3, 3), groups=2), ValueError,
     ["conv_transpose2d", "groups=2", "(3, 2, 3, 3)"]),
    (lambda: conv_transpose2d(t(2, 3, 5, 5), t(3, 2, 3, 3), output_padding=1), ValueError,
     ["conv_transpose2d", "output_padding (1, 1)", "stride (1, 1)", "dilation (1, 1)"]),
    (lambda: conv_transpose2d(t(2, 3, 1, 1), t(3, 2, 3, 3), padding=2), ValueError,
     ["conv_transpose2d", "(2, 3, 1, 1)", "(3, 2, 3, 3)"]),
    (lambda: conv_transpose2d(t(2, 3, 5, 5), t(3, 2, 3, 3), padding="same"), ValueError,
     ["conv_transpose2d", "padding", "'same'"]),
    (lambda: conv_transpose2d(t(2, 3, 5, 5), t(3, 2, 3, 3), t(3)), ValueError, ["conv_transpose2d", "bias", "(2,)"]),
    (lambda: conv_transpose2d(t(2, 3, 5, 5), t(3, 2, 3, 3, dtype=np.float64)), TypeError,
     ["conv_transpose2d", "float64"]),
])
def test_bad_arguments_raise_naming_op_and_shapes(call, error, fragments):
    with pytest.raises(error) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value)
