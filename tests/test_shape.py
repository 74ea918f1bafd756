"""Shape ops and indexing: gradcheck and agreement with PyTorch."""
import numpy as np
import pytest
from conftest import compare_with_torch

import minidl as mdl


def test_reshape_permute_expand_gradcheck(rng):
    x = mdl.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    assert mdl.gradcheck(lambda t: t.reshape(4, 6) * 2, [x])
    assert mdl.gradcheck(lambda t: t.permute(2, 0, 1), [x])
    assert mdl.gradcheck(lambda t: t.transpose(0, 2), [x])
    assert mdl.gradcheck(lambda t: t[:, :1].expand(2, 5, 4), [x])
    assert mdl.gradcheck(lambda t: t.unsqueeze(1).squeeze(1).flatten(1), [x])


INDEXES = {
    "slice": (slice(1, None), slice(None, None, 2)),
    "int_and_slice": (0, slice(1, 3)),
    "negative_step": (slice(None, None, -1),),
    "int_array_repeats": (np.array([0, 2, 0, 1]),),
    "two_arrays": (np.array([0, 1, 1]), slice(None), np.array([3, 0, 3])),
    "bool_mask": (np.array([True, False, True]),),
    "ellipsis": (Ellipsis, 1),
}


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_indexing_gradcheck_and_torch(name, rng, torch):
    key = INDEXES[name]
    a = rng.standard_normal((3, 3, 4))
    assert mdl.gradcheck(lambda t: t[key], [mdl.tensor(a, requires_grad=True)])
    if name == "negative_step":  # torch has no negative-step slices
        return
    tkey = tuple(torch.tensor(k) if isinstance(k, np.ndarray) else k for k in key)
    compare_with_torch(torch, lambda t: t[key], lambda t: t[tkey], [a], rng)


def test_indexing_with_a_tensor_of_indices(rng):
    x = mdl.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    idx = mdl.tensor([3, 3, 0])
    y = x[idx, mdl.tensor([0, 0, 2])]
    y.backward(np.ones(3))
    expected = np.zeros((4, 3))
    expected[3, 0], expected[0, 2] = 2, 1
    np.testing.assert_array_equal(x.grad.numpy(), expected)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cat_and_stack(axis, rng, torch):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    compare_with_torch(torch, lambda x, y: mdl.cat([x, y], axis), lambda x, y: torch.cat([x, y], axis), [a, b], rng)
    compare_with_torch(torch, lambda x, y: mdl.stack([x, y], dim=axis), lambda x, y: torch.stack([x, y], axis),
                       [a, b], rng)
    x, y = mdl.tensor(a, requires_grad=True), mdl.tensor(b, requires_grad=True)
    assert mdl.gradcheck(lambda p, q: mdl.concatenate([p, q * 2, p], axis=axis), [x, y])


def test_cat_of_one_input_with_grad_and_one_without(rng):
    x = mdl.tensor(rng.standard_normal((2, 2)), requires_grad=True)
    y = mdl.cat([x, mdl.zeros(1, 2, dtype=mdl.float64)], axis=0)
    y.backward(np.ones((3, 2)))
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((2, 2)))


def test_stack_rejects_mixed_shapes():
    with pytest.raises(ValueError, match="stack"):
        mdl.stack([mdl.zeros(2), mdl.zeros(3)])


def test_permute_expand_stack_match_torch_and_gradcheck(rng, torch):
    a = rng.standard_normal((2, 3, 1))
    compare_with_torch(torch, lambda t: t.permute(2, 0, 1), lambda t: t.permute(2, 0, 1), [a], rng)
    compare_with_torch(torch, lambda t: t.expand(4, 2, 3, 5), lambda t: t.expand(4, 2, 3, 5), [a], rng)
    x, y = mdl.tensor(a, requires_grad=True), mdl.tensor(rng.standard_normal((2, 3, 1)), requires_grad=True)
    assert mdl.gradcheck(lambda p, q: mdl.stack([p, q * q], axis=1), [x, y])
