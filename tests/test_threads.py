"""minidl.backend.threads: the GEMM split across cores gives NumPy's product, for every operand layout."""
import time

import numpy as np
import pytest

from minidl.backend import threads


@pytest.fixture
def two_workers(monkeypatch):
    """Split products over two threads, whatever this machine's core count is."""
    monkeypatch.setattr(threads, "_workers", 2)
    monkeypatch.setattr(threads, "SPLIT_MACS", 1)


@pytest.mark.parametrize("a_shape, b_shape", [
    ((32, 288), (288, 1000)),         # conv forward: W @ col
    ((3, 16, 40), (3, 40, 300)),      # grouped: one product per group
    ((16, 40), (2, 40, 130)),         # a broadcast over b's leading axis
    ((5, 7), (7, 3)),                 # too narrow to split
])
def test_matmul_equals_numpy(rng, two_workers, a_shape, b_shape):
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    np.testing.assert_allclose(threads.matmul(a, b), np.matmul(a, b), rtol=1e-4, atol=1e-4)  # float32 sums


def test_matmul_into_out_with_strided_operands(rng, two_workers):
    """Transposed and column-sliced operands (as the convolution's backward passes them), written into out."""
    g = rng.standard_normal((24, 900)).astype(np.float32)[:, 100:700]  # rows 900 apart, like gy's block columns
    col = rng.standard_normal((50, 600)).astype(np.float32)
    out = np.full((24, 50), np.nan, np.float32)
    result = threads.matmul(g, col.T, out=out)
    assert result is out
    np.testing.assert_allclose(out, g @ col.T, rtol=1e-5, atol=1e-4)


def test_openblas_core_names_the_kernels():
    core = threads.openblas_core()
    assert core is None or (isinstance(core, str) and core)


def test_elementwise_split_equals_numpy(rng, two_workers, monkeypatch):
    monkeypatch.setattr(threads, "SPLIT_ELEMENTS", 1)
    a = rng.standard_normal((7, 3, 5)).astype(np.float32)
    b = rng.standard_normal((7, 3, 5)).astype(np.float32)
    out = np.empty_like(a)
    assert threads.elementwise(np.multiply, out, a, b) is out
    np.testing.assert_array_equal(out, a * b)
    scalar = np.empty((), np.float32)  # a 0-d array is not split
    threads.elementwise(np.maximum, scalar, np.float32(-1), np.float32(0))
    assert scalar == 0


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_forked_child_gets_a_new_pool(rng, two_workers):
    """A child forked after the pool started must not hand work to threads it does not have (it would hang)."""
    import os
    a = rng.standard_normal((8, 300)).astype(np.float32)
    b = rng.standard_normal((300, 400)).astype(np.float32)
    threads.matmul(a, b)  # the pool exists now
    pid = os.fork()
    if pid == 0:  # child: exit 0 only if the split product completes and is right
        ok = np.allclose(threads.matmul(a, b), a @ b, rtol=1e-4, atol=1e-4)
        os._exit(0 if ok else 1)
    for _ in range(200):  # up to 20 s; a child stuck waiting for a thread it lacks is killed
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung in threads.matmul")
    assert os.WEXITSTATUS(status) == 0
