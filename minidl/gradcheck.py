"""Finite-difference gradient checking, the main test tool of minidl and a teaching tool.

For ``y = fn(*inputs)`` and a random upstream gradient ``gy`` (never all ones: a plain ``.sum()`` hides
transposition bugs), the analytic gradient of ``L = sum(y * gy)`` from ``backward()`` is compared, element
by element, with the central difference

    dL/dx[i] ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

in float64. An element passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.
"""
from __future__ import annotations

import numpy as np

from .autograd import no_grad
from .backend import get_array_module, to_numpy
from .tensor import Tensor

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """The analytic and numeric gradients disagree; the message names the worst element."""


def _outputs(fn, inputs):
    y = fn(*inputs)
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


def _weighted_sum(ys, gys) -> float:
    return float(sum((to_numpy(y.array).astype(np.float64) * g).sum() for y, g in zip(ys, gys) if g is not None))


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, seed: int = 0) -> bool:
    """Check the gradients of ``fn`` at ``inputs`` against central finite differences.

    Args:
        fn: a function of Tensors returning a Tensor or a tuple of Tensors.
        inputs: a Tensor or a sequence of them (and other arguments, passed through). Every Tensor
            with ``requires_grad`` is checked; these must be float64.
        eps: the finite-difference step.
        atol, rtol: the tolerance, ``|analytic - numeric| <= atol + rtol * |numeric|``.
        raise_exception: raise :class:`GradcheckError` on failure (else return False).
        seed: seed of the random upstream gradient.

    Returns:
        True when every element of every checked input agrees.

    >>> import minidl as mdl
    >>> x = mdl.randn(3, 4, dtype=mdl.float64, requires_grad=True)
    >>> mdl.gradcheck(lambda t: (t * t).sum(axis=1), [x])
    True
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    checked = [(i, t) for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for i, t in checked:
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {t.dtype}; finite differences need float64")

    rng = np.random.default_rng(seed)
    ys = _outputs(fn, inputs)
    gys = [rng.standard_normal(y.shape) if y.requires_grad else None for y in ys]
    if all(g is None for g in gys):
        raise ValueError("gradcheck: no output of fn requires grad")
    for _, t in checked:
        t.grad = None
    total = None
    for y, g in zip(ys, gys):
        if g is not None:
            term = (y * Tensor(get_array_module(y.array).asarray(g, dtype=y.dtype))).sum()
            total = term if total is None else total + term
    total.backward()

    worst = (-np.inf, None)
    with no_grad():
        for i, t in checked:
            analytic = np.zeros(t.shape) if t.grad is None else to_numpy(t.grad.array)
            numeric = np.zeros(t.shape)
            flat = t.array.reshape(-1)  # a view: perturbing it perturbs the input
            for k in range(flat.size):
                orig = float(flat[k])
                flat[k] = orig + eps
                plus = _weighted_sum(_outputs(fn, inputs), gys)
                flat[k] = orig - eps
                minus = _weighted_sum(_outputs(fn, inputs), gys)
                flat[k] = orig
                numeric.reshape(-1)[k] = (plus - minus) / (2 * eps)
            excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
            k = int(np.argmax(excess)) if excess.size else 0
            if excess.size and excess.reshape(-1)[k] > worst[0]:
                idx = np.unravel_index(k, t.shape)
                worst = (excess.reshape(-1)[k], (i, idx, analytic[idx], numeric[idx]))
    if worst[0] <= 0:
        return True
    i, idx, a, n = worst[1]
    where = tuple(int(j) for j in idx)
    msg = (f"gradcheck: gradient of input {i} disagrees with finite differences; worst element {where}: "
           f"analytic {a:.8g}, numeric {n:.8g} (|diff| {abs(a - n):.3g} > atol {atol} + rtol {rtol} * |numeric|)")
    if raise_exception:
        raise GradcheckError(msg)
    return False
