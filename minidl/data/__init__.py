"""``minidl.data``: datasets, samplers, the DataLoader, transforms and the real data sets.

    from minidl.data import DataLoader, TensorDataset, random_split
    from minidl.data import transforms
    from minidl.data.datasets import FashionMNIST

    train = FashionMNIST(train=True, transform=transforms.ToTensor())
    for x, y in DataLoader(train, batch_size=256, shuffle=True, seed=0):
        ...                     # x: float32 (256, 1, 28, 28) in [0, 1], y: int64 (256,)

Names and semantics are ``torch.utils.data``'s and torchvision's; see each module for where minidl differs.
"""
from . import datasets, transforms
from .dataloader import DataLoader, default_collate, default_convert
from .dataset import ConcatDataset, Dataset, SampleBatch, Subset, TensorDataset, random_split
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler
from .worker import WorkerInfo, get_worker_info

__all__ = ["BatchSampler", "ConcatDataset", "DataLoader", "Dataset", "RandomSampler", "SampleBatch", "Sampler",
           "SequentialSampler", "Subset", "SubsetRandomSampler", "TensorDataset", "WorkerInfo", "datasets",
           "default_collate", "default_convert", "get_worker_info", "random_split", "transforms"]
