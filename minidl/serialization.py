"""Save and load nested structures of arrays as one ``.npz`` file, without pickle.

``save(obj, path)`` takes dicts (OrderedDict and Counter keep their type), lists and tuples nested to any
depth whose leaves are NumPy arrays, minidl Tensors (stored as arrays, loaded back as arrays), NumPy
scalars, Python ``int``/``float``/``bool``/``str`` and ``None``: a model's ``state_dict()``, an
optimizer's (whose integer keys stay integers), a NumPy random generator's state (whose 128-bit integers
stay exact), a training history, or a dict of all of them.

The file is an ordinary NumPy ``.npz`` archive::

    __minidl__     uint8 bytes of a UTF-8 JSON document: the structure, with every scalar leaf inline
    a0, a1, ...    the arrays, referred to from the JSON as {"__array__": "a0"}

so ``numpy.load(path)`` opens it anywhere, and loading never unpickles anything (``allow_pickle=False``):
a file from an untrusted source cannot run code. Writing is atomic: the archive is written to a temporary
file in the destination folder, flushed to disk, then renamed over ``path``, so a crash mid-write leaves
the previous file intact.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np

from .backend import to_numpy
from .tensor import Tensor

__all__ = ["save", "load", "SerializationError"]

_STRUCTURE_KEY = "__minidl__"
_FORMAT = "minidl.serialization"
_VERSION = 1


class SerializationError(ValueError):
    """A file cannot be read back (corrupt, truncated, not written by :func:`save`), or an object cannot be
    written (a leaf of an unsupported type, an object array)."""


def _encode(obj, arrays: dict, where: str):
    """The JSON form of ``obj``; arrays go to ``arrays`` and are referenced by name."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)  # an IntEnum or other int subclass is saved as its value
    if isinstance(obj, float):
        return float(obj)  # json writes repr(x): exact round trip, NaN and Infinity included
    if isinstance(obj, Tensor):
        obj = obj.array
    if isinstance(obj, np.generic):
        return {"__scalar__": _add_array(np.asarray(obj), arrays, where)}
    if isinstance(obj, np.ndarray) or hasattr(obj, "__cuda_array_interface__"):
        return {"__array__": _add_array(to_numpy(obj), arrays, where)}
    if isinstance(obj, dict):
        items = [[_encode_key(k, where), _encode(v, arrays, f"{where}[{k!r}]")] for k, v in obj.items()]
        # The dict kinds state_dicts use keep their type (a Counter's missing keys count 0, unlike a dict's).
        for tag, kind in (("__counter__", Counter), ("__ordereddict__", OrderedDict)):
            if isinstance(obj, kind):
                return {tag: items}
        return {"__dict__": items}
    if isinstance(obj, (list, tuple)):
        tag = "__tuple__" if isinstance(obj, tuple) else "__list__"
        return {tag: [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]}
    raise SerializationError(f"save: cannot store {where} of type {type(obj).__name__}: leaves must be arrays, "
                             "Tensors, numbers, strings, booleans or None")


def _encode_key(key, where: str):
    if key is None or isinstance(key, (bool, int, float, str)):
        return _encode(key, {}, where)
    if isinstance(key, tuple):
        return {"__tuple__": [_encode_key(k, where) for k in key]}
    raise SerializationError(f"save: cannot store the dict key {key!r} in {where}: keys must be strings, "
                             "numbers, booleans, None or tuples of those")


def _add_array(arr: np.ndarray, arrays: dict, where: str) -> str:
    if arr.dtype.hasobject:
        raise SerializationError(f"save: {where} is an array of dtype {arr.dtype} (Python objects), which "
                                 "cannot be stored without pickle; convert it to a numeric or string array")
    name = f"a{len(arrays)}"
    arrays[name] = arr
    return name


_DICT_KINDS = {"__dict__": dict, "__ordereddict__": OrderedDict, "__counter__": Counter}


def _decode(node, arrays):
    if not isinstance(node, dict):
        return node
    (tag, value), = node.items()
    if tag == "__array__":
        return arrays[value]
    if tag == "__scalar__":
        return arrays[value][()]
    if tag in _DICT_KINDS:
        d = {_decode(k, arrays): _decode(v, arrays) for k, v in value}
        return d if tag == "__dict__" else _DICT_KINDS[tag](d)
    if tag == "__list__":
        return [_decode(v, arrays) for v in value]
    if tag == "__tuple__":
        return tuple(_decode(v, arrays) for v in value)
    raise ValueError(f"unknown tag {tag!r}")


def save(obj, path: str | os.PathLike, compress: bool = False) -> Path:
    """Write ``obj`` to ``path`` as one ``.npz`` archive, atomically.

    Args:
        obj: a dict/list/tuple structure whose leaves are arrays, Tensors, NumPy scalars, ints, floats,
            bools, strings or None (dict keys: strings, numbers, booleans, None or tuples of those).
        path: the file to write (conventionally ending in ``.npz``); its folder is created if missing.
        compress: deflate the arrays (smaller, slower), like ``numpy.savez_compressed``.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        SerializationError: a leaf of an unsupported type, or an object array.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(obj, arrays, "obj")
    header = {"format": _FORMAT, "version": _VERSION, "tree": tree}
    arrays[_STRUCTURE_KEY] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, _new_file_mode())  # mkstemp makes it private (0600); give it an ordinary file's mode
            (np.savez_compressed if compress else np.savez)(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
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


def load(path: str | os.PathLike):
    """Read back what :func:`save` wrote, never unpickling anything.

    Args:
        path: a file written by :func:`save`.

    Returns:
        The saved structure: dicts, lists and tuples as saved, arrays as NumPy arrays (Tensors were saved as
        arrays), NumPy scalars as NumPy scalars, Python scalars as Python scalars.

    Raises:
        FileNotFoundError: no file at ``path``.
        SerializationError: the file is truncated, corrupt, holds pickled objects, or was not written by
            :func:`save`; the message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"load: no such file: '{path}'")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        what = "is empty" if not magic else "is not a .npz archive"
        raise SerializationError(f"load: '{path}' {what} (truncated, corrupt, or not written by "
                                 "minidl.serialization.save)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if _STRUCTURE_KEY not in npz.files:
                raise SerializationError(f"load: '{path}' is a .npz archive but not one written by "
                                         f"minidl.serialization.save (no '{_STRUCTURE_KEY}' entry)")
            # Reading every member here makes a damaged member fail now, with the file named, not later.
            arrays = {name: npz[name] for name in npz.files}
    except SerializationError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise SerializationError(f"load: '{path}' holds pickled Python objects, which minidl never "
                                     "loads (a pickle can run arbitrary code)") from e
        raise SerializationError(f"load: '{path}' is corrupt or truncated ({e})") from e
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise SerializationError(f"load: '{path}' is corrupt or truncated "
                                 f"({type(e).__name__}: {e})") from e
    try:
        header = json.loads(arrays.pop(_STRUCTURE_KEY).tobytes().decode("utf-8"))
        if header.get("format") != _FORMAT:
            raise ValueError(f"format {header.get('format')!r}")
        if header.get("version", 0) > _VERSION:
            raise SerializationError(f"load: '{path}' was written by a newer minidl (format version "
                                     f"{header['version']}, this one reads up to {_VERSION})")
        return _decode(header["tree"], arrays)
    except SerializationError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SerializationError(f"load: '{path}' has a damaged structure entry ({type(e).__name__}: {e})") from e
