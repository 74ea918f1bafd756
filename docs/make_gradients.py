"""Write docs/GRADIENTS.md: every minidl op's forward and gradients, read from the Functions themselves.

Every differentiable op is a subclass of ``minidl.autograd.Function`` in ``minidl/ops/*.py`` whose docstring
states its math. This script finds them all (it imports every module of ``minidl/ops`` and walks
``Function.__subclasses__()``), takes the forward and gradient formulas out of each docstring, reads what
``forward`` keeps for ``backward`` from the source (``ast``: the arguments of ``ctx.save_for_backward(...)``
and the ``ctx.<name> = ...`` assignments), and writes one table per file of ``minidl/ops``.

    python docs/make_gradients.py            write docs/GRADIENTS.md
    python docs/make_gradients.py --check    exit 1, naming what changed, when docs/GRADIENTS.md is stale

How a docstring is read (the conventions of ``minidl/ops``, which vary):
    * the first paragraph is the summary; ``y = a * b.   ga = gy * b,  gb = gy * a.`` splits at the
      gradient: the first ``gX = ...`` (or ``Each gX``) after two or more spaces;
    * a ``Forward:`` or ``Backward ...:`` heading takes the lines under it (or the rest of its paragraph);
    * any other line that starts with a gradient (``gx =``, ``gW[g] =``, ``gx_ic =``, ``gW[i] +=``) is
      gradient, with the prose lines that continue it; an indented equation that is not a gradient
      (``loss_i = ...``, ``mu = mean(x)``) is forward;
    * a line ending in ``:`` that opens an indented block (``Training (...):``, ``With g_i the ...:``), or a
      short ``label:`` in front of an equation (``smooth L1:``, ``approximate="tanh":``), is repeated in front
      of the formulas under it, so each cell says which case it is about; ``Notation`` blocks are not.
A docstring with more than its summary is also given whole, under the table, so nothing is lost; one
in which no gradient formula is found is listed at the end of the page (a docstring to fix).
"""
from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import inspect
import pkgutil
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "docs" / "GRADIENTS.md"
COMMAND = "python docs/make_gradients.py"

# Reading order: the ops a student meets first, then the layers built from them. Files not named here
# (a new one) come after these, alphabetically; files without a Function (blocks, checks, winograd) are skipped.
ORDER = ("elementwise", "activation", "reduce", "shape", "matmul", "loss", "conv", "pool", "norm", "layer_norm",
         "dropout", "embedding", "resample")

# ----------------------------------------------------------------------------------------- docstrings
_GRAD_EQ = r"g(?!y\b)[A-Za-z0-9_]*(?:\[[^=]*?\])?\s*\+?=(?!=)"  # gx =, gW[g] =, gx_ic =, gW[idx[p]] +=
GRAD_START = re.compile(rf"(?:{_GRAD_EQ}|Each g[A-Za-z0-9_]*\s)")
GRAD_SPLIT = re.compile(rf"[;,]?\s{{2,}}(?={GRAD_START.pattern})")  # "y = a * b.   ga = ..." -> two parts
EQUATION = re.compile(r"[A-Za-z_][\w']*(?:\([^)]*\))?(?:\[[^\]]*\]+)?\s*(?:\+?=|<-)\s")  # mu = ..., Phi(x) = ...
INLINE_LABEL = re.compile(r"(\S[^:]{0,40}?:)\s{2,}(?=\S)")  # "smooth L1:  loss = ...", 'approximate="none":  ...'
GRADIENT_PROSE = re.compile(r"(?:The )?gradients? ", re.IGNORECASE)
HEADING = re.compile(r"(Forward|Backward)\b[^.]{0,100}?:")
HEADING_MIDLINE = re.compile(r"(?<=\.)\s+(?=(?:Forward|Backward)\b[^.]{0,100}?:)")
SENTENCE_END = (".", ")", "]", ":")


def unrest(text: str) -> str:
    """Drop reST inline markup: ``name`` and :func:`name` read as name (the cells are code already)."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return re.sub(r"``(.+?)``", r"\1", text)


@dataclass
class _Label:
    text: str
    indent: int
    inline: bool  # "label:  equation" (the label is part of its line) rather than a line of its own
    gap: str = "  "  # the spaces after an inline label, kept so that labelled lines stay aligned


@dataclass
class _Cell:
    lines: list = field(default_factory=list)
    last_label: object = None

    def add(self, text: str, label: _Label | None, own_line: bool = False, join: bool = False) -> None:
        """Add a formula line, preceded (once per run of lines) by the label it falls under; ``join``
        continues the previous line instead (a sentence that goes on), so that a table cell wraps it."""
        if join and self.lines and self.last_label is label:
            self.lines[-1] += " " + text
            return
        if label is not None and self.last_label is not label:
            if not label.inline:
                self.lines.append(label.text)
            elif not own_line:
                text = f"{label.text}{label.gap}{text}"
        self.last_label = label
        self.lines.append(text)


def parse_docstring(doc: str) -> tuple[str, list[str], list[str]]:
    """(summary, forward lines, gradient lines) of a Function's docstring, each line verbatim but stripped."""
    lines = doc.splitlines()
    end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    summary = " ".join(line.strip() for line in lines[:end])
    forward, gradient = _Cell(), _Cell()
    head, *tail = GRAD_SPLIT.split(summary, maxsplit=1)
    forward.add(head.rstrip(" ,;"), None)
    if tail:
        gradient.add(tail[0], None)

    body = []
    for line in lines[end:]:
        indent = " " * (len(line) - len(line.lstrip()))
        body += [indent + part.strip() for part in HEADING_MIDLINE.split(line)] if line.strip() else [""]

    block = None  # (cell, indent, bare): the lines under a Forward:/Backward: heading
    label = None
    prev = None  # (indent, class of the line's last part, text) of the previous line of this paragraph
    notation = None  # the indent of the paragraph's first line when it starts with "Notation"
    for n, line in enumerate(body):
        text, indent = line.strip(), len(line) - len(line.lstrip())
        if not text:
            block = label = prev = notation = None
            continue
        if prev is None and block is None and label is None and text.startswith("Notation"):
            notation = indent
        if block is not None:
            cell, h, bare = block
            if (indent > h if bare else indent >= h) and not HEADING.match(text):
                cell.add(text, None, join=not bare and not _starts_formula(text))
                continue
            block = None
        heading = HEADING.match(text)
        if heading:
            cell = forward if heading.group(1) == "Forward" else gradient
            bare = text.endswith(":")
            rest = text if bare else text[heading.end():].strip()
            if rest and rest != f"{heading.group(1)}:":
                cell.add(rest, None)
            block, label, prev = (cell, indent, bare), None, None
            continue
        if label is not None and (indent <= label.indent if not label.inline else indent < label.indent):
            label = None
        next_indent = _indent_of_next(body, n)
        if (text.endswith(":") and not EQUATION.match(text) and not text.startswith("Notation")
                and next_indent is not None and next_indent > indent
                and (prev is None or prev[0] > indent or prev[2].endswith(SENTENCE_END))):
            label, prev = _Label(text, indent, inline=False), (indent, "label", text)
            continue
        inline = INLINE_LABEL.match(text)
        if inline and " = " in inline.group(1):
            inline = None  # "x = y:  ..." is an equation, not a label
        if inline:
            label = _Label(inline.group(1), indent, inline=True, gap=text[inline.end(1):inline.end()])
            core = text[inline.end():]
        else:
            if label is not None and label.inline and indent == label.indent:
                label = None
            core = text
        kind, join = "other", False
        if GRAD_START.match(core):
            parts = [(text, "gradient")]
        else:
            first, *rest = GRAD_SPLIT.split(text, maxsplit=1)
            if prev is not None and indent > prev[0] and prev[1] in ("forward", "gradient"):
                kind, join = prev[1], not _starts_formula(core)  # a deeper line continues the one above
            elif prev is None and GRADIENT_PROSE.match(core):
                kind = "gradient"  # a paragraph that states the gradient in words (Einsum's)
            elif notation is not None and indent <= notation:
                kind = "other"  # the symbols of a Notation paragraph, not the op's formula
            elif EQUATION.match(core):
                kind = "forward"
            elif prev is not None and indent == prev[0] and prev[1] in ("forward", "gradient"):
                kind, join = prev[1], True  # prose that goes on with the formula above it
            parts = [(first.rstrip(" ,;"), kind)] + [(part, "gradient") for part in rest]
        for i, (part, kind) in enumerate(parts):
            if kind in ("forward", "gradient"):
                (forward if kind == "forward" else gradient).add(
                    part, label, own_line=i == 0 and inline is not None, join=i == 0 and join)
        prev = (indent, parts[-1][1], text)
    return summary, forward.lines, gradient.lines


def _starts_formula(text: str) -> bool:
    return bool(GRAD_START.match(text) or EQUATION.match(text) or INLINE_LABEL.match(text))


def _indent_of_next(body: list, n: int):
    nxt = body[n + 1] if n + 1 < len(body) else ""
    return len(nxt) - len(nxt.lstrip()) if nxt.strip() else None


# ----------------------------------------------------------------------------------------- source
@dataclass
class Op:
    name: str
    module: str  # "elementwise"
    path: str  # "minidl/ops/elementwise.py"
    line: int
    doc: str
    summary: str
    forward: list
    gradient: list
    saved: list  # one entry per ctx.save_for_backward(...) call: its arguments as written
    attrs: list  # names of ctx.<name> = ... in forward
    inherited_from: tuple = ()  # (name, path, line) of the base whose forward it runs (reduce's _Extreme)


def _class_nodes(tree: ast.Module) -> dict:
    """Every ClassDef of a module by qualified name."""
    found = {}

    def visit(body, prefix):
        for node in body:
            if isinstance(node, ast.ClassDef):
                found[prefix + node.name] = node
                visit(node.body, prefix + node.name + ".")
    visit(tree.body, "")
    return found


def _saves(forward: ast.FunctionDef) -> tuple[list, list]:
    """The arguments of each ``ctx.save_for_backward(...)`` call and the names of ``ctx.<name> = ...``."""
    ctx = forward.args.args[0].arg if forward.args.args else "ctx"
    events = []
    for node in ast.walk(forward):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "save_for_backward" and isinstance(node.func.value, ast.Name)
                and node.func.value.id == ctx):
            events.append((node.lineno, node.col_offset, "saved", ", ".join(ast.unparse(a) for a in node.args)))
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            for t in ast.walk(target):
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == ctx:
                    events.append((t.lineno, t.col_offset, "attr", t.attr))
    saved, attrs = [], []
    for *_, kind, text in sorted(events):
        bucket = saved if kind == "saved" else attrs
        if text not in bucket:
            bucket.append(text)
    return saved, attrs


def _function_classes() -> list:
    """Every subclass of Function defined in minidl/ops, found by importing each module of the package."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import minidl.ops
    from minidl.autograd import Function
    for info in sorted(pkgutil.iter_modules(minidl.ops.__path__), key=lambda m: m.name):
        importlib.import_module(f"minidl.ops.{info.name}")
    found, stack = [], [Function]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                stack.append(sub)
    return [c for c in found if c.__module__.startswith("minidl.ops.")]


def collect() -> list:
    """Every op, in reading order: by file (ORDER, then the others alphabetically), then by line."""
    classes = _function_classes()
    trees, nodes = {}, {}
    for cls in classes:
        path = Path(sys.modules[cls.__module__].__file__).resolve()
        if path not in trees:
            trees[path] = _class_nodes(ast.parse(path.read_text(encoding="utf-8")))
        nodes[cls] = (path, trees[path][cls.__qualname__])
    ops = []
    for cls in classes:
        if cls.__name__.startswith("_") and any(issubclass(other, cls) and other is not cls for other in classes):
            continue  # a private base (reduce's _Extreme): its subclasses are the ops, and name it
        path, node = nodes[cls]
        owner = next(c for c in cls.__mro__ if c in nodes and any(
            isinstance(f, ast.FunctionDef) and f.name == "forward" for f in nodes[c][1].body))
        forward_node = next(f for f in nodes[owner][1].body if isinstance(f, ast.FunctionDef) and f.name == "forward")
        saved, attrs = _saves(forward_node)
        doc = inspect.cleandoc(cls.__doc__ or "")
        summary, fwd, grad = parse_docstring(doc)
        inherited = ()
        if owner is not cls:
            inherited = (owner.__name__, _rel(nodes[owner][0]), nodes[owner][1].lineno)
        ops.append(Op(cls.__name__, cls.__module__.rsplit(".", 1)[1], _rel(path), node.lineno, doc, summary,
                      fwd, grad, saved, attrs, inherited))
    rank = {name: i for i, name in enumerate(ORDER)}
    ops.sort(key=lambda op: (rank.get(op.module, len(ORDER)), op.module, op.line))
    return ops


def _rel(path: Path) -> str:
    return path.resolve().relative_to(REPO).as_posix()


# ----------------------------------------------------------------------------------------- markdown
def code(text: str) -> str:
    """``text`` as a Markdown code span that survives a table cell (backticks and pipes inside)."""
    text = text.replace("|", "\\|")
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def prose(text: str, cell: bool = False) -> str:
    """A docstring paragraph as Markdown prose: reST literals become code spans, stray * and _ are escaped
    (and | too in a table ``cell``)."""
    if cell:
        text = text.replace("|", "\\|")
    out = []
    for i, part in enumerate(re.split(r"(``.+?``|:[a-z]+:`~?[^`]+`)", text)):
        if i % 2:
            out.append(f"`{unrest(part)}`")
        else:  # only what Markdown would read as markup: * and _ at a word's edge, < before a tag's name
            out.append(re.sub(r"(\*|(?<!\w)_|_(?!\w)|<(?=[A-Za-z/!]))", r"\\\1", part))
    return "".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _paragraphs(doc: str) -> list:
    return [" ".join(line.strip() for line in p.splitlines()) for p in re.split(r"\n\s*\n", doc.strip())
            if p.strip()]


def _module_intro(module: str) -> tuple[str, str]:
    """(title, intro) of a file's section, from its module docstring."""
    doc = inspect.cleandoc(sys.modules[f"minidl.ops.{module}"].__doc__ or "")
    raw = re.split(r"\n\s*\n", doc.strip()) if doc else []
    paragraphs = _paragraphs(doc)
    first = paragraphs[0] if paragraphs else module
    title = re.split(r"[:.]\s", first + " ", maxsplit=1)[0].strip().rstrip(".")
    intro = [prose(first)] if first.rstrip(".") != title else []
    # The second paragraph too, when it is prose that stands alone (not the lead-in to an indented block).
    if len(paragraphs) > 1 and not paragraphs[1].endswith(":") and not re.search(r"\n\s", raw[1]):
        intro.append(prose(paragraphs[1]))
    return title, "\n\n".join(intro)


def _cell(lines: list) -> str:
    return "<br>".join(code(unrest(line)) for line in lines)


def _forward_cell(op: Op) -> str:
    """The summary as prose when it is words ("Softmax cross-entropy with ..."), as code when it is a formula."""
    if not op.doc:
        return "(no docstring)"
    head, *rest = op.forward
    if EQUATION.match(head) or head.startswith("y"):
        return _cell(op.forward)
    return "<br>".join([prose(head, cell=True)] + ([_cell(rest)] if rest else []))


def _saved_cell(op: Op) -> str:
    parts = []
    if op.saved:
        parts.append(" or ".join(code(s) for s in op.saved))
    if op.attrs:
        parts.append("ctx: " + ", ".join(code(a) for a in op.attrs))
    if op.inherited_from:
        name, path, line = op.inherited_from
        parts.append(f"(forward inherited from `{name}`, [{path}:{line}](../{path}#L{line}))")
    return "<br>".join(parts) or "nothing"


def _says_more(op: Op) -> bool:
    """Whether the docstring holds a line that the table does not show (notation, notes), or no gradient."""
    if not op.doc:
        return False
    shown = " ".join(" ".join([op.summary, *op.forward, *op.gradient]).split())
    return not op.gradient or any(" ".join(line.split()) not in shown for line in op.doc.splitlines())


def _fenced(text: str) -> str:
    runs = [len(r) for r in re.findall(r"`{3,}", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}text\n{text}\n{fence}"


def render(ops: list) -> str:
    groups = {}
    for op in ops:
        groups.setdefault(op.module, []).append(op)
    missing = [op for op in ops if not op.gradient]
    out = [
        "# Gradients of every minidl op",
        "",
        f"Every differentiable op of minidl is a subclass of `minidl.autograd.Function` in `minidl/ops/`, with its "
        f"`forward` and `backward` side by side and its math in its docstring. This page gathers all {len(ops)} "
        "of them: for each, the forward and the gradients as its docstring states them, the file and line of its "
        "class, and what its `forward` keeps for `backward`.",
        "",
        "It is generated from the Functions' docstrings and source by `docs/make_gradients.py`, so do not edit "
        "it by hand: after changing an op or its docstring, regenerate it with",
        "",
        "```sh",
        COMMAND,
        "```",
        "",
        f"CI fails when this page is out of date: `tests/test_gradients_doc.py` runs the check of "
        f"`{COMMAND} --check`, which names the ops that changed.",
        "",
        "How to read the tables:",
        "",
        "- `y` is an op's output and `x` (or `a`, `b`, `W`, ...) its inputs; `gy` is the gradient of the loss "
        "with respect to `y`, the upstream gradient that `backward` receives, and `gx` (`ga`, `gW`, ...) the "
        "gradient with respect to `x` (`a`, `W`, ...) that it returns. A loss calls the gradient that reaches "
        "each per-position loss `g`.",
        "- Formulas are the docstrings' own words (reST markup such as ``` ``name`` ``` dropped). Where a "
        "docstring says more (notation, shapes, notes), the whole of it is under the table: open "
        "\"Full docstring\".",
        "- *Saved for backward* is read from the source of `forward`: first the arrays passed to "
        "`ctx.save_for_backward(...)` (read back as `ctx.saved` and freed after the backward pass: the memory "
        "a graph holds until then), then `ctx: ...`, the names of the other values it stores as "
        "`ctx.name = ...` (shapes, flags, hyperparameters).",
        "",
        "| File | Ops |",
        "|---|---|",
    ]
    for module, members in groups.items():
        title, _ = _module_intro(module)
        heading = f"{title} — minidl/ops/{module}.py"
        names = ", ".join(op.name for op in members)
        out.append(f"| [{module}.py](#{slug(heading)}) | {names} |")
    for module, members in groups.items():
        title, intro = _module_intro(module)
        out += ["", f"## {title} — minidl/ops/{module}.py", "", intro, "",
                "| Function | Forward | Gradient | Saved for backward |", "|---|---|---|---|"]
        for op in members:
            where = f"[{op.path}:{op.line}](../{op.path}#L{op.line})"
            gradient = _cell(op.gradient) if op.gradient else (
                "no gradient formula in the docstring: see it below" if op.doc else "(no docstring)")
            out.append(f"| **{op.name}**<br>{where} | {_forward_cell(op)} | {gradient} | {_saved_cell(op)} |")
        for op in members:
            if _says_more(op):
                opened = "" if op.gradient else " open"
                out += ["", f"<details{opened}><summary>Full docstring: <b>{op.name}</b></summary>", "",
                        _fenced(op.doc), "", "</details>"]
    if missing:
        out += ["", "## Docstrings without a gradient formula", "",
                "No gradient formula was found in these docstrings (each is shown whole above); state the "
                "gradient, as the other Functions do:", ""]
        out += [f"- **{op.name}**, [{op.path}:{op.line}](../{op.path}#L{op.line})" for op in missing]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------- check
_ROW = re.compile(r"^\| \*\*(\w+)\*\*<br>\[([^\]:]+):(\d+)\]")
_DETAILS = re.compile(r"^<details(?: open)?><summary>Full docstring: <b>(\w+)</b></summary>")
_GROUP = re.compile(r"^## .* — (minidl/ops/\S+\.py)$")


def _sections(text: str) -> dict:
    """The lines of a generated page by what they describe: "Mul (minidl/ops/elementwise.py)", or "page"."""
    sections, group, current = {}, "", None
    for line in text.splitlines():
        if m := _GROUP.match(line):
            group, current = m.group(1), None
        if m := _ROW.match(line):
            key = f"{m.group(1)} ({m.group(2)})"
        elif m := _DETAILS.match(line):
            current = key = f"{m.group(1)} ({group})"
        elif current is not None:
            key = current
            if line == "</details>":
                current = None
        else:
            key = "page"
        sections.setdefault(key, []).append(line)
    return sections


def describe_changes(old: str, new: str) -> str:
    """What differs between the checked-in page and a fresh one, op by op, then the first lines of the diff."""
    before, after = _sections(old), _sections(new)
    added = [k for k in after if k not in before and k != "page"]
    removed = [k for k in before if k not in after and k != "page"]
    moved, changed = [], []
    for k in after:
        if k in before and k != "page" and before[k] != after[k]:
            unnumbered = [re.sub(r":\d+\]\(([^)#]+)#L\d+\)", "]", line) for line in before[k]]
            if unnumbered == [re.sub(r":\d+\]\(([^)#]+)#L\d+\)", "]", line) for line in after[k]]:
                moved.append(k)
            else:
                changed.append(k)
    lines = []
    for what, keys in (("new, not on the page yet", added), ("on the page, no longer in minidl/ops", removed),
                       ("changed", changed), ("moved to another line, nothing else changed", moved)):
        if keys:
            lines.append(f"  {what}: " + ", ".join(keys))
    if before.get("page") != after.get("page"):
        lines.append("  changed: the page's text outside the op tables (header, file sections)")
    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), "docs/GRADIENTS.md (checked in)",
                                     "docs/GRADIENTS.md (generated now)", lineterm="", n=1))
    shown = diff[:60] + ([f"... ({len(diff) - 60} more diff lines)"] if len(diff) > 60 else [])
    return "\n".join(lines + ["", *shown])


def check(current: str | None = None, ops: list | None = None) -> tuple[bool, str]:
    """(up to date?, message). ``current`` defaults to the checked-in docs/GRADIENTS.md."""
    if current is None:
        if not OUTPUT.exists():
            return False, f"docs/GRADIENTS.md does not exist. Generate it: {COMMAND}"
        current = OUTPUT.read_text(encoding="utf-8")
    fresh = render(collect() if ops is None else ops)
    if current == fresh:
        return True, "docs/GRADIENTS.md is up to date."
    return False, ("docs/GRADIENTS.md is out of date with the Functions in minidl/ops:\n"
                   + describe_changes(current, fresh) + f"\n\nRegenerate it: {COMMAND}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and say what changed if docs/GRADIENTS.md is stale")
    args = parser.parse_args(argv)
    ops = collect()
    if args.check:
        ok, message = check(ops=ops)
        print(message, file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    text = render(ops)
    OUTPUT.write_text(text, encoding="utf-8")
    missing = [op for op in ops if not op.gradient]
    print(f"wrote {_rel(OUTPUT)}: {len(ops)} Functions, {text.count(chr(10))} lines")
    for op in missing:
        print(f"  no gradient formula in the docstring of {op.name} ({op.path}:{op.line})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
