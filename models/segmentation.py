"""The facade segmentation networks of reports 000 and 001 (SEED_MODELS.md sections 3 and 4).

Both map a (N, 3, H, W) photo to (N, 5, H, W) class scores of the same size.
"""
from __future__ import annotations

import minidl.nn as nn


class Report000SegNet(nn.Module):
    """Report 000: three valid 3×3 convs (3→64→128→256) and three 3×3 transposed convs (256→128→64→5) that
    grow the map back by the 6 pixels the convs took; ReLUs between (*chosen*), none at the end."""

    def __init__(self, num_classes: int = 5):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, 64, 3), nn.ReLU(),
            nn.Conv2d(64, 128, 3), nn.ReLU(),
            nn.Conv2d(128, 256, 3), nn.ReLU(),
            nn.ConvTranspose2d(256, 128, 3), nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 3), nn.ReLU(),
            nn.ConvTranspose2d(64, num_classes, 3),
        )

    def forward(self, x):
        return self.layers(x)


class Report001SegNet(nn.Module):
    """Report 001: conv(3→32, 3, pad 1) → ReLU → maxpool 2 → conv(32→64, 3, pad 1) → ReLU →
    transposed conv(64→32, 3, stride 2) → conv(32→5, 2). Sizes 256 → 128 → 257 → 256."""

    def __init__(self, num_classes: int = 5):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 3, stride=2),
            nn.Conv2d(32, num_classes, 2),
        )

    def forward(self, x):
        return self.layers(x)
