"""The CIFAR-10 networks of reports 003 (a CNN study) and 004 (LeNet and VGG-16)."""
from __future__ import annotations

import minidl.nn as nn
import minidl.nn.functional as F


class Report003Net(nn.Module):
    """Report 003's CNN and the variants it studied (SEED_MODELS.md section 6).

    Default (256,058 parameters): conv(3→24, 5) → ReLU → pool → conv(24→48, 3) → ReLU → pool →
    conv(48→96, 3) → pool (no ReLU, as in the report) → flatten 384 → fc 512 → ReLU → fc 10.

    Args:
        filters: channels of the three convs ([64, 128, 256] is the report's wider variant).
        kernels: kernel sizes of the three convs ([7, 5, 3] is a variant, with a 1×1 map before flatten).
        leaky: LeakyReLU instead of ReLU, everywhere (the report changed "all activation functions").
        batch_norm: BatchNorm after each activation, the convs' (2d) and the fully connected ones' (1d), as
            the report says: "after each activation function ReLu/Leaky ReLu" (its best net).
        dropout: dropout probability between FC1 and FC2 (0 = none).
        extra_fc: width of an extra Linear+ReLU before the classifier (0 = none).
    """

    def __init__(self, filters=(24, 48, 96), kernels=(5, 3, 3), leaky: bool = False, batch_norm: bool = False,
                 dropout: float = 0.0, extra_fc: int = 0, hidden: int = 512, num_classes: int = 10):
        super().__init__()
        act = nn.LeakyReLU if leaky else nn.ReLU
        layers, c_in, size = [], 3, 32
        for i, (c_out, k) in enumerate(zip(filters, kernels)):
            layers.append(nn.Conv2d(c_in, c_out, k, stride=1, padding="valid"))
            if i < 2:
                layers.append(act())
                if batch_norm:
                    layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.MaxPool2d(2, stride=2))
            c_in, size = c_out, (size - k + 1) // 2
        self.cnn = nn.Sequential(*layers)
        self.flatten = nn.Flatten(start_dim=1)
        head = [nn.Linear(c_in * size * size, hidden), act()]
        if batch_norm:
            head.append(nn.BatchNorm1d(hidden))
        if dropout:
            head.append(nn.Dropout(dropout))
        if extra_fc:
            head += [nn.Linear(hidden, extra_fc), act()]
            if batch_norm:
                head.append(nn.BatchNorm1d(extra_fc))
        head.append(nn.Linear(extra_fc or hidden, num_classes))
        self.lin = nn.Sequential(*head)

    def forward(self, x):
        return self.lin(self.flatten(self.cnn(x)))


class LeNet(nn.Module):
    """Report 004's LeNet: conv(3→6, 5) → pool → conv(6→16, 5) → pool → fc 400→120→84→10, ReLUs between."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class VGG16(nn.Module):
    """Report 004's VGG-16 for 32×32 inputs: five conv blocks (the last conv of blocks 3–5 is 1×1),
    each followed by 2×2 max pooling, then fc 512→256→256→10 with ReLUs. Attribute names follow the report."""

    BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))

    def __init__(self, num_classes: int = 10):
        super().__init__()
        c_in = 3
        for b, widths in enumerate(self.BLOCKS, start=1):
            for i, c_out in enumerate(widths, start=1):
                one_by_one = i == 3
                conv = nn.Conv2d(c_in, c_out, 1 if one_by_one else 3, padding=0 if one_by_one else 1)
                setattr(self, f"conv{b}_{i}", conv)
                c_in = c_out
            setattr(self, f"maxpool{b}", nn.MaxPool2d(2, 2))
        self.fc1 = nn.Linear(512, 256)
        self.fc2 = nn.Linear(256, 256)
        self.fc3 = nn.Linear(256, num_classes)

    def forward(self, x):
        for b, widths in enumerate(self.BLOCKS, start=1):
            for i in range(1, len(widths) + 1):
                x = F.relu(getattr(self, f"conv{b}_{i}")(x))
            x = getattr(self, f"maxpool{b}")(x)
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)
