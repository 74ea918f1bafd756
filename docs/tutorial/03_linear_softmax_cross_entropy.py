# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 3. A linear layer and the softmax cross-entropy, by hand
#
# The last two steps of every classifier in the reports: logits $z = x W^T + b$ and the loss
# $L = -\frac{1}{N}\sum_n \log \mathrm{softmax}(z_n)_{y_n}$. Their gradients, derived here, are what minidl's
# `Linear` and `CrossEntropyLoss` backwards compute (minidl/ops/matmul.py, minidl/ops/loss.py); we check them
# against autograd and, where it is installed, PyTorch.
#
# Shapes: $x$ (N, D), $W$ (C, D), $b$ (C,), $z$ (N, C), labels $y$ (N,) in $0..C-1$.

# %%
import numpy as np

import minidl as mdl
import minidl.nn.functional as F

rng = np.random.default_rng(0)
N, D, C = 8, 5, 3
x = rng.standard_normal((N, D))
W = rng.standard_normal((C, D))
b = rng.standard_normal(C)
y = rng.integers(0, C, N)

# %% [markdown]
# ## Forward
#
# $p_n = \mathrm{softmax}(z_n)$, $p_{nc} = e^{z_{nc}} / \sum_k e^{z_{nk}}$. Subtracting $\max_k z_{nk}$ first
# changes nothing mathematically and keeps `exp` from overflowing.

# %%
z = x @ W.T + b
shifted = z - z.max(axis=1, keepdims=True)
p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
loss = -np.log(p[np.arange(N), y]).mean()
print(f"loss by hand: {loss:.6f}")

# %% [markdown]
# ## Backward, derived
#
# **Softmax + cross-entropy together.** For one sample, $L_n = -z_{n y_n} + \log\sum_k e^{z_{nk}}$, so
# $\partial L_n / \partial z_{nc} = -[c = y_n] + p_{nc}$. With the mean over $N$ samples:
#
# $$g_z = \frac{1}{N}\,(p - \mathrm{onehot}(y))\qquad (N, C)$$
#
# (Taken separately, softmax's Jacobian is a full C x C matrix per sample; together with the log it collapses
# to this difference, which is why frameworks fuse the two.)
#
# **Linear.** $z_{nc} = \sum_d x_{nd} W_{cd} + b_c$, so each weight collects the gradient of every output it
# touched:
#
# $$g_W = g_z^T x \;(C, D),\qquad g_b = \sum_n g_z \;(C,),\qquad g_x = g_z W \;(N, D)$$
#
# Each formula's shape matches its variable's: a quick check that nothing is transposed.

# %%
onehot = np.eye(C)[y]
gz = (p - onehot) / N
gW = gz.T @ x
gb = gz.sum(axis=0)
gx = gz @ W

# %% [markdown]
# ## The same with minidl's autograd

# %%
xt = mdl.tensor(x, requires_grad=True)
Wt = mdl.tensor(W, requires_grad=True)
bt = mdl.tensor(b, requires_grad=True)
loss_t = F.cross_entropy(F.linear(xt, Wt, bt), mdl.tensor(y))
loss_t.backward()
print(f"loss, minidl: {loss_t.item():.6f}")
for name, mine, theirs in (("gW", gW, Wt.grad), ("gb", gb, bt.grad), ("gx", gx, xt.grad)):
    print(f"{name}: largest difference from autograd {np.abs(mine - theirs.numpy()).max():.2e}")
    assert np.allclose(mine, theirs.numpy(), atol=1e-12)
assert abs(loss_t.item() - loss) < 1e-12

# %% [markdown]
# ## And with PyTorch, where it is installed

# %%
try:
    import torch
except ImportError:
    torch = None
    print("PyTorch is not installed: skipping the comparison (pip install torch)")
if torch is not None:
    xp, Wp, bp = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    loss_p = torch.nn.functional.cross_entropy(torch.nn.functional.linear(xp, Wp, bp), torch.tensor(y))
    loss_p.backward()
    print(f"loss, PyTorch: {loss_p.item():.6f}")
    assert abs(loss_p.item() - loss) < 1e-12
    assert np.allclose(Wp.grad.numpy(), gW, atol=1e-12) and np.allclose(xp.grad.numpy(), gx, atol=1e-12)
    print("PyTorch's gradients equal the ones derived by hand.")

# %% [markdown]
# ## What the gradient says
#
# $g_z = (p - \mathrm{onehot})/N$: a confident right answer ($p_{n y_n} \approx 1$) contributes almost nothing;
# a wrong one pushes its true class's logit up and every other down, in proportion to how much probability it
# got. A gradient step moves $W$ by $-\eta\, g_W$, which lowers the loss:

# %%
lr = 0.5
W2, b2 = W - lr * gW, b - lr * gb
z2 = x @ W2.T + b2
p2 = np.exp(z2 - z2.max(axis=1, keepdims=True))
p2 /= p2.sum(axis=1, keepdims=True)
loss2 = -np.log(p2[np.arange(N), y]).mean()
print(f"after one step of lr {lr}: loss {loss:.4f} -> {loss2:.4f}")
assert loss2 < loss
