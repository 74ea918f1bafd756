"""Report 004's LeNet on CIFAR-10: the report's run, and one that trains LeNet properly.

    python experiments/lenet_cifar.py                    # the defaults: mean per-class accuracy above 0.65
    python experiments/lenet_cifar.py --recipe report    # the report's run: SGD lr 0.001, momentum 0.9, batch 4,
                                                         # 2 epochs, the loss every 2000 mini-batches
    python experiments/lenet_cifar.py --tensorboard runs/tb/lenet   # also the TensorBoard views of the report

LeNet (SEED_MODELS.md section 7): conv(3->6, 5) -> ReLU -> pool -> conv(6->16, 5) -> ReLU -> pool -> fc 400 ->
120 -> 84 -> 10. The defaults: SGD with Nesterov momentum 0.9 and weight decay 5e-4, a one-cycle learning
rate peaking at 0.02 over 20 epochs of batch 32, per-channel normalization, random horizontal flips (random
crops too, --augment crop-flip, are more than so small a net can fit in 20 epochs: measured, see the README).
See experiments/report004.py for what a run writes.
"""
from __future__ import annotations

import common
import report004


def main(argv: list[str] | None = None) -> int:
    """Run the script with the command-line arguments ``argv`` (default ``sys.argv[1:]``); returns the exit
    status."""
    return report004.main(report004.NETS["lenet"], __file__, __doc__, argv)


if __name__ == "__main__":
    common.exit_without_gc(main())
