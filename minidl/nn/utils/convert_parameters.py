"""Flatten parameters into one vector and back, PyTorch's ``parameters_to_vector`` / ``vector_to_parameters``
(used by second-order and evolutionary methods that see a model as one point in R^n)."""
from __future__ import annotations

from typing import Iterable

from ...backend import device_of
from ...ops.shape import cat
from ...tensor import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def _check_same_device(params: list, op: str) -> None:
    devices = {device_of(p.array) for p in params}
    if len(devices) > 1:
        raise TypeError(f"{op}: found parameters on different devices {sorted(devices)}; they must be on one")


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """Every parameter flattened and joined end to end, in order: a 1-D Tensor (differentiable).

    >>> import minidl.nn as nn
    >>> parameters_to_vector(nn.Linear(3, 2).parameters()).shape
    (8,)

    Args:
        parameters: an iterable of Tensors, e.g. ``model.parameters()``.
    Returns:
        A Tensor of ``sum(p.numel() for p in parameters)`` elements.
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    if not params:
        raise ValueError("parameters_to_vector: expected at least one parameter")
    _check_same_device(params, "parameters_to_vector")
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Make each parameter hold its slice of ``vec`` (the inverse of :func:`parameters_to_vector`).

    As in PyTorch, each parameter's array becomes a view into ``vec``'s, outside autograd (``p.data = ...``).

    Args:
        vec: a 1-D Tensor with one element per parameter element.
        parameters: an iterable of Tensors, in the order :func:`parameters_to_vector` used.
    Raises:
        TypeError: ``vec`` is not a Tensor.
        ValueError: ``vec`` is not 1-D or its length is not the parameters' total size.
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected vec to be a minidl Tensor, but got {type(vec).__name__}")
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    total = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.shape[0] != total:
        raise ValueError(f"vector_to_parameters: expected a 1-D vec of {total} elements (the parameters' total "
                         f"size), got shape {tuple(vec.shape)}")
    _check_same_device(params + [vec], "vector_to_parameters")
    start = 0
    for p in params:
        n = p.numel()
        p.array = vec.array[start:start + n].reshape(p.shape)
        p._bump_version()
        start += n
