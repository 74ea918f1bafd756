"""CIFAR-10, read from the official binary version (never the pickled Python version).

``cifar-10-binary.tar.gz`` holds ``cifar-10-batches-bin/``: ``data_batch_1.bin`` .. ``data_batch_5.bin``
(training, 10,000 records each), ``test_batch.bin`` and ``batches.meta.txt`` (the class names, one a line).
A record is 3073 bytes: the label (0..9), then the 32 x 32 image as 1024 red, 1024 green and 1024 blue bytes,
each plane row by row.

Where the records are read from, in order: an extracted ``cifar-10-batches-bin/`` folder in the data folder;
else a ``cifar-10*.tar*`` archive there (any compression: the development copy is ``.tar.xz``), decoded once
into a cached ``cifar-10-batches-bin/`` (see :mod:`.download` for where); else, with ``download=True``, the
official archive, MD5-checked and extracted next to it.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np

from .download import CorruptFileError, atomic_path, derived_dir, md5sum, read_tar_members
from .vision import VisionDataset

__all__ = ["CIFAR10"]

RECORD = 1 + 3 * 32 * 32


class CIFAR10(VisionDataset):
    """CIFAR-10: 50,000 training and 10,000 test colour images, 32 x 32, 10 classes.

    ``dataset[i]`` is ``(image, label)``: a uint8 (32, 32, 3) array (channels-last, as torchvision's ``data``;
    ``transforms.ToTensor()`` makes it a float (3, 32, 32) Tensor) and an int. ``data`` is uint8
    (N, 32, 32, 3), ``targets`` int64 (N,).

    Args:
        root: the folder with ``cifar-10-batches-bin/`` or a ``cifar-10*.tar*`` archive (or its parent).
            Default ``$MINIDL_DATA/cifar-10``, else ``~/.cache/minidl/cifar-10``.
        train: the training set (True) or the test set (False).
        transform: applied to each image, or to a batch (N, 32, 32, 3) where it is batched.
        target_transform: applied to each label.
        download: fetch the official binary archive into ``root`` if no data is found.
    """

    name = "cifar-10"
    base_folder = "cifar-10-batches-bin"
    mirrors = ["https://www.cs.toronto.edu/~kriz/"]
    resources = [("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530")]
    train_list = [f"data_batch_{i}.bin" for i in range(1, 6)]
    test_list = ["test_batch.bin"]
    meta_file = "batches.meta.txt"
    records_per_file: int | None = 10000
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def __init__(self, root=None, train: bool = True, transform=None, target_transform=None,
                 download: bool = False) -> None:
        super().__init__(root, transform, target_transform, download)
        self.train = train
        files = self.train_list if train else self.test_list
        records = np.concatenate([r.reshape(-1, RECORD) for r in self._load(files)])
        self.targets = records[:, 0].astype(np.int64)
        self.data = np.ascontiguousarray(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))

    def _load(self, files: list[str]) -> list[np.ndarray]:
        """The record bytes of ``files``, from wherever the data set is (see the module doc)."""
        for folder in self._folders():
            d = folder / self.base_folder
            if all((d / f).is_file() for f in files):
                self.root = folder
                return self._read_dir(d, files)
        for folder in self._folders():
            archive = self._find_archive(folder)
            if archive is not None:
                self.root = folder
                return self._from_archive(archive, files, derived_dir(archive, self.name))
        if self.download_requested:
            self.download()
            return self._from_archive(self.root / self.resources[0][0], files, self.root)
        raise self._not_found([f"{self.base_folder}/{{{','.join(files)}}}"],
                              f", or a {self.resources[0][0]} (or other cifar-10*.tar* archive of that folder)")

    def _find_archive(self, folder: Path) -> Path | None:
        official = folder / self.resources[0][0]
        if official.is_file():
            return official
        others = sorted(p for p in folder.glob("cifar-10*")
                        if p.is_file() and (".tar" in p.name or p.suffix == ".tgz"))
        return others[0] if others else None

    def _check(self, path, name: str, raw: np.ndarray) -> None:
        """A record file must hold whole records (``records_per_file`` of them) with labels 0..9."""
        if raw.size % RECORD:
            raise CorruptFileError(path, f"{name} is truncated: {raw.size} bytes is not a whole number of "
                                         f"{RECORD}-byte records")
        n = raw.size // RECORD
        if self.records_per_file is not None and n != self.records_per_file:
            raise CorruptFileError(path, f"{name} holds {n} records, the binary version has "
                                         f"{self.records_per_file} in each file")
        labels = raw.reshape(-1, RECORD)[:, 0]
        if labels.size and labels.max() >= len(type(self).classes):
            raise CorruptFileError(path, f"{name} has label {labels.max()}, out of range for "
                                         f"{len(type(self).classes)} classes")

    def _read_meta(self, text: str) -> None:
        names = [line.strip() for line in text.splitlines() if line.strip()]
        if len(names) == len(type(self).classes):
            self.classes = names

    def _read_dir(self, d: Path, files: list[str]) -> list[np.ndarray]:
        raws = []
        for f in files:
            raw = np.fromfile(d / f, dtype=np.uint8)
            self._check(d / f, f, raw)
            raws.append(raw)
        if (d / self.meta_file).is_file():
            self._read_meta((d / self.meta_file).read_text())
        return raws

    def _from_archive(self, archive: Path, files: list[str], out_dir: Path) -> list[np.ndarray]:
        """Decode ``archive`` once into ``out_dir/cifar-10-batches-bin`` and read ``files`` from it.

        An existing copy there is used if it is whole; a damaged one is made again. Where it cannot be
        written, the records are read from the archive (slowly) on every run.
        """
        target = out_dir / self.base_folder
        if all((target / f).is_file() for f in files):
            try:
                return self._read_dir(target, files)
            except CorruptFileError:
                shutil.rmtree(target, ignore_errors=True)
        md5 = dict(self.resources).get(archive.name)
        if md5 is not None:
            got = md5sum(archive)
            if got != md5:
                raise CorruptFileError(archive, f"its MD5 is {got} but the official archive's is {md5}, so it is "
                                                f"damaged or not the official file")
        everything = self.train_list + self.test_list
        members = read_tar_members(archive, {f"{self.base_folder}/{f}" for f in everything + [self.meta_file]})
        missing = [f for f in everything if f"{self.base_folder}/{f}" not in members]
        if missing:
            raise CorruptFileError(archive, f"it has no {self.base_folder}/{', '.join(missing)}: it is not the "
                                            f"CIFAR-10 binary version, or it is truncated")
        raws = {}
        for f in everything:
            raws[f] = np.frombuffer(members[f"{self.base_folder}/{f}"], dtype=np.uint8)
            self._check(archive, f"member {self.base_folder}/{f}", raws[f])
        meta = members.get(f"{self.base_folder}/{self.meta_file}")
        if meta is not None:
            self._read_meta(meta.decode("utf-8", "replace"))
        try:
            with atomic_path(target, is_dir=True) as tmp:
                for name, data in members.items():
                    (tmp / Path(name).name).write_bytes(data)
        except OSError as e:
            warnings.warn(f"CIFAR10: could not keep a decoded copy of {archive} in {target} ({e}); the archive "
                          f"will be decoded again next time", stacklevel=3)
        return [raws[f] for f in files]
