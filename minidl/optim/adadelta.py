"""Adadelta: steps whose size comes from running averages of past steps and past gradients."""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler, 2012), PyTorch's update rule.

    For each parameter :math:`\theta` with gradient :math:`g`::

        g = -g                                           if maximize
        g = g + weight_decay * theta                     if weight_decay != 0      (L2 penalty)
        v = rho * v + (1 - rho) * g * g                  running mean of g**2       (square_avg)
        delta = sqrt(u + eps) / sqrt(v + eps) * g        step, in the units of theta
        u = rho * u + (1 - rho) * delta * delta          running mean of delta**2   (acc_delta)
        theta = theta - lr * delta

    The ratio of the two root-mean-squares gives each coordinate its own step size, with no learning rate to
    tune in the original method (``lr`` is a plain multiplier, 1 by default). State per parameter: ``step``,
    ``square_avg``, ``acc_delta``.

    Args:
        params: parameters, or parameter groups (dicts) with per-group options.
        lr: multiplier of the step.
        rho: decay rate of the running means.
        eps: added inside both square roots; it also sets the size of the very first steps.
        weight_decay: L2 penalty coefficient.
        foreach, capturable, differentiable: PyTorch implementation switches; only their defaults are supported.
        maximize: ascend the objective instead of descending it.
    """

    def __init__(self, params: ParamsT, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, foreach: bool | None = None, *, capturable: bool = False,
                 maximize: bool = False, differentiable: bool = False) -> None:
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def _validate(self, options: dict[str, Any]) -> None:
        super()._validate(options)
        if not 0.0 <= options["lr"]:
            raise ValueError(f"Invalid learning rate: {options['lr']}")
        if not 0.0 <= options["rho"] <= 1.0:
            raise ValueError(f"Invalid rho value: {options['rho']}")
        if not 0.0 <= options["eps"]:
            raise ValueError(f"Invalid epsilon value: {options['eps']}")
        if not 0.0 <= options["weight_decay"]:
            raise ValueError(f"Invalid weight_decay value: {options['weight_decay']}")

    def _update(self, p: Tensor, grad, state: dict[str, Any], group: dict[str, Any]) -> None:
        xp = get_array_module(p.array)
        theta = p.array
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(theta)
            state["acc_delta"] = xp.zeros_like(theta)
        lr, rho = float(group["lr"]), float(group["rho"])
        eps, weight_decay = float(group["eps"]), float(group["weight_decay"])
        state["step"] += 1
        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            grad = grad + weight_decay * theta
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg *= rho
        square_avg += (1 - rho) * grad * grad
        std = xp.sqrt(square_avg + eps)
        delta = xp.sqrt(acc_delta + eps) / std * grad
        acc_delta *= rho
        acc_delta += (1 - rho) * delta * delta
        theta -= lr * delta
