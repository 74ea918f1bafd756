# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 5. A real batch through a real network, one optimizer step by hand, then training
#
# Report 001's Fashion-MNIST net (models/fashion.py): conv 3x3 (1 -> 32) -> ReLU -> max pool 2 -> conv 3x3
# (32 -> 32) -> ReLU -> max pool 2 -> linear 800 -> 120 -> ReLU -> linear 120 -> 10. We push one batch of 64
# images through it, look at every layer's output and every parameter's gradient, take one Adam step by hand and
# compare it with `minidl.optim.Adam`, and finally train it for about a minute.
#
# The data: `$MINIDL_DATA/fashion-mnist`, else `../shared/data/fashion-mnist` beside this checkout, else a
# checked download into the cache. Figures go to `$MINIDL_TUTORIAL_OUT` (default `runs/tutorial`).

# %%
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import minidl as mdl  # noqa: E402
import minidl.nn as nn  # noqa: E402
import minidl.optim as optim  # noqa: E402
from minidl.data import DataLoader, Subset  # noqa: E402
from minidl.data import transforms as T  # noqa: E402
from minidl.data.datasets import FashionMNIST  # noqa: E402
from models.fashion import Report001Net  # noqa: E402

OUT = Path(os.environ.get("MINIDL_TUTORIAL_OUT", "runs/tutorial"))
OUT.mkdir(parents=True, exist_ok=True)
REPO = Path(__file__).resolve().parents[2]
if os.environ.get("MINIDL_DATA"):
    root, download = Path(os.environ["MINIDL_DATA"]) / "fashion-mnist", False
elif (REPO.parent / "shared" / "data" / "fashion-mnist").is_dir():
    root, download = REPO.parent / "shared" / "data" / "fashion-mnist", False
else:
    root, download = None, True
to_tensor = T.Compose([T.ToTensor(), T.Normalize((0.2860,), (0.3530,))])
train_set = FashionMNIST(root, train=True, transform=to_tensor, download=download)
test_set = FashionMNIST(root, train=False, transform=to_tensor, download=download)
mdl.manual_seed(0)
x, y = next(iter(DataLoader(train_set, batch_size=64, shuffle=True, seed=0)))
print("a batch:", tuple(x.shape), x.dtype, "labels", y.numpy()[:12], "...")

# %% [markdown]
# ## Every layer's output, caught by forward hooks
#
# A forward hook is called with each module's output as the forward passes through it; that is how the
# activation viewer of experiments/ sees inside a net too.

# %%
model = Report001Net()
outputs = []
hooks = [module.register_forward_hook(lambda m, inputs, out, name=name: outputs.append((name, out)))
         for name, module in model.named_children()]
loss_fn = nn.CrossEntropyLoss()
loss = loss_fn(model(x), y)
for h in hooks:
    h.remove()
for name, out in outputs:
    a = out.numpy()
    print(f"{name:6s} {str(tuple(a.shape)):18s} mean {a.mean():+.3f}  std {a.std():.3f}")
print(f"loss {loss.item():.4f} (ln 10 = {np.log(10):.4f}: an untrained net guesses evenly)")
assert [tuple(o.shape) for _, o in outputs] == [(64, 32, 26, 26), (64, 32, 11, 11), (64, 120), (64, 10)]
assert abs(loss.item() - np.log(10)) < 0.1

# %% [markdown]
# The hooks see the modules (`conv1`, `conv2`, `fc1`, `fc2`); ReLU and pooling are functions called in
# `forward`, so their outputs are inside: conv1's 26x26 maps become 13x13 after pooling, conv2's 11x11 become
# 5x5, and 32 x 5 x 5 = 800 features enter fc1.
#
# ## Every parameter's gradient

# %%
model.zero_grad()
loss.backward()
for name, p in model.named_parameters():
    g = p.grad.numpy()
    print(f"{name:12s} {str(tuple(p.shape)):16s} |grad| {np.linalg.norm(g):.4f}")

# %% [markdown]
# Checked by finite differences on two weights of conv1, in float64 (a copy of the net): the gradient of the
# very first layer has gone back through every op of the net.

# %%
net64 = Report001Net().double()
net64.load_state_dict({k: v.astype(np.float64) for k, v in model.state_dict().items()})
x64 = mdl.tensor(x.numpy().astype(np.float64))
net64.zero_grad()
loss_fn(net64(x64), y).backward()
w = net64.conv1.weight
for index in [(0, 0, 1, 1), (17, 0, 2, 0)]:
    original = w.array[index]
    values = []
    for delta in (1e-6, -1e-6):
        w.array[index] = original + delta
        with mdl.no_grad():
            values.append(loss_fn(net64(x64), y).item())
    w.array[index] = original
    numeric = (values[0] - values[1]) / 2e-6
    print(f"conv1.weight{index}: backward {w.grad.numpy()[index]:+.8f}, finite difference {numeric:+.8f}")
    assert abs(numeric - w.grad.numpy()[index]) < 1e-6

# %% [markdown]
# ## One Adam step, by hand
#
# Adam keeps, per parameter, running means of the gradient ($m$) and of its square ($v$), with
# $\beta_1 = 0.9$, $\beta_2 = 0.999$, and corrects their start at zero:
#
# $$m \leftarrow \beta_1 m + (1-\beta_1) g,\quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad
#   p \leftarrow p - \eta\,\frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}$$
#
# At the first step ($t = 1$, $m = v = 0$ before) this is $p - \eta\, g / (|g| + \epsilon)$: every weight moves
# by almost exactly $\eta$, whatever its gradient's size.

# %%
lr, beta1, beta2, eps = 1e-3, 0.9, 0.999, 1e-8
by_hand = {}
for name, p in model.named_parameters():
    g = p.grad.numpy()
    m = (1 - beta1) * g
    v = (1 - beta2) * g * g
    by_hand[name] = p.numpy() - lr * (m / (1 - beta1)) / (np.sqrt(v / (1 - beta2)) + eps)
optim.Adam(model.parameters(), lr=lr, betas=(beta1, beta2), eps=eps).step()
worst = max(np.abs(p.numpy() - by_hand[name]).max() for name, p in model.named_parameters())
print(f"optim.Adam vs by hand: largest difference {worst:.1e}")
assert worst < 1e-6

# %% [markdown]
# ## About a minute of training
#
# Two passes over 30,000 training images in batches of 64 with Adam at 2e-3, the loss recorded every 20 steps,
# then the accuracy on the 10,000 test images.

# %%
mdl.manual_seed(0)
model = Report001Net()
optimizer = optim.Adam(model.parameters(), lr=2e-3)
loader = DataLoader(Subset(train_set, np.arange(30_000)), batch_size=64, shuffle=True, seed=0)
steps, losses, window = [], [], []
start = time.perf_counter()
for epoch in range(2):
    for x, y in loader:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        window.append(loss.item())
        if len(window) == 20:
            steps.append(len(steps) * 20 + 20)
            losses.append(float(np.mean(window)))
            window = []
seconds = time.perf_counter() - start

model.eval()
correct = 0
with mdl.no_grad():
    for x, y in DataLoader(test_set, batch_size=1000):
        correct += int((model(x).argmax(dim=1) == y).sum().item())
accuracy = correct / len(test_set)
print(f"{len(steps) * 20} steps in {seconds:.0f} s; loss {losses[0]:.3f} -> {losses[-1]:.3f}; "
      f"test accuracy {100 * accuracy:.2f}%")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(steps, losses)
ax.set(xlabel="step (batches of 64)", ylabel="training loss (mean of 20 steps)",
       title=f"Report 001's net on Fashion-MNIST: {100 * accuracy:.1f}% test accuracy")
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(OUT / "05_training_curve.png", dpi=100)
print("the curve:", OUT / "05_training_curve.png")
assert losses[-1] < 0.5 * losses[0] and accuracy > 0.85
