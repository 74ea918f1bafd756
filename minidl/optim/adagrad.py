"""Adagrad: per-coordinate learning rates that shrink with the sum of squared past gradients."""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al., 2011), PyTorch's update rule.

    For each parameter :math:`\theta` with gradient :math:`g`, at step :math:`t = 1, 2, \dots`::

        g = -g                                      if maximize
        g = g + weight_decay * theta                if weight_decay != 0        (L2 penalty)
        clr = lr / (1 + (t - 1) * lr_decay)         decayed learning rate
        s = s + g * g                               sum of squared gradients    (sum; starts at
                                                                                 initial_accumulator_value)
        theta = theta - clr * g / (sqrt(s) + eps)

    Coordinates that have seen large gradients take small steps, rarely-updated ones keep large steps. The
    state (``step`` and ``sum``) is created for every parameter when the optimizer is built, as in PyTorch.

    Args:
        params: parameters, or parameter groups (dicts) with per-group options.
        lr: learning rate.
        lr_decay: learning-rate decay per step.
        weight_decay: L2 penalty coefficient.
        initial_accumulator_value: starting value of every ``sum``. Like PyTorch, the accumulators of all
            groups start at the constructor's value; a per-group value is kept in the group but not used.
        eps: added to the denominator for numerical stability.
        foreach, differentiable, fused: PyTorch implementation switches; only their defaults are supported.
        maximize: ascend the objective instead of descending it.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach: bool | None = None, *,
                 maximize: bool = False, differentiable: bool = False, fused: bool | None = None) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, self.state[p])

    def _validate(self, options: dict[str, Any]) -> None:
        super()._validate(options)
        if not 0.0 <= options["lr"]:
            raise ValueError(f"Invalid learning rate: {options['lr']}")
        if not 0.0 <= options["lr_decay"]:
            raise ValueError(f"Invalid lr_decay value: {options['lr_decay']}")
        if not 0.0 <= options["weight_decay"]:
            raise ValueError(f"Invalid weight_decay value: {options['weight_decay']}")
        if not 0.0 <= options["initial_accumulator_value"]:
            raise ValueError(f"Invalid initial_accumulator_value value: {options['initial_accumulator_value']}")
        if not 0.0 <= options["eps"]:
            raise ValueError(f"Invalid epsilon value: {options['eps']}")

    def _init_state(self, p: Tensor, state: dict[str, Any]) -> None:
        xp = get_array_module(p.array)
        state["step"] = 0
        state["sum"] = xp.full_like(p.array, self.defaults["initial_accumulator_value"])

    def _update(self, p: Tensor, grad, state: dict[str, Any], group: dict[str, Any]) -> None:
        xp = get_array_module(p.array)
        theta = p.array
        if not state:  # a parameter added later with add_param_group
            self._init_state(p, state)
        lr, lr_decay = float(group["lr"]), float(group["lr_decay"])
        weight_decay, eps = float(group["weight_decay"]), float(group["eps"])
        state["step"] += 1
        t = state["step"]
        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            grad = grad + weight_decay * theta
        clr = lr / (1 + (t - 1) * lr_decay)
        state["sum"] += grad * grad
        std = xp.sqrt(state["sum"]) + eps
        theta -= clr * (grad / std)
