"""Every plotting function writes a non-empty PNG at the path it is given and returns that path."""
import numpy as np
import pytest

import minidl as mdl
from minidl.training import History
from minidl.viz import plots as P

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAMES = ["T-shirt", "Trouser", "Pullover", "Dress"]


def _check_png(path, expected):
    assert path == expected
    data = expected.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5000  # more than an empty canvas


def test_training_curves_from_history_mapping_and_object(tmp_path):
    columns = {"epoch": [1, 2, 3], "train_loss": [1.0, 0.7, 0.5], "val_loss": [1.1, 0.8, None],
               "train_acc": [0.5, 0.7, 0.8], "val_acc": [0.45, 0.6, 0.7]}
    out = tmp_path / "curves.png"
    _check_png(P.plot_training_curves(columns, out, reference_accuracy={"report: test": 0.8326}), out)

    history = History()
    history.append({"epoch": 1, "train_loss": 0.9, "train_acc": None, "val_loss": None, "val_acc": None})
    history.append({"epoch": 2, "train_loss": 0.4, "train_acc": None, "val_loss": None, "val_acc": None})
    out = tmp_path / "sub" / "loss_only.png"  # folders are created; no accuracy: one panel
    _check_png(P.plot_training_curves(history, out), out)


def test_loss_curve_with_reference(tmp_path):
    out = tmp_path / "loss.png"
    _check_png(P.plot_loss_curve([2000, 4000, 6000], [2.3, 1.9, 1.6], out,
                                 reference=([2000, 12000], [2.212, 1.280])), out)


def test_per_class_accuracy_with_reference_series(tmp_path, rng):
    out = tmp_path / "per_class.png"
    values = {"validation": rng.random(4), "test": mdl.tensor(rng.random(4))}
    reference = {"report (val)": [0.83, 0.98, 0.88, 0.87], "report (test)": [0.84, 0.98, 0.85, 0.87]}
    _check_png(P.plot_per_class_accuracy(values, out, NAMES, reference=reference), out)
    out = tmp_path / "nan.png"
    _check_png(P.plot_per_class_accuracy([0.5, float("nan"), 1.0, 0.2], out, NAMES), out)
    with pytest.raises(ValueError, match="class_names has 4 names but there are 3 classes"):
        P.plot_per_class_accuracy([0.1, 0.2, 0.3], tmp_path / "bad.png", NAMES)


@pytest.mark.parametrize("normalize", ["both", "none", "true"])
def test_confusion_matrix(tmp_path, normalize):
    cm = np.array([[5, 1, 0, 0], [0, 7, 1, 0], [2, 0, 4, 0], [0, 0, 0, 0]])  # class 3 absent: zero row
    out = tmp_path / f"cm_{normalize}.png"
    _check_png(P.plot_confusion_matrix(cm, out, NAMES, normalize=normalize), out)


def test_confusion_matrix_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="square"):
        P.plot_confusion_matrix(np.zeros((2, 3)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="normalize"):
        P.plot_confusion_matrix(np.zeros((2, 2)), tmp_path / "x.png", normalize="pred")


@pytest.mark.parametrize("layout", ["NCHW gray", "NHW", "NHWC uint8", "NCHW rgb normalised"])
def test_classified_examples(tmp_path, rng, layout):
    N = 40
    images = {"NCHW gray": rng.random((N, 1, 12, 12)).astype(np.float32),
              "NHW": rng.random((N, 12, 12)),
              "NHWC uint8": rng.integers(0, 256, (N, 12, 12, 3), dtype=np.uint8),
              "NCHW rgb normalised": rng.standard_normal((N, 3, 12, 12)).astype(np.float32)}[layout]
    targets = rng.integers(0, 4, N)
    scores = rng.random((N, 4))  # predictions given as scores
    out = tmp_path / "examples.png"
    _check_png(P.plot_classified_examples(images, targets, scores, out, NAMES, per_class=2), out)


@pytest.mark.parametrize("shape", [(32, 1, 3, 3), (6, 3, 5, 5), (4, 2, 3, 3)])
def test_filters(tmp_path, rng, shape):
    out = tmp_path / "filters.png"
    _check_png(P.plot_filters(mdl.tensor(rng.standard_normal(shape).astype(np.float32)), out), out)


def test_filters_of_a_conv_layer(tmp_path):
    nn = pytest.importorskip("minidl.nn")
    out = tmp_path / "conv1.png"
    _check_png(P.plot_filters(nn.Conv2d(1, 8, 3), out), out)
    with pytest.raises(ValueError, match=r"expected a \(O, C, KH, KW\) weight"):
        P.plot_filters(np.zeros((3, 3)), tmp_path / "bad.png")


def test_pr_curves_for_classification_and_segmentation(tmp_path, rng):
    labels = rng.integers(0, 4, 200)
    scores = rng.random((200, 4)) + 0.5 * np.eye(4)[labels]
    out = tmp_path / "pr.png"
    _check_png(P.plot_pr_curves(scores, labels, out, NAMES, reference_ap=[0.5, 0.6, 0.1, 0.7]), out)
    maps = rng.random((2, 5, 16, 16)).astype(np.float32)
    truth = rng.integers(0, 4, (2, 16, 16))  # class 4 never appears: drawn as a legend entry without curve
    out = tmp_path / "pr_seg.png"
    _check_png(P.plot_pr_curves(maps, truth, out, list(P.FACADE_CLASSES), max_points=50), out)


def test_segmentation_triplets(tmp_path, rng):
    images = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
    truth = rng.integers(0, 5, (3, 16, 16))
    scores = rng.random((3, 5, 16, 16))
    out = tmp_path / "seg.png"
    _check_png(P.plot_segmentation_triplets(images, scores, truth, out, max_rows=2), out)
    out = tmp_path / "seg_labels.png"
    _check_png(P.plot_segmentation_triplets(images.transpose(0, 2, 3, 1), truth, truth, out), out)
    with pytest.raises(ValueError, match="2 class names for 5 colours"):
        P.plot_segmentation_triplets(images, truth, truth, tmp_path / "bad.png", class_names=["a", "b"])


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plotting functions save, kept for inspection."""
    figures = []
    save = P._save

    def keep(fig, path):
        figures.append(fig)
        return save(fig, path)
    monkeypatch.setattr(P, "_save", keep)
    return figures


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_training_curves_draw_extra_columns_and_name_the_monitored_set(tmp_path, drawn):
    columns = {"epoch": [1, 2], "train_loss": [1.0, 0.7], "val_loss": [1.1, 0.8], "train_acc": [0.5, 0.7],
               "val_acc": [0.45, 0.6], "mean_recall": [0.44, 0.61]}
    P.plot_training_curves(columns, tmp_path / "c.png", reference_accuracy={"report": 0.7},
                           extra_columns={"mean_recall": "test mean recall"}, val_label="test")
    loss_ax, acc_ax = drawn[0].axes
    assert _legend(loss_ax) == ["train", "test"]
    assert _legend(acc_ax) == ["train", "test", "test mean recall", "report"]
    recall_line = acc_ax.get_lines()[2]
    assert list(recall_line.get_ydata()) == pytest.approx([44.0, 61.0])


def test_pr_curves_of_chosen_classes_only(tmp_path, rng, drawn):
    labels = rng.integers(0, 4, 200)
    scores = rng.random((200, 4)) + 0.5 * np.eye(4)[labels]
    P.plot_pr_curves(scores, labels, tmp_path / "pr.png", NAMES, only=[1], reference_ap=[0.5, 0.6, 0.1, 0.7])
    ax = drawn[0].axes[0]
    assert len(_legend(ax)) == 1 and _legend(ax)[0].startswith("Trouser (AP ")
    assert "\nAP " in ax.get_title() and "(report 0.600)" in ax.get_title()


def test_colorize_labels_paints_each_class_in_its_colour():
    labels = np.array([[0, 1, 2], [3, 4, 0]])
    rgb = P.colorize_labels(labels)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, 0], [0, 0, 0])       # others: black
    np.testing.assert_array_equal(rgb[0, 1], [0, 64, 255])    # facade: blue
    np.testing.assert_array_equal(rgb[1, 1], [230, 0, 0])     # balcony: red
    np.testing.assert_array_equal(P.colorize_labels(labels[None], [(1, 1, 1)] * 5)[0], np.full((2, 3, 3), 255))
    with pytest.raises(ValueError, match=r"colorize_labels: labels must lie in \[0, 5\), got values in \[0, 7\]"):
        P.colorize_labels(np.array([0, 7]))
