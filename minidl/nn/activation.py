"""Activation layers: ``ReLU``, ``LeakyReLU``, ``Sigmoid``, ``Tanh``, ``Softmax``, ``LogSoftmax``, ``ELU``, ``GELU``,
``SiLU``, ``Softplus``, ``Hardtanh``, ``ReLU6``.

Each wraps the function of the same name in :mod:`minidl.nn.functional`, where its math is.
"""
from __future__ import annotations

import warnings

from . import functional as F
from ._checks import check_tensor
from .module import Module

__all__ = ["ELU", "GELU", "Hardtanh", "LeakyReLU", "LogSoftmax", "ReLU", "ReLU6", "SiLU", "Sigmoid", "Softmax",
           "Softplus", "Tanh"]


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


class ELU(Module):
    """y = x if x > 0 else alpha * (exp(x) - 1), elementwise; any shape.

    Args:
        alpha: the output approaches ``-alpha`` for very negative input.
        inplace: write the result into the input when no graph is being recorded.
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input):
        check_tensor(self, input)
        return F.elu(input, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    """y = x * Phi(x), Phi the standard normal CDF, elementwise; any shape.

    Args:
        approximate: ``"none"`` (exact) or ``"tanh"`` (the tanh approximation).
    """

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        check_tensor(self, input)
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    """y = x * sigmoid(x) (swish), elementwise; any shape.

    Args:
        inplace: write the result into the input when no graph is being recorded.
    """

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        check_tensor(self, input)
        return F.silu(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Softplus(Module):
    """y = log(1 + exp(beta * x)) / beta (x itself where beta * x > threshold), elementwise; any shape.

    Args:
        beta: sharpness.
        threshold: above this value of ``beta * x`` the layer is the identity.
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, input):
        check_tensor(self, input)
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(Module):
    """y = min(max(x, min_val), max_val), elementwise; any shape.

    Args:
        min_val: the lower bound.
        max_val: the upper bound.
        inplace: write the result into the input when no graph is being recorded.
        min_value: deprecated PyTorch spelling of ``min_val``.
        max_value: deprecated PyTorch spelling of ``max_val``.
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False,
                 min_value: float | None = None, max_value: float | None = None):
        super().__init__()
        if min_value is not None:
            warnings.warn("keyword argument `min_value` is deprecated and renamed to `min_val`", FutureWarning,
                          stacklevel=2)
            min_val = min_value
        if max_value is not None:
            warnings.warn("keyword argument `max_value` is deprecated and renamed to `max_val`", FutureWarning,
                          stacklevel=2)
            max_val = max_value
        if max_val < min_val:
            raise ValueError(f"{type(self).__name__}: max_val ({max_val}) cannot be less than min_val ({min_val})")
        self.min_val = min_val
        self.max_val = max_val
        self.inplace = inplace

    def forward(self, input):
        check_tensor(self, input)
        return F.hardtanh(input, self.min_val, self.max_val, self.inplace)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class ReLU6(Hardtanh):
    """y = min(max(x, 0), 6), elementwise; any shape (MobileNet's activation).

    Args:
        inplace: write the result into the input when no graph is being recorded.
    """

    def __init__(self, inplace: bool = False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""
