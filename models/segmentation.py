"""The facade segmentation networks of reports 000 and 001 (SEED_MODELS.md sections 3 and 4).

Both map a (N, 3, H, W) photo to (N, 5, H, W) class scores of the same size.
"""
from __future__ import annotations

from collections.abc import Sequence

import minidl.nn as nn
import minidl.nn.functional as F


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


class Rescaled(nn.Module):
    """Run a segmentation ``net`` on the photo resized by ``scale``, and resize its score maps back.

    The facade nets see little of the photo: report 000's net decides each pixel from a 13 x 13 window,
    report 001's from about 10 x 10. Run at half size, the same net and weights see twice as far (a window
    of 26 x 26 photo pixels) for a quarter of the work. The photo is shrunk with bilinear interpolation
    (at scale 1/2, exactly the mean of each 2 x 2 block) and the scores grown back bilinearly, so the loss
    and every metric are computed at the photo's own size, against its own label map. Both resizes are
    differentiable and have no parameters: ``scale=1`` is the net itself.

    Several scales, e.g. ``(0.5, 0.25)``: the mean of the net's score maps at each, so every pixel is judged
    from a near and a far view by the same weights (the cost is the sum of the scales' costs).

    Args:
        net: maps (N, 3, h, w) to (N, C, h, w).
        scale: the factor applied to the photo's height and width, in (0, 1], or a sequence of them.
    """

    def __init__(self, net: nn.Module, scale: float | Sequence[float] = 1.0):
        super().__init__()
        scales = tuple(float(s) for s in scale) if isinstance(scale, Sequence) else (float(scale),)
        if not scales or not all(0 < s <= 1 for s in scales):
            raise ValueError(f"Rescaled: scale must be in (0, 1] (or a sequence of such), got {scale}")
        self.net = net
        self.scales = scales

    def forward(self, x):
        size = x.shape[-2:]
        total = None
        for s in self.scales:
            if s == 1:
                scores = self.net(x)
            else:
                small = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
                scores = F.interpolate(self.net(small), size=size, mode="bilinear", align_corners=False)
            total = scores if total is None else total + scores
        return total if len(self.scales) == 1 else total / len(self.scales)

    def extra_repr(self) -> str:
        return f"scale={self.scales[0] if len(self.scales) == 1 else self.scales}"


class MirrorAveraged(nn.Module):
    """Test-time flipping: the mean of ``net``'s scores for the photo and (mirrored back) for its mirror image.

    A facade is as likely left-right mirrored, so both views are fair evidence about each pixel; averaging
    them cancels part of each view's errors. Twice the work of ``net`` at inference; nothing to train.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return (self.net(x) + self.net(x.flip(-1)).flip(-1)) / 2
