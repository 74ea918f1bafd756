"""Tensor construction, attributes, conversions and the PyTorch-compatible method spellings."""
import numpy as np
import pytest

import minidl as mdl


def test_dtype_inference_follows_torch_tensor():
    assert mdl.tensor([1.0, 2.0]).dtype == mdl.float32
    assert mdl.tensor([1, 2]).dtype == mdl.int64
    assert mdl.tensor(np.zeros(3)).dtype == mdl.float64  # an array keeps its dtype
    assert mdl.tensor(np.zeros(3, dtype=np.int64)).dtype == mdl.int64
    assert mdl.tensor([1, 2], dtype=mdl.float64).dtype == mdl.float64
    assert mdl.tensor(np.float64(2.5)).dtype == mdl.float64


def test_factories_make_float32_with_requested_shape():
    for t in (mdl.zeros(2, 3), mdl.ones((2, 3)), mdl.randn(2, 3), mdl.rand(2, 3), mdl.empty(2, 3)):
        assert t.shape == (2, 3) and t.dtype == mdl.float32
    assert mdl.arange(5).dtype == mdl.int64
    assert mdl.arange(0.0, 1.0, 0.25).dtype == mdl.float32
    assert mdl.zeros(2, dtype=mdl.float64).dtype == mdl.float64
    x = mdl.randn(3, 4, dtype=mdl.float64)
    assert mdl.zeros_like(x).dtype == mdl.float64 and mdl.ones_like(x).numpy().sum() == 12


def test_manual_seed_reproduces_random_factories():
    mdl.manual_seed(3)
    a = mdl.randn(4).numpy()
    mdl.manual_seed(3)
    np.testing.assert_array_equal(a, mdl.randn(4).numpy())


def test_tensor_copies_its_input_array():
    arr = np.ones(3, dtype=np.float32)
    t = mdl.tensor(arr)
    arr[0] = 5
    assert t.numpy()[0] == 1
    assert mdl.from_numpy(arr).array is arr


def test_attributes():
    x = mdl.randn(2, 3, requires_grad=True)
    assert x.ndim == 2 and x.size() == (2, 3) and x.size(1) == 3 and x.numel() == 6
    assert x.is_leaf and x.grad_fn is None and x.device == "cpu"
    y = x * 2
    assert not y.is_leaf and y.requires_grad and y.grad_fn is not None


def test_numpy_returns_a_copy_and_item_a_scalar():
    x = mdl.tensor([[1.5]])
    a = x.numpy()
    a[0, 0] = 0
    assert x.item() == 1.5 and isinstance(x.item(), float)
    with pytest.raises(ValueError, match="one-element"):
        mdl.tensor([1.0, 2.0]).item()


def test_to_dtype_is_differentiable(rng):
    x = mdl.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    y = x.double()
    assert y.dtype == mdl.float64
    (y * 2).sum().backward()
    assert x.grad.dtype == mdl.float32
    np.testing.assert_allclose(x.grad.numpy(), [2, 2, 2])
    assert x.to(mdl.float32) is x


def test_cuda_unavailable_is_not_an_exception():
    assert isinstance(mdl.cuda.is_available(), bool)
    if not mdl.cuda.is_available():
        with pytest.raises(RuntimeError, match="cuda"):
            mdl.zeros(2).to("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        mdl.zeros(2).to("tpu")


def test_comparisons_give_boolean_tensors_without_grad():
    x = mdl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = x > 1.5
    assert m.dtype == np.bool_ and not m.requires_grad
    np.testing.assert_array_equal(m.numpy(), [False, True, True])
    np.testing.assert_array_equal((x == mdl.tensor([1.0, 0.0, 3.0])).numpy(), [True, False, True])


def test_repr_reads_like_torch():
    assert repr(mdl.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(mdl.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert "dtype=float64" in repr(mdl.tensor(np.zeros(1)))
    assert "grad_fn=<MulBackward>" in repr(mdl.tensor([1.0], requires_grad=True) * 2)


def test_setitem_on_a_tensor_that_requires_grad_raises():
    x = mdl.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        x[0] = 1.0
    y = mdl.zeros(3)
    y[1] = 2.0
    assert y.numpy()[1] == 2.0


def test_reduction_spellings_numpy_and_torch(rng):
    a = rng.standard_normal((3, 4))
    x = mdl.tensor(a)
    np.testing.assert_allclose(x.sum(axis=1).numpy(), a.sum(axis=1))
    np.testing.assert_allclose(x.sum(dim=1, keepdim=True).numpy(), a.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(x.mean(axis=(0, 1)).numpy(), a.mean())
    np.testing.assert_allclose(x.var(dim=0).numpy(), a.var(axis=0, ddof=1))  # torch default: unbiased
    np.testing.assert_allclose(x.var(axis=0, ddof=0).numpy(), a.var(axis=0))
    values, indices = x.max(dim=1)
    np.testing.assert_allclose(values.numpy(), a.max(axis=1))
    np.testing.assert_array_equal(indices.numpy(), a.argmax(axis=1))
    np.testing.assert_allclose(x.max(axis=1).numpy(), a.max(axis=1))
    assert x.argmax().item() == a.argmax() and x.argmax(dim=0).dtype == mdl.int64


def test_shape_methods(rng):
    a = rng.standard_normal((2, 3, 4))
    x = mdl.tensor(a)
    assert x.reshape(6, 4).shape == (6, 4) and x.view(-1).shape == (24,)
    assert x.flatten(1).shape == (2, 12) and x.flatten().shape == (24,)
    np.testing.assert_array_equal(x.transpose(0, 2).numpy(), a.swapaxes(0, 2))  # torch: swap two dims
    np.testing.assert_array_equal(x.transpose(2, 0, 1).numpy(), a.transpose(2, 0, 1))  # numpy: permutation
    np.testing.assert_array_equal(x.permute(1, 0, 2).numpy(), a.transpose(1, 0, 2))
    np.testing.assert_array_equal(x.T.numpy(), a.T)
    assert x.unsqueeze(1).shape == (2, 1, 3, 4) and x.unsqueeze(-1).shape == (2, 3, 4, 1)
    assert mdl.zeros(1, 3, 1).squeeze().shape == (3,) and mdl.zeros(1, 3, 1).squeeze(0).shape == (3, 1)
    assert mdl.zeros(3, 1).expand(-1, 5).shape == (3, 5) and mdl.zeros(3).expand(2, 3).shape == (2, 3)
    with pytest.raises(ValueError, match="reshape"):
        x.reshape(5, 5)


def test_elementwise_keeps_float32_with_python_scalars():
    x = mdl.ones(3)
    for y in (x + 1.5, 2.0 * x, x / 3.0, x ** 2.0, 1.0 - x, x.exp(), x.clip(0.0, 0.5)):
        assert y.dtype == mdl.float32
