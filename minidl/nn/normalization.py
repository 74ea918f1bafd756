"""Normalisation layers: ``BatchNorm1d``, ``BatchNorm2d`` and ``LayerNorm``.

    y = (x - mean) / sqrt(var + eps) * weight + bias        per channel c

In training mode, mean and var are the batch's (over N, and H, W or L), and the running estimates are
updated as ``running = (1 - momentum) * running + momentum * batch`` (running_var with the unbiased batch
variance). With ``momentum=None`` the factor is ``1 / num_batches_tracked``, so the running estimates are
the plain average of every batch seen. In eval mode the running estimates are used instead.
"""
from __future__ import annotations

import numpy as np

from ..backend import normalize_device, to_device
from ..tensor import Tensor
from . import functional as F
from . import init
from ._checks import check_like, check_rank, check_size, check_tensor, count, size_arg
from .module import Module
from .parameter import _empty_parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "SyncBatchNorm"]


class _BatchNorm(Module):
    """What BatchNorm1d and BatchNorm2d share; subclasses define ``_check_input``."""


    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True):
        super().__init__()
        num_features = size_arg(type(self).__name__, "num_features", num_features)
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = _empty_parameter((num_features,), device, dtype)
            if bias:
                self.bias = _empty_parameter((num_features,), device, dtype)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            float_dtype = np.float32 if dtype is None else np.dtype(dtype)
            dev = "cpu" if device is None else normalize_device(device)
            self.register_buffer("running_mean", Tensor(to_device(np.zeros(num_features, float_dtype), dev)))
            self.register_buffer("running_var", Tensor(to_device(np.ones(num_features, float_dtype), dev)))
            self.register_buffer("num_batches_tracked", Tensor(to_device(np.array(0, dtype=np.int64), dev)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """running_mean = 0, running_var = 1, num_batches_tracked = 0."""
        if self.track_running_stats:
            self.running_mean.array[...] = 0
            self.running_var.array[...] = 1
            self.num_batches_tracked.array[...] = 0

    def reset_parameters(self) -> None:
        """Reset the running statistics, and weight = 1, bias = 0 (PyTorch's defaults)."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input(self, input) -> None:  # pragma: no cover - always overridden
        raise NotImplementedError

    def forward(self, input):
        self._check_input(input)
        check_like(self, input, self.weight if self.affine else self.running_mean)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.array += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.array)
        # Batch statistics in training mode, and also in eval mode when no running statistics are kept.
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if keep else None, self.running_var if keep else None,
                            self.weight, self.bias, use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")

    def _optional_state_keys(self) -> set:
        # Like PyTorch, a checkpoint without num_batches_tracked (saved before it existed) still loads.
        return {"num_batches_tracked"}


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) input, per feature/channel C.

    Args:
        num_features: C.
        eps: added to the variance for stability.
        momentum: the running estimates' update factor; None for a cumulative average.
        affine: learn the per-channel weight and bias.
        track_running_stats: keep running estimates for eval mode (else eval mode uses batch statistics).
        device: where to create the parameters and buffers.
        dtype: their dtype (float32 by default).
        bias: with ``affine``, learn the bias too (else only the weight).
    """

    def _check_input(self, input) -> None:
        check_rank(self, input, (2, 3), "2-D (N, C) or 3-D (N, C, L) input")
        noun = "feature" if input.ndim == 2 else "channel"
        check_size(self, input, 1, self.num_features, count(self.num_features, noun))


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) input, per channel C (statistics over N, H and W).

    Args:
        num_features: C.
        eps: added to the variance for stability.
        momentum: the running estimates' update factor; None for a cumulative average.
        affine: learn the per-channel weight and bias.
        track_running_stats: keep running estimates for eval mode (else eval mode uses batch statistics).
        device: where to create the parameters and buffers.
        dtype: their dtype (float32 by default).
        bias: with ``affine``, learn the bias too (else only the weight).
    """

    def _check_input(self, input) -> None:
        check_rank(self, input, (4,), "4-D input (N, C, H, W)")
        check_size(self, input, 1, self.num_features, count(self.num_features, "channel"))


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation with the statistics of the whole batch across the ranks of
    ``minidl.distributed`` (PyTorch's ``SyncBatchNorm``), for any (N, C, *) input.

    In training each rank normalises its slice of the batch with the mean and variance of the global batch
    (two Allreduces forward, one backward: ops/norm.py, ``SyncBatchNorm``), so the net trains as one process
    on the global batch would. Without an initialized process group, or in eval mode, it is a plain batch
    norm. Arguments as :class:`BatchNorm2d`; ``process_group`` is accepted for PyTorch's signature (minidl
    has one group, the world). ``SyncBatchNorm.convert_sync_batchnorm(model)`` swaps every batch norm of a
    model for one of these, keeping its parameters and statistics.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None, device=None, dtype=None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def _check_input(self, input) -> None:
        check_rank(self, input, (2, 3, 4, 5), "input of 2 to 5 dims (N, C, *)")
        check_size(self, input, 1, self.num_features, count(self.num_features, "channel"))

    def forward(self, input):
        from .. import distributed
        from ..ops.norm import sync_batch_norm
        if not (self.training and distributed.is_initialized() and distributed.get_world_size() > 1):
            return super().forward(input)
        self._check_input(input)
        check_like(self, input, self.weight if self.affine else self.running_mean)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.array += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.array)
        return sync_batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias, factor,
                               self.eps, distributed.all_sum)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group=None) -> Module:
        """``module`` with every BatchNorm1d/2d inside it replaced by a SyncBatchNorm with the same
        parameters, buffers and mode (the module itself, if it is one)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            sync = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
            for name in ("weight", "bias"):
                setattr(sync, name, getattr(module, name))
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                sync.register_buffer(name, getattr(module, name))
            sync.train(module.training)
            return sync
        for name, child in list(module.named_children()):
            converted = cls.convert_sync_batchnorm(child, process_group)
            if converted is not child:
                setattr(module, name, converted)
        return module


class LayerNorm(Module):
    """Layer normalisation over the last dims of each sample (the normalisation of transformers):

        y = (x - mean) / sqrt(var + eps) * weight + bias

    with the mean and (biased) variance over the last ``len(normalized_shape)`` dims; weight and bias have
    ``normalized_shape``. No running statistics: training and evaluation compute the same thing.

    >>> import minidl as mdl, minidl.nn as nn
    >>> nn.LayerNorm(8)(mdl.randn(4, 5, 8)).shape
    (4, 5, 8)

    Args:
        normalized_shape: an int or a tuple: the trailing shape of the input to normalise over.
        eps: added to the variance for stability.
        elementwise_affine: learn weight (init 1) and bias (init 0).
        bias: with ``elementwise_affine``, learn the bias too.
        device: where to create the parameters.
        dtype: their dtype (float32 by default).
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape = tuple(size_arg("LayerNorm", "normalized_shape", n) for n in shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = _empty_parameter(self.normalized_shape, device, dtype)
            if bias:
                self.bias = _empty_parameter(self.normalized_shape, device, dtype)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """weight = 1, bias = 0."""
        if self.elementwise_affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):
        check_tensor(self, input)
        check_like(self, input, self.weight)
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")
