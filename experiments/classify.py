"""What the CIFAR-10 classification scripts share: the data, the recipe's parts, the test metrics, the figures
and the TensorBoard logs. Used by ``cifar_cnn.py`` (report 003), ``lenet_cifar.py`` and ``vgg16_cifar.py``
(report 004); a script keeps only what is particular to its report.

A run of each goes the same way::

    loaders, test_set, classes, sizes = classify.load_cifar10(args, normalize=..., augment=..., ...)
    history = training.fit(model, loss_fn, optimizer, loaders.train, loaders.monitor, ...)
    test, summary = classify.test_metrics(model, loaders.test, loss_fn, args.device, classes)
    classify.write_figures(out, history, test, summary, test_set.data, classes, ...)

The metric of report 003 is the *average top-1 recall*: the recall of each class (the fraction of its test
images predicted right, what report 004 prints as "Accuracy of cat : 35 %"), averaged over the classes. On
CIFAR-10's test set every class has 1,000 images, so it equals the accuracy; both are reported.
"""
from __future__ import annotations

import argparse
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import common

import minidl as mdl
import minidl.nn as nn
import minidl.optim as optim
from minidl import metrics, training, viz
from minidl.data import DataLoader, Subset
from minidl.data import transforms as T
from minidl.data.datasets import CIFAR10

#: Per-channel mean and std of CIFAR-10's training pixels in [0, 1], for Normalize.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
#: The class names as report 004 (and PyTorch's CIFAR-10 tutorial) prints them.
SHORT_NAMES = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
#: What report.md says about the development copy of CIFAR-10.
DATA_NOTE = ("Data: CIFAR-10 from ../shared/data/cifar-10 when that is where it was read from (config.json, "
             "`data`), a copy with the official images' labels and train/test split but JPEG-recompressed pixels: "
             "accuracies on it are within a couple of points of the original set's. The reports used the "
             "original set through torchvision.")


#: ``--augment``: the random transforms of the training images, before ToTensor.
AUGMENTATIONS = {
    "none": [],
    "flip": [T.RandomHorizontalFlip()],
    "crop-flip": [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()],
}


def add_flags(parser: argparse.ArgumentParser, *, val_help: str = "") -> None:
    """The flags of a CIFAR-10 run besides the common ones: ``--val-size``, ``--augment``, ``--workers``."""
    parser.add_argument("--val-size", type=common.int_at_least(0), default=0,
                        help="training images held out for validation (default 0: the curves then follow the "
                             "test set, for monitoring only: nothing is chosen by it)" + val_help)
    parser.add_argument("--augment", choices=list(AUGMENTATIONS), default=None,
                        help="random changes of the training images: none, horizontal flips, or random crops "
                             "(padding 4) and flips (default: the recipe's; none under --recipe report)")
    parser.add_argument("--workers", type=common.int_at_least(0), default=1,
                        help="threads preparing batches while the model trains (default 1; 0: none)")


@dataclass
class Loaders:
    """The loaders of a run: ``train``, ``monitor`` (what fit evaluates after each epoch: the validation set,
    or the test set when there is none) and ``test``; ``monitor_name`` says which."""

    train: Any
    monitor: Any
    test: Any
    monitor_name: str


class FirstBatches:
    """The first ``batches`` batches of each epoch of ``loader`` (report 004's VGG-16 "2000 mini-batches per
    epoch"); ``set_epoch`` and ``seed`` pass through, so a resumed run sees the same batches."""

    def __init__(self, loader, batches: int) -> None:
        self.loader, self.batches = loader, batches
        self.seed = getattr(loader, "seed", None)
        self.dataset = loader.dataset

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return min(self.batches, len(self.loader))

    def __iter__(self):
        for b, batch in enumerate(self.loader):
            if b == self.batches:
                return
            yield batch


def load_cifar10(args: argparse.Namespace, *, normalize: tuple[Sequence[float], Sequence[float]], augment: str,
                 shuffle: bool = True, eval_batch_size: int = 500):
    """The loaders of a CIFAR-10 run, the test set (for example images), the class names and the sizes.

    Args:
        args: the flags (``data_dir``, ``batch_size``, ``val_size``, ``train_subset``, ``seed``, ``workers``).
        normalize: ``(mean, std)`` per channel, applied after the pixels are scaled to [0, 1].
        augment: a key of :data:`AUGMENTATIONS`.
        shuffle: a new order of the training images every epoch (report 003 trained in a fixed order).
        eval_batch_size: images per batch when evaluating.
    """
    mean, std = normalize
    eval_tf = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    train_tf = T.Compose(AUGMENTATIONS[augment] + [T.ToTensor(), T.Normalize(mean, std)])
    train_full = common.load_dataset(CIFAR10, "cifar-10", args.data_dir, train=True, transform=train_tf)
    test = common.load_dataset(CIFAR10, "cifar-10", args.data_dir, train=False, transform=eval_tf)
    train_idx, val_idx = common.split_train_val(len(train_full), val_size=args.val_size,
                                                train_subset=args.train_subset, seed=args.seed)
    if not shuffle:
        train_idx = np.sort(train_idx)  # the data set's own order, as a loader without shuffling reads it
    val_view = copy.copy(train_full)  # the same arrays (not read twice), seen through the evaluation transform
    val_view.transform = eval_tf
    train = Subset(train_full, train_idx)
    workers = args.workers
    loaders = Loaders(
        train=DataLoader(train, batch_size=args.batch_size, shuffle=shuffle, seed=args.seed, num_workers=workers),
        monitor=None, test=DataLoader(test, batch_size=eval_batch_size), monitor_name="test")
    if len(val_idx):
        loaders.monitor = DataLoader(Subset(val_view, val_idx), batch_size=eval_batch_size)
        loaders.monitor_name = "validation"
    else:
        loaders.monitor = loaders.test
    sizes = {"dataset": "cifar-10", "train_set": len(train_full), "train_images": len(train),
             "val_images": len(val_idx), "test_images": len(test)}
    return loaders, test, train_full.classes, sizes


def mean_recall_metric(num_classes: int = 10):
    """The per-epoch metric for :func:`minidl.training.fit`: the mean per-class recall of the monitored set."""
    return {"mean_recall": lambda r: metrics.mean_per_class_recall(r.predictions, r.targets, num_classes)}


def test_metrics(model, loader, loss_fn, device: str, classes: Sequence[str]):
    """Evaluate on the test set: the :class:`minidl.training.EvalResult` (scores kept) and the summary keys:
    accuracy, mean per-class recall, per-class recall, precision and average precision."""
    result = training.evaluate(model, loader, loss_fn, device=device, keep_scores=True)
    C = len(classes)
    precision, _ = metrics.precision_recall(result.predictions, result.targets, C)
    summary = {
        "test_accuracy": float(result.accuracy), "test_loss": float(result.loss),
        "mean_recall": float(metrics.mean_per_class_recall(result.predictions, result.targets, C)),
        "per_class_accuracy": [float(a) for a in metrics.per_class_accuracy(result.predictions, result.targets, C)],
        "per_class_precision": [float(p) for p in precision],
        "per_class_average_precision": [float(a) for a in metrics.average_precision_per_class(result.scores,
                                                                                                result.targets, C)],
    }
    return result, summary


def make_optimizer(args: argparse.Namespace, params):
    """``--optimizer``: SGD (with ``--momentum``, ``--nesterov``) or Adam, with ``--lr`` and ``--weight-decay``."""
    if args.optimizer == "sgd":
        return optim.SGD(params, lr=args.lr, momentum=args.momentum, nesterov=args.nesterov,
                         weight_decay=args.weight_decay)
    return optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)


def make_scheduler(args: argparse.Namespace, optimizer, batches_per_epoch: int):
    """``--schedule``: the learning-rate schedule and how often :func:`minidl.training.fit` steps it: one cycle
    over all the batches (stepped every batch), a cosine over the epochs, or none."""
    if args.schedule == "onecycle":
        return optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr,
                                             total_steps=args.epochs * batches_per_epoch), "batch"
    if args.schedule == "cosine":
        return optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs), "epoch"
    return None, "epoch"


def check_optimizer_flags(args: argparse.Namespace, given: frozenset[str]) -> None:
    """Refuse optimizer settings that cannot work together, naming the flags."""
    if args.optimizer == "adam" and ({"momentum", "nesterov"} & given):
        raise common.ExperimentError("arguments --momentum/--nesterov: only --optimizer sgd has them; leave them "
                                     "out with --optimizer adam", common.EXIT_USAGE)
    if args.optimizer == "sgd" and args.nesterov and args.momentum == 0:
        raise common.ExperimentError("argument --nesterov: Nesterov momentum needs a --momentum above 0 (pass "
                                     "--momentum 0.9, or --no-nesterov)", common.EXIT_USAGE)


def train_and_test(args: argparse.Namespace, folder: common.RunFolder, sizes: dict, model, loaders: Loaders,
                   test_set, classes: Sequence[str], *, log_every: int | None = None):
    """The middle of every CIFAR-10 run, after the flags and the data are checked: build the optimizer and
    schedule, check a resume, write config.json and model_summary.txt, train (TensorBoard as it goes, under
    ``--tensorboard``), and measure the test set.

    Returns:
        ``(history, test, summary)``: the :class:`minidl.training.History`, the test set's
        :class:`~minidl.training.EvalResult` (scores kept) and the summary keys every run has.
    """
    optimizer = make_optimizer(args, model.parameters())
    scheduler, interval = make_scheduler(args, optimizer, len(loaders.train))
    if args.resume:
        training.check_resume(folder.checkpoint_path, model, optimizer, epochs=args.epochs, scheduler=scheduler)
    folder.start(args, sizes)
    (args.out / "model_summary.txt").write_text(mdl.summary(model, (3, 32, 32), device=args.device))
    writer = open_tensorboard(args.tensorboard)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    try:
        history = training.fit(model, loss_fn, optimizer, loaders.train, loaders.monitor, epochs=args.epochs,
                               scheduler=scheduler, scheduler_interval=interval, out_dir=args.out,
                               resume=args.resume, device=args.device, progress=not args.no_progress,
                               log_every=log_every, metrics=mean_recall_metric(len(classes)),
                               on_epoch=epoch_logger(writer) if writer else None)
        test, summary = test_metrics(model, loaders.test, loss_fn, args.device, classes)
        if writer:
            log_test_to_tensorboard(writer, model, test, test_set, classes, len(history), args.device)
    finally:
        if writer:
            writer.close()
    train_seconds = float(sum(r["train_seconds"] for r in history.rows))
    images = sum(r["images_per_s"] * r["train_seconds"] for r in history.rows if r["images_per_s"])
    summary.update({"epochs": len(history.rows), "train_seconds": train_seconds,
                    "images_per_second": images / train_seconds if train_seconds else 0.0,
                    "parameters": sum(p.numel() for p in model.parameters())})
    return history, test, summary


def per_class_lines(per_class: Sequence[float], names: Sequence[str] = SHORT_NAMES) -> list[str]:
    """Report 004's format: ``Accuracy of plane : 56 %`` (whole percents, truncated as the tutorial's
    ``100 * correct // total``)."""
    return [f"Accuracy of {name} : {int(100 * a + 1e-9)} %" for name, a in zip(names, per_class)]


def write_figures(out: Path, history: training.History, test: training.EvalResult, summary: dict,
                  test_images: np.ndarray,
                  classes: Sequence[str], *, title: str, monitor_name: str,
                  reference_recall: Mapping[str, float] | None = None,
                  reference_per_class: Mapping[str, Sequence[float]] | None = None) -> list[str]:
    """The figures every CIFAR-10 run writes; returns their file names.

    training_curves.png (loss, accuracy and mean recall per epoch, the reports' figures as lines),
    per_class_recall.png (beside the reports' where they have some), confusion_matrix.png,
    pr_curves.png (every class, one-vs-rest, with its average precision) and examples.png (right and wrong
    test images per class).
    """
    r = test
    names = []
    if history.rows:
        extra = {"mean_recall": f"{monitor_name} mean recall"} if "mean_recall" in history.columns else {}
        viz.plot_training_curves(history, out / "training_curves.png", title=title,
                                 reference_accuracy=reference_recall, extra_columns=extra,
                                 val_label=monitor_name)
        names.append("training_curves.png")
    viz.plot_per_class_accuracy({"this run (test)": summary["per_class_accuracy"]}, out / "per_class_recall.png",
                                class_names=classes, reference=reference_per_class,
                                title=f"Per-class recall on the test set (mean {summary['mean_recall']:.4f})",
                                ylabel="recall (%)")
    viz.plot_confusion_matrix(metrics.confusion_matrix(r.predictions, r.targets, len(classes)),
                              out / "confusion_matrix.png", class_names=classes)
    viz.plot_pr_curves(r.scores, r.targets, out / "pr_curves.png", class_names=classes,
                       title="Per-class precision-recall curves (test set)")
    viz.plot_classified_examples(test_images, r.targets, r.predictions, out / "examples.png", class_names=classes)
    return names + ["per_class_recall.png", "confusion_matrix.png", "pr_curves.png", "examples.png"]


def report_notes(args: argparse.Namespace, command: str) -> list[str]:
    """The closing sections of every CIFAR-10 run's report.md: the data caveat, which set the curves follow,
    and the command that makes the run."""
    follows = ("validation set." if args.val_size else
               "test set after each epoch, for monitoring only: no setting or epoch is chosen by it, the test "
               "figures are those of the last epoch.")
    return ["## Notes", "", DATA_NOTE, "", "The curves follow the " + follows, "",
            "## Configuration", "", "```", command, "```", "",
            "See config.json for every setting, metrics.csv for the per-epoch numbers."]


# ----------------------------------------------------------------------------------- TensorBoard
def require_tensorboard(logdir: Path | None) -> None:
    """Check, before anything is written, that ``--tensorboard DIR`` can work.

    Raises:
        ExperimentError: tensorboardX is not installed (the message says how to install it).
    """
    if logdir is None:
        return
    try:
        import minidl.utils.tensorboard  # noqa: F401
    except ImportError as err:
        raise common.ExperimentError(f"argument --tensorboard: {err}. Or run without --tensorboard.",
                                     common.EXIT_USAGE) from err


def open_tensorboard(logdir: Path | None):
    """A ``minidl.utils.tensorboard.SummaryWriter`` for ``--tensorboard DIR`` (checked by
    :func:`require_tensorboard`), or None without the flag."""
    if logdir is None:
        return None
    from minidl.utils.tensorboard import SummaryWriter
    return SummaryWriter(str(logdir))


def epoch_logger(writer):
    """The ``on_epoch`` callback of :func:`minidl.training.fit` that writes each epoch's numbers (and its running
    losses) to TensorBoard as training goes."""
    from minidl.utils.tensorboard import log_history

    def log(history: training.History) -> None:
        epoch = history.last["epoch"]
        log_history(writer, training.History([history.last],
                                             [b for b in history.batch_losses if b["epoch"] == epoch]))
        writer.flush()
    return log


def log_test_to_tensorboard(writer, model, test: training.EvalResult, test_set, classes: Sequence[str],
                            step: int, device: str, examples: int = 200) -> None:
    """The end-of-run views: per-class PR curves, sample predictions, the model graph drawn by minidl.viz,
    and the embedding projector of the penultimate features of ``examples`` test images with their labels and
    thumbnails (the view report 004 could not get to work)."""
    from minidl.utils.tensorboard import log_classifier, penultimate_features

    examples = min(examples, len(test_set))
    inputs = mdl.stack([test_set[i][0] for i in range(examples)]).to(device)
    features = penultimate_features(model, inputs)
    log_classifier(writer, scores=test.scores, targets=test.targets, class_names=list(classes), step=step,
                   images=test_set.data[:examples], features=features, model=model, example_input=inputs[:2])
    writer.flush()
