"""minidl.viz.graph.draw_graph: the DOT text of a recorded graph, and the picture (Graphviz or matplotlib)."""
from __future__ import annotations

import os
import re
import shutil
import stat
import sys
from collections import Counter

import numpy as np
import pytest

import minidl as mdl
import minidl.nn as nn
import minidl.nn.functional as F
from minidl.viz import graph
from minidl.viz.graph import draw_graph

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def parse_dot(dot: str):
    """{node id: label} and [(from label, to label)] from draw_graph's DOT text."""
    labels = {m.group(1): m.group(2).replace("\\n", "\n")
              for m in re.finditer(r'^\s*(n\d+) \[label="((?:[^"\\]|\\.)*)"', dot, re.M)}
    edges = [(labels[a], labels[b]) for a, b in re.findall(r"^\s*(n\d+) -> (n\d+);", dot, re.M)]
    return labels, edges


def small_cnn():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3))


def cnn_loss(model, rng):
    x = mdl.tensor(rng.standard_normal((2, 1, 6, 6)).astype(np.float32))
    y = mdl.tensor(np.array([0, 2]))
    return F.cross_entropy(model(x), y)


def test_dot_has_ops_leaves_and_data_flow_edges(rng):
    """One node per op, labelled with the op's name; one per leaf with its shape (and parameter name); edges
    from each input to the op that used it, and from the last op to the output."""
    model = small_cnn()
    loss = cnn_loss(model, rng)
    labels, edges = parse_dot(draw_graph(loss, params=dict(model.named_parameters())))
    ops = Counter(label for label in labels.values() if "(" not in label)
    assert ops == Counter(["Conv2d", "ReLU", "MaxPool2d", "Reshape", "Linear", "CrossEntropy"])
    assert set(labels.values()) >= {"0.weight\n(2, 1, 3, 3)", "0.bias\n(2,)", "4.weight\n(3, 8)", "4.bias\n(3,)",
                                    "(2, 1, 6, 6)", "(2,)", "output\n()"}
    assert sorted(edges) == sorted([
        ("(2, 1, 6, 6)", "Conv2d"), ("0.weight\n(2, 1, 3, 3)", "Conv2d"), ("0.bias\n(2,)", "Conv2d"),
        ("Conv2d", "ReLU"), ("ReLU", "MaxPool2d"), ("MaxPool2d", "Reshape"), ("Reshape", "Linear"),
        ("4.weight\n(3, 8)", "Linear"), ("4.bias\n(3,)", "Linear"), ("Linear", "CrossEntropy"),
        ("(2,)", "CrossEntropy"), ("CrossEntropy", "output\n()")])
    unnamed = parse_dot(draw_graph(loss))[0]
    assert "(2, 1, 3, 3)" in unnamed.values() and "0.weight\n(2, 1, 3, 3)" not in unnamed.values()


def test_drawing_does_not_change_the_graph(rng):
    """backward() after draw_graph gives the gradients it gives without it."""
    mdl.manual_seed(0)
    model = small_cnn()
    state = model.state_dict()
    loss = cnn_loss(model, np.random.default_rng(1))
    draw_graph(loss, params=dict(model.named_parameters()))
    loss.backward()
    grads = [p.grad.array.copy() for p in model.parameters()]
    model.zero_grad()
    model.load_state_dict(state)
    cnn_loss(model, np.random.default_rng(1)).backward()
    for g, p in zip(grads, model.parameters()):
        np.testing.assert_array_equal(g, p.grad.array)


def test_freed_graph_and_leaf(rng):
    """A graph freed by backward() is an error that says what to do; a leaf draws as one node."""
    w = mdl.tensor(rng.standard_normal(3), requires_grad=True)
    y = (w * w).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="freed by backward"):
        draw_graph(y)
    labels, edges = parse_dot(draw_graph(w))
    assert list(labels.values()) == ["output\n(3,)"] and edges == []
    with pytest.raises(TypeError, match="expected a Tensor"):
        draw_graph(np.zeros(3))


def test_deep_graph_does_not_recurse(rng):
    """A chain of 3000 ops (deeper than Python's recursion limit) is walked and laid out."""
    x = mdl.tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    assert sys.getrecursionlimit() < 3000
    labels, edges = parse_dot(draw_graph(y))
    assert Counter(labels.values())["Mul"] == 3000 and len(edges) == 3001
    nodes, edge_ids = graph._collect(y, None)
    rank = graph._layers(nodes, edge_ids)
    assert all(rank[a] < rank[b] for a, b in edge_ids)


def read_png(path):
    from matplotlib.image import imread
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    return imread(path)


def test_png_with_matplotlib_when_dot_is_missing(rng, tmp_path, monkeypatch):
    """Without Graphviz, a PNG is drawn with matplotlib (a layered picture of a readable size)."""
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    model = small_cnn()
    path = tmp_path / "graph.png"
    dot = draw_graph(cnn_loss(model, rng), str(path), params=dict(model.named_parameters()))
    image = read_png(path)
    assert image.shape[0] > 300 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05  # not a blank page
    assert dot.startswith("digraph")
    dot_path = tmp_path / "graph.dot"
    assert draw_graph(cnn_loss(model, rng), str(dot_path)) == dot_path.read_text()


def test_png_through_dot_program(rng, tmp_path, monkeypatch):
    """With ``dot`` on PATH, the DOT text is piped to ``dot -Tpng -o path`` (here a stand-in ``dot`` script
    that records its arguments and input)."""
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\n"
                    "import sys\n"
                    "out = sys.argv[sys.argv.index('-o') + 1]\n"
                    "open(out, 'w').write(' '.join(sys.argv[1:]) + '\\n' + sys.stdin.read())\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(fake.parent) + os.pathsep + os.environ.get("PATH", ""))
    path = tmp_path / "graph.png"
    dot = draw_graph(cnn_loss(small_cnn(), rng), str(path))
    args, text = path.read_text().split("\n", 1)
    assert args == f"-Tpng -o {path}" and text == dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed here")
def test_png_with_real_graphviz(rng, tmp_path):
    path = tmp_path / "graph.png"
    draw_graph(cnn_loss(small_cnn(), rng), str(path))
    assert read_png(path).shape[0] > 100
