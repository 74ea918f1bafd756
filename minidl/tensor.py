"""Tensor: an array, its gradient, and the node that made it.

A Tensor wraps a backend array (``numpy.ndarray`` on the CPU, ``cupy.ndarray`` on the GPU) in ``.array``.
When it takes part in a computation that needs gradients it also carries ``.grad_fn``, the
:class:`~minidl.autograd.Function` node that produced it, which remembers its inputs. ``backward()`` walks
those nodes back to the leaves and leaves the gradient of each in its ``.grad``.

The methods here only validate arguments and call ops; the math of every op lives in ``minidl/ops``.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from .backend import device_of, get_array_module, normalize_device, to_device, to_numpy

__all__ = ["Tensor", "tensor"]

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int64 = np.dtype("int64")

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


def _is_array(x) -> bool:
    return isinstance(x, np.ndarray) or device_of(x) == "cuda"


def _infer_array(data, dtype=None):
    """``torch.tensor``'s dtype rule: arrays keep theirs, Python floats become float32, ints int64."""
    if isinstance(data, Tensor):
        data = data.array
    if _is_array(data):
        arr = data
    elif isinstance(data, np.generic):
        arr = np.asarray(data)
    else:
        arr = np.asarray(data)
        if dtype is None and arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        elif dtype is None and arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
    if dtype is not None and arr.dtype != np.dtype(dtype):
        arr = arr.astype(dtype)
    return arr


def _dims(dim):
    """Normalise a ``dim``/``axis`` argument (int, sequence or None) to what NumPy takes."""
    if isinstance(dim, list):
        return tuple(dim)
    return dim


class Tensor:
    """An n-dimensional array with automatic differentiation.

    Args:
        data: a NumPy/CuPy array (kept as is) or anything ``numpy.asarray`` accepts (dtype inferred like
            ``torch.tensor``).
        requires_grad: record operations on this tensor so ``backward()`` can fill its ``.grad``.
    """

    __slots__ = ("array", "grad", "grad_fn", "requires_grad", "_output_index", "_version_counter", "__weakref__")
    __array_priority__ = 1000  # so ``ndarray + Tensor`` calls Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False):
        self.array = data if _is_array(data) else _infer_array(data)
        self.grad = None
        self.grad_fn = None
        self._output_index = 0
        self._version_counter = [0]
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _from_op(cls, data, grad_fn, index):
        """A Tensor made by an op that records a graph (skips the checks of ``__init__``)."""
        t = cls.__new__(cls)
        t.array = data
        t.grad = None
        t.grad_fn = grad_fn
        t._output_index = index
        t._version_counter = [0]
        t.requires_grad = grad_fn is not None and data.dtype.kind in "fc"
        return t

    # ----------------------------------------------------------------- attributes
    @property
    def data(self) -> "Tensor":
        """This tensor's values as a new Tensor that shares the array, outside autograd (PyTorch's ``.data``).

        Writes through it change this tensor, and autograd is not told (no version bump): that is what
        makes ``m.bias.data.fill_(0.1)`` an initialisation rather than an op. Use :meth:`detach` for a
        view whose in-place changes *are* checked, and ``.array`` for the raw NumPy/CuPy array.
        Assigning (``p.data = t``) swaps the array this tensor holds.
        """
        return Tensor(self.array)

    @data.setter
    def data(self, value) -> None:
        self.array = value.array if isinstance(value, Tensor) else value

    @property
    def _version(self) -> int:
        """How many in-place changes this tensor's array has had (PyTorch's ``x._version``).

        A Function that keeps an input for its backward remembers the version it saw; if it has moved by the
        time the backward runs, the gradient would use changed values, so :func:`~minidl.autograd.run_backward`
        raises instead. ``detach()`` shares the counter, as it shares the array.
        """
        return self._version_counter[0]

    def _bump_version(self) -> None:
        """Record an in-place change of the array; every in-place method calls this."""
        self._version_counter[0] += 1

    @property
    def shape(self) -> tuple:
        return self.array.shape

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def device(self) -> str:
        return device_of(self.array)

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def T(self) -> "Tensor":
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim: int | None = None):
        """The shape, or its ``dim``-th entry (PyTorch's spelling of ``.shape``)."""
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return int(self.array.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        body = np.array2string(to_numpy(self.array), separator=", ", prefix="tensor(", precision=4)
        extras = []
        if self.dtype not in (float32, int64) or self.array.dtype.kind == "b":
            extras.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # ----------------------------------------------------------------- autograd
    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf), weighted by ``gradient``, into the ``.grad`` of every leaf.

        Args:
            gradient: the upstream gradient, shaped like ``self``; may be omitted for a one-element tensor.
            retain_graph: keep the graph's saved arrays so ``backward`` can run through it again.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no grad_fn "
                               "(was it made inside no_grad(), or from tensors without requires_grad?)")
        if gradient is None:
            if self.array.size != 1:
                raise RuntimeError(f"backward: grad can be implicitly created only for one-element outputs, "
                                   f"got shape {self.shape}; pass gradient=")
            gy = get_array_module(self.array).ones_like(self.array)
        else:
            gy = gradient.array if isinstance(gradient, Tensor) else gradient
            gy = get_array_module(self.array).asarray(gy, dtype=self.dtype)
            if gy.shape != self.shape:
                raise RuntimeError(f"backward: gradient has shape {gy.shape}, expected {self.shape}")
        if self.grad_fn is None:
            self._accumulate_grad(gy)
        else:
            run_backward(self, gy, retain_graph)

    def _accumulate_grad(self, g) -> None:
        if self.grad is None:
            # A private, writable copy: ``g`` may be a read-only broadcast view (from a sum's backward) or
            # the very array another leaf receives (from an add's backward), and ``.grad`` is edited in place
            # (``zero_()``, optimizers).
            self.grad = Tensor(g.copy())
        else:
            self.grad = Tensor(self.grad.array + g)

    def detach(self) -> "Tensor":
        """A tensor sharing this one's array (and its version counter), cut from the graph."""
        t = Tensor(self.array)
        t._version_counter = self._version_counter
        return t

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.array.dtype.kind not in "fc":
            raise RuntimeError(f"only floating-point tensors can require gradients, got dtype {self.dtype}")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def zero_(self) -> "Tensor":
        """Fill this tensor with zeros, in place (used as ``p.grad.zero_()``)."""
        self._check_inplace("zero_")
        self.array[...] = 0
        self._bump_version()
        return self

    def _check_inplace(self, op: str) -> None:
        """Refuse an in-place change that autograd could not follow, as PyTorch does."""
        if self.requires_grad and _is_grad_enabled():
            if self.grad_fn is None:
                raise RuntimeError(f"{op}: a leaf tensor that requires grad is being used in an in-place "
                                   "operation; wrap it in `with minidl.no_grad():` (as optimizers and "
                                   "initialisers do)")
            raise RuntimeError(f"{op}: in-place operations on a tensor that is part of a graph are not "
                               "supported by minidl's autograd; use the out-of-place form")

    def retain_grad(self):  # pragma: no cover - documented absence
        raise NotImplementedError("retain_grad: minidl fills .grad on leaves only")

    # ----------------------------------------------------------------- conversion
    def numpy(self) -> np.ndarray:
        """A NumPy copy of the data, from any device."""
        return np.array(to_numpy(self.array), copy=True)

    def item(self):
        if self.array.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted to a Python scalar, got shape "
                             f"{self.shape}")
        return self.array.item()

    def tolist(self):
        return to_numpy(self.array).tolist()

    def to(self, *args, **kwargs) -> "Tensor":
        """``to(device)``, ``to(dtype)`` or ``to(device, dtype)``; differentiable like PyTorch's."""
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(f"to: unexpected arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, str) or isinstance(getattr(a, "type", None), str):  # "cuda" or a torch-like device
                device = a
            else:
                dtype = a
        out = self
        if device is not None and normalize_device(device) != self.device:
            out = _ops.ToDevice.apply(out, device=normalize_device(device))
        if dtype is not None and np.dtype(dtype) != out.dtype:
            out = _ops.Cast.apply(out, dtype=np.dtype(dtype))
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self) -> "Tensor":
        return self.to("cuda")

    def float(self) -> "Tensor":
        return self.to(float32)

    def double(self) -> "Tensor":
        return self.to(float64)

    def long(self) -> "Tensor":
        return self.to(int64)

    def astype(self, dtype) -> "Tensor":
        return self.to(np.dtype(dtype))

    # ----------------------------------------------------------------- arithmetic
    def __add__(self, other):
        return _ops.Add.apply(self, other)

    def __radd__(self, other):
        return _ops.Add.apply(other, self)

    def __sub__(self, other):
        return _ops.Sub.apply(self, other)

    def __rsub__(self, other):
        return _ops.Sub.apply(other, self)

    def __mul__(self, other):
        return _ops.Mul.apply(self, other)

    def __rmul__(self, other):
        return _ops.Mul.apply(other, self)

    def __truediv__(self, other):
        return _ops.Div.apply(self, other)

    def __rtruediv__(self, other):
        return _ops.Div.apply(other, self)

    def __pow__(self, other):
        return _ops.Pow.apply(self, other)

    def __rpow__(self, other):
        return _ops.Pow.apply(other, self)

    def __neg__(self):
        return _ops.Neg.apply(self)

    def __matmul__(self, other):
        return _matmul.MatMul.apply(self, other)

    def __rmatmul__(self, other):
        return _matmul.MatMul.apply(other, self)

    # Comparisons give boolean tensors and carry no gradient.
    def _compare(self, other, op):
        other = other.array if isinstance(other, Tensor) else other
        return Tensor(op(self.array, other))

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    def __bool__(self) -> bool:
        if self.array.size != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.array)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    # ----------------------------------------------------------------- math
    def exp(self):
        return _ops.Exp.apply(self)

    def log(self):
        return _ops.Log.apply(self)

    def sqrt(self):
        return _ops.Sqrt.apply(self)

    def abs(self):
        return _ops.Abs.apply(self)

    def pow(self, exponent):
        return _ops.Pow.apply(self, exponent)

    def clip(self, min=None, max=None):  # noqa: A002 - PyTorch/NumPy argument names
        return _ops.Clip.apply(self, lo=min, hi=max)

    clamp = clip

    def tanh(self):
        return _activation.tanh(self)

    def sigmoid(self):
        return _activation.sigmoid(self)

    def relu(self):
        return _activation.relu(self)

    def softmax(self, dim):
        return _activation.softmax(self, dim)

    def log_softmax(self, dim):
        return _activation.log_softmax(self, dim)

    # ----------------------------------------------------------------- reductions
    def sum(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool = False):
        """Sum over ``axis`` (NumPy spelling) or ``dim`` (PyTorch spelling); all axes by default."""
        axis = _dims(dim if dim is not None else axis)
        return _reduce.Sum.apply(self, axis=axis, keepdims=keepdims or keepdim)

    def mean(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool = False):
        axis = _dims(dim if dim is not None else axis)
        return _reduce.Mean.apply(self, axis=axis, keepdims=keepdims or keepdim)

    def var(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool = False,
            unbiased: bool | None = None, correction: int | None = None, ddof: int | None = None):
        """Variance. Like PyTorch, the default is the unbiased estimate (``correction=1``); pass
        ``ddof=0``, ``correction=0`` or ``unbiased=False`` for the population variance (NumPy's default)."""
        if sum(a is not None for a in (unbiased, correction, ddof)) > 1:
            raise ValueError("var: give only one of unbiased, correction, ddof")
        corr = 1
        if unbiased is not None:
            corr = int(bool(unbiased))
        elif correction is not None:
            corr = correction
        elif ddof is not None:
            corr = ddof
        axis = _dims(dim if dim is not None else axis)
        return _reduce.Var.apply(self, axis=axis, keepdims=keepdims or keepdim, correction=corr)

    def _extreme(self, op, axis, keepdims, dim, keepdim):
        if dim is not None:  # PyTorch: x.max(dim) -> (values, indices)
            idx = (self.argmax if op is _reduce.Max else self.argmin)(dim=dim, keepdim=True)
            values = _reduce.TakeAlong.apply(self, idx.array, axis=dim)
            if not keepdim:
                values, idx = values.squeeze(dim), idx.squeeze(dim)
            return ValuesIndices(values, idx)
        return op.apply(self, axis=_dims(axis), keepdims=keepdims)

    def max(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool = False):
        """Largest element over ``axis`` (NumPy: values; ties share the gradient evenly), or with
        ``dim=`` the PyTorch form returning ``(values, indices)``."""
        return self._extreme(_reduce.Max, axis, keepdims, dim, keepdim)

    def min(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool = False):
        """Smallest element; see :meth:`max` for the two calling forms."""
        return self._extreme(_reduce.Min, axis, keepdims, dim, keepdim)

    def argmax(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool = False):
        axis = dim if dim is not None else axis
        return Tensor(_reduce.arg_extreme(self.array, "argmax", axis, keepdims or keepdim))

    def argmin(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool = False):
        axis = dim if dim is not None else axis
        return Tensor(_reduce.arg_extreme(self.array, "argmin", axis, keepdims or keepdim))

    # ----------------------------------------------------------------- shape
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _shape.Reshape.apply(self, shape=shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return self.reshape(1)
        s, e = start_dim % self.ndim, end_dim % self.ndim
        shape = self.shape[:s] + (-1,) + self.shape[e + 1:]
        return self.reshape(shape)

    def permute(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _shape.Transpose.apply(self, axes=tuple(a % max(self.ndim, 1) for a in axes))

    def transpose(self, *axes):
        """NumPy's ``transpose(*axes)`` (a full permutation, or none to reverse), and PyTorch's
        ``transpose(dim0, dim1)`` (swap two dims) when two dims are given for a tensor that is not 2-D."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if not axes:
            return self.T
        if len(axes) == 2 and self.ndim != 2:
            perm = list(range(self.ndim))
            a, b = axes[0] % self.ndim, axes[1] % self.ndim
            perm[a], perm[b] = perm[b], perm[a]
            axes = perm
        return self.permute(*axes)

    def t(self):
        return self.transpose()

    def squeeze(self, dim=None):
        if dim is None:
            shape = tuple(s for s in self.shape if s != 1)
        else:
            dims = {d % self.ndim for d in ((dim,) if isinstance(dim, int) else dim)}
            shape = tuple(s for i, s in enumerate(self.shape) if not (i in dims and s == 1))
        return self.reshape(shape)

    def unsqueeze(self, dim: int):
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def expand(self, *sizes):
        """Broadcast to ``sizes`` without copying; ``-1`` keeps a dimension."""
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        lead = len(sizes) - self.ndim
        shape = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
        return _shape.BroadcastTo.apply(self, shape=shape)

    def contiguous(self):
        return self

    def __getitem__(self, key):
        return _shape.GetItem.apply(self, key=_shape.unwrap_index(key))

    def __setitem__(self, key, value):
        self._check_inplace("__setitem__")
        value = value.array if isinstance(value, Tensor) else value
        self.array[_shape.unwrap_index(key)] = value
        self._bump_version()


def tensor(data, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """Make a Tensor from data, inferring the dtype like ``torch.tensor``.

    A NumPy array keeps its dtype; Python floats (and lists of them) become float32, ints int64.

    >>> tensor([1.0, 2.0]).dtype
    dtype('float32')
    """
    arr = _infer_array(data, dtype)
    if isinstance(data, Tensor) or arr is data:
        arr = arr.copy()
    arr = to_device(arr, device)
    return Tensor(arr, requires_grad=requires_grad)


from .autograd import is_grad_enabled as _is_grad_enabled  # noqa: E402
from .autograd import run_backward  # noqa: E402
from .ops import activation as _activation  # noqa: E402
from .ops import elementwise as _ops  # noqa: E402
from .ops import matmul as _matmul  # noqa: E402
from .ops import reduce as _reduce  # noqa: E402
from .ops import shape as _shape  # noqa: E402
