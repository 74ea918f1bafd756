"""Tensor: an array, its gradient, and the node that made it.

A Tensor wraps a backend array (``numpy.ndarray`` on the CPU, ``cupy.ndarray`` on the GPU) in ``.array``.
When it takes part in a computation that needs gradients it also carries ``.grad_fn``, the
:class:`~minidl.autograd.Function` node that produced it, which remembers its inputs. ``backward()`` walks
those nodes back to the leaves and leaves the gradient of each in its ``.grad``.

The methods here only validate arguments and call ops; the math of every op lives in ``minidl/ops``.
Methods ending in ``_`` change the tensor in place: each refuses a leaf that requires grad while a graph
is being recorded (as PyTorch does), writes into ``.array`` and bumps the version counter.
"""
from __future__ import annotations

import math
from collections import namedtuple
from typing import Callable

import numpy as np

from .backend import device_of, get_array_module, normalize_device, to_device, to_numpy

__all__ = ["Tensor", "tensor", "device", "get_default_dtype", "set_default_dtype"]

float16 = np.dtype("float16")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
int64 = np.dtype("int64")

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])

_default_dtype = float32


def get_default_dtype() -> np.dtype:
    """The dtype of Python floats in ``tensor()`` and of the factories (``zeros``, ``randn``, ...): float32."""
    return _default_dtype


def set_default_dtype(d) -> None:
    """Make ``d`` (``minidl.float32`` or ``minidl.float64``) the default floating-point dtype.

    >>> import minidl as mdl
    >>> mdl.set_default_dtype(mdl.float64); mdl.zeros(1).dtype
    dtype('float64')
    >>> mdl.set_default_dtype(mdl.float32)
    """
    global _default_dtype
    d = np.dtype(d)
    if d.kind != "f":
        raise TypeError(f"set_default_dtype: only floating-point dtypes can be the default, got {d}")
    _default_dtype = d


class device(str):  # noqa: N801 - spelled like ``torch.device``
    """Where a tensor lives: ``device("cpu")``, ``device("cuda")``, ``device("cuda:0")``, ``device("cuda", 0)``.

    Like ``torch.device`` it has ``.type`` and ``.index``, prints as ``cpu`` or ``cuda:0`` and goes wherever a
    device is asked for (``.to(d)``, ``zeros(..., device=d)``, ``model.to(d)``). It also *is* the string it
    prints as, so ``t.device == "cpu"`` holds (PyTorch says False there). minidl drives one GPU, so
    ``device("cuda") == device("cuda:0")``.

    >>> d = device("cuda:0")  # a value only: no GPU is needed to make one
    >>> d, d.type, d.index, d == device("cuda")
    (device(type='cuda', index=0), 'cuda', 0, True)
    """

    def __new__(cls, type, index: int | None = None):  # noqa: A002 - torch.device's argument name
        if isinstance(type, device) and index is None:
            return type
        kind, _, number = str(type).partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu' or 'cuda' (optionally 'cuda:<index>'), got {type!r}")
        if number:
            if index is not None:
                raise ValueError(f"device: index given twice, in {type!r} and as index={index}")
            index = int(number)
        self = super().__new__(cls, kind if index is None else f"{kind}:{int(index)}")
        self.type, self.index = kind, None if index is None else int(index)
        return self

    def __repr__(self) -> str:
        return f"device(type='{self.type}'" + ("" if self.index is None else f", index={self.index}") + ")"

    def __eq__(self, other) -> bool:
        if not isinstance(other, str):
            return NotImplemented
        if str.__eq__(self, other):  # the common case, ``t.device == "cpu"``, without parsing ``other``
            return True
        try:
            other = device(other)
        except ValueError:
            return False
        return self.type == other.type and (self.index is None or other.index is None or self.index == other.index)

    def __ne__(self, other) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self.type)


_CPU = device("cpu")


def _is_array(x) -> bool:
    return isinstance(x, np.ndarray) or device_of(x) == "cuda"


def _raw(x):
    """A Tensor's array; anything else as it is."""
    return x.array if isinstance(x, Tensor) else x


def _infer_array(data, dtype=None):
    """``torch.tensor``'s dtype rule: arrays keep theirs, Python floats take the default dtype, ints int64."""
    if isinstance(data, Tensor):
        data = data.array
    if _is_array(data):
        arr = data
    elif isinstance(data, np.generic):
        arr = np.asarray(data)
    else:
        arr = np.asarray(data)
        if dtype is None and arr.dtype == np.float64:
            arr = arr.astype(_default_dtype, copy=False)
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


def _dim(dim: int, ndim: int) -> int:
    """``dim`` as a non-negative axis of a tensor with ``ndim`` dims (a 0-d tensor accepts 0 and -1)."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"dim {dim} is out of range for a tensor of {ndim} dims (expected -{n} to {n - 1})")
    return dim % n


def _promoted(a, b) -> tuple:
    """The operands of a binary op, cast where NumPy's type promotion differs from PyTorch's.

    An integer or boolean tensor meeting a Python float becomes the default float dtype (NumPy: float64), and
    one meeting a float tensor takes that tensor's dtype (NumPy widens float32 with int64 to float64).
    Everything else NumPy already promotes as PyTorch does.
    """
    ka = a.array.dtype.kind if isinstance(a, Tensor) else None
    kb = b.array.dtype.kind if isinstance(b, Tensor) else None
    if ka in ("f", None) and kb in ("f", None):  # the common case, kept cheap
        return a, b
    if ka in ("i", "u", "b"):
        if kb == "f":
            a = a.to(b.dtype)
        elif kb is None and isinstance(b, float):
            a = a.to(_default_dtype)
    if kb in ("i", "u", "b"):
        if ka == "f":
            b = b.to(a.dtype)
        elif ka is None and isinstance(a, float):
            b = b.to(_default_dtype)
    return a, b


def _sizes(sizes) -> tuple:
    """``f(2, 3)`` and ``f((2, 3))`` alike."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        return tuple(sizes[0])
    return tuple(sizes)


_TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor", "int64": "LongTensor",
               "int32": "IntTensor", "int16": "ShortTensor", "int8": "CharTensor", "uint8": "ByteTensor",
               "bool": "BoolTensor"}


class _HookHandle:
    """What ``register_post_accumulate_grad_hook`` returns: ``remove()`` takes the hook off again."""

    def __init__(self, hooks: list, hook) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class Tensor:
    """An n-dimensional array with automatic differentiation.

    Args:
        data: a NumPy/CuPy array (kept as is) or anything ``numpy.asarray`` accepts (dtype inferred like
            ``torch.tensor``).
        requires_grad: record operations on this tensor so ``backward()`` can fill its ``.grad``.
    """

    __slots__ = ("array", "grad", "grad_fn", "requires_grad", "_output_index", "_version_counter",
                 "_post_accumulate_grad_hooks", "__weakref__")
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
    def device(self) -> device:
        """``device('cpu')`` or ``device('cuda:<n>')``; equal to the strings ``"cpu"`` and ``"cuda"`` too."""
        if isinstance(self.array, np.ndarray):
            return _CPU
        return device("cuda", self.array.device.id)

    @property
    def is_cuda(self) -> bool:
        return not isinstance(self.array, np.ndarray)

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def T(self) -> "Tensor":
        return self.permute(*reversed(range(self.ndim)))

    @property
    def itemsize(self) -> int:
        return self.array.itemsize

    @property
    def nbytes(self) -> int:
        return self.array.nbytes

    def size(self, dim: int | None = None):
        """The shape, or its ``dim``-th entry (PyTorch's spelling of ``.shape``)."""
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    ndimension = dim

    def numel(self) -> int:
        return int(self.array.size)

    nelement = numel

    def element_size(self) -> int:
        """Bytes per element."""
        return self.array.itemsize

    def is_floating_point(self) -> bool:
        return self.array.dtype.kind == "f"

    def is_contiguous(self) -> bool:
        return bool(self.array.flags.c_contiguous)

    def data_ptr(self) -> int:
        """The address of the first element (equal for tensors that share memory from the same start)."""
        if isinstance(self.array, np.ndarray):
            return self.array.__array_interface__["data"][0]
        return self.array.data.ptr

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

    def __format__(self, spec: str) -> str:
        """A 0-d tensor formats as its value (``f"{loss:.3f}"``); others only with an empty spec, as in PyTorch."""
        if self.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """``np.asarray(t)`` (and matplotlib's ``imshow(t)``): a NumPy array of the values."""
        a = to_numpy(self.array)
        if dtype is not None:
            a = a.astype(dtype, copy=False)
        return a.copy() if copy else a

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
            run_queued_callbacks()
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
        for hook in getattr(self, "_post_accumulate_grad_hooks", ()):
            hook(self)

    def register_post_accumulate_grad_hook(self, hook: Callable[["Tensor"], None]):
        """Call ``hook(self)`` each time backward has accumulated a gradient into this leaf's ``.grad``
        (PyTorch's name). ``DistributedDataParallel`` uses it to start averaging gradients as they arrive.

        Returns:
            A handle whose ``remove()`` unregisters the hook.
        """
        if self.grad_fn is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors have an accumulated .grad; "
                               "this tensor has a grad_fn")
        if not hasattr(self, "_post_accumulate_grad_hooks"):
            self._post_accumulate_grad_hooks = []
        hooks = self._post_accumulate_grad_hooks
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def detach(self) -> "Tensor":
        """A tensor sharing this one's array (and its version counter), cut from the graph."""
        t = Tensor(self.array)
        t._version_counter = self._version_counter
        return t

    def detach_(self) -> "Tensor":
        """Cut this tensor from the graph, in place: it becomes a leaf that does not require grad."""
        self.grad_fn = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.array.dtype.kind not in "fc":
            raise RuntimeError(f"only floating-point tensors can require gradients, got dtype {self.dtype}")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def _check_inplace(self, op: str, *operands) -> None:
        """Refuse an in-place change that autograd could not follow.

        As PyTorch, a leaf that requires grad may change in place only under ``no_grad``. Unlike PyTorch,
        minidl's graph has no in-place nodes, so a tensor inside a graph, or an operand that requires grad
        (``buf.add_(w)``), is refused too: written in silently, its gradient would be lost.
        """
        if not _is_grad_enabled():
            return
        for o in operands:
            if isinstance(o, Tensor) and o.requires_grad:
                raise RuntimeError(f"{op}: an operand requires grad, and minidl's autograd does not record in-place "
                                   "operations; use the out-of-place form (e.g. `buf = buf + w` for "
                                   "`buf.add_(w)`)")
        if self.requires_grad:
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

    def to(self, *args, non_blocking: bool = False, copy: bool = False, **kwargs) -> "Tensor":
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or ``to(other)`` (its device and dtype), also as
        ``device=``/``dtype=`` keywords; differentiable like PyTorch's. ``non_blocking`` is accepted (copies are
        synchronous); ``copy=True`` returns a new tensor even when nothing changes."""
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(f"to: unexpected arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, str) or isinstance(getattr(a, "type", None), str):  # "cuda" or a device
                device = a
            else:
                dtype = a
        out = self
        if device is not None and normalize_device(device) != device_of(self.array):
            out = _ops.ToDevice.apply(out, device=normalize_device(device))
        if dtype is not None and np.dtype(dtype) != out.dtype:
            out = _ops.Cast.apply(out, dtype=np.dtype(dtype))
        if copy and out is self:
            out = self.clone()
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, device=None, non_blocking: bool = False) -> "Tensor":
        return self.to("cuda" if device is None else device)

    def float(self) -> "Tensor":
        return self.to(float32)

    def double(self) -> "Tensor":
        return self.to(float64)

    def half(self) -> "Tensor":
        return self.to(float16)

    def long(self) -> "Tensor":
        return self.to(int64)

    def int(self) -> "Tensor":
        return self.to(np.dtype("int32"))

    def bool(self) -> "Tensor":
        return self.to(np.dtype("bool"))

    def byte(self) -> "Tensor":
        return self.to(np.dtype("uint8"))

    def astype(self, dtype) -> "Tensor":
        return self.to(np.dtype(dtype))

    def type(self, dtype=None, non_blocking: bool = False):
        """With no argument, the type's name (``"minidl.FloatTensor"``); with a dtype (or such a name), a cast."""
        if dtype is None:
            return ("minidl." if self.device == "cpu" else "minidl.cuda.") + _TYPE_NAMES.get(self.dtype.name, "Tensor")
        if isinstance(dtype, str):
            by_name = {v: k for k, v in _TYPE_NAMES.items()}
            kind = dtype.rsplit(".", 1)[-1]
            if kind not in by_name:
                raise ValueError(f"type: unknown tensor type {dtype!r}")
            out = self.to(np.dtype(by_name[kind]))
            return out.to("cuda") if ".cuda." in dtype else out
        return self.to(dtype)

    def type_as(self, other: "Tensor") -> "Tensor":
        """This tensor with ``other``'s dtype and device."""
        return self.to(other.device, other.dtype)

    def clone(self, *, memory_format=None) -> "Tensor":
        """A copy with its own memory; gradients flow back to this tensor."""
        return _ops.Clone.apply(self)

    def _float(self) -> "Tensor":
        """This tensor, cast to the default float dtype if it holds integers or booleans (PyTorch's rule for
        ``sqrt``, ``exp``, ``/``, ...: an int64 tensor gives float32, not NumPy's float64)."""
        return self if self.array.dtype.kind in "fc" else self.to(_default_dtype)

    # ----------------------------------------------------------------- new tensors like this one
    def _new(self, size, fill, dtype, device, requires_grad) -> "Tensor":
        arr = np.full(_sizes(size), fill, dtype=self.dtype if dtype is None else dtype)
        arr = to_device(arr, self.device if device is None else device)
        return Tensor(arr, requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        """Zeros of ``size``, with this tensor's dtype and device unless told otherwise."""
        return self._new(size, 0, dtype, device, requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        """Ones of ``size``, with this tensor's dtype and device unless told otherwise."""
        return self._new(size, 1, dtype, device, requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        """``fill_value`` everywhere, with this tensor's dtype and device unless told otherwise."""
        return self._new((size,), fill_value, dtype, device, requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return self._new(size, 0, dtype, device, requires_grad)

    def new_tensor(self, data, *, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        """A copy of ``data`` with this tensor's dtype and device unless told otherwise."""
        return tensor(data, dtype=self.dtype if dtype is None else dtype,
                      device=self.device if device is None else device, requires_grad=requires_grad)

    # ----------------------------------------------------------------- arithmetic
    def __add__(self, other):
        return _ops.Add.apply(*_promoted(self, other))

    def __radd__(self, other):
        return _ops.Add.apply(*_promoted(other, self))

    def __sub__(self, other):
        return _ops.Sub.apply(*_promoted(self, other))

    def __rsub__(self, other):
        return _ops.Sub.apply(*_promoted(other, self))

    def __mul__(self, other):
        return _ops.Mul.apply(*_promoted(self, other))

    def __rmul__(self, other):
        return _ops.Mul.apply(*_promoted(other, self))

    def __truediv__(self, other):
        return _ops.Div.apply(*_promoted(self._float(), other))  # int / int is a float, as in PyTorch

    def __rtruediv__(self, other):
        return _ops.Div.apply(*_promoted(other, self._float()))

    def __pow__(self, other):
        return _ops.Pow.apply(*_promoted(self, other))

    def __rpow__(self, other):
        return _ops.Pow.apply(*_promoted(other, self))

    def __neg__(self):
        return _ops.Neg.apply(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return self.abs()

    def __matmul__(self, other):
        return _matmul.MatMul.apply(self, other)

    def __rmatmul__(self, other):
        return _matmul.MatMul.apply(other, self)

    def add(self, other, *, alpha=1):
        """``self + alpha * other``."""
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, *, alpha=1):
        """``self - alpha * other``."""
        return self - (other if alpha == 1 else other * alpha)

    subtract = sub

    def mul(self, other):
        return self * other

    multiply = mul

    def div(self, other, *, rounding_mode: str | None = None):
        """``self / other``; ``rounding_mode="floor"`` or ``"trunc"`` rounds the quotient (no gradient)."""
        if rounding_mode is None:
            return self / other
        if rounding_mode not in ("floor", "trunc"):
            raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")
        if self.array.dtype.kind in "iu" and (not isinstance(other, Tensor) or other.dtype.kind in "iu"):
            return self._no_grad_op(other, _floor_divide if rounding_mode == "floor" else _trunc_divide)
        return _ops.Step.apply(self / other, fn=rounding_mode)

    divide = true_divide = div

    def matmul(self, other):
        return self @ other

    def mm(self, other):
        """Matrix product of two 2-D tensors."""
        if self.ndim != 2 or other.ndim != 2:
            raise ValueError(f"mm: expected two 2-D tensors, got shapes {tuple(self.shape)} and {tuple(other.shape)}")
        return self @ other

    def bmm(self, other):
        """Batched matrix product of (B, N, M) and (B, M, P) tensors."""
        if self.ndim != 3 or other.ndim != 3 or self.shape[0] != other.shape[0]:
            raise ValueError(f"bmm: expected (B, N, M) and (B, M, P) tensors, got shapes {tuple(self.shape)} and "
                             f"{tuple(other.shape)}")
        return self @ other

    def dot(self, other):
        """Inner product of two 1-D tensors."""
        if self.ndim != 1 or other.ndim != 1:
            raise ValueError(f"dot: expected two 1-D tensors, got shapes {tuple(self.shape)} and "
                             f"{tuple(other.shape)}")
        return self @ other

    def maximum(self, other):
        """The larger of the two elementwise; a tie sends half the gradient to each."""
        return _ops.Maximum.apply(self, other)

    def minimum(self, other):
        """The smaller of the two elementwise; a tie sends half the gradient to each."""
        return _ops.Minimum.apply(self, other)

    # Comparisons, logic and integer arithmetic give tensors without gradient.
    def _no_grad_op(self, other, op):
        other = other.array if isinstance(other, Tensor) else other
        return Tensor(op(self.array, other))

    def __eq__(self, other):
        return self._no_grad_op(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._no_grad_op(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._no_grad_op(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._no_grad_op(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._no_grad_op(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._no_grad_op(other, lambda a, b: a >= b)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def __and__(self, other):
        return self._no_grad_op(other, lambda a, b: a & b)

    def __or__(self, other):
        return self._no_grad_op(other, lambda a, b: a | b)

    def __xor__(self, other):
        return self._no_grad_op(other, lambda a, b: a ^ b)

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def __invert__(self):
        return Tensor(~self.array)

    def logical_not(self):
        return Tensor(get_array_module(self.array).logical_not(self.array))

    def logical_and(self, other):
        return self._no_grad_op(other, lambda a, b: get_array_module(a).logical_and(a, b))

    def logical_or(self, other):
        return self._no_grad_op(other, lambda a, b: get_array_module(a).logical_or(a, b))

    def __floordiv__(self, other):
        _refuse_gradient("floor_divide (//)", self, other)
        return self._no_grad_op(other, _floor_divide)

    def __rfloordiv__(self, other):
        _refuse_gradient("floor_divide (//)", self, other)
        return Tensor(_floor_divide(other, self.array))

    def __mod__(self, other):
        _refuse_gradient("remainder (%)", self, other)
        return self._no_grad_op(other, lambda a, b: a % b)

    def __rmod__(self, other):
        _refuse_gradient("remainder (%)", self, other)
        return Tensor(other % self.array)

    def isnan(self):
        return Tensor(get_array_module(self.array).isnan(self.array))

    def isinf(self):
        return Tensor(get_array_module(self.array).isinf(self.array))

    def isfinite(self):
        return Tensor(get_array_module(self.array).isfinite(self.array))

    def allclose(self, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
        """Whether ``|self - other| <= atol + rtol * |other|`` everywhere (a Python bool)."""
        xp = get_array_module(self.array)
        return bool(xp.allclose(self.array, _raw(other), rtol=rtol, atol=atol, equal_nan=equal_nan))

    def equal(self, other) -> bool:
        """Whether both have the same shape and the same values (a Python bool)."""
        return self.shape == other.shape and bool((self.array == other.array).all())

    def __bool__(self) -> bool:
        if self.array.size != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.array)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        """A one-element integer tensor used as a Python index: ``classes[label]``, ``range(n)``."""
        if self.array.dtype.kind not in "iu" or self.array.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.array.item())

    # ----------------------------------------------------------------- in-place
    def _update(self, op: str, ufunc: str, *operands) -> "Tensor":
        """``self = ufunc(self, *operands)``, written into ``self.array``: the body of most in-place methods.

        NumPy's "same_kind" casting refuses what PyTorch refuses (``int_tensor += 0.5``) and accepts the rest.
        """
        self._check_inplace(op, *operands)
        xp = get_array_module(self.array)
        getattr(xp, ufunc)(self.array, *[_raw(o) for o in operands], out=self.array, casting="same_kind")
        self._bump_version()
        return self

    def zero_(self) -> "Tensor":
        """Fill this tensor with zeros, in place (used as ``p.grad.zero_()``)."""
        self._check_inplace("zero_")
        self.array[...] = 0
        self._bump_version()
        return self

    def fill_(self, value) -> "Tensor":
        """Set every element to ``value``, in place."""
        self._check_inplace("fill_", value)
        self.array[...] = _raw(value)
        self._bump_version()
        return self

    def copy_(self, src, non_blocking: bool = False) -> "Tensor":
        """Copy ``src``'s values (broadcast, cast to this dtype, from any device) into this tensor, in place."""
        self._check_inplace("copy_", src)
        src = _raw(src)
        self.array[...] = to_device(src, device_of(self.array)) if _is_array(src) else src
        self._bump_version()
        return self

    def add_(self, other, *, alpha=1) -> "Tensor":
        """``self += alpha * other``, in place."""
        self._check_inplace("add_", other)
        return self._update("add_", "add", other if alpha == 1 else _raw(other) * alpha)

    def sub_(self, other, *, alpha=1) -> "Tensor":
        """``self -= alpha * other``, in place."""
        self._check_inplace("sub_", other)
        return self._update("sub_", "subtract", other if alpha == 1 else _raw(other) * alpha)

    def mul_(self, other) -> "Tensor":
        return self._update("mul_", "multiply", other)

    def div_(self, other) -> "Tensor":
        return self._update("div_", "true_divide", other)

    def pow_(self, exponent) -> "Tensor":
        return self._update("pow_", "power", exponent)

    def neg_(self) -> "Tensor":
        return self._update("neg_", "negative")

    def abs_(self) -> "Tensor":
        return self._update("abs_", "abs")

    def sqrt_(self) -> "Tensor":
        return self._update("sqrt_", "sqrt")

    def exp_(self) -> "Tensor":
        return self._update("exp_", "exp")

    def log_(self) -> "Tensor":
        return self._update("log_", "log")

    def addcmul_(self, tensor1, tensor2, *, value=1) -> "Tensor":
        """``self += value * tensor1 * tensor2``, in place."""
        self._check_inplace("addcmul_", tensor1, tensor2)
        return self._update("addcmul_", "add", _raw(tensor1) * _raw(tensor2) * value)

    def addcdiv_(self, tensor1, tensor2, *, value=1) -> "Tensor":
        """``self += value * tensor1 / tensor2``, in place."""
        self._check_inplace("addcdiv_", tensor1, tensor2)
        return self._update("addcdiv_", "add", _raw(tensor1) / _raw(tensor2) * value)

    def clamp_(self, min=None, max=None) -> "Tensor":  # noqa: A002 - PyTorch's argument names
        """Clamp into ``[min, max]``, in place."""
        if min is None and max is None:
            raise ValueError("clamp_: at least one of min and max must be given")
        self._check_inplace("clamp_", min, max)
        get_array_module(self.array).clip(self.array, _raw(min), _raw(max), out=self.array)
        self._bump_version()
        return self

    clip_ = clamp_

    def masked_fill_(self, mask, value) -> "Tensor":
        """Set the elements where ``mask`` (broadcast to this shape) is True to ``value``, in place."""
        self._check_inplace("masked_fill_", value)
        get_array_module(self.array).copyto(self.array, _raw(value), where=_raw(mask), casting="unsafe")
        self._bump_version()
        return self

    def normal_(self, mean: float = 0.0, std: float = 1.0, *, generator=None) -> "Tensor":
        """Fill with samples of N(mean, std^2) from minidl's generator (or ``generator``), in place."""
        return self._fill_random("normal_", lambda rng: rng.normal(mean, std, self.shape), generator)

    def uniform_(self, low: float = 0.0, high: float = 1.0, *, generator=None, **kwargs) -> "Tensor":
        """Fill with samples of U[low, high) from minidl's generator, in place (PyTorch's keywords ``from``/``to``
        work too)."""
        low, high = kwargs.pop("from", low), kwargs.pop("to", high)
        if kwargs:
            raise TypeError(f"uniform_: unexpected arguments {sorted(kwargs)}")
        return self._fill_random("uniform_", lambda rng: rng.uniform(low, high, self.shape), generator)

    def _fill_random(self, op: str, draw, generator) -> "Tensor":
        if self.array.dtype.kind != "f":
            raise TypeError(f"{op}: expected a floating-point tensor, got dtype {self.dtype}")
        self._check_inplace(op)
        rng = _random.default_generator() if generator is None else generator
        self.array[...] = to_device(draw(rng).astype(self.dtype), device_of(self.array))
        self._bump_version()
        return self

    def scatter_(self, dim: int, index, src=None, *, value=None, reduce=None) -> "Tensor":
        """``self[..., index[i, j], ...] = src[i, j]`` along ``dim`` (or ``= value``), in place.

        ``index`` has this tensor's number of dims and is no larger in any dim; ``src`` may be a number.
        """
        if reduce is not None:
            raise NotImplementedError("scatter_: reduce= is not supported by minidl")
        if src is None and value is None:
            raise TypeError("scatter_: give src or value")
        self._check_inplace("scatter_", src, value)
        dim, index = _dim(dim, self.ndim), _raw(index)
        if index.ndim == 0:  # one position: ``zeros(10).scatter_(0, tensor(y), value=1)``
            index = index.reshape((1,) * self.ndim)
        if index.ndim != self.ndim:
            raise ValueError(f"scatter_: index has {index.ndim} dims, expected {self.ndim}")
        lead = tuple(slice(0, n) for n in index.shape)
        target = self.array[lead[:dim] + (slice(None),) + lead[dim + 1:]]  # a view: writes reach self
        values = _raw(value if src is None else src)
        if _is_array(values) and values.ndim:
            values = values[lead]
        xp = get_array_module(self.array)
        xp.put_along_axis(target, index, xp.broadcast_to(xp.asarray(values, dtype=self.dtype), index.shape), axis=dim)
        self._bump_version()
        return self

    # ``x += y``. PyTorch changes x in place. minidl does the same for a tensor outside any graph (``p -= lr * g``
    # under no_grad, a running sum), refuses a leaf that requires grad, and for a tensor inside a graph (``out +=
    # residual`` in a forward) rebinds the name to ``x + y``, a new node: the same values and gradients,
    # except that other references to the old x do not see the change.
    def _in_graph(self, other) -> bool:
        """Whether ``self op= other`` must make a new node: self is in a graph, or other requires grad (and
        self is not a leaf that requires grad, which ``add_`` and friends refuse)."""
        if not _is_grad_enabled():
            return False
        return self.grad_fn is not None or (not self.requires_grad and isinstance(other, Tensor)
                                            and other.requires_grad)

    def __iadd__(self, other):
        return self + other if self._in_graph(other) else self.add_(other)

    def __isub__(self, other):
        return self - other if self._in_graph(other) else self.sub_(other)

    def __imul__(self, other):
        return self * other if self._in_graph(other) else self.mul_(other)

    def __itruediv__(self, other):
        return self / other if self._in_graph(other) else self.div_(other)

    def __ipow__(self, other):
        return self ** other if self._in_graph(other) else self.pow_(other)

    # ----------------------------------------------------------------- math
    def exp(self):
        return _ops.Exp.apply(self._float())

    def log(self):
        return _ops.Log.apply(self._float())

    def log1p(self):
        return _ops.Log1p.apply(self._float())

    def expm1(self):
        return _ops.Expm1.apply(self._float())

    def sqrt(self):
        return _ops.Sqrt.apply(self._float())

    def rsqrt(self):
        return _ops.Pow.apply(self._float(), -0.5)

    def reciprocal(self):
        return _ops.Div.apply(1.0, self._float())

    def square(self):
        return _ops.Pow.apply(self, 2)

    def sin(self):
        return _ops.Sin.apply(self._float())

    def cos(self):
        return _ops.Cos.apply(self._float())

    def abs(self):
        return _ops.Abs.apply(self)

    def neg(self):
        return _ops.Neg.apply(self)

    negative = neg

    def pow(self, exponent):
        return _ops.Pow.apply(self, exponent)

    def sign(self):
        return _ops.Step.apply(self, fn="sign")

    def floor(self):
        return _ops.Step.apply(self, fn="floor")

    def ceil(self):
        return _ops.Step.apply(self, fn="ceil")

    def trunc(self):
        return _ops.Step.apply(self, fn="trunc")

    def round(self, *, decimals: int = 0):
        """Round half to even (as PyTorch); the gradient is zero."""
        return _ops.Step.apply(self, fn="round", decimals=decimals)

    def clip(self, min=None, max=None):  # noqa: A002 - PyTorch/NumPy argument names
        """Clamp into ``[min, max]``; the bounds may be numbers or tensors (which get no gradient)."""
        if _is_grad_enabled() and any(isinstance(b, Tensor) and b.requires_grad for b in (min, max)):
            raise NotImplementedError("clamp: bounds that require grad are not supported by minidl; use "
                                      "minidl.maximum(x, lo) and minidl.minimum(x, hi), which pass gradients to both")
        return _ops.Clip.apply(self, lo=_raw(min), hi=_raw(max))

    clamp = clip

    def tanh(self):
        return _activation.tanh(self._float())

    def sigmoid(self):
        return _activation.sigmoid(self._float())

    def relu(self):
        return _activation.relu(self)

    def softmax(self, dim, dtype=None):
        return _activation.softmax(self, dim, dtype=dtype)

    def log_softmax(self, dim, dtype=None):
        return _activation.log_softmax(self, dim, dtype=dtype)

    def masked_fill(self, mask, value):
        """``value`` where ``mask`` (a boolean tensor broadcast to this shape) is True, else this tensor."""
        return _ops.MaskedFill.apply(self, mask, value)

    # ----------------------------------------------------------------- reductions
    def sum(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool = False, dtype=None):
        """Sum over ``axis`` (NumPy spelling) or ``dim`` (PyTorch spelling); all axes by default."""
        x = self if dtype is None else self.to(dtype)
        axis = _dims(dim if dim is not None else axis)
        return _reduce.Sum.apply(x, axis=axis, keepdims=keepdims or keepdim)

    def mean(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool = False, dtype=None):
        x = self if dtype is None else self.to(dtype)
        axis = _dims(dim if dim is not None else axis)
        return _reduce.Mean.apply(x, axis=axis, keepdims=keepdims or keepdim)

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

    def std(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool = False,
            unbiased: bool | None = None, correction: int | None = None, ddof: int | None = None):
        """Standard deviation, ``sqrt(var(...))``: unbiased by default, as PyTorch; see :meth:`var`."""
        return self.var(axis, keepdims, dim=dim, keepdim=keepdim, unbiased=unbiased, correction=correction,
                        ddof=ddof).sqrt()

    def prod(self, dim: int | None = None, keepdim: bool = False, *, dtype=None):
        """Product of all elements, or along one ``dim``."""
        x = self if dtype is None else self.to(dtype)
        axis = None if dim is None else _dim(dim, self.ndim)
        return _reduce.Prod.apply(x, axis=axis, keepdims=keepdim)

    def cumsum(self, dim: int, *, dtype=None):
        """Running sums along ``dim``: ``y[i] = x[0] + ... + x[i]``."""
        x = self if dtype is None else self.to(dtype)
        if x.ndim == 0:
            return x.reshape(1).cumsum(0).reshape(())
        return _reduce.Cumsum.apply(x, axis=_dim(dim, x.ndim))

    def logsumexp(self, dim, keepdim: bool = False):
        """``log(sum(exp(x)))`` over ``dim``, without overflow."""
        return _reduce.Logsumexp.apply(self._float(), axis=_dims(dim), keepdims=keepdim)

    def norm(self, p="fro", dim=None, keepdim: bool = False, dtype=None):
        """The p-norm ``(sum |x|^p)^(1/p)`` over ``dim`` (all elements by default).

        Args:
            p: a number, ``inf``, ``-inf`` or ``"fro"`` (the 2-norm; the default).
            dim: an int, a tuple of ints, or None for all.
            keepdim: keep the reduced dims with size 1.
            dtype: cast to this dtype first.
        """
        if p == "fro":
            p = 2
        elif isinstance(p, str):
            raise NotImplementedError(f"norm: p={p!r} is not supported by minidl (numbers, inf and 'fro' are)")
        x = self if dtype is None else self.to(dtype)
        return _reduce.Norm.apply(x, p=p, axis=_dims(dim), keepdims=keepdim)

    def _extreme(self, op, pair, arg: str, dim, keepdim, axis, keepdims):
        if isinstance(dim, Tensor):  # x.max(other): elementwise
            return pair.apply(self, dim)
        if dim is None:  # x.max(), or NumPy's x.max(axis=..., keepdims=...): values only
            return op.apply(self, axis=_dims(axis), keepdims=keepdims)
        if axis is not None:
            raise TypeError(f"{arg[3:]}: give dim (PyTorch: returns (values, indices)) or axis (NumPy: returns "
                            "values), not both")
        if not isinstance(dim, (int, np.integer)):
            raise TypeError(f"{arg[3:]}: dim must be an int (use amax/amin or axis= to reduce several dims)")
        dim = _dim(dim, self.ndim)
        idx = _reduce.arg_extreme(self.array, arg, dim, True)
        values = _reduce.TakeAlong.apply(self, idx, axis=dim)
        if not keepdim:
            values, idx = values.squeeze(dim), get_array_module(idx).squeeze(idx, axis=dim)
        return ValuesIndices(values, Tensor(idx))

    def max(self, dim=None, keepdim: bool = False, *, axis=None, keepdims: bool = False):
        """The largest element, in PyTorch's three forms and NumPy's.

        - ``x.max()``: the largest value; tied elements share its gradient evenly.
        - ``x.max(dim, keepdim=False)``: a namedtuple ``(values, indices)`` along ``dim``, as PyTorch
          (``_, predicted = outputs.max(1)``); the index of the first maximum, which gets the gradient.
        - ``x.max(other)``: the elementwise maximum, like :meth:`maximum`.
        - ``x.max(axis=..., keepdims=...)``: NumPy's form, values only (ties share the gradient).
        """
        return self._extreme(_reduce.Max, _ops.Maximum, "argmax", dim, keepdim, axis, keepdims)

    def min(self, dim=None, keepdim: bool = False, *, axis=None, keepdims: bool = False):
        """The smallest element; the same forms as :meth:`max`."""
        return self._extreme(_reduce.Min, _ops.Minimum, "argmin", dim, keepdim, axis, keepdims)

    def amax(self, dim=(), keepdim: bool = False):
        """The largest value over ``dim`` (an int or tuple; all dims by default); ties share the gradient."""
        return _reduce.Max.apply(self, axis=_dims(dim) if dim != () else None, keepdims=keepdim)

    def amin(self, dim=(), keepdim: bool = False):
        """The smallest value over ``dim``; ties share the gradient."""
        return _reduce.Min.apply(self, axis=_dims(dim) if dim != () else None, keepdims=keepdim)

    def argmax(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool = False):
        axis = dim if dim is not None else axis
        return Tensor(_reduce.arg_extreme(self.array, "argmax", axis, keepdims or keepdim))

    def argmin(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool = False):
        axis = dim if dim is not None else axis
        return Tensor(_reduce.arg_extreme(self.array, "argmin", axis, keepdims or keepdim))

    def all(self, dim=None, keepdim: bool = False):
        """Whether every element (along ``dim``) is non-zero, as a boolean tensor."""
        return Tensor(get_array_module(self.array).all(self.array, axis=_dims(dim), keepdims=keepdim))

    def any(self, dim=None, keepdim: bool = False):
        """Whether some element (along ``dim``) is non-zero, as a boolean tensor."""
        return Tensor(get_array_module(self.array).any(self.array, axis=_dims(dim), keepdims=keepdim))

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        """``(values, indices)`` sorted along ``dim``; equal elements keep their order. Values carry gradient."""
        dim = _dim(dim, self.ndim)
        idx = _reduce.sort_indices(self.array, dim, descending)
        return ValuesIndices(_reduce.TakeAlong.apply(self, idx, axis=dim), Tensor(idx))

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        """The indices that sort this tensor along ``dim`` (stable)."""
        return Tensor(_reduce.sort_indices(self.array, _dim(dim, self.ndim), descending))

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
        """The ``k`` largest (or smallest) elements along ``dim``, as ``(values, indices)``, largest first.

        Values carry gradient; among equal elements the one with the lower index comes first.
        """
        dim = _dim(dim, self.ndim)
        n = self.shape[dim] if self.ndim else 1
        if not 0 <= k <= n:
            raise ValueError(f"topk: k={k} is out of range for a dim of size {n}")
        idx = _reduce.sort_indices(self.array, dim, descending=largest)
        idx = idx[(slice(None),) * dim + (slice(0, k),)]
        return ValuesIndices(_reduce.TakeAlong.apply(self, idx, axis=dim), Tensor(idx))

    def unique(self, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,  # noqa: A002
               dim: int | None = None):
        """The distinct values, sorted; with ``return_inverse`` where each element went, with ``return_counts``
        how often each value occurs (both int64). No gradient."""
        xp = get_array_module(self.array)
        out = xp.unique(self.array, return_inverse=return_inverse, return_counts=return_counts, axis=dim)
        if not isinstance(out, tuple):
            return Tensor(out)
        values, *rest = out
        result = [Tensor(values)]
        if return_inverse:
            inverse = rest.pop(0).astype("int64")
            result.append(Tensor(inverse.reshape(self.shape) if dim is None else inverse.reshape(-1)))
        if return_counts:
            result.append(Tensor(rest.pop(0).astype("int64")))
        return tuple(result)

    def nonzero(self, *, as_tuple: bool = False):
        """The indices of the non-zero elements: an (n, ndim) int64 tensor, or one index tensor per dim."""
        found = get_array_module(self.array).nonzero(self.array)
        if as_tuple:
            return tuple(Tensor(i.astype("int64")) for i in found)
        return Tensor(get_array_module(self.array).stack(found, axis=1).astype("int64"))

    # ----------------------------------------------------------------- shape
    def reshape(self, *shape):
        return _shape.Reshape.apply(self, shape=_sizes(shape))

    view = reshape

    def view_as(self, other):
        return self.reshape(other.shape)

    reshape_as = view_as

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return self.reshape(1)
        s, e = _dim(start_dim, self.ndim), _dim(end_dim, self.ndim)
        shape = self.shape[:s] + (-1,) + self.shape[e + 1:]
        return self.reshape(shape)

    def unflatten(self, dim: int, sizes):
        """Split dim ``dim`` into ``sizes`` (one may be -1)."""
        dim = _dim(dim, self.ndim)
        return self.reshape(self.shape[:dim] + tuple(sizes) + self.shape[dim + 1:])

    def permute(self, *axes):
        return _shape.Transpose.apply(self, axes=tuple(_dim(a, self.ndim) for a in _sizes(axes)))

    def transpose(self, *axes):
        """PyTorch's ``transpose(dim0, dim1)``: swap two dims. Also NumPy's ``transpose(*axes)`` with a full
        permutation of three or more dims, or with none to reverse them all."""
        axes = _sizes(axes)
        if not axes:
            return self.T
        if len(axes) == 2:
            perm = list(range(self.ndim))
            a, b = _dim(axes[0], self.ndim), _dim(axes[1], self.ndim)
            perm[a], perm[b] = perm[b], perm[a]
            axes = perm
        return self.permute(*axes)

    swapaxes = swapdims = transpose

    def t(self):
        """The transpose of a matrix (a tensor of at most 2 dims)."""
        if self.ndim > 2:
            raise ValueError(f"t: expected a tensor of at most 2 dims, got shape {tuple(self.shape)}; use transpose")
        return self.T

    def squeeze(self, dim=None):
        if dim is None:
            shape = tuple(s for s in self.shape if s != 1)
        else:
            dims = {_dim(d, self.ndim) for d in ((dim,) if isinstance(dim, int) else dim)}
            shape = tuple(s for i, s in enumerate(self.shape) if not (i in dims and s == 1))
        return self.reshape(shape)

    def unsqueeze(self, dim: int):
        dim = _dim(dim, self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def expand(self, *sizes):
        """Broadcast to ``sizes`` without copying; ``-1`` keeps a dimension."""
        sizes = _sizes(sizes)
        lead = len(sizes) - self.ndim
        shape = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
        return _shape.BroadcastTo.apply(self, shape=shape)

    def expand_as(self, other):
        return self.expand(other.shape)

    def repeat(self, *sizes):
        """Tile: ``sizes[d]`` copies along each dim d (extra leading sizes add dims), as ``torch.Tensor.repeat``."""
        return _shape.Repeat.apply(self, reps=_sizes(sizes))

    def split(self, split_size_or_sections, dim: int = 0):
        """Pieces along ``dim``: of ``split_size`` each (the last may be smaller), or of the listed sizes."""
        dim = _dim(dim, self.ndim)
        n = self.shape[dim]
        if isinstance(split_size_or_sections, (int, np.integer)):
            step = int(split_size_or_sections)
            if step <= 0:
                raise ValueError(f"split: split_size must be positive, got {step}")
            sizes = [min(step, n - i) for i in range(0, n, step)] or [0]
        else:
            sizes = [int(s) for s in split_size_or_sections]
            if sum(sizes) != n:
                raise ValueError(f"split: sizes {sizes} sum to {sum(sizes)}, but dim {dim} has size {n}")
        return _shape.Split.apply(self, sizes=sizes, axis=dim)

    def chunk(self, chunks: int, dim: int = 0):
        """At most ``chunks`` pieces along ``dim``, each of size ``ceil(n / chunks)`` but the last."""
        if chunks <= 0:
            raise ValueError(f"chunk: chunks must be positive, got {chunks}")
        n = self.shape[_dim(dim, self.ndim)]
        return self.split(max(math.ceil(n / chunks), 1), dim)

    def unbind(self, dim: int = 0):
        """The slices along ``dim``, each without that dim."""
        return tuple(piece.squeeze(dim) for piece in self.split(1, dim))

    def flip(self, *args, dims=None):
        """Reverse the order of the elements along each of ``dims`` (``x.flip(0)``, ``x.flip(dims=[0, 1])``)."""
        dims = {_dim(d, self.ndim) for d in (_sizes(args) if dims is None else _sizes((dims,)))}
        return self[tuple(slice(None, None, -1) if d in dims else slice(None) for d in range(self.ndim))]

    def narrow(self, dim: int, start: int, length: int):
        """Elements ``start`` to ``start + length`` along ``dim``."""
        dim = _dim(dim, self.ndim)
        start = start % self.shape[dim] if start < 0 else start
        return self[(slice(None),) * dim + (slice(start, start + length),)]

    def index_select(self, dim: int, index):
        """The entries at ``index`` (a 1-D integer tensor) along ``dim``."""
        return self[(slice(None),) * _dim(dim, self.ndim) + (_raw(index),)]

    def gather(self, dim: int, index):
        """``y[i][j] = x[index[i][j]][j]`` for ``dim=0`` (and so on): ``index`` has this tensor's number of dims
        and is no larger in any other dim; the result has index's shape. Repeated indices sum their gradients."""
        dim, given, index = _dim(dim, self.ndim), index, _raw(index)
        if index.ndim != self.ndim:
            raise ValueError(f"gather: index has {index.ndim} dims, expected {self.ndim}")
        if any(index.shape[d] > self.shape[d] for d in range(self.ndim) if d != dim):
            raise ValueError(f"gather: index of shape {index.shape} is larger than the input {self.shape} "
                             f"outside dim {dim}")
        x = self
        if any(index.shape[d] != self.shape[d] for d in range(self.ndim) if d != dim):
            x = self[tuple(slice(None) if d == dim else slice(0, index.shape[d]) for d in range(self.ndim))]
        return _reduce.TakeAlong.apply(x, given, axis=dim)  # the Tensor itself, so its version is checked

    def contiguous(self, memory_format=None):
        return self

    def __getitem__(self, key):
        return _shape.GetItem.apply(self, key=_shape.unwrap_index(key))

    def __setitem__(self, key, value):
        self._check_inplace("__setitem__", value)
        value = value.array if isinstance(value, Tensor) else value
        self.array[_shape.unwrap_index(key)] = value
        self._bump_version()


def _refuse_gradient(op: str, *xs) -> None:
    """Raise where an op minidl computes without a graph meets an input that requires grad: its result would
    silently carry no gradient."""
    if _is_grad_enabled() and any(isinstance(x, Tensor) and x.requires_grad for x in xs):
        raise RuntimeError(f"{op}: minidl has no gradient for it, and an input requires grad; compute it on "
                           "x.detach(), or from differentiable ops (x - (x / c).floor() * c for x % c)")


def _floor_divide(a, b):
    return get_array_module(a, b).floor_divide(a, b)


def _trunc_divide(a, b):
    xp = get_array_module(a, b)
    q = xp.floor_divide(a, b)
    return q + ((q < 0) & (q * b != a))  # floor rounds negative quotients down; trunc rounds them up


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


from . import random as _random  # noqa: E402
from .autograd import is_grad_enabled as _is_grad_enabled  # noqa: E402
from .autograd import run_backward, run_queued_callbacks  # noqa: E402
from .ops import activation as _activation  # noqa: E402
from .ops import elementwise as _ops  # noqa: E402
from .ops import matmul as _matmul  # noqa: E402
from .ops import reduce as _reduce  # noqa: E402
from .ops import shape as _shape  # noqa: E402
