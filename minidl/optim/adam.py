"""Adam and AdamW: steps scaled by running estimates of the gradient's first and second moments."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_array_module
from ..kernels import fast_twin
from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT, lerp_

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), PyTorch's update rule.

    For each parameter :math:`\theta` with gradient :math:`g`, at step :math:`t = 1, 2, \dots`::

        g = -g                                       if maximize
        theta = theta * (1 - lr * weight_decay)      if decoupled_weight_decay   (AdamW: decay the weights)
        g = g + weight_decay * theta                 otherwise, if weight_decay  (Adam: L2 penalty in g)
        m = beta1 * m + (1 - beta1) * g              running mean of g            (exp_avg)
        v = beta2 * v + (1 - beta2) * g * g          running mean of g**2         (exp_avg_sq)
        v_max = max(v_max, v)                        if amsgrad                   (max_exp_avg_sq)
        m_hat = m / (1 - beta1**t)                   undo the bias of starting m, v at 0
        v_hat = v / (1 - beta2**t)                   (v_max instead of v with amsgrad)
        theta = theta - lr * m_hat / (sqrt(v_hat) + eps)

    Each coordinate moves by about ``lr`` in the direction of its averaged gradient, whatever the gradient's
    scale. Like PyTorch, the last line is computed as ``theta - lr / (1 - beta1**t) * m / (sqrt(v) /
    sqrt(1 - beta2**t) + eps)``: ``eps`` is added to ``sqrt(v_hat)``, not to ``sqrt(v)``. State per parameter:
    ``step``, ``exp_avg``, ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``.

    ``_update`` writes these lines as array expressions; on the CPU's fast kernels its twin
    ``kernels.cpu.adam_update`` computes the same bits in one pass over each parameter (docs/PERFORMANCE.md,
    "Adam in one pass").

    Args:
        params: parameters, or parameter groups (dicts) with per-group options.
        lr: learning rate.
        betas: decay rates ``(beta1, beta2)`` of the running means of ``g`` and ``g**2``.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty (or, with ``decoupled_weight_decay``, the weight-decay rate).
        amsgrad: normalise by the largest ``v`` seen so far (AMSGrad, Reddi et al., 2018).
        maximize: ascend the objective instead of descending it.
        decoupled_weight_decay: decay the weights directly instead of adding an L2 term to ``g`` (this is
            AdamW).
        foreach, capturable, differentiable, fused: PyTorch implementation switches; only their defaults are
            supported.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None,
                 decoupled_weight_decay: bool = False) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable, differentiable=differentiable,
                        fused=fused, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _validate(self, options: dict[str, Any]) -> None:
        super()._validate(options)
        beta1, beta2 = options["betas"]
        if not 0.0 <= options["lr"]:
            raise ValueError(f"Invalid learning rate: {options['lr']}")
        if not 0.0 <= options["eps"]:
            raise ValueError(f"Invalid epsilon value: {options['eps']}")
        if not 0.0 <= beta1 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {beta1}")
        if not 0.0 <= beta2 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {beta2}")
        if not 0.0 <= options["weight_decay"]:
            raise ValueError(f"Invalid weight_decay value: {options['weight_decay']}")

    def _update(self, p: Tensor, grad, state: dict[str, Any], group: dict[str, Any]) -> None:
        xp = get_array_module(p.array)
        theta = p.array
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(theta)
            state["exp_avg_sq"] = xp.zeros_like(theta)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(theta)
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        state["step"] += 1
        t = state["step"]
        step_size = lr / (1 - beta1 ** t)
        bias_correction2_sqrt = (1 - beta2 ** t) ** 0.5
        twin = _fast_twin(theta, grad, state)
        if twin is not None:
            decoupled, weight1 = group["decoupled_weight_decay"], 1 - beta1
            # Flat views (free: every array is C-contiguous), so that one compilation of the kernel serves
            # parameters of every rank.
            flat = [a.reshape(-1) for a in (theta, grad, state["exp_avg"], state["exp_avg_sq"],
                                            state.get("max_exp_avg_sq", state["exp_avg_sq"]))]
            twin(*flat, group["maximize"], 0.0 if decoupled else weight_decay,
                 1 - lr * weight_decay if decoupled else 1.0, abs(weight1) < 0.5, weight1, 1 - weight1, beta2,
                 1 - beta2, step_size, bias_correction2_sqrt, eps, group["amsgrad"])
            return
        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                theta *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * theta
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        if group["amsgrad"]:
            xp.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            exp_avg_sq = state["max_exp_avg_sq"]
        denom = xp.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
        theta -= step_size * (exp_avg / denom)


def _fast_twin(theta, grad, state: dict[str, Any]):
    """``kernels.cpu.adam_update``, the update above in one pass, where it applies: the fast CPU kernels in
    use, float32 or float64, every array C-contiguous. None otherwise (the reference kernels, the GPU, other
    layouts), and the array expressions run."""
    if get_array_module(theta) is not np or theta.dtype not in (np.float32, np.float64):
        return None
    arrays = (theta, grad) + tuple(v for v in state.values() if isinstance(v, np.ndarray))
    if not all(a.flags.c_contiguous and a.dtype == theta.dtype for a in arrays):
        return None
    return fast_twin(np, "adam_update")


class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay, PyTorch's update rule.

    The same as :class:`Adam` except for how weights decay. Adam's ``weight_decay`` adds ``weight_decay *
    theta`` to the gradient, so the decay is then divided by ``sqrt(v_hat)`` like the rest of the gradient and
    large-gradient weights barely decay. AdamW shrinks the weights directly, before the Adam step::

        theta = theta * (1 - lr * weight_decay)
        theta = theta - lr * m_hat / (sqrt(v_hat) + eps)          (m_hat, v_hat as in Adam, from g alone)

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``.

    Args:
        params: parameters, or parameter groups (dicts) with per-group options.
        lr: learning rate.
        betas: decay rates ``(beta1, beta2)`` of the running means of ``g`` and ``g**2``.
        eps: added to the denominator for numerical stability.
        weight_decay: weight-decay rate (default 1e-2, unlike Adam's 0).
        amsgrad: normalise by the largest ``v`` seen so far.
        maximize: ascend the objective instead of descending it.
        foreach, capturable, differentiable, fused: PyTorch implementation switches; only their defaults are
            supported.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for group in self.param_groups:  # AdamW is always decoupled, whatever the checkpoint says
            group["decoupled_weight_decay"] = True
