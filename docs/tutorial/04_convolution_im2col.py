# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 4. Convolution as im2col + a matrix product, and its backward
#
# A convolution slides O filters of size C x KH x KW over the image; each output value is a dot product of
# one filter with the patch under it. Copy every patch into a column ("im2col") and all those dot products are
# one matrix product. That is how minidl's fast convolution works too (minidl/ops/conv.py, in blocks, with
# Winograd for 3x3 layers); here it is in plain NumPy, small enough to read in one screen.
#
# Notation (as in minidl/ops): x (N, C, H, W), weight Wt (O, C, KH, KW), bias b (O,), stride S, padding P,
# y (N, O, OH, OW) with $OH = \lfloor (H + 2P - KH)/S \rfloor + 1$ (OW alike).

# %%
import numpy as np

import minidl as mdl
import minidl.nn.functional as F


def im2col(x, KH, KW, S, P):
    """cols (N, C*KH*KW, OH*OW): column (oh, ow) of sample n is the patch under output pixel (oh, ow)."""
    N, C, H, W = x.shape
    OH, OW = (H + 2 * P - KH) // S + 1, (W + 2 * P - KW) // S + 1
    xp = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    cols = np.empty((N, C, KH, KW, OH, OW), dtype=x.dtype)
    for kh in range(KH):  # one shifted, strided view of the image per kernel position
        for kw in range(KW):
            cols[:, :, kh, kw] = xp[:, :, kh:kh + S * OH:S, kw:kw + S * OW:S]
    return cols.reshape(N, C * KH * KW, OH * OW), (OH, OW)


def col2im(cols, x_shape, KH, KW, S, P, OH, OW):
    """The adjoint of im2col: add each column's entries back where they were copied from."""
    N, C, H, W = x_shape
    cols = cols.reshape(N, C, KH, KW, OH, OW)
    xp = np.zeros((N, C, H + 2 * P, W + 2 * P), dtype=cols.dtype)
    for kh in range(KH):
        for kw in range(KW):
            xp[:, :, kh:kh + S * OH:S, kw:kw + S * OW:S] += cols[:, :, kh, kw]
    return xp[:, :, P:P + H, P:P + W]


# %% [markdown]
# ## Forward: one GEMM
#
# With the filters as rows, $W_{mat}$ (O, C·KH·KW), every sample's output is $W_{mat}\,\mathrm{cols}_n + b$:

# %%
def conv2d_forward(x, Wt, b, S, P):
    O, C, KH, KW = Wt.shape
    cols, (OH, OW) = im2col(x, KH, KW, S, P)
    y = Wt.reshape(O, -1) @ cols + b[:, None]  # (O, CKK) @ (N, CKK, OH*OW) -> (N, O, OH*OW)
    return y.reshape(x.shape[0], O, OH, OW), cols


rng = np.random.default_rng(0)
N, C, H, W, O, K, S, P = 2, 3, 7, 6, 4, 3, 2, 1
x = rng.standard_normal((N, C, H, W))
Wt = rng.standard_normal((O, C, K, K))
b = rng.standard_normal(O)
y, cols = conv2d_forward(x, Wt, b, S, P)
y_minidl = F.conv2d(mdl.tensor(x), mdl.tensor(Wt), mdl.tensor(b), stride=S, padding=P).numpy()
print("y:", y.shape, " largest difference from minidl's conv2d:", f"{np.abs(y - y_minidl).max():.1e}")
assert np.allclose(y, y_minidl, atol=1e-12)

# %% [markdown]
# ## Backward, derived
#
# The forward is $Y_n = W_{mat}\,\mathrm{cols}_n + b$, a matrix product per sample, so with $G_n = g_y$ of sample
# n as (O, OH·OW), the matrix-product rule of chapter 3 gives three lines:
#
# $$g_W = \sum_n G_n\,\mathrm{cols}_n^T,\qquad g_{\mathrm{cols}_n} = W_{mat}^T\,G_n,\qquad g_b = \sum_{n,oh,ow} g_y$$
#
# and $g_x$ = col2im($g_{\mathrm{cols}}$): every input pixel was copied into several columns, so its gradient
# is the sum of the gradients of its copies. (That sum is a *transposed convolution* of $g_y$ with the same
# filters, which is how minidl computes it.)

# %%
def conv2d_backward(gy, x_shape, Wt, cols, S, P):
    O, C, KH, KW = Wt.shape
    N, _, OH, OW = gy.shape
    G = gy.reshape(N, O, OH * OW)
    gW = np.einsum("nop,nkp->ok", G, cols).reshape(Wt.shape)  # sum over n of G_n cols_n^T
    gcols = Wt.reshape(O, -1).T @ G                              # (CKK, O) @ (N, O, P) -> (N, CKK, P)
    gx = col2im(gcols, x_shape, KH, KW, S, P, OH, OW)
    gb = gy.sum(axis=(0, 2, 3))
    return gx, gW, gb


gy = rng.standard_normal(y.shape)  # a random upstream gradient, never all ones
gx, gW, gb = conv2d_backward(gy, x.shape, Wt, cols, S, P)

# %% [markdown]
# ## Checked two ways: minidl's autograd, and finite differences
#
# $L = \sum y \cdot g_y$ has exactly $g_y$ as its upstream gradient. The central difference
# $(L(x + \varepsilon e_i) - L(x - \varepsilon e_i)) / 2\varepsilon$ needs only the forward, so it checks the
# derivation without trusting any backward.

# %%
xt, Wtt, bt = (mdl.tensor(a, requires_grad=True) for a in (x, Wt, b))
(F.conv2d(xt, Wtt, bt, stride=S, padding=P) * mdl.tensor(gy)).sum().backward()
for name, mine, auto in (("gx", gx, xt.grad), ("gW", gW, Wtt.grad), ("gb", gb, bt.grad)):
    assert np.allclose(mine, auto.numpy(), atol=1e-10), name
print("gx, gW, gb equal minidl's autograd")


def L(x_, W_, b_):
    return float((conv2d_forward(x_, W_, b_, S, P)[0] * gy).sum())


eps = 1e-6
worst = 0.0
for array, grad in ((x, gx), (Wt, gW), (b, gb)):
    for i in rng.choice(array.size, size=min(10, array.size), replace=False):  # up to ten elements of each
        plus, minus = array.copy(), array.copy()
        plus.flat[i] += eps
        minus.flat[i] -= eps
        args_plus = [plus if a is array else a for a in (x, Wt, b)]
        args_minus = [minus if a is array else a for a in (x, Wt, b)]
        numeric = (L(*args_plus) - L(*args_minus)) / (2 * eps)
        worst = max(worst, abs(numeric - grad.flat[i]))
print(f"largest |analytic - numeric| over 24 elements: {worst:.1e}")
assert worst < 1e-6

# %% [markdown]
# ## Where minidl goes further
#
# The GEMM is where the time goes. minidl/ops/conv.py writes conv2d's Function with exactly these three
# products (`conv_output`, `conv_grad_input`, `conv_grad_weight`), and its block engine
# (minidl/ops/conv_blocks.py) runs them on blocks of samples small enough to stay in cache, on all cores,
# reusing buffers; 3x3 layers with 64+ channels use Winograd's algorithm instead (minidl/ops/winograd.py),
# 2.25x to 4x fewer multiplications for the same result up to rounding. `minidl.kernels.reference` holds the plain loops those fast kernels must
# equal, and the tests compare them. Next: chapter 5 puts a real batch through a whole network.
