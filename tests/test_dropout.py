"""dropout and dropout2d.

Inputs are random normals (never exactly 0, so a zero in the output marks a dropped element). Masks cannot
be compared with PyTorch's (different generators); what is checked is their law: the fraction dropped,
the scale 1 / (1 - p) of kept values, whole channels for dropout2d, reproducibility under manual_seed, and
that the gradient is the same mask times the upstream gradient.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import tensor64

import minidl as mdl
import minidl.nn.functional as F

OPS = ["dropout", "dropout2d"]


def nonzero_normals(rng, shape):
    x = rng.standard_normal(shape)
    x[x == 0] = 1.0
    return x


@pytest.mark.parametrize("op", OPS)
def test_eval_mode_is_identity(rng, torch, op):
    x = mdl.tensor(nonzero_normals(rng, (4, 3, 2, 2)), requires_grad=True)
    y = getattr(F, op)(x, p=0.7, training=False)
    yt = getattr(torch.nn.functional, op)(torch.tensor(x.numpy()), p=0.7, training=False)
    np.testing.assert_array_equal(y.numpy(), yt.numpy())
    np.testing.assert_array_equal(y.numpy(), x.numpy())


@pytest.mark.parametrize("op", OPS)
def test_p_zero_is_identity_and_p_one_gives_zeros(rng, torch, op):
    x = nonzero_normals(rng, (4, 3, 2, 2))
    fn, fn_t = getattr(F, op), getattr(torch.nn.functional, op)
    np.testing.assert_array_equal(fn(mdl.tensor(x), p=0.0).numpy(), fn_t(torch.tensor(x), p=0.0).numpy())
    xm = mdl.tensor(x, requires_grad=True)
    y = fn(xm, p=1.0)
    np.testing.assert_array_equal(y.numpy(), fn_t(torch.tensor(x), p=1.0).numpy())
    assert not y.numpy().any() and np.isfinite(y.numpy()).all()
    y.backward(mdl.tensor(rng.standard_normal(x.shape)))
    assert not xm.grad.numpy().any()


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_mask_statistics(rng, p):
    x = mdl.tensor(nonzero_normals(rng, (400, 500)))
    y = F.dropout(x, p=p).numpy()
    kept = y != 0
    n = kept.size
    # the dropped fraction is Binomial(n, p) / n: within 5 standard deviations of p
    assert abs((1 - kept.mean()) - p) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y[kept], x.numpy()[kept] / (1 - p), rtol=1e-12)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("shape", [(40, 50, 3, 2), (60, 30, 1, 4)])
def test_dropout2d_drops_whole_channels(rng, shape):
    p = 0.3
    x = mdl.tensor(nonzero_normals(rng, shape))
    y = F.dropout2d(x, p=p).numpy()
    kept = (y != 0).reshape(shape[0], shape[1], -1)
    assert np.all(kept.all(axis=2) | ~kept.any(axis=2)), "a channel was only partly dropped"
    channel_kept = kept[:, :, 0]
    assert abs((1 - channel_kept.mean()) - p) < 5 * np.sqrt(p * (1 - p) / channel_kept.size)
    np.testing.assert_allclose(y[y != 0], x.numpy()[y != 0] / (1 - p), rtol=1e-12)


def test_dropout2d_3d_input_is_channelwise_over_n_c_l_like_torch(rng, torch):
    # PyTorch 2.x reads a 3-D input as (N, C, L) and warns; the mask is one value per (n, c)
    x = mdl.tensor(nonzero_normals(rng, (6, 5, 8)))
    with pytest.warns(UserWarning, match="dropout2d: Received a 3D input"):
        y = F.dropout2d(x, p=0.5).numpy()
    kept = y != 0
    assert np.all(kept.all(axis=2) | ~kept.any(axis=2))
    with pytest.warns(UserWarning, match="dropout2d: Received a 3D input"):
        torch.nn.functional.dropout2d(torch.tensor(x.numpy()), p=0.5)


def test_dropout2d_other_ranks():
    with pytest.warns(UserWarning, match="dropout2d: Received a 2-D input to dropout2d, which is deprecated"):
        F.dropout2d(mdl.ones(4, 3), p=0.5)
    with pytest.warns(UserWarning, match="dropout2d: Received a 5-D input"):
        y = F.dropout2d(mdl.ones(2, 3, 2, 2, 2), p=0.5).numpy()
    kept = (y != 0).reshape(2, 3, -1)
    assert np.all(kept.all(axis=2) | ~kept.any(axis=2))
    with pytest.raises(ValueError, match=r"dropout2d: feature dropout requires at least 2 dimensions in the input, "
                                         r"got input of shape \(3,\)"):
        F.dropout2d(mdl.ones(3), p=0.5)


@pytest.mark.parametrize("op", OPS)
def test_manual_seed_reproduces_the_mask(rng, op):
    x = mdl.tensor(nonzero_normals(rng, (8, 6, 3, 3)))
    mdl.manual_seed(123)
    a = getattr(F, op)(x, p=0.5).numpy()
    b = getattr(F, op)(x, p=0.5).numpy()
    mdl.manual_seed(123)
    c = getattr(F, op)(x, p=0.5).numpy()
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b), "two draws in a row gave the same mask"


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("p", [0.2, 0.6])
def test_gradient_is_mask_times_scale(rng, op, p):
    x = mdl.tensor(nonzero_normals(rng, (5, 4, 3, 2)), requires_grad=True)
    y = getattr(F, op)(x, p=p)
    gy = rng.standard_normal(x.shape)
    y.backward(mdl.tensor(gy))
    mask = (y.numpy() != 0) / (1 - p)
    np.testing.assert_allclose(x.grad.numpy(), gy * mask, rtol=1e-12)
    assert (x.grad.numpy()[y.numpy() == 0] == 0).all()


@pytest.mark.parametrize("op", OPS)
def test_gradcheck_with_a_fixed_seed(rng, op):
    x = tensor64(rng, 3, 4, 2, 2)

    def fn(t):
        mdl.manual_seed(7)  # the same mask on every call of the finite-difference loop
        return getattr(F, op)(t, p=0.4)
    assert mdl.gradcheck(fn, [x])


@pytest.mark.parametrize("op", OPS)
def test_float32_stays_float32(rng, op):
    x = mdl.tensor(nonzero_normals(rng, (4, 3, 2, 2)).astype(np.float32), requires_grad=True)
    y = getattr(F, op)(x, p=0.3)
    y.backward(mdl.ones(*x.shape))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    np.testing.assert_allclose(y.numpy()[y.numpy() != 0], x.numpy()[y.numpy() != 0] / np.float32(0.7), rtol=1e-6)


@pytest.mark.parametrize("op", OPS)
def test_inplace_without_grad_writes_into_input(rng, op):
    x = mdl.tensor(nonzero_normals(rng, (4, 3, 2, 2)))
    before = x.numpy()
    out = getattr(F, op)(x, p=0.5, inplace=True)
    assert out is x
    zeros = x.numpy() == 0
    assert zeros.any() and not zeros.all()
    np.testing.assert_allclose(x.numpy()[~zeros], before[~zeros] * 2, rtol=1e-6)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_bad_probability_raises(op, p):
    with pytest.raises(ValueError, match=rf"{op}: dropout probability has to be between 0 and 1, but got {p}"):
        getattr(F, op)(mdl.ones(2, 3, 2, 2), p=p)
