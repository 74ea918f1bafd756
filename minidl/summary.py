"""A Keras-style table of a model: each layer's output shape and parameter count, and memory estimates.

The table has the layout of the ``torchsummary`` package, which seed report 003 prints (its Figure 1), so
the two can be compared line by line::

    ----------------------------------------------------------------
            Layer (type)               Output Shape         Param #
    ================================================================
                Conv2d-1           [-1, 24, 28, 28]           1,824
    ...
    Total params: 256,058
"""
from __future__ import annotations

import numpy as np

from .autograd import no_grad
from .backend import to_device
from .tensor import Tensor

__all__ = ["summary"]

_MB = 1024.0 ** 2
_WIDTH = 64


def _input_sizes(input_size) -> list[tuple]:
    """``(3, 32, 32)`` or ``[3, 32, 32]`` -> one input; ``[(1, 28, 28), (10,)]`` -> several."""
    sizes = list(input_size)
    if all(isinstance(s, (int, np.integer)) for s in sizes):
        return [tuple(int(s) for s in sizes)]
    return [tuple(int(d) for d in s) for s in sizes]


def _shape_of(output, batch_size: int):
    """The output shape with the batch dim replaced by ``batch_size`` (a list of them for several outputs)."""
    if isinstance(output, (tuple, list)):
        return [[batch_size] + list(o.shape[1:]) for o in output if isinstance(o, Tensor)]
    return [batch_size] + list(output.shape[1:])


def _numel(shape) -> int:
    """Elements of a shape (or of a list of shapes), the batch dim taken as |batch_size|."""
    if shape and isinstance(shape[0], list):
        return sum(_numel(s) for s in shape)
    return abs(int(np.prod(shape)))


def summary(model, input_size, batch_size: int = -1, dtype=np.float32, device: str = "cpu") -> str:
    """Print (and return) a table of every layer's output shape and parameter count.

    A forward hook on every submodule (containers such as ``Sequential`` excepted) records what each layer
    returns while a random batch of 2 goes through the model under ``no_grad``. The model is run in eval mode
    (so BatchNorm's running statistics do not change and Dropout draws nothing) and put back in the mode it
    was in; the input comes from a private generator, so minidl's random stream is not touched either.

    Layers are named ``Type-i`` in the order they run. Sizes in MB: the input (per sample when
    ``batch_size=-1``); forward/backward pass: every layer's output, counted twice (values and gradients);
    params: every parameter. Bytes per number are ``dtype``'s (4 for float32, as torchsummary assumes).

    Args:
        model: the Module to describe.
        input_size: the shape of one sample without the batch dim, e.g. ``(3, 32, 32)``, or a list of such
            shapes for a model with several inputs.
        batch_size: the batch dim shown in the output shapes (-1: any).
        dtype: the dtype of the random input.
        device: where the model lives and the input is made.
    Returns:
        The table as a string (it is also printed).

    >>> import minidl.nn as nn
    >>> text = summary(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), (4,))  # doctest: +ELLIPSIS
    ----------------------------------------------------------------
    ...
    Total params: 15
    ...
    """
    from .nn.container import ModuleDict, ModuleList, Sequential  # here, so `import minidl` stays light

    sizes = _input_sizes(input_size)
    dtype = np.dtype(dtype)
    rows, handles = [], []

    def hook(module, args, output):
        shape = _shape_of(output, batch_size)
        n_params = sum(int(p.array.size) for p in module.parameters(recurse=False))
        rows.append((f"{type(module).__name__}-{len(rows) + 1}", shape, n_params))

    children = [m for m in model.modules() if m is not model]
    for module in children or [model]:
        if not isinstance(module, (Sequential, ModuleList, ModuleDict)):
            handles.append(module.register_forward_hook(hook))
    modes = [(m, m.training) for m in model.modules()]
    rng = np.random.default_rng(0)
    xs = [Tensor(to_device(rng.random((2,) + size).astype(dtype), device)) for size in sizes]
    try:
        model.eval()
        with no_grad():
            model(*xs)
    finally:
        for handle in handles:
            handle.remove()
        for m, mode in modes:
            object.__setattr__(m, "training", mode)

    params = list(model.parameters())
    total_params = sum(int(p.array.size) for p in params)
    trainable = sum(int(p.array.size) for p in params if p.requires_grad)
    total_output = sum(_numel(shape) for _, shape, _ in rows)
    item = dtype.itemsize
    input_mb = abs(sum(int(np.prod(s)) for s in sizes) * batch_size * item / _MB)
    output_mb = abs(2.0 * total_output * item / _MB)
    params_mb = abs(total_params * item / _MB)

    lines = ["-" * _WIDTH, "{:>20}  {:>25} {:>15}".format("Layer (type)", "Output Shape", "Param #"), "=" * _WIDTH]
    for name, shape, n_params in rows:
        lines.append("{:>20}  {:>25} {:>15}".format(name, str(shape), f"{n_params:,}"))
    lines += ["=" * _WIDTH,
              f"Total params: {total_params:,}",
              f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total_params - trainable:,}",
              "-" * _WIDTH,
              f"Input size (MB): {input_mb:0.2f}",
              f"Forward/backward pass size (MB): {output_mb:0.2f}",
              f"Params size (MB): {params_mb:0.2f}",
              f"Estimated Total Size (MB): {input_mb + output_mb + params_mb:0.2f}",
              "-" * _WIDTH]
    text = "\n".join(lines)
    print(text)
    return text
