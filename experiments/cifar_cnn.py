"""Report 003's CIFAR-10 CNN study: its default net, the nine variants it tried, and all ten as one sweep.

    python experiments/cifar_cnn.py --variant best              # the report's best net, the defaults that beat it
    python experiments/cifar_cnn.py                             # the report's default net (256,058 parameters)
    python experiments/cifar_cnn.py --variant leaky --recipe report   # the report's own training, 300 epochs
    python experiments/cifar_cnn.py --sweep                     # all ten variants, comparison.md and a bar chart
    python experiments/cifar_cnn.py --variant best --resume     # continue the run in --out where it stopped

The variants build on each other as in the report (SEED_MODELS.md section 6): ``default`` (conv 24/48/96 with
kernels 5/3/3, ReLU, FC 512); ``filters`` (64/128/256); ``extra-fc`` (+ Linear(512, 128) + ReLU) and ``kernels``
(7/5/3), each tried on ``filters`` and both dropped, as they did not help; ``leaky`` (LeakyReLU, on ``filters``);
``dropout`` (+ Dropout(0.3) between FC1 and FC2); ``best`` (+ BatchNorm after each activation, the convs' and
FC1's: the report's best net); then three training settings tried on ``best``: ``batch256``, ``lr0.1`` and
``shuffle`` (a new order of the training images every epoch; the report trained in a fixed order). The flags
--filters, --kernels, --activation, --batch-norm, --dropout, --extra-fc, --batch-size, --lr and --shuffle override
the variant's choice.

Two recipes. ``--recipe report``: what the report states (SGD lr 0.001, batch 64, no shuffling, pixels to
(x - 0.5) / 1, 300 epochs; momentum 0 and no weight decay *chosen*, PyTorch's SGD defaults, as it names
none). Without it, the defaults that beat the report in a fraction of the time: SGD with Nesterov momentum
0.9 and weight decay 5e-4, a one-cycle learning rate peaking at 0.05 (stepped every batch), batch 128,
per-channel normalization, random crops and flips, 12 epochs (under --sweep: 7 per variant, 15 for the default
net, which takes a third of the time per epoch; --epochs N gives every variant N).

The metric is the report's average top-1 recall (the mean of the per-class recalls; on CIFAR-10's balanced
test set it equals the accuracy, reported beside it). Each run folder holds config.json, metrics.csv,
checkpoint.npz, model_summary.txt (the table of the report's Figure 1), the figures (training_curves.png,
per_class_recall.png, confusion_matrix.png, pr_curves.png, examples.png), report.md and summary.json. A sweep
writes each variant's run into a folder of --out named after it, then comparison.md and comparison.png there;
--resume continues a sweep, keeping the variants it finished.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import classify
import common
from common import markdown_table, write_json

import minidl as mdl
from minidl import training, viz
from models.cifar import Report003Net

REPORT_PIXELS = ((0.5, 0.5, 0.5), (1.0, 1.0, 1.0))  # (x - 0.5) / 1, the report's preprocessing
WIDE = (64, 128, 256)
#: The report's ten runs: what each changes from the report's default net and training, and its recall.
VARIANTS = {
    "default": ({}, 0.6932, "the default net"),
    "filters": ({"filters": WIDE}, 0.7146, "filters 64/128/256"),
    "extra-fc": ({"filters": WIDE, "extra_fc": 128}, 0.7018, "filters + FC 128"),
    "kernels": ({"filters": WIDE, "kernels": (7, 5, 3)}, 0.7003, "filters + kernels 7/5/3"),
    "leaky": ({"filters": WIDE, "activation": "leaky"}, 0.7199, "filters + LeakyReLU"),
    "dropout": ({"filters": WIDE, "activation": "leaky", "dropout": 0.3}, 0.7358, "leaky + dropout 0.3"),
    "best": ({"filters": WIDE, "activation": "leaky", "dropout": 0.3, "batch_norm": True}, 0.7487,
             "dropout + batch norm (the best net)"),
    "batch256": ({"filters": WIDE, "activation": "leaky", "dropout": 0.3, "batch_norm": True, "batch_size": 256},
                 0.7236, "best, batch 256"),
    "lr0.1": ({"filters": WIDE, "activation": "leaky", "dropout": 0.3, "batch_norm": True, "lr": 0.1}, 0.7391,
              "best, lr 0.1"),
    "shuffle": ({"filters": WIDE, "activation": "leaky", "dropout": 0.3, "batch_norm": True, "shuffle": True},
                0.7479, "best, shuffled every epoch"),
}
#: The settings a variant or a recipe decides, with the report's default net and the default recipe's value.
NET_DEFAULTS = {"filters": (24, 48, 96), "kernels": (5, 3, 3), "activation": "relu", "batch_norm": False,
                "dropout": 0.0, "extra_fc": 0, "shuffle": False}
RECIPES = {
    "default": {"epochs": 12, "batch_size": 128, "lr": 0.05, "momentum": 0.9, "nesterov": True,
                "weight_decay": 5e-4, "schedule": "onecycle", "augment": "crop-flip", "normalize": "channel"},
    "report": {"epochs": 300, "batch_size": 64, "lr": 0.001, "momentum": 0.0, "nesterov": False,
               "weight_decay": 0.0, "schedule": "none", "augment": "none", "normalize": "report"},
}
#: Epochs of each variant in a sweep with the default recipe and no --epochs: the default net costs a third of
#: the wider ones' time per epoch, so it gets more of them.
SWEEP_EPOCHS = {"default": 15}
SWEEP_EPOCHS_OTHERS = 7
# Report 003's Figure 1: the default net's torchsummary table.
REPORT_FIGURE_1 = [("Conv2d-1", "[-1, 24, 28, 28]", "1,824"), ("ReLU-2", "[-1, 24, 28, 28]", "0"),
                   ("MaxPool2d-3", "[-1, 24, 14, 14]", "0"), ("Conv2d-4", "[-1, 48, 12, 12]", "10,416"),
                   ("ReLU-5", "[-1, 48, 12, 12]", "0"), ("MaxPool2d-6", "[-1, 48, 6, 6]", "0"),
                   ("Conv2d-7", "[-1, 96, 4, 4]", "41,568"), ("MaxPool2d-8", "[-1, 96, 2, 2]", "0"),
                   ("Flatten-9", "[-1, 384]", "0"), ("Linear-10", "[-1, 512]", "197,120"),
                   ("ReLU-11", "[-1, 512]", "0"), ("Linear-12", "[-1, 10]", "5,130")]
REPORT_FIGURE_1_SIZES = ("Input 0.01 MB, forward/backward pass 0.47 MB, params 0.98 MB, total 1.46 MB; "
                         "256,058 parameters")


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring and ``--help``)."""
    p = common.make_parser(__file__, __doc__)
    p.add_argument("--variant", choices=list(VARIANTS), default="default", help="which of the report's ten runs")
    p.add_argument("--sweep", action="store_true", help="run all ten variants, each in --out/<variant>, and "
                                                        "compare them (comparison.md, comparison.png)")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="default",
                   help="'report': the report's own training; 'default': the one that beats it")
    common.add_training_flags(p, epochs=None, batch_size=None, optimizers=["sgd", "adam"], optimizer="sgd",
                              weight_decay=None, recipe_help="see --recipe (12 epochs, 7 under --sweep, 300 "
                              "with --recipe report; batch 128 or 64; weight decay 5e-4 or 0)",
                              lr_help="the learning rate (the one-cycle's peak): default 0.05, 0.001 with "
                                      "--recipe report, 0.1 for --variant lr0.1")
    p.add_argument("--momentum", type=common.float_in(0, 1), default=None,
                   help="SGD momentum (default 0.9, 0 with --recipe report)")
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                   help="Nesterov momentum (default on, off with --recipe report)")
    p.add_argument("--schedule", choices=["onecycle", "cosine", "none"], default=None,
                   help="learning-rate schedule: one cycle over all the batches, a cosine over the epochs, or "
                        "constant (default onecycle, none with --recipe report)")
    p.add_argument("--normalize", choices=["channel", "report"], default=None,
                   help="pixel preprocessing: per-channel mean and std of CIFAR-10, or the report's "
                        "(x - 0.5) / 1 (default channel, report with --recipe report)")
    p.add_argument("--label-smoothing", type=common.float_in(0, 1), default=0.0,
                   help="label smoothing of the cross-entropy (default 0)")
    net = p.add_argument_group("the net (default: the variant's)")
    net.add_argument("--filters", type=common.int_at_least(1), nargs=3, metavar=("C1", "C2", "C3"), default=None)
    net.add_argument("--kernels", type=common.int_at_least(1), nargs=3, metavar=("K1", "K2", "K3"), default=None)
    net.add_argument("--activation", choices=["relu", "leaky"], default=None)
    net.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None)
    net.add_argument("--dropout", type=common.float_in(0, 1), default=None)
    net.add_argument("--extra-fc", type=common.int_at_least(0), default=None, metavar="N",
                     help="width of an extra Linear + activation before the classifier (0: none)")
    net.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=None,
                     help="a new order of the training images every epoch")
    classify.add_flags(p)
    common.add_run_flags(p, out="runs/cifar_cnn")
    return p


def resolve(args: argparse.Namespace) -> None:
    """Fill in every setting left at None from the variant, then the recipe, then the default net."""
    changes = VARIANTS[args.variant][0]
    recipe = RECIPES[args.recipe]
    for name in [*NET_DEFAULTS, *recipe]:
        if getattr(args, name, None) is None:
            value = changes.get(name, recipe.get(name, NET_DEFAULTS.get(name)))
            setattr(args, name, list(value) if isinstance(value, tuple) else value)


def check_flags(args: argparse.Namespace, given: frozenset[str]) -> None:
    """Refuse settings that cannot work together, naming the flags."""
    classify.check_optimizer_flags(args, given)
    size = 32
    for k in args.kernels:
        size = (size - k + 1) // 2
        if size < 1:
            raise common.ExperimentError(f"argument --kernels: {' '.join(map(str, args.kernels))} leave no pixel "
                                         f"of a 32x32 image after three valid convolutions and 2x2 poolings (the "
                                         f"report's are 5 3 3)", common.EXIT_USAGE)


def build_model(args) -> Report003Net:
    return Report003Net(filters=tuple(args.filters), kernels=tuple(args.kernels), leaky=args.activation == "leaky",
                        batch_norm=args.batch_norm, dropout=args.dropout, extra_fc=args.extra_fc)


def main(argv: list[str] | None = None) -> int:
    """Run the script with the command-line arguments ``argv`` (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0, or that of an error already reported on stderr (see :func:`common.run`).
    """
    return common.run(build_parser(), argv, lambda args, given: (sweep if args.sweep else train)(args, given))


def train(args: argparse.Namespace, given: frozenset[str]) -> int:
    """One variant's run: check the run folder, load the data, train, evaluate, write the figures and report."""
    start = time.perf_counter()
    folder = common.RunFolder(args.out, script=Path(__file__).stem)
    folder.open(args, given)
    resolve(args)
    check_flags(args, given)
    classify.require_tensorboard(args.tensorboard)
    earlier_seconds = common.earlier_wall_seconds(args)
    mdl.manual_seed(args.seed)
    normalize = REPORT_PIXELS if args.normalize == "report" else (classify.CIFAR_MEAN, classify.CIFAR_STD)
    loaders, test_set, classes, sizes = classify.load_cifar10(args, normalize=normalize, augment=args.augment,
                                                              shuffle=args.shuffle)
    model = build_model(args).to(args.device)
    history, test, summary = classify.train_and_test(args, folder, sizes, model, loaders, test_set, classes)
    summary.update({"variant": args.variant, "recipe": args.recipe,
                    "report_mean_recall": VARIANTS[args.variant][1]})
    out, train_seconds = args.out, summary["train_seconds"]
    name, (_, reported, what) = args.variant, VARIANTS[args.variant]
    figures = classify.write_figures(
        out, history, test, summary, test_set.data, classes, title=f"Report 003, variant {name} ({what})",
        monitor_name=loaders.monitor_name, reference_recall={f"report 003 ({name}): mean recall": reported})
    summary["wall_seconds_this_command"] = time.perf_counter() - start
    summary["wall_seconds"] = earlier_seconds + summary["wall_seconds_this_command"]
    write_json(out / "summary.json", summary)
    write_report(out, args, summary, classes, figures, common.command_line(__file__, args, build_parser()))
    for line in classify.per_class_lines(summary["per_class_accuracy"]):
        print(line)
    print(f"variant {name}: mean recall {summary['mean_recall']:.4f} (report {reported:.4f}), test accuracy "
          f"{100 * summary['test_accuracy']:.2f}% | {summary['epochs']} epochs, {train_seconds:.0f} s training, "
          f"{summary['wall_seconds']:.0f} s in all | run folder {out}")
    return 0


def write_report(out: Path, args, summary: dict, classes, figures: list[str], command: str) -> None:
    """report.md: this run's recall beside the report's ten, its per-class recall, its model table beside the
    report's Figure 1 (for the default net), and the figures."""
    name = args.variant
    rows = [[f"**{v}**" if v == name else v, what, f"{reported:.4f}",
             f"**{summary['mean_recall']:.4f}**" if v == name else ""]
            for v, (_, reported, what) in VARIANTS.items()]
    per_class = [[c, f"{100 * a:.1f}", f"{100 * p:.1f}"] for c, a, p in
                 zip(classes, summary["per_class_accuracy"], summary["per_class_precision"])]
    recipe = ("the report's own training (--recipe report)" if args.recipe == "report" else
              "minidl's default recipe (see the module docstring of experiments/cifar_cnn.py), not the report's")
    text = [
        f"# Report 003, variant `{name}`: {VARIANTS[name][2]}", "",
        f"Average top-1 recall (mean per-class recall) **{summary['mean_recall']:.4f}** on the 10,000 test images "
        f"(report 003: {VARIANTS[name][1]:.4f} after 300 epochs on a GPU); test accuracy "
        f"{100 * summary['test_accuracy']:.2f}%. {summary['epochs']} epochs, {summary['train_seconds']:.0f} s of "
        f"training ({summary['images_per_second']:.0f} images/s), {summary['wall_seconds']:.0f} s in all, on "
        f"{common.machine()['cpu']} ({common.machine()['cores']} cores), with {recipe}.", "",
        "## The report's ten runs", "",
        markdown_table(["variant", "what changes", "report 003 recall", "this run"], rows), "",
        "Run them all with `python experiments/cifar_cnn.py --sweep` (comparison.md).", "",
        "## Per-class test recall and precision (%)", "",
        "Report 003 gives no per-class figures; per_class_recall.png shows this run's.", "",
        markdown_table(["class", "recall", "precision"], per_class), "",
        "## The model (the table of the report's Figure 1)", "",
        "```", (out / "model_summary.txt").read_text().rstrip(), "```", "",
    ]
    if name == "default" and args.filters == [24, 48, 96]:
        text += ["Report 003's Figure 1, for comparison: " + REPORT_FIGURE_1_SIZES + ".", "",
                 markdown_table(["layer", "output shape", "params"], [list(r) for r in REPORT_FIGURE_1]), ""]
    text += ["## Figures", ""] + [f"![{f[:-4].replace('_', ' ')}]({f})\n" for f in figures]
    text += classify.report_notes(args, command)
    (out / "report.md").write_text("\n".join(text) + "\n")


def sweep(args: argparse.Namespace, given: frozenset[str]) -> int:
    """All ten variants with the same flags, each a run of its own in ``--out/<variant>``, then the comparison.

    ``--resume`` keeps the variants that finished (a summary.json) and continues the one that stopped.
    """
    start = time.perf_counter()
    if "variant" in given:
        raise common.ExperimentError("argument --variant: --sweep runs every variant; leave --variant out",
                                     common.EXIT_USAGE)
    top = args.out
    common.open_sweep_folder(top, args, Path(__file__).stem)
    results = {}
    for name in VARIANTS:
        run_dir = top / name
        finished = common.read_json(run_dir / "summary.json")
        if args.resume and finished is not None:
            print(f"--resume: variant {name} finished before (mean recall {finished['mean_recall']:.4f}); kept")
            results[name] = finished
            continue
        variant_args = argparse.Namespace(**vars(args))
        variant_args.variant, variant_args.out, variant_args.sweep = name, run_dir, False
        variant_args.resume = args.resume and (run_dir / training.CHECKPOINT_NAME).exists()
        # A variant that stopped before its first checkpoint has nothing to keep: it starts again.
        variant_args.overwrite = args.resume and not variant_args.resume
        if args.epochs is None and args.recipe == "default":
            variant_args.epochs = SWEEP_EPOCHS.get(name, SWEEP_EPOCHS_OTHERS)
        if variant_args.tensorboard is not None:
            variant_args.tensorboard = variant_args.tensorboard / name
        print(f"=== variant {name}: {VARIANTS[name][2]} ===")
        train(variant_args, given)
        results[name] = common.read_json(run_dir / "summary.json")
    write_comparison(top, results, time.perf_counter() - start)
    print(f"sweep done: {top / 'comparison.md'}")
    return 0


def write_comparison(top: Path, results: dict, seconds: float) -> None:
    """comparison.md and comparison.png: every variant's recall beside the report's, and its time."""
    rows, ours, theirs = [], [], []
    for name, summary in results.items():
        reported = VARIANTS[name][1]
        ours.append(summary["mean_recall"])
        theirs.append(reported)
        rows.append([name, VARIANTS[name][2], f"{reported:.4f}", f"{summary['mean_recall']:.4f}",
                     f"{summary['mean_recall'] - reported:+.4f}", f"{100 * summary['test_accuracy']:.2f}",
                     str(summary["epochs"]), f"{summary['wall_seconds'] / 60:.1f}"])
    total = sum(s["wall_seconds"] for s in results.values())
    viz.plot_per_class_accuracy({"this sweep": ours}, top / "comparison.png", class_names=list(results),
                                reference={"report 003": theirs}, title="Report 003's ten runs: mean recall",
                                ylabel="mean per-class recall (%)")
    text = ["# Report 003's ten runs, side by side", "",
            markdown_table(["variant", "what changes", "report 003", "this sweep", "difference", "test accuracy %",
                            "epochs", "minutes"], rows), "",
            f"All ten: {total / 60:.1f} minutes of runs ({seconds / 60:.1f} in this command).", "",
            "![mean recall per variant](comparison.png)", "",
            "Each variant's folder holds its run: report.md, figures, summary.json, config.json.", "",
            classify.DATA_NOTE]
    (top / "comparison.md").write_text("\n".join(text) + "\n")
    write_json(top / "summary.json", {"sweep": {n: s["mean_recall"] for n, s in results.items()},
                                      "wall_seconds": total})


if __name__ == "__main__":
    common.exit_without_gc(main())
