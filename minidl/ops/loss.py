"""Losses: cross_entropy, nll_loss, mse_loss, binary_cross_entropy_with_logits, binary_cross_entropy, l1_loss,
smooth_l1_loss, huber_loss, kl_div.

Every loss takes PyTorch's ``reduction``: ``"none"`` keeps one loss per position, ``"sum"`` adds them,
``"mean"`` divides the sum by a count (by the total class weight of the targets for the class-index
losses, PyTorch's rule). In the backward pass each per-position loss receives ``g``: the upstream gradient
itself ('none', 'sum'), or divided by that count ('mean').

Class-index losses accept input (N, C) with target (N,), input (N, C, d1, ..., dK) with target
(N, d1, ..., dK) (e.g. segmentation) and an unbatched input (C,) with a 0-d target.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..autograd import Function, is_grad_enabled
from ..backend import get_array_module
from .checks import check_float, check_same_dtype
from .elementwise import sum_to

_REDUCTIONS = ("none", "mean", "sum")


# ----------------------------------------------------------------------------------------- math helpers
def _reduce(loss, reduction: str, count=None):
    """Apply ``reduction`` to per-position losses; 'mean' divides by ``count`` (default: their number)."""
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 is NaN, as in PyTorch (empty or all ignored)
        return total / (loss.size if count is None else count)


def _upstream(gy, reduction: str, count):
    """The gradient reaching each per-position loss: gy, or gy / count for 'mean'."""
    if reduction != "mean":
        return gy
    with np.errstate(invalid="ignore", divide="ignore"):
        return gy / count


def _flat_target_index(xp, t, C: int):
    """Flat positions of x[n, t[n, s], s] in a contiguous (N, C, S) array, for targets t of shape (N, *).

    Lets the forward read the target logit of every position, and the backward write there, with one
    gather/scatter on the flat array (no one-hot matrix, no axis move).
    """
    N = t.shape[0]
    S = t.size // N if N else 0
    rows = xp.arange(N).reshape(N, 1) * C
    return ((rows + t.reshape(N, S)) * S + xp.arange(S)).reshape(t.shape)


def _target_weights(xp, t, weight, ignore_index: int, dtype):
    """For class indices t: indices safe to gather with (ignored ones set to 0) and w[t] (0 where ignored)."""
    valid = t != ignore_index
    t_safe = xp.where(valid, t, 0)
    w_t = valid.astype(dtype) if weight is None else weight[t_safe] * valid
    return t_safe, w_t


# ----------------------------------------------------------------------------------------- functions
class CrossEntropy(Function):
    """Softmax cross-entropy with class-index targets, fused with log-softmax.

    Notation: x (N, C, *) logits, t (N, *) class indices, p = softmax of x over C, w (C,) class weights
    (1 when not given), e = label_smoothing; per position i: v_i = [t_i != ignore_index] and
    w_i = w[t_i] v_i. With -log p_ic = log sum_k exp(x_ik - m_i) - (x_ic - m_i), m_i = max_k x_ik (no
    exponential overflows, even for logits of 1e4):
        loss_i = (1 - e) w_i (-log p_i,t_i) + (e / C) v_i sum_c w_c (-log p_ic)
    'mean' divides sum_i loss_i by sum_i w_i (also when e > 0: PyTorch's rule).
    With g_i the gradient reaching loss_i and a_i = (1 - e) w_i + (e / C) v_i sum_c w_c:
        gx_ic = g_i (a_i p_ic - (1 - e) w_i [c = t_i] - (e / C) v_i w_c)
    which for e = 0 is the familiar g_i w_i (p_i - onehot(t_i)); it is computed from the saved p directly.
    """

    def forward(ctx, x, t, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        xp = get_array_module(x)
        C = x.shape[1]
        shifted = x - x.max(axis=1, keepdims=True)
        p = xp.exp(shifted)  # normalised into softmax(x) in place below, once the loss is computed
        sum_exp = p.sum(axis=1)
        log_sum = xp.log(sum_exp)
        t_safe, w_t = _target_weights(xp, t, weight, ignore_index, x.dtype)
        flat = _flat_target_index(xp, t_safe, C)
        loss = w_t * (log_sum - shifted.reshape(-1)[flat])
        if label_smoothing > 0:
            if weight is None:
                smooth = C * log_sum - shifted.sum(axis=1)
                w_sum = C
                w_c = 1
            else:
                w_c = weight.reshape((1, C) + (1,) * (x.ndim - 2))
                w_sum = weight.sum()
                smooth = w_sum * log_sum - (shifted * w_c).sum(axis=1)
            valid = t != ignore_index
            loss = (1 - label_smoothing) * loss + (label_smoothing / C) * (smooth * valid)
            ctx.valid, ctx.w_sum, ctx.w_c = valid, w_sum, w_c
        p /= xp.expand_dims(sum_exp, 1)
        ctx.count = w_t.sum() if reduction == "mean" else None
        ctx.save_for_backward(p, flat, w_t)
        ctx.reduction, ctx.label_smoothing = reduction, label_smoothing
        return _reduce(loss, reduction, ctx.count)

    def backward(ctx, gy):
        p, flat, w_t = ctx.saved
        xp = get_array_module(p)
        e, C = ctx.label_smoothing, p.shape[1]
        g = _upstream(gy, ctx.reduction, ctx.count)
        g_target = g * ((1 - e) * w_t)
        if e > 0:
            g_smooth = g * ((e / C) * ctx.valid)
            gx = p * xp.expand_dims(g_target + g_smooth * ctx.w_sum, 1)
            gx -= xp.expand_dims(g_smooth, 1) * ctx.w_c
        else:
            gx = p * xp.expand_dims(g_target, 1)
        gx.reshape(-1)[flat] -= g_target
        return gx, None


class SoftCrossEntropy(Function):
    """Softmax cross-entropy against class probabilities (PyTorch's floating-point target).

    Notation: x, q (N, C, *) logits and target probabilities, p = softmax of x over C, w (C,) class
    weights (1 when not given), e = label_smoothing:
        q'_ic = (1 - e) q_ic + e / C,   loss_i = -sum_c w_c q'_ic log p_ic
    'mean' divides sum_i loss_i by the number of positions N * prod(*) (the weights are not in the divisor).
    With g_i the gradient reaching loss_i:
        gx_ic = g_i (p_ic sum_k w_k q'_ik - w_c q'_ic)
        gq_ic = -(1 - e) g_i w_c log p_ic
        gw_c  = -sum_i g_i q'_ic log p_ic
    """

    def forward(ctx, x, q, weight=None, reduction="mean", label_smoothing=0.0):
        xp = get_array_module(x)
        C = x.shape[1]
        shifted = x - x.max(axis=1, keepdims=True)
        log_p = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        if label_smoothing > 0:
            q = (1 - label_smoothing) * q + label_smoothing / C
        w_c = None if weight is None else weight.reshape((1, C) + (1,) * (x.ndim - 2))
        wq = q if w_c is None else q * w_c
        loss = -(wq * log_p).sum(axis=1)
        ctx.count = loss.size
        ctx.save_for_backward(log_p, q, wq, w_c)
        ctx.reduction, ctx.label_smoothing = reduction, label_smoothing
        return _reduce(loss, reduction)

    def backward(ctx, gy):
        log_p, q, wq, w_c = ctx.saved
        xp = get_array_module(log_p)
        need_x, need_q, need_w = ctx.needs_input_grad
        g = _upstream(gy, ctx.reduction, ctx.count)
        if g.ndim:  # 'none': one gradient per position, broadcast over the class axis
            g = xp.expand_dims(g, 1)
        gx = gq = gw = None
        if need_x:
            gx = xp.exp(log_p) * (g * wq.sum(axis=1, keepdims=True))
            gx -= g * wq
        if need_q:
            gq = -(1 - ctx.label_smoothing) * (g * log_p if w_c is None else g * log_p * w_c)
        if need_w:
            axes = (0,) + tuple(range(2, log_p.ndim))
            gw = -(g * q * log_p).sum(axis=axes)
        return gx, gq, gw


class NLLLoss(Function):
    """Negative log-likelihood of log-probabilities x (N, C, *) at class indices t (N, *).

    With w_i = w[t_i] [t_i != ignore_index] (w = 1 when not given):
        loss_i = -w_i x_i,t_i;   'mean' divides sum_i loss_i by sum_i w_i.
        gx_ic = -g_i w_i [c = t_i]
    """

    def forward(ctx, x, t, weight=None, ignore_index=-100, reduction="mean"):
        xp = get_array_module(x)
        t_safe, w_t = _target_weights(xp, t, weight, ignore_index, x.dtype)
        flat = _flat_target_index(xp, t_safe, x.shape[1])
        loss = -w_t * x.reshape(-1)[flat]
        ctx.count = w_t.sum() if reduction == "mean" else None
        ctx.save_for_backward(flat, w_t)
        ctx.reduction, ctx.x_shape = reduction, x.shape
        return _reduce(loss, reduction, ctx.count)

    def backward(ctx, gy):
        flat, w_t = ctx.saved
        gx = get_array_module(w_t).zeros(ctx.x_shape, dtype=w_t.dtype)
        gx.reshape(-1)[flat] = -_upstream(gy, ctx.reduction, ctx.count) * w_t
        return gx, None


class MSELoss(Function):
    """Mean squared error with broadcasting, optionally weighted.

    Notation: d = x - t (broadcast), w a weight of x's shape broadcast like it (1 when not given):
        loss_i = w_i d_i^2;   'mean' divides sum_i loss_i by the number of elements, or by the sum of w
        (before broadcasting) when weighted (PyTorch's rule).
        gx = 2 g w d,  gt = -2 g w d,  gw = g d^2  (each summed back over the axes it was broadcast along)
        and for the weighted mean L the divisor adds -g L to every gw.
    """

    def forward(ctx, x, t, w=None, reduction="mean"):
        d = x - t
        loss = d * d
        if w is not None:
            count = w.sum() if reduction == "mean" else None
            weighted = loss * w
            y = _reduce(weighted, reduction, count)
        else:
            count = loss.size if reduction == "mean" else None
            y = _reduce(loss, reduction, count)
        ctx.save_for_backward(d, loss, w, y)
        ctx.count, ctx.reduction, ctx.x_shape, ctx.t_shape = count, reduction, x.shape, t.shape
        return y

    def backward(ctx, gy):
        d, loss, w, y = ctx.saved
        need_x, need_t, need_w = (ctx.needs_input_grad + (False,))[:3]
        g = _upstream(gy, ctx.reduction, ctx.count)
        gx = gt = gw = None
        if need_x or need_t:
            gd = 2 * g * d if w is None else 2 * g * w * d
            gx = sum_to(gd, ctx.x_shape) if need_x else None
            gt = sum_to(-gd, ctx.t_shape) if need_t else None
        if need_w:
            gw = sum_to(g * loss, w.shape)
            if ctx.reduction == "mean":
                gw = gw - g * y
        return gx, gt, gw


class BCEWithLogits(Function):
    """Binary cross-entropy on logits, in the overflow-free form.

    Notation: x logits, t targets in [0, 1], sp = softplus(-x) = log(1 + e^-x) = max(-x, 0) + log(1 + e^-|x|),
    sigma = sigmoid(x), w a weight and P a pos_weight broadcast to x's shape (1 when not given),
    l = 1 + (P - 1) t:
        loss = w ((1 - t) x + l sp)       (= -w (P t log sigma + (1 - t) log(1 - sigma)))
        gx = g w (l sigma - P t)
        gt = g w ((P - 1) sp - x)
    """

    def forward(ctx, x, t, weight=None, pos_weight=None, reduction="mean"):
        xp = get_array_module(x)
        e = xp.exp(-xp.abs(x))
        sp = xp.maximum(-x, 0) + xp.log1p(e)
        log_weight = None if pos_weight is None else 1 + (pos_weight - 1) * t
        loss = (1 - t) * x + (sp if log_weight is None else log_weight * sp)
        if weight is not None:
            loss *= weight
        ctx.save_for_backward(x, t, e, sp, log_weight, weight, pos_weight)
        ctx.reduction, ctx.count = reduction, loss.size
        return _reduce(loss, reduction)

    def backward(ctx, gy):
        x, t, e, sp, log_weight, weight, pos_weight = ctx.saved
        xp = get_array_module(x)
        need_x, need_t = ctx.needs_input_grad
        g = _upstream(gy, ctx.reduction, ctx.count)
        if weight is not None:
            g = g * weight
        gx = gt = None
        if need_x:
            sigma = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
            gx = g * (sigma - t if pos_weight is None else log_weight * sigma - pos_weight * t)
        if need_t:
            gt = g * (-x if pos_weight is None else (pos_weight - 1) * sp - x)
        return gx, gt


class BinaryCrossEntropy(Function):
    """Binary cross-entropy on probabilities (after a sigmoid), PyTorch's ``F.binary_cross_entropy``.

    Notation: x probabilities in [0, 1], t targets in [0, 1], w a weight broadcast to x's shape (1 when not
    given). Each log is clamped at -100 so x = 0 or 1 gives a large finite loss rather than inf (PyTorch's rule):
        loss = -w (t max(log x, -100) + (1 - t) max(log(1 - x), -100))
        gx = g w (x - t) / max(x (1 - x), 1e-12)
        gt = g w (max(log(1 - x), -100) - max(log x, -100))
    For logits, ``binary_cross_entropy_with_logits`` is the stabler choice: it never forms x at all.
    """

    def forward(ctx, x, t, weight=None, reduction="mean"):
        xp = get_array_module(x)
        with np.errstate(divide="ignore"):
            log_x = xp.maximum(xp.log(x), -100)
            log_1mx = xp.maximum(xp.log1p(-x), -100)
        loss = -(t * log_x + (1 - t) * log_1mx)
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(x, t, log_x, log_1mx, weight)
        ctx.reduction, ctx.count = reduction, loss.size
        return _reduce(loss.astype(x.dtype, copy=False), reduction)

    def backward(ctx, gy):
        x, t, log_x, log_1mx, weight = ctx.saved
        xp = get_array_module(x)
        need_x, need_t = ctx.needs_input_grad[:2]
        g = _upstream(gy, ctx.reduction, ctx.count)
        if weight is not None:
            g = g * weight
        gx = g * (x - t) / xp.maximum(x * (1 - x), 1e-12) if need_x else None
        gt = g * (log_1mx - log_x) if need_t else None
        return gx, gt


class L1Loss(Function):
    """Mean absolute error with broadcasting, optionally weighted.

    Notation: d = x - t (broadcast), w a weight of x's shape (1 when not given):
        loss_i = w_i |d_i|;   'mean' divides sum_i loss_i by the number of elements, or by sum(w) when
        weighted (PyTorch's rule, as for mse_loss).
        gx = g w sign(d),  gt = -g w sign(d)   (sign(0) = 0: the subgradient PyTorch picks at the kink)
    """

    def forward(ctx, x, t, weight=None, reduction="mean"):
        xp = get_array_module(x)
        d = x - t
        loss = xp.abs(d) if weight is None else xp.abs(d) * weight
        ctx.count = (loss.size if weight is None else weight.sum()) if reduction == "mean" else None
        ctx.save_for_backward(d, weight)
        ctx.reduction, ctx.x_shape, ctx.t_shape = reduction, x.shape, t.shape
        return _reduce(loss, reduction, ctx.count)

    def backward(ctx, gy):
        d, weight = ctx.saved
        need_x, need_t = ctx.needs_input_grad[:2]
        gd = _upstream(gy, ctx.reduction, ctx.count) * get_array_module(d).sign(d)
        if weight is not None:
            gd = gd * weight
        return (sum_to(gd, ctx.x_shape) if need_x else None), (sum_to(-gd, ctx.t_shape) if need_t else None)


class SmoothL1Loss(Function):
    """Smooth L1 and Huber losses: quadratic for small errors, linear (robust to outliers) for large ones.

    Notation: d = x - t (broadcast), z = |d|, k the threshold (``beta`` for smooth L1, ``delta`` for Huber):
        smooth L1:  loss = 0.5 d^2 / k      if z < k,  z - 0.5 k          otherwise;  gx = g d / k  or  g sign(d)
        Huber:      loss = 0.5 d^2          if z < k,  k (z - 0.5 k)      otherwise;  gx = g d      or  g k sign(d)
    so ``huber = k * smooth_l1``; both are continuous with a continuous slope at z = k. gt = -gx (summed back
    to t's shape). An optional weight w of x's shape multiplies each loss (Huber only, PyTorch's API; 'mean'
    still divides by the number of elements).
    """

    def forward(ctx, x, t, weight=None, k=1.0, huber=False, reduction="mean"):
        xp = get_array_module(x)
        d = x - t
        z = xp.abs(d)
        small = z < k
        if huber:
            loss = xp.where(small, 0.5 * d * d, k * (z - 0.5 * k))
        else:
            loss = xp.where(small, 0.5 * d * d / k, z - 0.5 * k)
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(d, small, weight)
        ctx.k, ctx.huber, ctx.reduction, ctx.count = k, huber, reduction, loss.size
        ctx.x_shape, ctx.t_shape = x.shape, t.shape
        return _reduce(loss.astype(x.dtype, copy=False), reduction)

    def backward(ctx, gy):
        d, small, weight = ctx.saved
        xp = get_array_module(d)
        need_x, need_t = ctx.needs_input_grad[:2]
        k = ctx.k
        slope = xp.where(small, d, k * xp.sign(d)) if ctx.huber else xp.where(small, d / k, xp.sign(d))
        gd = _upstream(gy, ctx.reduction, ctx.count) * slope
        if weight is not None:
            gd = gd * weight
        gd = gd.astype(d.dtype, copy=False)
        return (sum_to(gd, ctx.x_shape) if need_x else None), (sum_to(-gd, ctx.t_shape) if need_t else None)


class KLDiv(Function):
    """Kullback-Leibler divergence KL(t || p) with x = log p given (after log_softmax), PyTorch's ``F.kl_div``.

    Notation: x log-probabilities, t target probabilities (or log-probabilities lt with ``log_target``):
        loss = t (log t - x)            (0 where t = 0: the limit of t log t)
        gx = -g t,   gt = g (log t + 1 - x)
    with ``log_target``, t = e^lt:
        loss = e^lt (lt - x),   gx = -g e^lt,   gt = g e^lt (lt - x + 1)
    'batchmean' divides the sum by the batch size N (the true KL per sample), 'mean' by the number of elements.
    """

    def forward(ctx, x, t, reduction="mean", log_target=False):
        xp = get_array_module(x)
        if log_target:
            p_t = xp.exp(t)
            loss = p_t * (t - x)
        else:
            p_t = t
            with np.errstate(divide="ignore", invalid="ignore"):
                log_t = xp.log(t)
            loss = xp.where(t > 0, t * (log_t - x), 0).astype(x.dtype, copy=False)
            ctx.log_t = log_t
        ctx.save_for_backward(x, t, p_t)
        ctx.log_target, ctx.x_shape, ctx.t_shape = log_target, x.shape, t.shape
        if reduction == "batchmean":  # a mean whose divisor is the batch size
            reduction, ctx.count = "mean", (x.shape[0] if x.ndim else 1)
        else:
            ctx.count = loss.size
        ctx.reduction = reduction
        return _reduce(loss, reduction, ctx.count)

    def backward(ctx, gy):
        x, t, p_t = ctx.saved
        xp = get_array_module(x)
        need_x, need_t = ctx.needs_input_grad[:2]
        g = _upstream(gy, ctx.reduction, ctx.count)
        gx = gt = None
        if need_x:
            gx = sum_to(-g * p_t, ctx.x_shape)
        if need_t:
            if ctx.log_target:
                gt = g * p_t * (t - x + 1)
            else:
                with np.errstate(invalid="ignore"):
                    gt = g * (ctx.log_t + 1 - x)
            gt = sum_to(xp.asarray(gt, dtype=x.dtype), ctx.t_shape)
        return gx, gt


# ----------------------------------------------------------------------------------------- public API
# Argument checks first, then the functions, each of which checks its arguments and calls its Function.
def _reduction(op: str, reduction: str, size_average, reduce) -> str:
    """Check ``reduction``; translate PyTorch's deprecated ``size_average``/``reduce`` flags like PyTorch."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = ("mean" if size_average else "sum") if reduce else "none"
        warnings.warn(f"{op}: size_average and reduce args will be deprecated, please use "
                      f"reduction='{reduction}' instead.", stacklevel=3)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: {reduction!r} is not a valid value for reduction; expected 'none', 'mean' or "
                         f"'sum'")
    return reduction


def _check_class_target(op: str, input, target, weight, ignore_index: int) -> None:
    """Class-index target checks: integer dtype, shape (N, *) for input (N, C, *), values in [0, C)."""
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected a target of class indices with an integer dtype (int64), got dtype "
                        f"{target.dtype} (target of shape {tuple(target.shape)}, input of shape "
                        f"{tuple(input.shape)})")
    C = input.shape[0] if input.ndim == 1 else input.shape[1]
    expected = () if input.ndim == 1 else (input.shape[0],) + tuple(input.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"{op}: expected target of shape {expected} for input of shape {tuple(input.shape)}, "
                         f"got target of shape {tuple(target.shape)}")
    if weight is not None and tuple(weight.shape) != (C,):
        raise ValueError(f"{op}: weight should be defined for all {C} classes, got weight of shape "
                         f"{tuple(weight.shape)} for input of shape {tuple(input.shape)}")
    if target.device != input.device:
        raise RuntimeError(f"{op}: target is on {target.device} but input is on {input.device}")
    t = target.array
    bad = (t != ignore_index) & ((t < 0) | (t >= C))
    if bad.any():
        value = int(t[bad].reshape(-1)[0])
        raise IndexError(f"{op}: target {value} is out of bounds: expected class indices in [0, {C - 1}] (input "
                         f"of shape {tuple(input.shape)}) or ignore_index={ignore_index}")


def _no_grad_argument(op: str, name: str, t) -> None:
    if t is not None and t.requires_grad and is_grad_enabled():
        raise RuntimeError(f"{op}: {name} is not differentiable (as in PyTorch); it cannot have "
                           f"requires_grad=True (pass {name}.detach())")


def _batched(input, target):
    """An unbatched (C,) input becomes (1, C) and its target gains the batch axis too."""
    return input.reshape(1, *input.shape), target.reshape(1, *target.shape)


def cross_entropy(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0, *, size_average=None, reduce=None):
    """Cross-entropy between logits and targets, PyTorch's ``F.cross_entropy`` (log-softmax + NLL, fused).

    Two kinds of target:

    * class indices (integer dtype): shape (N,) for input (N, C), (N, d1, ..., dK) for input
      (N, C, d1, ..., dK) (segmentation), () for an unbatched input (C,). A target equal to
      ``ignore_index`` contributes nothing. With ``reduction="mean"`` the sum is divided by the total weight
      ``sum_i weight[target_i]`` of the targets that are not ignored.
    * class probabilities (floating point, the input's shape): ``loss_i = -sum_c weight_c q_ic log p_ic``;
      ``"mean"`` divides by the number of positions N * d1 * ... * dK.

    ``label_smoothing = e`` mixes the target with the uniform distribution: ``(1 - e) * target + e / C``.

    Args:
        input: logits (N, C), (N, C, d1, ..., dK) or (C,).
        target: class indices or class probabilities, see above.
        weight: (C,) weight per class, or None.
        ignore_index: a class-index target value to skip (class-index targets only).
        reduction: ``"none"`` (one loss per position), ``"mean"`` or ``"sum"``.
        label_smoothing: e in [0, 1].
        size_average: deprecated PyTorch flag, translated to ``reduction`` with a warning.
        reduce: deprecated PyTorch flag, translated to ``reduction`` with a warning.

    Returns:
        A 0-d tensor, or with ``reduction="none"`` one loss per position (the target's shape for class
        indices; the input's shape without the class axis for probabilities).

    Raises:
        IndexError: a class index outside [0, C) that is not ``ignore_index``.
        ValueError: a target or weight shape that does not fit the input, a bad ``reduction`` or
            ``label_smoothing``.
        TypeError: a target whose dtype is neither integer (indices) nor the input's float dtype
            (probabilities of the input's shape).

    >>> import minidl as mdl
    >>> x = mdl.tensor([[2.0, 0.0, 0.0]])
    >>> round(cross_entropy(x, mdl.tensor([0])).item(), 4)
    0.2395
    """
    op = "cross_entropy"
    reduction = _reduction(op, reduction, size_average, reduce)
    if input.ndim == 0:
        raise ValueError(f"{op}: expected input of shape (N, C, *) or (C,), got a 0-d input")
    check_float(op, "input", input)
    check_same_dtype(op, input=input, weight=weight)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    unbatched = input.ndim == 1
    if target.dtype.kind == "f":
        if tuple(target.shape) != tuple(input.shape):
            raise ValueError(f"{op}: a floating-point target holds class probabilities and must have the "
                             f"input's shape {tuple(input.shape)}, got target of shape {tuple(target.shape)} "
                             f"(class indices need an integer dtype)")
        check_same_dtype(op, input=input, target=target)
        if ignore_index >= 0:
            raise ValueError(f"{op}: ignore_index is not supported for floating-point (class probability) "
                             f"targets, got ignore_index={ignore_index}")
        C = input.shape[-1] if unbatched else input.shape[1]
        if weight is not None and tuple(weight.shape) != (C,):
            raise ValueError(f"{op}: weight should be defined for all {C} classes, got weight of shape "
                             f"{tuple(weight.shape)} for input of shape {tuple(input.shape)}")
        x, q = _batched(input, target) if unbatched else (input, target)
        loss = SoftCrossEntropy.apply(x, q, weight, reduction=reduction, label_smoothing=label_smoothing)
    else:
        _check_class_target(op, input, target, weight, ignore_index)
        _no_grad_argument(op, "weight", weight)
        x, t = _batched(input, target) if unbatched else (input, target)
        loss = CrossEntropy.apply(x, t, weight=None if weight is None else weight.array, ignore_index=ignore_index,
                                  reduction=reduction, label_smoothing=label_smoothing)
    return loss.reshape(()) if unbatched and reduction == "none" else loss


def nll_loss(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean", *,
             size_average=None, reduce=None):
    """Negative log-likelihood of log-probabilities at class indices, PyTorch's ``F.nll_loss``.

    ``loss_i = -weight[target_i] * input[i, target_i]``; usually ``input = log_softmax(logits, dim=1)``.

    Args:
        input: log-probabilities (N, C), (N, C, d1, ..., dK) or (C,).
        target: class indices (integer dtype) of shape (N,), (N, d1, ..., dK) or ().
        weight: (C,) weight per class, or None.
        ignore_index: a target value that contributes nothing (and is left out of the mean's divisor).
        reduction: ``"none"``, ``"mean"`` (sum divided by ``sum_i weight[target_i]`` over kept targets)
            or ``"sum"``.
        size_average: deprecated PyTorch flag, translated to ``reduction`` with a warning.
        reduce: deprecated PyTorch flag, translated to ``reduction`` with a warning.

    Returns:
        A 0-d tensor, or the target's shape for ``reduction="none"``.

    Raises:
        IndexError: a class index outside [0, C) that is not ``ignore_index``.
        ValueError, TypeError: a target of the wrong shape or dtype, a weight of the wrong shape.
    """
    op = "nll_loss"
    reduction = _reduction(op, reduction, size_average, reduce)
    if input.ndim == 0:
        raise ValueError(f"{op}: expected input of shape (N, C, *) or (C,), got a 0-d input")
    check_float(op, "input", input)
    check_same_dtype(op, input=input, weight=weight)
    _check_class_target(op, input, target, weight, ignore_index)
    _no_grad_argument(op, "weight", weight)
    unbatched = input.ndim == 1
    x, t = _batched(input, target) if unbatched else (input, target)
    loss = NLLLoss.apply(x, t, weight=None if weight is None else weight.array, ignore_index=ignore_index,
                         reduction=reduction)
    return loss.reshape(()) if unbatched and reduction == "none" else loss


def mse_loss(input, target, reduction: str = "mean", weight=None, *, size_average=None, reduce=None):
    """Mean squared error ``(input - target)^2``, PyTorch's ``F.mse_loss``.

    ``input`` and ``target`` are broadcast against each other (with a warning when their shapes differ,
    as in PyTorch); gradients flow to both.

    Args:
        input: any shape.
        target: broadcastable with ``input``, same dtype.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        weight: None, or a weight of the input's shape multiplying each squared error; ``"mean"`` then
            divides by ``weight.sum()``.
        size_average: deprecated PyTorch flag, translated to ``reduction`` with a warning.
        reduce: deprecated PyTorch flag, translated to ``reduction`` with a warning.

    Returns:
        A 0-d tensor, or the broadcast shape for ``reduction="none"``.
    """
    op = "mse_loss"
    reduction = _reduction(op, reduction, size_average, reduce)
    check_float(op, "input", input)
    check_same_dtype(op, input=input, target=target, weight=weight)
    _broadcast_target(op, input, target)
    if weight is None:
        return MSELoss.apply(input, target, reduction=reduction)
    if tuple(weight.shape) != tuple(input.shape):
        raise ValueError(f"{op}: weight must have the input's shape {tuple(input.shape)}, got weight of shape "
                         f"{tuple(weight.shape)}")
    return MSELoss.apply(input, target, weight, reduction=reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction: str = "mean", pos_weight=None, *,
                                     size_average=None, reduce=None):
    """Sigmoid + binary cross-entropy in one stable step, PyTorch's ``F.binary_cross_entropy_with_logits``.

    ``loss = -weight * (pos_weight * t * log(sigmoid(x)) + (1 - t) * log(1 - sigmoid(x)))``, computed as
    ``weight * ((1 - t) * x + (1 + (pos_weight - 1) * t) * softplus(-x))`` so no exponential overflows.

    Args:
        input: logits, any shape.
        target: targets in [0, 1] of the input's shape and dtype (gradients flow to it too).
        weight: None, or a rescaling weight broadcastable to the input's shape (no gradient).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        pos_weight: None, or a weight of the positive term broadcastable to the input's shape, usually
            (C,) for the last (class) axis (no gradient).
        size_average: deprecated PyTorch flag, translated to ``reduction`` with a warning.
        reduce: deprecated PyTorch flag, translated to ``reduction`` with a warning.

    Returns:
        A 0-d tensor, or the input's shape for ``reduction="none"``.
    """
    op = "binary_cross_entropy_with_logits"
    reduction = _reduction(op, reduction, size_average, reduce)
    check_float(op, "input", input)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{op}: target size {tuple(target.shape)} must be the same as input size "
                         f"{tuple(input.shape)}")
    check_same_dtype(op, input=input, target=target, weight=weight, pos_weight=pos_weight)
    for name, t in (("weight", weight), ("pos_weight", pos_weight)):
        if t is None:
            continue
        _no_grad_argument(op, name, t)
        try:
            ok = np.broadcast_shapes(tuple(t.shape), tuple(input.shape)) == tuple(input.shape)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{op}: {name} of shape {tuple(t.shape)} cannot be broadcast to the input's shape "
                             f"{tuple(input.shape)}")
    return BCEWithLogits.apply(input, target, weight=None if weight is None else weight.array,
                               pos_weight=None if pos_weight is None else pos_weight.array, reduction=reduction)


def _broadcast_target(op: str, input, target) -> None:
    """PyTorch's rule for the regression losses: a target of another shape is broadcast, with a warning."""
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(f"{op}: Using a target size {tuple(target.shape)} that is different to the input size "
                      f"{tuple(input.shape)}. This will likely lead to incorrect results due to broadcasting. "
                      f"Please ensure they have the same size.", stacklevel=3)
        try:
            np.broadcast_shapes(tuple(input.shape), tuple(target.shape))
        except ValueError:
            raise ValueError(f"{op}: input of shape {tuple(input.shape)} and target of shape "
                             f"{tuple(target.shape)} cannot be broadcast together") from None


def _loss_weight(op: str, weight, input):
    """A constant elementwise weight of the input's shape, as a raw array (or None)."""
    if weight is None:
        return None
    _no_grad_argument(op, "weight", weight)
    if tuple(weight.shape) != tuple(input.shape):
        raise ValueError(f"{op}: weight must have the input's shape {tuple(input.shape)}, got weight of shape "
                         f"{tuple(weight.shape)}")
    return weight.array


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
    """Binary cross-entropy between probabilities and targets, PyTorch's ``F.binary_cross_entropy``.

    ``loss = -weight * (t * log(x) + (1 - t) * log(1 - x))``, each log clamped at -100. Use it after a
    sigmoid (``nn.Sigmoid`` then ``nn.BCELoss``); on logits, ``binary_cross_entropy_with_logits`` is stabler.

    Args:
        input: probabilities in [0, 1], any shape.
        target: targets in [0, 1], the input's shape and dtype (gradients flow to it too).
        weight: None, or a rescaling weight broadcastable to the input's shape (no gradient).
        size_average: deprecated PyTorch flag, translated to ``reduction`` with a warning.
        reduce: deprecated PyTorch flag, translated to ``reduction`` with a warning.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        A 0-d tensor, or the input's shape for ``reduction="none"``.

    Raises:
        ValueError: a target of another shape, or an input outside [0, 1].

    >>> import minidl as mdl
    >>> round(binary_cross_entropy(mdl.tensor([0.8]), mdl.tensor([1.0])).item(), 4)
    0.2231
    """
    op = "binary_cross_entropy"
    reduction = _reduction(op, reduction, size_average, reduce)
    check_float(op, "input", input)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{op}: Using a target size ({tuple(target.shape)}) that is different to the input size "
                         f"({tuple(input.shape)}) is deprecated. Please ensure they have the same size.")
    check_same_dtype(op, input=input, target=target, weight=weight)
    x = input.array
    if x.size and not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError(f"{op}: all elements of input should be between 0 and 1 (probabilities; for logits use "
                         f"binary_cross_entropy_with_logits)")
    w = None
    if weight is not None:
        _no_grad_argument(op, "weight", weight)
        try:
            np.broadcast_shapes(tuple(weight.shape), tuple(input.shape))
        except ValueError:
            raise ValueError(f"{op}: weight of shape {tuple(weight.shape)} cannot be broadcast to the input's "
                             f"shape {tuple(input.shape)}") from None
        w = weight.array
    return BinaryCrossEntropy.apply(input, target, weight=w, reduction=reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None):
    """Mean absolute error ``|input - target|``, PyTorch's ``F.l1_loss``.

    Args:
        input: any shape.
        target: broadcastable with ``input`` (with a warning when the shapes differ), same dtype.
        size_average: deprecated PyTorch flag, translated to ``reduction`` with a warning.
        reduce: deprecated PyTorch flag, translated to ``reduction`` with a warning.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        weight: None, or a weight of the input's shape multiplying each error (no gradient); ``"mean"`` then
            divides by ``weight.sum()``.

    Returns:
        A 0-d tensor, or the broadcast shape for ``reduction="none"``.
    """
    op = "l1_loss"
    reduction = _reduction(op, reduction, size_average, reduce)
    check_float(op, "input", input)
    check_same_dtype(op, input=input, target=target, weight=weight)
    _broadcast_target(op, input, target)
    return L1Loss.apply(input, target, weight=_loss_weight(op, weight, input), reduction=reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
    """Smooth L1 loss: ``0.5 d^2 / beta`` where ``|d| < beta``, ``|d| - 0.5 beta`` elsewhere (d = input - target).

    Args:
        input: any shape.
        target: broadcastable with ``input`` (with a warning when the shapes differ), same dtype.
        size_average: deprecated PyTorch flag, translated to ``reduction`` with a warning.
        reduce: deprecated PyTorch flag, translated to ``reduction`` with a warning.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        beta: where the loss turns from quadratic to linear, >= 0; 0 gives ``l1_loss``.

    Returns:
        A 0-d tensor, or the broadcast shape for ``reduction="none"``.
    """
    op = "smooth_l1_loss"
    reduction = _reduction(op, reduction, size_average, reduce)
    if beta < 0:
        raise ValueError(f"{op}: does not support negative values for beta, got beta={beta}")
    check_float(op, "input", input)
    check_same_dtype(op, input=input, target=target)
    _broadcast_target(op, input, target)
    if beta == 0:
        return L1Loss.apply(input, target, reduction=reduction)
    return SmoothL1Loss.apply(input, target, k=float(beta), huber=False, reduction=reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None):
    """Huber loss: ``0.5 d^2`` where ``|d| < delta``, ``delta (|d| - 0.5 delta)`` elsewhere (d = input - target).

    Args:
        input: any shape.
        target: broadcastable with ``input`` (with a warning when the shapes differ), same dtype.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        delta: where the loss turns from quadratic to linear, > 0.
        weight: None, or a weight of the input's shape multiplying each loss (no gradient); ``"mean"`` still
            divides by the number of elements (PyTorch's rule).

    Returns:
        A 0-d tensor, or the broadcast shape for ``reduction="none"``.
    """
    op = "huber_loss"
    reduction = _reduction(op, reduction, None, None)
    if not delta > 0:
        raise ValueError(f"{op}: does not support non-positive values for delta, got delta={delta}")
    check_float(op, "input", input)
    check_same_dtype(op, input=input, target=target, weight=weight)
    _broadcast_target(op, input, target)
    return SmoothL1Loss.apply(input, target, weight=_loss_weight(op, weight, input), k=float(delta), huber=True,
                              reduction=reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
    """Kullback-Leibler divergence ``sum t (log t - input)`` with ``input`` log-probabilities, PyTorch's ``F.kl_div``.

    Args:
        input: log-probabilities (e.g. ``log_softmax(logits, dim=1)``), any shape.
        target: probabilities of the input's shape (or log-probabilities with ``log_target=True``).
        size_average: deprecated PyTorch flag, translated to ``reduction`` with a warning.
        reduce: deprecated PyTorch flag, translated to ``reduction`` with a warning.
        reduction: ``"batchmean"`` (the sum over all elements divided by the batch size: the mathematical KL
            per sample, the one to use), ``"mean"`` (divided by the number of elements, with PyTorch's
            warning), ``"sum"`` or ``"none"``.
        log_target: the target is given as log-probabilities.

    Returns:
        A 0-d tensor, or the broadcast shape for ``reduction="none"``.
    """
    op = "kl_div"
    if reduction != "batchmean":
        reduction = _reduction(op, reduction, size_average, reduce)
    if reduction == "mean":
        warnings.warn(f"{op}: reduction: 'mean' divides the total loss by both the batch size and the support "
                      "size. 'batchmean' divides only by the batch size, and aligns with the KL div math "
                      "definition. 'mean' will be changed to behave the same as 'batchmean' in the next major "
                      "release.", stacklevel=2)
    check_float(op, "input", input)
    check_same_dtype(op, input=input, target=target)
    _broadcast_target(op, input, target)
    return KLDiv.apply(input, target, reduction=reduction, log_target=bool(log_target))
