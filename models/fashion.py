"""The Fashion-MNIST classifiers of reports 000 and 001 (SEED_MODELS.md sections 1 and 2)."""
from __future__ import annotations

import minidl.nn as nn
import minidl.nn.functional as F


class Report000Net(nn.Module):
    """Report 000: conv(1→32, 3) → ReLU → maxpool 2 → conv(32→32, 3) → ReLU → maxpool 3 → fc 288→120 → fc 120→10.

    Spatial sizes: 28 → 26 → 13 → 11 → 3, so the flattened features are 32·3·3 = 288.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 32, 3)
        self.fc1 = nn.Linear(288, 120)
        self.fc2 = nn.Linear(120, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, stride=2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 3)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


class Report001Net(nn.Module):
    """Report 001: conv(1→32, 3) → ReLU → maxpool 2 → conv(32→32, 3) → ReLU → maxpool 2 → fc 800→120 → fc 120→10.

    Spatial sizes: 28 → 26 → 13 → 11 → 5, so the flattened features are 32·5·5 = 800. The hidden width
    120 is not stated in the report (*chosen*, as report 000's).
    """

    def __init__(self, num_classes: int = 10, hidden: int = 120):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 32, 3)
        self.fc1 = nn.Linear(800, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)
