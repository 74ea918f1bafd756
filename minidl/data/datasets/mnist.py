"""MNIST and Fashion-MNIST, read from the official IDX files (gzip'd or not).

IDX format: 4 magic bytes ``00 00 08 <ndim>`` (0x08: unsigned bytes), then ``ndim`` big-endian uint32 sizes,
then the values, row-major. Images are ``idx3`` (N, 28, 28), labels ``idx1`` (N,).

Decoded copies: checking a ``.gz`` against its MD5 and decompressing it takes about half a second for the
training images, on every run. So the first read of a ``.gz`` keeps the decoded array as a ``.npy`` file in
the cache, in the folder :func:`.download.derived_dir` names after the ``.gz`` (its path, size and
modification time), written atomically; later reads load that copy (about 10 ms) and skip both steps.
The copy is trusted as the ``.gz`` it was made from: it was made only after that file passed its MD5 check,
and a ``.gz`` that is replaced or modified has another size or modification time, hence another folder, so
it is checked and decoded afresh. A copy that cannot be read back whole, with the right dtype and rank, is
made again.
"""
from __future__ import annotations

import gzip
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from .download import CorruptFileError, atomic_path, derived_dir, md5sum
from .vision import VisionDataset

__all__ = ["MNIST", "FashionMNIST", "read_idx"]


def _read_exactly(f, out: np.ndarray) -> int:
    """Fill ``out`` from the stream ``f``; return how many bytes there were."""
    view = memoryview(out.reshape(-1))
    filled = 0
    while filled < len(view):
        n = f.readinto(view[filled:])
        if not n:
            break
        filled += n
    return filled


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read a uint8 IDX file of ``ndim`` dimensions (``.gz`` is decompressed on the fly).

    Raises:
        CorruptFileError: bad gzip stream, wrong magic number, or a size that does not match the header.
    """
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    header_size = 4 + 4 * ndim
    try:
        with opener(path, "rb") as f:
            header = f.read(header_size)
            if len(header) < header_size:
                raise CorruptFileError(path, f"the file ends inside the IDX header ({len(header)} of "
                                             f"{header_size} bytes)")
            if header[:4] != bytes((0, 0, 8, ndim)):
                raise CorruptFileError(path, f"wrong IDX magic number {header[:4].hex()} (expected 000008{ndim:02x}: "
                                             f"unsigned bytes in {ndim} dimensions)")
            dims = struct.unpack(f">{ndim}I", header[4:])
            out = np.empty(dims, dtype=np.uint8)
            n = _read_exactly(f, out)
            if n != out.size:
                raise CorruptFileError(path, f"the IDX data is truncated: the header promises {dims} = {out.size} "
                                             f"bytes, the file holds {n}")
            if f.read(1):
                raise CorruptFileError(path, f"the file has more data than the {dims} its header promises")
    except (OSError, EOFError, zlib.error) as e:
        raise CorruptFileError(path, f"the gzip stream is damaged or truncated ({e})") from e
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

    Files: ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (or uncompressed). A ``.gz`` with the official
    name is checked against the official MD5 before it is decoded; its decoded copy is then kept in the
    cache and read on later runs (see the module doc).

    Args:
        root: the folder with the files (or its parent). Default ``$MINIDL_DATA/<name>``, else
            ``~/.cache/minidl/<name>``.
        train: the training set (True) or the test set (False).
        transform: applied to each image, or to a batch (N, 28, 28, 1) where it is batched.
        target_transform: applied to each label.
        download: fetch the four official files into ``root`` if they are missing.
    """

    name = "mnist"
    mirrors = ["https://ossci-datasets.s3.amazonaws.com/mnist/",
               "https://storage.googleapis.com/cvdf-datasets/mnist/"]
    resources = [("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                 ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
                 ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                 ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")]
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"]

    def __init__(self, root=None, train: bool = True, transform=None, target_transform=None,
                 download: bool = False) -> None:
        super().__init__(root, transform, target_transform, download)
        self.train = train
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
        """The array of the IDX file ``path``: from its decoded copy when there is a good one, else from the
        file itself, MD5-checked (official names) and decoded, keeping a decoded copy of a ``.gz``."""
        copy_path = None  # only a .gz is worth a decoded copy: an uncompressed IDX file reads as fast
        if path.name.endswith(".gz"):
            copy_path = derived_dir(path, self.name) / (path.name.removesuffix(".gz") + ".npy")
            array = _load_decoded(copy_path, ndim)
            if array is not None:
                return array
        md5 = dict(self.resources).get(path.name)
        if md5 is not None:
            got = md5sum(path)
            if got != md5:
                raise CorruptFileError(path, f"its MD5 is {got} but the official file's is {md5}, so it is "
                                             f"damaged or not the official file")
        array = read_idx(path, ndim)
        if copy_path is not None:
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
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
