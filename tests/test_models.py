"""models.SEED_MODELS: every net of design/SEED_MODELS.md against the same net written in PyTorch.

For each net and knob setting: the parameter counts are equal, the state_dict keys and shapes are (the torch
net loads the minidl weights strictly), and with those weights both give the same float64 outputs in eval mode.
"""
from __future__ import annotations

import doctest
from collections import OrderedDict

import numpy as np
import pytest

import minidl as mdl
import minidl.nn as mnn
import models
import models.builder
from minidl.summary import summary
from models import SEED_MODELS, build
from test_summary import FIGURE_1, table_rows


# ------------------------------------------------------------------------------- the nets, in PyTorch
def torch_fashion(tnn, last_pool: int):
    """Reports 000 (last_pool=3, 288 features) and 001 (last_pool=2, 800 features)."""
    features = 32 * {3: 3, 2: 5}[last_pool] ** 2
    return tnn.Sequential(OrderedDict(
        conv1=tnn.Conv2d(1, 32, 3), relu1=tnn.ReLU(), pool1=tnn.MaxPool2d(2, stride=2),
        conv2=tnn.Conv2d(32, 32, 3), relu2=tnn.ReLU(), pool2=tnn.MaxPool2d(last_pool), flatten=tnn.Flatten(),
        fc1=tnn.Linear(features, 120), relu3=tnn.ReLU(), fc2=tnn.Linear(120, 10)))


def torch_seg_000(tnn):
    return tnn.Sequential(OrderedDict(layers=tnn.Sequential(
        tnn.Conv2d(3, 64, 3), tnn.ReLU(), tnn.Conv2d(64, 128, 3), tnn.ReLU(), tnn.Conv2d(128, 256, 3), tnn.ReLU(),
        tnn.ConvTranspose2d(256, 128, 3), tnn.ReLU(), tnn.ConvTranspose2d(128, 64, 3), tnn.ReLU(),
        tnn.ConvTranspose2d(64, 5, 3))))


def torch_seg_001(tnn):
    return tnn.Sequential(OrderedDict(layers=tnn.Sequential(
        tnn.Conv2d(3, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(32, 64, 3, padding=1), tnn.ReLU(),
        tnn.ConvTranspose2d(64, 32, 3, stride=2), tnn.Conv2d(32, 5, 2))))


def torch_kth(tnn, filters=(24, 48, 96), kernels=(5, 3, 3), leaky=False, batch_norm=False, dropout=0.0,
              extra_fc=0):
    """Report 003's code (its section 2.1) with the changes of its sections 3.1-3.5."""
    act = tnn.LeakyReLU if leaky else tnn.ReLU
    f1, f2, f3 = filters
    k1, k2, k3 = kernels
    bn2d = (lambda c: [tnn.BatchNorm2d(c)]) if batch_norm else (lambda c: [])
    bn1d = (lambda c: [tnn.BatchNorm1d(c)]) if batch_norm else (lambda c: [])
    cnn = tnn.Sequential(tnn.Conv2d(3, f1, k1, padding="valid"), act(), *bn2d(f1), tnn.MaxPool2d(2, stride=2),
                         tnn.Conv2d(f1, f2, k2, padding="valid"), act(), *bn2d(f2), tnn.MaxPool2d(2, stride=2),
                         tnn.Conv2d(f2, f3, k3, padding="valid"), tnn.MaxPool2d(2, stride=2))
    side = ((32 - k1 + 1) // 2 - k2 + 1) // 2
    side = (side - k3 + 1) // 2
    head = [tnn.Linear(f3 * side * side, 512), act(), *bn1d(512)]
    head += [tnn.Dropout(dropout)] if dropout else []
    head += [tnn.Linear(512, extra_fc), act(), *bn1d(extra_fc)] if extra_fc else []
    head.append(tnn.Linear(extra_fc or 512, 10))
    return tnn.Sequential(OrderedDict(cnn=cnn, flatten=tnn.Flatten(), lin=tnn.Sequential(*head)))


def torch_lenet(tnn):
    return tnn.Sequential(OrderedDict(
        conv1=tnn.Conv2d(3, 6, 5), relu1=tnn.ReLU(), pool1=tnn.MaxPool2d(2, 2),
        conv2=tnn.Conv2d(6, 16, 5), relu2=tnn.ReLU(), pool2=tnn.MaxPool2d(2, 2), flatten=tnn.Flatten(),
        fc1=tnn.Linear(400, 120), relu3=tnn.ReLU(), fc2=tnn.Linear(120, 84), relu4=tnn.ReLU(),
        fc3=tnn.Linear(84, 10)))


def torch_vgg16(tnn):
    """Report 004's printout (its Figure 8), ReLU after every conv and hidden fc."""
    layers, c_in = OrderedDict(), 3
    for b, widths in enumerate([(64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)], 1):
        for i, c_out in enumerate(widths, 1):
            k = 1 if i == 3 else 3
            layers[f"conv{b}_{i}"] = tnn.Conv2d(c_in, c_out, k, padding=k // 2)
            layers[f"relu{b}_{i}"] = tnn.ReLU()
            c_in = c_out
        layers[f"maxpool{b}"] = tnn.MaxPool2d(2, 2)
    layers.update(flatten=tnn.Flatten(), fc1=tnn.Linear(512, 256), relu_fc1=tnn.ReLU(), fc2=tnn.Linear(256, 256),
                  relu_fc2=tnn.ReLU(), fc3=tnn.Linear(256, 10))
    return tnn.Sequential(layers)


def torch_model_builder(tnn, torch, blocks=2, filters=16, field_size=5, conv_stride=1, padding=None, pool_size=2,
                        pool_stride=2, ceil_mode=False, extra_convs_per_block=0, extra_convs_at_end=0, input_size=(1, 28, 28)):
    """Report 002's net; the fc's input size is found by running the conv part, not from a formula."""
    pad = field_size // 2 if padding is None else padding
    layers, c_in = OrderedDict(), input_size[0]
    for b in range(1, blocks + 1):
        layers[f"conv{b}"] = tnn.Conv2d(c_in, filters, field_size, conv_stride, pad)
        for e in range(1, extra_convs_per_block + 1):
            layers[f"conv{b}_extra{e}"] = tnn.Conv2d(filters, filters, field_size, 1, pad)
        layers[f"relu{b}"] = tnn.ReLU()
        layers[f"pool{b}"] = tnn.MaxPool2d(pool_size, pool_stride, ceil_mode=ceil_mode)
        c_in = filters
    for e in range(1, extra_convs_at_end + 1):
        layers[f"conv_extra{e}"] = tnn.Conv2d(c_in, filters, field_size, 1, pad)
        c_in = filters
    layers["flatten"] = tnn.Flatten()
    features = tnn.Sequential(layers)(torch.zeros(1, *input_size)).shape[1]
    layers["fc"] = tnn.Linear(features, 10)
    return tnn.Sequential(OrderedDict(layers=tnn.Sequential(layers)))


# Report 003's nets, in its order; from section 3.2 on, each is built on the one before ("based on").
WIDE = dict(filters=(64, 128, 256))
KTH_VARIANTS = {
    "default": {},
    "filters 64,128,256": WIDE,
    "+ extra fc 128": dict(WIDE, extra_fc=128),
    "+ kernels 7,5,3": dict(WIDE, kernels=(7, 5, 3)),
    "+ leaky": dict(WIDE, leaky=True),
    "+ dropout 0.3": dict(WIDE, leaky=True, dropout=0.3),
    "+ batch norm (best)": dict(WIDE, leaky=True, dropout=0.3, batch_norm=True),
    "every knob": dict(WIDE, kernels=(7, 5, 3), leaky=True, dropout=0.3, batch_norm=True, extra_fc=128),
}

MNIST, CIFAR = (1, 28, 28), (3, 32, 32)
# Report 002's experiments (SEED_MODELS.md section 5).
BUILDER_VARIANTS = {
    "base, MNIST": {},
    "base, CIFAR-10": dict(input_size=CIFAR),
    "one triple removed": dict(blocks=1, input_size=CIFAR),
    "two triples removed": dict(blocks=0, input_size=CIFAR),
    "5 filters": dict(filters=5, input_size=CIFAR),
    "50 filters": dict(filters=50, input_size=CIFAR),
    "pool stride 1": dict(pool_stride=1, input_size=CIFAR),
    "pool stride 5": dict(pool_stride=5, input_size=CIFAR),
    "field size 1": dict(field_size=1),
    "field size 7": dict(field_size=7),
    "conv stride 3": dict(conv_stride=3),
    "conv stride 5, one block": dict(conv_stride=5, blocks=1),   # two blocks: 28 → 6 → 3 → 1 → nothing
    "conv stride 10, one block": dict(conv_stride=10, blocks=1),
    "conv stride 5, ceil mode": dict(conv_stride=5, ceil_mode=True),  # 28 → 6 → 3 → 1 → 1
    "conv stride 10, ceil mode": dict(conv_stride=10, ceil_mode=True),  # 28 → 3 → 2 → 1 → 1
    "pool stride 5, ceil mode": dict(pool_stride=5, ceil_mode=True),  # 28 → 7 → 2
    "two extra convs": dict(extra_convs_at_end=2, input_size=CIFAR),
    "four extra convs": dict(extra_convs_per_block=1, extra_convs_at_end=2, input_size=CIFAR),
    "kernel 3, 30 filters (78 %)": dict(field_size=3, filters=30, input_size=CIFAR),
    "no padding, pool 3": dict(padding=0, pool_size=3, pool_stride=3),
}

# name, knobs, the torch net (made from torch.nn and torch), and the input's (C, H, W).
CASES = [
    pytest.param("fashion_000", {}, lambda tnn, torch: torch_fashion(tnn, last_pool=3), MNIST, id="fashion_000"),
    pytest.param("fashion_001", {}, lambda tnn, torch: torch_fashion(tnn, last_pool=2), MNIST, id="fashion_001"),
    pytest.param("seg_000", {}, lambda tnn, torch: torch_seg_000(tnn), (3, 12, 12), id="seg_000"),
    pytest.param("seg_001", {}, lambda tnn, torch: torch_seg_001(tnn), (3, 16, 16), id="seg_001"),
    *[pytest.param("kth", knobs, lambda tnn, torch, knobs=knobs: torch_kth(tnn, **knobs), CIFAR, id=f"kth {label}")
      for label, knobs in KTH_VARIANTS.items()],
    pytest.param("lenet", {}, lambda tnn, torch: torch_lenet(tnn), CIFAR, id="lenet"),
    pytest.param("vgg16", {}, lambda tnn, torch: torch_vgg16(tnn), CIFAR, id="vgg16"),
    *[pytest.param("model_builder", knobs, lambda tnn, torch, knobs=knobs: torch_model_builder(tnn, torch, **knobs),
                   knobs.get("input_size", MNIST), id=f"model_builder {label}")
      for label, knobs in BUILDER_VARIANTS.items()],
]

# Parameters of each net with its default knobs. Only report 003 prints its count (Figure 1); the others
# follow from SEED_MODELS.md's layers, e.g. LeNet: 456 + 2,416 + 48,120 + 10,164 + 850.
DEFAULT_PARAMS = {"fashion_000": 45_458, "fashion_001": 106_898, "seg_000": 742_533, "seg_001": 38_501,
                  "kth": 256_058, "lenet": 62_006, "vgg16": 10_195_786, "model_builder": 14_682}


def n_params(model) -> int:
    return sum(int(np.prod(p.shape)) for p in model.parameters())


def with_random_batch_norm(model, rng):
    """Random BatchNorm weights and running statistics, so that eval mode does more than the identity."""
    state = model.state_dict()
    for name, module in model.named_modules():
        if isinstance(module, (mnn.BatchNorm1d, mnn.BatchNorm2d)):
            C = module.num_features
            for key in ("weight", "bias", "running_mean"):
                state[f"{name}.{key}"] = rng.standard_normal(C)
            state[f"{name}.running_var"] = rng.uniform(0.5, 2.0, C)
    model.load_state_dict(state)
    return model


def test_registry_holds_every_seed_net():
    assert list(SEED_MODELS) == list(DEFAULT_PARAMS)
    assert {name: n_params(build(name)) for name in SEED_MODELS} == DEFAULT_PARAMS


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown seed model 'resnet'; known: fashion_000, .*, model_builder"):
        build("resnet")


@pytest.mark.parametrize("name, knobs, torch_net, input_size", CASES)
def test_same_net_as_torch(torch, rng, name, knobs, torch_net, input_size):
    """Same parameter count and state_dict keys and shapes; same outputs with the same weights (eval, float64)."""
    model = with_random_batch_norm(build(name, **knobs).double(), rng).eval()
    reference = torch_net(torch.nn, torch).double().eval()
    assert n_params(model) == sum(p.numel() for p in reference.parameters())
    reference.load_state_dict({key: torch.from_numpy(value) for key, value in model.state_dict().items()})
    x = rng.standard_normal((2, *input_size))
    y = model(mdl.tensor(x)).numpy()
    np.testing.assert_allclose(y, reference(torch.from_numpy(x)).detach().numpy(), rtol=1e-7, atol=1e-10)


def test_kth_summary_is_report_003_figure_1():
    """Report 003's Figure 1: layer by layer output shapes and parameters of the default net, 256,058 in all."""
    text = summary(build("kth"), (3, 32, 32))
    assert table_rows(text) == FIGURE_1
    assert "Total params: 256,058" in text.splitlines()


def test_model_builder_activations_end_in_the_forward_output(rng):
    net = build("model_builder", extra_convs_per_block=1, extra_convs_at_end=1, input_size=CIFAR).double().eval()
    x = mdl.tensor(rng.standard_normal((2, *CIFAR)))
    activations = net.forward_with_activations(x)
    assert [(name, tuple(y.shape)) for name, y in activations] == [
        ("conv1", (2, 16, 32, 32)), ("conv1_extra1", (2, 16, 32, 32)), ("relu1", (2, 16, 32, 32)),
        ("pool1", (2, 16, 16, 16)), ("conv2", (2, 16, 16, 16)), ("conv2_extra1", (2, 16, 16, 16)),
        ("relu2", (2, 16, 16, 16)), ("pool2", (2, 16, 8, 8)), ("conv_extra1", (2, 16, 8, 8)),
        ("flatten", (2, 1024)), ("fc", (2, 10))]
    np.testing.assert_array_equal(activations[-1][1].numpy(), net(x).numpy())


@pytest.mark.parametrize("knobs, where", [
    (dict(conv_stride=10), "pool2, whose 2×2 window does not fit the 1×1 map"),  # 28 → 3 → 1 → 1 → nothing
    (dict(blocks=5), "pool5, whose 2×2 window does not fit the 1×1 map"),        # 28 → 14 → 7 → 3 → 1 → nothing
    (dict(field_size=7, padding=0, input_size=(1, 6, 6)), "conv1, whose 7×7 window does not fit the 6×6 map"),
])
def test_model_builder_refuses_a_map_shrunk_to_nothing(knobs, where):
    """The message says where the map vanished and lists the geometry knobs to change."""
    with pytest.raises(ValueError, match=rf"shrinks to nothing at {where} padded by \d; with input_size=\(.*\), "
                                         r"blocks=\d, field_size=\d, conv_stride=\d+, padding=\d, pool_size=\d, "
                                         r"pool_stride=\d, ceil_mode=False, use fewer blocks"):
        build("model_builder", **knobs)


@pytest.mark.parametrize("module", [models, models.builder])
def test_docstring_examples_run(module):
    failures, _ = doctest.testmod(module)
    assert failures == 0


@pytest.mark.parametrize("scale, size", [(0.5, (32, 32)), (0.5, (30, 34)), (0.75, (24, 20)), (1.0, (16, 16))])
def test_rescaled_net_is_the_torch_net_between_two_bilinear_resizes(torch, rng, scale, size):
    """Rescaled(net, s): torch's F.interpolate(net(F.interpolate(x, scale_factor=s)), size=x's), forward and the
    input's gradient; at scale 1/2 the shrink is the mean of each 2 x 2 block."""
    from models.segmentation import Rescaled
    model = Rescaled(build("seg_001"), scale).double()
    reference = torch_seg_001(torch.nn).double()
    reference.load_state_dict({key[len("net."):]: torch.from_numpy(value)
                               for key, value in model.state_dict().items()})
    x = rng.standard_normal((2, 3, *size))
    g = rng.standard_normal((2, 5, *size))
    xm = mdl.tensor(x, requires_grad=True)
    y = model(xm)
    y.backward(mdl.tensor(g))
    xt = torch.tensor(x, requires_grad=True)
    small = torch.nn.functional.interpolate(xt, scale_factor=scale, mode="bilinear", align_corners=False) \
        if scale != 1 else xt
    yt = torch.nn.functional.interpolate(reference(small), size=size, mode="bilinear", align_corners=False)
    yt.backward(torch.from_numpy(g))
    assert y.shape == (2, 5, *size)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-7, atol=1e-10)
    if scale == 0.5 and size == (32, 32):
        blocks = x.reshape(2, 3, 16, 2, 16, 2).mean(axis=(3, 5))
        seen = {}
        model.net.register_forward_hook(lambda m, inputs, out: seen.setdefault("x", inputs[0].numpy()))
        model(mdl.tensor(x))
        np.testing.assert_allclose(seen["x"], blocks, rtol=1e-12)
    with pytest.raises(ValueError, match=r"scale must be in \(0, 1\] \(or a sequence of such\), got \[0.5, 1.5\]"):
        Rescaled(build("seg_001"), [0.5, 1.5])


def test_rescaled_at_several_scales_averages_the_score_maps(rng):
    from models.segmentation import Rescaled
    net = build("seg_001").double()
    x = mdl.tensor(rng.standard_normal((1, 3, 16, 24)))
    both = Rescaled(net, (1.0, 0.5))(x).numpy()
    expected = (Rescaled(net, 1.0)(x).numpy() + Rescaled(net, 0.5)(x).numpy()) / 2
    np.testing.assert_allclose(both, expected, rtol=1e-12)
    np.testing.assert_allclose(Rescaled(net, 1.0)(x).numpy(), net(x).numpy(), rtol=0)


def test_mirror_averaged_is_the_mean_of_both_views(rng):
    from models.segmentation import MirrorAveraged
    net = build("seg_001").double()
    x = rng.standard_normal((2, 3, 8, 10))
    plain = net(mdl.tensor(x)).numpy()
    mirrored = net(mdl.tensor(x[..., ::-1].copy())).numpy()[..., ::-1]
    np.testing.assert_allclose(MirrorAveraged(net)(mdl.tensor(x)).numpy(), (plain + mirrored) / 2, rtol=1e-12)
    # a photo equal to its mirror image gets mirror-symmetric scores
    symmetric = x + x[..., ::-1]
    y = MirrorAveraged(net)(mdl.tensor(symmetric)).numpy()
    np.testing.assert_allclose(y, y[..., ::-1], rtol=1e-10, atol=1e-12)
