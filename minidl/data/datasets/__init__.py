"""``minidl.data.datasets``: the real data sets, read offline from a folder or downloaded and checked.

    FashionMNIST(root=None, train=True, transform=None, target_transform=None, download=False)
    MNIST(...)                                        the same arguments
    CIFAR10(...)                                      the same arguments; the official *binary* version
    Facades(root=None, split="train", transform=None, download=False, *, target_transform=None, extended=False)

Where the files are looked for, how downloads are checked and where caches go: :mod:`.download`.
"""
from .cifar import CIFAR10
from .download import (ChecksumError, CorruptFileError, DatasetNotFoundError, DownloadError, UnsafeArchiveError,
                       cache_home, download_url, extract_archive)
from .facades import Facades, prepare_facades
from .mnist import MNIST, FashionMNIST
from .vision import VisionDataset

__all__ = ["CIFAR10", "MNIST", "ChecksumError", "CorruptFileError", "DatasetNotFoundError", "DownloadError",
           "Facades", "FashionMNIST", "UnsafeArchiveError", "VisionDataset", "cache_home", "download_url",
           "extract_archive", "prepare_facades"]
