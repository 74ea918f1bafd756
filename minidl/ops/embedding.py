"""Index to vector: ``one_hot`` and ``embedding``.

The two are one idea seen twice. ``one_hot(i, C)`` is row i of the C x C identity, and multiplying it by a
weight matrix W (C, D) picks row i of W:

    one_hot(i, C) @ W == W[i] == embedding(i, W)

An embedding layer is therefore a linear layer on one-hot inputs, computed by indexing instead of by a
matrix product that would be almost all zeros. Its gradient follows the same way: only the rows that were
looked up receive gradient, ``gW[i] += gy`` for every position that looked up row i.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from .checks import check_float
from .reduce import scatter_add


class Embedding(Function):
    """y = W[idx]: row idx[...] of the table W for every index.

    Notation: idx (*) integer indices into the V rows, W (V, D), y (*, D).
    Backward (a scatter-add: a row looked up k times gets the sum of its k upstream gradients):
        gW = zeros (V, D);  gW[idx[p]] += gy[p] for every position p
        gW[padding_idx] = 0                      (the padding row is never trained)
        with scale_grad_by_freq each row's sum is divided by how many times it was looked up.
    idx gets no gradient (it is discrete).
    """

    def forward(ctx, W, idx, padding_idx=None, scale_grad_by_freq=False):
        ctx.save_for_backward(idx)
        ctx.W_shape, ctx.padding_idx, ctx.scale_grad_by_freq = W.shape, padding_idx, scale_grad_by_freq
        return W[idx]

    def backward(ctx, gy):
        idx, = ctx.saved
        xp = get_array_module(gy)
        V, D = ctx.W_shape
        flat = idx.reshape(-1)
        rows = gy.reshape(-1, D)
        if ctx.scale_grad_by_freq:
            counts = xp.bincount(flat, minlength=V)
            rows = rows / counts[flat].astype(gy.dtype).reshape(-1, 1)
        gW = xp.zeros((V, D), dtype=gy.dtype)
        scatter_add(gW, flat, rows)
        if ctx.padding_idx is not None:
            gW[ctx.padding_idx] = 0
        return gW, None


def _embedding_renorm_(weight, idx, max_norm: float, norm_type: float) -> None:
    """Scale, in place, each looked-up row of ``weight`` whose ``norm_type``-norm exceeds ``max_norm`` down
    to ``max_norm`` (PyTorch's ``embedding_renorm_``; the 1e-7 keeps the scaled norm just under it)."""
    xp = get_array_module(weight.array)
    rows = xp.unique(idx.reshape(-1))
    norms = xp.linalg.norm(weight.array[rows], ord=norm_type, axis=1)
    big = norms > max_norm
    if bool(big.any()):
        scale = (max_norm / (norms[big] + 1e-7)).astype(weight.dtype)
        weight.array[rows[big]] *= scale[:, None]
        weight._bump_version()


def embedding(input, weight, padding_idx: int | None = None, max_norm: float | None = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False):
    """Look up rows of ``weight``: ``weight[input]``, PyTorch's ``F.embedding``.

    Args:
        input: integer indices of any shape, each in [0, V).
        weight: the table (V, D).
        padding_idx: a row that receives no gradient (its entries stay as they are, usually zeros).
        max_norm: rescale, in place, every looked-up row whose norm exceeds it to norm ``max_norm``.
        norm_type: p of the p-norm used with ``max_norm``.
        scale_grad_by_freq: divide each row's gradient by how often it occurs in ``input``.
        sparse: sparse gradients; not supported (only False).

    Returns:
        A tensor of shape ``input.shape + (D,)``.

    >>> import minidl as mdl
    >>> W = mdl.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]])
    >>> embedding(mdl.tensor([[2, 1]]), W).tolist()
    [[[3.0, 4.0], [1.0, 2.0]]]
    """
    op = "embedding"
    if sparse:
        raise NotImplementedError(f"{op}: sparse=True (sparse gradients) is not supported; use sparse=False")
    if input.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected input of integer indices (int64), got dtype {input.dtype}; use .long()")
    if weight.ndim != 2:
        raise ValueError(f"{op}: expected a 2-D weight (num_embeddings, embedding_dim), got shape "
                         f"{tuple(weight.shape)}")
    check_float(op, "weight", weight)
    V = weight.shape[0]
    padding_idx = _padding_index(op, padding_idx, V)
    idx = input.array
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= V):
        bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
        raise IndexError(f"{op}: index {bad} is out of range for a weight of {V} rows (indices must be in "
                         f"[0, {V - 1}])")
    if input.device != weight.device:
        raise RuntimeError(f"{op}: input is on {input.device} but weight is on {weight.device}")
    if max_norm is not None:
        _embedding_renorm_(weight, idx, float(max_norm), float(norm_type))
    # input itself, not its array, so that an in-place change of the indices before backward is caught.
    return Embedding.apply(weight, input, padding_idx=padding_idx, scale_grad_by_freq=bool(scale_grad_by_freq))


def _padding_index(op: str, padding_idx: int | None, V: int) -> int | None:
    """``padding_idx`` checked against V rows; a negative one counts from the end, as in PyTorch."""
    if padding_idx is None:
        return None
    if not -V <= padding_idx < V:
        raise ValueError(f"{op}: padding_idx must be within num_embeddings ({V}), got {padding_idx}")
    return padding_idx % V


def one_hot(tensor, num_classes: int = -1):
    """One-hot encode integer class labels, PyTorch's ``F.one_hot``.

    ``one_hot(t, C)[..., c] = 1 if t[...] == c else 0``: shape ``t.shape + (C,)``, dtype int64 (call
    ``.float()`` to use it in a loss).

    Args:
        tensor: non-negative integer labels of any shape.
        num_classes: C; -1 (the default) means ``tensor.max() + 1``.

    Returns:
        An int64 tensor of shape ``tensor.shape + (C,)``.

    Raises:
        TypeError: the labels are not integers.
        ValueError: a negative label or one >= num_classes, or num_classes=-1 with an empty tensor.

    >>> import minidl as mdl
    >>> one_hot(mdl.tensor([0, 2]), 3).tolist()
    [[1, 0, 0], [0, 0, 1]]
    """
    from ..tensor import Tensor
    op = "one_hot"
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a minidl Tensor of class indices, got {type(tensor).__name__}")
    if tensor.dtype.kind not in "iu":
        raise TypeError(f"{op}: is only applicable to index tensors of an integer dtype (int64), got dtype "
                        f"{tensor.dtype}; use .long()")
    t = tensor.array
    xp = get_array_module(t)
    if num_classes == -1:
        if t.size == 0:
            raise ValueError(f"{op}: can not infer the total number of classes from an empty tensor; pass "
                             "num_classes")
        num_classes = int(t.max()) + 1
    if t.size and int(t.min()) < 0:
        raise ValueError(f"{op}: class values must be non-negative, got {int(t.min())}")
    if t.size and int(t.max()) >= num_classes:
        raise ValueError(f"{op}: class values must be smaller than num_classes={num_classes}, got {int(t.max())}")
    out = (t[..., None] == xp.arange(num_classes)).astype(np.int64)
    return Tensor(out)
