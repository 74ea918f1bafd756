"""RMSprop: gradient steps divided by a running root-mean-square of the gradient."""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT, lerp_

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop (Hinton, 2012), PyTorch's update rule.

    For each parameter :math:`\theta` with gradient :math:`g`::

        g = -g                                      if maximize
        g = g + weight_decay * theta                if weight_decay != 0     (L2 penalty)
        v = alpha * v + (1 - alpha) * g * g         running mean of g**2      (square_avg)
        if centered:
            m = alpha * m + (1 - alpha) * g         running mean of g         (grad_avg)
            avg = sqrt(v - m * m) + eps             running standard deviation of g
        else:
            avg = sqrt(v) + eps                     running root-mean-square of g
        if momentum > 0:
            b = momentum * b + g / avg              (momentum_buffer, starts at 0)
            theta = theta - lr * b
        else:
            theta = theta - lr * g / avg

    State per parameter: ``step``, ``square_avg``, and ``momentum_buffer`` / ``grad_avg`` when the group has
    ``momentum > 0`` / ``centered`` at its first step.

    Args:
        params: parameters, or parameter groups (dicts) with per-group options.
        lr: learning rate.
        alpha: decay rate of the running means.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty coefficient.
        momentum: momentum factor.
        centered: divide by the running standard deviation instead of the root-mean-square.
        capturable, foreach, differentiable: PyTorch implementation switches; only their defaults are supported.
        maximize: ascend the objective instead of descending it.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, capturable: bool = False,
                 foreach: bool | None = None, maximize: bool = False, differentiable: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach, maximize=maximize,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def _validate(self, options: dict[str, Any]) -> None:
        super()._validate(options)
        if not 0.0 <= options["lr"]:
            raise ValueError(f"Invalid learning rate: {options['lr']}")
        if not 0.0 <= options["eps"]:
            raise ValueError(f"Invalid epsilon value: {options['eps']}")
        if not 0.0 <= options["momentum"]:
            raise ValueError(f"Invalid momentum value: {options['momentum']}")
        if not 0.0 <= options["weight_decay"]:
            raise ValueError(f"Invalid weight_decay value: {options['weight_decay']}")
        if not 0.0 <= options["alpha"]:
            raise ValueError(f"Invalid alpha value: {options['alpha']}")

    def _update(self, p: Tensor, grad, state: dict[str, Any], group: dict[str, Any]) -> None:
        xp = get_array_module(p.array)
        theta = p.array
        momentum = float(group["momentum"])
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(theta)
            if momentum > 0:
                state["momentum_buffer"] = xp.zeros_like(theta)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(theta)
        lr, alpha = float(group["lr"]), float(group["alpha"])
        eps, weight_decay = float(group["eps"]), float(group["weight_decay"])
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        if weight_decay != 0:
            grad = grad + weight_decay * theta
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state["grad_avg"]
            lerp_(grad_avg, grad, 1 - alpha)
            avg = xp.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = xp.sqrt(square_avg)
        avg += eps
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += grad / avg
            theta -= lr * buf
        else:
            theta -= lr * (grad / avg)
