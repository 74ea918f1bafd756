"""Dropout layers: ``Dropout`` (independent elements) and ``Dropout2d`` (whole channels).

In training mode each element (channel) is zeroed with probability p and the survivors are scaled by
1 / (1 - p), so the expected value is unchanged and eval mode is simply the identity.
"""
from __future__ import annotations

from . import functional as F
from ._checks import check_rank, check_tensor
from .module import Module

__all__ = ["Dropout", "Dropout2d"]


class _DropoutNd(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """y = x * m / (1 - p) with m ~ Bernoulli(1 - p) per element, in training mode; y = x in eval mode.

    Args:
        p: the probability of zeroing an element.
        inplace: write the result into the input when no graph is being recorded.
    """

    def forward(self, input):
        check_tensor(self, input)
        return F.dropout(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """Zero whole channels: y[n, c] = x[n, c] * m[n, c] / (1 - p), m ~ Bernoulli(1 - p), in training mode.

    Neighbouring pixels of a feature map are strongly correlated, so dropping single pixels regularises
    little; dropping the whole map does. Input (N, C, H, W); a 3-D input is read as (N, C, L), as PyTorch
    2.x does (with its warning).

    Args:
        p: the probability of zeroing a channel.
        inplace: write the result into the input when no graph is being recorded.
    """

    def forward(self, input):
        check_rank(self, input, (3, 4), "4-D (N, C, H, W) or 3-D (N, C, L) input")
        return F.dropout2d(input, self.p, self.training, self.inplace)
