"""Shape layers: ``Flatten``, ``Unflatten`` and ``Upsample``."""
from __future__ import annotations

from . import functional as F
from ._checks import check_rank, check_tensor
from .module import Module

__all__ = ["Flatten", "Unflatten", "Upsample"]


class Flatten(Module):
    """Merge dims ``start_dim..end_dim`` into one: (N, C, H, W) -> (N, C*H*W) with the defaults.

    Args:
        start_dim: the first dim to merge (1 keeps the batch dim).
        end_dim: the last dim to merge.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        check_tensor(self, input)
        ndim = max(input.ndim, 1)
        for d in (self.start_dim, self.end_dim):
            if not -ndim <= d < ndim:
                raise IndexError(f"{self!r}: dim {d} is out of range for input of shape {tuple(input.shape)} "
                                 f"(expected in [{-ndim}, {ndim - 1}])")
        if self.start_dim % ndim > self.end_dim % ndim:
            raise ValueError(f"{self!r}: start_dim cannot come after end_dim (input of shape "
                             f"{tuple(input.shape)})")
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size``: (N, 784) -> (N, 1, 28, 28) with
    ``Unflatten(1, (1, 28, 28))``; the inverse of Flatten.

    Args:
        dim: the dim to split.
        unflattened_size: the sizes it becomes (their product must be its size; one may be -1).
    """

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        if not isinstance(unflattened_size, (tuple, list)) or not all(isinstance(n, int) for n in unflattened_size):
            raise TypeError(f"Unflatten: unflattened_size must be a tuple or list of ints, got {unflattened_size!r}")
        self.dim = dim
        self.unflattened_size = tuple(unflattened_size)

    def forward(self, input):
        check_tensor(self, input)
        ndim = input.ndim
        if not -ndim <= self.dim < ndim:  # a 0-d input has no dim to unflatten
            raise IndexError(f"{self!r}: dim {self.dim} is out of range for input of shape {tuple(input.shape)}")
        d = self.dim % ndim
        return input.reshape(*input.shape[:d], *self.unflattened_size, *input.shape[d + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Upsample(Module):
    """Resize (N, C, H, W) (or (N, C, L), (N, C, D, H, W) as ``F.interpolate`` allows) to ``size`` or by
    ``scale_factor``.

    Args:
        size: the output's spatial size (an int or a tuple), or None when ``scale_factor`` is given.
        scale_factor: multiplier of the spatial size (a number or a tuple), or None when ``size`` is given.
        mode: ``"nearest"``, ``"bilinear"``, ... as ``F.interpolate`` supports.
        align_corners: for the linear modes: map the corner pixels of input and output onto each other.
        recompute_scale_factor: compute the sampling positions from the output size rather than from
            ``scale_factor``.
    """

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None,
                 recompute_scale_factor: bool | None = None):
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        if isinstance(scale_factor, tuple):
            self.scale_factor = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):
        check_rank(self, input, (3, 4, 5), "3-D (N, C, L), 4-D (N, C, H, W) or 5-D (N, C, D, H, W) "
                                           "input")
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            info = "scale_factor=" + repr(self.scale_factor)
        else:
            info = "size=" + repr(self.size)
        return info + ", mode=" + repr(self.mode)
