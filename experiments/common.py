"""What every experiment script shares: finding the data, the run folder, and the closing files.

Experiments stay thin: they parse flags, build a model from ``models/``, call :mod:`minidl.training`, and
write a run folder with these helpers.
"""
from __future__ import annotations

import gc
import json
import os
import platform
import sys
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # so ``models`` imports when a script is run from anywhere


def data_root(name: str, data_dir: str | None) -> tuple[str | None, bool]:
    """Where dataset ``name`` is read from, and whether it may be downloaded.

    Order: ``--data-dir``; ``$MINIDL_DATA/<name>`` (the loaders read it themselves); a ``shared/data/<name>``
    folder beside this checkout (the development copy); else the cache, downloading what is missing.
    """
    if data_dir:
        return data_dir, False
    if os.environ.get("MINIDL_DATA"):
        return None, False
    shared = REPO.parent / "shared" / "data" / name
    if shared.is_dir():
        return str(shared), False
    return None, True


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n")
    os.replace(tmp, path)


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def machine() -> dict:
    """The machine a run was made on, for config.json."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def exit_without_gc(code: int) -> NoReturn:
    """End the script with exit status ``code``, sparing the garbage collector's passes at shutdown.

    An exiting interpreter tears every module down and runs the cyclic garbage collector over what is
    left: the ~100,000 objects that numba and matplotlib create, 0.3 to 0.5 s measured on the 2-core
    development machine, for nothing, as the operating system takes the whole process's memory back.
    ``gc.freeze()`` moves every object out of the collector's reach first, so teardown only drops
    references. Call it last, with every file written and closed: an object only the collector would free
    (one in a reference cycle) is then not finalized, which is harmless at exit and only at exit.
    """
    gc.freeze()
    sys.exit(code)
