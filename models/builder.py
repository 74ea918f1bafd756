"""Report 002's Model Builder CNN (SEED_MODELS.md section 5), with every knob the report turned.

The report built its nets in deeplearn.js's Model Builder, a page where a CNN is put together layer by layer,
and then in code. Its base net, on MNIST (1×28×28), Fashion-MNIST or CIFAR-10 (3×32×32)::

    conv(5×5, stride 1, pad 2, 16 filters) → ReLU → maxpool(2, stride 2)     block 1
    conv(5×5, stride 1, pad 2, 16 filters) → ReLU → maxpool(2, stride 2)     block 2
    flatten → fully connected (→ 10)                                         classifier

Sizes on MNIST: 28 → 28 → 14 → 14 → 7, so the classifier sees 16·7·7 = 784 features.
"""
from __future__ import annotations

from collections import OrderedDict

import minidl.nn as nn
from minidl.tensor import Tensor

__all__ = ["ModelBuilderNet", "window_output_size"]


def window_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, ceil_mode: bool = False) -> int:
    """The side of a conv's or a max pool's output: ``floor((size + 2·padding - kernel) / stride) + 1``.

    A window of ``kernel`` pixels slides over ``size + 2·padding`` pixels, ``stride`` at a time; a last step
    that does not fit is dropped (PyTorch's ``ceil_mode=False``). With ``ceil_mode`` it is kept as a partial
    window (``ceil`` instead of ``floor``) as long as it starts inside the map, PyTorch's pooling rule, so even a
    map smaller than the window gives one output. Zero or less means the window does not fit.

    >>> window_output_size(28, 5, padding=2), window_output_size(28, 2, stride=2), window_output_size(3, 5)
    (28, 14, -1)
    >>> window_output_size(3, 2, stride=2), window_output_size(3, 2, stride=2, ceil_mode=True)
    (1, 2)
    >>> window_output_size(1, 2, stride=2), window_output_size(1, 2, stride=2, ceil_mode=True)
    (0, 1)
    """
    span = size + 2 * padding - kernel
    if not ceil_mode:
        return span // stride + 1
    out = (span + stride - 1) // stride + 1
    return out - 1 if (out - 1) * stride >= size + padding else out


class ModelBuilderNet(nn.Module):
    """Report 002's Model Builder CNN: ``blocks`` × (conv → ReLU → max pool) → flatten → fully connected.

    Every conv has ``filters`` output channels and a ``field_size`` × ``field_size`` kernel. Extra convs are
    plain convs, no ReLU after them, at the two places report 002 drew them (section 3.6, item 4):
    "conv → reLU → maxpool → conv → reLU → maxpool → CONV → CONV" for two extra layers (``extra_convs_at_end=2``)
    and "conv → CONV → reLU → maxpool → conv → CONV → reLU → maxpool → CONV → CONV" for four
    (``extra_convs_per_block=1, extra_convs_at_end=2``). Without a ReLU between them, two convs in a row are
    still one linear map (a wider kernel), so they enlarge what a unit sees but add no nonlinearity. Extra convs
    have stride 1, so they refine the map without shrinking it; ``conv_stride`` is the block convs' only.

    The classifier's input size is computed from the geometry (:func:`window_output_size` for each conv and
    pool); a configuration that shrinks the map to nothing raises a ``ValueError`` naming the knobs.

    Args:
        blocks: conv → ReLU → max pool triples (the report removed one or two of the base's 2).
        filters: output channels of every conv (the report tried 5, 16, 30 and 50).
        field_size: side of every conv kernel (1, 3, 5 and 7 in the report).
        conv_stride: stride of each block's conv (1, 3, 5 and 10 in the report).
        padding: zeros around each side of every conv's input; None for ``field_size // 2``, which keeps an
            odd-sized map unchanged at stride 1 (pad 2 for the base's 5×5, *chosen* in SEED_MODELS.md). A
            strided conv then shrinks the map, as in PyTorch (deeplearn.js's own default pad grew with the
            stride to keep the size), so on 28×28 a conv stride of 5 or more leaves room for one block only.
        pool_size: side of the max-pool window.
        pool_stride: step of the max-pool window (1, 2 and 5 in the report).
        ceil_mode: pools keep a partial window at the bottom and right edges (PyTorch's ``ceil_mode``), so a
            1×1 map pools to 1×1 instead of nothing. The base nets' maps (28, 14; 32, 16) are even, so it
            changes them not at all; it lets two blocks of conv stride 5 or 10 fit 28×28.
        extra_convs_per_block: extra convs right after each block's conv, before its ReLU.
        extra_convs_at_end: extra convs after the last block, before flatten.
        input_size: (C, H, W) of one image: (1, 28, 28) for MNIST and Fashion-MNIST, (3, 32, 32) for CIFAR-10.
        num_classes: outputs of the fully connected layer.

    >>> import minidl as mdl
    >>> net = ModelBuilderNet()
    >>> sum(p.numel() for p in net.parameters())
    14682
    >>> [(name, tuple(y.shape)) for name, y in net.forward_with_activations(mdl.zeros(2, 1, 28, 28))][-3:]
    [('pool2', (2, 16, 7, 7)), ('flatten', (2, 784)), ('fc', (2, 10))]
    """

    def __init__(self, blocks: int = 2, filters: int = 16, field_size: int = 5, conv_stride: int = 1,
                 padding: int | None = None, pool_size: int = 2, pool_stride: int = 2, ceil_mode: bool = False,
                 extra_convs_per_block: int = 0, extra_convs_at_end: int = 0,
                 input_size: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10):
        super().__init__()
        pad = field_size // 2 if padding is None else padding
        c_in, H, W = input_size
        knobs = (f"input_size={tuple(input_size)}, blocks={blocks}, field_size={field_size}, "
                 f"conv_stride={conv_stride}, padding={pad}, pool_size={pool_size}, pool_stride={pool_stride}, "
                 f"ceil_mode={ceil_mode}")
        layers = OrderedDict()

        def add(name: str, layer: nn.Module, kernel: int, stride: int, pad: int, ceil: bool = False) -> None:
            nonlocal H, W
            OH = window_output_size(H, kernel, stride, pad, ceil)
            OW = window_output_size(W, kernel, stride, pad, ceil)
            if OH < 1 or OW < 1:
                raise ValueError(f"ModelBuilderNet: the feature map shrinks to nothing at {name}, whose "
                                 f"{kernel}×{kernel} window does not fit the {H}×{W} map padded by {pad}; with "
                                 f"{knobs}, use fewer blocks, smaller strides or windows, or more padding")
            layers[name], H, W = layer, OH, OW

        for b in range(1, blocks + 1):
            add(f"conv{b}", nn.Conv2d(c_in, filters, field_size, conv_stride, pad), field_size, conv_stride, pad)
            for e in range(1, extra_convs_per_block + 1):
                add(f"conv{b}_extra{e}", nn.Conv2d(filters, filters, field_size, 1, pad), field_size, 1, pad)
            layers[f"relu{b}"] = nn.ReLU()
            add(f"pool{b}", nn.MaxPool2d(pool_size, pool_stride, ceil_mode=ceil_mode), pool_size, pool_stride, 0,
                ceil_mode)
            c_in = filters
        for e in range(1, extra_convs_at_end + 1):
            add(f"conv_extra{e}", nn.Conv2d(c_in, filters, field_size, 1, pad), field_size, 1, pad)
            c_in = filters
        layers["flatten"] = nn.Flatten()
        layers["fc"] = nn.Linear(c_in * H * W, num_classes)
        self.layers = nn.Sequential(layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)

    def forward_with_activations(self, x: Tensor) -> list[tuple[str, Tensor]]:
        """Run the net layer by layer and keep every output, for an activation viewer.

        Args:
            x: a batch of images, (N, C, H, W).
        Returns:
            ``(layer name, output)`` for each layer in order (``"conv1"``, ``"relu1"``, ``"pool1"``, ...,
            ``"flatten"``, ``"fc"``); the last output is what ``forward`` returns.
        """
        activations = []
        for name, layer in self.layers.named_children():
            x = layer(x)
            activations.append((name, x))
        return activations
