"""serialization.save/load: exact round trips of nested structures, atomic writes, clear errors, no pickle."""
import io
import math
import os
import zipfile
from collections import Counter, OrderedDict

import numpy as np
import pytest

import minidl as mdl
from minidl import serialization
from minidl.serialization import SerializationError


def _assert_same(a, b):
    """Equal values of equal types, recursively (arrays: same dtype, shape and bits)."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys())
        for k in a:
            assert type(k) is type(next(kb for kb in b if kb == k))
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def test_round_trip_of_every_leaf_and_container(tmp_path, rng):
    # Made by hand: every supported leaf type, nested in every container type.
    obj = {
        "f32": rng.standard_normal((2, 3)).astype(np.float32),
        "f64": rng.standard_normal(4),
        "i64": np.arange(5),
        "u8": np.array([[0, 255]], dtype=np.uint8),
        "bool": np.array([True, False]),
        "zero_d": np.array(3.5),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "strings": np.array(["a", "bc"]),
        "fortran": np.asfortranarray(rng.standard_normal((3, 2))),
        "np_scalars": [np.float32(1.5), np.int64(-7), np.bool_(True)],
        "python": [1, -2.5, True, False, None, "text é", float("inf"), float("nan"), 2 ** 100],
        "tuple": (1, (2, [3])),
        7: "int key",
        (1, "a"): "tuple key",
        None: "none key",
        "ordered": OrderedDict([("b", 1), ("a", 2)]),
        "counter": Counter({3: 2, 5: 1}),
        "empty_containers": [{}, [], ()],
    }
    path = serialization.save(obj, tmp_path / "obj.npz")
    assert path == tmp_path / "obj.npz"
    back = serialization.load(path)
    _assert_same(obj, back)
    assert back["counter"][99] == 0  # still a Counter


def test_tensors_come_back_as_tensors(tmp_path, rng):
    # Like torch.load: a Tensor comes back a Tensor with its requires_grad, a Parameter a Parameter.
    nn = pytest.importorskip("minidl.nn")
    t = mdl.tensor(rng.standard_normal((2, 2)).astype(np.float32), requires_grad=True)
    p = nn.Parameter(mdl.tensor(rng.standard_normal(3)))
    frozen = nn.Parameter(mdl.tensor(np.arange(2.0)), requires_grad=False)
    back = serialization.load(serialization.save({"w": t, "p": p, "frozen": frozen, "i": mdl.tensor([1, 2])},
                                                 tmp_path / "t.npz"))
    assert type(back["w"]) is mdl.Tensor and back["w"].requires_grad and back["w"].is_leaf
    np.testing.assert_array_equal(back["w"].array, t.array)
    assert back["w"].dtype == np.float32
    assert type(back["p"]) is nn.Parameter and back["p"].requires_grad
    np.testing.assert_array_equal(back["p"].array, p.array)
    assert type(back["frozen"]) is nn.Parameter and not back["frozen"].requires_grad
    assert back["i"].dtype == np.int64 and not back["i"].requires_grad


def test_model_state_dict_round_trip_and_reload(tmp_path, rng):
    nn = pytest.importorskip("minidl.nn")
    def make():
        return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))

    model = make()
    model(mdl.randn(3, 1, 4, 4))  # a training-mode pass moves the batch-norm buffers off their initial values
    state = model.state_dict()
    back = serialization.load(serialization.save(state, tmp_path / "model.npz"))
    assert list(back) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                          "1.num_batches_tracked", "4.weight", "4.bias"]
    _assert_same(state, back)  # float32 weights, the int64 0-d counter, the OrderedDict itself
    other = make()
    other.load_state_dict(back)
    for name, value in other.state_dict().items():
        np.testing.assert_array_equal(value, state[name], err_msg=name)


def test_optimizer_state_dict_keeps_integer_keys(tmp_path, rng):
    w = mdl.tensor(rng.standard_normal(3), requires_grad=True)
    b = mdl.tensor(rng.standard_normal(2), requires_grad=True)
    opt = mdl.optim.Adam([w, b], lr=0.01)
    (w * w).sum().backward()
    (b * b).sum().backward()
    opt.step()
    state = opt.state_dict()
    back = serialization.load(serialization.save(state, tmp_path / "opt.npz"))
    assert sorted(back["state"]) == [0, 1] and all(type(k) is int for k in back["state"])
    assert back["param_groups"][0]["params"] == [0, 1]
    _assert_same(state, back)
    fresh = mdl.optim.Adam([mdl.tensor(w.array.copy(), requires_grad=True),
                            mdl.tensor(b.array.copy(), requires_grad=True)], lr=0.5)
    fresh.load_state_dict(back)
    assert fresh.param_groups[0]["lr"] == 0.01


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.MT19937, np.random.Philox,
                                           np.random.SFC64, np.random.PCG64DXSM])
def test_numpy_random_states_round_trip_exactly(tmp_path, bit_generator):
    # PCG64's state holds 128-bit integers; MT19937's a uint32 array: both must come back exactly.
    gen = np.random.Generator(bit_generator(1234))
    gen.random(3)
    state = gen.bit_generator.state
    back = serialization.load(serialization.save(state, tmp_path / "rng.npz"))
    _assert_same(state, back)
    restored = np.random.Generator(bit_generator())
    restored.bit_generator.state = back
    np.testing.assert_array_equal(restored.random(5), gen.random(5))


def test_minidl_random_state_round_trip(tmp_path):
    mdl.manual_seed(7)
    state = mdl.random.get_state()
    expected = mdl.randn(4).array
    mdl.manual_seed(99)
    mdl.random.set_state(serialization.load(serialization.save(state, tmp_path / "r.npz")))
    np.testing.assert_array_equal(mdl.randn(4).array, expected)


def test_file_is_a_plain_npz_readable_without_pickle(tmp_path, rng):
    a = rng.standard_normal(3)
    path = serialization.save({"a": a}, tmp_path / "plain.npz")
    with np.load(path, allow_pickle=False) as npz:
        assert "__minidl__" in npz.files
        np.testing.assert_array_equal(npz["a0"], a)


def test_object_arrays_and_unsupported_leaves_are_refused(tmp_path):
    with pytest.raises(SerializationError, match=r"obj\['bad'\] is an array of dtype object"):
        serialization.save({"bad": np.array([1, "x", None], dtype=object)}, tmp_path / "o.npz")
    with pytest.raises(SerializationError, match=r"obj\['s'\]\[1\] of type set"):
        serialization.save({"s": [1, {2}]}, tmp_path / "o.npz")
    assert not list(tmp_path.iterdir())  # nothing was written


def test_pickled_npz_is_refused_on_load(tmp_path):
    # An .npz holding an object array (which numpy pickles) must never be unpickled.
    path = tmp_path / "evil.npz"
    np.savez(path, __minidl__=np.frombuffer(b'{"format": "minidl.serialization", "version": 1, "tree": null}',
                                             dtype=np.uint8), a0=np.array([{"x": 1}], dtype=object))
    with pytest.raises(SerializationError, match="pickled") as info:
        serialization.load(path)
    assert str(path) in str(info.value)


def _good_file(tmp_path, rng):
    obj = {"w": rng.standard_normal((50, 50)), "epoch": 3}
    return obj, serialization.save(obj, tmp_path / "ckpt.npz")


def test_truncated_file_error_names_the_file(tmp_path, rng):
    _, path = _good_file(tmp_path, rng)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 3):
        path.write_bytes(data[:cut])
        with pytest.raises(SerializationError, match="ckpt.npz") as info:
            serialization.load(path)
        assert "truncated" in str(info.value) or "corrupt" in str(info.value)


def test_corrupt_and_foreign_files_raise_clear_errors(tmp_path, rng):
    _, path = _good_file(tmp_path, rng)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # one flipped byte inside the array data: a CRC error
    path.write_bytes(bytes(data))
    with pytest.raises(SerializationError, match="ckpt.npz"):
        serialization.load(path)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(SerializationError, match="empty.npz' is empty"):
        serialization.load(empty)
    text = tmp_path / "notes.npz"
    text.write_text("not an archive")
    with pytest.raises(SerializationError, match="is not a .npz archive"):
        serialization.load(text)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(2))
    with pytest.raises(SerializationError, match="not one written by minidl"):
        serialization.load(other)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        serialization.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("error", [OSError("No space left on device"), KeyboardInterrupt()])
def test_failed_write_leaves_the_old_file_intact(tmp_path, rng, monkeypatch, error):
    obj, path = _good_file(tmp_path, rng)

    def write_half_then_fail(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise error

    monkeypatch.setattr(np, "savez", write_half_then_fail)
    with pytest.raises(type(error)):
        serialization.save({"w": np.zeros(3)}, path)
    monkeypatch.undo()
    _assert_same(obj, serialization.load(path))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]  # no temporary left behind


def test_save_replaces_atomically_and_creates_folders(tmp_path, monkeypatch):
    # The new file appears only through os.replace of a complete temporary in the same folder.
    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        assert os.path.dirname(src) == os.path.dirname(dst)
        assert zipfile.is_zipfile(src)
        replaced.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    path = serialization.save({"x": 1}, tmp_path / "a" / "b" / "x.npz", compress=True)
    assert replaced == [path] and serialization.load(path) == {"x": 1}


def _crafted(path, tree: str, **arrays):
    """An .npz holding the structure ``tree`` (JSON text) and ``arrays``, as save lays them out."""
    header = '{"format": "minidl.serialization", "version": 1, "tree": ' + tree + "}"
    np.savez(path, __minidl__=np.frombuffer(header.encode(), np.uint8), **arrays)
    return path


@pytest.mark.parametrize("tree", ['{"__tuple__": [{}]}', '{"__list__": [{"__list__": [], "x": 1}]}',
                                  '{"__list__": [{"requires_grad": true, "__tensor__": "a0"}]}', '{"__nope__": 1}'])
def test_ill_formed_structure_nodes_are_refused(tmp_path, tree):
    # An empty node inside a tuple used to raise "RuntimeError: generator raised StopIteration".
    path = _crafted(tmp_path / "node.npz", tree, a0=np.zeros(2))
    with pytest.raises(SerializationError, match=r"node\.npz' has a structure with an ill-formed node \(keys"):
        serialization.load(path)


def test_array_header_larger_than_its_member_is_refused_before_allocating(tmp_path):
    # A few hundred bytes whose .npy header declares 4e10 float64s (320 GB) used to raise MemoryError.
    path = _crafted(tmp_path / "bomb.npz", '{"__array__": "a0"}')
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (40_000_000_000,)})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("a0.npy", member.getvalue() + bytes(24))
    assert path.stat().st_size < 1000
    with pytest.raises(SerializationError, match=r"bomb\.npz' is corrupt: array 'a0\.npy' declares shape "
                                                 r"\(40000000000,\) of float64 \(320000000000 bytes\), but its "
                                                 r"archive member holds 24 bytes"):
        serialization.load(path)


def test_tuple_keys_count_toward_the_depth_limit_as_load_counts_them(tmp_path):
    # A tuple key on a dict at depth 99 used to save, then fail to load.
    def nest(depth):
        obj = {(1, "a"): np.zeros(2)}
        for _ in range(depth):
            obj = [obj]
        return obj

    back = serialization.load(serialization.save(nest(98), tmp_path / "ok.npz"))
    for _ in range(98):
        back = back[0]
    assert list(back) == [(1, "a")]
    with pytest.raises(SerializationError, match="nested more than 100 containers deep"):
        serialization.save(nest(99), tmp_path / "deep.npz")
    assert not (tmp_path / "deep.npz").exists()
