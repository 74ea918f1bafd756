"""Every differentiable op of minidl, one family per file.

Each op is a :class:`~minidl.autograd.Function` with ``forward`` and ``backward`` written next to each other
on raw arrays; its docstring states the math, and every file opens with its Functions. Below them, the
public functions (``conv2d``, ``cross_entropy``, ...) check their arguments (shared checks: ``checks.py``),
then call ``SomeOp.apply``. docs/GRADIENTS.md gathers every Function's formulas in one table.

Learn backprop from minidl: after ``docs/tutorial/`` and ``minidl/autograd.py``, read these in this order
(the README has the whole list):

- ``elementwise.py`` (377 lines): add, mul, exp, ...; ``sum_to`` undoes broadcasting in the backward
- ``matmul.py`` (101 lines): gA = gy @ B^T, gB = A^T @ gy
- ``textbook.py`` (272 lines): conv2d, max pooling, batch norm and ReLU in plain NumPy, one screen each
- ``conv.py`` (344 lines): the real convolutions, their math as four named functions
- ``norm.py`` (246 lines): batch norm's gradient written out, its kernel the fast twin
- ``loss.py`` (835 lines): ``CrossEntropy`` first, softmax and the loss in one Function

The speed machinery is kept apart: ``conv_blocks.py`` (the block engine of the convolutions), ``winograd.py``
(Winograd's 3x3 convolutions), ``direct.py`` (thin filter banks, without columns), ``blocks.py`` (how work is
split among the cores) and the kernels in ``minidl/kernels``; ``minidl.use_kernels("reference")`` runs every
model without them.
"""
