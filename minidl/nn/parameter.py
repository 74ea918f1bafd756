"""``Parameter``: a Tensor that a Module registers as one of its learnable weights."""
from __future__ import annotations

import numpy as np

from ..backend import normalize_device, to_device
from ..tensor import Tensor, _is_array


class Parameter(Tensor):
    """A Tensor that, assigned as an attribute of a :class:`~minidl.nn.Module`, joins its ``parameters()``.

    It is an ordinary leaf Tensor in every other way: ops on it build the graph, and ``backward()``
    fills its ``.grad``. Like PyTorch's, ``Parameter(t)`` shares ``t``'s array rather than copying it.

    Args:
        data: a Tensor or a NumPy/CuPy array (shared, not copied); None gives an empty float32 tensor.
        requires_grad: whether the optimizer should train it (True by default, unlike a plain Tensor).

    >>> import numpy as np
    >>> Parameter(np.zeros(2, dtype=np.float32))
    Parameter containing:
    tensor([0., 0.], requires_grad=True)
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.empty(0, dtype=np.float32)
        elif isinstance(data, Tensor):
            data = data.array
        elif not _is_array(data):
            raise TypeError(f"Parameter: expected a Tensor or an array, got {type(data).__name__}")
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def _empty_parameter(shape: tuple, device=None, dtype=None) -> Parameter:
    """An uninitialised Parameter for a layer's ``__init__`` (``device``/``dtype`` are the factory
    arguments every PyTorch layer takes; float32 on the CPU by default)."""
    arr = np.empty(shape, dtype=np.float32 if dtype is None else np.dtype(dtype))
    if arr.dtype.kind != "f":
        raise TypeError(f"layer parameters must be floating point, got dtype={arr.dtype}")
    return Parameter(to_device(arr, "cpu" if device is None else normalize_device(device)))
