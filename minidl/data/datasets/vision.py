"""The base of the image data sets: arrays in memory, transforms per image or per batch.

A data set here holds all its images in one uint8 array ``data`` (N, H, W) or (N, H, W, C) and its targets
in ``targets`` (int64), as torchvision's do. ``dataset[i]`` gives ``(image, target)``; a batch is fetched by
``__getitems__(indices)``: one fancy-indexing step per array, then the transform applied to the whole batch
when it can take one (``transform.batched``), else image by image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..dataset import Dataset, SampleBatch
from ..transforms import is_batched
from .download import DatasetNotFoundError, download_url, resolve_root


class VisionDataset(Dataset):
    """Base of the image data sets: root lookup, transforms, single and batched fetching.

    Subclasses set ``name`` (the folder name), ``classes``, ``mirrors`` and ``resources`` (``(file name,
    md5 or None)`` pairs downloaded from ``mirror + file name``), and fill ``data`` and ``targets``.

    Args:
        root: the folder with the data set's files (or the folder that holds a ``<name>`` folder with them).
            Default: ``$MINIDL_DATA/<name>``, else ``~/.cache/minidl/<name>``.
        transform: applied to each image (``image -> image``), or to a whole batch where it is ``batched``.
        target_transform: applied to each target (or to the batch of targets where it is ``batched``).
        download: fetch the official files into ``root`` if they are missing there.
        transforms: a joint transform ``transforms(image, target) -> (image, target)`` applied first, to
            the raw image and target together: the same random crop or flip of a photo and its label map
            (e.g. ``T.Compose([T.RandomCrop(128), T.RandomHorizontalFlip()])``, see
            :mod:`minidl.data.transforms`). ``transform`` and ``target_transform`` follow it (torchvision
            takes either ``transforms`` or those two; here they compose, the joint one first).
    """

    name = ""
    classes: list[str] = []
    mirrors: list[str] = []
    resources: list[tuple[str, str | None]] = []

    data: np.ndarray
    targets: np.ndarray

    def __init__(self, root=None, transform=None, target_transform=None, download: bool = False, *,
                 transforms=None) -> None:
        self.root = resolve_root(root, self.name)
        self._root_given = root is not None
        self.transforms = transforms
        self.transform = transform
        self.target_transform = target_transform
        self.download_requested = download

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def _folders(self) -> list[Path]:
        """Where to look for the files: root, and root/<name> when root was given (a parent folder)."""
        return [self.root, self.root / self.name] if self._root_given else [self.root]

    def _download_resources(self) -> list[tuple[str, str | None]]:
        return self.resources

    def download(self) -> None:
        """Fetch every file of ``resources`` that is missing from ``root``, checking its MD5."""
        for filename, md5 in self._download_resources():
            dest = self.root / filename
            if not dest.is_file():
                download_url([m + filename for m in self.mirrors], dest, md5)

    def _not_found(self, expected: list[str], extra: str = "") -> DatasetNotFoundError:
        """The error for a data set that is not there: where we looked, what we wanted, what to do."""
        looked = " or ".join(str(f) for f in self._folders())
        return DatasetNotFoundError(
            f"{type(self).__name__}: the data set is not in {looked}.\nExpected there: {', '.join(expected)}"
            f"{extra}.\nOptions: pass root=<folder holding them> (experiments: --data-dir <folder>); or set "
            f"MINIDL_DATA=<folder> so that <folder>/{self.name} holds them; or pass download=True to fetch "
            f"them from {self.mirrors[0] if self.mirrors else 'the official source'}.")

    def __len__(self) -> int:
        return len(self.data)

    def _target(self, index):
        return int(self.targets[index])

    def _batch_targets(self, idx: np.ndarray):
        return self.targets[idx]

    def __getitem__(self, index):
        img, target = self.data[index], self._target(index)
        if self.transforms is not None:
            img, target = self.transforms(img, target)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __getitems__(self, indices):
        idx = np.asarray(indices, dtype=np.int64)
        if not all(is_batched(t) for t in (self.transforms, self.transform, self.target_transform)):
            return [self[i] for i in idx.tolist()]
        images, targets = self.data[idx], self._batch_targets(idx)
        if self.transforms is not None:
            images, targets = self.transforms(images, targets)
        if self.transform is not None:
            # A batched transform gets channels-last batches, (N, H, W, 1) for grey images.
            images = self.transform(images[..., None] if images.ndim == 3 else images)
        if self.target_transform is not None:
            targets = self.target_transform(targets)
        return SampleBatch(images, targets)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"Number of datapoints: {len(self)}", f"Root location: {self.root}"]
        if self.extra_repr():
            lines.append(self.extra_repr())
        if self.transform is not None:
            lines.append(f"Transform: {self.transform!r}")
        if self.target_transform is not None:
            lines.append(f"Target transform: {self.target_transform!r}")
        body = "".join("\n    " + line.replace("\n", "\n    ") for line in lines)
        return f"Dataset {type(self).__name__}{body}"
