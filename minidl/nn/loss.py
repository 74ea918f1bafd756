"""Loss layers: ``CrossEntropyLoss``, ``NLLLoss``, ``MSELoss``, ``BCEWithLogitsLoss``, ``BCELoss``, ``L1Loss``,
``SmoothL1Loss``, ``HuberLoss``, ``KLDivLoss``.

Each stores its options and calls the function of the same name in :mod:`minidl.nn.functional`, where the
math is. ``reduction`` is ``"mean"`` (the default), ``"sum"`` or ``"none"`` (one loss per element).
``size_average`` and ``reduce`` are PyTorch's deprecated spellings of ``reduction``, still accepted.
"""
from __future__ import annotations

import warnings

from . import functional as F
from ._checks import check_tensor
from .module import Module

__all__ = ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "HuberLoss", "KLDivLoss", "L1Loss", "MSELoss",
           "NLLLoss", "SmoothL1Loss"]

_REDUCTIONS = ("none", "mean", "sum")


def _legacy_reduction(size_average: bool | None, reduce: bool | None) -> str:
    """PyTorch's mapping of the old ``size_average``/``reduce`` flags onto ``reduction``."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = ("mean" if size_average else "sum") if reduce else "none"
    warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{reduction}' "
                  f"instead.", stacklevel=4)
    return reduction


class _Loss(Module):
    _reductions = _REDUCTIONS

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        if reduction not in self._reductions:
            raise ValueError(f"{type(self).__name__}: {reduction!r} is not a valid value for reduction "
                             f"(expected one of {self._reductions})")
        self.reduction = reduction

    def _check(self, input, target) -> None:
        check_tensor(self, input)
        check_tensor(self, target, "target")


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """loss_n = -w[y_n] * log softmax(x_n)[y_n] (with label smoothing: mixed with the uniform target).

    Input (N, C) logits with target (N,) class indices, or (N, C, H, W) with (N, H, W) (one class per pixel),
    or class probabilities of the input's shape. ``"mean"`` divides by the summed weights of the targets
    that are not ``ignore_index``.

    Args:
        weight: a (C,) Tensor of per-class weights.
        size_average: deprecated (use reduction).
        ignore_index: a target value that contributes neither loss nor gradient.
        reduce: deprecated (use reduction).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        label_smoothing: in [0, 1]: the target becomes ``(1 - s) * one_hot + s / C``.
    """

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        self._check(input, target)
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """loss_n = -w[y_n] * x_n[y_n], for input that is already log-probabilities (after LogSoftmax).

    Args:
        weight: a (C,) Tensor of per-class weights.
        size_average: deprecated (use reduction).
        ignore_index: a target value that contributes neither loss nor gradient.
        reduce: deprecated (use reduction).
        reduction: ``"mean"`` (divided by the summed weights of the counted targets), ``"sum"`` or ``"none"``.
    """

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        self._check(input, target)
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MSELoss(_Loss):
    """loss = (input - target)^2, elementwise, then reduced.

    Args:
        size_average: deprecated (use reduction).
        reduce: deprecated (use reduction).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def forward(self, input, target):
        self._check(input, target)
        return F.mse_loss(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """loss = -w * [pos_weight * t * log sigmoid(x) + (1 - t) * log(1 - sigmoid(x))], computed stably from
    the logits x.

    Args:
        weight: a Tensor broadcast against the loss, weighting each element.
        size_average: deprecated (use reduction).
        reduce: deprecated (use reduction).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        pos_weight: a Tensor (one per class, broadcast along the last dims) weighting positive targets.
    """

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean", pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        self._check(input, target)
        return F.binary_cross_entropy_with_logits(input, target, self.weight, pos_weight=self.pos_weight,
                                                  reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """loss = -w * [t * log(x) + (1 - t) * log(1 - x)] for probabilities x (after a Sigmoid), each log clamped
    at -100. On logits, BCEWithLogitsLoss is the stabler choice.

    Args:
        weight: a Tensor broadcast against the loss, weighting each element.
        size_average: deprecated (use reduction).
        reduce: deprecated (use reduction).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def forward(self, input, target):
        self._check(input, target)
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class L1Loss(_Loss):
    """loss = |input - target|, elementwise, then reduced (the mean absolute error).

    Args:
        size_average: deprecated (use reduction).
        reduce: deprecated (use reduction).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def forward(self, input, target):
        self._check(input, target)
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """loss = 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target): quadratic near zero,
    linear for outliers.

    Args:
        size_average: deprecated (use reduction).
        reduce: deprecated (use reduction).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        beta: where the loss turns from quadratic to linear (0 gives L1Loss).
    """

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        self._check(input, target)
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """loss = 0.5 d^2 where |d| < delta, else delta * (|d| - 0.5 delta) (d = input - target).

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        delta: where the loss turns from quadratic to linear (> 0).
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        self._check(input, target)
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class KLDivLoss(_Loss):
    """loss = target * (log(target) - input), for log-probabilities ``input`` (the KL divergence from the
    target distribution); use ``reduction="batchmean"`` for the mathematical KL per sample.

    Args:
        size_average: deprecated (use reduction).
        reduce: deprecated (use reduction).
        reduction: ``"mean"`` (PyTorch's default, with its warning), ``"batchmean"``, ``"sum"`` or ``"none"``.
        log_target: the target is given as log-probabilities.
    """

    _reductions = _REDUCTIONS + ("batchmean",)

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        self._check(input, target)
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)
