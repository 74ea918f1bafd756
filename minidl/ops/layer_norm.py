"""Layer normalisation: ``layer_norm`` and its Function, ``LayerNorm``.

Batch normalisation takes statistics per channel across the batch; layer normalisation takes them per
sample across its last dims (the features), so it behaves the same at any batch size, in training and in
evaluation, with nothing to keep running: the normalisation of transformers.
"""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module
from .checks import check_float, check_same_dtype


class LayerNorm(Function):
    """y = W * xhat + b, xhat each sample normalised over its last dims.

    Notation: x (*, S) with S the normalised shape (the last dims) holding M values per row; W, b of shape S
    (1 and 0 when not given); statistics and sums over those M values of each row:
        mu = mean(x),  var = mean((x - mu)^2)  (biased),  s = 1 / sqrt(var + eps)
        xhat = (x - mu) s,  y = W xhat + b
    Backward, with gxhat = gy W:
        gb = sum over the rows of gy,  gW = sum over the rows of gy xhat
        gx = s (gxhat - mean(gxhat) - xhat mean(gxhat xhat))
    (the same two mean terms as batch norm's, here along a row instead of along a channel).
    """

    def forward(ctx, x, W=None, b=None, *, normalized_ndim, eps):
        xp = get_array_module(x)
        M = 1
        for n in x.shape[x.ndim - normalized_ndim:]:
            M *= n
        rows = x.reshape(-1, M)
        mu = rows.mean(axis=1, keepdims=True)
        centered = rows - mu
        s = 1 / xp.sqrt((centered * centered).mean(axis=1, keepdims=True) + eps)
        xhat = centered * s
        y = xhat if W is None else xhat * W.reshape(1, M)
        if b is not None:
            y = y + b.reshape(1, M)
        ctx.save_for_backward(xhat, s, W)
        ctx.x_shape, ctx.param_shape = x.shape, x.shape[x.ndim - normalized_ndim:]
        return y.reshape(x.shape).astype(x.dtype, copy=False)

    def backward(ctx, gy):
        xhat, s, W = ctx.saved
        need_x, need_W, need_b = ctx.needs_input_grad
        M = xhat.shape[1]
        g = gy.reshape(-1, M)
        gW = (g * xhat).sum(axis=0).reshape(ctx.param_shape) if need_W else None
        gb = g.sum(axis=0).reshape(ctx.param_shape) if need_b else None
        gx = None
        if need_x:
            gxhat = g if W is None else g * W.reshape(1, M)
            gx = s * (gxhat - gxhat.mean(axis=1, keepdims=True) - xhat * (gxhat * xhat).mean(axis=1, keepdims=True))
            gx = gx.reshape(ctx.x_shape)
        return gx, gW, gb


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Layer normalisation over the last dims, PyTorch's ``F.layer_norm``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, the mean and (biased) variance taken over the last
    ``len(normalized_shape)`` dims of each sample.

    Args:
        input: (*, S) with S = ``normalized_shape``.
        normalized_shape: an int or a tuple: the trailing shape to normalise over.
        weight: None, or a scale of shape ``normalized_shape``.
        bias: None, or a shift of shape ``normalized_shape``.
        eps: added to the variance before the square root.

    Returns:
        A tensor shaped like ``input``.

    >>> import minidl as mdl
    >>> [round(v, 3) for v in layer_norm(mdl.tensor([[1.0, 2.0, 3.0]]), (3,)).tolist()[0]]
    [-1.225, 0.0, 1.225]
    """
    op = "layer_norm"
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(int(n) for n in normalized_shape)
    check_float(op, "input", input)
    check_same_dtype(op, input=input, weight=weight, bias=bias)
    if not shape or tuple(input.shape[input.ndim - len(shape):]) != shape or input.ndim < len(shape):
        raise ValueError(f"{op}: expected input with shape [*, {', '.join(map(str, shape))}], got input of "
                         f"shape {tuple(input.shape)} (normalized_shape={shape})")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"{op}: expected {name} of shape {shape} (normalized_shape), got {tuple(t.shape)}")
    return LayerNorm.apply(input, weight, bias, normalized_ndim=len(shape), eps=eps)
