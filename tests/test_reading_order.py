"""The README's reading order ("Learn backprop from minidl") and ops/__init__.py's: every file exists, its
stated line count is within 15% of the file's, the two lists agree, and the README's example runs."""
from __future__ import annotations

import re
from pathlib import Path

import minidl.ops

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def readme_section() -> str:
    return README.split("## Learn backprop from minidl", 1)[1].split("\n## ", 1)[0]


def readme_order() -> list[tuple[str, int]]:
    rows = re.findall(r"^\| \d+ \| `([^`]+)` \| (\d+) \|", readme_section(), flags=re.M)
    return [(path, int(n)) for path, n in rows]


def ops_order() -> list[tuple[str, int]]:
    rows = re.findall(r"^- ``(\w+\.py)`` \((\d+) lines\)", minidl.ops.__doc__, flags=re.M)
    return [("minidl/ops/" + name, int(n)) for name, n in rows]


def test_line_counts_are_true():
    listed = readme_order() + ops_order()
    assert len(readme_order()) >= 12 and len(ops_order()) >= 5
    for path, stated in listed:
        actual = len((ROOT / path).read_text().splitlines())
        assert abs(actual - stated) <= 0.15 * actual, f"{path}: stated {stated} lines, has {actual}: update it"


def test_ops_order_follows_the_readme():
    readme_ops = [path for path, _ in readme_order() if path.startswith("minidl/ops/")]
    ops = [path for path, _ in ops_order()]
    assert all(p in readme_ops for p in ops), "ops/__init__.py lists a file the README's order lacks"
    assert [p for p in readme_ops if p in ops] == ops, "ops/__init__.py's order differs from the README's"


def test_readme_example_runs(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", readme_section(), flags=re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "graph.svg").stat().st_size > 0
