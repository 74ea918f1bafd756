"""Classification and segmentation metrics on NumPy arrays.

Every function takes NumPy arrays, minidl Tensors (from any device) or anything ``numpy.asarray`` accepts,
and returns NumPy arrays or Python numbers. Where a function takes "predictions", it also takes raw scores
(logits or probabilities) with one more axis than the targets, the class axis at position 1 as in PyTorch:
``(N, C)`` scores for ``(N,)`` targets, ``(N, C, H, W)`` scores for ``(N, H, W)`` targets (every pixel is a
sample); the predicted class is then the arg-max over that axis.

Notation: ``C`` classes; for class ``c``, TP = samples of class ``c`` predicted ``c``, FP = samples of
another class predicted ``c``, FN = samples of class ``c`` predicted as another class.

    precision_c = TP / (TP + FP)        recall_c = TP / (TP + FN)   (= the per-class accuracy of class c)

The ranking metrics (:func:`precision_recall_curve`, :func:`average_precision`) follow scikit-learn's
definitions exactly, so the average precision of the seed reports (computed with
``sklearn.metrics.average_precision_score``) can be compared number for number.
"""
from __future__ import annotations

import warnings

import numpy as np

from .backend import to_numpy
from .tensor import Tensor

__all__ = ["UndefinedMetricWarning", "to_labels", "accuracy", "confusion_matrix", "per_class_accuracy",
           "mean_per_class_recall", "iou_per_class", "mean_iou", "precision_recall", "precision_recall_curve", "average_precision",
           "average_precision_per_class", "mean_average_precision"]


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for the data given (e.g. average precision of a class with no positive sample)."""


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.array
    return to_numpy(x)


def to_labels(pred_or_scores, target) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true class labels as two NumPy integer arrays of the same shape.

    Args:
        pred_or_scores: predicted labels, shaped like ``target``, or scores with a class axis at position 1
            (``(N, C)`` for ``(N,)`` targets, ``(N, C, H, W)`` for ``(N, H, W)`` targets).
        target: true labels.

    Returns:
        ``(pred, target)``, both integer arrays shaped like ``target``.
    """
    pred = _as_numpy(pred_or_scores)
    target = _as_numpy(target)
    if pred.ndim == target.ndim + 1:
        if pred.ndim < 2 or pred.shape[:1] + pred.shape[2:] != target.shape:
            raise ValueError(f"scores of shape {pred.shape} do not match targets of shape {target.shape}: "
                             "expected scores shaped like the targets with a class axis at position 1")
        pred = pred.argmax(axis=1)
    elif pred.shape != target.shape:
        raise ValueError(f"predictions of shape {pred.shape} do not match targets of shape {target.shape}")
    for name, a in (("predictions", pred), ("targets", target)):
        if a.dtype.kind not in "iub":
            if a.dtype.kind == "f" and np.all(a == np.round(a)):
                continue
            raise TypeError(f"{name} must be integer class labels, got dtype {a.dtype}")
    return pred.astype(np.int64, copy=False), target.astype(np.int64, copy=False)


def accuracy(pred_or_scores, target, ignore_index: int | None = None) -> float:
    """Fraction of samples (pixels, for segmentation) whose predicted class is the true class.

    Args:
        pred_or_scores: predicted labels or scores (see :func:`to_labels`).
        target: true labels.
        ignore_index: a target value to leave out (like ``cross_entropy``'s ``ignore_index``).

    Returns:
        The accuracy in [0, 1] (``nan`` when no sample is counted).

    >>> accuracy([[2.0, 1.0], [0.0, 3.0], [1.0, 0.5]], [0, 1, 1])
    0.6666666666666666
    """
    pred, target = to_labels(pred_or_scores, target)
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    if target.size == 0:
        return float("nan")
    return float(np.count_nonzero(pred == target) / target.size)


def confusion_matrix(pred_or_scores, target, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs, laid out like scikit-learn's ``confusion_matrix``.

    ``M[i, j]`` = number of samples of true class ``i`` predicted as class ``j``: rows are true classes,
    columns predicted classes, so row sums are the class supports and the diagonal holds the hits.

    Args:
        pred_or_scores: predicted labels or scores (see :func:`to_labels`).
        target: true labels in ``[0, num_classes)``.
        num_classes: C.

    Returns:
        An int64 array of shape ``(C, C)``.
    """
    pred, target = to_labels(pred_or_scores, target)
    pred, target = pred.ravel(), target.ravel()
    for name, a in (("predictions", pred), ("targets", target)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"confusion_matrix: {name} must lie in [0, {num_classes}), got values in "
                             f"[{a.min()}, {a.max()}]")
    # One bincount over the flat pair index i*C + j counts every cell in a single pass.
    counts = np.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def precision_recall(pred_or_scores, target, num_classes: int,
                     zero_division: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision and recall (scikit-learn's ``precision_recall_fscore_support(average=None)``).

    Args:
        pred_or_scores: predicted labels or scores (see :func:`to_labels`).
        target: true labels in ``[0, num_classes)``.
        num_classes: C.
        zero_division: the value given where a ratio is 0/0: the precision of a class never predicted, the
            recall of a class absent from the targets. scikit-learn's default is 0 (with a warning); pass
            ``float("nan")`` to mark those classes instead.

    Returns:
        ``(precision, recall)``, two float64 arrays of shape ``(C,)``.
    """
    cm = confusion_matrix(pred_or_scores, target, num_classes)
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0)   # TP + FP
    actual = cm.sum(axis=1)      # TP + FN
    precision = np.full(num_classes, zero_division, dtype=np.float64)
    recall = np.full(num_classes, zero_division, dtype=np.float64)
    np.divide(tp, predicted, out=precision, where=predicted > 0)
    np.divide(tp, actual, out=recall, where=actual > 0)
    return precision, recall


def per_class_accuracy(pred_or_scores, target, num_classes: int) -> np.ndarray:
    """Accuracy within each true class, i.e. the per-class recall TP / (TP + FN).

    This is the "accuracy of class c" of the seed reports (and of PyTorch's CIFAR-10 tutorial): among the
    test samples of class c, the fraction predicted c.

    Args:
        pred_or_scores: predicted labels or scores (see :func:`to_labels`).
        target: true labels in ``[0, num_classes)``.
        num_classes: C.

    Returns:
        A float64 array of shape ``(C,)``; ``nan`` for a class with no sample in ``target``.
    """
    return precision_recall(pred_or_scores, target, num_classes, zero_division=float("nan"))[1]


def mean_per_class_recall(pred_or_scores, target, num_classes: int) -> float:
    """The mean of the per-class recalls over the classes present in ``target``.

    Also called average top-1 recall, or balanced accuracy (scikit-learn's ``balanced_accuracy_score``):
    unlike plain accuracy, every class weighs the same whatever its size.

    Args:
        pred_or_scores: predicted labels or scores (see :func:`to_labels`).
        target: true labels in ``[0, num_classes)``.
        num_classes: C.

    Returns:
        The mean recall in [0, 1].
    """
    recall = per_class_accuracy(pred_or_scores, target, num_classes)
    present = ~np.isnan(recall)
    if not present.any():
        return float("nan")
    return float(recall[present].mean())


def iou_per_class(pred_or_scores, target, num_classes: int) -> np.ndarray:
    """Intersection over union of each class, the segmentation score (the Jaccard index).

    IoU_c = TP / (TP + FP + FN): the pixels both predicted and truly of class c, over the pixels either
    predicted or truly of class c. Unlike accuracy, a class that covers little of the image counts as much
    as a big one, and predicting it everywhere is punished.

    Args:
        pred_or_scores: predicted labels or scores (see :func:`to_labels`), e.g. ``(N, C, H, W)`` score maps.
        target: true labels in ``[0, num_classes)``, e.g. ``(N, H, W)`` label maps.
        num_classes: C.

    Returns:
        A float64 array of shape ``(C,)``; ``nan`` for a class neither present nor predicted (0/0).

    >>> iou_per_class([0, 0, 1, 1], [0, 1, 1, 1], 2)
    array([0.5       , 0.66666667])
    """
    cm = confusion_matrix(pred_or_scores, target, num_classes)
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp  # (TP + FP) + (TP + FN) - TP
    iou = np.full(num_classes, np.nan)
    np.divide(tp, union, out=iou, where=union > 0)
    return iou


def mean_iou(pred_or_scores, target, num_classes: int) -> float:
    """The mean of :func:`iou_per_class` over the classes present or predicted (the usual "mIoU")."""
    iou = iou_per_class(pred_or_scores, target, num_classes)
    return float(np.nanmean(iou)) if not np.all(np.isnan(iou)) else float("nan")


# ----------------------------------------------------------------------------------- ranking metrics
def _binary_inputs(y_true, scores, pos_label, sample_weight, name: str):
    y_true = _as_numpy(y_true).ravel()
    scores = _as_numpy(scores).ravel()
    if y_true.shape != scores.shape:
        raise ValueError(f"{name}: y_true has {y_true.size} elements but scores has {scores.size}")
    if scores.dtype.kind not in "iufb":
        raise TypeError(f"{name}: scores must be numbers, got dtype {scores.dtype}")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{name}: scores contain NaN or infinity")
    positive = y_true == pos_label
    if sample_weight is not None:
        sample_weight = _as_numpy(sample_weight).ravel().astype(np.float64)
        if sample_weight.shape != y_true.shape:
            raise ValueError(f"{name}: sample_weight has {sample_weight.size} elements, expected {y_true.size}")
    return positive, scores, sample_weight


def _binary_clf_curve(positive: np.ndarray, scores: np.ndarray, sample_weight=None):
    """True and false positive counts at each distinct score, from the highest score down.

    Samples are sorted by decreasing score; a threshold sits at the last sample of each run of equal scores,
    so tied samples are counted together (a threshold classifies all of them alike). Returns
    ``(fps, tps, thresholds)`` with thresholds decreasing, as scikit-learn's private function of this name.
    """
    # Unweighted, the order within a run of ties cannot matter (a run is counted at its end, in integers),
    # so NumPy's fastest sort does; weighted, the stable sort adds the weights in scikit-learn's order.
    order = np.argsort(scores, kind=None if sample_weight is None else "stable")[::-1]
    scores = scores[order]
    positive = positive[order]
    last_of_run = np.flatnonzero(scores[1:] != scores[:-1])
    threshold_idxs = np.append(last_of_run, scores.size - 1)
    if sample_weight is None:
        tps = np.cumsum(positive, dtype=np.int64)[threshold_idxs]
        fps = 1 + threshold_idxs - tps
    else:
        w = sample_weight[order]
        tps = np.cumsum(positive * w)[threshold_idxs]
        fps = np.cumsum(~positive * w)[threshold_idxs]
    return fps, tps, scores[threshold_idxs]


def precision_recall_curve(y_true, scores, pos_label=1, sample_weight=None,
                           drop_intermediate: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall of the classifier ``score >= t`` for every distinct score ``t``.

    Exactly scikit-learn's ``precision_recall_curve``: thresholds are the distinct scores in increasing
    order; ``precision[i]`` and ``recall[i]`` belong to ``thresholds[i]``; one last point
    (precision 1, recall 0) with no threshold closes the curve on the precision axis.

    Args:
        y_true: binary labels (the positive class is ``pos_label``), any shape.
        scores: scores of the positive class, shaped like ``y_true``; higher means more likely positive.
        pos_label: the label of the positive class.
        sample_weight: optional weight of each sample.
        drop_intermediate: drop thresholds whose point lies on a straight (flat or vertical) stretch of the
            curve, as scikit-learn does; lighter curves for plotting, same average precision.

    Returns:
        ``(precision, recall, thresholds)``: float64 arrays of length ``T + 1``, ``T + 1`` and ``T``.
    """
    positive, scores, sample_weight = _binary_inputs(y_true, scores, pos_label, sample_weight,
                                                     "precision_recall_curve")
    if scores.size == 0:
        raise ValueError("precision_recall_curve: no samples")
    fps, tps, thresholds = _binary_clf_curve(positive, scores, sample_weight)
    if drop_intermediate and len(fps) > 2:
        # Keep a point when the number of true positives changes on either side of it.
        keep = np.concatenate([[True], (tps[1:-1] != tps[:-2]) | (tps[2:] != tps[1:-1]), [True]])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    predicted = tps + fps
    precision = np.zeros(tps.shape, dtype=np.float64)
    np.divide(tps, predicted, out=precision, where=predicted != 0)
    if tps[-1] == 0:
        warnings.warn("precision_recall_curve: no positive sample in y_true, recall is set to one for all "
                      "thresholds", UndefinedMetricWarning, stacklevel=2)
        recall = np.ones(tps.shape, dtype=np.float64)
    else:
        recall = tps / tps[-1]
    return (np.append(precision[::-1], 1.0), np.append(recall[::-1], 0.0), thresholds[::-1])


def _average_precision_sorted(fps: np.ndarray, tps: np.ndarray) -> float:
    """AP = sum_n (R_n - R_{n-1}) P_n over thresholds from the highest score down, with R_0 = 0."""
    if tps[-1] == 0:
        return 0.0
    # The same arithmetic, in the same order, as scikit-learn, so the numbers agree to the last bit.
    precision = np.append((tps / (tps + fps))[::-1], 1.0)
    recall = np.append((tps / tps[-1])[::-1], 0.0)
    return max(0.0, float(-np.sum(np.diff(recall) * precision[:-1])))


def average_precision(y_true, scores, pos_label=1, sample_weight=None) -> float:
    """Average precision: the area under the precision/recall step curve, as scikit-learn computes it.

        AP = sum_n (R_n - R_{n-1}) P_n

    where ``(R_n, P_n)`` are recall and precision at the n-th distinct score, from the highest down, and
    ``R_0 = 0``. No interpolation: this is ``sklearn.metrics.average_precision_score`` for binary labels.
    Tied scores form one threshold, so their order does not matter.

    Args:
        y_true: binary labels (the positive class is ``pos_label``), any shape.
        scores: scores of the positive class, shaped like ``y_true``.
        pos_label: the label of the positive class.
        sample_weight: optional weight of each sample.

    Returns:
        AP in [0, 1]. With no positive sample it is undefined: scikit-learn warns and returns 0, and so does
        this function (with an :class:`UndefinedMetricWarning`).

    >>> average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.8333333333333333
    """
    positive, scores, sample_weight = _binary_inputs(y_true, scores, pos_label, sample_weight,
                                                     "average_precision")
    if scores.size == 0:
        raise ValueError("average_precision: no samples")
    fps, tps, _ = _binary_clf_curve(positive, scores, sample_weight)
    if tps[-1] == 0:
        warnings.warn("average_precision: no positive sample in y_true, average precision is undefined; "
                      "returning 0 as scikit-learn does", UndefinedMetricWarning, stacklevel=2)
    return _average_precision_sorted(fps, tps)


def _class_columns(scores, labels, num_classes, ignore_index):
    """Validate (N, C, ...) / (M, C) scores against (N, ...) / (M,) labels; yield each class's flat column."""
    scores = _as_numpy(scores)
    labels = _as_numpy(labels)
    if scores.ndim != labels.ndim + 1 or scores.shape[:1] + scores.shape[2:] != labels.shape:
        raise ValueError(f"average_precision_per_class: expected scores of shape (N, C, ...) for labels of "
                         f"shape (N, ...), got scores {scores.shape} and labels {labels.shape}")
    C = scores.shape[1]
    if num_classes is not None and num_classes != C:
        raise ValueError(f"average_precision_per_class: num_classes={num_classes} but scores have {C} "
                         f"classes (shape {scores.shape})")
    labels = labels.ravel()
    keep = None if ignore_index is None else labels != ignore_index
    if keep is not None:
        labels = labels[keep]
    for c in range(C):
        # One class at a time: a (N, H, W) copy of its scores, never the whole (N*H*W, C) matrix sorted.
        column = scores[:, c].ravel()
        if keep is not None:
            column = column[keep]
        yield c, labels == c, column


def average_precision_per_class(scores, labels, num_classes: int | None = None,
                                ignore_index: int | None = None) -> np.ndarray:
    """One-vs-rest average precision of each class, from per-sample (or per-pixel) class scores.

    Class ``c``'s AP is :func:`average_precision` of the binary problem "label == c" ranked by
    ``scores[:, c]``: what the seed reports compute with scikit-learn for segmentation. Every pixel of
    every image is one sample. Memory stays O(number of samples): classes are done one after another, each
    with one sort.

    Args:
        scores: ``(N, C, H, W)`` score maps (or ``(M, C)`` scores); logits or probabilities (AP depends only
            on the order of each class's scores, but softmax reorders them across pixels, so use the same
            kind as the numbers you compare with).
        labels: ``(N, H, W)`` (or ``(M,)``) true classes.
        num_classes: C, checked against ``scores`` when given.
        ignore_index: a label value whose pixels are left out.

    Returns:
        A float64 array of shape ``(C,)``; a class with no positive sample gets 0 (and a warning), as in
        scikit-learn.
    """
    ap = []
    for c, positive, column in _class_columns(scores, labels, num_classes, ignore_index):
        if column.size == 0:
            raise ValueError("average_precision_per_class: no samples")
        if not np.all(np.isfinite(column)):
            raise ValueError(f"average_precision_per_class: scores of class {c} contain NaN or infinity")
        fps, tps, _ = _binary_clf_curve(positive, column)
        if tps[-1] == 0:
            warnings.warn(f"average_precision_per_class: class {c} has no positive sample, its average "
                          "precision is undefined; counting it as 0 as scikit-learn does",
                          UndefinedMetricWarning, stacklevel=2)
        ap.append(_average_precision_sorted(fps, tps))
    return np.array(ap, dtype=np.float64)


def mean_average_precision(scores, labels, num_classes: int | None = None,
                           ignore_index: int | None = None) -> float:
    """The mean over classes of :func:`average_precision_per_class` (the reports' "mean AP")."""
    return float(average_precision_per_class(scores, labels, num_classes, ignore_index).mean())
