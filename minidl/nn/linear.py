"""``Linear`` (a fully connected layer) and ``Identity``."""
from __future__ import annotations

import math

from . import functional as F
from . import init
from ._checks import check_like, check_tensor, size_arg
from .module import Module
from .parameter import _empty_parameter

__all__ = ["Identity", "Linear"]


class Identity(Module):
    """Returns its input unchanged; takes (and ignores) any arguments, like PyTorch's, so it can stand in
    for a layer being ablated."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x W^T + b.

    Shapes: input (..., in_features) -> output (..., out_features); weight (out_features, in_features),
    bias (out_features,).

    Initialisation, PyTorch's: W ~ U(-1/sqrt(in_features), 1/sqrt(in_features)) (that is what
    ``kaiming_uniform_(W, a=sqrt(5))`` works out to), b ~ U(-1/sqrt(in_features), 1/sqrt(in_features)).

    Args:
        in_features: size of each input's last dimension.
        out_features: size of each output's last dimension.
        bias: learn an additive bias.
        device: where to create the parameters (``"cpu"`` by default).
        dtype: their dtype (float32 by default).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features = size_arg("Linear", "in_features", in_features)
        self.out_features = size_arg("Linear", "out_features", out_features)
        self.weight = _empty_parameter((out_features, in_features), device, dtype)
        if bias:
            self.bias = _empty_parameter((out_features,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw fresh weights the way PyTorch's Linear does."""
        # PyTorch's default: kaiming_uniform with a=sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        check_tensor(self, input)
        if input.ndim == 0 or input.shape[-1] != self.in_features:
            raise ValueError(f"{self!r}: expected input with last dimension {self.in_features}, got input of "
                             f"shape {tuple(input.shape)}")
        check_like(self, input, self.weight)
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
