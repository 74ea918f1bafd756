"""Losses: cross_entropy (class indices and class probabilities), nll_loss, mse_loss,
binary_cross_entropy_with_logits.

Inputs are random normals, targets random class indices (some set to ignore_index) or random probabilities.
Each configuration (weights, ignore_index, reductions, label smoothing, pos_weight, broadcasting) is compared
with PyTorch forward and backward in float64 with a random upstream gradient; gradients are also checked by
finite differences on randomized configurations.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import tensor64

import minidl as mdl
import minidl.nn.functional as F

REDUCTIONS = ["none", "mean", "sum"]
CLASS_SHAPES = [(5, 4), (3, 4, 2, 3), (4,)]


def class_target(rng, input_shape, ignore_index=None, n_ignored=2):
    """Random class indices for ``input_shape`` (N, C, *) or (C,); ``n_ignored`` of them set to ignore_index."""
    C = input_shape[0] if len(input_shape) == 1 else input_shape[1]
    t_shape = () if len(input_shape) == 1 else (input_shape[0],) + tuple(input_shape[2:])
    t = rng.integers(0, C, t_shape)
    if ignore_index is not None and t.size > n_ignored:
        t.reshape(-1)[rng.choice(t.size, n_ignored, replace=False)] = ignore_index
    return t


def probabilities(rng, shape):
    """Random class probabilities summing to one over the class axis (1, or 0 for an unbatched input)."""
    axis = 0 if len(shape) == 1 else 1
    e = np.exp(rng.standard_normal(shape))
    return e / e.sum(axis=axis, keepdims=True)


def compare(torch, rng, m_fn, t_fn, arrays, grads, device="cpu", rtol=1e-6):
    """Call ``m_fn`` and ``t_fn`` on the same arrays; compare outputs and the gradients of ``grads``.

    ``arrays`` is a list of NumPy arrays or None; ``grads[i]`` says whether arrays[i] requires grad.
    """
    ms = [None if a is None else mdl.tensor(a, requires_grad=g, device=device) for a, g in zip(arrays, grads)]
    ts = [None if a is None else torch.tensor(a, requires_grad=g) for a, g in zip(arrays, grads)]
    y, yt = m_fn(*ms), t_fn(*ts)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=rtol, atol=1e-12)
    assert y.shape == tuple(yt.shape)
    if any(grads):
        gy = rng.standard_normal(y.shape)
        y.backward(mdl.tensor(gy, device=device))
        yt.backward(torch.tensor(gy))
        for m, t, g in zip(ms, ts, grads):
            if g:
                np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=1e-12)
    return y


# ----------------------------------------------------------------------------------------- cross_entropy
@pytest.mark.parametrize("shape", CLASS_SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 1, 255])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
def test_cross_entropy_matches_torch(rng, torch, device, shape, weighted, ignore_index, reduction, label_smoothing):
    x = rng.standard_normal(shape) * 2
    C = shape[0] if len(shape) == 1 else shape[1]
    t = class_target(rng, shape, ignore_index)
    w = rng.random(C) + 0.1 if weighted else None
    kw = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)
    compare(torch, rng, lambda x, t, w: F.cross_entropy(x, t, w, **kw),
            lambda x, t, w: torch.nn.functional.cross_entropy(x, t, w, **kw), [x, t, w], [True, False, False],
            device)


@pytest.mark.parametrize("shape", CLASS_SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_cross_entropy_probability_targets_match_torch(rng, torch, device, shape, weighted, reduction,
                                                       label_smoothing):
    x = rng.standard_normal(shape) * 2
    C = shape[0] if len(shape) == 1 else shape[1]
    q = probabilities(rng, shape)
    w = rng.random(C) + 0.1 if weighted else None
    kw = dict(reduction=reduction, label_smoothing=label_smoothing)
    compare(torch, rng, lambda x, q, w: F.cross_entropy(x, q, w, **kw),
            lambda x, q, w: torch.nn.functional.cross_entropy(x, q, w, **kw), [x, q, w], [True, True, weighted],
            device)


def random_ce_config(rng):
    ndim = int(rng.integers(2, 4))
    shape = (int(rng.integers(1, 4)), int(rng.integers(2, 5))) + tuple(int(n) for n in rng.integers(1, 3, ndim - 2))
    return dict(shape=shape, C=shape[1], weighted=bool(rng.integers(2)), reduction=REDUCTIONS[rng.integers(3)],
                label_smoothing=float(rng.choice([0.0, rng.uniform(0.05, 0.5)])))


@pytest.mark.parametrize("case", range(6))
def test_cross_entropy_gradcheck(rng, case):
    cfg = random_ce_config(rng)
    x = tensor64(rng, *cfg["shape"])
    t = mdl.tensor(class_target(rng, cfg["shape"], -100, n_ignored=1))
    w = mdl.tensor(rng.random(cfg["C"]) + 0.1) if cfg["weighted"] else None
    assert mdl.gradcheck(lambda x: F.cross_entropy(x, t, w, reduction=cfg["reduction"],
                                                   label_smoothing=cfg["label_smoothing"]), [x])


@pytest.mark.parametrize("case", range(4))
def test_cross_entropy_probability_targets_gradcheck(rng, case):
    cfg = random_ce_config(rng)
    x, q = tensor64(rng, *cfg["shape"]), mdl.tensor(probabilities(rng, cfg["shape"]), requires_grad=True)
    w = tensor64(rng, cfg["C"]) if cfg["weighted"] else None
    inputs = [x, q] + ([w] if w is not None else [])
    assert mdl.gradcheck(lambda x, q, w=None: F.cross_entropy(x, q, w, reduction=cfg["reduction"],
                                                              label_smoothing=cfg["label_smoothing"]), inputs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_huge_logits_finite_and_equal_to_torch(rng, torch, dtype):
    x = (rng.standard_normal((6, 5)) * 1e4).astype(dtype)
    x[0] = [1e4, -1e4, 1e4, 0.0, -5e3]
    t = rng.integers(0, 5, 6)
    gy = np.float64(rng.standard_normal())
    for target, t_target in [(mdl.tensor(t), torch.tensor(t)),
                             (mdl.tensor(probabilities(rng, (6, 5)).astype(dtype)), None)]:
        t_target = torch.tensor(target.numpy()) if t_target is None else t_target
        xm, xt = mdl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        with np.errstate(over="raise", invalid="raise"):
            y = F.cross_entropy(xm, target, label_smoothing=0.1)
            y.backward(mdl.tensor(np.array(gy, dtype=dtype)))
        yt = torch.nn.functional.cross_entropy(xt, t_target, label_smoothing=0.1)
        yt.backward(torch.tensor(gy, dtype=yt.dtype))
        assert np.isfinite(y.item()) and np.all(np.isfinite(xm.grad.numpy()))
        assert y.dtype == dtype and xm.grad.dtype == dtype
        np.testing.assert_allclose(y.item(), yt.item(), rtol=1e-6 if dtype == np.float64 else 1e-5)
        np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_cross_entropy_gradient_is_softmax_minus_onehot(rng):
    x = tensor64(rng, 4, 3)
    t = np.array([0, 2, 1, 2])
    F.cross_entropy(x, mdl.tensor(t), reduction="sum").backward()
    p = np.exp(x.numpy()) / np.exp(x.numpy()).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(x.grad.numpy(), p - np.eye(3)[t], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kwargs", [dict(), dict(label_smoothing=0.2), dict(weight=np.array([1.0, 2.0, 3.0]))])
def test_cross_entropy_all_ignored_is_nan_like_torch(torch, kwargs):
    x, t = np.zeros((2, 3)), np.full(2, -100)
    w = kwargs.pop("weight", None)
    y = F.cross_entropy(mdl.tensor(x), mdl.tensor(t), None if w is None else mdl.tensor(w), **kwargs)
    yt = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t), None if w is None else torch.tensor(w),
                                           **kwargs)
    assert np.isnan(y.item()) and np.isnan(yt.item())


def test_cross_entropy_unsigned_int_targets_accepted(rng):
    x = mdl.tensor(rng.standard_normal((4, 3)))
    t = rng.integers(0, 3, 4)
    a = F.cross_entropy(x, mdl.tensor(t.astype(np.uint8))).item()
    assert a == F.cross_entropy(x, mdl.tensor(t)).item()


def test_cross_entropy_float32_stays_float32(rng):
    x = mdl.tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    for target in (mdl.tensor(rng.integers(0, 3, 4)), mdl.tensor(probabilities(rng, (4, 3)).astype(np.float32))):
        y = F.cross_entropy(x, target, mdl.ones(3), label_smoothing=0.1)
        y.backward()
        assert y.dtype == np.float32 and x.grad.dtype == np.float32


@pytest.mark.parametrize("legacy,reduction", [(dict(size_average=False), "sum"), (dict(reduce=False), "none")])
def test_cross_entropy_legacy_flags_warn_and_translate(rng, legacy, reduction):
    x, t = mdl.tensor(rng.standard_normal((4, 3))), mdl.tensor(rng.integers(0, 3, 4))
    with pytest.warns(UserWarning, match=f"reduction='{reduction}'"):
        y = F.cross_entropy(x, t, **legacy)
    np.testing.assert_array_equal(y.numpy(), F.cross_entropy(x, t, reduction=reduction).numpy())


# ----------------------------------------------------------------------------------------- nll_loss
@pytest.mark.parametrize("shape", CLASS_SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_matches_torch(rng, torch, device, shape, weighted, ignore_index, reduction):
    x = rng.standard_normal(shape)
    C = shape[0] if len(shape) == 1 else shape[1]
    t = class_target(rng, shape, ignore_index)
    w = rng.random(C) + 0.1 if weighted else None
    kw = dict(ignore_index=ignore_index, reduction=reduction)
    compare(torch, rng, lambda x, t, w: F.nll_loss(x, t, w, **kw),
            lambda x, t, w: torch.nn.functional.nll_loss(x, t, w, **kw), [x, t, w], [True, False, False], device)


@pytest.mark.parametrize("case", range(4))
def test_nll_loss_gradcheck(rng, case):
    cfg = random_ce_config(rng)
    x = tensor64(rng, *cfg["shape"])
    t = mdl.tensor(class_target(rng, cfg["shape"], -100, n_ignored=1))
    w = mdl.tensor(rng.random(cfg["C"]) + 0.1) if cfg["weighted"] else None
    assert mdl.gradcheck(lambda x: F.nll_loss(x, t, w, reduction=cfg["reduction"]), [x])


def test_nll_of_log_softmax_equals_cross_entropy(rng):
    x, t = mdl.tensor(rng.standard_normal((3, 4, 5))), mdl.tensor(rng.integers(0, 4, (3, 5)))
    np.testing.assert_allclose(F.nll_loss(F.log_softmax(x, dim=1), t).item(), F.cross_entropy(x, t).item(),
                               rtol=1e-12)


# ----------------------------------------------------------------------------------------- class-target errors
@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
def test_error_target_out_of_range_names_op_and_value(op):
    x = mdl.zeros(4, 3)
    with pytest.raises(IndexError, match=rf"{op}: target 3 is out of bounds.*\[0, 2\].*\(4, 3\)"):
        getattr(F, op)(x, mdl.tensor([0, 1, 3, 1]))
    with pytest.raises(IndexError, match=rf"{op}: target -1 is out of bounds"):
        getattr(F, op)(x, mdl.tensor([0, 1, -1, 1]))
    getattr(F, op)(x, mdl.tensor([0, 1, -1, 1]), ignore_index=-1)  # the ignored value itself is fine


@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
def test_error_target_shape_names_both_shapes(op):
    with pytest.raises(ValueError, match=rf"{op}: expected target of shape \(4,\) for input of shape \(4, 3\), "
                                         rf"got target of shape \(3,\)"):
        getattr(F, op)(mdl.zeros(4, 3), mdl.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"expected target of shape \(2, 4, 5\) for input of shape \(2, 3, 4, 5\), "
                                         r"got target of shape \(2, 4, 6\)"):
        getattr(F, op)(mdl.zeros(2, 3, 4, 5), mdl.zeros(2, 4, 6, dtype=mdl.int64))


@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
def test_error_bool_target_dtype(op):
    with pytest.raises(TypeError, match=rf"{op}: expected a target of class indices with an integer dtype"):
        getattr(F, op)(mdl.zeros(2, 3), mdl.tensor(np.array([True, False])))


def test_error_float_target_of_wrong_shape():
    with pytest.raises(ValueError, match=r"cross_entropy: a floating-point target holds class probabilities and "
                                         r"must have the input's shape \(4, 3\), got target of shape \(4,\)"):
        F.cross_entropy(mdl.zeros(4, 3), mdl.zeros(4))
    with pytest.raises(TypeError, match="nll_loss: expected a target of class indices with an integer dtype"):
        F.nll_loss(mdl.zeros(4, 3), mdl.zeros(4))


def test_error_cross_entropy_arguments():
    x, t = mdl.zeros(4, 3), mdl.tensor([0, 1, 2, 1])
    with pytest.raises(ValueError, match=r"cross_entropy: weight should be defined for all 3 classes, got weight "
                                         r"of shape \(4,\)"):
        F.cross_entropy(x, t, mdl.ones(4))
    with pytest.raises(TypeError, match="cross_entropy: weight has dtype float64 but input has dtype float32"):
        F.cross_entropy(x, t, mdl.ones(3, dtype=mdl.float64))
    with pytest.raises(ValueError, match="cross_entropy: label_smoothing must be between 0.0 and 1.0, got 1.5"):
        F.cross_entropy(x, t, label_smoothing=1.5)
    with pytest.raises(ValueError, match="cross_entropy: 'avg' is not a valid value for reduction"):
        F.cross_entropy(x, t, reduction="avg")
    with pytest.raises(ValueError, match="cross_entropy: ignore_index is not supported for floating-point"):
        F.cross_entropy(x, mdl.zeros(4, 3), ignore_index=0)
    with pytest.raises(RuntimeError, match="cross_entropy: weight is not differentiable"):
        F.cross_entropy(x, t, mdl.ones(3, requires_grad=True))


# ----------------------------------------------------------------------------------------- mse_loss
MSE_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (3, 4)), ((2, 3, 4), (2, 3, 4))]


@pytest.mark.parametrize("shapes", MSE_SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_mse_loss_matches_torch(rng, torch, device, shapes, reduction, weighted):
    x_shape, t_shape = shapes
    x, t = rng.standard_normal(x_shape), rng.standard_normal(t_shape)
    w = rng.random(x_shape) + 0.1 if weighted else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the broadcast warning, tested below
        compare(torch, rng, lambda x, t, w: F.mse_loss(x, t, reduction=reduction, weight=w),
                lambda x, t, w: torch.nn.functional.mse_loss(x, t, reduction=reduction, weight=w), [x, t, w],
                [True, True, weighted], device)


@pytest.mark.parametrize("shapes", MSE_SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_gradcheck(rng, shapes, reduction):
    x, t = tensor64(rng, *shapes[0]), tensor64(rng, *shapes[1])
    w = mdl.tensor(rng.random(shapes[0]) + 0.1, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert mdl.gradcheck(lambda x, t: F.mse_loss(x, t, reduction=reduction), [x, t])
        assert mdl.gradcheck(lambda x, t, w: F.mse_loss(x, t, reduction=reduction, weight=w), [x, t, w])


def test_mse_loss_broadcast_warns_with_both_shapes():
    with pytest.warns(UserWarning, match=r"mse_loss: Using a target size \(4,\) that is different to the input "
                                         r"size \(3, 4\)"):
        F.mse_loss(mdl.zeros(3, 4), mdl.zeros(4))


def test_mse_loss_errors():
    with pytest.raises(ValueError, match=r"mse_loss: input of shape \(3,\) and target of shape \(2,\) cannot be "
                                         r"broadcast together"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        F.mse_loss(mdl.zeros(3), mdl.zeros(2))
    with pytest.raises(TypeError, match="mse_loss: target has dtype float64 but input has dtype float32"):
        F.mse_loss(mdl.zeros(3), mdl.zeros(3, dtype=mdl.float64))
    with pytest.raises(ValueError, match=r"mse_loss: weight must have the input's shape \(3,\), got weight of "
                                         r"shape \(2,\)"):
        F.mse_loss(mdl.zeros(3), mdl.zeros(3), weight=mdl.ones(2))


# ----------------------------------------------------------------------------------------- BCE with logits
BCE_CASES = [((5, 4), None, None), ((5, 4), (4,), None), ((5, 4), None, (4,)), ((5, 4), (5, 4), (4,)),
             ((2, 3, 4), (3, 1), (2, 1, 4))]


@pytest.mark.parametrize("shape,w_shape,pw_shape", BCE_CASES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_matches_torch(rng, torch, device, shape, w_shape, pw_shape, reduction):
    x, t = rng.standard_normal(shape) * 3, rng.random(shape)
    w = None if w_shape is None else rng.random(w_shape) + 0.1
    pw = None if pw_shape is None else rng.random(pw_shape) * 3
    compare(torch, rng, lambda x, t, w, pw: F.binary_cross_entropy_with_logits(x, t, w, reduction, pw),
            lambda x, t, w, pw: torch.nn.functional.binary_cross_entropy_with_logits(
                x, t, w, reduction=reduction, pos_weight=pw), [x, t, w, pw], [True, True, False, False], device)


@pytest.mark.parametrize("shape,w_shape,pw_shape", BCE_CASES)
def test_bce_with_logits_gradcheck(rng, shape, w_shape, pw_shape):
    x, t = tensor64(rng, *shape), mdl.tensor(rng.random(shape), requires_grad=True)
    w = None if w_shape is None else mdl.tensor(rng.random(w_shape) + 0.1)
    pw = None if pw_shape is None else mdl.tensor(rng.random(pw_shape) * 3)
    reduction = REDUCTIONS[rng.integers(3)]
    assert mdl.gradcheck(lambda x, t: F.binary_cross_entropy_with_logits(x, t, w, reduction, pw), [x, t])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_huge_logits(torch, dtype):
    x = np.array([-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4], dtype=dtype)
    t = np.array([1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0], dtype=dtype)
    xm, xt = mdl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = F.binary_cross_entropy_with_logits(xm, mdl.tensor(t), reduction="none")
        y.backward(mdl.ones(7, dtype=dtype))
    yt = torch.nn.functional.binary_cross_entropy_with_logits(xt, torch.tensor(t), reduction="none")
    yt.backward(torch.ones(7, dtype=yt.dtype))
    assert y.dtype == dtype and np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(xm.grad.numpy()))
    # atol: float32 log1p(e^-100) = 3.8e-44 is subnormal, where the last bit differs from PyTorch's
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-30)


def test_bce_with_logits_errors():
    x = mdl.zeros(2, 3)
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: target size \(3,\) must be the same "
                                         r"as input size \(2, 3\)"):
        F.binary_cross_entropy_with_logits(x, mdl.zeros(3))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: pos_weight of shape \(2,\) cannot be "
                                         r"broadcast to the input's shape \(2, 3\)"):
        F.binary_cross_entropy_with_logits(x, mdl.zeros(2, 3), pos_weight=mdl.ones(2))
    with pytest.raises(ValueError, match=r"weight of shape \(4, 2, 3\) cannot be broadcast"):
        F.binary_cross_entropy_with_logits(x, mdl.zeros(2, 3), weight=mdl.ones(4, 2, 3))
    with pytest.raises(TypeError, match="binary_cross_entropy_with_logits: target has dtype int64 but input has "
                                        "dtype float32"):
        F.binary_cross_entropy_with_logits(x, mdl.zeros(2, 3, dtype=mdl.int64))
    with pytest.raises(RuntimeError, match="binary_cross_entropy_with_logits: pos_weight is not differentiable"):
        F.binary_cross_entropy_with_logits(x, mdl.zeros(2, 3), pos_weight=mdl.ones(3, requires_grad=True))
