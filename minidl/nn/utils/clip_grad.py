"""Gradient clipping: rescale or clamp the gradients of parameters in place, between ``backward()`` and
``optimizer.step()``.

Clipping by norm treats all the gradients as one long vector g and shrinks it when it is too long::

    total_norm = ||g||_p = || (||g_1||_p, ||g_2||_p, ...) ||_p      (one norm per parameter, then their norm)
    g_i <- g_i * min(1, max_norm / (total_norm + 1e-6))

so the direction of the step is kept and only its length is capped: a remedy for the rare huge gradients of
recurrent nets and of the first steps of training. Clipping by value clamps each element to
``[-clip_value, clip_value]`` instead, which changes the direction.

These run outside autograd, on the gradient arrays, like an optimizer step.
"""
from __future__ import annotations

import math
from typing import Iterable, Union

import numpy as np

from ...backend import device_of, get_array_module, to_device, to_numpy
from ...tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm"]

_TensorOrTensors = Union[Tensor, Iterable[Tensor]]


def _as_list(tensors: _TensorOrTensors) -> list:
    """A single Tensor or an iterable of them (a generator such as ``model.parameters()``) as a list."""
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _grads(parameters: list) -> list:
    return [p.grad for p in parameters if p.grad is not None]


def _norm_order(norm_type) -> float:
    p = float(norm_type)  # also accepts "inf", as PyTorch does
    if math.isnan(p):
        raise ValueError("clip_grad_norm_: norm_type must be a number or 'inf', got nan")
    return p


def _vector_norm(a, p: float):
    """``||a||_p`` over every element, in a's dtype: max |a| for p = inf, min |a| for -inf, the count of
    non-zeros for p = 0."""
    xp = get_array_module(a)
    flat = a.reshape(-1)
    if flat.size == 0:
        return xp.zeros((), dtype=a.dtype) if p != -math.inf else xp.asarray(np.inf, dtype=a.dtype)
    if p == 2:
        return xp.asarray(xp.linalg.norm(flat), dtype=a.dtype)
    absolute = xp.abs(flat)
    if p == math.inf:
        return absolute.max()
    if p == -math.inf:
        return absolute.min()
    if p == 0:
        return xp.asarray(xp.count_nonzero(flat), dtype=a.dtype)
    if p == 1:
        return absolute.sum()
    return (absolute ** p).sum() ** (1 / p)


def get_total_norm(tensors: _TensorOrTensors, norm_type: float | str = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> Tensor:
    """The p-norm of all ``tensors`` taken together, as if they were concatenated into one vector.

    Args:
        tensors: Tensors (usually gradients), or one Tensor.
        norm_type: p: a positive number, ``float("inf")`` / ``"inf"`` (the largest magnitude), or 0.
        error_if_nonfinite: raise if the norm is NaN or infinite.
        foreach: PyTorch's implementation switch; no effect.

    Returns:
        A 0-d Tensor on the first tensor's device, in the tensors' (common) dtype; 0. for no tensors.

    Raises:
        RuntimeError: the norm is not finite and ``error_if_nonfinite`` is True.
    """
    p = _norm_order(norm_type)
    arrays = [t.array for t in _as_list(tensors)]
    if not arrays:
        return Tensor(np.zeros((), dtype=np.float32))
    dtype = np.result_type(*[a.dtype for a in arrays])
    # One norm per tensor on its own device, then the norm of those norms (as PyTorch computes it).
    norms = np.array([to_numpy(_vector_norm(a, p)) for a in arrays], dtype=dtype)
    total = _vector_norm(norms, p)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {p} for gradients from `parameters` is non-finite, so it "
                           "cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           "norm anyway, set `error_if_nonfinite=False`")
    return Tensor(to_device(np.asarray(total, dtype=dtype), device_of(arrays[0])))


def clip_grads_with_norm_(parameters: _TensorOrTensors, max_norm: float, total_norm,
                          foreach: bool | None = None) -> None:
    """Scale the gradients of ``parameters`` in place by ``min(1, max_norm / (total_norm + 1e-6))``.

    Args:
        parameters: Tensors whose ``.grad`` to scale (those without a gradient are skipped).
        max_norm: the largest norm the gradients may have after scaling.
        total_norm: their norm, from :func:`get_total_norm` (a Tensor or a number).
        foreach: PyTorch's implementation switch; no effect.
    """
    grads = _grads(_as_list(parameters))
    if not grads:
        return
    total = to_numpy(total_norm.array if isinstance(total_norm, Tensor) else np.asarray(total_norm))
    if total.dtype.kind != "f":
        total = total.astype(np.float32)
    # In the norm's dtype, as PyTorch computes it; a NaN norm stays NaN through the clamp (and spreads).
    coef = total.dtype.type(max_norm) / (total + total.dtype.type(1e-6))
    coef = np.fmin(coef, total.dtype.type(1.0)) if not np.isnan(coef) else coef
    for g in grads:
        g.array *= g.dtype.type(coef)  # multiplied even when coef is 1, as PyTorch does
        g._bump_version()


def clip_grad_norm_(parameters: _TensorOrTensors, max_norm: float, norm_type: float | str = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Rescale the gradients of ``parameters`` in place so that their total norm is at most ``max_norm``.

    ``total_norm`` is the ``norm_type``-norm of all gradients as one vector; every gradient is multiplied by
    ``min(1, max_norm / (total_norm + 1e-6))``. Call it after ``loss.backward()``, before
    ``optimizer.step()``.

    >>> import minidl as mdl, minidl.nn as nn
    >>> w = nn.Parameter(mdl.tensor([0.0, 0.0]))
    >>> w.grad = mdl.tensor([3.0, 4.0])
    >>> clip_grad_norm_([w], max_norm=1.0).item()      # the norm before clipping
    5.0
    >>> [round(v, 4) for v in w.grad.tolist()]
    [0.6, 0.8]

    Args:
        parameters: a Tensor or an iterable of Tensors (``model.parameters()``); those without a gradient are
            skipped.
        max_norm: the largest total norm the gradients may have.
        norm_type: p of the p-norm: 2 (the default), any positive number, ``float("inf")`` or ``"inf"``.
        error_if_nonfinite: raise if the total norm is NaN or infinite (instead of scaling by it).
        foreach: PyTorch's implementation switch; no effect.

    Returns:
        The total norm of the gradients *before* clipping, a 0-d Tensor (0. when no parameter has a gradient).

    Raises:
        RuntimeError: the total norm is not finite and ``error_if_nonfinite`` is True.
    """
    parameters = _as_list(parameters)
    total_norm = get_total_norm(_grads(parameters), norm_type, error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total_norm)
    return total_norm


def clip_grad_value_(parameters: _TensorOrTensors, clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient element of ``parameters`` to ``[-clip_value, clip_value]``, in place.

    Args:
        parameters: a Tensor or an iterable of Tensors; those without a gradient are skipped.
        clip_value: the largest magnitude a gradient element may keep.
        foreach: PyTorch's implementation switch; no effect.
    """
    clip_value = float(clip_value)
    for g in _grads(_as_list(parameters)):
        get_array_module(g.array).clip(g.array, -clip_value, clip_value, out=g.array)
        g._bump_version()
