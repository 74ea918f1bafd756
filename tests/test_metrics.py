"""Metrics: every expected value below is worked out by hand in the comments (scikit-learn is not installed;
where a number is scikit-learn's, its documented example is quoted)."""
import numpy as np
import pytest

import minidl as mdl
from minidl import metrics as M

# Six samples of three classes, and a fourth class that appears nowhere.
TARGET = np.array([0, 0, 1, 2, 2, 2])
PRED = np.array([0, 1, 1, 2, 0, 2])
# Rows = true class, columns = predicted class:
#   true 0: predicted 0 once, 1 once          -> [1, 1, 0, 0]
#   true 1: predicted 1 once                  -> [0, 1, 0, 0]
#   true 2: predicted 2 twice, 0 once         -> [1, 0, 2, 0]
#   true 3: none                              -> [0, 0, 0, 0]
CM = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])


def _one_hot_scores(labels, C, rng):
    """Scores whose arg-max over axis 1 is ``labels``: noise in [0, 1), plus 2 at the label."""
    scores = rng.random((len(labels), C))
    scores[np.arange(len(labels)), labels] += 2.0
    return scores


def test_accuracy_from_labels_scores_and_tensors(rng):
    # 4 of the 6 predictions are right.
    assert M.accuracy(PRED, TARGET) == pytest.approx(4 / 6)
    scores = _one_hot_scores(PRED, 3, rng)
    assert M.accuracy(scores, TARGET) == pytest.approx(4 / 6)
    assert M.accuracy(mdl.tensor(scores), mdl.tensor(TARGET)) == pytest.approx(4 / 6)


def test_accuracy_of_segmentation_scores_counts_pixels(rng):
    # (N, C, H, W) scores against (N, H, W) targets: the arg-max over axis 1 is compared pixel by pixel.
    target = rng.integers(0, 3, size=(2, 4, 5))
    pred = np.where(rng.random(target.shape) < 0.6, target, (target + 1) % 3)
    scores = rng.random((2, 3, 4, 5))
    np.put_along_axis(scores, pred[:, None], 5.0, axis=1)
    assert M.accuracy(scores, target) == pytest.approx(np.mean(pred == target))


def test_accuracy_ignore_index():
    # The two samples labelled 255 are left out: 2 right of the remaining 3.
    assert M.accuracy([0, 1, 2, 0, 1], [0, 1, 255, 1, 255], ignore_index=255) == pytest.approx(2 / 3)


def test_confusion_matrix_rows_are_true_classes_and_unpredicted_class_is_zero():
    cm = M.confusion_matrix(PRED, TARGET, num_classes=4)
    np.testing.assert_array_equal(cm, CM)
    assert cm.dtype == np.int64


def test_confusion_matrix_rejects_labels_out_of_range():
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 2\)"):
        M.confusion_matrix([0, 1], [0, 2], num_classes=2)


def test_precision_recall_by_hand():
    precision, recall = M.precision_recall(PRED, TARGET, num_classes=4)
    # precision = diagonal / column sums: 1/2, 1/2, 2/2; class 3 never predicted -> 0/0 -> 0 (scikit-learn's).
    np.testing.assert_allclose(precision, [0.5, 0.5, 1.0, 0.0])
    # recall = diagonal / row sums: 1/2, 1/1, 2/3; class 3 never present -> 0.
    np.testing.assert_allclose(recall, [0.5, 1.0, 2 / 3, 0.0])
    precision, recall = M.precision_recall(PRED, TARGET, num_classes=4, zero_division=float("nan"))
    assert np.isnan(precision[3]) and np.isnan(recall[3])


def test_per_class_accuracy_and_mean_recall():
    # Per-class accuracy is the recall; a class absent from the targets is nan, and left out of the mean.
    np.testing.assert_allclose(M.per_class_accuracy(PRED, TARGET, 4), [0.5, 1.0, 2 / 3, np.nan])
    assert M.mean_per_class_recall(PRED, TARGET, 4) == pytest.approx((0.5 + 1.0 + 2 / 3) / 3)


def test_mean_recall_differs_from_accuracy_on_imbalanced_classes():
    # 9 samples of class 0 all right, 1 sample of class 1 wrong: accuracy 0.9, mean recall (1 + 0) / 2.
    target = np.array([0] * 9 + [1])
    pred = np.zeros(10, dtype=np.int64)
    assert M.accuracy(pred, target) == pytest.approx(0.9)
    assert M.mean_per_class_recall(pred, target, 2) == pytest.approx(0.5)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="do not match"):
        M.accuracy(np.zeros((3, 2, 2)), np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError, match="integer class labels"):
        M.accuracy(np.array([0.5, 1.0]), np.array([0, 1]))


# ----------------------------------------------------------------------------------- ranking
def test_average_precision_scikit_learn_doc_example():
    # scikit-learn's docstring: y = [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8].
    # Descending: 0.8 (+) P=1 R=1/2; 0.4 (-) P=1/2 R=1/2; 0.35 (+) P=2/3 R=1; 0.1 (-) P=1/2 R=1.
    # AP = 1/2 * 1 + 0 + 1/2 * 2/3 + 0 = 5/6.
    assert M.average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(5 / 6, abs=1e-15)
    precision, recall, thresholds = M.precision_recall_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    np.testing.assert_allclose(precision, [0.5, 2 / 3, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(recall, [1.0, 1.0, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(thresholds, [0.1, 0.35, 0.4, 0.8])


def test_precision_recall_curve_with_ties_by_hand():
    y = np.array([0, 1, 1, 0, 1])
    s = np.array([0.9, 0.8, 0.8, 0.3, 0.1])
    # Thresholds from the top: 0.9: TP 0 FP 1 (P 0, R 0); 0.8 (two tied positives, one threshold): TP 2 FP 1
    # (P 2/3, R 2/3); 0.3: TP 2 FP 2 (P 1/2, R 2/3); 0.1: TP 3 FP 2 (P 3/5, R 1).
    precision, recall, thresholds = M.precision_recall_curve(y, s)
    np.testing.assert_allclose(thresholds, [0.1, 0.3, 0.8, 0.9])
    np.testing.assert_allclose(precision, [3 / 5, 1 / 2, 2 / 3, 0.0, 1.0])
    np.testing.assert_allclose(recall, [1.0, 2 / 3, 2 / 3, 0.0, 0.0])
    # AP = (2/3 - 0) * 2/3 + 0 * 1/2 + (1 - 2/3) * 3/5 = 4/9 + 1/5.
    assert M.average_precision(y, s) == pytest.approx(4 / 9 + 1 / 5, abs=1e-15)


def test_tied_scores_form_one_threshold_whatever_their_order():
    # Three samples tied at 0.5 (two positives, one negative), then a negative at 0.2.
    # One threshold at 0.5: P = 2/3, R = 1, so AP = 2/3. Breaking the tie positives-first would give 1.
    for order in ([0, 1, 2, 3], [2, 1, 0, 3], [1, 0, 2, 3]):
        y = np.array([1, 0, 1, 0])[order]
        s = np.array([0.5, 0.5, 0.5, 0.2])[order]
        assert M.average_precision(y, s) == pytest.approx(2 / 3, abs=1e-15)


def test_average_precision_extremes():
    # Every positive ranked first: P = 1 at every recall step.
    assert M.average_precision([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == 1.0
    # Every positive ranked last: steps of 1/2 at P = 1/3 and 2/4.
    assert M.average_precision([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(0.5 / 3 + 0.5 * 2 / 4)
    # No positive: undefined; scikit-learn warns and returns 0.
    with pytest.warns(M.UndefinedMetricWarning):
        assert M.average_precision([0, 0, 0], [0.3, 0.2, 0.1]) == 0.0


def test_pos_label_and_sample_weight():
    # pos_label picks the positive class among any two labels.
    assert M.average_precision(["b", "b", "a", "a"], [0.1, 0.4, 0.35, 0.8], pos_label="a") == pytest.approx(5 / 6)
    # Integer weights act like repeated samples.
    y = np.array([0, 1, 1, 0, 1])
    s = np.array([0.9, 0.8, 0.7, 0.3, 0.1])
    w = np.array([2, 1, 3, 1, 2])
    assert M.average_precision(y, s, sample_weight=w) == pytest.approx(
        M.average_precision(np.repeat(y, w), np.repeat(s, w)), abs=1e-15)


def test_drop_intermediate_drops_points_on_flat_stretches():
    y = np.array([1, 1, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    # TP counts from the top: 1, 2, 3, 3, 3. The point at 0.6 has the same TP count on both sides: dropped.
    precision, recall, thresholds = M.precision_recall_curve(y, s, drop_intermediate=True)
    np.testing.assert_allclose(thresholds, [0.5, 0.7, 0.8, 0.9])
    np.testing.assert_allclose(precision, [3 / 5, 1.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(recall, [1.0, 1.0, 2 / 3, 1 / 3, 0.0])


def _average_precision_by_definition(y, s):
    """AP = sum over distinct thresholds t, from the highest down, of (R(t) - R(previous)) * P(t)."""
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        chosen = s >= t
        tp = np.sum(chosen & (y == 1))
        precision, recall = tp / np.sum(chosen), tp / np.sum(y == 1)
        ap += (recall - prev_recall) * precision
        prev_recall = recall
    return ap


@pytest.mark.parametrize("case", range(4))
def test_average_precision_matches_its_definition_on_random_tied_scores(case, rng):
    n = int(rng.integers(5, 60))
    y = (rng.random(n) < 0.4).astype(np.int64)
    y[0] = 1
    s = np.round(rng.random(n), 1)  # one decimal: many ties
    assert M.average_precision(y, s) == pytest.approx(_average_precision_by_definition(y, s), abs=1e-12)


def test_average_precision_per_class_by_hand():
    # M = 5 samples, C = 2 classes.
    labels = np.array([0, 1, 1, 0, 1])
    scores = np.stack([[0.1, 0.2, 0.3, 0.4, 0.5],          # class 0
                       [0.9, 0.8, 0.8, 0.3, 0.1]], axis=1)  # class 1 (the tied case above)
    # Class 0, positives at samples 0 and 3. Descending: 0.5 (-) P 0; 0.4 (+) P 1/2 R 1/2; 0.3 (-), 0.2 (-);
    # 0.1 (+) P 2/5 R 1. AP = 1/2 * 1/2 + 1/2 * 2/5 = 0.45.
    expected = [0.45, 4 / 9 + 1 / 5]
    np.testing.assert_allclose(M.average_precision_per_class(scores, labels), expected, atol=1e-15)
    # The same numbers as a (N=1, C=2, H=1, W=5) score map.
    maps = scores.T.reshape(1, 2, 1, 5)
    np.testing.assert_allclose(M.average_precision_per_class(maps, labels.reshape(1, 1, 5), num_classes=2),
                               expected, atol=1e-15)
    assert M.mean_average_precision(maps, labels.reshape(1, 1, 5)) == pytest.approx(np.mean(expected))


def test_average_precision_per_class_ignore_index_and_absent_class():
    labels = np.array([0, 1, 255, 0, 1])
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [5.0, 5.0, 5.0], [0.7, 0.3, 0.0], [0.4, 0.6, 0.0]])
    # Without the ignored sample, classes 0 and 1 are ranked perfectly (AP 1); class 2 has no positive (0).
    with pytest.warns(M.UndefinedMetricWarning, match="class 2"):
        ap = M.average_precision_per_class(scores, labels, ignore_index=255)
    np.testing.assert_allclose(ap, [1.0, 1.0, 0.0])


def test_average_precision_per_class_matches_binary_function_on_score_maps(rng):
    N, C, H, W = 3, 4, 6, 7
    scores = np.round(rng.standard_normal((N, C, H, W)), 1).astype(np.float32)  # float32 with ties
    labels = rng.integers(0, C, size=(N, H, W))
    ap = M.average_precision_per_class(mdl.tensor(scores), labels)
    for c in range(C):
        assert ap[c] == M.average_precision(labels.ravel() == c, scores[:, c].ravel())


def test_average_precision_per_class_shape_errors():
    with pytest.raises(ValueError, match=r"expected scores of shape \(N, C, ...\)"):
        M.average_precision_per_class(np.zeros((2, 3, 4, 4)), np.zeros((2, 4, 5), dtype=np.int64))
    with pytest.raises(ValueError, match="num_classes=5"):
        M.average_precision_per_class(np.zeros((2, 3)), np.zeros(2, dtype=np.int64), num_classes=5)


def test_iou_per_class_counts_intersection_over_union(rng):
    target = rng.integers(0, 4, size=(3, 9, 7))
    scores = rng.standard_normal((3, 4, 9, 7))
    pred = scores.argmax(axis=1)
    expected = [np.sum((pred == c) & (target == c)) / np.sum((pred == c) | (target == c)) for c in range(4)]
    np.testing.assert_allclose(M.iou_per_class(scores, target, 4), expected, rtol=1e-12)
    np.testing.assert_allclose(M.iou_per_class(pred, target, 4), expected, rtol=1e-12)
    assert M.mean_iou(scores, target, 4) == pytest.approx(np.mean(expected))


def test_iou_of_a_class_neither_present_nor_predicted_is_nan():
    iou = M.iou_per_class([0, 0, 1], [0, 1, 1], 3)
    np.testing.assert_allclose(iou[:2], [1 / 2, 1 / 2])
    assert np.isnan(iou[2])
    assert M.mean_iou([0, 0, 1], [0, 1, 1], 3) == pytest.approx(0.5)
    assert M.iou_per_class([2, 2], [0, 0], 3)[0] == 0.0  # present, never predicted
