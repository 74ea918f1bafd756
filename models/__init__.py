"""Every network of the seed reports, as minidl.nn.Module classes, and a registry to build them by name.

``SEED_MODELS`` maps a short name to the class of each net in design/SEED_MODELS.md; ``build`` makes one,
passing its knobs on to the constructor:

>>> from models import SEED_MODELS, build
>>> list(SEED_MODELS)
['fashion_000', 'fashion_001', 'seg_000', 'seg_001', 'kth', 'lenet', 'vgg16', 'model_builder']
>>> sum(p.numel() for p in build("kth").parameters())
256058
>>> net = build("kth", filters=(64, 128, 256), leaky=True, dropout=0.3, batch_norm=True)  # report 003's best
>>> net = build("model_builder", field_size=3, filters=30, input_size=(3, 32, 32))  # report 002's 78 % net
"""
from __future__ import annotations

from typing import Callable

import minidl.nn as nn

from .builder import ModelBuilderNet
from .cifar import VGG16, LeNet, Report003Net
from .fashion import Report000Net, Report001Net
from .segmentation import Report000SegNet, Report001SegNet

__all__ = ["SEED_MODELS", "build", "LeNet", "ModelBuilderNet", "Report000Net", "Report000SegNet", "Report001Net",
           "Report001SegNet", "Report003Net", "VGG16"]

SEED_MODELS: dict[str, Callable[..., nn.Module]] = {
    "fashion_000": Report000Net,    # section 1: Fashion-MNIST, report 000
    "fashion_001": Report001Net,    # section 2: Fashion-MNIST, report 001
    "seg_000": Report000SegNet,     # section 3: facade segmentation, report 000
    "seg_001": Report001SegNet,     # section 4: facade segmentation, report 001
    "kth": Report003Net,            # section 6: report 003's CIFAR-10 study (a KTH course) and its variants
    "lenet": LeNet,                 # section 7: report 004
    "vgg16": VGG16,                 # section 7: report 004
    "model_builder": ModelBuilderNet,  # section 5: report 002
}


def build(name: str, **knobs) -> nn.Module:
    """The seed net called ``name``, made with ``knobs`` as keyword arguments of its constructor.

    Args:
        name: a key of ``SEED_MODELS``.
        **knobs: the constructor's arguments, e.g. ``filters=(64, 128, 256)`` for ``"kth"``.
    Returns:
        A new model, freshly initialised.
    Raises:
        ValueError: ``name`` is not in ``SEED_MODELS``; the message lists the names that are.

    >>> build("resnet")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown seed model 'resnet'; known: fashion_000, fashion_001, ..., model_builder
    """
    if name not in SEED_MODELS:
        raise ValueError(f"unknown seed model {name!r}; known: {', '.join(SEED_MODELS)}")
    return SEED_MODELS[name](**knobs)
