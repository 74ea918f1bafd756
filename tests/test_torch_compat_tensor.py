"""``import minidl as torch``: the torch.* and Tensor names a training script uses, checked against PyTorch.

Each test says how the inputs are made, what is called (the same call in both libraries where the names
agree), and what must come out: PyTorch's values, dtypes and, for differentiable ops, gradients (float64,
random upstream gradient) plus a finite-difference gradcheck.
"""
import math

import numpy as np
import pytest
from conftest import compare_with_torch, tensor64

import minidl as mdl


def _values_match(m, t, rtol=1e-6, atol=1e-9):
    """A minidl result equals a torch result: same values, same dtype name, same shape."""
    tv = t.detach().numpy()
    assert m.shape == tuple(t.shape), (m.shape, tuple(t.shape))
    assert m.dtype == tv.dtype, (m.dtype, tv.dtype)
    np.testing.assert_allclose(m.numpy(), tv, rtol=rtol, atol=atol)


def _distinct(rng, *shape):
    """float64 values without ties (and away from 0), so max/sort/topk have one answer."""
    n = int(np.prod(shape))
    return (rng.permutation(n) - n / 2 + 0.5).reshape(shape) + rng.uniform(-0.1, 0.1, shape)


# ------------------------------------------------------------------------------------------ device, dtypes
def test_device_is_torch_like_and_equal_to_its_string():
    d = mdl.device("cuda:0" if mdl.cuda.is_available() else "cpu")
    assert d.type in ("cpu", "cuda") and str(d) in ("cpu", "cuda:0")
    cpu = mdl.device("cpu")
    assert repr(cpu) == "device(type='cpu')" and str(cpu) == "cpu" and cpu.index is None
    assert repr(mdl.device("cuda", 0)) == "device(type='cuda', index=0)" and str(mdl.device("cuda", 0)) == "cuda:0"
    assert cpu == "cpu" and cpu != "cuda" and mdl.device("cuda") == mdl.device("cuda:0") and cpu != 3
    assert {cpu: 1}["cpu"] == 1 and mdl.device(cpu) is cpu
    x = mdl.zeros(2)
    assert x.device == "cpu" and x.device == cpu and x.device.type == "cpu" and not x.is_cuda
    assert x.to(cpu) is x and x.to(x.device) is x and mdl.zeros(2, device=cpu).device == cpu
    with pytest.raises(ValueError, match="cpu"):
        mdl.device("tpu")


def test_accelerator_cuda_and_backends_namespaces():
    assert mdl.cuda.device_count() in (0, 1)
    assert (mdl.accelerator.current_accelerator() is None) == (not mdl.accelerator.is_available())
    device = mdl.accelerator.current_accelerator().type if mdl.accelerator.is_available() else "cpu"
    assert mdl.zeros(1).to(device).device == device
    mdl.backends.cudnn.benchmark = True  # scripts set it; it changes nothing in minidl
    assert not mdl.backends.mps.is_available()
    mdl.backends.cudnn.benchmark = False


@pytest.mark.parametrize("name", ["float16", "float32", "float64", "uint8", "int8", "int16", "int32", "int64",
                                  "bool", "float", "double", "half", "long", "int", "short"])
def test_dtype_names_are_torch_s(name, torch):
    assert mdl.tensor([1, 0], dtype=getattr(mdl, name)).numpy().dtype == \
        torch.tensor([1, 0], dtype=getattr(torch, name)).numpy().dtype


def test_set_default_dtype_applies_to_tensor_and_factories():
    assert mdl.get_default_dtype() == mdl.float32
    try:
        mdl.set_default_dtype(mdl.float64)
        assert mdl.get_default_dtype() == mdl.float64
        for t in (mdl.tensor([1.5]), mdl.zeros(2), mdl.randn(2), mdl.arange(0.0, 1.0, 0.5), mdl.linspace(0, 1, 3),
                  mdl.full((2,), 1.5), mdl.tensor([1, 2]) / 2):
            assert t.dtype == mdl.float64
        assert mdl.tensor([1, 2]).dtype == mdl.int64
        with pytest.raises(TypeError, match="floating"):
            mdl.set_default_dtype(mdl.int64)
    finally:
        mdl.set_default_dtype(mdl.float32)
    assert mdl.tensor([1.5]).dtype == mdl.float32


# ------------------------------------------------------------------------------------------ factories
def test_factories_match_torch_dtypes_and_values(torch):
    _values_match(mdl.full((2, 3), 7), torch.full((2, 3), 7))
    _values_match(mdl.full((2,), 7.5), torch.full((2,), 7.5))
    _values_match(mdl.full((2,), True), torch.full((2,), True))
    _values_match(mdl.linspace(-1, 2, 7), torch.linspace(-1, 2, 7))
    _values_match(mdl.arange(1, 10, 3), torch.arange(1, 10, 3))
    _values_match(mdl.arange(0, 1, 0.25), torch.arange(0, 1, 0.25))
    _values_match(mdl.zeros(size=(2, 3)), torch.zeros(size=(2, 3)))
    _values_match(mdl.ones((2,), dtype=mdl.long), torch.ones((2,), dtype=torch.long))
    x, tx = mdl.tensor([[1, 2], [3, 4]]), torch.tensor([[1, 2], [3, 4]])
    _values_match(mdl.ones_like(x), torch.ones_like(tx))
    _values_match(mdl.full_like(x, 5), torch.full_like(tx, 5))
    _values_match(mdl.zeros_like(x, dtype=mdl.float), torch.zeros_like(tx, dtype=torch.float))
    for m, t in ((mdl.rand_like(x, dtype=mdl.float), torch.rand_like(tx, dtype=torch.float)),
                 (mdl.randn_like(mdl.zeros(2, 2)), torch.randn_like(torch.zeros(2, 2))),
                 (mdl.empty_like(x), torch.empty_like(tx))):
        assert m.shape == tuple(t.shape) and m.dtype == t.numpy().dtype
    with pytest.raises(TypeError, match="floating"):
        mdl.rand_like(x)


def test_randint_randperm_forms(rng):
    for t in (mdl.randint(10, (3,)), mdl.randint(5, 10, (2, 2)), mdl.randint(5, 10, size=(4,)),
              mdl.randint(high=3, size=(5,)), mdl.randint(0, 3, (5,), dtype=mdl.int32)):
        assert t.dtype in (mdl.int64, mdl.int32) and t.numpy().min() >= 0 and t.numpy().max() < 10
    assert mdl.randint(5, 10, (100,)).numpy().min() >= 5
    assert mdl.randint(10, size=(1,)).item() in range(10)  # the Datasets tutorial's sample_idx
    perm = mdl.randperm(6)
    assert perm.dtype == mdl.int64 and sorted(perm.tolist()) == list(range(6))
    mdl.manual_seed(1)
    a = mdl.randperm(20).tolist()
    mdl.manual_seed(1)
    assert mdl.randperm(20).tolist() == a
    g = mdl.Generator().manual_seed(3)
    assert mdl.randn(3, generator=g).tolist() == mdl.randn(3, generator=mdl.Generator().manual_seed(3)).tolist()


def test_as_tensor_and_from_numpy_share_memory():
    a = np.zeros(3, dtype=np.float32)
    t = mdl.as_tensor(a)
    a[0] = 5
    assert t.numpy()[0] == 5 and mdl.from_numpy(a).numpy()[0] == 5
    assert mdl.as_tensor(a, dtype=mdl.float64).dtype == mdl.float64
    assert mdl.as_tensor(t) is t and mdl.as_tensor([1.0, 2.0]).dtype == mdl.float32
    assert mdl.is_tensor(t) and not mdl.is_tensor(a)


# ------------------------------------------------------------------------------------------ max / min
def test_max_min_forms_match_torch(rng, torch):
    a = _distinct(rng, 3, 4, 5)
    x, t = mdl.tensor(a), torch.tensor(a)
    for m, tt in ((mdl.max(x, 1), torch.max(t, 1)), (x.max(1), t.max(1)), (x.max(dim=-1), t.max(dim=-1)),
                  (mdl.min(x, dim=0, keepdim=True), torch.min(t, dim=0, keepdim=True)),
                  (x.min(2, True), t.min(2, True))):
        values, indices = m
        _values_match(values, tt.values)
        _values_match(indices, tt.indices)
        assert m.values is values and m.indices is indices
    _values_match(mdl.max(x), torch.max(t))
    _values_match(x.min(), t.min())
    b = rng.standard_normal((4, 5))
    _values_match(mdl.max(x, mdl.tensor(b)), torch.max(t, torch.tensor(b)))
    _values_match(x.min(mdl.tensor(b)), t.min(torch.tensor(b)))
    np.testing.assert_allclose(x.max(axis=1).numpy(), a.max(axis=1))  # NumPy's keyword keeps NumPy's meaning
    np.testing.assert_allclose(x.min(axis=(0, 2), keepdims=True).numpy(), a.min(axis=(0, 2), keepdims=True))
    with pytest.raises(TypeError, match="not both"):
        x.max(1, axis=1)
    with pytest.raises(TypeError, match="int"):
        x.max(dim=(0, 1))


def test_max_with_dim_gradient_goes_to_first_maximum_like_torch(torch):
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    compare_with_torch(torch, lambda x: mdl.max(x, 1).values, lambda t: torch.max(t, 1).values, [a],
                       np.random.default_rng(0))
    compare_with_torch(torch, lambda x: x.max(), lambda t: t.max(), [a], np.random.default_rng(1))  # ties share
    _values_match(mdl.tensor(a).max(1).indices, torch.tensor(a).max(1).indices)


@pytest.mark.parametrize("fn", ["amax", "amin"])
def test_amax_amin_match_torch_with_ties(fn, torch, rng):
    a = rng.integers(0, 3, (3, 4)).astype(np.float64)
    compare_with_torch(torch, lambda x: getattr(x, fn)(dim=1), lambda t: getattr(t, fn)(dim=1), [a], rng)
    compare_with_torch(torch, lambda x: getattr(mdl, fn)(x), lambda t: getattr(torch, fn)(t), [a], rng)


# ------------------------------------------------------------------------------------------ differentiable math
UNARY = {  # name: (minidl, torch, input range)
    "sin": (lambda x: x.sin(), lambda t: t.sin(), (-3, 3)),
    "cos": (lambda x: mdl.cos(x), lambda t: torch_module().cos(t), (-3, 3)),
    "log1p": (lambda x: x.log1p(), lambda t: t.log1p(), (-0.5, 2)),
    "expm1": (lambda x: mdl.expm1(x), lambda t: t.expm1(), (-2, 2)),
    "rsqrt": (lambda x: x.rsqrt(), lambda t: t.rsqrt(), (0.5, 3)),
    "reciprocal": (lambda x: mdl.reciprocal(x), lambda t: t.reciprocal(), (0.5, 3)),
    "square": (lambda x: x.square(), lambda t: t.square(), (-2, 2)),
    "neg": (lambda x: mdl.neg(x), lambda t: t.neg(), (-2, 2)),
    "clone": (lambda x: x.clone() * 2, lambda t: t.clone() * 2, (-2, 2)),
    "std": (lambda x: x.std(dim=1), lambda t: t.std(dim=1), (-2, 2)),
    "std_all_biased": (lambda x: mdl.std(x, unbiased=False), lambda t: torch_module().std(t, unbiased=False), (-2, 2)),
    "prod_dim": (lambda x: x.prod(1), lambda t: t.prod(1), (0.5, 1.5)),
    "prod_all": (lambda x: mdl.prod(x), lambda t: t.prod(), (0.5, 1.5)),
    "prod_keepdim": (lambda x: x.prod(-1, keepdim=True), lambda t: t.prod(-1, keepdim=True), (-1.5, 1.5)),
    "cumsum": (lambda x: x.cumsum(1), lambda t: t.cumsum(1), (-2, 2)),
    "cumsum_neg": (lambda x: mdl.cumsum(x, dim=-2), lambda t: t.cumsum(dim=-2), (-2, 2)),
    "logsumexp": (lambda x: x.logsumexp(1), lambda t: t.logsumexp(1), (-30, 30)),
    "logsumexp_keep": (lambda x: mdl.logsumexp(x, (0, 1), keepdim=True),
                       lambda t: t.logsumexp((0, 1), keepdim=True), (-3, 3)),
    "norm": (lambda x: x.norm(), lambda t: t.norm(), (-2, 2)),
    "norm_dim": (lambda x: x.norm(dim=1), lambda t: t.norm(dim=1), (-2, 2)),
    "norm_p1": (lambda x: mdl.norm(x, p=1, dim=0, keepdim=True), lambda t: t.norm(p=1, dim=0, keepdim=True), (-2, 2)),
    "norm_p3": (lambda x: x.norm(p=3, dim=(0, 1)), lambda t: t.norm(p=3, dim=(0, 1)), (-2, 2)),
    "norm_inf": (lambda x: x.norm(p=math.inf, dim=1), lambda t: t.norm(p=math.inf, dim=1), (-2, 2)),
    "repeat": (lambda x: x.repeat(2, 1, 3), lambda t: t.repeat(2, 1, 3), (-2, 2)),
    "flip": (lambda x: x.flip(0, 1), lambda t: t.flip(0, 1), (-2, 2)),
    "narrow": (lambda x: mdl.narrow(x, 1, 1, 2), lambda t: t.narrow(1, 1, 2), (-2, 2)),
    "transpose_2d": (lambda x: x.transpose(0, 1), lambda t: t.transpose(0, 1), (-2, 2)),
    "t": (lambda x: mdl.t(x), lambda t: t.t(), (-2, 2)),
    "masked_fill": (lambda x: x.masked_fill(x > 0.5, -1.0), lambda t: t.masked_fill(t > 0.5, -1.0), (-2, 2)),
    "sort_values": (lambda x: x.sort(dim=0, descending=True).values,
                    lambda t: t.sort(dim=0, descending=True).values, (-2, 2)),
    "topk_values": (lambda x: mdl.topk(x, 2).values, lambda t: t.topk(2).values, (-2, 2)),
    "topk_smallest": (lambda x: x.topk(2, dim=0, largest=False).values,
                      lambda t: t.topk(2, dim=0, largest=False).values, (-2, 2)),
    "floor": (lambda x: x.floor() * x, lambda t: t.floor() * t, (-3, 3)),
    "round": (lambda x: mdl.round(x) + x, lambda t: torch_module().round(t) + t, (-3, 3)),
    "sign": (lambda x: x.sign() * x, lambda t: t.sign() * t, (-3, 3)),
    "unflatten": (lambda x: x.unflatten(1, (2, -1)), lambda t: t.unflatten(1, (2, -1)), (-2, 2)),
}


def torch_module():
    import torch
    return torch


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops_gradcheck_and_torch(name, rng, torch):
    fn, tfn, (lo, hi) = UNARY[name]
    a = rng.uniform(lo, hi, (3, 4))
    if name.startswith(("floor", "round")):  # away from the jumps, where finite differences see a step
        a = np.round(a) + rng.uniform(0.1, 0.4, a.shape) * rng.choice([-1, 1], a.shape)
    if name == "masked_fill":
        a = a[np.abs(a - 0.5) > 0.05].reshape(-1)[:10].reshape(2, 5)
    if name.startswith(("sort", "topk", "norm_inf")):
        a = _distinct(rng, 3, 4) / 6
    assert mdl.gradcheck(fn, [mdl.tensor(a, requires_grad=True)])
    compare_with_torch(torch, fn, tfn, [a], rng)


def test_prod_gradient_with_zeros_matches_torch(rng, torch):
    a = rng.standard_normal((3, 4))
    a[0, 1] = 0.0
    a[1, 2] = a[1, 3] = 0.0
    for fn in (lambda x: x.prod(1), lambda x: x.prod(0), lambda x: x.prod()):
        compare_with_torch(torch, fn, fn, [a], rng)
        assert mdl.gradcheck(fn, [mdl.tensor(a, requires_grad=True)])


def test_norm_at_zero_has_zero_gradient_like_torch(rng, torch):
    a = np.zeros((2, 3))
    a[1] = rng.standard_normal(3)
    compare_with_torch(torch, lambda x: x.norm(dim=1), lambda t: t.norm(dim=1), [a], rng)


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_maximum_minimum_with_broadcast_and_ties(op, rng, torch):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4,))
    a[0, :] = b  # a row of ties: PyTorch gives each side half the gradient
    fn = lambda x, y: getattr(mdl, op)(x, y)  # noqa: E731
    compare_with_torch(torch, fn, lambda x, y: getattr(torch, op)(x, y), [a, b], rng)
    c = rng.standard_normal((3, 4))
    assert mdl.gradcheck(fn, [tensor64(rng, 3, 4), mdl.tensor(c + np.sign(c) * 0.3, requires_grad=True)])


def test_masked_fill_with_a_tensor_value_and_broadcast_mask(rng, torch):
    a, v = rng.standard_normal((3, 4)), np.array(0.7)
    mask = rng.random((1, 4)) > 0.5
    compare_with_torch(torch, lambda x, val: x.masked_fill(mdl.tensor(mask), val),
                       lambda t, val: t.masked_fill(torch.tensor(mask), val), [a, v], rng)
    assert mdl.masked_fill(mdl.tensor([1, 2, 3]), mdl.tensor([True, False, True]), 0.9).tolist() == \
        torch.tensor([1, 2, 3]).masked_fill(torch.tensor([True, False, True]), 0.9).tolist()
    with pytest.raises(TypeError, match="boolean"):
        mdl.zeros(2).masked_fill(mdl.tensor([1, 0]), 1.0)


def test_split_chunk_unbind_match_torch_with_gradients(rng, torch):
    a = rng.standard_normal((7, 3))
    cases = [(lambda x: x.split(3), lambda t: t.split(3)),
             (lambda x: mdl.split(x, [2, 1, 4]), lambda t: torch.split(t, [2, 1, 4])),
             (lambda x: x.split(1, dim=1), lambda t: t.split(1, dim=1)),
             (lambda x: x.chunk(3), lambda t: t.chunk(3)),
             (lambda x: mdl.chunk(x, 2, dim=-1), lambda t: torch.chunk(t, 2, dim=-1)),
             (lambda x: x.unbind(1), lambda t: t.unbind(1))]
    for fn, tfn in cases:
        ms, ts = fn(mdl.tensor(a)), tfn(torch.tensor(a))
        assert isinstance(ms, tuple) and len(ms) == len(ts)
        for m, t in zip(ms, ts):
            _values_match(m, t)
        # Gradient through two of the pieces only: the others get zeros.
        compare_with_torch(torch, lambda x: fn(x)[0].sum() * 2 + fn(x)[-1].sum(),
                           lambda t: tfn(t)[0].sum() * 2 + tfn(t)[-1].sum(), [a], rng)
        assert mdl.gradcheck(lambda x: mdl.cat([p.reshape(-1) * (i + 1) for i, p in enumerate(fn(x))]),
                             [mdl.tensor(a, requires_grad=True)])
    with pytest.raises(ValueError, match="sum to"):
        mdl.tensor(a).split([2, 2])


def test_gather_index_select_and_repeated_indices(rng, torch):
    a = rng.standard_normal((3, 4))
    index = np.array([[0, 0, 3], [1, 2, 1]])  # repeats: their gradients add up
    compare_with_torch(torch, lambda x: x.gather(1, mdl.tensor(index)), lambda t: t.gather(1, torch.tensor(index)),
                       [a], rng)
    compare_with_torch(torch, lambda x: mdl.gather(x, 0, mdl.tensor(index[:, :2] % 3)),
                       lambda t: torch.gather(t, 0, torch.tensor(index[:, :2] % 3)), [a], rng)
    idx = np.array([2, 0, 2])
    compare_with_torch(torch, lambda x: x.index_select(0, mdl.tensor(idx)),
                       lambda t: t.index_select(0, torch.tensor(idx)), [a], rng)
    assert mdl.gradcheck(lambda x: x.gather(1, mdl.tensor(index)), [mdl.tensor(a, requires_grad=True)])


def test_indexing_with_range_and_a_tensor_like_the_nll_of_nn_from_scratch(rng, torch):
    a, target = rng.standard_normal((5, 3)), np.array([0, 2, 2, 1, 0])
    compare_with_torch(torch, lambda x: -x[range(5), mdl.tensor(target)].mean(),
                       lambda t: -t[range(5), torch.tensor(target)].mean(), [a], rng)
    compare_with_torch(torch, lambda x: x[range(1, 4)] * 2, lambda t: t[range(1, 4)] * 2, [a], rng)


def test_sort_argsort_topk_indices_match_torch(rng, torch):
    a = _distinct(rng, 4, 5)
    x, t = mdl.tensor(a), torch.tensor(a)
    for dim in (0, 1, -1):
        for desc in (False, True):
            ms, ts = x.sort(dim=dim, descending=desc), t.sort(dim=dim, descending=desc)
            _values_match(ms.values, ts.values)
            _values_match(ms.indices, ts.indices)
            _values_match(mdl.argsort(x, dim=dim, descending=desc), torch.argsort(t, dim=dim, descending=desc))
    for k in (1, 3):
        m, tt = mdl.topk(x, k, dim=0), torch.topk(t, k, dim=0)
        _values_match(m.values, tt.values)
        _values_match(m.indices, tt.indices)
    ties = mdl.tensor([1, 3, 3, 0, 3])  # stable: equal elements keep their order, as torch's stable sort
    assert ties.sort(stable=True).indices.tolist() == torch.tensor([1, 3, 3, 0, 3]).sort(stable=True).indices.tolist()
    assert ties.sort(descending=True, stable=True).indices.tolist() == \
        torch.tensor([1, 3, 3, 0, 3]).sort(descending=True, stable=True).indices.tolist()
    with pytest.raises(ValueError, match="k=6"):
        x.topk(6)


def test_einsum_matches_torch_with_gradients(rng, torch):
    cases = [("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]), ("i,i->", [(5,), (5,)]),
             ("ij->j", [(3, 4)]), ("ij,k->ijk", [(2, 3), (4,)]), ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
             ("ij,jk", [(2, 3), (3, 2)]), ("ijk->", [(2, 3, 2)])]
    for eq, shapes in cases:
        arrays = [rng.standard_normal(s) for s in shapes]
        compare_with_torch(torch, lambda *xs: mdl.einsum(eq, *xs), lambda *ts: torch.einsum(eq, *ts), arrays, rng)
        assert mdl.gradcheck(lambda *xs: mdl.einsum(eq, list(xs)), [mdl.tensor(a, requires_grad=True) for a in arrays])
    with pytest.raises(NotImplementedError, match="ellipsis"):
        mdl.einsum("...ij->...ji", mdl.zeros(2, 2))
    with pytest.raises(NotImplementedError, match="diagonal"):
        mdl.einsum("ii->i", mdl.zeros(2, 2))


def test_where_forms_match_torch(rng, torch):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    x, t = mdl.tensor(a), torch.tensor(a)
    _values_match(mdl.where(x > 0, x, 0.0), torch.where(t > 0, t, 0.0))
    _values_match(mdl.where(x > 0, 1.0, 0.0), torch.where(t > 0, 1.0, 0.0))
    _values_match(mdl.where(x > 0, 1, 0), torch.where(t > 0, 1, 0))
    for m, tt in zip(mdl.where(x > 0), torch.where(t > 0)):
        _values_match(m, tt)
    _values_match(mdl.nonzero(x > 0), torch.nonzero(t > 0))


# ------------------------------------------------------------------------------------------ no-gradient results
def test_comparisons_logic_and_reductions_without_gradient(rng, torch):
    a, b = rng.integers(0, 3, (3, 4)), rng.integers(0, 3, (3, 4))
    x, y, t, u = mdl.tensor(a), mdl.tensor(b), torch.tensor(a), torch.tensor(b)
    for name in ("eq", "ne", "gt", "lt", "ge", "le"):
        _values_match(getattr(x, name)(y), getattr(t, name)(u))
        _values_match(getattr(mdl, name)(x, 1), getattr(torch, name)(t, 1))
    _values_match((x > 0) & (y > 0), (t > 0) & (u > 0))
    _values_match((x > 0) | ~(y > 0), (t > 0) | ~(u > 0))
    _values_match((x > 0) ^ (y > 0), (t > 0) ^ (u > 0))
    _values_match(mdl.logical_not(x > 0), torch.logical_not(t > 0))
    _values_match(x // 2, t // 2)
    _values_match(x % 2, t % 2)
    _values_match(mdl.div(x - 2, 2, rounding_mode="floor"), torch.div(t - 2, 2, rounding_mode="floor"))
    _values_match(mdl.div(x - 2, 2, rounding_mode="trunc"), torch.div(t - 2, 2, rounding_mode="trunc"))
    _values_match(mdl.div(x - 2.5, 2, rounding_mode="trunc"), torch.div(t - 2.5, 2, rounding_mode="trunc"))
    _values_match(x.all(), t.all())
    _values_match(mdl.any(x > 1, dim=1), torch.any(t > 1, dim=1))
    _values_match((x > 0).all(0, keepdim=True), (t > 0).all(0, keepdim=True))
    _values_match((x == y).sum(), (t == u).sum())  # (predicted == labels).sum() is int64
    assert (x == y).sum().item() == (t == u).sum().item()
    for m, tt in zip(mdl.unique(x, return_inverse=True, return_counts=True),
                     torch.unique(t, return_inverse=True, return_counts=True)):
        _values_match(m, tt)
    _values_match(x.unique(), t.unique())
    f = mdl.tensor([1.0, math.nan, math.inf])
    tf = torch.tensor([1.0, math.nan, math.inf])
    for name in ("isnan", "isinf", "isfinite"):
        _values_match(getattr(mdl, name)(f), getattr(torch, name)(tf))
    assert mdl.allclose(mdl.tensor([1.0]), mdl.tensor([1.0 + 1e-9])) is True
    assert mdl.equal(x, mdl.tensor(a)) and not x.equal(y if not (a == b).all() else y + 1)
    assert not mdl.zeros(2).equal(mdl.zeros(3))


def test_integer_tensors_promote_like_torch(torch):
    # NumPy would make float64 of most of these; PyTorch makes the default float dtype or keeps the float
    # tensor's dtype.
    x, t = mdl.tensor([1, 2, 3]), torch.tensor([1, 2, 3])
    f, tf = mdl.tensor([0.5, 1.5, 2.5]), torch.tensor([0.5, 1.5, 2.5])
    for fn in (lambda v: v / 2, lambda v: 2 / v, lambda v: v / v, lambda v: v.sqrt(), lambda v: v.exp(),
               lambda v: v.log(), lambda v: v.sin(), lambda v: v.sigmoid(), lambda v: v.float().mean(),
               lambda v: v * 0.5, lambda v: 0.5 + v, lambda v: 1.5 - v, lambda v: v ** 0.5, lambda v: 2.0 ** v,
               lambda v: v * 2, lambda v: (v > 1) * 1.5, lambda v: (v > 1) + 1):
        _values_match(fn(x), fn(t))
    for fn in (lambda v, w: v + w, lambda v, w: w * v, lambda v, w: v / w, lambda v, w: w - v):
        _values_match(fn(x, f), fn(t, tf))


# ------------------------------------------------------------------------------------------ in place
INPLACE = {  # name: (call on minidl, call on torch)
    "add_": (lambda x: x.add_(2.0), lambda t: t.add_(2.0)),
    "add_alpha": (lambda x: x.add_(mdl.ones(3), alpha=-0.5), lambda t: t.add_(t.new_ones(3), alpha=-0.5)),
    "sub_": (lambda x: x.sub_(1.5), lambda t: t.sub_(1.5)),
    "mul_": (lambda x: x.mul_(mdl.tensor([1.0, 2.0, 3.0])), lambda t: t.mul_(t.new_tensor([1.0, 2.0, 3.0]))),
    "div_": (lambda x: x.div_(4), lambda t: t.div_(4)),
    "pow_": (lambda x: x.pow_(2), lambda t: t.pow_(2)),
    "neg_": (lambda x: x.neg_(), lambda t: t.neg_()),
    "abs_": (lambda x: x.abs_(), lambda t: t.abs_()),
    "sqrt_": (lambda x: x.abs_().sqrt_(), lambda t: t.abs_().sqrt_()),
    "exp_": (lambda x: x.exp_(), lambda t: t.exp_()),
    "clamp_": (lambda x: x.clamp_(-0.5, 0.5), lambda t: t.clamp_(-0.5, 0.5)),
    "clamp_min": (lambda x: x.clamp_(min=0), lambda t: t.clamp_(min=0)),
    "fill_": (lambda x: x.fill_(3.5), lambda t: t.fill_(3.5)),
    "zero_": (lambda x: x.zero_(), lambda t: t.zero_()),
    "copy_": (lambda x: x.copy_(mdl.tensor([1, 2, 3])), lambda t: t.copy_(torch_module().tensor([1, 2, 3]))),
    "masked_fill_": (lambda x: x.masked_fill_(x > 0, 0.0), lambda t: t.masked_fill_(t > 0, 0.0)),
    "addcmul_": (lambda x: x.addcmul_(mdl.ones(3), mdl.ones(3) * 2, value=0.5),
                 lambda t: t.addcmul_(t.new_ones(3), t.new_ones(3) * 2, value=0.5)),
    "addcdiv_": (lambda x: x.addcdiv_(mdl.ones(3), mdl.ones(3) * 4, value=2),
                 lambda t: t.addcdiv_(t.new_ones(3), t.new_ones(3) * 4, value=2)),
    "iadd": (lambda x: x.__iadd__(1), lambda t: t.__iadd__(1)),
    "isub": (lambda x: x.__isub__(mdl.ones(3)), lambda t: t.__isub__(t.new_ones(3))),
    "imul": (lambda x: x.__imul__(3), lambda t: t.__imul__(3)),
    "itruediv": (lambda x: x.__itruediv__(2), lambda t: t.__itruediv__(2)),
    "ipow": (lambda x: x.__ipow__(2), lambda t: t.__ipow__(2)),
}


@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_methods_match_torch_bump_version_and_refuse_leaves(name, rng, torch):
    fn, tfn = INPLACE[name]
    a = rng.standard_normal(3).astype(np.float32)
    x, t = mdl.tensor(a), torch.tensor(a)
    array, version = x.array, x._version
    assert fn(x) is x  # in place: the same tensor, the same memory
    tfn(t)
    assert x.array is array and x._version > version
    _values_match(x, t, rtol=1e-6, atol=1e-7)
    leaf = mdl.tensor(a, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        fn(leaf)
    with mdl.no_grad():  # the optimizer's way: allowed, and the leaf keeps its identity
        assert fn(leaf) is leaf


def test_sgd_by_hand_updates_the_parameter_in_place(rng):
    # "What is torch.nn really?": weights -= weights.grad * lr under no_grad, then weights.grad.zero_().
    w = mdl.tensor(rng.standard_normal((4, 2)).astype(np.float32), requires_grad=True)
    before, w_id = w.numpy(), id(w)
    loss = (w * w).sum()
    loss.backward()
    with mdl.no_grad():
        w -= w.grad * 0.1
        w.grad.zero_()
    assert id(w) == w_id and w.is_leaf and w.requires_grad
    np.testing.assert_allclose(w.numpy(), before * 0.8, rtol=1e-6)
    assert w.grad.numpy().sum() == 0
    with pytest.raises(RuntimeError, match="leaf"):
        w += 1  # outside no_grad, as in PyTorch


def test_augmented_assignment_inside_a_graph_keeps_gradients_right(rng, torch):
    # ResNet's ``out += identity`` and a running ``total += loss``: same values and gradients as PyTorch.
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))

    def block(x, y):
        out = x * 2
        out += y
        out *= y
        return out

    compare_with_torch(torch, block, block, [a, b], rng)


def test_inplace_change_of_a_saved_tensor_makes_backward_raise():
    w = mdl.ones(3, requires_grad=True)
    x = mdl.ones(3)
    y = (w * x).sum()
    x += 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_inplace_dtype_rules_follow_torch(torch):
    x = mdl.tensor([1, 2, 3])
    with pytest.raises(TypeError):
        x += 0.5  # int64 cannot hold the float result, as in PyTorch
    x += 2
    f = mdl.zeros(3)
    f += mdl.ones(3, dtype=mdl.float64)  # the result is cast to float32
    assert x.tolist() == [3, 4, 5] and f.dtype == mdl.float32
    with pytest.raises(ValueError):
        mdl.zeros(3).add_(mdl.ones(2, 3))  # the result would not fit


def test_scatter_and_random_fills(rng, torch):
    # The Transforms tutorial's one-hot target: zeros(10).scatter_(0, tensor(y), value=1).
    _values_match(mdl.zeros(10, dtype=mdl.float).scatter_(0, mdl.tensor(3), value=1),
                  torch.zeros(10, dtype=torch.float).scatter_(0, torch.tensor(3), value=1))
    src = rng.standard_normal((2, 5))
    index = np.array([[0, 1, 2, 0, 1], [2, 0, 1, 1, 0]])
    _values_match(mdl.zeros(3, 5, dtype=mdl.float64).scatter_(0, mdl.tensor(index), mdl.tensor(src)),
                  torch.zeros(3, 5, dtype=torch.float64).scatter_(0, torch.tensor(index), torch.tensor(src)))
    _values_match(mdl.zeros(3, 4).scatter_(1, mdl.tensor([[1], [3], [0]]), 2.0),
                  torch.zeros(3, 4).scatter_(1, torch.tensor([[1], [3], [0]]), 2.0))
    x = mdl.empty(20000)
    mdl.manual_seed(0)
    x.normal_(1.0, 2.0)
    assert abs(x.numpy().mean() - 1) < 0.1 and abs(x.numpy().std() - 2) < 0.1 and x._version == 1
    first = x.numpy()
    mdl.manual_seed(0)
    np.testing.assert_array_equal(x.normal_(1.0, 2.0).numpy(), first)
    x.uniform_(-1, 3)
    assert x.numpy().min() >= -1 and x.numpy().max() < 3 and x.numpy().mean() > 0.9
    x.uniform_(**{"from": 2, "to": 4})
    assert x.numpy().min() >= 2
    with pytest.raises(TypeError, match="floating"):
        mdl.zeros(2, dtype=mdl.long).normal_()


# ------------------------------------------------------------------------------------------ conversions
def test_zero_dim_tensor_as_index_format_and_scalar(torch):
    classes = ("plane", "car", "bird")
    labels = mdl.tensor([2, 0, 1])
    assert [classes[label] for label in labels] == ["bird", "plane", "car"]
    assert " ".join(f"{classes[labels[j]]:5s}" for j in range(3)) == "bird  plane car  "
    assert list(range(mdl.tensor(3))) == [0, 1, 2] and [10, 20][mdl.tensor([1])] == 20
    with pytest.raises(TypeError, match="integer"):
        classes[mdl.tensor(1.0)]
    loss = mdl.tensor(0.123456)
    assert f"{loss:.3f}" == f"{torch.tensor(0.123456):.3f}" == "0.123"
    assert f"{loss:>8f}" == f"{torch.tensor(0.123456):>8f}"
    assert f"{mdl.tensor([1.0, 2.0])}" == str(mdl.tensor([1.0, 2.0]))
    with pytest.raises(TypeError):
        f"{mdl.tensor([1.0]):.3f}"
    assert float(loss) == pytest.approx(0.123456) and int(mdl.tensor(3)) == 3 and mdl.tensor([[2]]).item() == 2


def test_numpy_interop(rng):
    a = rng.standard_normal((2, 3)).astype(np.float32)
    x = mdl.tensor(a, requires_grad=True)
    np.testing.assert_array_equal(np.asarray(x), a)
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    assert mdl.tensor([mdl.tensor(1.0), mdl.tensor(2.0)]).tolist() == [1.0, 2.0]
    y = np.ones(3) + mdl.ones(3)  # ndarray + Tensor is still minidl's op
    assert isinstance(y, mdl.Tensor)


def test_tensor_attributes_and_conversions(torch):
    x, t = mdl.tensor([[1.5, -2.0]]), torch.tensor([[1.5, -2.0]])
    for name in ("long", "int", "bool", "half", "byte", "double", "float"):
        _values_match(getattr(x, name)(), getattr(t, name)())
    assert x.element_size() == t.element_size() and x.nelement() == t.nelement() == mdl.numel(x)
    assert x.is_floating_point() and not x.long().is_floating_point() and mdl.is_floating_point(x)
    assert x.ndimension() == 2 and x.is_contiguous() and x.itemsize == 4 and x.nbytes == 8
    _values_match(x.type(mdl.float64), t.type(torch.float64))
    assert x.type() == "minidl.FloatTensor" and x.long().type() == "minidl.LongTensor"
    assert x.type("torch.LongTensor").dtype == mdl.int64
    _values_match(x.type_as(mdl.tensor([1])), t.type_as(torch.tensor([1])))
    _values_match(x.to(mdl.zeros(1, dtype=mdl.float64)), t.to(torch.zeros(1, dtype=torch.float64)))
    assert x.to("cpu", non_blocking=True) is x and x.to(copy=True) is not x
    assert x.cpu() is x and x.detach().numpy().tolist() == [[1.5, -2.0]]


def test_new_tensor_family_keeps_dtype_and_device(torch):
    x, t = mdl.zeros(2, dtype=mdl.float64), torch.zeros(2, dtype=torch.float64)
    _values_match(x.new_zeros(2, 3), t.new_zeros(2, 3))
    _values_match(x.new_ones((3,)), t.new_ones((3,)))
    _values_match(x.new_full((2,), 4), t.new_full((2,), 4))
    _values_match(x.new_tensor([1, 2]), t.new_tensor([1, 2]))
    assert x.new_empty(4).shape == (4,) and x.new_zeros(2, dtype=mdl.long).dtype == mdl.int64


def test_shape_helpers_match_torch(rng, torch):
    a = rng.standard_normal((2, 3, 4))
    x, t = mdl.tensor(a), torch.tensor(a)
    _values_match(x.view_as(mdl.zeros(6, 4)), t.view_as(torch.zeros(6, 4)))
    _values_match(x.reshape_as(mdl.zeros(4, 6)), t.reshape_as(torch.zeros(4, 6)))
    _values_match(x[:, :1].expand_as(x), t[:, :1].expand_as(t))
    _values_match(x.view(-1, 3 * 4), t.view(-1, 3 * 4))
    _values_match(mdl.flatten(x, 1), torch.flatten(t, 1))
    _values_match(mdl.transpose(x, 0, -1), torch.transpose(t, 0, -1))
    _values_match(x.swapaxes(1, 2), t.swapaxes(1, 2))
    _values_match(mdl.squeeze(x[:1], 0), torch.squeeze(t[:1], 0))
    _values_match(mdl.unsqueeze(x, -1), torch.unsqueeze(t, -1))
    _values_match(mdl.permute(x, (2, 0, 1)), torch.permute(t, (2, 0, 1)))
    _values_match(mdl.reshape(x, (4, -1)), torch.reshape(t, (4, -1)))
    _values_match(x.flip(dims=[2]), t.flip(dims=[2]))
    _values_match(x.repeat(2, 1, 1, 1), t.repeat(2, 1, 1, 1))
    assert x.size(-1) == 4 and x.shape == mdl.Size([2, 3, 4]) == tuple(t.shape)
    with pytest.raises(IndexError, match="out of range"):
        x.flatten(3)
    with pytest.raises(ValueError, match="at most 2"):
        x.t()


# ------------------------------------------------------------------------------------------ torch.* functions
FUNCTIONS = [  # (name, args after the input, kwargs)
    ("abs", (), {}), ("exp", (), {}), ("sqrt", (), {}), ("log", (), {}), ("sigmoid", (), {}), ("tanh", (), {}),
    ("relu", (), {}), ("sum", (), {"dim": 1, "keepdim": True}), ("sum", (0,), {}), ("mean", (), {"dim": (0, 1)}),
    ("var", (1,), {}), ("std", (), {}), ("argmax", (), {"dim": 1}), ("argmin", (0,), {}), ("softmax", (1,), {}),
    ("log_softmax", (), {"dim": -1}), ("clamp", (), {"min": 0.2, "max": 0.8}), ("clip", (0.3,), {}),
    ("add", (2.0,), {"alpha": 3}), ("sub", (1.0,), {}), ("mul", (2.0,), {}), ("div", (4.0,), {}),
    ("pow", (2,), {}), ("cumsum", (0,), {}), ("prod", (1,), {}), ("norm", (), {}), ("logsumexp", (1,), {}),
]


@pytest.mark.parametrize("name, args, kwargs", FUNCTIONS, ids=[f"{n}{i}" for i, (n, _, _) in enumerate(FUNCTIONS)])
def test_torch_functions_match(name, args, kwargs, rng, torch):
    a = rng.uniform(0.1, 1.0, (3, 4))
    _values_match(getattr(mdl, name)(mdl.tensor(a), *args, **kwargs),
                  getattr(torch, name)(torch.tensor(a), *args, **kwargs))


def test_matmul_family_and_out_argument(rng, torch):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    for name in ("matmul", "mm"):
        compare_with_torch(torch, getattr(mdl, name), getattr(torch, name), [a, b], rng)
    c, d = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 5))
    compare_with_torch(torch, mdl.bmm, torch.bmm, [c, d], rng)
    compare_with_torch(torch, mdl.dot, torch.dot, [a[0], b[:, 0]], rng)
    with pytest.raises(ValueError, match="mm"):
        mdl.mm(mdl.tensor(c), mdl.tensor(d))
    # The Tensors tutorial: torch.matmul(tensor, tensor.T, out=y3), torch.mul(tensor, tensor, out=z3).
    x = mdl.ones(4, 4)
    y3, z3 = mdl.rand_like(x), mdl.rand_like(x)
    assert mdl.matmul(x, x.T, out=y3) is y3 and mdl.mul(x, x, out=z3) is z3
    assert y3.numpy().tolist() == (x @ x.T).numpy().tolist() and z3._version == 1
    assert mdl.pow(2, mdl.tensor([1.0, 3.0])).tolist() == [2.0, 8.0]
    with pytest.raises(TypeError, match="Tensor"):
        mdl.exp(1.0)


def test_grad_mode_helpers():
    x = mdl.ones(2, requires_grad=True)
    with mdl.inference_mode():
        assert not (x * 2).requires_grad
    with mdl.inference_mode(False):
        assert (x * 2).requires_grad

    @mdl.inference_mode()
    def predict(t):
        return t * 2

    assert not predict(x).requires_grad
    mdl.set_grad_enabled(False)
    try:
        assert not (x * 2).requires_grad and not mdl.is_grad_enabled()
    finally:
        mdl.set_grad_enabled(True)
    assert (x * 2).requires_grad
    y = (x * 2).detach_()
    assert y.is_leaf and not y.requires_grad


def test_lazy_names_for_other_modules():
    import minidl.serialization
    from minidl.data import DataLoader
    from minidl.utils.data import DataLoader as UtilsDataLoader
    assert mdl.save is minidl.serialization.save and mdl.load is minidl.serialization.load
    assert mdl.utils.data.DataLoader is DataLoader is UtilsDataLoader
    assert mdl.compile(len) is len


# ------------------------------------------------------------------------------------------ tutorials
def test_tensors_tutorial_runs(torch):
    """The "Tensors" tutorial, line by line, with its printed values compared to PyTorch's."""
    for lib in (mdl, torch):
        data = [[1, 2], [3, 4]]
        x_data = lib.tensor(data)
        x_np = lib.from_numpy(np.array(data))
        x_ones = lib.ones_like(x_data)
        x_rand = lib.rand_like(x_data, dtype=lib.float)
        shape = (2, 3,)
        assert lib.rand(shape).shape == lib.ones(shape).shape == lib.zeros(shape).shape == (2, 3)
        tensor = lib.rand(3, 4)
        assert f"{tensor.shape} {tensor.dtype}".startswith(("(3, 4)", "torch.Size([3, 4])"))
        assert str(tensor.device) == "cpu"
        tensor = lib.ones(4, 4)
        tensor[:, 1] = 0
        t1 = lib.cat([tensor, tensor, tensor], dim=1)
        y1 = tensor @ tensor.T
        y2 = tensor.matmul(tensor.T)
        y3 = lib.rand_like(y1)
        lib.matmul(tensor, tensor.T, out=y3)
        z1 = tensor * tensor
        z2 = tensor.mul(tensor)
        z3 = lib.rand_like(tensor)
        lib.mul(tensor, tensor, out=z3)
        agg_item = tensor.sum().item()
        tensor.add_(5)
        results = [x_data, x_np, x_ones, t1, y1, y2, y3, z1, z2, z3, tensor, lib.tensor(agg_item)]
        if lib is mdl:
            mine = [r.numpy() for r in results]
            assert x_rand.dtype == mdl.float32
        else:
            for m, r in zip(mine, results):
                np.testing.assert_array_equal(m, r.numpy())
                assert m.dtype == r.numpy().dtype


def test_autograd_tutorial_runs(torch):
    """"A Gentle Introduction to torch.autograd" and "Automatic differentiation" (the parts without torchvision)."""
    out = {}
    for lib in (mdl, torch):
        a = lib.tensor([2., 3.], requires_grad=True)
        b = lib.tensor([6., 4.], requires_grad=True)
        Q = 3 * a ** 3 - b ** 2
        external_grad = lib.tensor([1., 1.])
        Q.backward(gradient=external_grad)
        assert bool((9 * a ** 2 == a.grad).all()) and bool((-2 * b == b.grad).all())
        x, y = lib.rand(5, 5), lib.rand(5, 5)
        z = lib.rand((5, 5), requires_grad=True)
        assert not (x + y).requires_grad and (x + z).requires_grad
        inp = lib.eye(4, 5, requires_grad=True)
        o = (inp + 1).pow(2).t()
        o.backward(lib.ones_like(o), retain_graph=True)
        first = inp.grad.numpy().copy()
        o.backward(lib.ones_like(o), retain_graph=True)
        second = inp.grad.numpy().copy()
        inp.grad.zero_()
        with lib.no_grad():
            assert not (x @ z).requires_grad
        out[lib.__name__] = (a.grad.numpy(), b.grad.numpy(), first, second, inp.grad.numpy())
    for m, t in zip(out["minidl"], out["torch"]):
        np.testing.assert_allclose(m, t)


def test_training_loop_idioms_run_on_minidl(rng):
    """The lines of the CIFAR-10 and "nn from scratch" tutorials that touch Tensors, on a linear classifier."""
    import minidl as torch  # noqa: F811 - the point: the script's own spelling

    classes = ("plane", "car", "bird", "cat")
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    x_train = torch.tensor(rng.standard_normal((32, 8)).astype(np.float32))
    y_train = torch.tensor(rng.integers(0, 4, 32))
    weights = torch.randn(8, 4) / math.sqrt(8)
    weights.requires_grad_()
    bias = torch.zeros(4, requires_grad=True)

    def log_softmax(x):
        return x - x.exp().sum(-1).log().unsqueeze(-1)

    def nll(input, target):
        return -input[range(target.shape[0]), target].mean()

    running_loss, losses = 0.0, []
    for epoch in range(3):
        for i in range(4):
            xb, yb = x_train[i * 8:(i + 1) * 8].to(device), y_train[i * 8:(i + 1) * 8].to(device, non_blocking=True)
            loss = nll(log_softmax(xb @ weights + bias), yb)
            loss.backward()
            with torch.no_grad():
                weights -= weights.grad * 0.5
                bias -= bias.grad * 0.5
                weights.grad.zero_()
                bias.grad.zero_()
            running_loss += loss.item()
            losses.append(f"{loss:.3f}")
    assert float(losses[-1]) < float(losses[0])
    correct, total = 0, 0
    correct_pred = {name: 0 for name in classes}
    with torch.no_grad():
        outputs = x_train @ weights + bias
        _, predicted = torch.max(outputs.data, 1)
        total += y_train.size(0)
        correct += (predicted == y_train).sum().item()
        for label, prediction in zip(y_train, outputs.max(1).indices):
            if label == prediction:
                correct_pred[classes[label]] += 1
    assert isinstance(correct, int) and correct == sum(correct_pred.values()) and total == 32
    assert (outputs.argmax(1) == y_train).type(torch.float).sum().item() == correct
