"""Convolution layers: ``Conv2d`` and ``ConvTranspose2d``.

Notation: input (N, C, H, W), output (N, O, OH, OW), kernel (KH, KW), G groups.

* ``Conv2d``: weight (O, C/G, KH, KW), ``OH = (H + 2 PH - DH (KH - 1) - 1) // SH + 1``.
* ``ConvTranspose2d``: weight (C, O/G, KH, KW), the layout of the Conv2d it is the gradient of,
  ``OH = (H - 1) SH - 2 PH + DH (KH - 1) + output_padding + 1``.

Initialisation is PyTorch's for both: ``kaiming_uniform_(weight, a=sqrt(5))`` and
``bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, with ``fan_in = weight.shape[1] * KH * KW`` (C/G * KH * KW for
Conv2d, O/G * KH * KW for ConvTranspose2d, since PyTorch computes it from the weight's own shape).
"""
from __future__ import annotations

import math

from . import functional as F
from . import init
from ._checks import check_like, check_rank, check_size, count, pair_arg, size_arg
from .module import Module
from .parameter import _empty_parameter

__all__ = ["Conv2d", "ConvTranspose2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_PADDING_STRINGS = ("same", "valid")


class _ConvNd(Module):
    """What Conv2d and ConvTranspose2d share: argument checks, parameters, initialisation and repr."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, transposed,
                 output_padding, groups, bias, padding_mode, device, dtype):
        super().__init__()
        name = type(self).__name__
        in_channels = size_arg(name, "in_channels", in_channels)
        out_channels = size_arg(name, "out_channels", out_channels)
        if not isinstance(groups, int) or groups <= 0:
            raise ValueError(f"{name}: groups must be a positive integer, got {groups!r}")
        if in_channels % groups != 0:
            raise ValueError(f"{name}: in_channels must be divisible by groups (in_channels={in_channels}, "
                             f"groups={groups})")
        if out_channels % groups != 0:
            raise ValueError(f"{name}: out_channels must be divisible by groups (out_channels={out_channels}, "
                             f"groups={groups})")
        kernel_size = pair_arg(name, "kernel_size", kernel_size, 1)
        stride = pair_arg(name, "stride", stride, 1)
        dilation = pair_arg(name, "dilation", dilation, 1)
        output_padding = pair_arg(name, "output_padding", output_padding, 0)
        for d in range(2):
            if output_padding[d] >= max(stride[d], dilation[d]):
                raise ValueError(f"{name}: output_padding must be smaller than either stride or dilation, got "
                                 f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
        if isinstance(padding, str):
            if padding not in _PADDING_STRINGS:
                raise ValueError(f"{name}: invalid padding string {padding!r}, should be one of "
                                 f"{set(_PADDING_STRINGS)}")
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided convolutions "
                                 f"(stride={stride})")
        else:
            padding = pair_arg(name, "padding", padding, 0)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, but got "
                             f"padding_mode={padding_mode!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.transposed = transposed
        self.output_padding = output_padding
        self.groups = groups
        self.padding_mode = padding_mode
        # F.pad's order, last dim first: (left, right, top, bottom). 'same' puts the odd pixel at the end.
        if isinstance(padding, str):
            self._reversed_padding_repeated_twice = [0, 0, 0, 0]
            if padding == "same":
                for i, (d, k) in enumerate(zip(reversed(dilation), reversed(kernel_size))):
                    total = d * (k - 1)
                    self._reversed_padding_repeated_twice[2 * i] = total // 2
                    self._reversed_padding_repeated_twice[2 * i + 1] = total - total // 2
        else:
            self._reversed_padding_repeated_twice = [padding[1], padding[1], padding[0], padding[0]]
        if transposed:
            shape = (in_channels, out_channels // groups) + kernel_size
        else:
            shape = (out_channels, in_channels // groups) + kernel_size
        self.weight = _empty_parameter(shape, device, dtype)
        if bias:
            self.bias = _empty_parameter((out_channels,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw fresh weights the way PyTorch's conv layers do."""
        # PyTorch's default: kaiming_uniform with a=sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def _check_input(self, input) -> None:
        check_rank(self, input, (3, 4), "3-D (C, H, W) or 4-D (N, C, H, W) input")
        check_size(self, input, -3, self.in_channels, count(self.in_channels, "channel"))
        check_like(self, input, self.weight)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation, as in every deep-learning library):

        y[n, o, i, j] = b[o] + sum_{c, p, q} W[o, c, p, q] * x[n, g*C/G + c, i*SH + p*DH - PH, j*SW + q*DW - PW]

    where g is o's group. Input (N, C, H, W) or unbatched (C, H, W).

    Args:
        in_channels: C.
        out_channels: O.
        kernel_size: an int or (KH, KW).
        stride: an int or (SH, SW).
        padding: an int, (PH, PW), ``"valid"`` (no padding) or ``"same"`` (output as large as the input;
            stride 1 only; an odd total puts the extra pixel at the bottom/right).
        dilation: spacing between kernel taps, an int or (DH, DW).
        groups: split channels into G groups convolved separately (C and O divisible by G).
        bias: learn an additive bias per output channel.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``: the values the border
            is padded with (done by ``F.pad`` before an unpadded convolution, as in PyTorch).
        device: where to create the parameters.
        dtype: their dtype (float32 by default).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, False, 0, groups,
                         bias, padding_mode, device, dtype)

    def _conv_forward(self, input, weight, bias):
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(input, weight, bias, self.stride, (0, 0), self.dilation, self.groups)
        return F.conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, input):
        self._check_input(input)
        return self._conv_forward(input, self.weight, self.bias)


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution: the gradient of a Conv2d with respect to its input, used to upsample.

    Every input pixel scatters ``x[n, c, i, j] * W[c, o, :, :]`` onto the output at
    ``(i*SH - PH + p*DH, j*SW - PW + q*DW)``; output_padding adds rows/columns at the bottom/right so the
    output size can be any of the SH (SW) sizes a strided Conv2d maps to the input size.

    Args:
        in_channels: C.
        out_channels: O.
        kernel_size: an int or (KH, KW).
        stride: an int or (SH, SW).
        padding: an int or (PH, PW): ``dilation * (kernel_size - 1) - padding`` zeros are added to the input
            on each side, so the layer inverts a Conv2d with the same padding.
        output_padding: extra size added to one side of the output, smaller than stride or dilation.
        groups: split channels into G groups.
        bias: learn an additive bias per output channel.
        dilation: spacing between kernel taps.
        padding_mode: only ``"zeros"`` (as in PyTorch).
        device: where to create the parameters.
        dtype: their dtype (float32 by default).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None,
                 dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}, got '
                             f"padding_mode={padding_mode!r}")
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__}: padding must be an int or a pair of ints, got {padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, True, output_padding,
                         groups, bias, padding_mode, device, dtype)

    def _output_padding(self, input, output_size) -> tuple:
        """The output_padding that makes the output ``output_size`` (H, W) (or the layer's own when None)."""
        if output_size is None:
            return self.output_padding
        output_size = tuple(output_size)
        non_spatial = 2 if input.ndim == 4 else 1
        if len(output_size) == non_spatial + 2:
            output_size = output_size[non_spatial:]
        if len(output_size) != 2:
            raise ValueError(f"{self!r}: for {input.ndim}D input, output_size must have 2 or {non_spatial + 2} "
                             f"elements (got {len(output_size)})")
        min_sizes = [(input.shape[d - 2] - 1) * self.stride[d] - 2 * self.padding[d]
                     + self.dilation[d] * (self.kernel_size[d] - 1) + 1 for d in range(2)]
        max_sizes = [min_sizes[d] + self.stride[d] - 1 for d in range(2)]
        for d in range(2):
            if not min_sizes[d] <= output_size[d] <= max_sizes[d]:
                raise ValueError(f"{self!r}: requested an output size of {list(output_size)}, but valid sizes range "
                                 f"from {min_sizes} to {max_sizes} (for an input of {tuple(input.shape[-2:])})")
        return tuple(output_size[d] - min_sizes[d] for d in range(2))

    def forward(self, input, output_size=None):
        """Args:
            input: (N, C, H, W) or (C, H, W).
            output_size: the wanted (H, W) (or full shape) of the output, to resolve the ambiguity of a
                strided layer; overrides ``output_padding``.
        """
        self._check_input(input)
        output_padding = self._output_padding(input, output_size)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                  self.groups, self.dilation)
