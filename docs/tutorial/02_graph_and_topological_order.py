# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 2. The graph, and the order of the backward pass
#
# Each op that takes a tensor which `requires_grad` records a node: the Function that ran (with what it saved)
# and the tensors it took. The output points at that node through `.grad_fn`. So a loss holds, through
# `grad_fn` and each node's `inputs`, the whole computation that produced it: a directed acyclic graph.
#
# `loss.backward()` walks that graph from the loss back to the leaves. A node may only run its backward once
# **every** gradient flowing into its output has arrived, so nodes are visited in a *topological order*: each
# before the nodes of its inputs. Run with `python docs/tutorial/02_graph_and_topological_order.py`; the
# picture of the graph is written to `$MINIDL_TUTORIAL_OUT` (default `runs/tutorial`).

# %%
import os
from pathlib import Path

import numpy as np

import minidl as mdl
from minidl.viz import draw_graph

OUT = Path(os.environ.get("MINIDL_TUTORIAL_OUT", "runs/tutorial"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## A small graph
#
# A one-layer net on a batch of 4: $h = \mathrm{relu}(x W^T + b)$, $L = \mathrm{mean}(h \cdot h)$. `x` is data,
# `W` and `b` are leaves that want gradients.

# %%
rng = np.random.default_rng(0)
x = mdl.tensor(rng.standard_normal((4, 3)))
W = mdl.tensor(rng.standard_normal((2, 3)), requires_grad=True)
b = mdl.tensor(rng.standard_normal(2), requires_grad=True)
h = (x @ W.T + b).relu()
loss = (h * h).mean()
print("loss:", loss.item(), "made by", type(loss.grad_fn).__name__)

# %% [markdown]
# Walking back from the loss: every node, and the nodes (or leaves) of its inputs.

# %%
def inputs_of(node):
    """The nodes that produced this node's inputs (leaves and data have none)."""
    return [t.grad_fn for t in node.inputs if isinstance(t, mdl.Tensor) and t.grad_fn is not None]


def describe(node):
    parts = []
    for t in node.inputs:
        if not isinstance(t, mdl.Tensor):
            continue
        if t.grad_fn is not None:
            parts.append(type(t.grad_fn).__name__)
        else:
            parts.append(f"leaf{tuple(t.shape)}{' (wants grad)' if t.requires_grad else ''}")
    return f"{type(node).__name__:10s} <- {', '.join(parts)}"


seen, stack = set(), [loss.grad_fn]
while stack:
    node = stack.pop()
    if node in seen:
        continue
    seen.add(node)
    print(describe(node))
    stack.extend(inputs_of(node))

dot = draw_graph(loss, str(OUT / "02_graph.png"), params={"W": W, "b": b})
print("the graph:", OUT / "02_graph.png")
assert "ReLU" in dot and "Mean" in dot

# %% [markdown]
# ## A topological order, by depth-first search
#
# Visit a node's inputs first, then append the node (a post-order); reversed, that list puts every node before
# the nodes of its inputs. This is the order `backward` uses (`minidl.autograd`), written out in a few lines:

# %%
def topological_order(root):
    order, done = [], set()

    def visit(node):
        if node in done:
            return
        done.add(node)
        for child in inputs_of(node):
            visit(child)
        order.append(node)  # after all of its inputs' nodes

    visit(root)
    return order[::-1]  # the loss's node first


order = topological_order(loss.grad_fn)
print(" -> ".join(type(n).__name__ for n in order))
position = {node: k for k, node in enumerate(order)}
assert all(position[node] < position[child] for node in order for child in inputs_of(node))

# %% [markdown]
# ## Why the order matters: a value used twice
#
# In $y = x \cdot x + x$ the leaf `x` feeds two ops, so its gradient is the **sum** of what flows back along each
# path: $dy/dx = 2x + 1$. A node whose output is used twice must wait for both contributions before its own
# backward runs; the topological order guarantees that both consumers come first.

# %%
x = mdl.tensor([1.0, -2.0, 3.0], dtype=mdl.float64, requires_grad=True)
s = x * x          # used once below...
y = (s + x).sum()  # ...and x used a second time here
y.backward()
print("dy/dx =", x.grad.numpy(), " 2x + 1 =", 2 * x.numpy() + 1)
assert np.allclose(x.grad.numpy(), 2 * x.numpy() + 1)

u = mdl.tensor([0.5, 1.5], dtype=mdl.float64, requires_grad=True)
v = u.exp()
z = (v * v.sin() + v).sum()  # v feeds three ops: Mul, Sin and Add
z.backward()
ev = np.exp(u.numpy())
by_hand = (np.sin(ev) + ev * np.cos(ev) + 1) * ev  # d/dv of (v sin v + v), times dv/du = e^u
print("dz/du =", u.grad.numpy(), " by hand:", by_hand)
assert np.allclose(u.grad.numpy(), by_hand)

# %% [markdown]
# ## After backward
#
# The graph is freed as the backward pass goes (the saved arrays are what holds memory), so a second
# `backward()` through it is refused unless the first was `backward(retain_graph=True)`. Leaves keep their
# `.grad`, and a new forward builds a new graph. Next: chapter 3 derives the gradients of a linear layer and the
# softmax cross-entropy by hand.

# %%
try:
    y.backward()
    raise AssertionError("a second backward through a freed graph should fail")
except RuntimeError as err:
    print("second backward:", str(err).split(".")[0])
