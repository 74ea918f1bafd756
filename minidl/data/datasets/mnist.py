"""MNIST and Fashion-MNIST, read from the official IDX files (gzip'd or not).

IDX format: 4 magic bytes ``00 00 08 <ndim>`` (0x08: unsigned bytes), then ``ndim`` big-endian uint32 sizes,
then the values, row-major. Images are ``idx3`` (N, 28, 28), labels ``idx1`` (N,).

What is checked is the content, not the container. The decompressed bytes of each file are hashed while
they are decoded (one pass, no second read) and compared with the MD5 of the official file's content
(``content_md5s``), the same for a ``.gz`` and an uncompressed copy. So a copy compressed again, whose
gzip header and hence ``.gz`` MD5 differ (the development copy of MNIST is one), is accepted, and an
uncompressed copy with one flipped label byte is refused instead of training silently on a wrong label.
Damage to a ``.gz`` itself is caught by gzip's CRC-32 of the content, checked at the end of the stream. The
MD5 of the ``.gz`` (``resources``) is checked on download only, where the server must send the official bytes.

Decoded copies: decompressing and hashing the training images on every run is slow next to loading a
decoded copy (numbers: docs/PERFORMANCE.md, "Decoded MNIST copies"). So the first read of a file keeps
the decoded array as a ``.npy`` file in the cache, in the folder :func:`.download.derived_dir` names after
the file (its path, size and modification time), written atomically; later reads load that copy and skip
both steps. The copy is trusted as the file it was made from: it was made only after that file's content
passed its MD5 check, and a file that is replaced or modified has another size or modification time,
hence another folder, so it is checked and decoded afresh. A copy that cannot be read back whole, with
the right dtype and rank, is made again.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from .download import REDOWNLOAD, CorruptFileError, atomic_path, derived_dir
from .vision import VisionDataset

__all__ = ["MNIST", "FashionMNIST", "read_idx"]

MODIFIED = (f"{REDOWNLOAD} To use a modified copy on purpose, pass check_content=False to the data set (then "
            f"nothing is checked).")


def _read_exactly(f, out: np.ndarray, h) -> int:
    """Fill ``out`` from the stream ``f``, feeding the hash ``h`` as the bytes arrive; return how many
    bytes there were."""
    view = memoryview(out.reshape(-1))
    filled = 0
    while filled < len(view):
        n = f.readinto(view[filled:])
        if not n:
            break
        h.update(view[filled:filled + n])
        filled += n
    return filled


_MAX_DEFLATE_RATIO = 1032  # the most deflate expands: 258 bytes for 2 bits of code, at best


def _check_size(path: Path, f, dims: tuple[int, ...], header_size: int, gz: bool) -> None:
    """Refuse a file whose size does not fit the header's ``dims`` before the array is allocated: a flipped
    bit in a size would otherwise ask for hundreds of GiB. A plain file's size is known exactly; a ``.gz``
    records its content's size modulo 2**32 in its last 4 bytes (ISIZE), read without decoding, and cannot
    hold more than deflate's largest ratio times its own size."""
    data = math.prod(dims)
    if not gz:
        found = os.fstat(f.fileno()).st_size - header_size
        if found < data:
            raise CorruptFileError(path, f"the IDX data is truncated: the header promises {dims} = {data} bytes, "
                                         f"the file holds {found}")
        if found > data:
            raise CorruptFileError(path, f"the file has more data than the {dims} = {data} bytes its header "
                                         f"promises (it holds {found})")
        return
    with open(path, "rb") as raw:
        size = os.fstat(raw.fileno()).st_size
        raw.seek(-4, os.SEEK_END)
        isize = int.from_bytes(raw.read(4), "little")
    # ISIZE misses a size off by a multiple of 2**32 (a flipped high bit of an image count is one: 28 * 28 is a
    # multiple of 16), so the size is also bounded by deflate's largest ratio.
    if header_size + data > _MAX_DEFLATE_RATIO * size:
        raise CorruptFileError(path, f"the IDX header promises {dims} = {data} bytes of data, more than a "
                                     f"{size}-byte gzip file can hold (deflate expands at most "
                                     f"{_MAX_DEFLATE_RATIO}-fold): the header is damaged")
    if isize != (header_size + data) % 2**32:
        raise CorruptFileError(path, f"the gzip stream is damaged or truncated: the IDX header promises {dims} = "
                                     f"{data} bytes of data ({header_size + data} with the header), but the gzip "
                                     f"trailer records {isize} bytes (the content's size modulo 2**32)")


def read_idx(path: Path, ndim: int, md5: str | None = None) -> np.ndarray:
    """Read a uint8 IDX file of ``ndim`` dimensions (``.gz`` is decompressed on the fly).

    Args:
        path: the file; a name ending in ``.gz`` is read through gzip, whose CRC-32 catches a damaged stream.
        ndim: the number of dimensions its header must declare (3 for images, 1 for labels).
        md5: the MD5 its decompressed content must have, or None to check only its structure. It is
            computed while the file is decoded, so checking costs no second read.

    Returns:
        The uint8 array, of the shape the header declares.

    Raises:
        CorruptFileError: bad gzip stream, wrong magic number, a size that does not match the header (checked
            before the array is allocated), or content whose MD5 is not ``md5``.
    """
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    header_size = 4 + 4 * ndim
    h = hashlib.md5()  # noqa: S324 - the published checksums are MD5; this checks integrity, not secrecy
    try:
        with opener(path, "rb") as f:
            header = f.read(header_size)
            h.update(header)
            if len(header) < header_size:
                raise CorruptFileError(path, f"the file ends inside the IDX header ({len(header)} of "
                                             f"{header_size} bytes)")
            if header[:4] != bytes((0, 0, 8, ndim)):
                raise CorruptFileError(path, f"wrong IDX magic number {header[:4].hex()} (expected 000008{ndim:02x}: "
                                             f"unsigned bytes in {ndim} dimensions)")
            dims = struct.unpack(f">{ndim}I", header[4:])
            _check_size(path, f, dims, header_size, gz=opener is gzip.open)
            out = np.empty(dims, dtype=np.uint8)
            n = _read_exactly(f, out, h)
            if n != out.size:
                raise CorruptFileError(path, f"the IDX data is truncated: the header promises {dims} = {out.size} "
                                             f"bytes, the file holds {n}")
            if f.read(1):  # at the end of a .gz stream, this read checks its CRC-32 and length too
                raise CorruptFileError(path, f"the file has more data than the {dims} its header promises")
    except (OSError, EOFError, zlib.error) as e:
        raise CorruptFileError(path, f"the gzip stream is damaged or truncated ({e})") from e
    if md5 is not None and h.hexdigest() != md5:
        content = "decompressed content" if opener is gzip.open else "content"
        raise CorruptFileError(path, f"the MD5 of its {content} is {h.hexdigest()}, but the official file's is "
                                     f"{md5}: this is not the official data set's content (it is damaged or "
                                     f"was modified)", MODIFIED)
    return out


def _load_decoded(path: Path, ndim: int) -> np.ndarray | None:
    """The uint8 array of ``ndim`` dimensions in the decoded copy ``path``; None when there is no such file
    or it is not one whole ``.npy`` of that dtype and rank (a truncated or damaged copy)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return array if array.dtype == np.uint8 and array.ndim == ndim else None


class MNIST(VisionDataset):
    """The MNIST handwritten digits: 60,000 training and 10,000 test images, 28 x 28 grey, 10 classes.

    ``dataset[i]`` is ``(image, label)``: a uint8 (28, 28) array (torchvision gives a PIL image; pass
    ``transforms.ToTensor()`` for a float (1, 28, 28) Tensor) and an int. ``data`` is uint8 (N, 28, 28),
    ``targets`` int64 (N,).

    Files: ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (or uncompressed). Each file's decompressed
    content is checked against the official content's MD5 while it is decoded; its decoded copy is then
    kept in the cache and read on later runs (see the module doc).

    Args:
        root: the folder with the files (or its parent). Default ``$MINIDL_DATA/<name>``, else
            ``~/.cache/minidl/<name>``.
        train: the training set (True) or the test set (False).
        transform: applied to each image, or to a batch (N, 28, 28, 1) where it is batched.
        target_transform: applied to each label.
        download: fetch the four official files into ``root`` if they are missing.
        check_content: compare each file's content with the official data set's (the default). Pass False
            only to use a copy you modified on purpose: nothing is checked then but the IDX structure, and
            no new decoded copy is kept, so such a file is decoded on every run.
    """

    name = "mnist"
    mirrors = ["https://ossci-datasets.s3.amazonaws.com/mnist/",
               "https://storage.googleapis.com/cvdf-datasets/mnist/"]
    resources = [("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                 ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
                 ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                 ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")]
    # The MD5 of each official file's decompressed content, the same whatever the file's compression (the
    # MD5s in ``resources`` are those of the .gz files as served, checked on download only).
    content_md5s = {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
                    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
                    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
                    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"}
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"]

    def __init__(self, root=None, train: bool = True, transform=None, target_transform=None,
                 download: bool = False, *, check_content: bool = True) -> None:
        super().__init__(root, transform, target_transform, download)
        self.train = train
        self.check_content = check_content
        prefix = "train" if train else "t10k"
        names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
        paths = self._locate(names)
        if paths is None and download:
            self.download()
            paths = self._locate(names)
        if paths is None:
            raise self._not_found([n + ".gz" for n in names], " (or the same names without .gz)")
        images, labels = self._read(paths[0], 3), self._read(paths[1], 1)
        if len(images) != len(labels):
            raise CorruptFileError(paths[1], f"it holds {len(labels)} labels but {paths[0].name} holds "
                                             f"{len(images)} images")
        if labels.size and labels.max() >= len(self.classes):
            raise CorruptFileError(paths[1], f"label {labels.max()} is out of range for {len(self.classes)} "
                                             f"classes")
        self.data = images
        self.targets = labels.astype(np.int64)

    def _locate(self, names: list[str]) -> list[Path] | None:
        """The files (``.gz`` preferred) from the first folder that holds all of them."""
        for folder in self._folders():
            paths = []
            for n in names:
                found = [p for p in (folder / (n + ".gz"), folder / n) if p.is_file()]
                if not found:
                    break
                paths.append(found[0])
            else:
                self.root = folder
                return paths
        return None

    def _read(self, path: Path, ndim: int) -> np.ndarray:
        """The array of the IDX file ``path``: from its decoded copy when there is a good one, else decoded
        from the file with its content MD5-checked, keeping a decoded copy.

        An uncompressed file gets a decoded copy too: reading it is as fast as reading the copy, but hashing
        it is not, and the copy saves the hash on later runs.
        """
        stem = path.name.removesuffix(".gz")
        copy_path = derived_dir(path, self.name) / (stem + ".npy")
        array = _load_decoded(copy_path, ndim)
        if array is not None:
            return array
        array = read_idx(path, ndim, self.content_md5s.get(stem) if self.check_content else None)
        if self.check_content:  # only checked content gets a copy, since a copy is trusted without a check
            try:
                with atomic_path(copy_path) as tmp, open(tmp, "wb") as f:
                    np.save(f, array)
            except OSError as e:
                warnings.warn(f"{type(self).__name__}: could not keep a decoded copy of {path} in {copy_path} "
                              f"({e}); it will be decoded again next time", stacklevel=3)
        return array

    def extra_repr(self) -> str:
        return f"Split: {'Train' if self.train else 'Test'}"


class FashionMNIST(MNIST):
    """Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): Zalando's article images in MNIST's format.

    60,000 training and 10,000 test images, 28 x 28 grey, 10 classes of 6,000 / 1,000 each. Same arguments,
    files and behaviour as :class:`MNIST`; the folder name is ``fashion-mnist``.
    """

    name = "fashion-mnist"
    mirrors = ["https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"]
    resources = [("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                 ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                 ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                 ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")]
    content_md5s = {"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
                    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
                    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"}
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
