"""The CMP Facade database (Tylecek and Sara, GCPR 2013) as a 5-class segmentation set at 256 x 256.

The data set's format is three files ``train.npz``, ``val.npz``, ``test.npz``, each holding

=============  =====================  ===========================================================
images         uint8 (N, 256, 256, 3)  RGB photo, resized with PIL bicubic (aspect ratio not kept)
labels         uint8 (N, 256, 256)     5-class map (below), resized with nearest neighbour
labels_cmp12   uint8 (N, 256, 256)     the original CMP class ids 1..12
ids            str (N,)                file stem, e.g. ``cmp_b0001``
orig_hw        int32 (N, 2)            the photo's original (height, width)
=============  =====================  ===========================================================

They are prepared from the official CMP archive (``CMP_facade_DB_base.zip``: JPG photos and index-colour PNG
label maps with the 12 CMP classes) the first time the data set is used: resize, map 12 classes to 5,
split. The split: ids sorted, permuted by ``numpy.random.default_rng(0).permutation(n)``; the last
``round(n * 39 / 378)`` go to test, the ``round(n * 39 / 378)`` before them to val, the rest to train (for
the 378 base images: 300 / 39 / 39); ids are sorted within each split.

12 CMP classes -> 5: 0 others <- background, door, cornice, sill, blind, deco, molding, shop; 1 facade;
2 pillar; 3 window; 4 balcony.
"""
from __future__ import annotations

import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .download import CorruptFileError, atomic_path, derived_dir, extract_archive
from .vision import VisionDataset

__all__ = ["Facades", "prepare_facades"]

PREPARE_AGAIN = "Delete it and run again (with download=True if the CMP archive is not there) to prepare it anew."

CMP_CLASSES = ["background", "facade", "window", "door", "cornice", "sill", "balcony", "blind", "deco", "molding",
               "pillar", "shop"]
# CMP_TO_5[cmp id] is the 5-class id; CMP ids run from 1, so entry 0 is never used.
CMP_TO_5 = np.array([0, 0, 1, 3, 0, 0, 0, 4, 0, 0, 0, 2, 0], dtype=np.uint8)


def _split_sizes(n: int) -> tuple[int, int, int]:
    """(train, val, test) sizes: 300 / 39 / 39 for the 378 base images, the same shares for other n."""
    n_val = n_test = int(round(n * 39 / 378))
    return n - n_val - n_test, n_val, n_test


def _open_image(path: Path):
    """A fully decoded PIL image, or a CorruptFileError naming the file."""
    from PIL import Image  # Pillow comes with matplotlib; only preparation needs it

    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except OSError as e:
        raise CorruptFileError(path, f"not a readable image ({e})") from e


def _load_pair(jpg: Path, png: Path, size: int):
    """One photo and label map, resized to ``size`` x ``size``: (image, CMP labels, (height, width))."""
    from PIL import Image

    photo = _open_image(jpg).convert("RGB")
    w, h = photo.size
    image = np.asarray(photo.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)
    label_map = _open_image(png)
    if label_map.mode not in ("P", "L"):
        raise CorruptFileError(png, f"label map has mode {label_map.mode}; expected an index-colour (P) or grey "
                                    f"(L) PNG of CMP class ids 1..12")
    if label_map.size != (w, h):
        raise CorruptFileError(png, f"label map is {label_map.size[1]}x{label_map.size[0]} but its photo "
                                    f"{jpg.name} is {h}x{w}")
    ids = np.asarray(label_map)
    if ids.min() < 1 or ids.max() > len(CMP_CLASSES):
        raise CorruptFileError(png, f"label values {ids.min()}..{ids.max()} are outside the CMP class ids "
                                    f"1..{len(CMP_CLASSES)}")
    labels = np.asarray(label_map.resize((size, size), Image.Resampling.NEAREST), dtype=np.uint8)
    return image, labels, (h, w)


def _read_archive(archive: Path, size: int) -> dict[str, tuple]:
    """{id: (image, CMP labels, orig hw)} for every cmp_*.jpg / .png pair in a CMP zip."""
    with tempfile.TemporaryDirectory(prefix="minidl-facades-") as tmp:
        extract_archive(archive, Path(tmp))
        photos = sorted(Path(tmp).rglob("cmp_*.jpg"))
        if not photos:
            raise CorruptFileError(archive, "it holds no cmp_*.jpg photos, so it is not a CMP facade archive")
        items = {}
        for jpg in photos:
            png = jpg.with_suffix(".png")
            if not png.is_file():
                raise CorruptFileError(archive, f"photo {jpg.name} has no label map {png.name}")
            try:
                items[jpg.stem] = _load_pair(jpg, png, size)
            except CorruptFileError as e:  # name the archive and member, not the temporary copy
                raise CorruptFileError(archive, f"member {e.path.relative_to(tmp)}: {e.problem}") from e
    return items


def _write_npz(path: Path, ids: list[str], items: dict[str, tuple]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        labels12 = np.stack([items[i][1] for i in ids])
        np.savez_compressed(f, images=np.stack([items[i][0] for i in ids]), labels=CMP_TO_5[labels12],
                            labels_cmp12=labels12, ids=np.array(ids),
                            orig_hw=np.array([items[i][2] for i in ids], dtype=np.int32))


def prepare_facades(base_archive: Path, out_dir: Path, extended_archive: Path | None = None,
                    size: int = 256) -> None:
    """Make ``train.npz``, ``val.npz``, ``test.npz`` in ``out_dir`` from the CMP base archive.

    With ``extended_archive`` (``CMP_facade_DB_extended.zip``) also ``train_extended.npz``: the training
    split plus every extended image (val and test stay the base set's, so scores remain comparable).

    Args:
        base_archive: ``CMP_facade_DB_base.zip`` (or a zip laid out like it).
        out_dir: where the ``.npz`` files go (each written atomically).
        extended_archive: ``CMP_facade_DB_extended.zip``, optional.
        size: the side of the resized images.
    """
    items = _read_archive(Path(base_archive), size)
    ids = sorted(items)
    perm = np.random.default_rng(0).permutation(len(ids))
    n_train, n_val, _ = _split_sizes(len(ids))
    parts = {"train": perm[:n_train], "val": perm[n_train:n_train + n_val], "test": perm[n_train + n_val:]}
    out_dir = Path(out_dir)
    for split, positions in parts.items():
        _write_npz(out_dir / f"{split}.npz", sorted(ids[p] for p in positions), items)
    if extended_archive is not None:
        extra = _read_archive(Path(extended_archive), size)
        train = sorted([ids[p] for p in parts["train"]] + list(extra))
        _write_npz(out_dir / "train_extended.npz", train, {**items, **extra})


class Facades(VisionDataset):
    """CMP facades, 5 classes, 256 x 256: ``split`` "train" (300 images), "val" (39) or "test" (39).

    ``dataset[i]`` is ``(image, target)``: a uint8 (256, 256, 3) photo (``transforms.ToTensor()`` makes it a
    float (3, 256, 256) Tensor) and an int64 (256, 256) map of class ids 0..4. ``data`` is the uint8 photos
    (N, 256, 256, 3), ``targets`` the int64 maps (N, 256, 256); ``labels`` (uint8), ``labels_cmp12``,
    ``ids`` and ``orig_hw`` are the file's other arrays (None where a file lacks them).

    Args:
        root: the folder with ``{train,val,test}.npz``, or with ``CMP_facade_DB_base.zip`` to prepare them
            from (or its parent). Default ``$MINIDL_DATA/facades``, else ``~/.cache/minidl/facades``.
        split: "train", "val" or "test".
        transform: applied to each photo, or to a batch (N, 256, 256, 3) where it is batched.
        download: fetch the CMP archive into ``root`` and prepare the ``.npz`` files there if missing.
        target_transform: applied to each label map (or to the batch of maps where batched).
        transforms: a joint ``transforms(photo, label map) -> (photo, label map)`` applied before the two
            above, to the uint8 photo and its map together: random crops and flips that keep them aligned,
            e.g. ``T.Compose([T.RandomCrop(128), T.RandomHorizontalFlip()])``.
        extended: for ``split="train"``, add the 228 images of the CMP extended set
            (``train_extended.npz``, prepared from ``CMP_facade_DB_extended.zip``).
    """

    name = "facades"
    mirrors = ["https://cmp.felk.cvut.cz/~tylecr1/facade/"]
    # The CMP archives have no published checksum: they are checked by their content when prepared.
    resources = [("CMP_facade_DB_base.zip", None)]
    extended_resources = [("CMP_facade_DB_extended.zip", None)]
    classes = ["others", "facade", "pillar", "window", "balcony"]
    cmp_classes = CMP_CLASSES
    splits = ("train", "val", "test")
    image_size = 256

    def __init__(self, root=None, split: str = "train", transform=None, download: bool = False, *,
                 target_transform=None, transforms=None, extended: bool = False) -> None:
        if split not in self.splits:
            raise ValueError(f"Facades: split must be one of {self.splits}, got {split!r}")
        super().__init__(root, transform, target_transform, download, transforms=transforms)
        self.split = split
        self.extended = extended
        self.filename = "train_extended.npz" if extended and split == "train" else f"{split}.npz"
        self._read_npz(self._locate())
        self._targets = None

    def _download_resources(self) -> list[tuple[str, str | None]]:
        return self.resources + (self.extended_resources if self.extended else [])

    def _locate(self) -> Path:
        """The .npz file: found, prepared from a CMP archive found, or downloaded and prepared."""
        for folder in self._folders():
            if (folder / self.filename).is_file():
                self.root = folder
                return folder / self.filename
        for folder in self._folders():
            archives = [folder / name for name, _ in self._download_resources()]
            if all(a.is_file() for a in archives):
                self.root = folder
                out_dir = derived_dir(archives[0], self.name)
                if not (out_dir / self.filename).is_file():
                    self._prepare(archives, out_dir)
                return out_dir / self.filename
        if self.download_requested:
            self.download()
            self._prepare([self.root / name for name, _ in self._download_resources()], self.root)
            return self.root / self.filename
        wanted = [name for name, _ in self._download_resources()]
        raise self._not_found([self.filename], f", or {' and '.join(wanted)} to prepare it from")

    def _prepare(self, archives: list[Path], out_dir: Path) -> None:
        prepare_facades(archives[0], out_dir, archives[1] if len(archives) > 1 else None, self.image_size)

    def _read_npz(self, path: Path) -> None:
        try:
            # np.load leaks its file handle when the zip is damaged, so the handle is ours to close.
            with open(path, "rb") as f, np.load(f) as z:
                missing = [k for k in ("images", "labels") if k not in z.files]
                if missing:
                    raise CorruptFileError(path, f"it lacks the array(s) {missing} (it has {z.files})", PREPARE_AGAIN)
                arrays = {k: z[k] for k in ("images", "labels", "labels_cmp12", "ids", "orig_hw") if k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise CorruptFileError(path, f"not a readable .npz file ({e})", PREPARE_AGAIN) from e
        images, labels = arrays["images"], arrays["labels"]
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise CorruptFileError(path, f"images should be uint8 (N, H, W, 3), got {images.dtype} "
                                         f"{images.shape}", PREPARE_AGAIN)
        if labels.shape != images.shape[:3]:
            raise CorruptFileError(path, f"labels have shape {labels.shape}, images {images.shape}", PREPARE_AGAIN)
        if labels.size and labels.max() >= len(self.classes):
            raise CorruptFileError(path, f"label {labels.max()} is out of range for {len(self.classes)} classes",
                                   PREPARE_AGAIN)
        self.path = path
        self.data = images
        self.labels = labels.astype(np.uint8, copy=False)
        self.labels_cmp12 = arrays.get("labels_cmp12")
        self.ids = arrays.get("ids")
        self.orig_hw = arrays.get("orig_hw")

    @property
    def targets(self) -> np.ndarray:
        """The int64 label maps (N, H, W), made from ``labels`` on first use."""
        if self._targets is None:
            self._targets = self.labels.astype(np.int64)
        return self._targets

    def _target(self, index):
        return self.labels[index].astype(np.int64)

    def _batch_targets(self, idx: np.ndarray):
        return self.labels[idx].astype(np.int64)

    def extra_repr(self) -> str:
        return f"Split: {self.split}" + (" + extended" if self.extended and self.split == "train" else "")
