"""Activation layers: ``ReLU``, ``LeakyReLU``, ``Sigmoid``, ``Tanh``, ``Softmax``, ``LogSoftmax``.

Each wraps the function of the same name in :mod:`minidl.nn.functional`, where its math is.
"""
from __future__ import annotations

import warnings

from . import functional as F
from ._checks import check_tensor
from .module import Module

__all__ = ["LeakyReLU", "LogSoftmax", "ReLU", "Sigmoid", "Softmax", "Tanh"]


class ReLU(Module):
    """y = max(x, 0), elementwise; any shape.

    Args:
        inplace: write the result into the input when no graph is being recorded.
    """

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        check_tensor(self, input)
        return F.relu(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """y = x if x > 0 else negative_slope * x, elementwise; any shape.

    Args:
        negative_slope: the slope for negative inputs.
        inplace: write the result into the input when no graph is being recorded.
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input):
        check_tensor(self, input)
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    """y = 1 / (1 + exp(-x)), elementwise; any shape."""

    def forward(self, input):
        check_tensor(self, input)
        return F.sigmoid(input)


class Tanh(Module):
    """y = tanh(x), elementwise; any shape."""

    def forward(self, input):
        check_tensor(self, input)
        return F.tanh(input)


def _legacy_softmax_dim(name: str, ndim: int) -> int:
    # PyTorch's rule when no dim is given, kept for old code: dim 0 for 0-, 1- and 3-D input, else 1.
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
                  f"as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


class Softmax(Module):
    """y_i = exp(x_i) / sum_j exp(x_j) along ``dim``: each slice is non-negative and sums to one.

    Args:
        dim: the axis to normalise. None picks PyTorch's legacy default (with a warning): 0 for 0-, 1- and
            3-D input, else 1.
    """

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        check_tensor(self, input)
        dim = _legacy_softmax_dim("softmax", input.ndim) if self.dim is None else self.dim
        return F.softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """y = log(softmax(x)) along ``dim``, computed stably (``x - logsumexp(x)``).

    Args:
        dim: the axis to normalise. None picks PyTorch's legacy default (with a warning), as in Softmax.
    """

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        check_tensor(self, input)
        dim = _legacy_softmax_dim("log_softmax", input.ndim) if self.dim is None else self.dim
        return F.log_softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
