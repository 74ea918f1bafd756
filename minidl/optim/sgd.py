"""Stochastic gradient descent, with optional (Nesterov) momentum and L2 weight decay."""
from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), PyTorch's update rule.

    For each parameter :math:`\theta` with gradient :math:`g` at step :math:`t`::

        g = -g                              if maximize
        g = g + weight_decay * theta        if weight_decay != 0        (L2 penalty)
        if momentum != 0:
            b = g                                         at t = 1
            b = momentum * b + (1 - dampening) * g        afterwards
            g = g + momentum * b            if nesterov   (look ahead along the buffer)
            g = b                           otherwise
        theta = theta - lr * g

    The first buffer is the gradient itself, undamped. State per parameter: ``momentum_buffer`` (only when
    ``momentum != 0``).

    Args:
        params: parameters, or parameter groups (dicts) with per-group options.
        lr: learning rate.
        momentum: momentum factor.
        dampening: dampening of the gradient added to the momentum buffer.
        weight_decay: L2 penalty coefficient.
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        maximize: ascend the objective instead of descending it.
        foreach, differentiable, fused: PyTorch implementation switches; only their defaults are supported.

    >>> import minidl as mdl
    >>> w = mdl.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = SGD([w], lr=0.1)
    >>> (w * w).sum().backward()          # grad = 2 w
    >>> opt.step(); w.array.tolist()
    [0.800000011920929, -1.600000023841858]
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, differentiable: bool = False, fused: bool | None = None) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach, differentiable=differentiable,
                        fused=fused)
        super().__init__(params, defaults)

    def _validate(self, options: dict[str, Any]) -> None:
        super()._validate(options)
        if options["lr"] < 0.0:
            raise ValueError(f"Invalid learning rate: {options['lr']}")
        if options["momentum"] < 0.0:
            raise ValueError(f"Invalid momentum value: {options['momentum']}")
        if options["weight_decay"] < 0.0:
            raise ValueError(f"Invalid weight_decay value: {options['weight_decay']}")
        if options["nesterov"] and (options["momentum"] <= 0 or options["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _update(self, p: Tensor, grad, state: dict[str, Any], group: dict[str, Any]) -> None:
        theta = p.array
        lr, weight_decay = float(group["lr"]), float(group["weight_decay"])
        momentum, dampening = float(group["momentum"]), float(group["dampening"])
        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            grad = grad + weight_decay * theta
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= momentum
                buf += (1 - dampening) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        theta -= lr * grad
