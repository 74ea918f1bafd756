"""minidl/backend/allocator.py: the glibc settings made at import, seen from a fresh process."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

# A worker thread allocates and keeps a 4 MB array, then glibc's malloc_stats() lists the heaps ("Arena N:")
# on stderr.
SCRIPT = """
import ctypes, threading
import numpy as np
import minidl
kept = []
thread = threading.Thread(target=lambda: kept.append(np.ones(2**20, np.float32)))
thread.start()
thread.join()
ctypes.CDLL(None).malloc_stats()
"""


def arenas(env: dict) -> int:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return sum(line.startswith("Arena ") for line in proc.stderr.splitlines())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_stats")
def test_threads_share_one_arena():
    """With minidl's settings a worker thread allocates from the one heap; with any MALLOC_* variable set by
    the user, minidl leaves glibc alone and the thread gets its own arena (so the check can fail)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    assert arenas(env) == 1
    assert arenas({**env, "MALLOC_TOP_PAD_": "131072"}) == 2
