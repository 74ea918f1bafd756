"""The autograd engine: ``Function`` nodes, grad mode, and the backward pass.

Every differentiable op is a subclass of :class:`Function` with two methods written side by side on raw
arrays (``numpy.ndarray`` or ``cupy.ndarray``, never Tensors)::

    class Mul(Function):
        '''y = a * b.   ga = gy * b,  gb = gy * a.'''

        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        def backward(ctx, gy):
            a, b = ctx.saved
            return gy * b, gy * a

``Mul.apply(x, w)`` unwraps Tensor arguments to their arrays, runs ``forward`` on a fresh node (the node
*is* the ``ctx``), and wraps the result in Tensors whose ``grad_fn`` is that node. ``backward`` receives
one upstream gradient per output and returns one gradient per positional argument of ``forward``
(``None`` for arguments that are not Tensors or need no gradient). ``ctx.needs_input_grad`` tells which
gradients are wanted, so a backward can skip work.

:func:`run_backward` walks the graph in topological order with an explicit stack (no recursion, so a
10,000-op chain is fine), sums gradients that reach a node along several paths, accumulates into the
``.grad`` of leaves, and frees each node's saved arrays once it has been used. A node remembers an input that
another node computed as an :class:`Edge` to that node, not as the Tensor, so the only arrays the graph
holds are those ``save_for_backward`` kept: the forward's other intermediate results are freed as it goes.
"""
from __future__ import annotations

import functools
import weakref

import numpy as _np

__all__ = ["Function", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "run_backward"]


class _GradMode:
    enabled = True


def is_grad_enabled() -> bool:
    """Whether ops record a graph right now."""
    return _GradMode.enabled


class set_grad_enabled:
    """Context manager (and decorator) that turns graph recording on or off."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev = _GradMode.enabled
        _GradMode.enabled = self.mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _GradMode.enabled = self.prev
        return False


class _GradModeContext:
    mode = True

    def __enter__(self):
        self.prev = _GradMode.enabled
        _GradMode.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _GradMode.enabled = self.prev
        return False

    def __call__(self, fn):
        mode = self.mode  # an instance's own mode (``inference_mode(False)``), not only the class's

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradModeContext):
    """Ops run inside ``with no_grad():`` (or a function decorated ``@no_grad()``) record no graph."""

    mode = False


class enable_grad(_GradModeContext):
    """Turn graph recording back on inside a ``no_grad`` block."""

    mode = True


class Function:
    """A node of the graph and, while it runs, the context of its op.

    Subclasses define ``forward(ctx, *args, **kwargs)`` and ``backward(ctx, *gys)`` on raw arrays and are
    called through :meth:`apply`. Attributes a subclass sets on ``ctx`` in ``forward`` are available in
    ``backward``; all of them are dropped when the node is freed.
    """

    # Set by apply() on nodes that record a graph; inputs: an Edge for each Tensor another node computed, leaf
    # Tensors and the other arguments as they were given.
    inputs: tuple
    needs_input_grad: tuple
    saved: tuple = ()

    def save_for_backward(self, *arrays) -> None:
        """Keep ``arrays`` for the backward pass; read them back as ``ctx.saved``."""
        self.saved = arrays

    def forward(self, *args, **kwargs):  # pragma: no cover - always overridden
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, *gys):  # pragma: no cover - always overridden
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run the op on Tensors (or plain values) and record the node when a gradient is needed."""
        raw = [a.array if isinstance(a, Tensor) else a for a in args]
        if _CUDA_POSSIBLE:
            _check_one_device(cls.__name__, args)
        ctx = cls.__new__(cls)
        record = False
        if _GradMode.enabled:
            needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
            record = True in needs
            ctx.needs_input_grad = needs
        else:
            ctx.needs_input_grad = (False,) * len(args)
        ys = ctx.forward(*raw, **kwargs)
        if type(ys) is tuple:
            ys = tuple(_np.asarray(y) if isinstance(y, _np.generic) else y for y in ys)
            if record:
                ctx.inputs = _edges(args)
                ctx.outputs_meta = tuple((y.shape, y.dtype) for y in ys)
            outs = tuple(Tensor._from_op(y, ctx if record else None, i) for i, y in enumerate(ys))
            for out in outs:
                if out.array.base is not None:
                    _share_version_with_base(out, args)
            if record and ctx.saved:
                _remember_versions(ctx, args, outs)
            return outs
        if isinstance(ys, _np.generic):  # NumPy reductions return scalars; keep them 0-d arrays
            ys = _np.asarray(ys)
        out = Tensor._from_op(ys, ctx if record else None, 0)
        if ys.base is not None:
            _share_version_with_base(out, args)
        if record:
            ctx.inputs = _edges(args)
            ctx.outputs_meta = ((ys.shape, ys.dtype),)
            if ctx.saved:
                _remember_versions(ctx, args, (out,))
        return out

    def _free(self) -> None:
        """Drop everything the node holds (saved arrays, inputs) and mark it as used."""
        self.__dict__.clear()
        self.freed = True

    def __repr__(self) -> str:
        return f"<{type(self).__name__}Backward>"


def _remember_versions(ctx, args, outs) -> None:
    """Note the version of every Tensor input, and of the outputs whose memory the node saved.

    In-place methods (``zero_()``, ``x[i] = v``, an optimizer's step) bump a tensor's version. If one of
    the arrays this node saved for its backward was changed that way after the forward, the backward would
    compute with the new values and give a wrong gradient without a word; :func:`_check_versions` raises
    instead. Here only integers are copied for the inputs: which saved array belongs to which input is
    worked out only when a version has moved.
    """
    ctx.input_versions = [a._version_counter[0] if isinstance(a, Tensor) else None for a in args]
    ctx.output_versions = []
    for t in outs:
        root = _root(t.array)
        for s in ctx.saved:
            if s is root or (getattr(s, "base", None) is not None and _root(s) is root):
                ctx.output_versions.append((t._version_counter, t._version_counter[0], t._output_index))
                break


class Edge:
    """What a node keeps of an input that another node computed: where to send its gradient (``grad_fn``,
    ``_output_index``), what the gradient must look like (``shape``, ``dtype``) and the input's version
    counter, but not the Tensor.

    Keeping the Tensor would keep its array, so every intermediate result of the forward pass (each
    convolution's output, say, that only the next ReLU read) would stay in memory until the backward pass
    freed the graph; PyTorch's graph keeps edges too. The arrays a backward needs are in ``saved``. The
    array's memory is remembered weakly, for the in-place check of :func:`_check_versions`.
    """

    __slots__ = ("grad_fn", "_output_index", "_version_counter", "shape", "dtype", "_root")

    def __init__(self, t: "Tensor") -> None:
        self.grad_fn, self._output_index, self._version_counter = t.grad_fn, t._output_index, t._version_counter
        self.shape, self.dtype = t.array.shape, t.array.dtype
        root = _root(t.array)
        try:
            self._root = weakref.ref(root)
        except TypeError:  # an array type without weak references: keep it (no memory saved, still correct)
            self._root = lambda: root

    def root(self):
        """The array that owns the input's memory, or None once nothing holds it any more."""
        return self._root()


def _edges(args) -> tuple:
    """``args`` as a node keeps them: an :class:`Edge` for each Tensor some node computed; leaves (whose
    ``.grad`` the backward fills) and non-Tensor arguments as they are."""
    return tuple(Edge(a) if isinstance(a, Tensor) and a.grad_fn is not None else a for a in args)


def _root(a):
    """The array that owns ``a``'s memory (``a`` itself, or the end of its chain of ``.base`` views)."""
    while getattr(a, "base", None) is not None:
        a = a.base
    return a


def _share_version_with_base(out, args) -> None:
    """An output that is a view of an input's memory (a reshape, an index, a transpose) shares that input's
    version counter, as PyTorch's views do: changing one in place changes the other."""
    root = _root(out.array)
    for a in args:
        if isinstance(a, Tensor) and _root(a.array) is root:
            out._version_counter = a._version_counter
            return


def _check_versions(node) -> None:
    """Raise if an array ``node`` saved for its backward was changed in place after its forward."""
    for i, (t, seen) in enumerate(zip(node.inputs, node.input_versions)):
        if seen is not None and t._version_counter[0] != seen:
            root = t.root() if isinstance(t, Edge) else _root(t.array)
            if root is not None and any(_root(s) is root for s in node.saved):
                _raise_modified(node, f"input {i} of {type(node).__name__} (shape {tuple(t.shape)})",
                                t._version_counter[0], seen)
    for counter, seen, index in node.output_versions:
        if counter[0] != seen:
            _raise_modified(node, f"output {index} of {type(node).__name__}", counter[0], seen)


def _raise_modified(node, what: str, now: int, seen: int):
    op = type(node).__name__
    raise RuntimeError(
        f"{op}.backward: one of the variables needed for gradient computation has been modified by an inplace "
        f"operation: {what} is at version {now}; expected version {seen} instead. Hint: do the in-place change "
        "after backward(), or use an out-of-place op (e.g. `b = b * 0` instead of `b.zero_()`); "
        "optimizer.step() belongs after loss.backward().")


def _check_one_device(op: str, args) -> None:
    """Raise if the Tensor arguments of an op live on different devices, naming them."""
    devices = {(device_of(a.array), i) for i, a in enumerate(args) if isinstance(a, Tensor)}
    if len({d for d, _ in devices}) > 1:
        listed = ", ".join(f"argument {i} on {d}" for d, i in sorted(devices, key=lambda p: p[1]))
        raise RuntimeError(f"{op}: expected all tensors on one device, got {listed}; move them with .to(device)")


def _check_not_freed(node) -> None:
    if getattr(node, "freed", False):
        raise RuntimeError(
            f"Trying to backward through the graph a second time (through {type(node).__name__}): its "
            "saved arrays were freed by the first backward(). Pass retain_graph=True to the first call "
            "if you need to backward twice.")


def _topological_order(root_node):
    """Nodes reachable from ``root_node``, each after every node that consumes its output."""
    order, visited, stack = [], set(), [(root_node, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in visited:
            continue
        _check_not_freed(node)
        visited.add(node)
        stack.append((node, True))
        for t in node.inputs:
            if isinstance(t, (Tensor, Edge)) and t.grad_fn is not None and t.grad_fn not in visited:
                stack.append((t.grad_fn, False))
    order.reverse()
    return order


_queued_callbacks: list = []


def queue_callback(fn) -> None:
    """Call ``fn()`` once the backward pass now running has finished (PyTorch's
    ``Variable._execution_engine.queue_callback``); DistributedDataParallel averages gradients there."""
    _queued_callbacks.append(fn)


def run_queued_callbacks(finished: bool = True) -> None:
    """Run the callbacks queued during the backward pass that has just ``finished``; forget them unrun when
    it failed midway."""
    callbacks = list(_queued_callbacks)
    _queued_callbacks.clear()
    if finished:
        for fn in callbacks:
            fn()


def run_backward(root, gy, retain_graph: bool = False) -> None:
    """Backpropagate ``gy`` (an array shaped like ``root``) through the graph that produced ``root``."""
    try:
        _run_backward(root, gy, retain_graph)
    except BaseException:
        run_queued_callbacks(finished=False)
        raise
    run_queued_callbacks()


def _run_backward(root, gy, retain_graph: bool) -> None:
    node0 = root.grad_fn
    _check_not_freed(node0)
    order = _topological_order(node0)
    pending = {node0: [None] * len(node0.outputs_meta)}
    pending[node0][root._output_index] = gy
    # A leaf that several nodes use gets the sum of their gradients, accumulated into its .grad once, after
    # the last of them (PyTorch's AccumulateGrad): its hooks see one gradient per backward pass.
    uses: dict = {}
    for node in order:
        for t, need in zip(node.inputs, node.needs_input_grad):
            if need and t.grad_fn is None:
                uses[id(t)] = uses.get(id(t), 0) + 1
    leaf_sums: dict = {}

    def reach_leaf(t, gx) -> None:  # one of the leaf's uses is done; gx None: it sent no gradient
        key = id(t)
        if gx is not None:
            leaf_sums[key] = gx if key not in leaf_sums else leaf_sums[key] + gx
        uses[key] -= 1
        if uses[key] == 0 and key in leaf_sums:
            t._accumulate_grad(leaf_sums.pop(key))

    with no_grad():
        for node in order:
            gys = pending.pop(node, None)
            if gys is None:  # reachable, but every path to it carried no gradient
                for t, need in zip(node.inputs, node.needs_input_grad):
                    if need and t.grad_fn is None:
                        reach_leaf(t, None)
                if not retain_graph:
                    node._free()
                continue
            if any(g is None for g in gys):
                xp = get_array_module(*[g for g in gys if g is not None])
                gys = [xp.zeros(shape, dtype) if g is None else g
                       for g, (shape, dtype) in zip(gys, node.outputs_meta)]
            if node.saved:
                _check_versions(node)
            gxs = node.backward(*gys)
            if type(gxs) is not tuple:
                gxs = (gxs,)
            gxs = gxs + (None,) * (len(node.inputs) - len(gxs))
            for t, gx, need in zip(node.inputs, gxs, node.needs_input_grad):
                if not need:
                    continue
                if gx is not None:
                    if gx.shape != t.shape:
                        raise RuntimeError(
                            f"{type(node).__name__}.backward returned a gradient of shape {tuple(gx.shape)} "
                            f"for an input of shape {tuple(t.shape)}")
                    if gx.dtype != t.dtype:
                        gx = gx.astype(t.dtype)
                if t.grad_fn is None:
                    reach_leaf(t, gx)
                elif gx is not None:
                    slots = pending.get(t.grad_fn)
                    if slots is None:
                        slots = pending[t.grad_fn] = [None] * len(t.grad_fn.outputs_meta)
                    i = t._output_index
                    # Out of place: gx may alias an array another branch still holds.
                    slots[i] = gx if slots[i] is None else slots[i] + gx
            if not retain_graph:
                node._free()


from .backend import _cupy, device_of, get_array_module  # noqa: E402
from .tensor import Tensor  # noqa: E402  (tensor.py imports this module lazily; no cycle at load time)

# Without CuPy every array is a NumPy array, so the device check would only cost time.
_CUDA_POSSIBLE = _cupy is not None
