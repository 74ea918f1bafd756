"""minidl.optim against torch.optim.

Every test builds the same float64 parameters (a weight matrix, a bias, a vector and a 3-D tensor, split into two
parameter groups with different learning rates) in minidl and in PyTorch, computes the same loss with each
library's own ops, and steps both optimizers. The answer must be PyTorch's: parameters equal (rtol 1e-6) after
every one of 25 steps, for every option that changes the math; state_dicts with the same layout, loadable both
ways; float32 staying float32; parameters without a gradient left alone; bad hyper-parameters refused.
"""
from __future__ import annotations

import copy
import re

import numpy as np
import pytest

import minidl as mdl
from minidl import optim

SHAPES = {"W": (3, 4), "b": (4,), "v": (5,), "u": (2, 3, 2)}
BASE_LR = {"SGD": 0.05, "Adam": 0.05, "AdamW": 0.05, "Adagrad": 0.1, "Adadelta": 1.0, "RMSprop": 0.01}


# ----------------------------------------------------------------------------- helpers
def make_problem(rng, dtype=np.float64):
    """Initial parameter values and the data of a small least-squares + tanh + weighted-square loss."""
    init = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
    data = {"X": rng.standard_normal((8, 3)), "T": rng.standard_normal((8, 4)), "a": rng.standard_normal(5),
            "c": 0.5 + rng.random((2, 3, 2))}
    return init, {k: v.astype(dtype) for k, v in data.items()}


def loss_fn(P, D):
    """Written once for both libraries: only ops minidl and PyTorch spell the same way."""
    fit = ((D["X"] @ P["W"] + P["b"] - D["T"]) ** 2).mean()
    return fit + (P["v"].tanh() * D["a"]).sum() + 0.5 * (P["u"] * P["u"] * D["c"]).sum()


class Side:
    """One library's parameters, data and optimizer."""

    def __init__(self, lib, init, data, cls_name, kwargs, group1):
        if lib == "mdl":
            self.P = {k: mdl.tensor(v.copy(), requires_grad=True) for k, v in init.items()}
            self.D = {k: mdl.tensor(v) for k, v in data.items()}
            cls = getattr(optim, cls_name)
        else:
            self.P = {k: lib.tensor(v.copy(), requires_grad=True) for k, v in init.items()}
            self.D = {k: lib.tensor(v) for k, v in data.items()}
            cls = getattr(lib.optim, cls_name)
        groups = [{"params": [self.P["W"], self.P["b"]]}, {"params": [self.P["v"], self.P["u"]], **group1}]
        self.opt = cls(groups, **kwargs)

    def closure(self):
        self.opt.zero_grad()
        loss = loss_fn(self.P, self.D)
        loss.backward()
        return loss

    def step(self):
        return self.opt.step(self.closure).item()

    def values(self):
        return {k: (p.array if isinstance(p, mdl.Tensor) else p.detach().numpy()) for k, p in self.P.items()}


def assert_params_close(mine, theirs, rtol=1e-6, atol=1e-10, msg=""):
    for k in SHAPES:
        np.testing.assert_allclose(mine[k], theirs[k], rtol=rtol, atol=atol, err_msg=f"{msg} parameter {k}")


def to_torch(torch, obj):
    """A minidl state_dict as PyTorch expects it: arrays become tensors."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, dict):
        return {k: to_torch(torch, v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_torch(torch, v) for v in obj]
    return obj


def from_torch(torch, obj):
    """A PyTorch state_dict with NumPy arrays for tensors."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().numpy().copy()
    if isinstance(obj, dict):
        return {k: from_torch(torch, v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_torch(torch, v) for v in obj]
    return obj


# ----------------------------------------------------------------------------- trajectories
TRAJECTORIES = [
    ("SGD", {}, {}),
    ("SGD", {"momentum": 0.9}, {}),
    ("SGD", {"momentum": 0.9, "dampening": 0.5}, {}),
    ("SGD", {"momentum": 0.9, "nesterov": True}, {}),
    ("SGD", {"weight_decay": 0.1}, {}),
    ("SGD", {"maximize": True}, {}),
    ("SGD", {"momentum": 0.8, "nesterov": True, "weight_decay": 0.05, "maximize": True}, {}),
    ("SGD", {"momentum": 0.5, "dampening": 0.2, "weight_decay": 0.05}, {"momentum": 0.9, "dampening": 0.0}),
    ("Adam", {}, {}),
    ("Adam", {"weight_decay": 0.1}, {}),
    ("Adam", {"amsgrad": True}, {}),
    ("Adam", {"maximize": True}, {}),
    ("Adam", {"amsgrad": True, "weight_decay": 0.1, "maximize": True}, {}),
    ("Adam", {"betas": (0.3, 0.8), "eps": 1e-3}, {}),
    ("Adam", {"weight_decay": 0.1, "decoupled_weight_decay": True}, {}),
    ("Adam", {"betas": (0.8, 0.99)}, {"amsgrad": True, "weight_decay": 0.2}),
    ("AdamW", {}, {}),
    ("AdamW", {"weight_decay": 0.3, "amsgrad": True}, {}),
    ("AdamW", {"weight_decay": 0.3, "maximize": True}, {"weight_decay": 0.0}),
    ("Adagrad", {}, {}),
    ("Adagrad", {"lr_decay": 0.1}, {}),
    ("Adagrad", {"initial_accumulator_value": 0.5}, {}),
    ("Adagrad", {"weight_decay": 0.1, "eps": 1e-3}, {}),
    ("Adagrad", {"maximize": True, "lr_decay": 0.05}, {}),
    ("Adagrad", {"initial_accumulator_value": 0.2}, {"initial_accumulator_value": 3.0, "lr_decay": 0.2}),
    ("Adadelta", {}, {}),
    ("Adadelta", {"rho": 0.5, "eps": 1e-3}, {}),
    ("Adadelta", {"weight_decay": 0.1}, {}),
    ("Adadelta", {"maximize": True}, {"rho": 0.7}),
    ("RMSprop", {}, {}),
    ("RMSprop", {"centered": True}, {}),
    ("RMSprop", {"momentum": 0.9}, {}),
    ("RMSprop", {"momentum": 0.5, "centered": True}, {}),
    ("RMSprop", {"alpha": 0.3, "centered": True, "eps": 1e-4}, {}),
    ("RMSprop", {"weight_decay": 0.1}, {}),
    ("RMSprop", {"maximize": True, "momentum": 0.3}, {"centered": True, "momentum": 0.0}),
]


def _id(case):
    name, kwargs, group1 = case
    opts = ",".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{name}({opts})" + (f"+group1{group1}" if group1 else "")


@pytest.mark.parametrize("case", TRAJECTORIES, ids=[_id(c) for c in TRAJECTORIES])
def test_trajectory_matches_torch(case, rng, torch):
    """25 closure steps from identical float64 parameters: losses and parameters equal PyTorch's at every step."""
    name, kwargs, group1 = case
    kwargs = {"lr": BASE_LR[name], **kwargs}
    group1 = {"lr": kwargs["lr"] * 0.5, **group1}
    init, data = make_problem(rng)
    mine = Side("mdl", init, data, name, kwargs, group1)
    theirs = Side(torch, init, data, name, kwargs, group1)
    for step in range(25):
        loss, loss_torch = mine.step(), theirs.step()
        np.testing.assert_allclose(loss, loss_torch, rtol=1e-6, err_msg=f"loss at step {step}")
        assert_params_close(mine.values(), theirs.values(), msg=f"step {step}:")
    moved = any(not np.allclose(mine.values()[k], init[k]) for k in SHAPES)
    assert moved, "the optimizer did not move the parameters"


# ----------------------------------------------------------------------------- state_dict
ROUND_TRIPS = [
    ("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adam", {"amsgrad": True, "weight_decay": 0.1}),
    ("AdamW", {"amsgrad": True}),
    ("Adagrad", {"lr_decay": 0.05, "initial_accumulator_value": 0.1}),
    ("Adadelta", {"rho": 0.8}),
    ("RMSprop", {"momentum": 0.5, "centered": True}),
]


@pytest.mark.parametrize("name,kwargs", ROUND_TRIPS, ids=[c[0] for c in ROUND_TRIPS])
def test_state_dict_round_trip(name, kwargs, rng, torch):
    """10 steps, save, load into fresh optimizers (minidl from minidl and from PyTorch, PyTorch from minidl), 10 more
    steps: all equal 20 uninterrupted steps; the saved state has PyTorch's layout and values."""
    kwargs = {"lr": BASE_LR[name], **kwargs}
    group1 = {"lr": kwargs["lr"] * 0.5}
    init, data = make_problem(rng)
    mine = Side("mdl", init, data, name, kwargs, group1)
    theirs = Side(torch, init, data, name, kwargs, group1)
    for _ in range(10):
        mine.step(), theirs.step()
    saved, saved_torch = mine.opt.state_dict(), from_torch(torch, theirs.opt.state_dict())
    snapshot = copy.deepcopy(saved)

    assert saved["param_groups"] == saved_torch["param_groups"]
    assert saved["state"].keys() == saved_torch["state"].keys()
    for i, state in saved["state"].items():
        assert state.keys() == saved_torch["state"][i].keys()
        for key, value in state.items():
            np.testing.assert_allclose(value, saved_torch["state"][i][key], rtol=1e-6, atol=1e-10,
                                       err_msg=f"state[{i}][{key!r}]")
            assert isinstance(value, (np.ndarray, int, float))

    middle = mine.values()
    fresh_opts = {**kwargs, "lr": 123.0}  # the hyper-parameters must come from the state_dict
    resumed = Side("mdl", middle, data, name, fresh_opts, {})
    resumed.opt.load_state_dict(saved)
    from_theirs = Side("mdl", middle, data, name, fresh_opts, {})
    from_theirs.opt.load_state_dict(saved_torch)
    torch_resumed = Side(torch, middle, data, name, fresh_opts, {})
    torch_resumed.opt.load_state_dict(to_torch(torch, saved))

    for _ in range(10):
        mine.step(), resumed.step(), from_theirs.step(), torch_resumed.step()
    for k in SHAPES:
        np.testing.assert_array_equal(resumed.values()[k], mine.values()[k], err_msg=f"parameter {k}")
    assert_params_close(from_theirs.values(), mine.values(), msg="minidl loaded from PyTorch:")
    assert_params_close(torch_resumed.values(), mine.values(), msg="PyTorch loaded from minidl:")
    # the state_dict was a snapshot: the 10 later steps did not change it
    for i, state in snapshot["state"].items():
        for key, value in state.items():
            np.testing.assert_array_equal(saved["state"][i][key], value)


def test_load_state_dict_rejects_mismatches(rng):
    """Group count, group size and state shapes are checked, with messages naming what differs; a failed load
    leaves the optimizer as it was."""
    a, b = mdl.tensor(rng.standard_normal((2, 3)), requires_grad=True), mdl.tensor(rng.standard_normal(3),
                                                                                    requires_grad=True)
    opt = optim.Adam([{"params": [a]}, {"params": [b]}], lr=0.1)
    (a * a).sum().backward()
    (b * b).sum().backward()
    opt.step()
    saved = opt.state_dict()

    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.Adam([a, b]).load_state_dict(saved)
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group: group 0 has 1"):
        optim.Adam([{"params": [a, b]}, {"params": [mdl.tensor([1.0], requires_grad=True)]}]).load_state_dict(saved)
    other = optim.Adam([{"params": [mdl.tensor(np.zeros((3, 2)), requires_grad=True)]}, {"params": [b]}], lr=0.5)
    with pytest.raises(ValueError, match=re.escape("state 'exp_avg' of parameter 0 has shape (2, 3), but the "
                                                   "parameter has shape (3, 2)")):
        other.load_state_dict(saved)
    assert other.param_groups[0]["lr"] == 0.5 and len(other.state) == 0
    bad = copy.deepcopy(saved)
    bad["state"][7] = bad["state"].pop(0)
    with pytest.raises(ValueError, match="parameter index 7"):
        optim.Adam([{"params": [a]}, {"params": [b]}]).load_state_dict(bad)


# ----------------------------------------------------------------------------- dtype, missing grads
ALL = [("SGD", {"momentum": 0.9}), ("Adam", {"amsgrad": True}), ("AdamW", {}), ("Adagrad", {"lr_decay": 0.1}),
       ("Adadelta", {}), ("RMSprop", {"momentum": 0.9, "centered": True})]


@pytest.mark.parametrize("name,kwargs", ALL, ids=[c[0] for c in ALL])
def test_float32_stays_float32_and_updates_in_place(name, kwargs, rng, torch):
    """float32 parameters: after 5 steps the parameters and every state array are still float32, each parameter
    still holds the same array object (updated in place, no graph recorded), and the values match PyTorch's
    float32 run."""
    kwargs = {"lr": BASE_LR[name], **kwargs}
    init, data = make_problem(rng, np.float32)
    mine = Side("mdl", init, data, name, kwargs, {})
    theirs = Side(torch, init, data, name, kwargs, {})
    arrays = {k: p.array for k, p in mine.P.items()}
    for _ in range(5):
        mine.step(), theirs.step()
    for k, p in mine.P.items():
        assert p.array is arrays[k] and p.dtype == np.float32 and p.grad_fn is None and p.requires_grad
    for state in mine.opt.state.values():
        for key, value in state.items():
            assert not isinstance(value, np.ndarray) or value.dtype == np.float32, key
    assert_params_close(mine.values(), theirs.values(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,kwargs", ALL, ids=[c[0] for c in ALL])
def test_parameters_without_grad_are_skipped(name, kwargs, rng, torch):
    """A parameter that takes no part in the loss (grad None) keeps its value and gets no state of its own, as in
    PyTorch (whose Adagrad makes the state of every parameter up front)."""
    w0, z0 = rng.standard_normal(4), rng.standard_normal(3)
    results = []
    for lib in (mdl, torch):
        w, z = lib.tensor(w0.copy(), requires_grad=True), lib.tensor(z0.copy(), requires_grad=True)
        opt = getattr(optim if lib is mdl else torch.optim, name)([w, z], lr=BASE_LR[name], **kwargs)
        for _ in range(3):
            opt.zero_grad()
            (w * w).sum().backward()
            opt.step()
        assert z.grad is None
        results.append((w, z, opt.state_dict()))
    (w, z, saved), (tw, tz, saved_torch) = results
    np.testing.assert_array_equal(z.array, z0)
    np.testing.assert_allclose(w.array, tw.detach().numpy(), rtol=1e-6)
    assert saved["state"].keys() == saved_torch["state"].keys()
    if 1 in saved["state"]:
        assert saved["state"][1]["step"] == 0


@pytest.mark.parametrize("name", ["Adam", "RMSprop"])
def test_device_matches_cpu(name, device, rng):
    """The same steps on each available device give the CPU's numbers (the cuda case runs only with a GPU)."""
    init, data = make_problem(rng)
    runs = []
    for dev in ("cpu", device):
        P = {k: mdl.tensor(v, requires_grad=True, device=dev) for k, v in init.items()}
        D = {k: mdl.tensor(v, device=dev) for k, v in data.items()}
        opt = getattr(optim, name)(P.values(), lr=0.05, weight_decay=0.1)
        for _ in range(5):
            opt.zero_grad()
            loss_fn(P, D).backward()
            opt.step()
        assert all(p.device == dev for p in P.values())
        runs.append({k: p.numpy() for k, p in P.items()})
    assert_params_close(runs[1], runs[0], rtol=1e-10)


# ----------------------------------------------------------------------------- construction and errors
INVALID = [
    ("SGD", {"lr": -1}, "Invalid learning rate: -1"),
    ("SGD", {"momentum": -0.5}, "Invalid momentum value: -0.5"),
    ("SGD", {"weight_decay": -1e-4}, "Invalid weight_decay value: -0.0001"),
    ("SGD", {"nesterov": True}, "Nesterov momentum requires a momentum and zero dampening"),
    ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
     "Nesterov momentum requires a momentum and zero dampening"),
    ("Adam", {"lr": -0.1}, "Invalid learning rate: -0.1"),
    ("Adam", {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    ("Adam", {"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
    ("Adam", {"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
    ("AdamW", {"weight_decay": -0.01}, "Invalid weight_decay value: -0.01"),
    ("Adagrad", {"lr_decay": -1}, "Invalid lr_decay value: -1"),
    ("Adagrad", {"initial_accumulator_value": -0.1}, "Invalid initial_accumulator_value value: -0.1"),
    ("Adagrad", {"eps": -1e-10}, "Invalid epsilon value: -1e-10"),
    ("Adadelta", {"rho": 1.5}, "Invalid rho value: 1.5"),
    ("Adadelta", {"weight_decay": -1}, "Invalid weight_decay value: -1"),
    ("RMSprop", {"alpha": -0.9}, "Invalid alpha value: -0.9"),
    ("RMSprop", {"momentum": -0.9}, "Invalid momentum value: -0.9"),
    ("RMSprop", {"eps": -1.0}, "Invalid epsilon value: -1.0"),
]


@pytest.mark.parametrize("name,kwargs,message", INVALID, ids=[f"{n}{k}" for n, k, _ in INVALID])
def test_invalid_hyperparameters_raise_like_torch(name, kwargs, message, torch):
    """A bad hyper-parameter raises ValueError with PyTorch's message (checked against PyTorch itself)."""
    w = mdl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(optim, name)([w], **kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(torch.optim, name)([torch.ones(2, requires_grad=True)], **kwargs)


def test_invalid_group_option_raises():
    """minidl also checks the options a parameter group sets for itself."""
    a, b = mdl.tensor([1.0], requires_grad=True), mdl.tensor([2.0], requires_grad=True)
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.SGD([{"params": [a]}, {"params": [b], "lr": -1}], lr=0.1)
    opt = optim.Adam([a])
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1: 1.0"):
        opt.add_param_group({"params": [b], "betas": (0.9, 1.0)})


@pytest.mark.parametrize("name,flag,value", [
    ("SGD", "foreach", True), ("SGD", "fused", True), ("SGD", "differentiable", True),
    ("Adam", "capturable", True), ("Adam", "fused", True), ("AdamW", "foreach", True),
    ("Adagrad", "fused", True), ("Adadelta", "capturable", True), ("RMSprop", "differentiable", True),
])
def test_pytorch_implementation_flags(name, flag, value):
    """PyTorch's implementation switches are accepted at the values meaning the single-tensor loop, and refused
    otherwise with an error naming the argument."""
    w = mdl.tensor([1.0], requires_grad=True)
    with pytest.raises(NotImplementedError, match=f"{flag}={value}"):
        getattr(optim, name)([w], **{flag: value})
    accepted = {"foreach": False, "fused": False}.get(flag)
    if accepted is not None:
        getattr(optim, name)([w], **{flag: accepted})


def test_params_argument_errors():
    """params must be a non-empty ordered iterable of leaf Tensors or of dicts, each parameter in one group."""
    w = mdl.tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts, but got Tensor"):
        optim.SGD(w)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([])
    with pytest.raises(TypeError, match="can only optimize Tensors, but one of the params is numpy.ndarray"):
        optim.SGD([np.zeros(2)])
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        optim.SGD([w * 2])
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {w}}])
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [w]}, {"params": [w]}])
    with pytest.raises(TypeError, match="param_group must be a dict"):
        optim.SGD([w]).add_param_group([w])


@pytest.mark.parametrize("name,kwargs", [("SGD", {"lr": 0.1, "momentum": 0.9}), ("Adam", {"betas": (0.8, 0.9)}),
                                         ("AdamW", {}), ("Adagrad", {"lr_decay": 0.5}), ("Adadelta", {}),
                                         ("RMSprop", {"centered": True})])
def test_groups_defaults_and_repr_match_torch(name, kwargs, torch):
    """Groups get every hyper-parameter, group options override the defaults, groups added later are filled the
    same way, and the repr prints exactly like PyTorch's."""
    def build(lib, ns):
        a, b, c = (lib.tensor([1.0, 2.0], requires_grad=True) for _ in range(3))
        opt = getattr(ns, name)([{"params": [a]}, {"params": [b], "lr": 0.25, "weight_decay": 0.5}], **kwargs)
        opt.add_param_group({"params": c, "eps": 0.125})
        return opt
    mine, theirs = build(mdl, optim), build(torch, torch.optim)
    assert mine.defaults == theirs.defaults
    strip = [{k: v for k, v in g.items() if k != "params"} for g in theirs.param_groups]
    assert [{k: v for k, v in g.items() if k != "params"} for g in mine.param_groups] == strip
    assert repr(mine) == repr(theirs)


def test_zero_grad_and_closure(rng, torch):
    """zero_grad() drops the gradients; zero_grad(set_to_none=False) zeroes them in place, and then a momentum
    step still moves the parameters, as in PyTorch; step(closure) returns the closure's loss."""
    w0 = rng.standard_normal(3)
    runs = []
    for lib, ns in ((mdl, optim), (torch, torch.optim)):
        w = lib.tensor(w0.copy(), requires_grad=True)
        opt = ns.SGD([w], lr=0.1, momentum=0.9)

        def closure():
            opt.zero_grad()
            loss = (w * w).sum()
            loss.backward()
            return loss
        loss = opt.step(closure)
        assert loss.item() == pytest.approx(float((w0 * w0).sum()))
        grad = w.grad
        opt.zero_grad(set_to_none=False)
        assert w.grad is grad and not w.grad.numpy().any()
        opt.step()
        opt.zero_grad()
        assert w.grad is None
        runs.append(w.detach().numpy() if lib is torch else w.array)
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-12)
    assert not np.allclose(runs[0], w0 - 0.1 * 2 * w0)  # the zero-gradient step moved w


def test_named_parameters_are_saved_like_torch(torch):
    """(name, Tensor) pairs are accepted; the names travel in the state_dict's param_groups as "param_names"."""
    mine = optim.SGD([("w", mdl.tensor([1.0], requires_grad=True)), ("b", mdl.tensor([2.0], requires_grad=True))])
    theirs = torch.optim.SGD([("w", torch.ones(1, requires_grad=True)), ("b", torch.ones(1, requires_grad=True))])
    assert mine.state_dict() == theirs.state_dict()
    assert mine.state_dict()["param_groups"][0]["param_names"] == ["w", "b"]
    with pytest.raises(ValueError, match="with/without names"):
        mine.add_param_group({"params": [mdl.tensor([3.0], requires_grad=True)]})


ADAM_OPTIONS = [dict(), dict(amsgrad=True), dict(maximize=True), dict(weight_decay=0.1),
                dict(weight_decay=0.1, decoupled_weight_decay=True), dict(betas=(0.3, 0.99), amsgrad=True)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [(7, 5), (400, 300)])  # the kernel's serial and parallel compilations
@pytest.mark.parametrize("kwargs", ADAM_OPTIONS, ids=lambda k: ",".join(f"{a}={v}" for a, v in k.items()) or "plain")
def test_adam_kernel_equals_its_expressions(dtype, size, kwargs):
    """Adam's one-pass kernel (kernels.cpu.adam_update) gives the array expressions of Adam._update bit for bit,
    for every option (beta1 = 0.3 takes lerp's other branch), in float32 and float64; and it is what runs."""
    from minidl.kernels import cpu
    from minidl.optim import adam
    rng = np.random.default_rng(0)
    init = rng.standard_normal(size).astype(dtype)
    grads = [rng.standard_normal(size).astype(dtype) for _ in range(4)]
    runs = []
    for kernels in ("fast", "reference"):
        with mdl.use_kernels(kernels):
            p = mdl.tensor(init.copy(), requires_grad=True)
            opt = optim.Adam([p], lr=0.01, **kwargs)
            for g in grads:
                p.grad = mdl.tensor(g)
                opt.step()
                runs.append([p.array.copy()] + [v.copy() for v in opt.state[p].values() if isinstance(v, np.ndarray)])
            assert (adam._fast_twin(p.array, p.grad.array, opt.state[p]) is not None) == (kernels == "fast")
    fast, reference = runs[:len(grads)], runs[len(grads):]
    for step, (a, b) in enumerate(zip(fast, reference)):
        for x, y in zip(a, b):
            assert x.dtype == dtype
            np.testing.assert_array_equal(x, y, err_msg=f"step {step + 1}")
    assert cpu.adam_update is adam.fast_twin(np, "adam_update")


def test_adam_kernel_gets_flat_arrays():
    """Parameters of every rank reach the kernel as flat views: one compilation serves them all (one per rank
    grew the process by the kernels Numba loaded at the first step; docs/PERFORMANCE.md, "Adam in one pass")."""
    from minidl.kernels import cpu
    params = [mdl.tensor(np.ones(shape, np.float32), requires_grad=True) for shape in ((3,), (4, 3), (2, 3, 2, 2))]
    seen = []
    for p in params:
        p.grad = mdl.tensor(np.ones(p.shape, np.float32))
    original = cpu.adam_update
    try:
        cpu.adam_update = lambda *args: seen.append(tuple(a.ndim for a in args[:5])) or original(*args)
        optim.Adam(params, lr=0.1).step()
    finally:
        cpu.adam_update = original
    assert seen == [(1,) * 5] * 3
    np.testing.assert_allclose(params[2].array, 0.9)


def test_adam_kernel_only_where_it_applies():
    """The kernel takes C-contiguous float32/float64 arrays of one dtype; anything else keeps the expressions."""
    from minidl.optim import adam
    a = np.ones((4, 3))
    state = {"step": 1, "exp_avg": np.zeros((4, 3)), "exp_avg_sq": np.zeros((4, 3))}
    assert adam._fast_twin(a, a, state) is not None
    assert adam._fast_twin(a.T.copy().T, a, state) is None  # a transposed (Fortran-ordered) parameter
    assert adam._fast_twin(a, a.astype(np.float32), state) is None  # mixed dtypes
    half = a.astype(np.float16)
    assert adam._fast_twin(half, half, {k: v.astype(np.float16) if k != "step" else v
                                        for k, v in state.items()}) is None
