"""Report 004's VGG-16 on CIFAR-10: the report's failed run, and one that trains VGG-16 properly.

    python experiments/vgg16_cifar.py                    # the defaults: test accuracy above 0.80
    python experiments/vgg16_cifar.py --recipe report    # the report's run: SGD lr 0.0001, momentum 0.9, batch 4,
                                                         # 3 epochs of 2000 mini-batches
    python experiments/vgg16_cifar.py --recipe report --init kaiming   # the report's run with He init alone

VGG-16 as the report built it (SEED_MODELS.md section 7): five blocks of 3x3 convs (the last conv of blocks
3-5 is 1x1), each followed by 2x2 max pooling, then fc 512 -> 256 -> 256 -> 10; no batch norm. The defaults:
He initialization, SGD with Nesterov momentum 0.9 and weight decay 5e-4, a one-cycle learning rate peaking at
0.02 over 10 epochs of batch 128, per-channel normalization, random crops and flips. report.md says why the
report's run failed, with the signal at initialization measured for both inits. See
experiments/report004.py for what a run writes.
"""
from __future__ import annotations

import common
import report004


def main(argv: list[str] | None = None) -> int:
    """Run the script with the command-line arguments ``argv`` (default ``sys.argv[1:]``); returns the exit
    status."""
    return report004.main(report004.NETS["vgg16"], __file__, __doc__, argv)


if __name__ == "__main__":
    common.exit_without_gc(main())
