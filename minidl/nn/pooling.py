"""Pooling layers: ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d``.

Input (N, C, H, W) or unbatched (C, H, W); each channel is pooled on its own, so C is unchanged.
``OH = floor((H + 2 PH - DH (KH - 1) - 1) / SH) + 1`` (``ceil`` with ``ceil_mode=True``).
"""
from __future__ import annotations

from . import functional as F
from ._checks import check_rank, pair_arg
from .module import Module

__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d"]

_LAYOUT = "3-D (C, H, W) or 4-D (N, C, H, W) input"


def _check_window(layer: str, kernel_size, stride, padding, dilation=1) -> None:
    """A pooling layer's window arguments, checked once at construction (F.max_pool2d's rules)."""
    kernel = pair_arg(layer, "kernel_size", kernel_size, 1)
    pair_arg(layer, "stride", stride, 1)
    pair_arg(layer, "dilation", dilation, 1)
    pad = pair_arg(layer, "padding", padding, 0)
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ValueError(f"{layer}: padding should be at most half of the kernel size, got padding={padding}, "
                         f"kernel_size={kernel_size}")


class MaxPool2d(Module):
    """y[n, c, i, j] = max over the KH x KW window at (i*SH - PH, j*SW - PW), taps DH/DW apart; padding
    counts as -inf. The gradient goes to the (first) largest element of each window.

    Args:
        kernel_size: the window, an int or (KH, KW).
        stride: the window's step (default: ``kernel_size``).
        padding: implicit -inf padding on each side, at most half the kernel.
        dilation: spacing between the window's taps.
        return_indices: also return the flat index (within H*W) of each maximum.
        ceil_mode: round the output size up, so a partial window at the end is pooled too.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        if stride is None or (not isinstance(stride, int) and len(stride) == 0):  # PyTorch also accepts []
            stride = kernel_size
        _check_window("MaxPool2d", kernel_size, stride, padding, dilation)
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input):
        check_rank(self, input, (3, 4), _LAYOUT)
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """y[n, c, i, j] = mean of the KH x KW window at (i*SH - PH, j*SW - PW).

    Args:
        kernel_size: the window, an int or (KH, KW).
        stride: the window's step (default: ``kernel_size``).
        padding: implicit zero padding on each side, at most half the kernel.
        ceil_mode: round the output size up.
        count_include_pad: divide by the full window size, padding included (else only by the real pixels).
        divisor_override: divide by this number instead.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None):
        super().__init__()
        if stride is None or (not isinstance(stride, int) and len(stride) == 0):
            stride = kernel_size
        _check_window("AvgPool2d", kernel_size, stride, padding)
        if divisor_override is not None and (not isinstance(divisor_override, int) or divisor_override == 0):
            raise ValueError(f"AvgPool2d: divisor_override must be a non-zero int or None, got {divisor_override!r}")
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):
        check_rank(self, input, (3, 4), _LAYOUT)
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (OH, OW) whatever the input size: output cell (i, j) averages
    rows ``floor(i*H/OH) .. ceil((i+1)*H/OH) - 1`` and the matching columns.

    Args:
        output_size: an int, (OH, OW), or a pair with None for "keep the input's size".
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        check_rank(self, input, (3, 4), _LAYOUT)
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
