"""Batch normalisation: ``batch_norm`` and its single Function, ``BatchNorm``.

Statistics are taken per channel (axis 1) over every other axis, so one op serves (N, C), (N, C, L),
(N, C, H, W) and (N, C, D, H, W) inputs (BatchNorm1d/2d/3d).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..kernels import fast_twin
from .checks import check_float, check_kernel_float, check_same_dtype


class BatchNorm(Function):
    """y = W * xhat + b with xhat the input normalised per channel.

    Notation: x (N, C, *); for each channel c the statistics run over the M = N * prod(*) values of
    x[:, c]; W, b (C,) (1 and 0 when not given); sums below are over those M positions.

    Training (batch statistics; running statistics, if given, are updated in place):
        mu = mean(x),  var = mean((x - mu)^2)  (biased),  s = 1 / sqrt(var + eps)
        xhat = (x - mu) s,  y = W xhat + b
        running_mean <- (1 - momentum) running_mean + momentum mu
        running_var  <- (1 - momentum) running_var  + momentum var M / (M - 1)   (unbiased)
        gb = sum gy,  gW = sum gy xhat
        gx = W s (gy - gb / M - xhat gW / M)
      (mu and var depend on every x, which gives the two mean terms: the gradient is the part of W s gy
      that is neither a shift of the whole channel nor a multiple of xhat.)

    Eval (running statistics: a fixed per-channel affine map):
        s = 1 / sqrt(running_var + eps),  xhat = (x - running_mean) s,  y = W xhat + b
        gx = W s gy,  gW = sum gy xhat,  gb = sum gy

    The methods write these formulas as array expressions, which run on the reference path
    (``use_kernels``); in training mode ``kernels.cpu.batch_norm_forward`` / ``batch_norm_backward`` are their
    fast twins, which compute the same per channel in a few passes, without the temporaries, in threads.
    """

    def forward(ctx, x, W=None, b=None, running_mean=None, running_var=None, use_batch_stats=True,
                momentum=0.1, eps=1e-5):
        xp = get_array_module(x)
        C = x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))  # the reduced axes: every axis but the channels'
        shape = (1, C) + (1,) * (x.ndim - 2)  # a (C,) vector broadcast along axis 1
        M = x.size // C
        W1 = xp.ones(C, x.dtype) if W is None else W
        b0 = xp.zeros(C, x.dtype) if b is None else b
        if use_batch_stats:
            twin = fast_twin(xp, "batch_norm_forward")
            if not M:  # an empty batch has no statistics: empty output, running ones untouched (PyTorch)
                mu, var, xhat = xp.zeros(C, x.dtype), xp.ones(C, x.dtype), x
                y = xp.empty_like(x)
            elif twin is None:
                mu = x.mean(axis=axes)
                var = ((x - mu.reshape(shape)) ** 2).mean(axis=axes)
                xhat = (x - mu.reshape(shape)) / xp.sqrt(var + eps).reshape(shape)
                y = W1.reshape(shape) * xhat + b0.reshape(shape)
            else:  # the fast twin of the four lines above: per channel in threads, float64 sums
                x3 = xp.ascontiguousarray(x).reshape(x.shape[0], C, M // x.shape[0])
                mu, var, xhat, y = xp.empty(C, x.dtype), xp.empty(C, x.dtype), xp.empty_like(x3), xp.empty_like(x3)
                twin(x3, W1, b0, eps, mu, var, xhat, y)
                xhat, y = xhat.reshape(x.shape), y.reshape(x.shape)
            s = 1 / xp.sqrt(var + eps)
            if running_mean is not None and M:
                running_mean *= 1 - momentum
                running_mean += momentum * mu
                running_var *= 1 - momentum
                running_var += (momentum * M / (M - 1)) * var
            ctx.save_for_backward(xhat, s, W)
        else:
            s = 1 / xp.sqrt(running_var + eps)
            scale = W1 * s
            y = x * scale.reshape(shape)
            y += (b0 - running_mean * scale).reshape(shape)
            ctx.save_for_backward(x, s, W, running_mean)
        ctx.use_batch_stats, ctx.axes, ctx.shape, ctx.M = use_batch_stats, axes, shape, max(M, 1)
        return y

    def backward(ctx, gy):
        need_x, need_W, need_b = ctx.needs_input_grad
        axes, shape, M = ctx.axes, ctx.shape, ctx.M
        xp = get_array_module(gy)
        gx = gW = gb = None
        if ctx.use_batch_stats:
            xhat, s, W = ctx.saved
            scale = s if W is None else W * s
            twin = fast_twin(xp, "batch_norm_backward")
            if twin is None or not gy.size:
                gb = gy.sum(axis=axes)
                gW = (gy * xhat).sum(axis=axes)
                if need_x:
                    gx = scale.reshape(shape) * (gy - (gb / M).reshape(shape) - xhat * (gW / M).reshape(shape))
            else:  # the fast twin of the three lines above: two passes per channel, threads over channels
                N, C = xhat.shape[:2]
                g3 = xp.ascontiguousarray(gy).reshape(N, C, -1)
                gb, gW = xp.empty(C, dtype=gy.dtype), xp.empty(C, dtype=gy.dtype)
                gx = xp.empty(g3.shape if need_x else (0, 0, 0), dtype=gy.dtype)
                twin(g3, xhat.reshape(g3.shape), scale, gx, gW, gb)
                gx = gx.reshape(gy.shape) if need_x else None
        else:
            x, s, W, running_mean = ctx.saved
            if need_x:
                gx = gy * (s if W is None else W * s).reshape(shape)
            if need_b or need_W:
                gb = gy.sum(axis=axes)
            if need_W:
                gW = ((gy * x).sum(axis=axes) - running_mean * gb) * s
        return gx, gW if need_W else None, gb if need_b else None


class SyncBatchNorm(Function):
    """Batch normalisation in training mode with the statistics of the whole batch across processes.

    Each of R processes holds a slice x_r (N_r, C, *) of one global batch; ``all_sum(a)`` returns the sum of
    an array over the processes (an MPI Allreduce). With M = all_sum(M_r) the values per channel in all:
        mu = all_sum(sum x_r) / M,   var = all_sum(sum (x_r - mu)^2) / M,   s = 1 / sqrt(var + eps)
        xhat = (x_r - mu) s,   y = W xhat + b                                  (BatchNorm's, globally)
        gb_r = sum gy_r,   gW_r = sum gy_r xhat                               (this process's share)
        gx = W s (gy_r - all_sum(gb_r) / M - xhat all_sum(gW_r) / M)
    The parameter gradients are returned as this process's share: averaging them over the processes (as
    DistributedDataParallel does with every gradient) gives the single-process gradient of the mean loss.
    The running statistics are updated with the global mean and unbiased variance on every process.
    """

    def forward(ctx, x, W, b, running_mean, running_var, momentum, eps, all_sum):
        xp = get_array_module(x)
        C = x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, C) + (1,) * (x.ndim - 2)
        M = float(all_sum(xp.array([x.size // C], dtype=np.float64))[0])
        mu = (all_sum(x.sum(axis=axes, dtype=np.float64)) / M).astype(x.dtype)
        var = (all_sum(((x - mu.reshape(shape)) ** 2).sum(axis=axes, dtype=np.float64)) / M).astype(x.dtype)
        s = 1 / xp.sqrt(var + eps)
        xhat = (x - mu.reshape(shape)) * s.reshape(shape)
        y = W.reshape(shape) * xhat + b.reshape(shape)
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mu
            running_var *= 1 - momentum
            running_var += (momentum * M / (M - 1)) * var
        ctx.save_for_backward(xhat, s, W)
        ctx.axes, ctx.shape, ctx.M, ctx.all_sum = axes, shape, M, all_sum
        return y

    def backward(ctx, gy):
        xhat, s, W = ctx.saved
        axes, shape, M = ctx.axes, ctx.shape, ctx.M
        gb_r, gW_r = gy.sum(axis=axes), (gy * xhat).sum(axis=axes)
        gb, gW = ctx.all_sum(get_array_module(gy).stack([gb_r, gW_r]).astype(np.float64)).astype(gy.dtype)
        gx = (W * s).reshape(shape) * (gy - (gb / M).reshape(shape) - xhat * (gW / M).reshape(shape))
        return gx, gW_r, gb_r


def sync_batch_norm(input, running_mean, running_var, weight, bias, momentum: float, eps: float, all_sum):
    """Training-mode batch normalisation over a batch split among processes (see :class:`SyncBatchNorm`);
    ``nn.SyncBatchNorm`` calls it with ``all_sum`` from ``minidl.distributed``."""
    C = _check_arguments("sync_batch_norm", input, running_mean, running_var, weight, bias)
    xp = get_array_module(input.array)
    W = weight if weight is not None else xp.ones(C, input.dtype)
    b = bias if bias is not None else xp.zeros(C, input.dtype)
    return SyncBatchNorm.apply(input, W, b, None if running_mean is None else running_mean.array,
                               None if running_var is None else running_var.array, momentum, eps, all_sum)


def _check_per_channel(op: str, name: str, t, C: int, input) -> None:
    if t is not None and tuple(t.shape) != (C,):
        raise ValueError(f"{op}: expected {name} of shape ({C},), one value per channel of input of "
                         f"shape {tuple(input.shape)}, got {name} of shape {tuple(t.shape)} "
                         f"({name} should contain {C} elements not {t.array.size})")


def _check_arguments(op: str, input, running_mean, running_var, weight, bias) -> int:
    """The checks batch_norm and sync_batch_norm share; returns C, the number of channels."""
    if input.ndim < 2:
        raise ValueError(f"{op}: expected input of 2 or more dims (N, C, *), got input of shape "
                         f"{tuple(input.shape)}")
    check_float(op, "input", input)
    check_same_dtype(op, input=input, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    C = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        _check_per_channel(op, name, t, C, input)
    return C


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5):
    """Batch normalisation, PyTorch's ``F.batch_norm``.

    Each channel (axis 1) is normalised to zero mean and unit variance, then scaled by ``weight`` and
    shifted by ``bias``: ``y = (x - mean) / sqrt(var + eps) * weight + bias``.

    Args:
        input: (N, C, *) tensor, e.g. (N, C), (N, C, L) or (N, C, H, W).
        running_mean: (C,) tensor or None. In training mode it is updated in place,
            ``running_mean = (1 - momentum) * running_mean + momentum * batch_mean``; in eval mode it is the
            mean used.
        running_var: (C,) tensor or None, like ``running_mean`` but updated with the unbiased batch
            variance (divided by M - 1, M the number of values per channel).
        weight: (C,) scale, or None for 1.
        bias: (C,) shift, or None for 0.
        training: normalise with the statistics of this batch (biased variance) and update the running
            statistics; otherwise normalise with the running statistics.
        momentum: the weight of the new batch in the running averages.
        eps: added to the variance before the square root.

    Returns:
        A tensor shaped like ``input``.

    Raises:
        ValueError: training with one value per channel, a per-channel argument whose shape is not (C,),
            a non-positive ``eps`` in training, only one of the running statistics given.
        RuntimeError: eval mode without running statistics (as PyTorch; ``nn.BatchNorm`` with
            ``track_running_stats=False`` passes ``training=True``).
        TypeError: arguments of different dtypes.
    """
    C = _check_arguments("batch_norm", input, running_mean, running_var, weight, bias)
    if training:
        check_kernel_float("batch_norm", "input", input)  # batch statistics come from a compiled kernel
        if input.array.size // max(C, 1) == 1:
            raise ValueError(f"batch_norm: Expected more than 1 value per channel when training, got input size "
                             f"{tuple(input.shape)}")
        if eps <= 0:
            raise ValueError(f"batch_norm: eps must be positive during training, but got {eps}")
        if (running_mean is None) != (running_var is None):
            raise ValueError("batch_norm: running_mean and running_var must either both be None or neither be "
                             "None")
    else:
        if eps < 0:
            raise ValueError(f"batch_norm: eps must be non-negative, but got {eps}")
        for name, t in (("running_mean", running_mean), ("running_var", running_var)):
            if t is None:
                raise RuntimeError(f"batch_norm: {name} must be defined in evaluation mode (pass training=True "
                                   f"to normalise with the batch statistics)")
    if not isinstance(momentum, (int, float)):
        raise TypeError(f"batch_norm: momentum must be a float, got {momentum!r}")
    return BatchNorm.apply(input, weight, bias,
                           running_mean=None if running_mean is None else running_mean.array,
                           running_var=None if running_var is None else running_var.array,
                           use_batch_stats=bool(training), momentum=momentum, eps=eps)
