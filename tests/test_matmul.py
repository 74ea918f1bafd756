"""Matrix products and the fused linear op."""
import numpy as np
import pytest
from conftest import compare_with_torch

import minidl as mdl
import minidl.nn.functional as F

MATMUL_SHAPES = [((3, 4), (4, 5)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
                 ((2, 1, 3, 4), (5, 4, 2)), ((6, 4), (2, 4, 3))]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES)
def test_matmul_gradcheck_and_torch(shapes, rng, torch):
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    assert mdl.gradcheck(lambda x, y: x @ y, [mdl.tensor(a, requires_grad=True), mdl.tensor(b, requires_grad=True)])
    compare_with_torch(torch, lambda x, y: x @ y, lambda x, y: x @ y, [a, b], rng)


def test_matmul_shape_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        mdl.zeros(2, 3) @ mdl.zeros(4, 5)


@pytest.mark.parametrize("x_shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck_and_torch(x_shape, bias, rng, torch):
    arrays = [rng.standard_normal(x_shape), rng.standard_normal((3, 4))] + ([rng.standard_normal(3)] if bias else [])
    assert mdl.gradcheck(F.linear, [mdl.tensor(a, requires_grad=True) for a in arrays])
    compare_with_torch(torch, F.linear, torch.nn.functional.linear, arrays, rng)


def test_linear_errors_name_the_op_and_shapes():
    W = mdl.zeros(120, 288)
    with pytest.raises(ValueError, match=r"linear: expected input with last dimension 288.*\(4, 800\)"):
        F.linear(mdl.zeros(4, 800), W)
    with pytest.raises(TypeError, match="linear: weight has dtype float32 but input has dtype float64"):
        F.linear(mdl.zeros(4, 288, dtype=mdl.float64), W)
    with pytest.raises(ValueError, match="bias of shape"):
        F.linear(mdl.zeros(4, 288), W, mdl.zeros(7))


def test_linear_keeps_float32(rng):
    y = F.linear(mdl.randn(2, 3), mdl.randn(4, 3), mdl.randn(4))
    assert y.dtype == np.float32
