"""CMP facade segmentation with the nets of reports 000 and 001: five classes per pixel, average precision.

    python experiments/facade_segmentation.py                    # report 001's net, the defaults that beat both
    python experiments/facade_segmentation.py --net 000 --out runs/facade_000   # report 000's net
    python experiments/facade_segmentation.py --net 000 --recipe report   # its report's training (hours here)
    python experiments/facade_segmentation.py --resume           # continue the run in --out where it stopped
    python experiments/facade_segmentation.py --predict photo.jpg   # segment a photo with the run in --out
    python experiments/facade_segmentation.py --tensorboard runs/tb/facades   # also TensorBoard events

The data are the CMP facade base set (../shared/data/facades: 300 training, 39 validation and 39 test
photos at 256 x 256; classes 0 others, 1 facade, 2 pillar, 3 window, 4 balcony). The net trains on the
training split, is validated after every epoch on the validation split (loss, pixel accuracy, mean AP),
and is measured once on the test split, as the reports do: the average precision of each class over
every test pixel, ranked by the softmax score of that class (scikit-learn's ``average_precision_score``),
and their mean; with the per-class IoU, the mean IoU and the pixel accuracy beside them.

Two recipes. ``--recipe report`` is the report's own training: report 000's net with Adam 1e-3, weight
decay 1e-5, batch 8, 23 epochs; report 001's net with the same Adam, batch 4, 50 epochs; whole photos,
pixels in [0, 1]. ``--recipe default`` (the default) is ours: pixels normalised per channel, random
flips of the photo and its label map together (``--crop`` adds random crops), Adam with a one-cycle
schedule, the loss weighing rare classes more (``--class-weights sqrt``), the test scores averaged over
the photo and its mirror image (``--tta``), and the net run on the photo at half, quarter and eighth size
with the three score maps averaged (``--scale 0.5 0.25 0.125``: the same net and weights see 2, 4 and 8
times as far, for a third of the work of one full-size pass; the scores are resized back, so loss and
metrics are at full size; net 000, eight times costlier, runs at 1/4 and 1/8 only). Every part of a recipe
has its flag.

Writes to the run folder --out (default runs/facade_segmentation): config.json, metrics.csv, checkpoint.npz,
model_summary.txt, training_curves.png, examples.png (input / prediction / ground truth, in the reports'
colours), pr_curves.png, per_class_ap.png, confusion_matrix.png, report.md (this run beside both reports'
AP tables) and summary.json (mean_ap, per_class_ap, per_class_iou, mean_iou, pixel_accuracy, epochs,
train_seconds, wall_seconds). The run folder rules, --resume and the error messages are those of every
experiment (see experiments/fashion_cnn.py).

``--predict PHOTO [PHOTO ...]`` segments photos of any size with a trained run (``--checkpoint``, default
--out's checkpoint.npz; the run's config.json beside it says which net and preprocessing): each is resized
to 256 x 256 as the data set's photos were, segmented, and the colour-coded label map is written at the
photo's own size beside it as <photo>_segmentation.png (an existing one is kept unless --overwrite).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import classify
import common
import numpy as np
from common import markdown_table, write_json

import minidl as mdl
import minidl.nn as nn
import minidl.optim as optim
from minidl import metrics, serialization, training, viz
from minidl.data import DataLoader, Subset
from minidl.data import transforms as T
from minidl.data.datasets import Facades
from minidl.data.datasets.download import atomic_path
from models.segmentation import MirrorAveraged, Report000SegNet, Report001SegNet, Rescaled

NETS = {"000": Report000SegNet, "001": Report001SegNet}
CLASSES = list(Facades.classes)
SIDE = Facades.image_size
#: What the reports measured on the test pixels (SEED_MODELS.md sections 3 and 4): AP per class and the mean.
REPORT_AP = {"000": [0.5459, 0.6559, 0.0264, 0.6666, 0.5480], "001": [0.654, 0.738, 0.109, 0.727, 0.307]}
REPORT_MEAN_AP = {"000": 0.482, "001": 0.507}
RECIPES = {
    "default": {"epochs": {"000": 30, "001": 40}, "batch_size": 8, "lr": 3e-3, "weight_decay": 1e-5,
                "schedule": "onecycle", "scale": {"000": [0.25, 0.125], "001": [0.5, 0.25, 0.125]}, "crop": 0, "flip": True, "normalize": "channel",
                "class_weights": "sqrt", "tta": True},
    "report": {"epochs": {"000": 23, "001": 50}, "batch_size": {"000": 8, "001": 4}, "lr": 1e-3,
               "weight_decay": 1e-5, "schedule": "none", "scale": [1.0], "crop": 0, "flip": False,
               "normalize": "none", "class_weights": "none", "tta": False},
}
#: Flags resolved from --recipe (and --net) when not given.
RECIPE_FLAGS = ("epochs", "batch_size", "lr", "weight_decay", "schedule", "scale", "crop", "flip", "normalize",
                "class_weights", "tta")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring and ``--help``)."""
    p = common.make_parser(__file__, __doc__)
    p.add_argument("--net", choices=sorted(NETS), default="001", help="report 000's or report 001's network")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="default",
                   help="'report': the report's own training; 'default': the one that beats it")
    common.add_training_flags(p, epochs=None, batch_size=None, optimizers=["adam"], optimizer="adam",
                              weight_decay=None, recipe_help="see --recipe (default: 40 epochs for net 001, "
                              "30 for 000, batch 8, weight decay 1e-5; report: 50 / 23 epochs, batch 4 / 8)",
                              lr_help="Adam's learning rate (the one-cycle's peak): default 3e-3, 1e-3 with "
                                      "--recipe report")
    p.add_argument("--schedule", choices=["onecycle", "cosine", "none"], default=None,
                   help="learning-rate schedule: one cycle over all the batches, a cosine over the epochs, or "
                        "constant (default onecycle, none with --recipe report)")
    p.add_argument("--scale", type=common.float_in(0, 1, low_open=True, high_open=False), nargs="+",
                   default=None, help="run the net on the photo resized by this factor, its scores resized back; "
                                      "several factors: the mean of the scores at each (default 0.25 0.125 for "
                                      "net 000, 0.5 0.25 0.125 for net 001, 1 with --recipe report)")
    p.add_argument("--crop", type=common.int_at_least(0), default=None, metavar="SIDE",
                   help="train on random SIDE x SIDE crops of the photos and their label maps, 0 for whole "
                        "photos (default 0)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="random horizontal flips of the training photos with their label maps (default on, "
                        "off with --recipe report)")
    p.add_argument("--normalize", choices=["channel", "none"], default=None,
                   help="pixels: normalised by the training photos' per-channel mean and std, or left in "
                        "[0, 1] (default channel, none with --recipe report)")
    p.add_argument("--class-weights", choices=["sqrt", "none"], default=None,
                   help="weigh each class's pixels in the loss by 1 / sqrt(its share of the training pixels), "
                        "normalised to mean 1, so that pillars and balconies (2%% and 4%% of the pixels) count "
                        "more; or not at all (default sqrt, none with --recipe report)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="test-time flipping: the test scores are the mean of the photo's and its mirror "
                        "image's (default on, off with --recipe report)")
    p.add_argument("--predict", type=Path, nargs="+", default=None, metavar="PHOTO",
                   help="segment these photos with a trained run instead of training (see --checkpoint)")
    p.add_argument("--checkpoint", type=Path, default=None, metavar="FILE",
                   help="with --predict: the run's checkpoint.npz (default: the one in --out)")
    common.add_run_flags(p, out="runs/facade_segmentation")
    return p


def resolve_recipe(args: argparse.Namespace, given: frozenset[str]) -> None:
    """Fill every flag not given from the recipe (by net where the recipe differs between the nets)."""
    recipe = RECIPES[args.recipe]
    for dest in RECIPE_FLAGS:
        if dest not in given and getattr(args, dest) is None:
            value = recipe[dest]
            setattr(args, dest, value[args.net] if isinstance(value, dict) else value)


# ----------------------------------------------------------------------------------------------- data
def pixel_stats(train: Facades, normalize: str) -> tuple[list[float], list[float]]:
    """The per-channel mean and std of the training photos in [0, 1] (or 0 and 1 for ``--normalize none``)."""
    if normalize == "none":
        return [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    pixels = train.data.reshape(-1, 3)
    mean = pixels.mean(axis=0, dtype=np.float64) / 255
    std = np.sqrt((pixels.astype(np.float64) ** 2).mean(axis=0) / 255 ** 2 - mean ** 2)
    return [round(float(m), 4) for m in mean], [round(float(s), 4) for s in std]


def load_data(args: argparse.Namespace):
    """Train / validation / test loaders, the training label maps, the test set and the data sizes."""
    train = common.load_dataset(Facades, "facades", args.data_dir, split="train")
    side = min(train.data.shape[1:3])
    if args.crop > side:
        raise common.ExperimentError(f"argument --crop: {args.crop} is larger than the {side} x {side} photos; "
                                     f"pass --crop {side} or less (0 for whole photos)", common.EXIT_USAGE)
    pipeline = [T.RandomCrop(args.crop)] if 0 < args.crop < side else []
    if args.flip:
        pipeline.append(T.RandomHorizontalFlip())
    train.transforms = T.Compose(pipeline) if pipeline else None
    mean, std = pixel_stats(train, args.normalize)
    to_input = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    train.transform = to_input
    val = common.load_dataset(Facades, "facades", args.data_dir, split="val", transform=to_input)
    test = common.load_dataset(Facades, "facades", args.data_dir, split="test", transform=to_input)
    train_view = Subset(train, np.arange(min(args.train_subset, len(train)))) if args.train_subset else train
    loaders = (DataLoader(train_view, batch_size=args.batch_size, shuffle=True, seed=args.seed),
               DataLoader(val, batch_size=8), DataLoader(test, batch_size=8))
    sizes = {"dataset": "facades", "train_images": len(train_view), "val_images": len(val),
             "test_images": len(test), "pixel_mean": mean, "pixel_std": std}
    return loaders, train.labels[:len(train_view)], test, sizes


def class_weights(train_labels: np.ndarray, kind: str) -> mdl.Tensor | None:
    """``--class-weights sqrt``: w_c proportional to 1 / sqrt(share of class c among the training pixels),
    with mean 1 (the loss divides by the summed weights of the pixels, so its scale stays that of a mean)."""
    if kind == "none":
        return None
    share = np.bincount(train_labels.ravel(), minlength=len(CLASSES)) / train_labels.size
    weights = 1 / np.sqrt(np.maximum(share, 1e-6))
    return mdl.tensor((weights / weights.mean()).astype(np.float32))


def make_model(net: str, scales: list[float]) -> nn.Module:
    """The report's net, run at ``scales`` (:class:`models.segmentation.Rescaled`) unless that is just 1."""
    model = NETS[net]()
    return Rescaled(model, scales) if list(scales) != [1] else model


# ----------------------------------------------------------------------------------------------- metrics
def softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the class axis 1, in float64 (the reports rank pixels by the softmax scores)."""
    z = np.exp(scores - scores.max(axis=1, keepdims=True), dtype=np.float64)
    return z / z.sum(axis=1, keepdims=True)


def mean_ap_metric():
    """The per-epoch validation metric for :func:`minidl.training.fit`: the mean AP of the softmax scores."""
    return {"mean_ap": lambda r: metrics.mean_average_precision(softmax(r.scores), r.targets, len(CLASSES))}


def test_summary(test: training.EvalResult, train_labels: np.ndarray) -> dict:
    """The test figures of summary.json, from the kept scores: AP (softmax), IoU, pixel accuracy, recall."""
    probabilities = softmax(test.scores)
    C = len(CLASSES)
    ap = metrics.average_precision_per_class(probabilities, test.targets, C)
    iou = metrics.iou_per_class(test.predictions, test.targets, C)
    precision, recall = metrics.precision_recall(test.predictions, test.targets, C)
    cm = metrics.confusion_matrix(test.predictions, test.targets, C)
    return {
        "mean_ap": float(ap.mean()), "per_class_ap": [float(a) for a in ap],
        "mean_iou": float(np.nanmean(iou)), "per_class_iou": [float(v) for v in iou],
        "pixel_accuracy": float(test.accuracy), "test_loss": float(test.loss),
        "per_class_recall": [float(r) for r in recall], "per_class_precision": [float(p) for p in precision],
        "test_pixel_share": [float(s) for s in cm.sum(axis=1) / cm.sum()],
        "train_pixel_share": [float(s) for s in np.bincount(train_labels.ravel(), minlength=C) / train_labels.size],
        "confusion_matrix": cm.tolist(),
    }


# ----------------------------------------------------------------------------------------------- report
def hard_class_lines(summary: dict) -> list[str]:
    """What this run gets for pillar and balcony, the classes both reports failed on, and what the numbers say."""
    cm = np.asarray(summary["confusion_matrix"])
    lines = []
    for c in (CLASSES.index("pillar"), CLASSES.index("balcony")):
        row = cm[c] / max(cm[c].sum(), 1)
        others = [k for k in np.argsort(-row) if k != c]
        lines.append(
            f"- **{CLASSES[c]}**: AP {summary['per_class_ap'][c]:.3f} (report 000 {REPORT_AP['000'][c]:.3f}, "
            f"report 001 {REPORT_AP['001'][c]:.3f}), IoU {summary['per_class_iou'][c]:.3f}. It covers "
            f"{100 * summary['train_pixel_share'][c]:.1f}% of the training pixels and "
            f"{100 * summary['test_pixel_share'][c]:.1f}% of the test pixels; {100 * row[c]:.0f}% of its test "
            f"pixels are predicted {CLASSES[c]}, {100 * row[others[0]]:.0f}% {CLASSES[others[0]]} and "
            f"{100 * row[others[1]]:.0f}% {CLASSES[others[1]]}.")
    return lines


def why_hard(args: argparse.Namespace, summary: dict) -> str:
    """Why pillars and balconies are hard for these nets, with this run's numbers."""
    share = summary["train_pixel_share"]
    pillar, balcony = CLASSES.index("pillar"), CLASSES.index("balcony")
    patch = 13 if args.net == "000" else 10  # receptive fields: six 3 x 3 layers give 13; net 001 about 10
    seen = ", ".join(f"{round(patch / s)} x {round(patch / s)}" for s in args.scale)
    return (f"Report {args.net}'s net decides each pixel from a small patch of the photo, "
            + ("13 x 13 pixels" if args.net == "000" else "about 10 x 10 pixels")
            + (f" at full size; run at scale {', '.join(f'{s:g}' for s in args.scale)}, its patches cover "
               f"{seen} pixels of the photo" if args.scale != [1] else "")
            + ". A patch inside a pillar shows the same stone as the facade wall around it: what makes it a "
              "pillar is its shape, a tall thin band, seen at a larger scale. A balcony's rail stands in front "
              "of a window or a wall, so its patches mix both. And they are the rarest classes, "
            + f"{100 * share[pillar]:.1f}% and {100 * share[balcony]:.1f}% of the training pixels, so the loss "
              "gains little from them"
            + (" (--class-weights sqrt weighs their pixels more: 1 / sqrt(share), normalised to mean 1)."
               if args.class_weights == "sqrt" else "."))


def write_report(out: Path, args: argparse.Namespace, summary: dict, command: str, figures: list[str]) -> None:
    """report.md: this run's AP per class beside both reports' tables, IoU, the hard classes, the figures."""
    ap, iou = summary["per_class_ap"], summary["per_class_iou"]
    rows = [[f"{c} {name}", f"**{ap[c]:.4f}**", f"{REPORT_AP['000'][c]:.4f}", f"{REPORT_AP['001'][c]:.3f}",
             f"{iou[c]:.4f}", f"{100 * summary['per_class_recall'][c]:.1f}"] for c, name in enumerate(CLASSES)]
    rows.append(["**mean**", f"**{summary['mean_ap']:.4f}**", f"{REPORT_MEAN_AP['000']:.3f}",
                 f"{REPORT_MEAN_AP['001']:.3f}", f"{summary['mean_iou']:.4f}", ""])
    recipe = ("its report's own training (--recipe report)" if args.recipe == "report" else
              f"the default recipe: Adam (peak lr {args.lr:g}, {args.schedule} schedule, weight decay "
              f"{args.weight_decay:g}), batch {args.batch_size}, "
              + (f"random {args.crop} x {args.crop} crops" if args.crop else "whole photos")
              + (" and flips" if args.flip else "") + " of photo and label map together, "
              + (f"the net run on the photo at scale {' and '.join(f'{v:g}' for v in args.scale)}"
                 + (" (scores averaged)" if len(args.scale) > 1 else "") if args.scale != [1] else "the net at full size"))
    text = [
        f"# CMP facades, report {args.net}'s network", "",
        f"Mean average precision **{summary['mean_ap']:.4f}** on the {summary['test_images']} test photos (report {args.net}: "
        f"{REPORT_MEAN_AP[args.net]:.3f}), mean IoU {summary['mean_iou']:.4f}, pixel accuracy "
        f"{100 * summary['pixel_accuracy']:.2f}%, after {summary['epochs']} epochs "
        f"({summary['train_seconds']:.0f} s of training, {summary['wall_seconds']:.0f} s in all), with {recipe}.", "",
        "## Average precision per class (test pixels)", "",
        "AP of class c: every test pixel ranked by its softmax score for c, the area under that precision/recall "
        "curve (scikit-learn's `average_precision_score`), as both reports compute it. Recall is the share of "
        "the class's pixels predicted as it (arg-max).", "",
        markdown_table(["class", "this run AP", "report 000 AP", "report 001 AP", "this run IoU",
                        "this run recall (%)"], rows), "",
        "Report 000 trained its net 23 epochs on the base set; report 001 trained its net ~50 epochs on 800 "
        "photos of the base and extended sets and measured on 106 others. This run's test photos are those of "
        "the split in ../shared/data/facades/README.txt: the CMP base set's photos resized to 256 x 256 "
        "(bicubic, aspect ratio not kept) with their label maps (nearest neighbour), the 12 CMP classes mapped "
        "to these 5.", "",
        "## Pillar and balcony", "",
        "Both reports failed on these two classes (AP 0.03 and 0.11 for pillar, 0.55 and 0.31 for balcony).", "",
        *hard_class_lines(summary), "",
        why_hard(args, summary), "",
        "## Figures", "",
        *[f"![{name[:-4].replace('_', ' ')}]({name})\n" for name in figures],
        "## Configuration", "",
        "```", command, "```", "",
        "See config.json for every setting (its data.pixel_mean / pixel_std: the normalisation), metrics.csv "
        "for the per-epoch numbers (val_acc: pixel accuracy; mean_ap: validation mean AP), "
        "model_summary.txt for the layers.",
    ]
    (out / "report.md").write_text("\n".join(text) + "\n")


def example_indices(n: int, count: int = 6) -> np.ndarray:
    """``count`` test photos spread over the ``n`` of the split (all of them when fewer)."""
    return np.unique(np.linspace(0, n - 1, min(n, count)).astype(np.int64))


def write_figures(out: Path, args: argparse.Namespace, history: training.History, test: training.EvalResult,
                  test_set: Facades, summary: dict) -> list[str]:
    """The run's figures; returns their file names."""
    names = []
    if history.rows:
        viz.plot_training_curves(history, out / "training_curves.png",
                                 title=f"Report {args.net}'s net on CMP facades",
                                 reference_accuracy={f"report {args.net} test mean AP": REPORT_MEAN_AP[args.net]},
                                 extra_columns={"mean_ap": "validation mean AP"})
        names.append("training_curves.png")
    pick = example_indices(len(test_set))
    viz.plot_segmentation_triplets(test_set.data[pick], test.predictions[pick], test.targets[pick],
                                   out / "examples.png", max_rows=6,
                                   title=f"Test photos: input / prediction / ground truth (report {args.net}'s net)")
    viz.plot_pr_curves(softmax(test.scores), test.targets, out / "pr_curves.png", class_names=CLASSES,
                       reference_ap=REPORT_AP[args.net],
                       title="Per-class precision-recall curves over the test pixels")
    viz.plot_per_class_accuracy({"this run": summary["per_class_ap"]}, out / "per_class_ap.png",
                                class_names=CLASSES,
                                reference={"report 000": REPORT_AP["000"], "report 001": REPORT_AP["001"]},
                                title=f"Average precision per class (mean {summary['mean_ap']:.3f})",
                                ylabel="average precision (%)")
    viz.plot_confusion_matrix(np.asarray(summary["confusion_matrix"]), out / "confusion_matrix.png",
                              class_names=CLASSES)
    return names + ["examples.png", "pr_curves.png", "per_class_ap.png", "confusion_matrix.png"]


def log_to_tensorboard(writer, model, test: training.EvalResult, test_set: Facades, step: int, device: str) -> None:
    """The end-of-run views: per-class PR curves over the test pixels, input / prediction / truth images, and
    the model graph drawn by minidl.viz."""
    from minidl.utils.tensorboard import log_segmentation

    pick = example_indices(len(test_set))
    log_segmentation(writer, scores=test.scores, targets=test.targets, class_names=CLASSES, step=step,
                     images=test_set.data[pick], image_indices=pick, colors=viz.FACADE_COLORS, model=model,
                     example_input=test_set[0][0].reshape((1,) + test_set[0][0].shape).to(device))
    writer.flush()


# ----------------------------------------------------------------------------------------------- training
def main(argv: list[str] | None = None) -> int:
    """Run the script with the command-line arguments ``argv`` (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0, or that of an error already reported on stderr (see :func:`common.run`).
    """
    return common.run(build_parser(), argv, dispatch)


def dispatch(args: argparse.Namespace, given: frozenset[str]) -> int:
    """``--predict`` segments photos with a trained run; anything else trains one. Flags of the other
    kind are refused by name."""
    if args.predict is not None:
        training_flags = sorted(given - {"predict", "checkpoint", "out", "overwrite", "device", "debug",
                                         "no_progress"})
        if training_flags:
            raise common.ExperimentError(f"argument --predict: it uses a trained run, so "
                                         f"{', '.join(common.flag(d) for d in training_flags)} do(es) not apply: "
                                         f"leave them out (the run's config.json has its settings)",
                                         common.EXIT_USAGE)
        return predict(args)
    if args.checkpoint is not None:
        raise common.ExperimentError("argument --checkpoint: only --predict reads a checkpoint; training writes "
                                     "its own in --out (pass --predict PHOTO, or leave --checkpoint out)",
                                     common.EXIT_USAGE)
    return train(args, given)


def train(args: argparse.Namespace, given: frozenset[str]) -> int:
    """The run itself: check the run folder, load the data, train, evaluate, write the figures and report."""
    start = time.perf_counter()
    resolve_recipe(args, given)
    folder = common.RunFolder(args.out, script=Path(__file__).stem)
    folder.open(args, given)
    classify.require_tensorboard(args.tensorboard)
    earlier_seconds = common.earlier_wall_seconds(args)
    mdl.manual_seed(args.seed)
    (train_loader, val_loader, test_loader), train_labels, test_set, sizes = load_data(args)

    model = make_model(args.net, args.scale).to(args.device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler, interval = classify.make_scheduler(args, optimizer, len(train_loader))
    if args.resume:
        training.check_resume(folder.checkpoint_path, model, optimizer, epochs=args.epochs, scheduler=scheduler)
    folder.start(args, sizes)
    out = args.out
    (out / "model_summary.txt").write_text(mdl.summary(model, (3,) + test_set.data.shape[1:3], device=args.device))
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(train_labels, args.class_weights)).to(args.device)
    writer = classify.open_tensorboard(args.tensorboard)
    try:
        history = training.fit(model, loss_fn, optimizer, train_loader, val_loader, epochs=args.epochs,
                               scheduler=scheduler, scheduler_interval=interval, out_dir=out, resume=args.resume,
                               device=args.device, progress=not args.no_progress, metrics=mean_ap_metric(),
                               on_epoch=classify.epoch_logger(writer) if writer else None)
        test = training.evaluate(MirrorAveraged(model) if args.tta else model, test_loader, loss_fn,
                                 device=args.device, keep_scores=True)
        if writer:
            log_to_tensorboard(writer, model, test, test_set, len(history), args.device)
    finally:
        if writer:
            writer.close()
    summary = test_summary(test, train_labels)
    train_seconds = float(sum(r["train_seconds"] for r in history.rows))
    summary.update({"epochs": len(history.rows), "train_seconds": train_seconds,
                    "test_images": len(test_set), "net": args.net, "recipe": args.recipe, "scale": args.scale,
                    "parameters": sum(p.numel() for p in model.parameters())})
    figures = write_figures(out, args, history, test, test_set, summary)
    summary["wall_seconds_this_command"] = time.perf_counter() - start
    summary["wall_seconds"] = earlier_seconds + summary["wall_seconds_this_command"]
    write_json(out / "summary.json", summary)
    write_report(out, args, summary, common.command_line(__file__, args, build_parser()), figures)
    print("Average precision per class: " + ", ".join(f"{name} {a:.3f}" for name, a in
                                                      zip(CLASSES, summary["per_class_ap"])))
    print(f"mean AP {summary['mean_ap']:.4f} (report {args.net}: {REPORT_MEAN_AP[args.net]:.3f}) | mean IoU "
          f"{summary['mean_iou']:.4f} | pixel accuracy {100 * summary['pixel_accuracy']:.2f}% | "
          f"{summary['epochs']} epochs, {train_seconds:.0f} s training, {summary['wall_seconds']:.0f} s in all | "
          f"run folder {out}")
    return 0


# ----------------------------------------------------------------------------------------------- predict
def load_trained(checkpoint: Path, device: str):
    """The trained model of a run and its input transform, from its checkpoint and the config.json beside it."""
    config_path = checkpoint.parent / "config.json"
    if not checkpoint.is_file():
        raise common.ExperimentError(f"argument --checkpoint: {checkpoint} does not exist: pass the checkpoint.npz "
                                     f"of a trained run (--checkpoint runs/facade_segmentation/checkpoint.npz), or --out "
                                     f"with its run folder", common.EXIT_USAGE)
    try:
        config = json.loads(config_path.read_text())
        net, scale = config["net"], [float(v) for v in config["scale"]]
        mean, std = config["data"]["pixel_mean"], config["data"]["pixel_std"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise common.ExperimentError(f"argument --checkpoint: {config_path}, the run's config.json beside its "
                                     f"checkpoint, is missing or is not one of this script's runs ({err!r}): "
                                     f"pass the checkpoint of a facade_segmentation.py run", common.EXIT_USAGE) from err
    if net not in NETS:
        raise common.ExperimentError(f"argument --checkpoint: {config_path} names net {net!r}, not one of "
                                     f"{sorted(NETS)}", common.EXIT_USAGE)
    model = make_model(net, scale)
    try:
        state = training.load_checkpoint(checkpoint)["model"]
        model.load_state_dict(state)
    except (serialization.SerializationError, KeyError, ValueError, RuntimeError) as err:
        raise common.ExperimentError(f"argument --checkpoint: {checkpoint} cannot be used: {err}") from err
    if config.get("tta"):
        model = MirrorAveraged(model)
    return model.to(device).eval(), T.Compose([T.ToTensor(), T.Normalize(mean, std)]), net


def read_photo(path: Path) -> np.ndarray:
    """A photo file as a uint8 (H, W, 3) RGB array, or an ExperimentError that names it."""
    from PIL import Image, UnidentifiedImageError  # Pillow comes with matplotlib

    if not path.is_file():
        raise common.ExperimentError(f"argument --predict: {path} does not exist", common.EXIT_USAGE)
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise common.ExperimentError(f"argument --predict: {path} is not a readable image ({err})",
                                     common.EXIT_USAGE) from err


def segment_photo(model, to_input, photo: np.ndarray, device: str) -> np.ndarray:
    """The (H, W) class map of a photo of any size: resized to 256 x 256 (bicubic, as the data set's photos),
    segmented, and its scores resized back to the photo's size (bilinear) before the arg-max."""
    from PIL import Image

    h, w = photo.shape[:2]
    small = np.asarray(Image.fromarray(photo).resize((SIDE, SIDE), Image.Resampling.BICUBIC))
    with mdl.no_grad():
        scores = model(to_input(small).reshape(1, 3, SIDE, SIDE).to(device))
        scores = nn.functional.interpolate(scores, size=(h, w), mode="bilinear", align_corners=False)
    return scores.numpy()[0].argmax(axis=0)


def predict(args: argparse.Namespace) -> int:
    """``--predict``: write <photo>_segmentation.png beside each photo, refusing to replace one silently."""
    from PIL import Image

    checkpoint = args.checkpoint or args.out / training.CHECKPOINT_NAME
    targets = [p.with_name(f"{p.stem}_segmentation.png") for p in args.predict]
    taken = [str(t) for t in targets if t.exists()]
    if taken and not args.overwrite:
        raise common.ExperimentError(f"argument --predict: {', '.join(taken)} already exist(s): pass --overwrite "
                                     f"to replace, or move them away", common.EXIT_USAGE)
    photos = [read_photo(p) for p in args.predict]
    model, to_input, net = load_trained(checkpoint, args.device)
    for path, photo, target in zip(args.predict, photos, targets):
        labels = segment_photo(model, to_input, photo, args.device)
        with atomic_path(target) as tmp:
            Image.fromarray(viz.colorize_labels(labels)).save(tmp, format="PNG")
        share = np.bincount(labels.ravel(), minlength=len(CLASSES)) / labels.size
        print(f"{target}: {photo.shape[1]} x {photo.shape[0]}, net {net}; "
              + ", ".join(f"{name} {100 * s:.0f}%" for name, s in zip(CLASSES, share)))
    return 0


if __name__ == "__main__":
    common.exit_without_gc(main())
