"""The autograd engine: graph recording, accumulation, freeing, grad modes, errors."""
import numpy as np
import pytest

import minidl as mdl
from minidl.autograd import Function
from minidl.gradcheck import GradcheckError


def test_gradient_accumulates_over_reused_node(rng):
    x = mdl.tensor(rng.standard_normal(5), requires_grad=True)
    y = x * 2.0
    z = y * y + y  # y used three times
    gz = rng.standard_normal(5)
    z.backward(gz)
    y_np = x.numpy() * 2
    np.testing.assert_allclose(x.grad.numpy(), gz * (2 * y_np + 1) * 2, rtol=1e-6)


def test_leaf_gradient_accumulates_across_backward_calls(rng):
    x = mdl.tensor(rng.standard_normal(3), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 4.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 7.0))


def test_long_chain_needs_no_recursion():
    x = mdl.tensor([1.0], dtype=mdl.float64, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001 + 0.0
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 10_000], rtol=1e-9)


def test_second_backward_through_freed_graph_raises():
    x = mdl.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = mdl.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_saved_arrays_are_freed_after_backward():
    x = mdl.tensor(np.ones(4), requires_grad=True)
    y = x * x
    node = y.grad_fn
    assert node.saved
    y.backward(np.ones(4))
    assert not hasattr(node, "inputs") and node.freed


def test_no_grad_records_nothing_and_restores_mode():
    x = mdl.tensor([1.0], requires_grad=True)
    with mdl.no_grad():
        y = x * 2
        with mdl.enable_grad():
            z = x * 2
    assert y.grad_fn is None and not y.requires_grad
    assert z.grad_fn is not None
    assert mdl.is_grad_enabled()

    @mdl.no_grad()
    def double(t):
        return t * 2
    assert double(x).grad_fn is None


def test_detach_cuts_the_graph():
    x = mdl.tensor([3.0], requires_grad=True)
    y = x.detach() * x
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0])


def test_backward_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mdl.tensor([1.0]).backward()


def test_backward_of_non_scalar_needs_gradient():
    x = mdl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="shape"):
        (x * 2).backward(np.ones(3))


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(RuntimeError, match="floating-point"):
        mdl.tensor([1, 2], requires_grad=True)


def test_branch_without_gradient_gets_zeros():
    class Split(Function):
        """Two outputs: y1 = 2x, y2 = 3x."""

        def forward(ctx, x):
            return x * 2, x * 3

        def backward(ctx, g1, g2):
            return 2 * g1 + 3 * g2

    x = mdl.tensor([1.0, 1.0], requires_grad=True)
    y1, _ = Split.apply(x)
    y1.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_backward_returning_wrong_shape_is_reported():
    class Bad(Function):
        def forward(ctx, x):
            return x.sum()

        def backward(ctx, gy):
            return gy

    x = mdl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Bad\.backward returned a gradient of shape \(\)"):
        Bad.apply(x).backward()


def test_gradcheck_reports_the_worst_element(rng):
    class WrongSquare(Function):
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        def backward(ctx, gy):
            x, = ctx.saved
            return gy * x  # missing the factor 2

    x = mdl.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    with pytest.raises(GradcheckError, match="worst element"):
        mdl.gradcheck(WrongSquare.apply, [x])
    assert mdl.gradcheck(WrongSquare.apply, [x], raise_exception=False) is False


def test_gradcheck_needs_float64():
    with pytest.raises(TypeError, match="float64"):
        mdl.gradcheck(lambda t: t * 2, [mdl.tensor([1.0], requires_grad=True)])


def test_mixing_devices_is_an_error_naming_both(monkeypatch):
    from minidl import autograd
    monkeypatch.setattr(autograd, "_CUDA_POSSIBLE", True)
    x = mdl.zeros(2)
    y = mdl.zeros(2)
    on_gpu = y.array  # this one array is reported as a GPU array
    monkeypatch.setattr(autograd, "device_of", lambda a: "cuda" if a is on_gpu else "cpu")
    with pytest.raises(RuntimeError, match=r"Add: expected all tensors on one device, got argument 0 on cpu, "
                                           r"argument 1 on cuda"):
        x + y


def test_leaf_grads_are_private_and_writable():
    a = mdl.randn(3, requires_grad=True)
    b = mdl.randn(3, requires_grad=True)
    (a + b).sum().backward()  # the sum's backward broadcasts; the add's hands one array to both leaves
    a.grad.zero_()
    np.testing.assert_array_equal(a.grad.numpy(), np.zeros(3))
    np.testing.assert_array_equal(b.grad.numpy(), np.ones(3))


# ----------------------------------------------------------------------------- in-place changes after forward
INPLACE_MESSAGE = "modified by an inplace operation"


@pytest.mark.parametrize("change", [
    lambda b: b.zero_(),
    lambda b: b.__setitem__(0, 0.0),
    lambda b: b.detach().zero_(),  # detach() shares the array and its version counter, as in PyTorch
])
def test_inplace_change_of_a_saved_input_raises_naming_the_op(rng, change):
    a = mdl.tensor(rng.standard_normal(3), requires_grad=True)
    b = mdl.tensor(rng.standard_normal(3))
    y = (a * b).sum()
    change(b)
    with pytest.raises(RuntimeError, match=f"Mul.backward: .*{INPLACE_MESSAGE}.*input 1 .*version 1; expected "
                                           "version 0"):
        y.backward()


def test_inplace_change_of_a_saved_output_raises(rng):
    x = mdl.tensor(rng.standard_normal(3), requires_grad=True)
    y = x.sigmoid()  # Sigmoid keeps its output y for dy/dx = y (1 - y)
    z = y.sum()
    y.detach().zero_()
    with pytest.raises(RuntimeError, match=f"Sigmoid.backward: .*{INPLACE_MESSAGE}.*output 0"):
        z.backward()


def test_inplace_change_of_an_input_that_was_not_saved_is_allowed(torch, rng):
    """Add keeps nothing for its backward, so changing b after the forward cannot spoil a gradient
    (PyTorch agrees: no error, the gradient of a is ones)."""
    a = mdl.tensor(rng.standard_normal(3), requires_grad=True)
    b = mdl.tensor(rng.standard_normal(3))
    y = (a + b).sum()
    b.zero_()
    y.backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.ones(3))


def test_optimizer_step_between_forward_and_backward_raises(rng):
    import minidl.nn as nn
    import minidl.optim as optim
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = mdl.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    model(x).sum().backward()
    loss = model(x).sum()
    opt.step()  # changes the weight the pending backward saved
    with pytest.raises(RuntimeError, match=f"Linear.backward: .*{INPLACE_MESSAGE}"):
        loss.backward()


def test_data_writes_are_not_tracked_like_pytorch(torch, rng):
    """``.data`` shares the array but not the version counter: it is how initialisers write unchecked."""
    for lib in (mdl, torch):
        w = lib.tensor([1.0, 2.0], requires_grad=True)
        before = w._version
        w.data.zero_()
        assert w._version == before
        assert w.tolist() == [0.0, 0.0]


def test_inplace_change_of_a_leaf_that_requires_grad_is_refused_outside_no_grad():
    w = mdl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="zero_: a leaf tensor that requires grad"):
        w.zero_()
    with mdl.no_grad():
        w.zero_()
        w[0] = 3.0
    assert w.tolist() == [3.0, 0.0] and w._version == 2


def test_view_shares_the_version_counter_of_its_base(rng):
    """``a[0:3]`` and ``a.view(3)`` are views of a's memory: changing a in place changes what Mul kept."""
    w = mdl.tensor(rng.standard_normal(3), requires_grad=True)
    for view in (lambda a: a[0:3], lambda a: a.view(3), lambda a: a.reshape(1, 3)[0]):
        a = mdl.ones(3, dtype=mdl.float64)
        y = (view(a) * w).sum()
        a.mul_(5)
        with pytest.raises(RuntimeError, match=INPLACE_MESSAGE):
            y.backward()


def test_output_kept_as_a_view_is_tracked(rng):
    """Norm keeps y and returns a squeezed view of it: changing the returned tensor changes y."""
    x = mdl.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    n = x.norm(dim=1)
    n.detach().mul_(0)
    with pytest.raises(RuntimeError, match=f"Norm.backward: .*{INPLACE_MESSAGE}.*output 0"):
        n.sum().backward()


@pytest.mark.parametrize("change", [
    lambda buf, w: buf.add_(w),
    lambda buf, w: buf.copy_(w),
    lambda buf, w: buf.__setitem__(slice(1, None), w[1:] * 2),
    lambda buf, w: buf.addcmul_(w, w),
])
def test_inplace_write_of_an_operand_that_requires_grad_is_refused(rng, change):
    """minidl records no in-place node, so writing w into buf would lose w's gradient: refused, not silent."""
    buf = mdl.zeros(3, dtype=mdl.float64)
    w = mdl.tensor(rng.standard_normal(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="an operand requires grad"):
        change(buf, w)


def test_augmented_assignment_with_an_operand_that_requires_grad_gives_torch_gradients(torch, rng):
    w0, v0 = rng.standard_normal(3), rng.standard_normal(3)
    grads = []
    for lib in (mdl, torch):
        w = lib.tensor(w0, requires_grad=True)
        buf = lib.zeros(3, dtype=lib.float64)
        buf += w
        buf *= lib.tensor(v0)
        buf.sum().backward()
        grads.append(np.array(w.grad.tolist()))
    np.testing.assert_allclose(grads[0], grads[1])


def test_remainder_and_floor_divide_refuse_inputs_that_require_grad(rng):
    x = mdl.tensor(rng.standard_normal(3), requires_grad=True)
    for op in (lambda: x % 2, lambda: x // 2, lambda: 5 % x):
        with pytest.raises(RuntimeError, match="minidl has no gradient for it"):
            op()
    with mdl.no_grad():
        np.testing.assert_allclose((x % 2).numpy(), x.numpy() % 2)


def test_inference_mode_false_as_a_decorator_records():
    @mdl.inference_mode(False)
    def f(x):
        return x * 2

    with mdl.no_grad():
        assert f(mdl.ones(2, requires_grad=True)).requires_grad


@pytest.mark.parametrize("key, build", [
    ([0, 2, 1, 3], lambda x, k: mdl.nn.functional.embedding(k, x)),
    ([0, 2, 1, 3], lambda x, k: x.gather(0, k.reshape(-1, 1).expand(-1, 3))),
    ([True, False, True, False], lambda x, k: x.masked_fill(k.reshape(-1, 1), 0.0)),
])
def test_inplace_change_of_indices_or_mask_kept_for_backward_raises(rng, key, build):
    x = mdl.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    k = mdl.tensor(key)
    y = build(x, k)
    k.fill_(k[1])
    with pytest.raises(RuntimeError, match=INPLACE_MESSAGE):
        y.sum().backward()


def test_graph_does_not_keep_intermediate_arrays():
    """A node keeps an Edge to an input another node computed, not the Tensor: an intermediate array that no
    backward needs is freed as soon as the user drops it (here x + 1, which exp does not save), as in PyTorch;
    the gradients are unchanged, and the in-place check still sees a saved input modified."""
    import weakref

    from minidl.autograd import Edge
    x = mdl.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    shifted = x + 1
    y = shifted.exp()
    array = weakref.ref(shifted.array)
    assert isinstance(y.grad_fn.inputs[0], Edge) and y.grad_fn.inputs[0].shape == (3,)
    del shifted
    assert array() is None
    y.sum().backward()
    np.testing.assert_allclose(x.grad.array, np.exp(x.array + 1))

    z = x * 3
    w = z * z  # saves z, its input
    with mdl.no_grad():
        z.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        w.sum().backward()
