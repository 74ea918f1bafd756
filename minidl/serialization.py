"""Save and load nested structures of arrays as one ``.npz`` file, without pickle: minidl's ``torch.save`` and
``torch.load``.

``save(obj, f)`` takes dicts (OrderedDict and Counter keep their type), lists and tuples nested up to
``MAX_DEPTH`` levels whose leaves are NumPy arrays, minidl Tensors and Parameters, NumPy scalars, Python
``int``/``float``/``bool``/``str``/``bytes`` and ``None``: a model's ``state_dict()``, an optimizer's (whose
integer keys stay integers), a NumPy random generator's state (whose 128-bit integers stay exact), a
training history, or a tutorial-style checkpoint of all of them::

    minidl.save({"epoch": epoch, "model_state_dict": model.state_dict(),
                 "optimizer_state_dict": optimizer.state_dict(), "loss": loss}, PATH)
    checkpoint = minidl.load(PATH, weights_only=True)
    model.load_state_dict(checkpoint["model_state_dict"])

What comes back is what went in: arrays as NumPy arrays, Tensors as Tensors (with their ``requires_grad``;
Parameters as Parameters, on the device they were saved from unless ``map_location`` says otherwise),
numbers as numbers. A whole Module or Optimizer cannot be saved (that needs pickle): save its
``state_dict()``.

The file is an ordinary NumPy ``.npz`` archive::

    __minidl__     uint8 bytes of a UTF-8 JSON document: the structure, with every scalar leaf inline
    a0, a1, ...    the arrays, referred to from the JSON as {"__array__": "a0"} (or {"__tensor__": "a0"})

so ``numpy.load(path)`` opens it anywhere, and loading never unpickles anything (``allow_pickle=False``,
whatever ``weights_only`` says): a file from an untrusted source cannot run code. Writing to a path is
atomic: the archive is written to a temporary file in the destination folder, flushed to disk, then renamed
over the path, so a crash mid-write leaves the previous file intact.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter, OrderedDict
from pathlib import Path
from typing import IO, Any, Callable, Union

import numpy as np

from .backend import cuda_is_available, device_of, normalize_device, to_device, to_numpy
from .tensor import Tensor

__all__ = ["save", "load", "SerializationError", "MAX_DEPTH"]

FileLike = Union[str, os.PathLike, IO[bytes]]

_STRUCTURE_KEY = "__minidl__"
_FORMAT = "minidl.serialization"
_VERSION = 2  # 2 added Tensors (``__tensor__``) and bytes; a file that uses neither is written as version 1
MAX_DEPTH = 100
"""The deepest nesting of containers :func:`save` writes and :func:`load` reads (a state_dict is 2 or 3
levels deep). Deeper structures (or one that contains itself) raise :class:`SerializationError` instead of
exhausting Python's recursion limit."""


class SerializationError(ValueError):
    """A file cannot be read back (corrupt, truncated, not written by :func:`save`), or an object cannot be
    written (a leaf of an unsupported type, an object array, nesting deeper than ``MAX_DEPTH``)."""


# ----------------------------------------------------------------------------------------------- writing
class _Encoder:
    """Turns a structure into its JSON form, collecting the arrays it holds (``self.arrays``)."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self.version = 1
        self._open: set[int] = set()  # ids of the containers on the path being encoded (to catch cycles)

    def encode(self, obj, where: str, depth: int):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return int(obj)  # an IntEnum or other int subclass is saved as its value
        if isinstance(obj, float):
            return float(obj)  # json writes repr(x): exact round trip, NaN and Infinity included
        if isinstance(obj, Tensor):
            return self._tensor(obj, where)
        if isinstance(obj, np.generic):
            return {"__scalar__": self._add_array(np.asarray(obj), where)}
        if isinstance(obj, np.ndarray) or hasattr(obj, "__cuda_array_interface__"):
            return {"__array__": self._add_array(to_numpy(obj), where)}
        if isinstance(obj, (bytes, bytearray)):
            self.version = 2
            return {"__bytes__": self._add_array(np.frombuffer(bytes(obj), dtype=np.uint8), where)}
        if isinstance(obj, (dict, list, tuple)):
            return self._container(obj, where, depth)
        raise SerializationError(_unsupported(obj, where))

    @staticmethod
    def _check_depth(where: str, depth: int) -> None:
        if depth >= MAX_DEPTH:
            raise SerializationError(f"save: {where[:80]}... is nested more than {MAX_DEPTH} containers deep; "
                                     "flatten the structure (a state_dict is 2 or 3 levels deep)")

    def _container(self, obj, where: str, depth: int):
        self._check_depth(where, depth)
        if id(obj) in self._open:
            raise SerializationError(f"save: {where[:200]} contains itself (a reference cycle), which cannot be "
                                     "stored")
        self._open.add(id(obj))
        try:
            if isinstance(obj, dict):
                items = [[self._key(k, where, depth + 1), self.encode(v, f"{where}[{k!r}]", depth + 1)]
                         for k, v in obj.items()]
                # The dict kinds state_dicts use keep their type (a Counter's missing keys count 0, unlike a dict's).
                for tag, kind in (("__counter__", Counter), ("__ordereddict__", OrderedDict)):
                    if isinstance(obj, kind):
                        return {tag: items}
                return {"__dict__": items}
            tag = "__tuple__" if isinstance(obj, tuple) else "__list__"
            return {tag: [self.encode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(obj)]}
        finally:
            self._open.discard(id(obj))

    def _tensor(self, t: Tensor, where: str) -> dict:
        """``{"__tensor__": name}`` plus what a Tensor carries besides its values, when not the default."""
        self.version = 2
        node: dict[str, Any] = {"__tensor__": self._add_array(to_numpy(t.array), where)}
        if t.requires_grad:
            node["requires_grad"] = True
        from .nn.parameter import Parameter
        if isinstance(t, Parameter):
            node["parameter"] = True
        if t.device != "cpu":
            node["device"] = t.device
        return node

    def _key(self, key, where: str, depth: int):
        """A dict key's JSON form; a tuple key counts as a container at ``depth``, as :func:`load` counts it."""
        if key is None or isinstance(key, (bool, int, float, str)):
            return self.encode(key, where, depth)
        if isinstance(key, tuple):
            self._check_depth(where, depth)
            return {"__tuple__": [self._key(k, where, depth + 1) for k in key]}
        raise SerializationError(f"save: cannot store the dict key {key!r} in {where}: keys must be strings, "
                                 "numbers, booleans, None or tuples of those")

    def _add_array(self, arr: np.ndarray, where: str) -> str:
        if arr.dtype.hasobject:
            raise SerializationError(f"save: {where} is an array of dtype {arr.dtype} (Python objects), which "
                                     "cannot be stored without pickle; convert it to a numeric or string array")
        name = f"a{len(self.arrays)}"
        self.arrays[name] = arr
        return name


def _unsupported(obj, where: str) -> str:
    kind = type(obj).__name__
    base = f"save: cannot store {where} of type {kind}"
    names = {c.__name__ for c in type(obj).__mro__}
    if "Module" in names:
        return (f"{base}: minidl saves no pickles, so a whole model cannot be saved; save its parameters with "
                f"save(model.state_dict(), PATH) and restore them with model.load_state_dict(load(PATH))")
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        return (f"{base}: minidl saves no pickles, so the object itself cannot be saved; save "
                f"{kind.lower()}.state_dict() and restore it with load_state_dict(...)")
    return f"{base}: leaves must be arrays, Tensors, numbers, strings, bytes, booleans or None"


def save(obj, f: FileLike, pickle_module=None, pickle_protocol=None, *, compress: bool = False,
         _use_new_zipfile_serialization: bool = True) -> Path | None:
    """Write ``obj`` to ``f`` as one ``.npz`` archive (atomically when ``f`` is a path): ``torch.save``.

    >>> import minidl as mdl, minidl.nn as nn, tempfile, os
    >>> model = nn.Linear(3, 2)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.pth")
    >>> _ = save(model.state_dict(), path)
    >>> model.load_state_dict(load(path, weights_only=True))
    <All keys matched successfully>

    Args:
        obj: a dict/list/tuple structure, at most ``MAX_DEPTH`` containers deep, whose leaves are arrays,
            Tensors, NumPy scalars, ints, floats, bools, strings, bytes or None (dict keys: strings, numbers,
            booleans, None or tuples of those).
        f: the file to write: a path (any name, e.g. ``model.pth``; its folder is created if missing) or a
            binary file object open for writing (``io.BytesIO``).
        pickle_module: PyTorch's argument, accepted so ``torch.save`` calls run; minidl writes no pickle, so
            it has no effect.
        pickle_protocol: likewise (the pickle protocol), no effect.
        compress: deflate the arrays (smaller, slower), like ``numpy.savez_compressed``.
        _use_new_zipfile_serialization: PyTorch's flag; the file is a zip archive either way.

    Returns:
        ``f`` as a :class:`pathlib.Path` when it is a path, else None.

    Raises:
        SerializationError: a leaf of an unsupported type (a whole Module: save its ``state_dict()``), an
            object array, a structure nested deeper than ``MAX_DEPTH`` or containing itself.
    """
    encoder = _Encoder()
    try:
        tree = encoder.encode(obj, "obj", 0)
        header = {"format": _FORMAT, "version": encoder.version, "tree": tree}
        structure = json.dumps(header).encode("utf-8")
    except RecursionError:  # only when save is called from deep inside a recursion already
        raise SerializationError(f"save: the structure is nested too deeply to encode (limit {MAX_DEPTH})") from None
    arrays = dict(encoder.arrays)
    arrays[_STRUCTURE_KEY] = np.frombuffer(structure, dtype=np.uint8)
    write = np.savez_compressed if compress else np.savez
    if hasattr(f, "write"):
        write(f, **arrays)
        return None
    path = Path(f)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.chmod(tmp, _new_file_mode())  # mkstemp makes it private (0600); give it an ordinary file's mode
            write(out, **arrays)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: the half-written temporary goes, the old file at ``path`` stays.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(path.parent)
    return path


def _new_file_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 less the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------- reading
_DICT_KINDS = {"__dict__": dict, "__ordereddict__": OrderedDict, "__counter__": Counter}
_CONTAINER_TAGS = {*_DICT_KINDS, "__list__", "__tuple__"}
_TAGS = {*_CONTAINER_TAGS, "__array__", "__scalar__", "__tensor__", "__bytes__"}


class _Decoder:
    """Rebuilds the structure from its JSON form and the archive's arrays."""

    def __init__(self, arrays: dict, map_location):
        self.arrays = arrays
        self.map_location = map_location

    def decode(self, node, depth: int):
        if not isinstance(node, dict):
            return node
        # Every node save writes has its tag first, and only a Tensor's node has more keys.
        tag = next(iter(node), None)
        if tag not in _TAGS or (len(node) > 1 and tag != "__tensor__"):
            keys = ", ".join(repr(k)[:40] for k in list(node)[:5]) or "none"
            raise SerializationError(f"with an ill-formed node (keys: {keys})")
        value = node[tag]
        if depth >= MAX_DEPTH and tag in _CONTAINER_TAGS:
            raise SerializationError(f"nested more than {MAX_DEPTH} containers deep")
        if tag == "__array__":
            return self.arrays[value]
        if tag == "__scalar__":
            return self.arrays[value][()]
        if tag == "__tensor__":
            return self._tensor(node)
        if tag == "__bytes__":
            return self.arrays[value].tobytes()
        if tag in _DICT_KINDS:
            d = {self.decode(k, depth + 1): self.decode(v, depth + 1) for k, v in value}
            return d if tag == "__dict__" else _DICT_KINDS[tag](d)
        if tag == "__list__":
            return [self.decode(v, depth + 1) for v in value]
        if tag == "__tuple__":
            return tuple(self.decode(v, depth + 1) for v in value)

    def _tensor(self, node: dict) -> Tensor:
        array = _map_location(self.arrays[node["__tensor__"]], node.get("device", "cpu"), self.map_location)
        requires_grad = bool(node.get("requires_grad", False))
        if node.get("parameter"):
            from .nn.parameter import Parameter
            return Parameter(array, requires_grad=requires_grad)
        return Tensor(array, requires_grad=requires_grad)


def _map_location(array: np.ndarray, saved: str, map_location):
    """The array of a saved Tensor on the device ``map_location`` picks (PyTorch's rules): None keeps the
    device it was saved from; a device (``"cpu"``, ``"cuda:0"``, a ``torch.device``) sends every Tensor
    there; a dict maps saved device names to new ones; a callable ``fn(array, saved_device)`` returns the
    array to use (``lambda storage, loc: storage`` keeps it on the CPU)."""
    if callable(map_location) and not isinstance(map_location, str):
        out = map_location(array, saved)
        return array if out is None else out
    if map_location is None:
        target = saved
    elif isinstance(map_location, dict):
        mapping = {normalize_device(k): v for k, v in map_location.items()}
        target = mapping.get(saved, saved)
    else:
        target = map_location
    target = normalize_device(target)
    if target == "cuda" and not cuda_is_available():
        raise RuntimeError("load: attempting to load a Tensor onto a CUDA device, but CuPy or a GPU is not "
                           "available; on a CPU-only machine pass map_location='cpu'")
    return array if target == device_of(array) else to_device(array, target)


def _describe(f) -> str:
    """How an error names the file: its path, or the file object's name or type."""
    if isinstance(f, (str, os.PathLike)):
        return f"'{Path(f)}'"
    name = getattr(f, "name", None)
    return f"'{name}'" if isinstance(name, (str, os.PathLike)) else f"<{type(f).__name__}>"


def _read_magic(f) -> bytes:
    if hasattr(f, "read"):
        start = f.tell()
        magic = f.read(4)
        f.seek(start)
        return magic
    with open(f, "rb") as fh:
        return fh.read(4)


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _check_array_sizes(name: str, archive) -> None:
    """Refuse a member whose ``.npy`` header declares more (or fewer) bytes than the zip directory says the
    member holds, before any array is allocated: a few hundred bytes could otherwise ask for 300 GB."""
    for info in archive.infolist():
        with archive.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            # 3.0 is 2.0 with UTF-8 field names, which numpy has no public reader for. Read as Latin-1, they
            # are other names (UTF-8 puts no ASCII byte inside a character), but shape and sizes are the same.
            shape, _, dtype = _HEADER_READERS.get(version, np.lib.format.read_array_header_2_0)(fp)
            if dtype.hasobject:
                continue  # a pickle: refused when it is read, with its own message
            declared, held = math.prod(shape) * dtype.itemsize, info.file_size - fp.tell()
        if declared != held:
            raise SerializationError(f"load: {name} is corrupt: array {info.filename!r} declares shape {shape} of "
                                     f"{dtype} ({declared} bytes), but its archive member holds {held} bytes")


def load(f: FileLike, map_location: str | dict | Callable | None = None, pickle_module=None, *,
         weights_only: bool | None = None, mmap: bool | None = None, **pickle_load_args):
    """Read back what :func:`save` wrote, never unpickling anything: ``torch.load``.

    Args:
        f: a path, or a binary file object open for reading (seekable, e.g. ``io.BytesIO``).
        map_location: where loaded Tensors go: None (where they were saved from), a device (``"cpu"``,
            ``"cuda"``, a ``torch.device``-like object), a dict from saved to new device names, or
            ``fn(array, saved_device) -> array``. Plain NumPy arrays (what ``state_dict()`` holds) stay
            NumPy arrays; ``load_state_dict`` copies them to the model's device.
        pickle_module: PyTorch's argument, accepted so ``torch.load`` calls run; no effect (no pickle).
        weights_only: PyTorch's switch to refuse arbitrary pickled objects. minidl's files hold none and
            loading never unpickles, so True, False and None all load the same, safely.
        mmap: memory-map the file; not supported (only None or False).
        pickle_load_args: PyTorch's extra unpickler arguments (``encoding=...``); no effect.

    Returns:
        The saved structure: dicts, lists and tuples as saved, arrays as NumPy arrays, Tensors as Tensors
        (Parameters as Parameters, with their ``requires_grad``), NumPy scalars as NumPy scalars, Python
        scalars, strings and bytes as themselves.

    Raises:
        FileNotFoundError: no file at ``f``.
        SerializationError: the file is truncated, corrupt, holds pickled objects, is nested deeper than
            ``MAX_DEPTH``, or was not written by :func:`save` (a PyTorch checkpoint, a plain ``.npz``); the
            message names the file.
        RuntimeError: a Tensor saved on the GPU, no GPU here, and no ``map_location``.
    """
    if mmap:
        raise NotImplementedError("load: mmap=True is not supported; leave mmap at None (the arrays are read "
                                  "into memory)")
    name = _describe(f)
    is_path = not hasattr(f, "read")
    if is_path and not Path(f).exists():
        raise FileNotFoundError(f"load: no such file: {name}")
    magic = _read_magic(f)
    if magic != b"PK\x03\x04":
        what = "is empty" if not magic else "is not a .npz archive"
        raise SerializationError(f"load: {name} {what} (truncated, corrupt, or not written by "
                                 "minidl.serialization.save)")
    try:
        with np.load(f, allow_pickle=False) as npz:
            if _STRUCTURE_KEY not in npz.files:
                raise SerializationError(_foreign_archive(name, npz.files))
            _check_array_sizes(name, npz.zip)
            # Reading every member here makes a damaged member fail now, with the file named, not later.
            arrays = {member: npz[member] for member in npz.files}
    except SerializationError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - zipfile, zlib, numpy's format reader: any failure means damage
        if isinstance(e, ValueError) and "allow_pickle" in str(e):
            raise SerializationError(f"load: {name} holds pickled Python objects (an object array), which "
                                     "minidl never loads (a pickle can run arbitrary code)") from e
        raise SerializationError(f"load: {name} is corrupt or truncated ({type(e).__name__}: {e})") from e
    try:
        header = json.loads(arrays.pop(_STRUCTURE_KEY).tobytes().decode("utf-8"))
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            raise ValueError("not a minidl.serialization header")
        if header.get("version", 0) > _VERSION:
            raise SerializationError(f"load: {name} was written by a newer minidl (format version "
                                     f"{header['version']}, this one reads up to {_VERSION})")
        return _Decoder(arrays, map_location).decode(header["tree"], 0)
    except SerializationError as e:
        if str(e).startswith("load:"):
            raise
        raise SerializationError(f"load: {name} has a structure {e}; it was not written by "
                                 "minidl.serialization.save") from None
    except RecursionError:
        raise SerializationError(f"load: {name} has a structure nested too deeply to read (a damaged or "
                                 "hostile file)") from None
    except RuntimeError:
        raise
    except Exception as e:  # noqa: BLE001 - any malformed structure entry
        raise SerializationError(f"load: {name} has a damaged structure entry ({type(e).__name__}: {e})") from e


def _foreign_archive(name: str, members: list) -> str:
    if any(m.endswith("data.pkl") for m in members):
        return (f"load: {name} looks like a PyTorch checkpoint (a pickle inside a zip), which minidl never "
                "unpickles; in PyTorch, save it as arrays instead, e.g. numpy.savez(path, **{k: v.numpy() for "
                "k, v in model.state_dict().items()}), and in minidl call "
                "model.load_state_dict(dict(numpy.load(path)))")
    return (f"load: {name} is a .npz archive but not one written by minidl.serialization.save (no "
            f"'{_STRUCTURE_KEY}' entry); open it with numpy.load (a state_dict saved by numpy.savez loads "
            "with model.load_state_dict(dict(numpy.load(path))))")
