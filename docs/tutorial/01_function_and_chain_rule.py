# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 1. One Function and the chain rule
#
# Everything minidl computes with gradients is made of **Functions**: a `forward` that computes an op's output
# from raw NumPy arrays, and right beside it a `backward` that turns the gradient of the loss with respect to
# that output (`gy`) into the gradient with respect to each input (`gx`). Autograd is nothing more than calling
# these backwards in the right order (chapter 2).
#
# Run this chapter with `python docs/tutorial/01_function_and_chain_rule.py`, or open it as a notebook
# (it is a jupytext "percent" script). Every number it shows is also checked by an `assert`.

# %%
import numpy as np

import minidl as mdl
from minidl.autograd import Function
from minidl.gradcheck import GradcheckError

# %% [markdown]
# ## A Function: tanh
#
# $y = \tanh(x)$, so $\frac{dy}{dx} = 1 - \tanh^2(x) = 1 - y^2$. The backward needs only the output, so that is
# what the forward saves. The loss $L$ is some scalar computed later from $y$; the chain rule gives
#
# $$\frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}\,\frac{dy}{dx} = g_y\,(1 - y^2)$$
#
# element by element. That one line is the whole backward.

# %%
class Tanh(Function):
    """y = tanh(x).   gx = gy * (1 - y²)."""

    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    def backward(ctx, gy):
        y, = ctx.saved
        return gy * (1 - y * y)


x = mdl.tensor([-1.0, 0.0, 0.5, 2.0], dtype=mdl.float64, requires_grad=True)
y = Tanh.apply(x)
print("y  =", y.numpy())
y.sum().backward()  # L = sum(y), so gy = 1 everywhere and x.grad = dy/dx
print("dy/dx =", x.grad.numpy())
assert np.allclose(x.grad.numpy(), 1 - np.tanh(x.numpy()) ** 2)

# %% [markdown]
# ## The chain rule through several ops
#
# Take $L = \sum_i w_i \tanh(a\,x_i)$. By hand, $\partial L / \partial x_i = w_i\,(1 - \tanh^2(a x_i))\,a$: one
# factor per op on the way from $L$ back to $x$. Autograd multiplies the same factors, one backward at a time:
# `sum` hands each element the gradient 1, `*w` multiplies it by $w_i$, `Tanh` by $1 - y^2$, `*a` by $a$.

# %%
rng = np.random.default_rng(0)
x = mdl.tensor(rng.standard_normal(5), requires_grad=True)
w = mdl.tensor(rng.standard_normal(5), requires_grad=True)
a = 0.7
loss = (w * Tanh.apply(x * a)).sum()
loss.backward()

t = np.tanh(a * x.numpy())
by_hand_x = w.numpy() * (1 - t ** 2) * a
by_hand_w = t
print("dL/dx autograd:", np.round(x.grad.numpy(), 6))
print("dL/dx by hand: ", np.round(by_hand_x, 6))
assert np.allclose(x.grad.numpy(), by_hand_x) and np.allclose(w.grad.numpy(), by_hand_w)

# %% [markdown]
# ## Checking a backward: finite differences
#
# A backward is easy to get wrong, and a wrong one still trains, badly. `minidl.gradcheck` compares it with the
# central difference $\frac{L(x + \varepsilon e_i) - L(x - \varepsilon e_i)}{2\varepsilon}$ for every element, in
# float64, with $L = \sum y \cdot g_y$ for a **random** upstream gradient $g_y$: with $g_y = 1$ (a plain
# `.sum()`) a backward that transposed or mixed up elements could still pass.

# %%
x = mdl.tensor(rng.standard_normal((3, 4)), requires_grad=True)
print("gradcheck(Tanh):", mdl.gradcheck(Tanh.apply, [x]))


# %% [markdown]
# A backward with a classic mistake, $1 - y$ instead of $1 - y^2$, is caught, and the message names the worst
# element:

# %%
class WrongTanh(Tanh):
    def backward(ctx, gy):
        y, = ctx.saved
        return gy * (1 - y)  # the square is missing


try:
    mdl.gradcheck(WrongTanh.apply, [x])
    raise AssertionError("gradcheck should have failed")
except GradcheckError as err:
    print("caught:", str(err).splitlines()[0])

# %% [markdown]
# ## Two inputs: minidl's own product
#
# For $y = a \cdot b$ (elementwise), $g_a = g_y\,b$ and $g_b = g_y\,a$: the backward returns one gradient per
# input, in order, and `ctx.needs_input_grad` lets it skip an input that needs none. That is minidl's `Mul`
# (minidl/ops/elementwise.py), read here rather than written again. Its one addition is `sum_to`: when `a` was
# broadcast (a bias of shape (3,) added to every row of a (2, 3) matrix, say), each of its elements was used
# once per row, so its gradient is the sum over those rows.

# %%
import inspect  # noqa: E402

from minidl.ops.elementwise import Mul  # noqa: E402

print(inspect.getsource(Mul))
p = mdl.tensor(rng.standard_normal((2, 3)), requires_grad=True)
q = mdl.tensor(rng.standard_normal(3), requires_grad=True)  # broadcast over p's rows
assert mdl.gradcheck(Mul.apply, [p, q])
print("gradcheck(Mul), with broadcasting: True. Next: chapter 2, the graph these Functions make.")
