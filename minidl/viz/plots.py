"""The figures of the experiments: curves, per-class bars, confusion matrices, samples, filters, PR curves
and segmentation maps.

Each function draws one figure, saves it as a PNG at ``path`` (creating the folder) and returns the path.
Figures are drawn with matplotlib's Agg canvas directly (``matplotlib.figure.Figure``), never through
``pyplot``: no window opens, no global figure state is touched, and nothing needs a display, so the same
code runs in a terminal, a notebook, a test or a headless GPU machine.

Conventions: accuracies, recalls and precisions are fractions in [0, 1] (drawn as percent where the axis
says so); images may be ``(C, H, W)`` or ``(H, W, C)`` with 1 or 3 channels, uint8 or float (floats
outside [0, 1], e.g. normalised inputs, are rescaled per image for display); anything array-like may be a
minidl Tensor. Where a seed report gives numbers, pass them as ``reference`` to draw them beside this run's.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .. import metrics
from ..backend import to_numpy
from ..tensor import Tensor

__all__ = ["FACADE_CLASSES", "FACADE_COLORS", "colorize_labels", "plot_training_curves", "plot_loss_curve",
           "plot_per_class_accuracy", "plot_confusion_matrix", "plot_classified_examples", "plot_filters",
           "plot_pr_curves", "plot_segmentation_triplets"]

FACADE_CLASSES = ("others", "facade", "pillar", "window", "balcony")
# The colours of the CMP Facade label maps as the seed reports show them: black, blue, green, orange, red.
FACADE_COLORS = ((0.0, 0.0, 0.0), (0.0, 0.25, 1.0), (0.0, 0.7, 0.0), (1.0, 0.6, 0.0), (0.9, 0.0, 0.0))

_DPI = 120


# ----------------------------------------------------------------------------------- helpers
def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


def _np(x) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.array
    return to_numpy(x)


def _class_names(names, C: int) -> list[str]:
    if names is None:
        return [str(c) for c in range(C)]
    names = [str(n) for n in names]
    if len(names) != C:
        raise ValueError(f"class_names has {len(names)} names but there are {C} classes")
    return names


def _display_image(img) -> np.ndarray:
    """An (H, W) or (H, W, 3) float image in [0, 1], from CHW or HWC, uint8 or float."""
    img = _np(img)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.transpose(1, 2, 0)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] != 3):
        raise ValueError(f"expected an image of shape (H, W), (C, H, W) or (H, W, C) with C in (1, 3), "
                         f"got {img.shape}")
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    img = img.astype(np.float32)
    lo, hi = float(img.min()), float(img.max())
    if lo < 0.0 or hi > 1.0:
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return img


def _show(ax, img) -> None:
    img = _display_image(img)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _history_columns(history) -> Mapping:
    if hasattr(history, "as_dict"):
        return history.as_dict()
    if isinstance(history, Mapping):
        return history
    raise TypeError(f"history must be a minidl.training.History or a mapping of columns, got "
                    f"{type(history).__name__}")


def _series(columns: Mapping, key: str, x: np.ndarray):
    values = columns.get(key)
    if values is None:
        return None
    pts = [(xi, v) for xi, v in zip(x, values) if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not pts:
        return None
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts], dtype=np.float64)


def _named_series(values, default_label: str) -> dict[str, np.ndarray]:
    if values is None:
        return {}
    if isinstance(values, Mapping):
        return {str(k): np.asarray(_np(v), dtype=np.float64) for k, v in values.items()}
    return {default_label: np.asarray(_np(values), dtype=np.float64)}


# ----------------------------------------------------------------------------------- curves
def plot_training_curves(history, path: str | os.PathLike, title: str = "Training curves",
                         reference_accuracy: Mapping[str, float] | None = None,
                         reference_loss: Mapping[str, float] | None = None,
                         extra_columns: Mapping[str, str] | None = None, val_label: str = "validation",
                         xlabel: str = "epoch") -> Path:
    """Train and validation loss (left) and accuracy (right) per epoch.

    Args:
        history: a :class:`minidl.training.History`, or a mapping with an ``"epoch"`` column and any of
            ``"train_loss"``, ``"val_loss"``, ``"train_acc"``, ``"val_acc"`` (``None`` entries are skipped).
        path: the PNG to write.
        title: the figure's title.
        reference_accuracy: numbers to draw as labelled horizontal lines on the accuracy panel, e.g.
            ``{"report: test accuracy": 0.8326}`` (fractions).
        reference_loss: the same for the loss panel.
        extra_columns: more fractions to draw on the accuracy panel, ``{column: label}``, e.g.
            ``{"mean_recall": "test mean recall"}``.
        val_label: the legend's name for the ``val_*`` columns (``"test"`` when a run follows its test set).
        xlabel: the horizontal axis' name: what the ``"epoch"`` column counts (``"batches"`` for a run that
            evaluates every so many batches).

    Returns:
        ``path``.
    """
    columns = _history_columns(history)
    epochs = columns.get("epoch")
    epochs = np.arange(1, len(columns.get("train_loss", [])) + 1) if epochs is None else np.asarray(epochs)
    acc = [(label, s) for label, s in (("train", _series(columns, "train_acc", epochs)),
                                       (val_label, _series(columns, "val_acc", epochs)),
                                       *((label, _series(columns, key, epochs))
                                         for key, label in (extra_columns or {}).items()))
           if s is not None]
    panels = 2 if acc or reference_accuracy else 1
    fig = _figure(5.5 * panels, 4.0)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    ax = axes[0]
    for label, key, style in (("train", "train_loss", "o-"), (val_label, "val_loss", "s-")):
        s = _series(columns, key, epochs)
        if s is not None:
            ax.plot(s[0], s[1], style, label=label, markersize=4)
    for i, (label, value) in enumerate((reference_loss or {}).items()):
        ax.axhline(value, color=f"C{i + 2}", linestyle="--", label=label)
    ax.set(xlabel=xlabel, ylabel="loss", title="Loss")
    ax.grid(alpha=0.3)
    ax.legend()
    if panels == 2:
        ax = axes[1]
        for (label, s), style in zip(acc, ("o-", "s-", "^-", "v-", "d-")):
            ax.plot(s[0], 100 * s[1], style, label=label, markersize=4)
        for i, (label, value) in enumerate((reference_accuracy or {}).items()):
            ax.axhline(100 * value, color=f"C{i + 2}", linestyle="--", label=label)
        ax.set(xlabel=xlabel, ylabel="accuracy (%)", title="Accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    return _save(fig, path)


def plot_loss_curve(steps, losses, path: str | os.PathLike, title: str = "Training loss",
                    xlabel: str = "mini-batch", reference=None, reference_label: str = "report") -> Path:
    """A loss curve against steps (e.g. the running loss printed every 2000 mini-batches).

    Args:
        steps: the x values (mini-batch counts or epochs).
        losses: the loss at each step.
        path: the PNG to write.
        title: the figure's title.
        xlabel: the x axis's label.
        reference: ``(steps, losses)`` from a report, drawn beside (dashed), or None.
        reference_label: its legend entry.

    Returns:
        ``path``.
    """
    fig = _figure(6.0, 4.0)
    ax = fig.subplots()
    ax.plot(_np(steps), _np(losses), "o-", markersize=3, label="this run")
    if reference is not None:
        ax.plot(_np(reference[0]), _np(reference[1]), "s--", markersize=4, label=reference_label)
    ax.set(xlabel=xlabel, ylabel="loss", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


# ----------------------------------------------------------------------------------- per class
def plot_per_class_accuracy(values, path: str | os.PathLike, class_names: Sequence[str] | None = None,
                            reference=None, title: str = "Per-class accuracy",
                            ylabel: str = "accuracy (%)") -> Path:
    """Bars of a per-class number (accuracy, recall, AP), with a report's values beside them.

    Args:
        values: C fractions, or a mapping ``{label: C fractions}`` for several series (e.g. validation and
            test).
        path: the PNG to write.
        class_names: C names for the x axis (default: the class indices).
        reference: the same shape of input for the report's numbers (drawn hatched beside this run's), e.g.
            ``{"report (test)": [0.84, 0.98, ...]}``; a bare sequence is labelled "report".
        title: the figure's title.
        ylabel: the y axis's label (values are drawn times 100).

    Returns:
        ``path``.
    """
    series = _named_series(values, "this run")
    refs = _named_series(reference, "report")
    all_series = [(k, v, False) for k, v in series.items()] + [(k, v, True) for k, v in refs.items()]
    C = len(all_series[0][1])
    for label, v, _ in all_series:
        if v.shape != (C,):
            raise ValueError(f"plot_per_class_accuracy: series {label!r} has shape {v.shape}, expected ({C},)")
    names = _class_names(class_names, C)
    fig = _figure(max(6.0, 0.35 * C * len(all_series) + 2.0), 4.5)
    ax = fig.subplots()
    width = 0.8 / len(all_series)
    x = np.arange(C)
    for i, (label, v, is_ref) in enumerate(all_series):
        bars = ax.bar(x - 0.4 + width * (i + 0.5), 100 * v, width, label=label,
                      hatch="//" if is_ref else None, alpha=0.6 if is_ref else 0.9,
                      edgecolor="black", linewidth=0.5)
        if C * len(all_series) <= 40:
            # Clipped to the Axes (the y range leaves room above 100 %): the layout then need not measure
            # every label.
            ax.bar_label(bars, labels=[("" if math.isnan(a) else f"{100 * a:.0f}") for a in v], fontsize=7,
                         clip_on=True)
    slanted = max(len(n) for n in names) > 5  # long names would overlap when written level
    ax.set_xticks(x, names, rotation=30 if slanted else 0, ha="right" if slanted else "center")
    ax.set(ylabel=ylabel, title=title, ylim=(0, 120), yticks=range(0, 101, 20))  # above 100: the legend
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", ncol=4, fontsize=8, frameon=False)  # one row, over no bar
    return _save(fig, path)


def plot_confusion_matrix(cm, path: str | os.PathLike, class_names: Sequence[str] | None = None,
                          title: str = "Confusion matrix", normalize: str = "both") -> Path:
    """A confusion matrix (rows: true class, columns: predicted class) as a heat map with the numbers.

    Args:
        cm: a ``(C, C)`` matrix of counts, as :func:`minidl.metrics.confusion_matrix` returns.
        path: the PNG to write.
        class_names: C names (default: the class indices).
        title: the figure's title.
        normalize: ``"both"`` draws the counts and the row-normalised matrix (each row divided by its sum:
            the diagonal is then the per-class recall) side by side; ``"none"`` only the counts; ``"true"``
            only the row-normalised one.

    Returns:
        ``path``.
    """
    if normalize not in ("both", "none", "true"):
        raise ValueError(f"plot_confusion_matrix: normalize must be 'both', 'none' or 'true', got {normalize!r}")
    cm = np.asarray(_np(cm))
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion_matrix: expected a square matrix, got shape {cm.shape}")
    C = cm.shape[0]
    names = _class_names(class_names, C)
    support = cm.sum(axis=1, keepdims=True)
    rows = np.divide(cm, support, out=np.zeros(cm.shape, dtype=np.float64), where=support > 0)
    panels = {"both": [("counts", cm, "d"), ("row-normalised (recall on the diagonal)", rows, ".2f")],
              "none": [("counts", cm, "d")],
              "true": [("row-normalised (recall on the diagonal)", rows, ".2f")]}[normalize]
    size = max(4.5, 0.55 * C + 2.0)
    fig = _figure(size * len(panels), size)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (subtitle, m, fmt) in zip(axes, panels):
        im = ax.imshow(m, cmap="Blues", interpolation="nearest")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        if C <= 30:
            threshold = (m.max() + m.min()) / 2
            for i in range(C):
                for j in range(C):
                    # Clipped to the Axes (each number lies inside its cell): the layout then need not
                    # measure all C * C texts.
                    ax.text(j, i, format(m[i, j], fmt), ha="center", va="center", fontsize=7 if C > 10 else 8,
                            color="white" if m[i, j] > threshold else "black", clip_on=True)
        ax.set_xticks(range(C), names, rotation=45, ha="right")
        ax.set_yticks(range(C), names)
        ax.set(xlabel="predicted class", ylabel="true class", title=subtitle)
    fig.suptitle(title)
    return _save(fig, path)


def plot_classified_examples(images, targets, predictions, path: str | os.PathLike,
                             class_names: Sequence[str] | None = None, per_class: int = 3,
                             title: str = "Correctly and incorrectly classified test images") -> Path:
    """One row per class: the first ``per_class`` correctly classified images of that class, then the first
    ``per_class`` misclassified ones, each titled with its predicted class (green right, red wrong).

    The grid is drawn as one picture in one Axes (tiles pasted into a mosaic with NumPy, each caption a text
    above its tile, the class names as the row labels), not as one Axes per tile: matplotlib's cost grows
    with the number of Axes (ticks, spines, layout), and 60 of them took most of a second to lay out.

    Args:
        images: ``(N, C, H, W)``, ``(N, H, W)`` or ``(N, H, W, C)`` images.
        targets: ``(N,)`` true classes.
        predictions: ``(N,)`` predicted classes, or ``(N, K)`` scores.
        path: the PNG to write.
        class_names: the names of the K classes (default: indices).
        per_class: how many correct and how many incorrect images per class.
        title: the figure's title.

    Returns:
        ``path``.
    """
    images = _np(images)
    predictions, targets = metrics.to_labels(predictions, targets)
    if len(images) != len(targets):
        raise ValueError(f"plot_classified_examples: {len(images)} images but {len(targets)} targets")
    K = len(class_names) if class_names is not None else int(max(targets.max(), predictions.max())) + 1
    names = _class_names(class_names, K)
    cols = 2 * per_class
    H, W = _display_image(images[0]).shape[:2] if len(images) else (1, 1)
    # In image pixels: a white band above every tile for its caption, a white gap between columns.
    band, gap = max(2, round(0.3 * H)), max(1, round(0.2 * W))
    mosaic = np.ones((K * (band + H), cols * (W + gap) - gap, 3), dtype=np.float32)
    captions = []  # (x, y, text, colour) in the mosaic's pixel coordinates
    for k in range(K):
        of_class = targets == k
        correct = np.flatnonzero(of_class & (predictions == k))[:per_class]
        wrong = np.flatnonzero(of_class & (predictions != k))[:per_class]
        for j in range(cols):
            ok = j < per_class
            picks, i = (correct, j) if ok else (wrong, j - per_class)
            if i >= len(picks):
                continue  # fewer such images than per_class: the tile stays white
            top, left = k * (band + H) + band, j * (W + gap)
            img = _display_image(images[picks[i]])
            mosaic[top:top + H, left:left + W] = img[..., None] if img.ndim == 2 else img
            captions.append((left + (W - 1) / 2, top - 0.5 - 0.1 * band,
                             ("" if ok else "as ") + names[predictions[picks[i]]], "green" if ok else "red"))
    fig = _figure(1.15 * cols + 1.2, 1.25 * K + 0.6)
    ax = fig.subplots()
    ax.imshow(mosaic, interpolation="nearest")
    for x, y, text, color in captions:
        # Clipped to the Axes (they lie inside it): the layout then need not measure every caption.
        ax.text(x, y, text, fontsize=7, color=color, ha="center", va="bottom", clip_on=True)
    ax.set_xticks([])
    ax.set_yticks([k * (band + H) + band + (H - 1) / 2 for k in range(K)], names, fontsize=8)
    ax.tick_params(axis="y", length=0)
    ax.set_frame_on(False)
    fig.suptitle(f"{title}\nleft {per_class}: correct (green) | right {per_class}: misclassified (red, "
                 "titled with the predicted class)", fontsize=9)
    return _save(fig, path)


# ----------------------------------------------------------------------------------- filters
def plot_filters(weight, path: str | os.PathLike, title: str = "Learned conv1 filters",
                 max_filters: int = 64) -> Path:
    """The kernels of a convolution layer as a grid of small images.

    With 3 input channels each filter is drawn as one RGB image (each filter rescaled to [0, 1] on its
    own); otherwise every (filter, input channel) kernel is a grey tile on one shared, symmetric scale
    (a colour bar gives the weights), so tiles can be compared. Filters with one input channel are laid out
    in a near-square grid; with several, one row per filter, one column per input channel.

    Args:
        weight: the ``(O, C, KH, KW)`` weight (array, Tensor or Parameter), or a conv layer with ``.weight``.
        path: the PNG to write.
        title: the figure's title.
        max_filters: draw at most this many filters (the first ones).

    Returns:
        ``path``.
    """
    if hasattr(weight, "weight") and not isinstance(weight, (np.ndarray, Tensor)):
        weight = weight.weight
    w = np.asarray(_np(weight), dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"plot_filters: expected a (O, C, KH, KW) weight, got shape {w.shape}")
    w = w[:max_filters]
    O, C, KH, KW = w.shape
    gap = 1
    if C == 3:
        cols = math.ceil(math.sqrt(O))
        rows = math.ceil(O / cols)
        mosaic = np.ones((rows * (KH + gap) - gap, cols * (KW + gap) - gap, 3))
        for o in range(O):
            f = w[o].transpose(1, 2, 0)
            lo, hi = f.min(), f.max()
            f = (f - lo) / (hi - lo) if hi > lo else np.full_like(f, 0.5)
            r, c = divmod(o, cols)
            mosaic[r * (KH + gap):r * (KH + gap) + KH, c * (KW + gap):c * (KW + gap) + KW] = f
        fig = _figure(max(3.0, 0.45 * cols * KW / 3 + 1.0), max(3.0, 0.45 * rows * KH / 3 + 1.0))
        ax = fig.subplots()
        ax.imshow(mosaic, interpolation="nearest")
    else:
        tiles = w.reshape(O * C, KH, KW)
        if C == 1:
            cols = math.ceil(math.sqrt(O))
            rows = math.ceil(O / cols)
        else:
            rows, cols = O, C
        mosaic = np.full((rows * (KH + gap) - gap, cols * (KW + gap) - gap), np.nan)
        for t, f in enumerate(tiles):
            r, c = divmod(t, cols)
            mosaic[r * (KH + gap):r * (KH + gap) + KH, c * (KW + gap):c * (KW + gap) + KW] = f
        limit = float(np.abs(w).max()) or 1.0
        fig = _figure(max(3.5, 0.45 * cols * KW / 3 + 1.8), max(3.0, 0.45 * rows * KH / 3 + 1.0))
        ax = fig.subplots()
        cmap = ListedColormap(np.linspace(0, 1, 256)[:, None].repeat(3, axis=1)).with_extremes(bad="white")
        im = ax.imshow(mosaic, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="weight")
        if C > 1:
            ax.set(xlabel="input channel", ylabel="filter")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_frame_on(False)
    ax.set_title(f"{title}\n{O} filters of {C}×{KH}×{KW}")
    return _save(fig, path)


# ----------------------------------------------------------------------------------- PR curves
def plot_pr_curves(scores, targets, path: str | os.PathLike, class_names: Sequence[str] | None = None,
                   reference_ap: Sequence[float] | None = None, title: str = "Precision-recall curves",
                   max_points: int = 2000, only: Sequence[int] | None = None) -> Path:
    """One-vs-rest precision/recall curve of every class, with its average precision in the legend.

    Args:
        scores: ``(M, C)`` class scores, or ``(N, C, H, W)`` score maps (every pixel a sample).
        targets: ``(M,)`` or ``(N, H, W)`` true classes.
        path: the PNG to write.
        class_names: C names (default: indices).
        reference_ap: C average precisions from a report, shown in the legend beside this run's.
        title: the figure's title.
        max_points: each curve is thinned to about this many points for drawing (the AP is computed on all).
        only: draw just these classes (e.g. ``[1, 3]`` for car and cat, report 004's Figures 5 and 6); the
            mean AP in the title is then theirs.

    Returns:
        ``path``.
    """
    scores = _np(scores)
    targets = _np(targets)
    if scores.ndim != targets.ndim + 1 or scores.shape[:1] + scores.shape[2:] != targets.shape:
        raise ValueError(f"plot_pr_curves: expected scores of shape (N, C, ...) for targets of shape (N, ...), "
                         f"got {scores.shape} and {targets.shape}")
    C = scores.shape[1]
    names = _class_names(class_names, C)
    if reference_ap is not None and len(reference_ap) != C:
        raise ValueError(f"plot_pr_curves: reference_ap has {len(reference_ap)} values for {C} classes")
    flat_targets = targets.ravel()
    fig = _figure(6.5, 5.5)
    ax = fig.subplots()
    aps = []
    drawn = list(range(C) if only is None else only)
    for c in drawn:
        column = scores[:, c].ravel()
        positive = flat_targets == c
        if not positive.any():  # no curve exists without a positive sample
            aps.append(float("nan"))
            ax.plot([], [], label=f"{names[c]} (no sample of this class)")
            continue
        precision, recall, _ = metrics.precision_recall_curve(positive, column, pos_label=True,
                                                              drop_intermediate=True)
        ap = metrics.average_precision(positive, column, pos_label=True)
        aps.append(ap)
        if len(recall) > max_points:
            keep = np.unique(np.linspace(0, len(recall) - 1, max_points).astype(np.int64))
            precision, recall = precision[keep], recall[keep]
        label = f"{names[c]} (AP {ap:.3f}" + (f", report {reference_ap[c]:.3f})" if reference_ap is not None
                                               else ")")
        ax.plot(recall, precision, drawstyle="steps-post", label=label)
    mean = float(np.nanmean(aps)) if not np.all(np.isnan(aps)) else float("nan")
    subtitle = f"{'AP' if len(drawn) == 1 else 'mean AP'} {mean:.3f}"
    if reference_ap is not None:
        subtitle += f" (report {float(np.mean([reference_ap[c] for c in drawn])):.3f})"
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"{title}\n{subtitle}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


# ----------------------------------------------------------------------------------- segmentation
def colorize_labels(labels, colors: Sequence[Sequence[float]] = FACADE_COLORS) -> np.ndarray:
    """A label map drawn in its class colours: ``(..., H, W)`` class ids -> uint8 ``(..., H, W, 3)`` RGB.

    Args:
        labels: integer class ids in ``[0, len(colors))``.
        colors: one RGB colour in [0, 1] per class (default: the facade palette of reports 000 and 001).
    """
    labels = _np(labels)
    table = np.round(255 * np.asarray(colors, dtype=np.float64)).astype(np.uint8)
    if labels.size and (labels.min() < 0 or labels.max() >= len(table)):
        raise ValueError(f"colorize_labels: labels must lie in [0, {len(table)}), got values in "
                         f"[{labels.min()}, {labels.max()}]")
    return table[labels.astype(np.int64, copy=False)]


def plot_segmentation_triplets(images, predictions, targets, path: str | os.PathLike,
                               class_names: Sequence[str] = FACADE_CLASSES,
                               colors: Sequence[Sequence[float]] = FACADE_COLORS, max_rows: int = 4,
                               title: str = "Segmentation: input / prediction / ground truth") -> Path:
    """Rows of (input image, predicted label map, true label map), label maps in the class colours.

    Args:
        images: ``(N, 3, H, W)`` or ``(N, H, W, 3)`` input images.
        predictions: ``(N, H, W)`` predicted classes, or ``(N, C, H, W)`` scores.
        targets: ``(N, H, W)`` true classes.
        path: the PNG to write.
        class_names: C names for the legend (default: the five facade classes).
        colors: C RGB colours in [0, 1] (default: others black, facade blue, pillar green, window orange,
            balcony red).
        max_rows: draw at most this many images (the first ones).
        title: the figure's title.

    Returns:
        ``path``.
    """
    images = _np(images)
    predictions, targets = metrics.to_labels(predictions, targets)
    if targets.ndim != 3 or len(images) != len(targets):
        raise ValueError(f"plot_segmentation_triplets: expected (N, H, W) targets for N images, got images "
                         f"{images.shape} and targets {targets.shape}")
    C = len(colors)
    if len(class_names) != C:
        raise ValueError(f"plot_segmentation_triplets: {len(class_names)} class names for {C} colours")
    cmap = ListedColormap([tuple(c) for c in colors])
    rows = min(len(images), max_rows)
    fig = _figure(8.0, 2.7 * rows + 0.8)
    axes = fig.subplots(rows, 3, squeeze=False)
    for r in range(rows):
        _show(axes[r, 0], images[r])
        for ax, labels in ((axes[r, 1], predictions[r]), (axes[r, 2], targets[r])):
            ax.imshow(labels, cmap=cmap, vmin=-0.5, vmax=C - 0.5, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        pixel_acc = float(np.mean(predictions[r] == targets[r]))
        axes[r, 1].set_xlabel(f"pixel accuracy {100 * pixel_acc:.1f} %", fontsize=8)
        axes[r, 0].set_ylabel(f"image {r}", fontsize=8)
    for ax, name in zip(axes[0], ("input", "prediction", "ground truth")):
        ax.set_title(name)
    fig.legend(handles=[Patch(facecolor=colors[c], edgecolor="gray", label=class_names[c]) for c in range(C)],
               loc="outside lower center", ncol=C, fontsize=8, frameon=False)
    fig.suptitle(title)
    return _save(fig, path)
