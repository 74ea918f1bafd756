"""Every differentiable op of minidl, one family per file.

Each op is a :class:`~minidl.autograd.Function` with ``forward`` and ``backward`` written next to each other
on raw arrays; its docstring states the math. Public functions (``conv2d``, ``cross_entropy``, ...) check
their arguments, then call ``SomeOp.apply``.
"""
