"""Optimizers (``minidl.optim``) and learning-rate schedules (``minidl.optim.lr_scheduler``).

Names, arguments, defaults, update rules and ``state_dict`` layout are PyTorch's::

    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    for x, y in loader:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()

Each optimizer's docstring states its update rule.
"""
from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "Adadelta", "RMSprop", "lr_scheduler"]
