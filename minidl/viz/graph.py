"""Draw the graph that autograd recorded: which ops made a tensor, from which leaves.

``draw_graph(loss)`` returns Graphviz DOT text; with ``path=`` it also writes a picture, through Graphviz's
``dot`` program when it is installed and with matplotlib otherwise. Reading the picture next to the model's
``forward`` shows what ``backward()`` will walk through, in reverse::

    loss = F.cross_entropy(model(x), y)
    mdl.viz.draw_graph(loss, "graph.png", params=dict(model.named_parameters()))
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections import defaultdict

from ..autograd import Edge
from ..tensor import Tensor

__all__ = ["draw_graph"]

# Fill colours: ops, trainable leaves (parameters), leaves without gradient (data), the output.
_COLORS = {"op": "#d9d9d9", "param": "#b3d9ff", "leaf": "#ffffff", "output": "#c6efce"}


def _shape_text(t: Tensor) -> str:
    return str(tuple(t.shape))


def _collect(tensor: Tensor, params: dict | None):
    """Walk the graph from ``tensor`` with an explicit stack (a 10,000-op chain must not hit Python's
    recursion limit) and return ``(nodes, edges)``: nodes as ``(id, label, kind)`` in discovery order, edges
    as ``(from_id, to_id)`` in data-flow direction (input -> op -> output)."""
    names = {id(p): name for name, p in (params or {}).items()}
    ids: dict[int, str] = {}
    nodes, edges = [], []

    def node_id(obj, label: str, kind: str) -> tuple[str, bool]:
        key = id(obj)
        if key in ids:
            return ids[key], False
        ids[key] = f"n{len(ids)}"
        nodes.append((ids[key], label, kind))
        return ids[key], True

    out_label = "output\n" + _shape_text(tensor)
    out_id, _ = node_id(tensor, out_label, "output")
    if tensor.grad_fn is None:
        return nodes, edges
    stack = []
    root_id, _ = node_id(tensor.grad_fn, type(tensor.grad_fn).__name__, "op")
    edges.append((root_id, out_id))
    stack.append(tensor.grad_fn)
    while stack:
        fn = stack.pop()
        if getattr(fn, "freed", False) or not hasattr(fn, "inputs"):
            raise RuntimeError(f"draw_graph: the graph was freed by backward() (at {type(fn).__name__}); call "
                               f"draw_graph before backward(), or backward(retain_graph=True)")
        fn_id = ids[id(fn)]
        for t in fn.inputs:
            if not isinstance(t, (Tensor, Edge)):
                continue  # a constant such as the 2 in x * 2
            if t.grad_fn is not None:
                src_id, new = node_id(t.grad_fn, type(t.grad_fn).__name__, "op")
                if new:
                    stack.append(t.grad_fn)
            else:
                name = names.get(id(t))
                label = _shape_text(t) if name is None else f"{name}\n{_shape_text(t)}"
                src_id, _ = node_id(t, label, "param" if t.requires_grad else "leaf")
            edges.append((src_id, fn_id))
    return nodes, edges


def _dot_text(nodes, edges) -> str:
    def quote(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    lines = ["digraph minidl {", "  graph [rankdir=TB];", '  node [fontname="Helvetica", fontsize=10];']
    for nid, label, kind in nodes:
        shape = "box" if kind == "op" else "ellipse"
        lines.append(f"  {nid} [label={quote(label)}, shape={shape}, style=filled, "
                     f"fillcolor={quote(_COLORS[kind])}];")
    for a, b in edges:
        lines.append(f"  {a} -> {b};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _layers(nodes, edges) -> dict[str, int]:
    """Rank of each node = length of the longest path reaching it from a source (Kahn's order, no
    recursion), so every edge points to a lower row of the picture; then each source (a weight, the input)
    moves down to just above the first op that uses it."""
    preds, succs = defaultdict(list), defaultdict(list)
    for a, b in edges:
        succs[a].append(b)
        preds[b].append(a)
    indeg = {nid: len(preds[nid]) for nid, _, _ in nodes}
    rank = {nid: 0 for nid, _, _ in nodes}
    ready = [nid for nid, d in indeg.items() if d == 0]
    while ready:
        a = ready.pop()
        for b in succs[a]:
            rank[b] = max(rank[b], rank[a] + 1)
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
    for nid, _, _ in nodes:
        if not preds[nid] and succs[nid]:
            rank[nid] = min(rank[b] for b in succs[nid]) - 1
    return rank


def _order_rows(rows: dict, preds: dict, succs: dict) -> dict[str, float]:
    """x position of each node: rows ordered by the mean x of each node's neighbours in the row above, then
    the row below, then above again (the barycentre heuristic), so that edges cross less."""
    x = {n: i - (len(row) - 1) / 2 for row in rows.values() for i, n in enumerate(row)}
    order = sorted(rows)
    for ranks, links in ((order, preds), (order[::-1], succs), (order, preds)):
        for r in ranks:
            row = rows[r]
            row.sort(key=lambda n: sum(x[m] for m in links[n]) / len(links[n]) if links[n] else x[n])
            for i, n in enumerate(row):
                x[n] = i - (len(row) - 1) / 2
    return x


def _draw_matplotlib(nodes, edges, path: str, fmt: str) -> None:
    """A layered drawing: one row per rank, nodes spread along the row in the order of the mean position of
    their inputs (so edges cross less), boxes for ops, rounded boxes for tensors, arrows for data flow."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    rank = _layers(nodes, edges)
    preds, succs = defaultdict(list), defaultdict(list)
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    rows = defaultdict(list)
    for nid, _, _ in nodes:
        rows[rank[nid]].append(nid)
    x = _order_rows(rows, preds, succs)
    width = max(len(row) for row in rows.values())
    top = min(rows)
    height = max(rows) - top + 1
    fig_w, fig_h = max(4.0, 2.2 * width), max(3.0, 1.1 * height)
    scale = min(1.0, 250.0 / max(fig_w, fig_h))  # keep the picture within what an image can hold
    fig = Figure(figsize=(fig_w * scale, fig_h * scale))
    ax = fig.subplots()
    pos = {n: (x[n], top - rank[n]) for n in x}
    for a, b in edges:
        ax.annotate("", xy=pos[b], xytext=pos[a],
                    arrowprops=dict(arrowstyle="-|>", color="#555555", lw=0.8, shrinkA=14, shrinkB=14))
    for nid, label, kind in nodes:
        box = "square,pad=0.4" if kind == "op" else "round,pad=0.4"
        ax.text(*pos[nid], label, ha="center", va="center", fontsize=8 * scale, family="sans-serif",
                bbox=dict(boxstyle=box, fc=_COLORS[kind], ec="#333333", lw=0.8))
    ax.set_xlim(-width / 2 - 0.5, width / 2 + 0.5)
    ax.set_ylim(-height + 0.5, 0.5)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, format=fmt, dpi=100)


def draw_graph(tensor: Tensor, path: str | None = None, params: dict | None = None) -> str:
    """The graph that produced ``tensor``, as Graphviz DOT text, and optionally as a picture.

    One box per op node (``Function``), labelled with the op's name (``Conv2d``, ``ReLU``, ``Add``, ...);
    one ellipse per leaf tensor, labelled with its shape and, when ``params`` names it, its name (blue when
    it requires grad, white otherwise); one for ``tensor`` itself. Edges run in data-flow direction, from
    inputs to the op that consumed them. Nothing in the graph is changed, so ``backward()`` still works.

    Args:
        tensor: the tensor whose history to draw (typically a loss), before ``backward()`` frees the graph.
        path: where to write a picture (PNG; ``.svg`` and ``.pdf`` by extension; ``.dot``/``.gv`` get the DOT
            text). Rendered by Graphviz's ``dot`` when it is on PATH, else by matplotlib.
        params: ``{name: Parameter}``, e.g. ``dict(model.named_parameters())``, to label the weights.
    Returns:
        The DOT text.
    Raises:
        RuntimeError: the graph was already freed by ``backward()``.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"draw_graph: expected a Tensor, got {type(tensor).__name__}")
    nodes, edges = _collect(tensor, params)
    dot = _dot_text(nodes, edges)
    if path is not None:
        ext = os.path.splitext(str(path))[1].lower().lstrip(".")
        if ext in ("dot", "gv"):
            with open(path, "w") as f:
                f.write(dot)
            return dot
        fmt = ext if ext in ("png", "svg", "pdf") else "png"
        if shutil.which("dot"):
            subprocess.run(["dot", f"-T{fmt}", "-o", str(path)], input=dot, text=True, check=True,
                           capture_output=True)
        else:
            _draw_matplotlib(nodes, edges, str(path), fmt)
    return dot
