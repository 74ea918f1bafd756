"""Report 002's Model Builder experiments: its base CNN on MNIST, Fashion-MNIST or CIFAR-10, every knob it
turned, and the whole sweep of them, charted against batches as Model Builder's live charts were.

    python experiments/model_builder.py                             # the base net on MNIST, 3000 batches of 20
    python experiments/model_builder.py --dataset cifar-10 --field-size 3 --filters 30 \\
        --batch-size 256 --schedule cosine --lr 0.04 --augment crop-flip   # the report's 78 % net: 70.76 %
    python experiments/model_builder.py --dataset fashion-mnist --sweep   # every knob, a table and report.md
    python experiments/model_builder.py --resume                    # continue the run in --out where it stopped

The base net (SEED_MODELS.md section 5; models/builder.py)::

    conv 5×5, 16 filters, pad 2 → ReLU → max pool 2/2 → conv 5×5, 16 → ReLU → max pool 2/2 → flatten → linear

trained with softmax cross-entropy for ``--batches`` batches of ``--batch-size`` images drawn from a stream
of shuffled passes over the training set, as Model Builder trained: by batches, not epochs. Every
``--eval-every`` batches the net is measured on the same ``--eval-size`` test images (the points of the
charts); at the end, on the whole test set (``test_accuracy``). Training is plain SGD with momentum 0.9 at
lr 0.01 and no schedule (*chosen*: the report names no optimizer); ``--schedule cosine`` decays the rate to 0
over the batches.

``--sweep`` turns each knob the report turned, one at a time from the base net, and runs each variant in a
folder of ``--out`` named after it: one or two conv-ReLU-pool blocks removed; 5 or 50 filters; pool stride 1
or 5; field size 1 or 7; conv stride 3, 5 or 10; two or four extra convs; kernel 3 with 30 filters (the
report's 78 % CIFAR-10 net); batch 500 (run for 600 batches, where the report read its batch-500 charts on
MNIST and Fashion-MNIST; --batches, when given, is every variant's). It writes comparison.md (accuracy,
examples/s and time of each beside what the report observed), comparison.png and report.md, which says
where these numbers agree with the report's explanations and where they say otherwise.

The pools keep a partial window at the map's edge (``--ceil-mode``, on by default): that changes none of the
base nets' sizes (28, 14, 7; 32, 16, 8) and lets two blocks of conv stride 5 or 10 fit a 28×28 image, as
the report ran them. Each run folder holds config.json, metrics.csv (one row per --eval-every
batches), checkpoint.npz, model_summary.txt, training_curves.png (loss and accuracy against batches),
confusion_matrix.png, conv1_filters.png, report.md and summary.json (test_accuracy, examples_per_second,
batches, wall_seconds, and the accuracy of small test batches, the figure Model Builder showed).
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import classify
import common
from common import markdown_table, write_json

import minidl as mdl
import minidl.nn as nn
import minidl.optim as optim
from minidl import metrics, training, viz
from minidl.data import DataLoader, Subset
from minidl.data import transforms as T
from minidl.data.datasets import CIFAR10, MNIST, FashionMNIST
from models.builder import ModelBuilderNet

#: --dataset: the data set's class, its image size and the mean and std of its training pixels in [0, 1].
DATASETS = {
    "mnist": (MNIST, (1, 28, 28), ((0.1307,), (0.3081,))),
    "fashion-mnist": (FashionMNIST, (1, 28, 28), ((0.2860,), (0.3530,))),
    "cifar-10": (CIFAR10, (3, 32, 32), (classify.CIFAR_MEAN, classify.CIFAR_STD)),
}
TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar-10": "CIFAR-10"}
#: The net's knobs (ModelBuilderNet's arguments, --extra-convs aside) with the base net's values.
BASE_NET = {"blocks": 2, "filters": 16, "field_size": 5, "conv_stride": 1, "pool_size": 2, "pool_stride": 2,
            "extra_convs": 0}
#: --extra-convs: where report 002 drew its extra conv layers (models/builder.py).
EXTRA_CONVS = {0: (0, 0), 2: (0, 2), 4: (1, 2)}
#: Test images per batch for the small-batch accuracy (summary.json's small_batch_accuracy).
SMALL_TEST_BATCH = 50

#: The sweep: what each variant changes from the base net and its training, and what it shows.
VARIANTS = {
    "base": ({}, "the base net"),
    "blocks1": ({"blocks": 1}, "one conv-ReLU-pool block removed"),
    "blocks0": ({"blocks": 0}, "both blocks removed (a linear classifier)"),
    "filters5": ({"filters": 5}, "5 filters per conv"),
    "filters50": ({"filters": 50}, "50 filters per conv"),
    "pool-stride1": ({"pool_stride": 1}, "max-pool stride 1"),
    "pool-stride5": ({"pool_stride": 5}, "max-pool stride 5"),
    "field1": ({"field_size": 1}, "field size 1×1"),
    "field7": ({"field_size": 7}, "field size 7×7"),
    "conv-stride3": ({"conv_stride": 3}, "conv stride 3"),
    "conv-stride5": ({"conv_stride": 5}, "conv stride 5"),
    "conv-stride10": ({"conv_stride": 10}, "conv stride 10"),
    "extra2": ({"extra_convs": 2}, "two extra convs"),
    "extra4": ({"extra_convs": 4}, "four extra convs"),
    "k3f30": ({"field_size": 3, "filters": 30}, "kernel 3, 30 filters (the report's 78 % net)"),
    "batch500": ({"batch_size": 500, "batches": 600}, "batch 500 (600 batches)"),
}
#: What report 002 observed for each variant (SEED_MODELS.md section 5), by data set; "any" for all of them.
#: Each is (a fraction for the charts or None, the report's words and conditions).
REPORTED = {
    "base": {"mnist": (0.95, "> 95 % after ~300 batches of 20"),
             "fashion-mnist": (0.80, "> 80 % after ~1300 batches of 20"),
             "cifar-10": (0.45, "~45 % at 577 examples/s in Model Builder; in code, 40 % on average (max 54 %) "
                                "after 2500 batches of 20")},
    "blocks1": {"cifar-10": (0.45, "40-50 %, trains faster")},
    "blocks0": {"cifar-10": (0.45, "40-50 %, trains faster")},
    "filters5": {"cifar-10": (0.40, "~40 %, a little worse")},
    "filters50": {"cifar-10": (0.45, "~45 %, the same, but much slower (4-5 min more)")},
    "pool-stride1": {"cifar-10": (0.10, "10 % and very slow (~15 min); the report says it overfits")},
    "pool-stride5": {"cifar-10": (0.45, "about the same accuracy and time")},
    "field1": {"fashion-mnist": (None, "worse than 5 (500 batches of 50)")},
    "field7": {"fashion-mnist": (None, "worse than 5 (500 batches of 50)")},
    "conv-stride3": {"fashion-mnist": (0.90, "~90 %, like stride 1 (500 batches of 50)")},
    "conv-stride5": {"fashion-mnist": (0.90, "~90 %, like stride 1 (500 batches of 50)")},
    "conv-stride10": {"fashion-mnist": (None, "slightly worse than strides 1-5 (500 batches of 50)")},
    "extra2": {"cifar-10": (0.50, "~50 % after 2500 batches (base: ~40 %), a slower start")},
    "extra4": {"cifar-10": (0.45, "~40 % at 1200 batches, plateau ~45 % (max 70 %), wild oscillations")},
    "k3f30": {"cifar-10": (0.78, "78 % after 3000 batches, 8 minutes")},
    "batch500": {"mnist": (0.90, "> 90 % after ~600 batches"),
                 "fashion-mnist": (0.70, "plateau ~70 % at batch 600"),
                 "cifar-10": (0.40, "40 % at batch 2000, after 20 minutes")},
}


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring and ``--help``)."""
    p = common.make_parser(__file__, __doc__)
    p.add_argument("--dataset", choices=list(DATASETS), default="mnist")
    p.add_argument("--sweep", action="store_true", help="run every variant the report tried, each in "
                                                        "--out/<variant>, and compare them (comparison.md)")
    p.add_argument("--batches", type=common.int_at_least(1), default=3000, help="training batches (default 3000)")
    p.add_argument("--batch-size", type=common.int_at_least(1), default=20,
                   help="training images per batch (default 20)")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--lr", type=common.float_in(0, low_open=True), default=None,
                   help="learning rate (default 0.01 for sgd, 0.001 for adam)")
    p.add_argument("--momentum", type=common.float_in(0, 1), default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=common.float_in(0), default=0.0, help="L2 penalty (default 0)")
    p.add_argument("--schedule", choices=["none", "cosine"], default="none",
                   help="learning rate: constant, as Model Builder's, or a cosine from --lr to 0 over the batches "
                        "(default none)")
    p.add_argument("--augment", choices=sorted(classify.AUGMENTATIONS), default="none",
                   help="random transforms of the training images (crop-flip for CIFAR-10 only; default none)")
    p.add_argument("--eval-every", type=common.int_at_least(1), default=100, metavar="N",
                   help="measure the net on --eval-size test images every N batches (default 100)")
    p.add_argument("--eval-size", type=common.int_at_least(1), default=1000, metavar="M",
                   help="test images of each measurement along the way (default 1000; the end's is on all)")
    p.add_argument("--seed", type=common.int_at_least(0), default=0,
                   help="seeds the weights, the batches and the measured test images (default 0)")
    p.add_argument("--train-subset", type=common.int_at_least(1), default=None, metavar="N",
                   help="draw the batches from only N training images (smoke runs)")
    net = p.add_argument_group("the net (default: the base net's)")
    net.add_argument("--blocks", type=common.int_at_least(0), default=None, help="conv-ReLU-pool blocks (2)")
    net.add_argument("--filters", type=common.int_at_least(1), default=None, help="filters of every conv (16)")
    net.add_argument("--field-size", type=common.int_at_least(1), default=None, help="side of every conv kernel (5)")
    net.add_argument("--conv-stride", type=common.int_at_least(1), default=None, help="stride of block convs (1)")
    net.add_argument("--pool-size", type=common.int_at_least(1), default=None, help="side of the pool window (2)")
    net.add_argument("--pool-stride", type=common.int_at_least(1), default=None, help="stride of the pools (2)")
    net.add_argument("--extra-convs", type=int, choices=sorted(EXTRA_CONVS), default=None,
                     help="extra conv layers where the report put them: 2 after the last block, 4 = one more in "
                          "each block too (0)")
    net.add_argument("--ceil-mode", action=argparse.BooleanOptionalAction, default=True,
                     help="pools keep a partial window at the edge (default on; see the module docstring)")
    common.add_run_flags(p, out="runs/model_builder")
    return p


def resolve(args: argparse.Namespace, variant: str = "base") -> None:
    """Fill the net's knobs left at None from ``variant`` (then the base net), and the learning rate."""
    changes = VARIANTS[variant][0]
    for name, value in BASE_NET.items():
        if getattr(args, name) is None:
            setattr(args, name, changes.get(name, value))
    if args.lr is None:
        args.lr = 0.01 if args.optimizer == "sgd" else 0.001


def build_model(args: argparse.Namespace) -> ModelBuilderNet:
    """The net of ``args``; a geometry that shrinks the image to nothing is refused, naming the flags."""
    per_block, at_end = EXTRA_CONVS[args.extra_convs]
    try:
        return ModelBuilderNet(blocks=args.blocks, filters=args.filters, field_size=args.field_size,
                               conv_stride=args.conv_stride, pool_size=args.pool_size, pool_stride=args.pool_stride,
                               ceil_mode=args.ceil_mode, extra_convs_per_block=per_block, extra_convs_at_end=at_end,
                               input_size=DATASETS[args.dataset][1])
    except ValueError as err:
        raise common.ExperimentError(f"the net does not fit {TITLES[args.dataset]}'s images: {err} (flags "
                                     f"--blocks, --field-size, --conv-stride, --pool-size, --pool-stride, "
                                     f"--ceil-mode)", common.EXIT_USAGE) from err


class BatchStream:
    """Model Builder's training order, cut into the rounds that :func:`minidl.training.fit` calls epochs.

    The batches come from an endless stream of shuffled passes over the ``n`` training images: pass ``p`` is
    the permutation drawn from ``numpy.random.default_rng((seed, p))``, and batch ``b`` holds stream positions
    ``b·batch_size`` to ``(b + 1)·batch_size - 1``. Round ``k`` is batches ``k·per_round`` up to
    ``(k + 1)·per_round - 1`` (the last round may be shorter), so fit measures the net after every round and
    a run resumed at round ``k`` (``set_epoch(k)``) sees the very batches an uninterrupted one would.

    Used as a DataLoader's ``batch_sampler``: iterating yields one round's lists of indices.
    """

    def __init__(self, n: int, batch_size: int, batches: int, per_round: int, seed: int) -> None:
        self.n, self.batch_size, self.batches, self.per_round, self.seed = n, batch_size, batches, per_round, seed
        self.round = 0
        self._pass, self._order = -1, None

    @property
    def rounds(self) -> int:
        return math.ceil(self.batches / self.per_round)

    def set_epoch(self, epoch: int) -> None:
        self.round = int(epoch)

    def _position(self, i: int) -> int:
        p = i // self.n
        if p != self._pass:
            self._pass, self._order = p, np.random.default_rng((self.seed, p)).permutation(self.n)
        return int(self._order[i % self.n])

    def __len__(self) -> int:
        first = self.round * self.per_round
        return max(0, min(self.per_round, self.batches - first))

    def __iter__(self):
        first = self.round * self.per_round
        for b in range(first, min(first + self.per_round, self.batches)):
            start = b * self.batch_size
            yield [self._position(i) for i in range(start, start + self.batch_size)]
        self.round += 1


def load_data(args: argparse.Namespace):
    """The training stream's loader, the measuring and test loaders, the test set, class names and sizes."""
    cls, _, (mean, std) = DATASETS[args.dataset]
    if args.augment == "crop-flip" and args.dataset != "cifar-10":
        raise common.ExperimentError("argument --augment: crop-flip pads and crops 32×32 CIFAR-10 images; for "
                                     f"{TITLES[args.dataset]} pass --augment flip or none", common.EXIT_USAGE)
    eval_tf = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    train_tf = T.Compose(classify.AUGMENTATIONS[args.augment] + [T.ToTensor(), T.Normalize(mean, std)])
    train = common.load_dataset(cls, args.dataset, args.data_dir, train=True, transform=train_tf)
    test = common.load_dataset(cls, args.dataset, args.data_dir, train=False, transform=eval_tf)
    n = train_set_size = len(train)
    if args.train_subset is not None:
        if args.train_subset > n:
            raise common.ExperimentError(f"argument --train-subset: {args.train_subset} is more than the {n} "
                                         f"training images", common.EXIT_USAGE)
        train, n = Subset(train, np.arange(args.train_subset)), args.train_subset
    stream = BatchStream(n, args.batch_size, args.batches, args.eval_every, args.seed)
    eval_size = min(args.eval_size, len(test))
    measured = np.sort(np.random.default_rng(args.seed).permutation(len(test))[:eval_size])
    loaders = (DataLoader(train, batch_sampler=stream, seed=args.seed),
               DataLoader(Subset(test, measured), batch_size=1000), DataLoader(test, batch_size=1000))
    sizes = {"dataset": args.dataset, "train_set": train_set_size, "train_images": n, "eval_images": eval_size,
             "test_images": len(test)}
    return loaders, test, test.classes, sizes


def small_batch_accuracy(correct: np.ndarray, size: int, seed: int) -> dict:
    """The accuracy of the test set cut into random batches of ``size`` images: what a chart that shows the
    accuracy of one small test batch at a time (Model Builder's) swings between."""
    size = min(size, len(correct))  # a test set smaller than one batch is one batch
    order = np.random.default_rng(seed).permutation(len(correct))
    batches = correct[order[:len(correct) // size * size]].reshape(-1, size).mean(axis=1)
    return {"size": size, "batches": len(batches), "mean": float(batches.mean()), "std": float(batches.std()),
            "min": float(batches.min()), "max": float(batches.max()),
            "p95": float(np.percentile(batches, 95))}


def describe_net(args: argparse.Namespace, variant: str) -> str:
    """The net in words: the variant's, or for a run of its own, the knobs that differ from the base net's."""
    if variant != "base":
        return VARIANTS[variant][1]
    changed = [f"{name.replace('_', ' ')} {getattr(args, name)}" for name, value in BASE_NET.items()
               if getattr(args, name) != value]
    return "the base net" if not changed else "the base net with " + ", ".join(changed)


def relu_activity(model: ModelBuilderNet, loader, device: str) -> dict[str, float]:
    """For each ReLU layer, the fraction of its outputs that are positive over the images of ``loader``: 0
    means a dead layer, whose every unit is off for every image, so that no gradient flows back through it."""
    positive: dict[str, list[float]] = {}
    hooks = [layer.register_forward_hook(
        lambda module, inputs, y, name=name: positive.setdefault(name, []).append(float((y.numpy() > 0).mean())))
        for name, layer in model.layers.named_children() if isinstance(layer, nn.ReLU)]
    model.eval()
    with mdl.no_grad():
        for x, _ in loader:
            model(x.to(device))
    for hook in hooks:
        hook.remove()
    return {name: float(np.mean(fractions)) for name, fractions in positive.items()}


def main(argv: list[str] | None = None) -> int:
    """Run the script with the command-line arguments ``argv`` (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0, or that of an error already reported on stderr (see :func:`common.run`).
    """
    return common.run(build_parser(), argv, lambda args, given: (sweep if args.sweep else train)(args, given))


def train(args: argparse.Namespace, given: frozenset[str], variant: str = "base") -> int:
    """One run: check the run folder, load the data, train for --batches, test, write figures and report."""
    start = time.perf_counter()
    args.epochs = math.ceil(args.batches / args.eval_every)  # fit's epochs: the measuring rounds
    folder = common.RunFolder(args.out, script=Path(__file__).stem)
    folder.open(args, given)
    args.epochs = math.ceil(args.batches / args.eval_every)
    resolve(args, variant)
    if "momentum" in given and args.optimizer != "sgd":
        raise common.ExperimentError("argument --momentum: only --optimizer sgd has a momentum; leave it out",
                                     common.EXIT_USAGE)
    model = build_model(args).to(args.device)
    earlier_seconds = common.earlier_wall_seconds(args)
    mdl.manual_seed(args.seed)
    (train_loader, eval_loader, test_loader), test_set, classes, sizes = load_data(args)
    optimizer = (optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
                 if args.optimizer == "sgd" else
                 optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay))
    scheduler = (optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.batches)
                 if args.schedule == "cosine" else None)
    if args.resume:
        training.check_resume(folder.checkpoint_path, model, optimizer, epochs=args.epochs, scheduler=scheduler)
    folder.start(args, sizes)
    out = args.out
    (out / "model_summary.txt").write_text(mdl.summary(model, DATASETS[args.dataset][1], device=args.device))
    loss_fn = nn.CrossEntropyLoss()
    per_round, total = args.eval_every, args.batches

    def log_round(history: training.History) -> None:
        row = history.rows[-1]
        done = min(row["epoch"] * per_round, total)
        tqdm.write(f"batch {done}/{total} | train loss {row['train_loss']:.4f} acc {100 * row['train_acc']:.2f} % "
                   f"| test ({len(eval_loader.dataset)} images) loss {row['val_loss']:.4f} acc "
                   f"{100 * row['val_acc']:.2f} % | {row['images_per_s']:.0f} examples/s")

    history = training.fit(model, loss_fn, optimizer, train_loader, eval_loader, epochs=args.epochs, out_dir=out,
                           scheduler=scheduler, scheduler_interval="batch", resume=args.resume,
                           device=args.device, progress=not args.no_progress,
                           log=lambda message: None if message.startswith("epoch ") else tqdm.write(message),
                           on_epoch=log_round)
    test = training.evaluate(model, test_loader, loss_fn, device=args.device)
    active = relu_activity(model, eval_loader, args.device)
    correct = np.asarray(test.predictions) == np.asarray(test.targets)
    train_seconds = float(sum(r["train_seconds"] for r in history.rows))
    images = total * args.batch_size
    summary = {
        "test_accuracy": float(test.accuracy), "test_loss": float(test.loss),
        "per_class_accuracy": [float(a) for a in metrics.per_class_accuracy(test.predictions, test.targets,
                                                                            len(classes))],
        "small_batch_accuracy": small_batch_accuracy(correct, SMALL_TEST_BATCH, args.seed),
        "last_train_accuracy": history.last["train_acc"], "batches": total, "batch_size": args.batch_size,
        "epochs": images / sizes["train_images"], "examples_per_second": images / train_seconds,
        "train_seconds": train_seconds, "parameters": sum(p.numel() for p in model.parameters()),
        "relu_active_fraction": active, "dataset": args.dataset, "variant": variant,
        "test_images": len(test_set),
        "curve": {"batches": [min(r["epoch"] * per_round, total) for r in history.rows],
                  "test_accuracy": history["val_acc"]},
    }
    write_figures(out, args, history, test, test_set, classes, model, variant)
    summary["wall_seconds_this_command"] = time.perf_counter() - start
    summary["wall_seconds"] = earlier_seconds + summary["wall_seconds_this_command"]
    write_json(out / "summary.json", summary)
    write_report(out, args, summary, variant, common.command_line(__file__, args, build_parser()))
    print(f"{TITLES[args.dataset]}, {describe_net(args, variant)}: test accuracy "
          f"{100 * summary['test_accuracy']:.2f}% | "
          f"{total} batches of {args.batch_size}, {summary['examples_per_second']:.0f} examples/s, "
          f"{train_seconds:.0f} s training, {summary['wall_seconds']:.0f} s in all | run folder {out}")
    return 0


def reported(variant: str, dataset: str) -> tuple[float | None, str] | None:
    """What report 002 observed for ``variant`` on ``dataset``, if it tried it there."""
    return REPORTED.get(variant, {}).get(dataset)


def reported_anywhere(variant: str, dataset: str) -> str:
    """The report's words on ``variant``: on ``dataset`` if it tried it there, else on the data set it did."""
    seen = REPORTED.get(variant, {})
    if dataset in seen:
        return seen[dataset][1]
    return "; ".join(f"on {TITLES[d]}: {words}" for d, (_, words) in seen.items())


def write_figures(out: Path, args, history, test, test_set, classes, model, variant: str) -> None:
    """training_curves.png (against batches, with the report's figure as a line), confusion_matrix.png and
    conv1_filters.png (when the net has a conv)."""
    columns = history.as_dict()
    columns["epoch"] = [min(k * args.eval_every, args.batches) for k in columns["epoch"]]
    seen = reported(variant, args.dataset)
    lines = {f"report 002: {seen[1][:40]}": seen[0]} if seen and seen[0] is not None else None
    viz.plot_training_curves(columns, out / "training_curves.png", reference_accuracy=lines, xlabel="batches",
                             val_label=f"test ({min(args.eval_size, len(test_set)):,} images)",
                             title=f"{TITLES[args.dataset]}: {describe_net(args, variant)}, batch {args.batch_size}")
    viz.plot_confusion_matrix(metrics.confusion_matrix(test.predictions, test.targets, len(classes)),
                              out / "confusion_matrix.png", class_names=classes)
    if args.blocks:
        viz.plot_filters(model.layers.conv1.weight, out / "conv1_filters.png")


def write_report(out: Path, args, summary: dict, variant: str, command: str) -> None:
    """report.md: this run's accuracy and speed beside the report's observation, and the small-batch view."""
    seen = reported(variant, args.dataset)
    small = summary["small_batch_accuracy"]
    text = [
        f"# Report 002's Model Builder net on {TITLES[args.dataset]}: {describe_net(args, variant)}", "",
        f"Test accuracy **{100 * summary['test_accuracy']:.2f}%** on all {summary['test_images']:,} test images "
        f"after {summary['batches']} batches of {summary['batch_size']} ({summary['epochs']:.2f} "
        f"passes over the training images), {summary['examples_per_second']:.0f} examples/s, "
        f"{summary['train_seconds']:.0f} s of training, {summary['wall_seconds']:.0f} s in all, on "
        f"{common.machine()['cpu']} ({common.machine()['cores']} cores).", "",
        "Report 002 observed: " + (seen[1] + "." if seen else f"nothing for this variant on {TITLES[args.dataset]}."),
        "",
        "## What a small test batch shows", "",
        f"Model Builder charted the accuracy of one small test batch at a time. Cut into random batches of "
        f"{small['size']}, this run's test set gives {100 * small['mean']:.1f}% on average but swings from "
        f"{100 * small['min']:.0f}% to {100 * small['max']:.0f}% (standard deviation {100 * small['std']:.1f} "
        f"points; one batch in twenty is above {100 * small['p95']:.0f}%): a figure read off such a chart "
        f"is a draw from that spread, not the accuracy.", "",
        "## Figures", "", "![training curves](training_curves.png)", "",
        "![confusion matrix](confusion_matrix.png)", "",
    ]
    if args.blocks:
        text += ["![conv1 filters](conv1_filters.png)", ""]
    text += ["## Configuration", "", "```", command, "```", "",
             "See config.json for every setting, metrics.csv for the measurements along the way, "
             "model_summary.txt for the layers."]
    if args.dataset == "cifar-10":
        text += ["", classify.DATA_NOTE]
    (out / "report.md").write_text("\n".join(text) + "\n")


# ------------------------------------------------------------------------------------------ the sweep
def sweep(args: argparse.Namespace, given: frozenset[str]) -> int:
    """Every variant with the same flags, each a run of its own in ``--out/<variant>``, then the comparison.

    ``--resume`` keeps the variants that finished (a summary.json) and continues the one that stopped.
    """
    start = time.perf_counter()
    knobs = sorted(given & {*BASE_NET, "batch_size"})
    if knobs:
        raise common.ExperimentError(f"--sweep sets the net's knobs and the batch size itself, variant by variant;"
                                     f" leave out {', '.join(common.flag(k) for k in knobs)}", common.EXIT_USAGE)
    top = args.out
    common.open_sweep_folder(top, args, Path(__file__).stem)
    results = {}
    for name, (changes, what) in VARIANTS.items():
        run_dir = top / name
        finished = common.read_json(run_dir / "summary.json")
        if args.resume and finished is not None:
            print(f"--resume: variant {name} finished before (test accuracy {100 * finished['test_accuracy']:.2f}%)"
                  f"; kept")
            results[name] = finished
            continue
        variant_args = argparse.Namespace(**vars(args))
        variant_args.out, variant_args.sweep = run_dir, False
        variant_args.resume = args.resume and (run_dir / training.CHECKPOINT_NAME).exists()
        variant_args.overwrite = args.resume and not variant_args.resume  # nothing to keep: start it again
        variant_args.batch_size = changes.get("batch_size", args.batch_size)
        if "batches" not in given:  # --batches, when given, is every variant's
            variant_args.batches = changes.get("batches", args.batches)
        print(f"=== variant {name}: {what} ===")
        train(variant_args, given, variant=name)
        results[name] = common.read_json(run_dir / "summary.json")
    write_comparison(top, args.dataset, results, time.perf_counter() - start)
    print(f"sweep done: {top / 'comparison.md'}")
    return 0


def write_comparison(top: Path, dataset: str, results: dict, seconds: float) -> None:
    """comparison.md (with what the numbers say of the report's explanations), comparison.png, summary.json."""
    rows = []
    for name, s in results.items():
        rows.append([name, VARIANTS[name][1], reported_anywhere(name, dataset), f"{100 * s['test_accuracy']:.2f}",
                     f"{100 * s['last_train_accuracy']:.1f}", f"{s['examples_per_second']:.0f}",
                     f"{s['batches']} × {s['batch_size']}", f"{s['wall_seconds'] / 60:.1f}"])
    total = sum(s["wall_seconds"] for s in results.values())
    names = list(results)
    ours = [results[n]["test_accuracy"] for n in names]
    theirs = [(reported(n, dataset) or (None,))[0] for n in names]
    viz.plot_per_class_accuracy({"this sweep": ours}, top / "comparison.png", class_names=names,
                                reference={"report 002": [np.nan if t is None else t for t in theirs]},
                                title=f"Report 002's knobs on {TITLES[dataset]}: test accuracy",
                                ylabel="test accuracy (%)")
    text = [f"# Report 002's Model Builder knobs on {TITLES[dataset]}, side by side", "",
            markdown_table(["variant", "what changes", "report 002 observed", "test accuracy %",
                            "last train accuracy %", "examples/s", "batches", "minutes"], rows), "",
            f"All {len(results)}: {total / 60:.1f} minutes of runs ({seconds / 60:.1f} in this command), on "
            f"{common.machine()['cpu']} ({common.machine()['cores']} cores). Train accuracy is the mean over the "
            f"last {results[names[0]]['curve']['batches'][0]} batches' training images.", "",
            "![test accuracy per variant](comparison.png)", "",
            "## Where the numbers agree with the report, and where they say otherwise", "",
            *[f"- {line}" for line in findings(results, dataset)], "",
            "Each variant's folder holds its run: report.md, training_curves.png, summary.json, config.json."]
    if dataset == "cifar-10":
        text += ["", classify.DATA_NOTE]
    (top / "comparison.md").write_text("\n".join(text) + "\n")
    (top / "report.md").write_text("\n".join(text) + "\n")
    write_json(top / "summary.json", {"sweep": {n: s["test_accuracy"] for n, s in results.items()},
                                      "examples_per_second": {n: s["examples_per_second"] for n, s in results.items()},
                                      "wall_seconds": total})


def findings(results: dict, dataset: str) -> list[str]:
    """Each of the report's explanations, checked against the sweep's numbers (for the variants it ran)."""
    def acc(name):
        return 100 * results[name]["test_accuracy"]

    def speed(name):
        return results[name]["examples_per_second"] / results["base"]["examples_per_second"]

    def close(a, b, points=3.0):
        return abs(acc(a) - acc(b)) <= points

    have = set(results)
    lines = []
    if "base" not in have:
        return ["The base net was not run, so there is nothing to compare with."]
    base = acc("base")
    threshold = {"mnist": (0.95, 300), "fashion-mnist": (0.80, 1300)}.get(dataset)
    if threshold:
        level, report_batches = threshold
        s = results["base"]
        reached = next((b for b, a in zip(s["curve"]["batches"], s["curve"]["test_accuracy"]) if a >= level), None)
        lines.append(f"Report: > {100 * level:.0f}% after ~{report_batches} batches of 20. Here the base net "
                     + (f"first measured {100 * level:.0f}% or more after {reached} batches"
                        if reached else f"never reached {100 * level:.0f}% in {s['batches']} batches")
                     + f", and ended at {base:.2f}%.")
    if {"blocks1", "blocks0"} <= have:
        agree = close("blocks1", "base", 5) and close("blocks0", "base", 5)
        span = max(acc("blocks1"), acc("blocks0"), base) - min(acc("blocks1"), acc("blocks0"), base)
        lines.append(f"Removing blocks (report, on CIFAR-10: accuracy about the same, training faster): one block "
                     f"{acc('blocks1'):.1f}% at {speed('blocks1'):.1f}× the base's examples/s, none "
                     f"{acc('blocks0'):.1f}% at {speed('blocks0'):.1f}×, base {base:.1f}%. "
                     + ("The accuracy agrees: within 5 points." if agree else
                        f"The numbers say otherwise on accuracy: {span:.1f} points between the best and the "
                        f"worst of the three.")
                     + (" Fewer layers are faster, as the report saw (no CPU quirk needed to explain it: "
                        "the convolutions are most of the work)." if speed("blocks0") > 1 else ""))
    if {"filters5", "filters50"} <= have:
        lines.append(f"Filters (report, on CIFAR-10: 5 a little worse, 50 the same but much slower): 5 filters "
                     f"{acc('filters5'):.1f}%, 50 filters {acc('filters50'):.1f}% at {speed('filters50'):.2f}× the "
                     f"base's speed, base {base:.1f}%. "
                     + ("Agrees." if acc("filters5") <= base and speed("filters50") < 1 else
                        "Partly otherwise: see the numbers."))
    if "pool-stride1" in have:
        s = results["pool-stride1"]
        gap = 100 * s["last_train_accuracy"] - acc("pool-stride1")
        batches, curve = s["curve"]["batches"], s["curve"]["test_accuracy"]
        stalled = 0
        while stalled < len(curve) and curve[stalled] < 0.2:  # near chance (10%) on the measured images
            stalled += 1
        what = (f"Pool stride 1 (report, on CIFAR-10: 10% and very slow, because it \"overfits\"): here "
                f"{acc('pool-stride1'):.1f}% at {speed('pool-stride1'):.2f}× the base's speed. The slowness agrees "
                f"(the maps barely shrink, so the second conv sees 4× the pixels and the classifier has "
                f"{s['parameters'] / results['base']['parameters']:.0f}× the base's weights). ")
        if stalled >= 3:
            what += (f"So does the 10%, for a while: the net sat at chance for its first {batches[stalled - 1]} "
                     f"batches, its loss at ln 10 = 2.30, before it began to learn"
                     + (f" (it ended at {acc('pool-stride1'):.1f}%)" if stalled < len(curve) else "")
                     + f". That is a stall, not overfitting: its train accuracy sat at chance with the test's, and "
                     f"at the end ({100 * s['last_train_accuracy']:.1f}%) it is {gap:.1f} points above it, where "
                     f"an overfitting net's would be far above.")
        elif acc("pool-stride1") > 20:
            what += (f"The explanation does not: its last train accuracy is {gap:.1f} points above the test's, so "
                     f"it does not overfit, and 10% on ten classes is chance level: a net that learned nothing "
                     f"(a diverged or stalled run), not one that learned its training images too well.")
        else:
            what += (f"It ended near chance, as in the report; its train accuracy "
                     f"{100 * s['last_train_accuracy']:.1f}% says whether it overfits (far above the test's) or "
                     f"learned nothing (near it).")
        lines.append(what)
    if "pool-stride5" in have:
        lines.append(f"Pool stride 5 (report, on CIFAR-10: about the same): {acc('pool-stride5'):.1f}% vs {base:.1f}%, "
                     f"{speed('pool-stride5'):.2f}× the speed. "
                     + ("Agrees." if close("pool-stride5", "base") else "Differs by more than 3 points."))
    if {"field1", "field7"} <= have:
        best = max(("field1", "base", "field7"), key=acc)
        lines.append(f"Field size (report, on Fashion-MNIST: 5 best of 1, 5, 7): 1×1 {acc('field1'):.1f}%, 5×5 "
                     f"{base:.1f}%, 7×7 {acc('field7'):.1f}%. "
                     + ("Agrees: 5 is the best." if best == "base" else
                        f"Otherwise: {'7' if best == 'field7' else '1'} is the best here"
                        + (f" (5 within {abs(acc(best) - base):.1f} points)." if close(best, "base") else ".")))
    if {"conv-stride3", "conv-stride5", "conv-stride10"} <= have:
        spread = max(base, acc("conv-stride3"), acc("conv-stride5")) - min(base, acc("conv-stride3"),
                                                                         acc("conv-stride5"))
        lines.append(f"Conv stride (report, on Fashion-MNIST: 1 to 5 alike, 10 worse): 1 {base:.1f}%, 3 "
                     f"{acc('conv-stride3'):.1f}%, 5 {acc('conv-stride5'):.1f}%, 10 {acc('conv-stride10'):.1f}%. "
                     + ("Strides 1 to 5 are within 3 points of each other" if spread <= 3 else
                        f"Strides 1 to 5 spread over {spread:.1f} points, not alike")
                     + ("; 10 is worse, as reported." if acc("conv-stride10") < min(base, acc("conv-stride5"))
                        else "; 10 is not worse here."))
    if {"extra2", "extra4"} <= have:
        lines.append(f"Extra convs (report, on CIFAR-10: two extra reach ~50% where the base has ~40%; four "
                     f"oscillate and plateau ~45%): two {acc('extra2'):.1f}%, four {acc('extra4'):.1f}%, base "
                     f"{base:.1f}%. "
                     + ("More convs help here, as reported." if acc("extra2") > base else
                        "They do not beat the base here: without a ReLU between them, extra convs add no "
                        "nonlinearity, only a wider linear filter."))
    if "k3f30" in have and dataset == "cifar-10":
        s = results["k3f30"]
        small = s["small_batch_accuracy"]
        lines.append(f"Kernel 3, 30 filters (report: 78% on CIFAR-10 after 3000 batches): {acc('k3f30'):.1f}% on the "
                     f"whole test set (batches of {s['batch_size']}); its random test batches of {small['size']} "
                     f"range from {100 * small['min']:.0f}% to {100 * small['max']:.0f}% (one in twenty above "
                     f"{100 * small['p95']:.0f}%). Model Builder charted such small test batches, so a 78% read off "
                     f"its chart can be a peak of that spread rather than the net's accuracy.")
    elif "k3f30" in have:
        lines.append(f"Kernel 3, 30 filters (the report's 78% net, run on CIFAR-10 only): {acc('k3f30'):.1f}% here, "
                     f"base {base:.1f}%.")
    for name, s in results.items():
        curve = s["curve"]["test_accuracy"]
        if s["test_accuracy"] < 0.2 and curve and max(curve) >= 0.3:
            k = int(np.argmax(curve))
            fell = next(b for b, a in zip(s["curve"]["batches"][k:], curve[k:]) if a < 0.2)
            dead = [layer for layer, fraction in s.get("relu_active_fraction", {}).items() if fraction == 0]
            why = (f"{' and '.join(dead)} {'is' if len(dead) == 1 else 'are'} dead: not one output positive on "
                   f"the measured test images, so no gradient flows back through {'it' if len(dead) == 1 else 'them'}"
                   if dead else "its output no longer depends on the image")
            lines.append(f"{VARIANTS[name][1][0].upper()}{VARIANTS[name][1][1:]} collapsed: it reached "
                         f"{100 * curve[k]:.1f}% (on the measured test images) by batch {s['curve']['batches'][k]}, "
                         f"then by batch {fell} it was at chance and stayed there, its loss at ln 10 = 2.30. A step "
                         f"too large for it (constant lr, no normalization) left it stuck: {why}. Such a "
                         f"collapse, not overfitting, is the likely story of the report's 10% for pool stride 1.")
    if "batch500" in have:
        s, b = results["batch500"], results["base"]
        images = s["batches"] * s["batch_size"] / (b["batches"] * b["batch_size"])
        lines.append(f"Batch 500 (report: slower to train; > 90% after ~600 batches on MNIST, a ~70% plateau at "
                     f"batch 600 on Fashion-MNIST, 40% at batch 2000 on CIFAR-10): {acc('batch500'):.1f}% after "
                     f"{s['batches']} batches of 500, at {s['examples_per_second']:.0f} examples/s (base "
                     f"{b['examples_per_second']:.0f}), {s['wall_seconds'] / 60:.1f} minutes. "
                     + ("Each batch is slower, but per example it is faster: larger batches use the cores better."
                        if s["examples_per_second"] > b["examples_per_second"] else
                        "It is slower per example too.")
                     + (f" After {s['batches']} batches it is above the base net after {b['batches']} batches of "
                        f"{b['batch_size']} (it has seen {images:.0f}× the images)." if acc("batch500") > base else ""))
    return lines


if __name__ == "__main__":
    common.exit_without_gc(main())
