"""The optimizer base class: parameter groups, per-parameter state, ``step``, ``zero_grad``, ``state_dict``.

An optimizer owns a list of *parameter groups*. Each group is a dict holding its ``"params"`` (a list of
Tensors) and every hyper-parameter of the optimizer (``"lr"``, ``"momentum"``, ...); options a group does not
set are filled from ``optimizer.defaults``, so one optimizer can train, say, a backbone with a small learning
rate and a head with a large one::

    optim.SGD([{"params": backbone}, {"params": head, "lr": 1e-2}], lr=1e-3, momentum=0.9)

``optimizer.state[p]`` is a dict of whatever the update rule remembers about parameter ``p`` between steps
(a momentum buffer, running averages, a step count). ``step()`` calls the subclass's ``_update`` once per
parameter that has a gradient; ``_update`` writes ``p.array`` in place, on raw arrays (NumPy or CuPy, picked
by ``get_array_module``), so no graph is recorded and a module holding ``p`` sees the new values.

The update rules are PyTorch's single-tensor (``foreach=False``) ones, and ``state_dict()`` has PyTorch's
layout (state keyed by parameter index, groups listing indices), so a state saved by one loads into the other.
"""
from __future__ import annotations

import copy
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any, Union

import numpy as np

from ..autograd import enable_grad
from ..backend import device_of, get_array_module, to_device, to_numpy
from ..tensor import Tensor

__all__ = ["Optimizer", "ParamsT"]

ParamsT = Union[Iterable[Tensor], Iterable[dict[str, Any]], Iterable[tuple[str, Tensor]]]

# PyTorch-only switches that choose an implementation, not the math. minidl has one implementation (the
# single-tensor loop), so only the values that mean "that one" are accepted.
_IMPLEMENTATION_FLAGS = {
    "foreach": (None, False),
    "fused": (None, False),
    "capturable": (False,),
    "differentiable": (False,),
}


def lerp_(start, end, weight: float) -> None:
    """``start <- start + weight * (end - start)`` in place, rounded like ``torch.lerp``.

    PyTorch evaluates the interpolation from whichever end is nearer (``weight`` below or above 1/2), which
    keeps it exact at ``weight = 1``; doing the same keeps float64 trajectories equal to PyTorch's.
    """
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        get_array_module(start).subtract(end, (end - start) * (1 - weight), out=start)


class Optimizer:
    """Base class of all optimizers.

    Subclasses pass their hyper-parameters as ``defaults`` and implement ``_update(p, grad, state, group)``,
    the update of one parameter; they may extend ``_validate(options)`` to check hyper-parameters.

    Args:
        params: an iterable of Tensors, of ``(name, Tensor)`` pairs, or of dicts (parameter groups, each with a
            ``"params"`` entry and any per-group options).
        defaults: every hyper-parameter and its default value.

    Attributes:
        param_groups: list of dicts, each with ``"params"`` and every hyper-parameter.
        defaults: the optimizer-wide hyper-parameters.
        state: ``state[p]`` is the dict of what the update rule remembers for parameter ``p``.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self._validate(defaults)
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got Tensor (wrap it in a list: [p])")
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._opt_called = False  # read by lr schedulers, to warn when they step before the optimizer
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ----------------------------------------------------------------- groups
    def _validate(self, options: dict[str, Any]) -> None:
        """Raise for an invalid hyper-parameter in ``options`` (the defaults, or a group)."""
        name = type(self).__name__
        for flag, accepted in _IMPLEMENTATION_FLAGS.items():
            if flag in options and options[flag] not in accepted:
                raise NotImplementedError(
                    f"{name}: {flag}={options[flag]!r} is not supported; minidl runs the single-tensor update "
                    f"(PyTorch's foreach=False), so leave {flag} at its default")
        lr = options.get("lr")
        if isinstance(lr, Tensor):
            raise NotImplementedError(f"{name}: lr as a Tensor is not supported; pass a float")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters, with its own options, to ``param_groups``.

        Options the group does not set take the optimizer's defaults. Useful to start training layers that
        were frozen, e.g. when fine-tuning.

        Args:
            param_group: a dict with ``"params"`` (a Tensor or an iterable of Tensors or ``(name, Tensor)``
                pairs) and any per-group hyper-parameters.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs. Please use a list instead.")
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        if names:
            if len(names) != len(params):
                raise ValueError("all optimizer params should be with/without names. Some param names are missing")
            group["param_names"] = names
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__module__}.{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        group["params"] = params
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        self._validate(group)
        if len({id(p) for p in params}) != len(params):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, this will "
                          "cause an error", stacklevel=3)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for g in self.param_groups:
            if ("param_names" in g) != ("param_names" in group):
                which = "with names" if "param_names" in group else "without names"
                raise ValueError("all optimizer param groups should be with/without names. "
                                 f"cannot add param group {which} to the optimizer")
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    # ----------------------------------------------------------------- stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradient of every parameter.

        Args:
            set_to_none: drop the gradients (``p.grad = None``), the default; a parameter whose gradient is
                None is skipped by ``step()``. With False, fill the existing gradients with zeros instead, and
                ``step()`` then updates every parameter (momentum and decay still move it).
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.array[...] = 0

    def step(self, closure: Callable[[], Any] | None = None):
        """Update every parameter that has a gradient, once.

        Args:
            closure: optional function that clears the gradients, re-evaluates the model, calls
                ``backward()`` and returns the loss; it runs (with graph recording on) before the update.

        Returns:
            The closure's loss, or None without a closure.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.array
                if grad.shape != p.array.shape:
                    raise RuntimeError(f"{type(self).__name__}.step: parameter of shape {tuple(p.shape)} has a "
                                       f"gradient of shape {tuple(grad.shape)}")
                self._update(p, grad, self.state[p], group)
                p._bump_version()  # a graph built before this step can no longer backpropagate through p
        self._opt_called = True
        return loss

    def _update(self, p: Tensor, grad, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Update ``p.array`` in place from its gradient array ``grad``, its ``state`` and its ``group``."""
        raise NotImplementedError(f"{type(self).__name__}._update")

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """A snapshot of the optimizer, in PyTorch's layout.

        Returns:
            ``{"state": {index: {name: value}}, "param_groups": [group, ...]}``: parameters are replaced by
            their index in the order of ``param_groups`` (each group's ``"params"`` is a list of indices);
            state arrays are NumPy copies, counters and hyper-parameters Python numbers. Parameters that have
            no state yet are left out, as in PyTorch.
        """
        index: dict[int, int] = {}
        start = 0
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                index.setdefault(id(p), i)
            packed["params"] = [index[id(p)] for p in group["params"]]
            start += len(packed["params"])
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            if s:
                state[index[id(p)]] = {k: self._export(v) for k, v in s.items()}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    @staticmethod
    def _export(value):
        if isinstance(value, np.ndarray) or device_of(value) == "cuda":
            return np.array(to_numpy(value), copy=True)
        return copy.deepcopy(value)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state saved by ``state_dict()`` (minidl's or PyTorch's, with arrays for tensors).

        The optimizer must have been built on the same parameters in the same groups: the saved groups are
        matched to this optimizer's by position, parameters by index. Hyper-parameters come from the saved
        groups; state arrays are copied to each parameter's device and (floating) dtype.

        Args:
            state_dict: ``{"state": ..., "param_groups": ...}`` as returned by ``state_dict()``.

        Raises:
            ValueError: the number of groups, a group's size, a state index or a state array's shape does not
                match this optimizer.
        """
        name = type(self).__name__
        groups = self.param_groups
        saved_groups = copy.deepcopy(list(state_dict["param_groups"]))
        if len(groups) != len(saved_groups):
            raise ValueError(f"{name}.load_state_dict: loaded state dict has a different number of parameter "
                             f"groups ({len(saved_groups)}) than the optimizer ({len(groups)})")
        for i, (group, saved) in enumerate(zip(groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(f"{name}.load_state_dict: loaded state dict contains a parameter group that "
                                 f"doesn't match the size of optimizer's group: group {i} has "
                                 f"{len(saved['params'])} parameters in the state dict and "
                                 f"{len(group['params'])} in the optimizer")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))
        state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        for key, values in state_dict["state"].items():
            index = int(key)  # a checkpoint format may have turned the index into a string
            if index not in id_map:
                raise ValueError(f"{name}.load_state_dict: state for parameter index {index}, but the saved "
                                 f"param_groups only list indices {sorted(id_map)}")
            p = id_map[index]
            state[p] = {k: self._import(p, index, k, v) for k, v in values.items()}
        for group, saved in zip(groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
            for key, default in self.defaults.items():
                saved.setdefault(key, default)
            self._validate(saved)
        self.state = state
        self.param_groups = saved_groups

    def _import(self, p: Tensor, index: int, key: str, value):
        """A state value, copied onto ``p``'s device; floating arrays take ``p``'s dtype; steps stay numbers."""
        if key == "step":
            return int(float(value))
        if value is None or isinstance(value, (bool, int, float)):
            return value
        array = value if device_of(value) == "cuda" else np.asarray(value)
        if array.shape != p.shape:
            raise ValueError(f"{type(self).__name__}.load_state_dict: state '{key}' of parameter {index} has "
                             f"shape {tuple(array.shape)}, but the parameter has shape {tuple(p.shape)}")
        if array.dtype.kind == "f" and p.dtype.kind == "f":
            array = array.astype(p.dtype, copy=False)
        array = to_device(array, p.device)
        return get_array_module(array).array(array, copy=True)

    def __repr__(self) -> str:
        text = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            text += "".join(f"    {key}: {group[key]}\n" for key in sorted(group) if key != "params")
        return text + ")"
