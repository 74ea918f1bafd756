"""``minidl.nn``: layers and models, with PyTorch's names, arguments and defaults.

    import minidl.nn as nn
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(5408, 10))

A layer is a :class:`Module` holding :class:`Parameter` s; its ``forward`` calls the function of the same
name in :mod:`minidl.nn.functional`, where the op's forward and backward math lives.
"""
from . import functional, init
from .activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .container import ModuleDict, ModuleList, Sequential
from .conv import Conv2d, ConvTranspose2d
from .dropout import Dropout, Dropout2d
from .linear import Identity, Linear
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from .misc import Flatten, Upsample
from .module import Module, RemovableHandle
from .normalization import BatchNorm1d, BatchNorm2d
from .parameter import Parameter
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "Conv2d",
           "ConvTranspose2d", "CrossEntropyLoss", "Dropout", "Dropout2d", "Flatten", "Identity", "LeakyReLU",
           "Linear", "LogSoftmax", "MSELoss", "MaxPool2d", "Module", "ModuleDict", "ModuleList", "NLLLoss",
           "Parameter", "ReLU", "RemovableHandle", "Sequential", "Sigmoid", "Softmax", "Tanh", "Upsample", "functional",
           "init"]
