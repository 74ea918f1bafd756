"""PyTorch-script compatibility of nn, nn.functional, nn.utils, optim and saving, checked against PyTorch.

What a user of the official PyTorch tutorials ("Neural networks", "Training a classifier", "Optimizing model
parameters", "Saving and loading models") writes must run with ``import minidl`` and give PyTorch's numbers:
every new op is compared with PyTorch forward and backward in float64 with a random upstream gradient and
checked by finite differences; layers and idioms are run side by side with the same weights. The last part
holds item 11's clear errors (float16 into a kernel, nonsense layer sizes, damaged or deep checkpoints), one
test per defect.
"""
from __future__ import annotations

import io
import math
import pickle
import warnings
from collections import OrderedDict

import numpy as np
import pytest
from conftest import tensor64

import minidl as mdl
import minidl.nn as nn
import minidl.nn.functional as F
import minidl.optim as optim
from minidl import serialization
from minidl.serialization import SerializationError


def compare(torch, rng, m_fn, t_fn, arrays, grads, rtol=1e-7, atol=1e-10):
    """Call ``m_fn`` and ``t_fn`` on the same arrays; compare outputs and the gradients of the ``grads`` ones
    after a backward pass with one random upstream gradient."""
    ms = [None if a is None else mdl.tensor(a, requires_grad=g) for a, g in zip(arrays, grads)]
    ts = [None if a is None else torch.tensor(a, requires_grad=g) for a, g in zip(arrays, grads)]
    y, yt = m_fn(*ms), t_fn(*ts)
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=rtol, atol=atol)
    if any(grads):
        gy = rng.standard_normal(y.shape)
        y.backward(mdl.tensor(gy))
        yt.backward(torch.tensor(gy))
        for m, t, g in zip(ms, ts, grads):
            if g:
                np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol)
    return y


# ============================================================================================ activations
ACTIVATIONS = [
    ("elu", lambda F_, x: F_.elu(x)),
    ("elu_alpha", lambda F_, x: F_.elu(x, alpha=0.3)),
    ("gelu", lambda F_, x: F_.gelu(x)),
    ("gelu_tanh", lambda F_, x: F_.gelu(x, approximate="tanh")),
    ("silu", lambda F_, x: F_.silu(x)),
    ("softplus", lambda F_, x: F_.softplus(x)),
    ("softplus_beta", lambda F_, x: F_.softplus(x, beta=3.0, threshold=2.0)),
    ("hardtanh", lambda F_, x: F_.hardtanh(x, -0.5, 1.2)),
    ("relu6", lambda F_, x: F_.relu6(x * 4)),
    ("softmax_dtype", lambda F_, x: F_.softmax(x, dim=1, dtype=_float64(F_))),
    ("log_softmax_dtype", lambda F_, x: F_.log_softmax(x, 1, dtype=_float64(F_))),
]


def _float64(F_):
    return np.float64 if F_ is F else __import__("torch").float64


@pytest.mark.parametrize("name, fn", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_matches_torch_and_gradcheck(rng, torch, name, fn):
    x = rng.standard_normal((4, 5, 3)) * 2
    compare(torch, rng, lambda t: fn(F, t), lambda t: fn(torch.nn.functional, t), [x], [True])
    assert mdl.gradcheck(lambda t: fn(F, t), [tensor64(rng, 3, 4)])


def test_gelu_float32_and_large_inputs(rng, torch):
    x = (rng.standard_normal(200) * 10).astype(np.float32)
    for approximate in ("none", "tanh"):
        np.testing.assert_allclose(F.gelu(mdl.tensor(x), approximate=approximate).numpy(),
                                   torch.nn.functional.gelu(torch.tensor(x), approximate=approximate).numpy(),
                                   rtol=1e-6, atol=1e-6)
    big = np.array([-1000.0, -50.0, 50.0, 1000.0])
    np.testing.assert_allclose(F.softplus(mdl.tensor(big)).numpy(), torch.nn.functional.softplus(torch.tensor(big)))
    np.testing.assert_allclose(F.silu(mdl.tensor(big)).numpy(), torch.nn.functional.silu(torch.tensor(big)))


LAYERS = ["ELU()", "ELU(0.5)", "GELU()", "GELU('tanh')", "SiLU()", "Softplus(2.0, 10.0)", "Hardtanh(-2.0, 3.0)",
          "ReLU6()", "Softmax(dim=1)", "LogSoftmax(dim=1)", "Flatten()", "Unflatten(1, (3, 4))"]


@pytest.mark.parametrize("expr", LAYERS)
def test_layer_matches_torch_and_prints_like_it(rng, torch, expr):
    layer, t_layer = eval("nn." + expr), eval("torch.nn." + expr)
    assert repr(layer) == repr(t_layer)
    x = rng.standard_normal((2, 12)) * 3
    compare(torch, rng, layer, t_layer, [x], [True])


def test_inplace_activations_write_into_their_input(torch):
    x = mdl.tensor([-2.0, 0.5, 9.0])
    assert nn.ReLU6(inplace=True)(x) is x and x.tolist() == [0.0, 0.5, 6.0]
    y = mdl.tensor([-1.0, 1.0])
    assert F.elu(y, inplace=True) is y
    np.testing.assert_allclose(y.numpy(), torch.nn.functional.elu(torch.tensor([-1.0, 1.0])).numpy())


# ============================================================================================ losses
REDUCTIONS = ["none", "mean", "sum"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_matches_torch(rng, torch, reduction, weighted):
    x = rng.uniform(0.05, 0.95, (6, 3))
    t = rng.uniform(0, 1, (6, 3))
    w = rng.uniform(0.5, 2, (3,)) if weighted else None
    compare(torch, rng, lambda x, t, w: F.binary_cross_entropy(x, t, w, reduction=reduction),
            lambda x, t, w: torch.nn.functional.binary_cross_entropy(x, t, w, reduction=reduction),
            [x, t, w], [True, True, False])
    assert mdl.gradcheck(lambda x, t: F.binary_cross_entropy(x, t, reduction=reduction),
                         [mdl.tensor(x, requires_grad=True), mdl.tensor(t, requires_grad=True)])


def test_binary_cross_entropy_clamps_its_logs_like_torch(torch):
    x, t = np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0])
    got = F.binary_cross_entropy(mdl.tensor(x), mdl.tensor(t), reduction="none").numpy()
    np.testing.assert_array_equal(got, torch.nn.functional.binary_cross_entropy(
        torch.tensor(x), torch.tensor(t), reduction="none").numpy())  # 100, 100, 0, 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.binary_cross_entropy(mdl.tensor([1.5]), mdl.tensor([1.0]))
    with pytest.raises(ValueError, match="target size"):
        nn.BCELoss()(mdl.tensor([0.5, 0.5]), mdl.tensor([[1.0, 0.0]]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss, kwargs", [("l1_loss", {}), ("smooth_l1_loss", {}), ("smooth_l1_loss", {"beta": 0.3}),
                                          ("smooth_l1_loss", {"beta": 0.0}), ("huber_loss", {}),
                                          ("huber_loss", {"delta": 0.4})])
def test_regression_losses_match_torch(rng, torch, reduction, loss, kwargs):
    x, t = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    compare(torch, rng, lambda x, t: getattr(F, loss)(x, t, reduction=reduction, **kwargs),
            lambda x, t: getattr(torch.nn.functional, loss)(x, t, reduction=reduction, **kwargs), [x, t], [True, True])
    assert mdl.gradcheck(lambda x, t: getattr(F, loss)(x, t, reduction=reduction, **kwargs),
                         [mdl.tensor(x, requires_grad=True), mdl.tensor(t, requires_grad=True)])


@pytest.mark.parametrize("loss", ["l1_loss", "huber_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_weighted_l1_and_huber_match_torch(rng, torch, loss, reduction):
    x, t, w = rng.standard_normal((5, 4)), rng.standard_normal((5, 4)), rng.uniform(0.1, 2, (5, 4))
    compare(torch, rng, lambda x, t, w: getattr(F, loss)(x, t, reduction=reduction, weight=w),
            lambda x, t, w: getattr(torch.nn.functional, loss)(x, t, reduction=reduction, weight=w),
            [x, t, w], [True, True, False])


def test_regression_losses_broadcast_with_torchs_warning(rng, torch):
    x, t = rng.standard_normal((5, 4)), rng.standard_normal((4,))
    with pytest.warns(UserWarning, match="different to the input size"):
        compare(torch, rng, F.l1_loss, lambda x, t: torch.nn.functional.l1_loss(x, t), [x, t], [True, True])
    with pytest.raises(ValueError, match="non-positive values for delta"):
        F.huber_loss(mdl.tensor(x), mdl.tensor(x), delta=0.0)


@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(rng, torch, reduction, log_target):
    logits, q = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    x = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    t = np.exp(q) / np.exp(q).sum(1, keepdims=True)
    if log_target:
        t = np.log(t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reduction='mean' warns in both libraries
        compare(torch, rng, lambda x, t: F.kl_div(x, t, reduction=reduction, log_target=log_target),
                lambda x, t: torch.nn.functional.kl_div(x, t, reduction=reduction, log_target=log_target),
                [x, t], [True, True])
        assert mdl.gradcheck(lambda x, t: F.kl_div(x, t, reduction=reduction, log_target=log_target),
                             [mdl.tensor(x, requires_grad=True), mdl.tensor(t, requires_grad=True)])


@pytest.mark.parametrize("expr, make", [
    ("BCELoss()", lambda rng: (rng.uniform(0.1, 0.9, (4, 3)), rng.uniform(0, 1, (4, 3)))),
    ("L1Loss(reduction='sum')", lambda rng: (rng.standard_normal((4, 3)), rng.standard_normal((4, 3)))),
    ("SmoothL1Loss(beta=0.5)", lambda rng: (rng.standard_normal((4, 3)), rng.standard_normal((4, 3)))),
    ("HuberLoss(delta=0.7)", lambda rng: (rng.standard_normal((4, 3)), rng.standard_normal((4, 3)))),
    ("KLDivLoss(reduction='batchmean')",
     lambda rng: (np.log(rng.dirichlet(np.ones(3), 4)), rng.dirichlet(np.ones(3), 4))),
    ("NLLLoss()", lambda rng: (np.log(rng.dirichlet(np.ones(3), 4)), rng.integers(0, 3, 4))),
    ("BCEWithLogitsLoss()", lambda rng: (rng.standard_normal((4, 3)), rng.uniform(0, 1, (4, 3)))),
])
def test_loss_layers_match_torch(rng, torch, expr, make):
    x, t = make(rng)
    compare(torch, rng, eval("nn." + expr), eval("torch.nn." + expr), [x, t], [True, False])


# ============================================================================================ one_hot, embedding
def test_one_hot_matches_torch(rng, torch):
    t = rng.integers(0, 5, (3, 4))
    for num_classes in (-1, 7):
        got = F.one_hot(mdl.tensor(t), num_classes)
        want = torch.nn.functional.one_hot(torch.tensor(t), num_classes)
        assert got.dtype == np.int64 and got.shape == tuple(want.shape)
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    with pytest.raises(ValueError, match="smaller than num_classes"):
        F.one_hot(mdl.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match="non-negative"):
        F.one_hot(mdl.tensor([-1, 0]))
    with pytest.raises(TypeError, match="integer dtype"):
        F.one_hot(mdl.tensor([0.0, 1.0]))


def test_one_hot_times_weight_is_an_embedding(rng):
    W = tensor64(rng, 6, 3)
    idx = mdl.tensor(rng.integers(0, 6, (2, 5)))
    np.testing.assert_allclose((F.one_hot(idx, 6).double() @ W).numpy(), F.embedding(idx, W).numpy())


@pytest.mark.parametrize("kwargs", [{}, {"padding_idx": 2}, {"padding_idx": -1}, {"scale_grad_by_freq": True}])
def test_embedding_matches_torch(rng, torch, kwargs):
    W = rng.standard_normal((7, 4))
    idx = rng.integers(0, 7, (3, 5))
    idx[0, :3] = 2  # repeated indices: their gradients add up
    compare(torch, rng, lambda W: F.embedding(mdl.tensor(idx), W, **kwargs),
            lambda W: torch.nn.functional.embedding(torch.tensor(idx), W, **kwargs), [W], [True])
    if not kwargs:  # padding_idx and scale_grad_by_freq deliberately change the gradient
        assert mdl.gradcheck(lambda W: F.embedding(mdl.tensor(idx), W), [tensor64(rng, 7, 4)])


def test_embedding_max_norm_renormalises_rows_like_torch(rng, torch):
    W = rng.standard_normal((6, 3)) * 3
    idx = np.array([0, 2, 2, 5])
    Wm, Wt = mdl.tensor(W.copy()), torch.tensor(W.copy())
    y = F.embedding(mdl.tensor(idx), Wm, max_norm=1.5)
    yt = torch.nn.functional.embedding(torch.tensor(idx), Wt, max_norm=1.5)
    np.testing.assert_allclose(y.numpy(), yt.numpy(), rtol=1e-12)
    np.testing.assert_allclose(Wm.numpy(), Wt.numpy(), rtol=1e-12)  # looked-up rows rescaled in place


def test_embedding_layer_like_torch(rng, torch):
    emb = nn.Embedding(10, 3, padding_idx=0)
    assert repr(emb) == repr(torch.nn.Embedding(10, 3, padding_idx=0))
    assert np.all(emb.weight.numpy()[0] == 0) and emb.weight.numpy().std() > 0.5  # N(0, 1), padding row zero
    t_emb = torch.nn.Embedding(10, 3, padding_idx=0).double()
    emb.double().load_state_dict({k: v.detach().numpy() for k, v in t_emb.state_dict().items()})
    idx = rng.integers(0, 10, (2, 4))
    out, out_t = emb(mdl.tensor(idx)), t_emb(torch.tensor(idx))
    np.testing.assert_allclose(out.numpy(), out_t.detach().numpy())
    frozen = nn.Embedding.from_pretrained(mdl.tensor(rng.standard_normal((4, 2))))
    assert not frozen.weight.requires_grad and frozen.weight.shape == (4, 2)
    with pytest.raises(IndexError, match="out of range"):
        emb(mdl.tensor([10]))


# ============================================================================================ layer_norm
@pytest.mark.parametrize("shape, normalized", [((4, 6), (6,)), ((2, 3, 4, 5), (4, 5)), ((3, 7), 7)])
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_layer_norm_matches_torch_and_gradcheck(rng, torch, shape, normalized, affine):
    x = rng.standard_normal(shape) * 3 + 1
    ns = (normalized,) if isinstance(normalized, int) else normalized
    w = rng.standard_normal(ns) if affine != "none" else None
    b = rng.standard_normal(ns) if affine == "both" else None
    grads = [True, w is not None, b is not None]
    compare(torch, rng, lambda x, w, b: F.layer_norm(x, normalized, w, b),
            lambda x, w, b: torch.nn.functional.layer_norm(x, ns, w, b), [x, w, b], grads, rtol=1e-6)
    args = [mdl.tensor(a, requires_grad=True) if a is not None else None for a in (x, w, b)]
    assert mdl.gradcheck(lambda x, w, b: F.layer_norm(x, normalized, w, b), args)


def test_layer_norm_layer_loads_torchs_state_dict(rng, torch):
    t_ln = torch.nn.LayerNorm((3, 4))
    with torch.no_grad():
        t_ln.weight.normal_()
        t_ln.bias.normal_()
    ln = nn.LayerNorm((3, 4))
    assert repr(ln) == repr(t_ln) and list(ln.state_dict()) == list(t_ln.state_dict())
    ln.load_state_dict(t_ln.state_dict())
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(ln(mdl.tensor(x)).numpy(), t_ln(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)


# ============================================================================================ nn.utils
def _twin_grads(rng, torch, dtype):
    """The same gradients on two minidl parameters and two torch ones (plus one without a gradient)."""
    shapes = [(4, 3), (5,), (2, 2)]
    grads = [rng.standard_normal(s).astype(dtype) * 3 for s in shapes[:2]]
    mp = [nn.Parameter(mdl.tensor(np.zeros(s, dtype))) for s in shapes]
    tp = [torch.nn.Parameter(torch.zeros(s, dtype=getattr(torch, str(np.dtype(dtype))))) for s in shapes]
    for m, t, g in zip(mp, tp, grads):
        m.grad, t.grad = mdl.tensor(g.copy()), torch.tensor(g.copy())
    return mp, tp


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm_type", [2.0, 1, 3.5, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e4])
def test_clip_grad_norm_returns_torchs_norm_and_scales_identically(rng, torch, dtype, norm_type, max_norm):
    mp, tp = _twin_grads(rng, torch, dtype)
    total = nn.utils.clip_grad_norm_(iter(mp), max_norm, norm_type=norm_type)   # a generator, like parameters()
    total_t = torch.nn.utils.clip_grad_norm_(iter(tp), max_norm, norm_type=norm_type)
    assert isinstance(total, mdl.Tensor) and total.shape == () and total.dtype == dtype
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(total.item(), total_t.item(), rtol=rtol)
    for m, t in zip(mp[:2], tp[:2]):
        np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=rtol)
    assert mp[2].grad is None


def test_clip_grad_norm_edge_cases(rng, torch):
    w = nn.Parameter(mdl.tensor([1.0, 2.0]))
    assert nn.utils.clip_grad_norm_([w], 1.0).item() == 0.0  # no gradients: norm 0, nothing to scale
    w.grad = mdl.tensor([np.inf, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(w, 1.0, error_if_nonfinite=True)
    w.grad = mdl.tensor([3.0, 4.0])
    assert nn.utils.clip_grad_norm_(w, 1.0).item() == 5.0  # one Tensor instead of an iterable
    np.testing.assert_allclose(w.grad.numpy(), [0.6, 0.8], rtol=1e-6)


def test_clip_grad_value_matches_torch(rng, torch):
    mp, tp = _twin_grads(rng, torch, np.float64)
    assert nn.utils.clip_grad_value_(mp, 1.5) is None
    torch.nn.utils.clip_grad_value_(tp, 1.5)
    for m, t in zip(mp[:2], tp[:2]):
        np.testing.assert_array_equal(m.grad.numpy(), t.grad.numpy())


def test_parameters_to_vector_and_back(rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    vec = nn.utils.parameters_to_vector(model.parameters())
    assert vec.shape == (sum(p.numel() for p in model.parameters()),)
    new = mdl.tensor(rng.standard_normal(vec.shape).astype(np.float32))
    nn.utils.vector_to_parameters(new, model.parameters())
    np.testing.assert_array_equal(nn.utils.parameters_to_vector(model.parameters()).numpy(), new.numpy())
    with pytest.raises(ValueError, match="elements"):
        nn.utils.vector_to_parameters(mdl.zeros(3), model.parameters())


def test_clip_in_a_training_step_matches_torch(rng, torch):
    # loss.backward(); clip_grad_norm_(model.parameters(), 0.1); optimizer.step(): same weights after
    t_model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    model.load_state_dict(t_model.state_dict())
    opt, t_opt = optim.SGD(model.parameters(), lr=0.5), torch.optim.SGD(t_model.parameters(), lr=0.5)
    x, y = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
    for _ in range(3):
        for m, o, X, Y, mod, clip in ((model, opt, mdl.tensor(x), mdl.tensor(y), nn, nn.utils.clip_grad_norm_),
                                      (t_model, t_opt, torch.tensor(x), torch.tensor(y), torch.nn,
                                       torch.nn.utils.clip_grad_norm_)):
            o.zero_grad()
            mod.CrossEntropyLoss()(m(X), Y).backward()
            clip(m.parameters(), 0.1)
            o.step()
    for name, value in t_model.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[name], value.numpy(), rtol=1e-12, err_msg=name)


# ============================================================================================ Module idioms
class TutorialNet(nn.Module):
    """The "Neural networks" tutorial's LeNet: conv 1->6 5x5, pool, conv 6->16 5x5, pool, 3 Linear layers."""

    F = F

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.F.max_pool2d(self.F.relu(self.conv1(x)), (2, 2))
        x = self.F.max_pool2d(self.F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        x = self.F.relu(self.fc1(x))
        x = self.F.relu(self.fc2(x))
        return self.fc3(x)


def _torch_net(torch):
    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(1, 6, 5)
            self.conv2 = torch.nn.Conv2d(6, 16, 5)
            self.fc1 = torch.nn.Linear(16 * 5 * 5, 120)
            self.fc2 = torch.nn.Linear(120, 84)
            self.fc3 = torch.nn.Linear(84, 10)

        forward = TutorialNet.forward
        F = torch.nn.functional
    return TorchNet()


def test_neural_networks_tutorial_forward_and_backward(rng, torch):
    net, t_net = TutorialNet().double(), _torch_net(torch).double()
    net.load_state_dict(t_net.state_dict())
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in t_net.named_parameters()]
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in t_net.parameters()) == 61706
    assert list(net.parameters())[0].size() == tuple(list(t_net.parameters())[0].size())
    x = rng.standard_normal((1, 1, 32, 32))
    out, out_t = net(mdl.tensor(x)), t_net(torch.tensor(x))
    np.testing.assert_allclose(out.numpy(), out_t.detach().numpy(), rtol=1e-10)
    target = rng.standard_normal((1, 10))
    net.zero_grad()
    nn.MSELoss()(out, mdl.tensor(target)).backward()
    torch.nn.MSELoss()(out_t, torch.tensor(target)).backward()
    for (name, p), (_, q) in zip(net.named_parameters(), t_net.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-9, atol=1e-14, err_msg=name)


def _init_weights(mod, init):
    def fn(m):
        if isinstance(m, mod.Linear):
            init.xavier_uniform_(m.weight)
            init.constant_(m.bias, 0.01)
    return fn


def test_module_idioms_like_torch(torch):
    def build(mod):
        heads = mod.ModuleDict({"a": mod.Linear(36, 2), "b": mod.Linear(36, 3)})
        return mod.Sequential(OrderedDict([("conv", mod.Conv2d(3, 4, 3)), ("act", mod.ReLU()),
                                           ("drop", mod.Dropout(0.25)), ("flat", mod.Flatten()), ("heads", heads)]))
    model, t_model = build(nn), build(torch.nn)
    assert [n for n, _ in model.named_modules()] == [n for n, _ in t_model.named_modules()]
    assert list(model.state_dict()) == list(t_model.state_dict())
    assert model.apply(_init_weights(nn, nn.init)) is model
    assert np.all(model.heads["a"].bias.numpy() == np.float32(0.01))
    assert model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    model.conv.requires_grad_(False)
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True, True, True]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 36 * 2 + 2 + 36 * 3 + 3
    assert model.get_parameter("heads.b.bias") is model.heads["b"].bias
    with pytest.raises(AttributeError, match="has no parameter `nope`"):
        model.get_parameter("conv.nope")


def test_new_initialisers_like_torch(rng, torch):
    w = nn.Linear(12, 5).weight
    assert nn.init.orthogonal_(w, gain=2.0) is w
    np.testing.assert_allclose(w.numpy() @ w.numpy().T, 4 * np.eye(5), atol=1e-5)
    tall = nn.init.orthogonal_(mdl.zeros(6, 2, 1, 1))
    flat = tall.numpy().reshape(6, 2)
    np.testing.assert_allclose(flat.T @ flat, np.eye(2), atol=1e-6)
    np.testing.assert_array_equal(nn.init.eye_(mdl.zeros(3, 4)).numpy(), torch.nn.init.eye_(torch.zeros(3, 4)).numpy())
    t = nn.init.trunc_normal_(mdl.zeros(20000, dtype=mdl.float64), mean=0.1, std=0.5, a=-0.5, b=0.6)
    t_t = torch.nn.init.trunc_normal_(torch.zeros(20000, dtype=torch.float64), mean=0.1, std=0.5, a=-0.5, b=0.6)
    assert -0.5 <= t.numpy().min() and t.numpy().max() <= 0.6
    assert t.numpy().mean() == pytest.approx(t_t.mean().item(), abs=0.01)
    assert t.numpy().std() == pytest.approx(t_t.std().item(), rel=0.03)


def test_parameter_containers_register_like_torch(torch):
    def build(mod, t):
        class M(mod.Module):
            def __init__(self):
                super().__init__()
                self.plist = mod.ParameterList([mod.Parameter(t.zeros(2, 3)), t.ones(4)])
                self.pdict = mod.ParameterDict({"scale": mod.Parameter(t.ones(3)), "shift": t.zeros(3)})
        return M()
    m, tm = build(nn, mdl), build(torch.nn, torch)
    assert list(m.state_dict()) == list(tm.state_dict()) == ["plist.0", "plist.1", "pdict.scale", "pdict.shift"]
    assert all(isinstance(p, nn.Parameter) for p in m.plist) and isinstance(m.pdict["shift"], nn.Parameter)
    assert len(list(m.parameters())) == 4 and len(m.plist) == 2 and "scale" in m.pdict
    m.plist.append(mdl.zeros(1))
    assert len(list(m.parameters())) == 5 and m.plist[-1].shape == (1,)
    opt = optim.SGD(m.parameters(), lr=0.1)
    assert len(opt.param_groups[0]["params"]) == 5


# ============================================================================================ optim
def _twin_models(torch, rng):
    t_model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).double()
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    model.load_state_dict(t_model.state_dict())
    return model, t_model


def _train_both(model, t_model, opt, t_opt, torch, rng, steps, on_step=None):
    data = [(rng.standard_normal((5, 4)), rng.integers(0, 3, 5)) for _ in range(steps)]
    for i, (x, y) in enumerate(data):
        opt.zero_grad()
        nn.functional.cross_entropy(model(mdl.tensor(x)), mdl.tensor(y)).backward()
        opt.step()
        t_opt.zero_grad()
        torch.nn.functional.cross_entropy(t_model(torch.tensor(x)), torch.tensor(y)).backward()
        t_opt.step()
        if on_step is not None:
            on_step(i)
    for name, value in t_model.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[name], value.numpy(), rtol=1e-11, atol=1e-14, err_msg=name)


def test_param_group_lr_edits_and_momentum_match_torch(rng, torch):
    model, t_model = _twin_models(torch, rng)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=0.1, momentum=0.9)

    def decay(i):
        for o in (opt, t_opt):
            for group in o.param_groups:
                group["lr"] *= 0.5
    _train_both(model, t_model, opt, t_opt, torch, rng, 4, decay)
    assert opt.param_groups[0]["lr"] == t_opt.param_groups[0]["lr"] == 0.1 / 16


def test_zero_grad_set_to_none_like_torch(rng):
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters())
    model(mdl.randn(4, 3)).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


SCHEDULERS = {
    "LambdaLR": lambda L, o: L.LambdaLR(o, lambda epoch: 0.95 ** epoch),
    "MultiplicativeLR": lambda L, o: L.MultiplicativeLR(o, lambda epoch: 0.9),
    "StepLR": lambda L, o: L.StepLR(o, step_size=4, gamma=0.5),
    "ExponentialLR": lambda L, o: L.ExponentialLR(o, gamma=0.9),
    "ConstantLR": lambda L, o: L.ConstantLR(o, factor=0.25, total_iters=3),
    "LinearLR": lambda L, o: L.LinearLR(o, start_factor=0.1, total_iters=6),
    "PolynomialLR": lambda L, o: L.PolynomialLR(o, total_iters=8, power=2.0),
    "CosineAnnealingWarmRestarts": lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=1e-3),
    "OneCycleLR": lambda L, o: L.OneCycleLR(o, max_lr=[1.0, 2.0], total_steps=20),
    "OneCycleLR_3phase_linear": lambda L, o: L.OneCycleLR(o, max_lr=1.0, epochs=4, steps_per_epoch=5,
                                                          three_phase=True, anneal_strategy="linear"),
    "SequentialLR": lambda L, o: L.SequentialLR(o, [L.LinearLR(o, start_factor=0.1, total_iters=4),
                                                    L.CosineAnnealingLR(o, T_max=10)], milestones=[4]),
    "ChainedScheduler": lambda L, o: L.ChainedScheduler([L.ConstantLR(o, factor=0.5, total_iters=3),
                                                         L.ExponentialLR(o, gamma=0.9)]),
}


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_lr_schedulers_follow_torch(rng, torch, name, optimizer):
    model, t_model = _twin_models(torch, rng)
    def groups(m):
        return [{"params": list(m[0].parameters())}, {"params": list(m[2].parameters()), "lr": 0.05}]
    kwargs = {"momentum": 0.9} if optimizer == "SGD" else {}
    opt = getattr(optim, optimizer)(groups(model), lr=0.01, **kwargs)
    t_opt = getattr(torch.optim, optimizer)(groups(t_model), lr=0.01, **kwargs)
    sched = SCHEDULERS[name](optim.lr_scheduler, opt)
    t_sched = SCHEDULERS[name](torch.optim.lr_scheduler, t_opt)
    lrs, t_lrs = [], []

    def step(i):
        sched.step()
        t_sched.step()
        lrs.append([(g["lr"], g.get("momentum"), g.get("betas")) for g in opt.param_groups])
        t_lrs.append([(g["lr"], g.get("momentum"), g.get("betas")) for g in t_opt.param_groups])
    _train_both(model, t_model, opt, t_opt, torch, rng, 19, step)
    np.testing.assert_allclose(np.array([[[v for v in (lr, m, *(b or ())) if v is not None] for lr, m, b in e]
                                         for e in lrs], dtype=float),
                               np.array([[[v for v in (lr, m, *(b or ())) if v is not None] for lr, m, b in e]
                                         for e in t_lrs], dtype=float), rtol=1e-12)
    assert sched.get_last_lr() == pytest.approx(t_sched.get_last_lr(), rel=1e-12)


def test_scheduler_state_dicts_save_and_resume(tmp_path, rng):
    opt = optim.SGD([mdl.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    lambda_sched = optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)
    for _ in range(3):
        opt.step()
        sched.step()
    path = serialization.save({"sched": sched.state_dict(), "lambda": lambda_sched.state_dict()}, tmp_path / "s.pt")
    back = serialization.load(path)
    fresh = optim.lr_scheduler.OneCycleLR(optim.SGD([mdl.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9),
                                          max_lr=1.0, total_steps=10)
    fresh.load_state_dict(back["sched"])
    assert fresh.last_epoch == 3 and back["lambda"]["lr_lambdas"] == [None]


# ============================================================================================ tutorials, end to end
def _classifier(mod):
    """The "Training a classifier" tutorial's CIFAR-10 net, scaled down to 3x16x16 images."""
    return mod.Sequential(mod.Conv2d(3, 6, 5), mod.ReLU(), mod.MaxPool2d(2, 2), mod.Conv2d(6, 16, 3), mod.ReLU(),
                          mod.Flatten(), mod.Linear(16 * 4 * 4, 32), mod.ReLU(), mod.Linear(32, 10))


def test_training_a_classifier_tutorial_matches_torch_and_reloads(tmp_path, rng, torch):
    net, t_net = _classifier(nn), _classifier(torch.nn)
    net.load_state_dict(t_net.state_dict())
    criterion, t_criterion = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    t_optimizer = torch.optim.SGD(t_net.parameters(), lr=0.001, momentum=0.9)
    for _ in range(3):
        inputs = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
        labels = rng.integers(0, 10, 4)
        optimizer.zero_grad()
        loss = criterion(net(mdl.tensor(inputs)), mdl.tensor(labels))
        loss.backward()
        optimizer.step()
        t_optimizer.zero_grad()
        t_loss = t_criterion(t_net(torch.tensor(inputs)), torch.tensor(labels))
        t_loss.backward()
        t_optimizer.step()
        assert loss.item() == pytest.approx(t_loss.item(), rel=1e-5)
    PATH = tmp_path / "cifar_net.pth"
    serialization.save(net.state_dict(), PATH)
    net2 = _classifier(nn)
    net2.load_state_dict(serialization.load(PATH, weights_only=True))
    images = mdl.tensor(rng.standard_normal((4, 3, 16, 16)).astype(np.float32))
    with mdl.no_grad():
        np.testing.assert_array_equal(net2(images).numpy(), net(images).numpy())
        expected = t_net(torch.tensor(images.numpy())).detach().numpy()
        np.testing.assert_allclose(net2(images).numpy(), expected, rtol=1e-4, atol=1e-5)


def _fashion_model(mod):
    """The "Optimizing model parameters" tutorial's NeuralNetwork, on 8x8 images."""
    return mod.Sequential(mod.Flatten(), mod.Linear(8 * 8, 32), mod.ReLU(), mod.Linear(32, 32), mod.ReLU(),
                          mod.Linear(32, 10))


def test_optimizing_model_parameters_tutorial_loops(rng, torch):
    def train_loop(batches, model, loss_fn, optimizer, lib):
        model.train()
        for X, y in batches:
            pred = model(lib.tensor(X))
            loss = loss_fn(pred, lib.tensor(y))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return loss.item()

    def test_loop(batches, model, loss_fn, lib):
        model.eval()
        test_loss, correct = 0, 0
        with lib.no_grad():
            for X, y in batches:
                pred = model(lib.tensor(X))
                test_loss += loss_fn(pred, lib.tensor(y)).item()
                correct += (pred.argmax(1) == lib.tensor(y)).sum().item()
        return test_loss / len(batches), correct

    batches = [(rng.standard_normal((8, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 8)) for _ in range(4)]
    model, t_model = _fashion_model(nn), _fashion_model(torch.nn)
    model.load_state_dict(t_model.state_dict())
    results = []
    for m, mod, lib, o in ((model, nn, mdl, optim), (t_model, torch.nn, torch, torch.optim)):
        loss_fn = mod.CrossEntropyLoss()
        optimizer = o.SGD(m.parameters(), lr=1e-1)
        results.append((train_loop(batches, m, loss_fn, optimizer, lib), *test_loop(batches, m, loss_fn, lib)))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    assert results[0][1] == pytest.approx(results[1][1], rel=1e-5) and results[0][2] == results[1][2]


# ============================================================================================ saving and loading
def _no_unpickling(monkeypatch):
    """Make any unpickling, and any numpy.load that would allow it, fail the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    real_load = np.load

    def checked_load(*args, **kwargs):
        assert kwargs.get("allow_pickle") is False, "numpy.load called without allow_pickle=False"
        return real_load(*args, **kwargs)
    monkeypatch.setattr(np, "load", checked_load)


def test_tutorial_checkpoint_round_trip_resumes_training_exactly(tmp_path, rng, monkeypatch):
    # torch.save({'epoch': ..., 'model_state_dict': ..., 'optimizer_state_dict': ..., 'loss': ...}, PATH)
    model = _fashion_model(nn)
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    batches = [(mdl.tensor(rng.standard_normal((8, 1, 8, 8)).astype(np.float32)), mdl.tensor(rng.integers(0, 10, 8)))
               for _ in range(4)]

    def step(m, o, batch):
        o.zero_grad()
        loss = loss_fn(m(batch[0]), batch[1])
        loss.backward()
        o.step()
        return loss
    for batch in batches[:2]:
        loss = step(model, optimizer, batch)
    PATH = tmp_path / "model.pt"
    serialization.save({"epoch": 5, "model_state_dict": model.state_dict(),
                        "optimizer_state_dict": optimizer.state_dict(), "loss": loss}, PATH)
    _no_unpickling(monkeypatch)
    checkpoint = serialization.load(PATH, weights_only=True)
    model2 = _fashion_model(nn)
    optimizer2 = optim.Adam(model2.parameters(), lr=0.5)
    model2.load_state_dict(checkpoint["model_state_dict"])
    optimizer2.load_state_dict(checkpoint["optimizer_state_dict"])
    assert checkpoint["epoch"] == 5 and type(checkpoint["epoch"]) is int
    assert isinstance(checkpoint["loss"], mdl.Tensor) and checkpoint["loss"].item() == loss.item()
    model.train()
    model2.train()
    for batch in batches[2:]:
        step(model, optimizer, batch)
        step(model2, optimizer2, batch)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(model2.state_dict()[name], value, err_msg=name)


def test_optimizer_state_dict_round_trip_like_torch(tmp_path, rng, torch):
    model, t_model = _twin_models(torch, rng)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    _train_both(model, t_model, opt, t_opt, torch, rng, 2)
    state = serialization.load(serialization.save(opt.state_dict(), tmp_path / "opt.pth"))
    t_state = t_opt.state_dict()
    assert list(state) == list(t_state) and sorted(state["state"]) == sorted(t_state["state"])
    for i, s in state["state"].items():
        np.testing.assert_allclose(s["momentum_buffer"], t_state["state"][i]["momentum_buffer"].numpy(), rtol=1e-12)
    assert {k: v for k, v in state["param_groups"][0].items() if k in t_state["param_groups"][0]} == \
        {k: v for k, v in t_state["param_groups"][0].items() if k in state["param_groups"][0]}
    opt2 = optim.SGD(model.parameters(), lr=0.3)
    opt2.load_state_dict(state)
    assert opt2.param_groups[0]["momentum"] == 0.9 and opt2.param_groups[0]["nesterov"] is True


def test_save_and_load_what_users_save(tmp_path, rng):
    obj = {"epoch": 3, "lr": 1e-3, "name": "lenet", "none": None, "flags": (True, False), "blob": b"\x00\x01",
           "history": [{"loss": 0.5, "acc": np.float32(0.9)}], "w": rng.standard_normal((2, 2)),
           "t": mdl.tensor([1.0, 2.0], requires_grad=True), "param": nn.Parameter(mdl.zeros(2)),
           "nested": {"a": {"b": [1, (2, [3.0])]}}}
    buf = io.BytesIO()
    assert serialization.save(obj, buf) is None
    buf.seek(0)
    back = serialization.load(buf, map_location="cpu")
    assert back["epoch"] == 3 and back["name"] == "lenet" and back["none"] is None and back["flags"] == (True, False)
    assert back["blob"] == b"\x00\x01" and back["nested"] == {"a": {"b": [1, (2, [3.0])]}}
    assert back["history"][0]["acc"].dtype == np.float32
    assert type(back["t"]) is mdl.Tensor and back["t"].requires_grad and back["t"].tolist() == [1.0, 2.0]
    assert type(back["param"]) is nn.Parameter
    np.testing.assert_array_equal(back["w"], obj["w"])
    moved = serialization.load(io.BytesIO(buf.getvalue()), map_location=lambda storage, loc: storage)
    assert type(moved["t"]) is mdl.Tensor


def test_saving_a_whole_model_says_to_save_its_state_dict(tmp_path):
    with pytest.raises(SerializationError, match=r"model\.state_dict\(\)"):
        serialization.save(nn.Linear(2, 2), tmp_path / "model.pth")
    with pytest.raises(SerializationError, match=r"state_dict\(\)"):
        serialization.save({"opt": optim.SGD(nn.Linear(2, 2).parameters())}, tmp_path / "o.pth")


def test_loading_a_pytorch_checkpoint_is_refused_without_unpickling(tmp_path, torch, monkeypatch):
    path = tmp_path / "torch_model.pt"
    torch.save({"w": torch.ones(2)}, path)
    _no_unpickling(monkeypatch)
    with pytest.raises(SerializationError, match="PyTorch checkpoint"):
        serialization.load(path)


# ============================================================================================ item 11: clear errors
FLOAT16_CALLS = [
    ("conv2d", lambda x: F.conv2d(x, mdl.tensor(np.ones((2, 3, 3, 3), np.float16)))),
    ("conv_transpose2d", lambda x: F.conv_transpose2d(x, mdl.tensor(np.ones((3, 2, 3, 3), np.float16)))),
    ("max_pool2d", lambda x: F.max_pool2d(x, 2)),
    ("avg_pool2d", lambda x: F.avg_pool2d(x, 2)),
    ("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, 1)),
    ("batch_norm", lambda x: F.batch_norm(x, None, None, training=True)),
    ("relu", lambda x: F.relu(x)),
    ("relu", lambda x: x.relu()),
    ("conv2d", lambda x: nn.Conv2d(3, 2, 3).to(mdl.tensor(np.zeros(1, np.float16)).dtype)(x)),
    ("max_pool2d", lambda x: nn.MaxPool2d(2)(x)),
]


@pytest.mark.parametrize("op, call", FLOAT16_CALLS, ids=[f"{op}-{i}" for i, (op, _) in enumerate(FLOAT16_CALLS)])
def test_float16_into_a_kernel_is_a_clear_type_error(op, call):
    # Used to fail deep inside Numba with "NotImplementedError: float16".
    x = mdl.tensor(np.ones((2, 3, 8, 8), np.float16))
    with pytest.raises(TypeError, match=rf"^{op}: input has dtype float16.*float32 or float64.*\.float\(\)"):
        call(x)


def test_float16_still_works_where_no_kernel_runs():
    x = mdl.tensor(np.array([[1.0, -2.0, 0.5]], np.float16))
    assert F.softmax(x, dim=1).dtype == np.float16
    assert F.cross_entropy(x, mdl.tensor([0])).dtype == np.float16
    assert F.relu(mdl.tensor([-1, 2])).tolist() == [0, 2]  # integers keep their kernel


BAD_LAYERS = [
    (lambda: nn.Conv2d(3, 8, 0), ValueError, r"Conv2d: kernel_size must be positive, got \(0, 0\)"),
    (lambda: nn.Conv2d(0, 8, 3), ValueError, "Conv2d: in_channels must be positive, got 0"),
    (lambda: nn.Conv2d(3, 0, 3), ValueError, "Conv2d: out_channels must be positive, got 0"),
    (lambda: nn.Conv2d(3, 8, 3, stride=0), ValueError, "Conv2d: stride must be positive"),
    (lambda: nn.Conv2d(3, 8, 3, padding=-1), ValueError, "Conv2d: padding must be non-negative"),
    (lambda: nn.Conv2d(3, 8, 3, dilation=(1, 0)), ValueError, "Conv2d: dilation must be positive"),
    (lambda: nn.Conv2d(3, 8, 3, groups=2), ValueError, "Conv2d: in_channels must be divisible by groups"),
    (lambda: nn.Conv2d(3.0, 8, 3), TypeError, "Conv2d: in_channels must be an int"),
    (lambda: nn.ConvTranspose2d(3, 8, 0), ValueError, "ConvTranspose2d: kernel_size must be positive"),
    (lambda: nn.ConvTranspose2d(0, 8, 3), ValueError, "ConvTranspose2d: in_channels must be positive"),
    (lambda: nn.ConvTranspose2d(3, 8, 3, output_padding=1), ValueError,
     "ConvTranspose2d: output_padding must be smaller than either stride or dilation"),
    (lambda: nn.Linear(-1, 2), ValueError, "Linear: in_features must be positive, got -1"),
    (lambda: nn.Linear(4, 0), ValueError, "Linear: out_features must be positive, got 0"),
    (lambda: nn.MaxPool2d(0), ValueError, "MaxPool2d: kernel_size must be positive"),
    (lambda: nn.MaxPool2d(2, stride=0), ValueError, "MaxPool2d: stride must be positive"),
    (lambda: nn.MaxPool2d(2, padding=2), ValueError, "MaxPool2d: padding should be at most half"),
    (lambda: nn.AvgPool2d(0), ValueError, "AvgPool2d: kernel_size must be positive"),
    (lambda: nn.BatchNorm2d(0), ValueError, "BatchNorm2d: num_features must be positive, got 0"),
    (lambda: nn.BatchNorm1d(-3), ValueError, "BatchNorm1d: num_features must be positive"),
    (lambda: nn.Embedding(0, 3), ValueError, "Embedding: num_embeddings must be positive"),
    (lambda: nn.LayerNorm(0), ValueError, "LayerNorm: normalized_shape must be positive"),
]


@pytest.mark.parametrize("make, error, message", BAD_LAYERS, ids=[m for _, _, m in BAD_LAYERS])
def test_nonsense_layer_arguments_are_refused_at_construction(make, error, message):
    # Conv2d(3, 8, 0) and Conv2d(0, 8, 3) used to be accepted and crash with ZeroDivisionError in forward.
    with pytest.raises(error, match=message):
        make()


def test_zero_size_conv_weights_are_refused_by_the_functional_form():
    with pytest.raises(ValueError, match="conv2d: kernel size should be greater than zero"):
        F.conv2d(mdl.randn(1, 3, 5, 5), mdl.randn(8, 3, 0, 0))
    with pytest.raises(ValueError, match="conv2d: expected weight with at least one input channel"):
        F.conv2d(mdl.randn(1, 0, 5, 5), mdl.randn(8, 0, 3, 3))


def _nested(depth):
    obj = {"leaf": np.zeros(2)}
    for _ in range(depth):
        obj = {"child": obj}
    return obj


def test_deeply_nested_checkpoints_raise_serialization_error(tmp_path):
    # 600 levels used to raise RecursionError in save and load.
    with pytest.raises(SerializationError, match="nested more than 100 containers deep"):
        serialization.save(_nested(600), tmp_path / "deep.npz")
    assert serialization.load(serialization.save(_nested(90), tmp_path / "ok.npz"))["child"]["child"]
    cycle = []
    cycle.append(cycle)
    with pytest.raises(SerializationError, match="contains itself"):
        serialization.save({"c": cycle}, tmp_path / "cycle.npz")
    for depth in (150, 600, 50_000):  # a crafted file: the structure entry nested this deep
        tree = '{"__list__": [' * depth + "1" + "]}" * depth
        header = '{"format": "minidl.serialization", "version": 1, "tree": ' + tree + "}"
        path = tmp_path / f"deep{depth}.npz"
        np.savez(path, __minidl__=np.frombuffer(header.encode(), np.uint8))
        with pytest.raises(SerializationError, match=f"deep{depth}.npz"):
            serialization.load(path)


def test_every_damaged_file_gives_a_serialization_error_naming_it(tmp_path, rng):
    # A compressed file with a flipped byte used to leak zlib.error.
    for compress in (False, True):
        path = serialization.save({"w": rng.standard_normal((30, 30)), "t": mdl.ones(3)}, tmp_path / "c.npz",
                                  compress=compress)
        data = path.read_bytes()
        for i in range(0, len(data), max(1, len(data) // 200)):
            damaged = bytearray(data)
            damaged[i] ^= 0x5A
            path.write_bytes(bytes(damaged))
            try:
                serialization.load(path)
            except SerializationError as e:
                assert "c.npz" in str(e)
        for cut in range(0, len(data), max(1, len(data) // 50)):
            path.write_bytes(data[:cut])
            with pytest.raises(SerializationError, match="c.npz"):
                serialization.load(path)
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(SerializationError, match="notes.pth' is not a .npz archive"):
        serialization.load(text)
    objects = tmp_path / "objects.npz"
    np.savez(objects, __minidl__=np.frombuffer(b'{"format": "minidl.serialization", "version": 1, "tree": null}',
                                               np.uint8), a0=np.array([None], dtype=object))
    with pytest.raises(SerializationError, match="objects.npz' holds pickled Python objects"):
        serialization.load(objects)


def test_unflatten_of_a_0d_tensor_is_a_clear_error(torch):
    with pytest.raises(RuntimeError, match="IndexError"):  # torch: an IndexError wrapped in a RuntimeError
        torch.nn.Unflatten(0, (1,))(torch.tensor(1.0))
    with pytest.raises(IndexError, match="out of range"):
        nn.Unflatten(0, (1,))(mdl.tensor(1.0))
