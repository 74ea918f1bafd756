"""minidl.nn: every layer against PyTorch, and the Module system (state_dict, repr, hooks, modes, devices).

Layers are compared in float64 with PyTorch as the oracle: the same layer is built in both libraries, the
weights are copied through ``state_dict`` (torch -> NumPy -> minidl, or the other way), the same input goes
through both, a random upstream gradient comes back, and the outputs, the input gradients, every parameter
gradient and every buffer afterwards must agree to rtol 1e-6.
"""
from __future__ import annotations

import copy
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import minidl as mdl
import minidl.nn as nn

RTOL, ATOL = 1e-6, 1e-9


# ----------------------------------------------------------------------------------------- helpers
def copy_state(src, dst, torch, direction: str) -> None:
    """Copy ``src``'s weights into ``dst`` through NumPy arrays; ``direction`` says which library is which."""
    if direction == "torch_to_minidl":
        dst.load_state_dict({k: v.detach().numpy() for k, v in src.state_dict().items()})
    else:
        dst.load_state_dict({k: torch.from_numpy(v) for k, v in src.state_dict().items()})


def close(a, b, what: str) -> None:
    a = a.numpy() if hasattr(a, "numpy") else np.asarray(a)
    b = b.detach().numpy() if hasattr(b, "detach") else np.asarray(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != torch's {b.shape}"
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=what)


def compare_with_torch(torch, rng, build, make_inputs, direction="torch_to_minidl", train=True, call=None):
    """Build the layer in both libraries (float64), copy weights, run forward and backward with a random
    upstream gradient, and compare output, input gradients, parameter gradients and final state."""
    t_layer = build(torch.nn).double().train(train)
    m_layer = build(nn).double().train(train)
    if direction == "torch_to_minidl":
        copy_state(t_layer, m_layer, torch, direction)
    else:
        copy_state(m_layer, t_layer, torch, direction)
    arrays = make_inputs(rng)
    xs_m = [mdl.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    xs_t = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    call = call or (lambda layer, xs: layer(*xs))
    y_m, y_t = call(m_layer, xs_m), call(t_layer, xs_t)
    if isinstance(y_t, tuple):  # MaxPool2d(return_indices=True): (values, indices)
        close(y_m[1], y_t[1], "indices")
        y_m, y_t = y_m[0], y_t[0]
    close(y_m, y_t, "forward")
    gy = rng.standard_normal(tuple(y_t.shape))
    y_m.backward(mdl.tensor(gy))
    y_t.backward(torch.tensor(gy))
    for i, (xm, xt) in enumerate(zip(xs_m, xs_t)):
        if xt.requires_grad:
            close(xm.grad, xt.grad, f"grad of input {i}")
    m_params = dict(m_layer.named_parameters())
    assert sorted(m_params) == sorted(name for name, _ in t_layer.named_parameters())
    for name, p in t_layer.named_parameters():
        close(m_params[name].grad, p.grad, f"grad of {name}")
    m_state = m_layer.state_dict()
    assert list(m_state) == list(t_layer.state_dict())
    for key, value in t_layer.state_dict().items():
        close(m_state[key], value, f"state {key}")
    return m_layer, t_layer


def image(*shape):
    return lambda rng: [rng.standard_normal(shape)]


# ----------------------------------------------------------------------------------------- every layer
LAYERS = [
    ("linear", lambda n: n.Linear(5, 3), image(4, 5)),
    ("linear_3d_nobias", lambda n: n.Linear(5, 3, bias=False), image(2, 3, 5)),
    ("conv", lambda n: n.Conv2d(3, 4, 3), image(2, 3, 7, 6)),
    ("conv_unbatched", lambda n: n.Conv2d(3, 4, 3, padding=1), image(3, 5, 5)),
    ("conv_all_args", lambda n: n.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2,
                                         bias=False), image(2, 4, 8, 7)),
    ("conv_same_even", lambda n: n.Conv2d(2, 3, 4, padding="same", dilation=2), image(2, 2, 9, 8)),
    ("conv_valid", lambda n: n.Conv2d(2, 3, 3, padding="valid"), image(2, 2, 6, 6)),
    ("conv_reflect", lambda n: n.Conv2d(2, 3, 3, padding=(1, 2), padding_mode="reflect"), image(2, 2, 6, 7)),
    ("conv_replicate", lambda n: n.Conv2d(2, 3, 3, stride=2, padding=2, padding_mode="replicate"),
     image(2, 2, 7, 6)),
    ("conv_circular", lambda n: n.Conv2d(2, 4, 3, padding=1, groups=2, padding_mode="circular"),
     image(2, 2, 5, 6)),
    ("conv_same_reflect", lambda n: n.Conv2d(2, 3, (2, 3), padding="same", padding_mode="reflect"),
     image(2, 2, 6, 5)),
    ("convT", lambda n: n.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1), image(2, 3, 4, 5)),
    ("convT_groups_dilation", lambda n: n.ConvTranspose2d(4, 6, (3, 2), stride=(1, 2), padding=(2, 0), groups=2,
                                                          dilation=2, bias=False), image(2, 4, 5, 4)),
    ("maxpool", lambda n: n.MaxPool2d(2), image(2, 3, 6, 7)),
    ("maxpool_args", lambda n: n.MaxPool2d(3, stride=2, padding=1, dilation=1, ceil_mode=True), image(2, 3, 8, 7)),
    ("maxpool_indices", lambda n: n.MaxPool2d((2, 3), stride=(2, 2), return_indices=True), image(2, 2, 6, 7)),
    ("avgpool", lambda n: n.AvgPool2d(2), image(2, 3, 6, 7)),
    ("avgpool_args", lambda n: n.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
     image(2, 3, 8, 7)),
    ("avgpool_divisor", lambda n: n.AvgPool2d(2, divisor_override=3), image(1, 2, 4, 4)),
    ("adaptive_avgpool", lambda n: n.AdaptiveAvgPool2d((3, 2)), image(2, 3, 7, 5)),
    ("adaptive_avgpool_1", lambda n: n.AdaptiveAvgPool2d(1), image(2, 3, 5, 5)),
    ("relu", lambda n: n.ReLU(), image(3, 4)),
    ("leaky_relu", lambda n: n.LeakyReLU(0.2), image(2, 3, 4)),
    ("sigmoid", lambda n: n.Sigmoid(), image(3, 4)),
    ("tanh", lambda n: n.Tanh(), image(3, 4)),
    ("softmax", lambda n: n.Softmax(dim=1), image(2, 5, 3)),
    ("log_softmax", lambda n: n.LogSoftmax(dim=-1), image(4, 6)),
    ("batchnorm1d", lambda n: n.BatchNorm1d(5), image(8, 5)),
    ("batchnorm1d_3d", lambda n: n.BatchNorm1d(4, momentum=None), image(3, 4, 5)),
    ("batchnorm2d", lambda n: n.BatchNorm2d(3, eps=1e-3, momentum=0.2), image(4, 3, 5, 5)),
    ("batchnorm2d_no_affine", lambda n: n.BatchNorm2d(3, affine=False), image(2, 3, 4, 4)),
    ("batchnorm2d_no_stats", lambda n: n.BatchNorm2d(3, track_running_stats=False), image(2, 3, 4, 4)),
    ("batchnorm2d_no_bias", lambda n: n.BatchNorm2d(3, bias=False), image(2, 3, 4, 4)),
    ("flatten", lambda n: n.Flatten(), image(2, 3, 4, 5)),
    ("flatten_range", lambda n: n.Flatten(0, 2), image(2, 3, 4, 5)),
    ("identity", lambda n: n.Identity(54, unused=True), image(2, 3)),
    ("upsample_nearest", lambda n: n.Upsample(scale_factor=2), image(2, 3, 4, 5)),
    ("upsample_size", lambda n: n.Upsample(size=(6, 9), mode="nearest"), image(2, 3, 3, 3)),
    ("upsample_bilinear", lambda n: n.Upsample(scale_factor=(2, 1.5), mode="bilinear"), image(1, 2, 3, 4)),
    ("upsample_bilinear_corners", lambda n: n.Upsample(size=7, mode="bilinear", align_corners=True),
     image(1, 2, 3, 4)),
]

PARAM_LAYERS = {"linear", "linear_3d_nobias", "conv", "conv_all_args", "conv_reflect", "convT",
                "convT_groups_dilation", "batchnorm2d"}


LAYER_RUNS = [(name, build, make_inputs, direction) for name, build, make_inputs in LAYERS
              for direction in ("torch_to_minidl", "minidl_to_torch")
              if direction == "torch_to_minidl" or name in PARAM_LAYERS]


@pytest.mark.parametrize("name,build,make_inputs,direction", LAYER_RUNS,
                         ids=[f"{c[0]}-{c[3]}" for c in LAYER_RUNS])
def test_layer_matches_torch(torch, rng, name, build, make_inputs, direction):
    """Forward, input grad, parameter grads and final state equal PyTorch's in float64 (rtol 1e-6), with the
    weights copied from torch to minidl, and (for layers with weights) from minidl to torch."""
    compare_with_torch(torch, rng, build, make_inputs, direction)


def test_conv_transpose_output_size_matches_torch(torch, rng):
    """ConvTranspose2d.forward(x, output_size) picks the output_padding that gives that size, as PyTorch."""
    build = lambda n: n.ConvTranspose2d(3, 2, 3, stride=3, padding=1)  # noqa: E731
    for size in ([8, 11], [2, 2, 9, 10], (7, 12)):
        compare_with_torch(torch, rng, build, image(2, 3, 3, 4),
                           call=lambda layer, xs, s=size: layer(xs[0], output_size=s))
    layer = nn.ConvTranspose2d(3, 2, 3, stride=3, padding=1)
    with pytest.raises(ValueError, match=r"requested an output size of \[12, 11\].*valid sizes range from "
                                         r"\[7, 10\] to \[9, 12\]"):
        layer(mdl.randn(2, 3, 3, 4), output_size=[12, 11])


LOSSES = [
    ("cross_entropy", lambda n, t: n.CrossEntropyLoss(), (5, 4), (5,)),
    ("cross_entropy_args", lambda n, t: n.CrossEntropyLoss(weight=t.tensor([0.5, 2.0, 1.0, 1.5],
                                                                           dtype=t.float64),
                                                           ignore_index=1, label_smoothing=0.1), (6, 4), (6,)),
    ("cross_entropy_2d_sum", lambda n, t: n.CrossEntropyLoss(reduction="sum"), (2, 3, 4, 5), (2, 4, 5)),
    ("nll", lambda n, t: n.NLLLoss(), (5, 4), (5,)),
    ("nll_weight_none", lambda n, t: n.NLLLoss(weight=t.tensor([1.0, 0.0, 3.0, 2.0], dtype=t.float64),
                                               reduction="none"), (6, 4), (6,)),
    ("mse", lambda n, t: n.MSELoss(), (3, 4), None),
    ("mse_sum", lambda n, t: n.MSELoss(reduction="sum"), (2, 3, 2), None),
    ("bce_logits", lambda n, t: n.BCEWithLogitsLoss(), (4, 3), "binary"),
    ("bce_logits_weights", lambda n, t: n.BCEWithLogitsLoss(weight=t.tensor([1.0, 2.0, 0.5], dtype=t.float64),
                                                            pos_weight=t.tensor([3.0, 1.0, 0.2], dtype=t.float64),
                                                            reduction="sum"), (4, 3), "binary"),
]


@pytest.mark.parametrize("name,build,shape,target", LOSSES, ids=[c[0] for c in LOSSES])
def test_loss_matches_torch(torch, rng, name, build, shape, target):
    """Each loss layer, with its options, equals PyTorch's forward and backward (input and float target) in
    float64; its weight buffers appear in state_dict under PyTorch's keys."""
    def make_inputs(r):
        x = r.standard_normal(shape)
        if target is None:
            t = r.standard_normal(shape)
        elif target == "binary":
            t = (r.random(shape) > 0.5).astype(np.float64)
        else:
            t = r.integers(0, shape[1], size=target)
        return [x, t]

    compare_with_torch(torch, rng, lambda n: build(n, torch if n is torch.nn else mdl), make_inputs)


def test_loss_legacy_arguments(torch):
    """size_average/reduce map onto reduction as in PyTorch (with its deprecation warning)."""
    for kwargs, reduction in (({"size_average": False}, "sum"), ({"reduce": False}, "none"),
                              ({"size_average": True, "reduce": True}, "mean")):
        with pytest.warns(UserWarning, match="reduction"):
            assert nn.MSELoss(**kwargs).reduction == reduction
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert torch.nn.MSELoss(**kwargs).reduction == reduction
    with pytest.raises(ValueError, match="'average' is not a valid value for reduction"):
        nn.CrossEntropyLoss(reduction="average")


# ----------------------------------------------------------------------------------------- BatchNorm
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("kind", ["1d", "2d"])
def test_batchnorm_running_stats_match_torch(torch, rng, momentum, kind):
    """After five training steps running_mean, running_var and num_batches_tracked equal PyTorch's (momentum
    float, and None = cumulative average); eval mode then normalises with them, like PyTorch."""
    shape = (6, 3) if kind == "1d" else (4, 3, 3, 2)
    cls = "BatchNorm1d" if kind == "1d" else "BatchNorm2d"
    t_bn = getattr(torch.nn, cls)(3, momentum=momentum).double()
    m_bn = getattr(nn, cls)(3, momentum=momentum).double()
    for _ in range(5):
        x = rng.standard_normal(shape) * 3 + 1
        m_bn(mdl.tensor(x))
        t_bn(torch.tensor(x))
    state = m_bn.state_dict()
    assert int(state["num_batches_tracked"]) == 5
    assert state["num_batches_tracked"].dtype == np.int64 and state["num_batches_tracked"].shape == ()
    for key, value in t_bn.state_dict().items():
        close(state[key], value, key)
    x = rng.standard_normal(shape)
    close(m_bn.eval()(mdl.tensor(x)), t_bn.eval()(torch.tensor(x)), "eval forward")
    assert int(m_bn.state_dict()["num_batches_tracked"]) == 5  # eval mode does not count batches


def test_batchnorm_eval_backward_matches_torch(torch, rng):
    """In eval mode the running statistics are constants: gradients equal PyTorch's."""
    t_bn = torch.nn.BatchNorm2d(3).double()
    t_bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
    t_bn.running_var.copy_(torch.tensor([2.0, 0.5, 1.5]))
    t_bn.weight.data.copy_(torch.tensor([1.5, -0.5, 2.0]))
    compare_with_torch(torch, rng, lambda n: t_bn if n is torch.nn else nn.BatchNorm2d(3), image(2, 3, 4, 4),
                       train=False)


# ----------------------------------------------------------------------------------------- Dropout
def test_dropout_train_and_eval(rng):
    """Training mode zeroes about p of the elements and scales the rest by 1/(1-p) (gradient alike); eval
    mode (and p=0) is the identity."""
    drop = nn.Dropout(p=0.3)
    x = mdl.tensor(rng.standard_normal((200, 100)) + 5, requires_grad=True)
    y = drop(x)
    kept = y.array != 0
    assert abs(1 - kept.mean() - 0.3) < 0.01
    np.testing.assert_allclose(y.array[kept], x.array[kept] / 0.7)
    gy = rng.standard_normal(y.shape)
    y.backward(mdl.tensor(gy))
    np.testing.assert_allclose(x.grad.array, np.where(kept, gy / 0.7, 0))
    drop.eval()
    assert drop(x) is x or np.array_equal(drop(x).array, x.array)
    assert np.array_equal(nn.Dropout(0.0)(x).array, x.array)
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


def test_dropout2d_drops_whole_channels(rng):
    """Dropout2d zeroes whole (sample, channel) maps, about p of them, and scales the rest by 1/(1-p)."""
    drop = nn.Dropout2d(p=0.5)
    x = mdl.tensor(rng.random((40, 30, 3, 4)) + 1)
    y = drop(x).array
    per_map = (y != 0).reshape(40, 30, -1)
    assert np.all(per_map.all(axis=2) | (~per_map).all(axis=2))
    assert abs(per_map[..., 0].mean() - 0.5) < 0.06
    kept = per_map.all(axis=2)
    np.testing.assert_allclose(y[kept], x.array[kept] * 2)
    assert np.array_equal(drop.eval()(x).array, x.array)


def test_train_eval_switch_every_module():
    """train()/eval() set ``training`` on every submodule and return the model."""
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Dropout(), nn.BatchNorm1d(4)))
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    assert model.train() is model and all(m.training for m in model.modules())
    model.train(False)
    assert not model[1][1].training
    with pytest.raises(ValueError, match="boolean"):
        model.train("no")


# ----------------------------------------------------------------------------------------- a composite model
def make_net(n):
    """The same nested model in either library (torch.nn or minidl.nn)."""

    class Block(n.Module):
        def __init__(self):
            super().__init__()
            self.conv = n.Conv2d(3, 4, 3, padding=1)
            self.bn = n.BatchNorm2d(4)
            self.act = n.LeakyReLU(0.1)

        def forward(self, x):
            return self.act(self.bn(self.conv(x)))

    class Net(n.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.features = n.Sequential(n.MaxPool2d(2), n.Conv2d(4, 6, 3, bias=False), n.ReLU())
            self.heads = n.ModuleList([n.Linear(6, 5), n.Linear(5, 5), n.Linear(5, 5)])
            self.classifier = n.Sequential(OrderedDict([("flat", n.Flatten()), ("fc", n.Linear(6, 6)),
                                                        ("drop", n.Dropout(0.25)), ("bn", n.BatchNorm1d(6))]))
            self.register_buffer("scale", _ones(n))
            self.register_buffer("cache", _ones(n), persistent=False)

        def forward(self, x):
            x = self.features(self.block(x))
            x = self.classifier(x)
            for head in self.heads:
                x = head(x[:, :6] if x.shape[1] > 5 else x)
            return x * self.scale

    return Net()


def _ones(n):
    import torch
    return torch.ones(1) if n is torch.nn else mdl.ones(1)


TORCH_KEYS = ["block.conv.weight", "block.conv.bias", "block.bn.weight", "block.bn.bias", "block.bn.running_mean",
              "block.bn.running_var", "block.bn.num_batches_tracked", "features.1.weight", "heads.0.weight",
              "heads.0.bias", "heads.1.weight", "heads.1.bias", "heads.2.weight", "heads.2.bias",
              "classifier.fc.weight", "classifier.fc.bias", "classifier.bn.weight", "classifier.bn.bias",
              "classifier.bn.running_mean", "classifier.bn.running_var", "classifier.bn.num_batches_tracked"]


def test_state_dict_keys_shapes_dtypes_match_torch(torch):
    """state_dict of a nested model has PyTorch's keys in PyTorch's order (parameters, then persistent
    buffers, then children), NumPy values of the same shapes, and int64 0-d num_batches_tracked."""
    m_state, t_state = make_net(nn).state_dict(), make_net(torch.nn).state_dict()
    assert list(t_state) == ["scale"] + TORCH_KEYS
    assert list(m_state) == list(t_state)
    for key, value in t_state.items():
        assert isinstance(m_state[key], np.ndarray)
        assert m_state[key].shape == tuple(value.shape), key
        assert str(m_state[key].dtype) == str(value.dtype).replace("torch.", ""), key


def test_named_members_match_torch(torch):
    """named_parameters/buffers/children/modules give PyTorch's names in PyTorch's order."""
    m, t = make_net(nn), make_net(torch.nn)
    assert [k for k, _ in m.named_parameters()] == [k for k, _ in t.named_parameters()]
    assert [k for k, _ in m.named_buffers()] == [k for k, _ in t.named_buffers()]
    assert [k for k, _ in m.named_children()] == [k for k, _ in t.named_children()]
    assert [k for k, _ in m.named_modules()] == [k for k, _ in t.named_modules()]
    assert [k for k, _ in m.named_parameters(prefix="net", recurse=True)][:2] == ["net.block.conv.weight",
                                                                                  "net.block.conv.bias"]
    assert list(m.block.named_parameters(recurse=False)) == []
    assert len(list(m.parameters())) == len(list(t.parameters()))
    assert [type(c).__name__ for c in m.children()] == ["Block", "Sequential", "ModuleList", "Sequential"]


def test_composite_model_round_trips_through_torch(torch, rng):
    """torch -> minidl and minidl -> torch state_dicts give the same outputs and gradients (eval mode)."""
    t_net = make_net(torch.nn).double().eval()
    m_net = make_net(nn).double().eval()
    copy_state(t_net, m_net, torch, "torch_to_minidl")
    x = rng.standard_normal((2, 3, 6, 6))
    close(m_net(mdl.tensor(x)), t_net(torch.tensor(x)), "net forward")
    m_net2 = make_net(nn).double()
    t_net2 = make_net(torch.nn).double()
    copy_state(m_net2, t_net2, torch, "minidl_to_torch")
    close(m_net2.eval()(mdl.tensor(x)), t_net2.eval()(torch.tensor(x)), "net forward, other direction")


def test_load_state_dict_errors_name_every_key():
    """strict loading names every missing and unexpected key; a shape mismatch names the key and both
    shapes, even with strict=False; nothing is loaded when an error is raised."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Linear(4, 3))
    state = model.state_dict()
    before = model[0].weight.array.copy()
    bad = dict(state)
    del bad["0.bias"], bad["2.weight"]
    bad["3.weight"] = np.zeros(2)
    bad["0.weight"] = np.ones((2, 1, 3, 3), dtype=np.float32)
    with pytest.raises(RuntimeError) as err:
        model.load_state_dict(bad)
    msg = str(err.value)
    assert "Error(s) in loading state_dict for Sequential" in msg
    assert 'Missing key(s) in state_dict: "0.bias", "2.weight"' in msg
    assert 'Unexpected key(s) in state_dict: "3.weight"' in msg
    np.testing.assert_array_equal(model[0].weight.array, before)
    result = model.load_state_dict(bad, strict=False)
    assert result.missing_keys == ["0.bias", "2.weight"] and result.unexpected_keys == ["3.weight"]
    np.testing.assert_array_equal(model[0].weight.array, 1)
    assert repr(model.load_state_dict(state)) == "<All keys matched successfully>"
    wrong = dict(state, **{"2.weight": np.zeros((3, 5)), "1.running_mean": np.zeros(3)})
    for strict in (True, False):
        with pytest.raises(RuntimeError) as err:
            model.load_state_dict(wrong, strict=strict)
        assert ("size mismatch for 2.weight: copying a param with shape (3, 5) from checkpoint, the shape in "
                "current model is (3, 4).") in str(err.value)
        assert "size mismatch for 1.running_mean" in str(err.value)


def test_load_state_dict_keeps_dtype_device_and_identity():
    """Loading float64 arrays or Tensors into a float32 model copies into the existing arrays: dtype and
    Parameter objects stay; a checkpoint without num_batches_tracked still loads (PyTorch's rule)."""
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    weight, array = model[0].weight, model[0].weight.array
    state = {k: v.astype(np.float64) + 1 for k, v in model.state_dict().items()}
    state["0.bias"] = mdl.tensor(np.array([7.0, 8.0]))
    del state["1.num_batches_tracked"]
    model.load_state_dict(state)
    assert model[0].weight is weight and model[0].weight.array is array
    assert model[0].weight.dtype == np.float32 and model[1].num_batches_tracked.dtype == np.int64
    np.testing.assert_allclose(model[0].bias.array, [7, 8])
    model.load_state_dict({k: v for k, v in state.items()}, strict=True)
    with pytest.raises(RuntimeError, match='While copying the parameter named "0.bias"'):
        model.load_state_dict(dict(state, **{"0.bias": "seven"}))
    model.load_state_dict(dict(state, **{"0.bias": np.array([1.0, 2.0])}), assign=True)
    assert model[0].bias.dtype == np.float64 and model[0].bias.requires_grad


def test_state_dict_is_a_copy_and_keep_vars():
    """state_dict values are NumPy copies (a saved "best" state does not follow training);
    keep_vars=True gives the Parameters themselves."""
    model = nn.Linear(2, 2)
    state = model.state_dict()
    model.weight.array += 1
    assert not np.array_equal(state["weight"], model.weight.array)
    assert model.state_dict(keep_vars=True)["weight"] is model.weight
    assert list(model.state_dict(prefix="fc.")) == ["fc.weight", "fc.bias"]


# ----------------------------------------------------------------------------------------- repr
def report003_net(n):
    class CNN(n.Module):
        def __init__(self, encoded_space_dim=10, fc2_input_dim=512):
            super().__init__()
            self.cnn = n.Sequential(n.Conv2d(3, 24, 5, stride=1, padding="valid"), n.ReLU(),
                                    n.MaxPool2d(2, stride=2), n.Conv2d(24, 48, 3, stride=1, padding="valid"),
                                    n.ReLU(), n.MaxPool2d(2, stride=2),
                                    n.Conv2d(48, 96, 3, stride=1, padding="valid"), n.MaxPool2d(2, stride=2))
            self.flatten = n.Flatten(start_dim=1)
            self.lin = n.Sequential(n.Linear(2 * 2 * 96, fc2_input_dim), n.ReLU(),
                                    n.Linear(fc2_input_dim, encoded_space_dim))

        def forward(self, x):
            return self.lin(self.flatten(self.cnn(x)))

    return CNN()


def _containers(n):
    model = n.Module()
    model.add_module("skipped", None)
    model.heads = n.ModuleDict({"cls": n.Linear(1, 2), "act": n.ReLU()})
    model.empty = n.ModuleList()
    return model


REPR_MODELS = {
    "report003": report003_net,
    "nested": make_net,
    "every_layer": lambda n: n.Sequential(
        n.Conv2d(3, 8, 3, stride=2, padding=1, dilation=2, groups=1, padding_mode="circular"),
        n.Conv2d(8, 8, (3, 5), padding="same", groups=4, bias=False),
        n.ConvTranspose2d(8, 4, 2, stride=2, output_padding=1, dilation=3, groups=2),
        n.BatchNorm2d(4, momentum=None, affine=False), n.BatchNorm1d(7, eps=0.001, track_running_stats=False),
        n.MaxPool2d((2, 3), stride=1, padding=1, ceil_mode=True), n.AvgPool2d(3, padding=1),
        n.AdaptiveAvgPool2d((None, 3)), n.ReLU(inplace=True), n.LeakyReLU(), n.LeakyReLU(0.2, inplace=True),
        n.Sigmoid(), n.Tanh(), n.Softmax(dim=-1), n.LogSoftmax(1), n.Dropout(), n.Dropout2d(0.1, inplace=True),
        n.Flatten(0, 2), n.Identity(), n.Upsample(scale_factor=(2, 3)), n.Upsample(size=5, mode="nearest"),
        n.CrossEntropyLoss(), n.NLLLoss(), n.MSELoss(), n.BCEWithLogitsLoss(), n.Sequential()),
    "containers": lambda n: _containers(n),
    "repeated_blocks": lambda n: n.Sequential(
        n.ModuleList([n.Linear(4, 4) for _ in range(3)] + [n.ReLU()] + [n.Linear(4, 2)] * 2),
        n.ModuleList()),
}


@pytest.mark.parametrize("name", list(REPR_MODELS))
def test_repr_is_torchs(torch, name):
    """print(model) gives PyTorch's text, character for character."""
    assert repr(REPR_MODELS[name](nn)) == repr(REPR_MODELS[name](torch.nn))


def test_parameter_repr_and_basics(torch):
    """Parameter is a Tensor that requires grad and prints with PyTorch's header."""
    p = nn.Parameter(mdl.tensor([1.0, 2.0]))
    assert isinstance(p, mdl.Tensor) and p.requires_grad and p.is_leaf
    assert repr(p) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"
    assert repr(p) == repr(torch.nn.Parameter(torch.tensor([1.0, 2.0])))
    assert not nn.Parameter(mdl.zeros(2), requires_grad=False).requires_grad
    assert type(p * 2) is mdl.Tensor


# ----------------------------------------------------------------------------------------- hooks
def test_forward_hooks_and_pre_hooks():
    """Pre-hooks see (and may replace) the inputs, forward hooks the output; handles remove them; prepend
    and with_kwargs behave as in PyTorch."""
    layer = nn.Linear(3, 2)
    calls = []
    h1 = layer.register_forward_hook(lambda m, args, out: calls.append(("post", m, args[0].shape, out.shape)))
    h2 = layer.register_forward_pre_hook(lambda m, args: calls.append(("pre", args[0].shape)))
    x = mdl.randn(4, 3)
    y = layer(x)
    assert calls == [("pre", (4, 3)), ("post", layer, (4, 3), (4, 2))]
    h1.remove()
    h2.remove()
    calls.clear()
    layer(x)
    assert calls == []
    with layer.register_forward_pre_hook(lambda m, args: args[0] * 0):
        assert np.array_equal(layer(x).array, np.broadcast_to(layer.bias.array, (4, 2)))
    assert np.array_equal(layer(x).array, y.array)
    order = []
    layer.register_forward_hook(lambda m, a, o: order.append("first"))
    layer.register_forward_hook(lambda m, a, o: order.append("prepended"), prepend=True)
    layer.register_forward_hook(lambda m, a, kw, o: order.append(("kwargs", kw)), with_kwargs=True)
    replaced = layer.register_forward_hook(lambda m, a, o: o * 0)
    out = layer(x)
    assert order == ["prepended", "first", ("kwargs", {})]
    assert np.all(out.array == 0)
    replaced.remove()


def test_pre_hook_with_kwargs_and_always_call():
    """A with_kwargs pre-hook may replace (args, kwargs); an always_call hook runs even when forward raises."""
    convT = nn.ConvTranspose2d(2, 1, 3, stride=2)
    convT.register_forward_pre_hook(lambda m, args, kwargs: (args, {"output_size": (9, 9)}), with_kwargs=True)
    assert convT(mdl.randn(1, 2, 4, 4)).shape == (1, 1, 9, 9)
    seen = []
    layer = nn.Linear(3, 2)
    layer.register_forward_hook(lambda m, a, o: seen.append(o), always_call=True)
    with pytest.raises(ValueError):
        layer(mdl.randn(2, 5))
    assert seen == [None]


# ----------------------------------------------------------------------------------------- Module plumbing
def test_registration_rules():
    """Attributes become parameters, buffers or children by type; wrong assignments raise like PyTorch."""
    m = nn.Module()
    m.w = nn.Parameter(mdl.zeros(2))
    m.sub = nn.Linear(2, 2)
    m.register_buffer("b", mdl.ones(2))
    m.register_buffer("tmp", mdl.ones(1), persistent=False)
    m.add_module("extra", None)
    m.register_parameter("none", None)
    assert list(m.state_dict()) == ["w", "b", "sub.weight", "sub.bias"]
    assert [k for k, _ in m.named_buffers()] == ["b", "tmp"]
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'w'"):
        m.w = mdl.zeros(2)
    with pytest.raises(TypeError, match="cannot assign 'int' as child module 'sub'"):
        m.sub = 3
    with pytest.raises(KeyError, match="contain"):
        m.register_buffer("a.b", mdl.ones(1))
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("sub", mdl.ones(1))
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'missing'"):
        m.missing
    m.w = None
    assert "w" not in dict(m.named_parameters())
    del m.sub
    assert list(m.state_dict()) == ["b"]
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        m(mdl.ones(1))

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(mdl.zeros(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()


def test_shared_parameters_are_listed_once():
    """A layer used twice contributes its parameters once to parameters(), as in PyTorch."""
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2
    assert len(list(model.named_modules())) == 3
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_zero_grad_requires_grad_apply():
    """zero_grad sets grads to None (or zeros), requires_grad_ freezes, apply visits children first."""
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    model(mdl.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.array == 0) for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert model.requires_grad_(False) is model and not any(p.requires_grad for p in model.parameters())
    visited = []
    assert model.apply(lambda m: visited.append(type(m).__name__)) is model
    assert visited == ["Linear", "Linear", "Sequential"]


def test_to_dtype_and_device(device):
    """to()/double()/float() convert floating parameters, grads and buffers in place (Parameter objects
    kept, num_batches_tracked stays int64); to(device) moves them; the model then runs there."""
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    weight = model[0].weight
    model(mdl.randn(5, 3)).sum().backward()
    assert model.double() is model and model[0].weight is weight
    assert weight.dtype == np.float64 and weight.grad.dtype == np.float64
    assert model[1].running_var.dtype == np.float64 and model[1].num_batches_tracked.dtype == np.int64
    model.float()
    assert weight.dtype == np.float32
    model.to(device, mdl.float64)
    assert weight.device == device and model[1].running_mean.device == device and weight.dtype == np.float64
    y = model(mdl.randn(5, 3, dtype=mdl.float64, device=device))
    assert y.device == device and y.dtype == np.float64
    model.cpu()
    assert weight.device == "cpu"
    with pytest.raises(TypeError, match="floating point"):
        model.to(mdl.int64)
    assert nn.Linear(2, 2, dtype=mdl.float64).weight.dtype == np.float64
    assert nn.BatchNorm2d(2, dtype=mdl.float64).running_mean.dtype == np.float64


@pytest.mark.skipif(mdl.cuda.is_available(), reason="checks the error where no GPU is present")
def test_cuda_without_gpu_raises():
    with pytest.raises(RuntimeError, match="cuda"):
        nn.Linear(2, 2).cuda()


def test_deepcopy_gives_independent_model():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    clone = copy.deepcopy(model)
    clone[0].weight.array += 1
    assert not np.array_equal(clone[0].weight.array, model[0].weight.array)
    assert isinstance(clone[0].weight, nn.Parameter) and clone[0].weight.requires_grad


def test_sequential_and_modulelist_behave_like_lists():
    """Indexing, negative indices, slicing (keeps names), len, iteration, append, insert, delete
    (renumbers), as in PyTorch."""
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and seq[0] is list(seq)[0]
    tail = seq[1:]
    assert isinstance(tail, nn.Sequential) and list(tail._modules) == ["1", "2"]
    assert seq.append(nn.Sigmoid()) is seq and len(seq) == 4
    del seq[1]
    assert list(seq._modules) == ["0", "1", "2"] and isinstance(seq[1], nn.Linear)
    seq.insert(1, nn.Tanh())
    assert [type(m).__name__ for m in seq] == ["Linear", "Tanh", "Linear", "Sigmoid"]
    assert seq(mdl.randn(5, 2)).shape == (5, 1)
    with pytest.raises(IndexError):
        seq[7]
    named = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 1, 1)), ("act", nn.ReLU())]))
    assert isinstance(named.conv, nn.Conv2d) and list(named.state_dict()) == ["conv.weight", "conv.bias"]
    layers = nn.ModuleList([nn.Linear(2, 2)])
    layers.append(nn.ReLU())
    layers += [nn.Tanh()]
    assert len(layers) == 3 and isinstance(layers[-1], nn.Tanh) and len(layers[:2]) == 2
    assert len(list(layers.parameters())) == 2
    with pytest.raises(NotImplementedError):
        layers(mdl.ones(2))
    d = nn.ModuleDict({"a": nn.Linear(1, 1)})
    d["b"] = nn.ReLU()
    assert list(d) == ["a", "b"] and list(d.state_dict()) == ["a.weight", "a.bias"]


def test_softmax_without_dim_uses_pytorchs_legacy_rule(torch, rng):
    x = rng.standard_normal((3, 4))
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y = nn.Softmax()(mdl.tensor(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        close(y, torch.nn.Softmax()(torch.tensor(x)), "softmax dim=None")


# ----------------------------------------------------------------------------------------- bad input
BAD_INPUTS = [
    (lambda: nn.Conv2d(1, 32, 3), (2, 3, 28, 28), ValueError,
     "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1)): expected input with 1 channel, got input of shape "
     "(2, 3, 28, 28)"),
    (lambda: nn.Conv2d(3, 8, 3), (3, 8, 8, 8, 1), ValueError,
     "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1)): expected 3-D (C, H, W) or 4-D (N, C, H, W) input, got "
     "input of shape (3, 8, 8, 8, 1)"),
    (lambda: nn.Linear(288, 120), (4, 800), ValueError,
     "Linear(in_features=288, out_features=120, bias=True): expected input with last dimension 288, got input "
     "of shape (4, 800)"),
    (lambda: nn.BatchNorm2d(32), (4, 32, 5), ValueError,
     "BatchNorm2d(32, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True): expected 4-D "
     "input (N, C, H, W), got input of shape (4, 32, 5)"),
    (lambda: nn.BatchNorm2d(32), (4, 16, 5, 5), ValueError, "expected input with 32 channels, got input of shape "
                                                            "(4, 16, 5, 5)"),
    (lambda: nn.BatchNorm1d(10), (4, 12), ValueError, "expected input with 10 features, got input of shape (4, 12)"),
    (lambda: nn.BatchNorm1d(10), (4, 10, 2, 2), ValueError, "expected 2-D (N, C) or 3-D (N, C, L) input"),
    (lambda: nn.ConvTranspose2d(16, 8, 2), (1, 8, 4, 4), ValueError,
     "ConvTranspose2d(16, 8, kernel_size=(2, 2), stride=(1, 1)): expected input with 16 channels, got input of "
     "shape (1, 8, 4, 4)"),
    (lambda: nn.MaxPool2d(2), (8, 8), ValueError,
     "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False): expected 3-D (C, H, W) or 4-D "
     "(N, C, H, W) input, got input of shape (8, 8)"),
    (lambda: nn.AvgPool2d(2), (8,), ValueError, "AvgPool2d(kernel_size=2, stride=2, padding=0): expected 3-D"),
    (lambda: nn.AdaptiveAvgPool2d(1), (1, 2, 3, 4, 5), ValueError, "AdaptiveAvgPool2d(output_size=1): expected"),
    (lambda: nn.Dropout2d(), (4, 4), ValueError, "Dropout2d(p=0.5, inplace=False): expected 4-D (N, C, H, W)"),
    (lambda: nn.Flatten(2), (4, 5), IndexError, "Flatten(start_dim=2, end_dim=-1): dim 2 is out of range for "
                                                 "input of shape (4, 5)"),
    (lambda: nn.Upsample(scale_factor=2), (4, 5), ValueError, "Upsample(scale_factor=2.0, mode='nearest'): "
                                                              "expected 3-D"),
]


@pytest.mark.parametrize("build,shape,error,message", BAD_INPUTS, ids=[c[3][:30] for c in BAD_INPUTS])
def test_bad_input_names_layer_and_shapes(build, shape, error, message):
    """A wrong rank or channel count raises an error naming the layer, what it expected and the shape."""
    with pytest.raises(error) as err:
        build()(mdl.zeros(*shape))
    assert message in str(err.value)


@pytest.mark.parametrize("build,shape", [(lambda: nn.Linear(3, 2), (4, 3)), (lambda: nn.Conv2d(2, 2, 1), (1, 2, 3, 3)),
                                         (lambda: nn.ConvTranspose2d(2, 2, 1), (1, 2, 3, 3)),
                                         (lambda: nn.BatchNorm2d(2), (2, 2, 3, 3)),
                                         (lambda: nn.BatchNorm1d(2, affine=False), (2, 2))])
def test_dtype_mismatch_names_both_dtypes(build, shape):
    """float64 input into a float32 layer (and the other way round) is a TypeError saying how to fix it."""
    layer = build()
    with pytest.raises(TypeError) as err:
        layer(mdl.zeros(*shape, dtype=mdl.float64))
    assert str(err.value).startswith(repr(layer) + ": input has dtype float64 but the layer's parameters are "
                                                   "float32; call model.double() or x.float()")
    layer.double()
    with pytest.raises(TypeError, match="call model.float\\(\\) or x.double\\(\\)"):
        layer(mdl.zeros(*shape))
    with pytest.raises(TypeError, match="expected input to be a minidl Tensor, got ndarray"):
        layer(np.zeros(shape))


def test_device_mismatch_names_both_devices():
    """Input on another device than the layer's parameters is an error saying how to fix it (simulated with a
    Tensor that reports "cuda", so the check runs on machines without a GPU)."""
    class ElsewhereTensor(mdl.Tensor):
        device = property(lambda self: "cuda")

    layer = nn.Linear(3, 2)
    with pytest.raises(RuntimeError) as err:
        layer(ElsewhereTensor(np.zeros((4, 3), dtype=np.float32)))
    assert str(err.value) == (repr(layer) + ": input is on cuda but the layer's parameters are on cpu; call "
                                            "model.to('cuda') or x.to('cpu')")


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="invalid padding string 'full'"):
        nn.Conv2d(3, 4, 3, padding="full")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match='Only "zeros" padding mode is supported for ConvTranspose2d'):
        nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect")
