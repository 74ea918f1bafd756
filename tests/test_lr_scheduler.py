"""minidl.optim.lr_scheduler against torch.optim.lr_scheduler.

Each test wraps a minidl SGD and a PyTorch SGD with two parameter groups (lr 0.1 and 0.05) in the same scheduler,
steps both for 40 epochs (optimizer step, then scheduler step; ReduceLROnPlateau is fed the same metric
sequence), and requires the learning-rate sequences to be PyTorch's. State round trips must resume identically.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import minidl as mdl
from minidl import optim
from minidl.optim import lr_scheduler

EPOCHS = 40


def make_optimizer(lib):
    """SGD over two parameter groups; the parameters never get gradients, so only the lrs change."""
    ns = optim if lib is mdl else lib.optim
    a, b = lib.tensor([1.0, 2.0], requires_grad=True), lib.tensor([3.0], requires_grad=True)
    return ns.SGD([{"params": [a]}, {"params": [b], "lr": 0.05}], lr=0.1, momentum=0.9)


def make_scheduler(lib, optimizer, name, kwargs):
    module = lr_scheduler if lib is mdl else lib.optim.lr_scheduler
    return getattr(module, name)(optimizer, **kwargs)


def run(scheduler, optimizer, epochs, metrics=None):
    """The lrs after each epoch: ``get_last_lr()`` and what the optimizer's groups hold."""
    lrs = []
    for epoch in range(epochs):
        optimizer.step()
        if metrics is None:
            scheduler.step()
        else:
            scheduler.step(metrics[epoch])
        last = scheduler.get_last_lr()
        assert last == [g["lr"] for g in optimizer.param_groups]
        lrs.append(last)
    return np.array(lrs)


def plateau_metrics(kind, rng):
    """A loss that improves for 8 epochs then wobbles on a plateau, or a rounded random walk (ties included)."""
    if kind == "plateau":
        return [1.0 - 0.05 * t if t < 8 else 0.62 + 0.01 * (-1) ** t for t in range(EPOCHS)]
    return list(np.round(2.0 + np.cumsum(rng.normal(-0.01, 0.05, EPOCHS)), 2))


SCHEDULES = [
    ("StepLR", {"step_size": 7}),
    ("StepLR", {"step_size": 3, "gamma": 0.5}),
    ("StepLR", {"step_size": 1, "gamma": 0.9}),
    ("MultiStepLR", {"milestones": [4, 10, 25]}),
    ("MultiStepLR", {"milestones": [30, 5, 12, 12], "gamma": 0.5}),
    ("CosineAnnealingLR", {"T_max": 10}),
    ("CosineAnnealingLR", {"T_max": 15, "eta_min": 0.01}),
    ("CosineAnnealingLR", {"T_max": 3, "eta_min": 0.001}),
]
PLATEAUS = [
    {},
    {"mode": "max", "patience": 2},
    {"patience": 1, "threshold": 0.05, "threshold_mode": "abs"},
    {"mode": "max", "patience": 0, "threshold": 0.01, "factor": 0.5},
    {"mode": "max", "patience": 1, "threshold": 0.02, "threshold_mode": "abs", "factor": 0.3},
    {"patience": 1, "cooldown": 3, "factor": 0.5},
    {"patience": 0, "factor": 0.5, "min_lr": 0.02},
    {"patience": 0, "factor": 0.5, "min_lr": [0.03, 0.001]},
    {"patience": 0, "factor": 0.9, "eps": 0.005},
]


def _id(name, kwargs):
    return name + "(" + ",".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


@pytest.mark.parametrize("name,kwargs", SCHEDULES, ids=[_id(*c) for c in SCHEDULES])
def test_schedule_matches_torch(name, kwargs, torch):
    """40 epochs (past T_max for the cosine): the lr of every group equals PyTorch's at every epoch."""
    mine_opt, theirs_opt = make_optimizer(mdl), make_optimizer(torch)
    mine = make_scheduler(mdl, mine_opt, name, kwargs)
    theirs = make_scheduler(torch, theirs_opt, name, kwargs)
    assert mine.get_last_lr() == theirs.get_last_lr() == [0.1, 0.05]
    assert mine.last_epoch == theirs.last_epoch == 0
    mine_lrs, theirs_lrs = run(mine, mine_opt, EPOCHS), run(theirs, theirs_opt, EPOCHS)
    np.testing.assert_allclose(mine_lrs, theirs_lrs, rtol=1e-12, atol=0)
    assert len(np.unique(mine_lrs[:, 0])) > 2, "the schedule never changed the lr"
    assert [g["initial_lr"] for g in mine_opt.param_groups] == [0.1, 0.05]
    assert mine.base_lrs == theirs.base_lrs and mine.last_epoch == theirs.last_epoch == EPOCHS


@pytest.mark.parametrize("metrics_kind", ["plateau", "walk"])
@pytest.mark.parametrize("kwargs", PLATEAUS, ids=[_id("", c) for c in PLATEAUS])
def test_reduce_lr_on_plateau_matches_torch(kwargs, metrics_kind, rng, torch):
    """Fed the same metric sequence, ReduceLROnPlateau reduces the lrs at the same epochs as PyTorch's, in both modes
    and threshold modes, with cooldown, min_lr (scalar and per group) and eps."""
    metrics = plateau_metrics(metrics_kind, rng)
    if kwargs.get("mode") == "max":  # an accuracy-like metric: positive, rising, then flat
        metrics = [3.0 - m for m in metrics]
    mine_opt, theirs_opt = make_optimizer(mdl), make_optimizer(torch)
    mine = make_scheduler(mdl, mine_opt, "ReduceLROnPlateau", kwargs)
    theirs = make_scheduler(torch, theirs_opt, "ReduceLROnPlateau", kwargs)
    mine_lrs = run(mine, mine_opt, EPOCHS, metrics)
    theirs_lrs = run(theirs, theirs_opt, EPOCHS, metrics)
    np.testing.assert_allclose(mine_lrs, theirs_lrs, rtol=1e-12, atol=0)
    assert (mine.best, mine.num_bad_epochs, mine.cooldown_counter) == (theirs.best, theirs.num_bad_epochs,
                                                                       theirs.cooldown_counter)
    if metrics_kind == "plateau":
        assert mine_lrs[-1, 0] < 0.1, "the plateau never reduced the lr"


def test_reduce_lr_on_plateau_takes_tensors_and_arrays():
    """The metric may be a one-element minidl tensor or a NumPy scalar."""
    opt = make_optimizer(mdl)
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    for metric in (mdl.tensor(1.0), np.float64(2.0), mdl.tensor([3.0])):
        opt.step()
        sched.step(metric)
    assert sched.best == 1.0 and sched.get_last_lr() == pytest.approx([0.001, 0.0005])


RESUMES = SCHEDULES[::2] + [("ReduceLROnPlateau", {"patience": 1, "cooldown": 2, "factor": 0.5})]


@pytest.mark.parametrize("name,kwargs", RESUMES, ids=[_id(*c) for c in RESUMES])
def test_state_dict_round_trip(name, kwargs, rng):
    """15 epochs, save optimizer and scheduler, rebuild both fresh, load, 25 more epochs: the lrs equal 40
    uninterrupted epochs."""
    metrics = plateau_metrics("walk", rng) if name == "ReduceLROnPlateau" else None
    opt = make_optimizer(mdl)
    sched = make_scheduler(mdl, opt, name, kwargs)
    first = run(sched, opt, 15, metrics)
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    rest = run(sched, opt, EPOCHS - 15, metrics[15:] if metrics else None)

    opt2 = make_optimizer(mdl)
    sched2 = make_scheduler(mdl, opt2, name, kwargs)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    assert sched2.get_last_lr() == list(first[-1])
    resumed = run(sched2, opt2, EPOCHS - 15, metrics[15:] if metrics else None)
    np.testing.assert_array_equal(resumed, rest)
    assert "optimizer" not in saved_sched and saved_sched["last_epoch"] == 15


@pytest.mark.parametrize("name,kwargs", [("StepLR", {"step_size": 4}), ("CosineAnnealingLR", {"T_max": 9}),
                                         ("ReduceLROnPlateau", {"patience": 1})])
def test_torch_checkpoint_resumes_in_minidl(name, kwargs, rng, torch):
    """A PyTorch optimizer + scheduler checkpoint (plain Python values) loads into minidl and continues like
    PyTorch."""
    metrics = plateau_metrics("walk", rng) if name == "ReduceLROnPlateau" else None
    theirs_opt = make_optimizer(torch)
    theirs = make_scheduler(torch, theirs_opt, name, kwargs)
    run(theirs, theirs_opt, 12, metrics)
    mine_opt = make_optimizer(mdl)
    mine = make_scheduler(mdl, mine_opt, name, kwargs)
    mine_opt.load_state_dict(theirs_opt.state_dict())
    mine.load_state_dict(theirs.state_dict())
    later = metrics[12:] if metrics else None
    np.testing.assert_allclose(run(mine, mine_opt, 20, later), run(theirs, theirs_opt, 20, later), rtol=1e-12)


@pytest.mark.parametrize("name,kwargs", SCHEDULES[::3], ids=[_id(*c) for c in SCHEDULES[::3]])
def test_resume_with_last_epoch_matches_torch(name, kwargs, torch):
    """Built with last_epoch=5 on groups that already have initial_lr, a scheduler continues like PyTorch's
    (the cosine starts from its closed form there); without initial_lr it is a KeyError."""
    seqs = []
    for lib in (mdl, torch):
        opt = make_optimizer(lib)
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"] * 2
        seqs.append(run(make_scheduler(lib, opt, name, {**kwargs, "last_epoch": 5}), opt, 20))
    np.testing.assert_allclose(seqs[0], seqs[1], rtol=1e-12)
    with pytest.raises(KeyError, match=re.escape("param 'initial_lr' is not specified in param_groups[0]")):
        make_scheduler(mdl, make_optimizer(mdl), name, {**kwargs, "last_epoch": 5})


@pytest.mark.parametrize("name,kwargs", SCHEDULES[::2], ids=[_id(*c) for c in SCHEDULES[::2]])
def test_step_with_epoch_uses_closed_form(name, kwargs, torch):
    """The deprecated step(epoch) warns and jumps to the closed-form lr of that epoch, as in PyTorch."""
    seqs = []
    for lib in (mdl, torch):
        opt = make_optimizer(lib)
        sched = make_scheduler(lib, opt, name, kwargs)
        lrs = []
        for epoch in (3, 7, 20, 4):
            opt.step()
            with pytest.warns(UserWarning, match="deprecated"):
                sched.step(epoch)
            lrs.append(sched.get_last_lr())
        seqs.append(lrs)
    np.testing.assert_allclose(seqs[0], seqs[1], rtol=1e-12)


def test_step_order_warning():
    """Stepping the scheduler before the optimizer warns (the first lr of the schedule would be skipped); the
    usual order does not."""
    opt = make_optimizer(mdl)
    sched = lr_scheduler.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match=re.escape("before `optimizer.step()`")):
        sched.step()
    opt = make_optimizer(mdl)
    sched = lr_scheduler.StepLR(opt, step_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        sched.step()
        sched.step()


def test_invalid_arguments_raise_like_torch(torch):
    """Bad arguments raise PyTorch's errors (checked against PyTorch), plus minidl's checks of step_size and T_max,
    which PyTorch lets through to a ZeroDivisionError."""
    cases = [
        ("ReduceLROnPlateau", {"factor": 1.0}, ValueError, "Factor should be < 1.0."),
        ("ReduceLROnPlateau", {"mode": "avg"}, ValueError, "mode avg is unknown!"),
        ("ReduceLROnPlateau", {"threshold_mode": "pct"}, ValueError, "threshold mode pct is unknown!"),
        ("ReduceLROnPlateau", {"min_lr": [0.1]}, ValueError, "expected 2 min_lrs, got 1"),
    ]
    for name, kwargs, exc, message in cases:
        for lib in (mdl, torch):
            with pytest.raises(exc, match=re.escape(message)):
                make_scheduler(lib, make_optimizer(lib), name, kwargs)
    for lib in (mdl, torch):
        with pytest.raises(TypeError, match="list is not an Optimizer"):
            make_scheduler(lib, [], "StepLR", {"step_size": 2})
    with pytest.raises(ValueError, match="step_size must be positive, got 0"):
        lr_scheduler.StepLR(make_optimizer(mdl), step_size=0)
    with pytest.raises(ValueError, match="T_max must be positive, got 0"):
        lr_scheduler.CosineAnnealingLR(make_optimizer(mdl), T_max=0)
