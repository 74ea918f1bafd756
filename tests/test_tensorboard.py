"""minidl.utils.tensorboard: events written through tensorboardX, then read back from the files.

The event files are TFRecord files (per record: an 8-byte little-endian length, its masked CRC-32C, the bytes
of one ``Event`` protobuf, their masked CRC-32C). Neither tensorboardX nor PyTorch ships a reader without the
``tensorboard`` package, so :func:`read_summaries` walks the records itself, checks both checksums with
tensorboardX's own ``masked_crc32c`` and parses each with tensorboardX's ``Event`` protobuf class.
"""
from __future__ import annotations

import importlib
import math
import struct
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

import minidl as mdl
import minidl.nn as nn
from minidl.data import DataLoader, TensorDataset
from minidl.training import History

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASSES = ["T-shirt/top", "bag", "ankle boot"]


@pytest.fixture(scope="module")
def tb():
    """The module under test; every test that writes events skips where tensorboardX is not installed."""
    pytest.importorskip("tensorboardX")
    return importlib.import_module("minidl.utils.tensorboard")


def read_summaries(logdir) -> dict[str, list]:
    """``{tag: [(step, Summary.Value), ...]}`` from every event file directly in ``logdir``, in file order."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    found = defaultdict(list)
    files = sorted(Path(logdir).glob("events.out.tfevents.*"))
    assert files, f"no event file in {logdir}"
    for path in files:
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            header = data[pos:pos + 8]
            length, = struct.unpack("<Q", header)
            assert struct.unpack("<I", data[pos + 8:pos + 12])[0] == masked_crc32c(header)
            body = data[pos + 12:pos + 12 + length]
            assert struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])[0] == masked_crc32c(body)
            pos += 16 + length
            event = Event.FromString(body)
            if event.HasField("summary"):
                for value in event.summary.value:
                    found[value.tag].append((event.step, value))
    assert pos == len(data), "the last record is cut short"
    return dict(found)


def scalars(summaries, tag) -> list[tuple[int, float]]:
    return [(step, v.simple_value) for step, v in summaries[tag]]


def small_classifier():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 6), nn.ReLU(),
                         nn.Linear(6, len(CLASSES)))


# ------------------------------------------------------------------------------------------ the writer
def test_writer_takes_minidl_tensors(tb, tmp_path, rng, device):
    values = rng.standard_normal(500).astype(np.float32)
    image = rng.random((3, 8, 8)).astype(np.float32)
    with tb.SummaryWriter(tmp_path) as writer:
        for step, loss in enumerate([2.5, 1.25, 0.5]):
            writer.add_scalar("loss", mdl.tensor(loss, device=device), step)
        writer.add_scalars("acc", {"train": mdl.tensor(0.75, device=device), "val": 0.5}, 3)
        writer.add_histogram("weights", mdl.tensor(values, device=device), 1)
        writer.add_image("image", mdl.tensor(image, device=device), 1)
        writer.add_images("batch", mdl.tensor(np.stack([image, image]), device=device), 1)
        writer.add_images("list", [mdl.tensor(image, device=device)] * 3, 1, dataformats="CHW")
        writer.add_pr_curve("pr", mdl.tensor(np.array([0, 1, 1, 0]), device=device),
                            mdl.tensor(np.array([0.1, 0.9, 0.6, 0.4]), device=device), 1)
        writer.add_text("note", "hello", 1)
        writer.add_embedding(mdl.tensor(rng.standard_normal((4, 2)), device=device),
                             metadata=mdl.tensor(np.array([3, 1, 4, 1]), device=device), global_step=2)
    s = read_summaries(tmp_path)
    assert scalars(s, "loss") == [(0, 2.5), (1, 1.25), (2, 0.5)]
    assert scalars(read_summaries(tmp_path / "acc" / "train"), "acc") == [(3, 0.75)]
    assert scalars(read_summaries(tmp_path / "acc" / "val"), "acc") == [(3, 0.5)]
    histo = s["weights"][0][1].histo
    assert histo.num == 500 and histo.min == pytest.approx(values.min()) and histo.max == pytest.approx(values.max())
    assert sum(histo.bucket) == 500
    for tag, width in (("image", 8), ("batch", 16), ("list", 24)):  # a batch is one grid, side by side
        img = s[tag][0][1].image
        assert img.encoded_image_string.startswith(PNG_SIGNATURE) and (img.height, img.width) == (8, width)
    assert s["pr"][0][1].metadata.plugin_data.plugin_name == "pr_curves"
    assert s["note/text_summary"][0][1].tensor.string_val == [b"hello"]
    assert (tmp_path / "00002" / "default" / "metadata.tsv").read_text().split() == ["3", "1", "4", "1"]


def test_add_graph_logs_a_picture_and_the_dot_text(tb, tmp_path, rng):
    model = small_classifier()
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    with tb.SummaryWriter(tmp_path) as writer:
        dot = writer.add_graph(model, x)  # a NumPy input is made a Tensor
    assert model.training, "the model is given back in training mode"
    assert dot.startswith("digraph") and "0.weight" in dot and "5.bias" in dot
    s = read_summaries(tmp_path)
    image = s["graph"][0][1].image
    assert image.encoded_image_string.startswith(PNG_SIGNATURE) and image.height > 100 and image.width > 100
    text = s["graph/text_summary"][0][1].tensor.string_val[0].decode()
    assert text.splitlines() == ["    " + line for line in dot.rstrip("\n").splitlines()]


def test_add_graph_needs_an_input(tb, tmp_path):
    with tb.SummaryWriter(tmp_path) as writer, pytest.raises(ValueError, match="input_to_model"):
        writer.add_graph(small_classifier())


# ------------------------------------------------------------------------------------------ helpers
def test_log_history_writes_every_column_at_its_epoch(tb, tmp_path):
    history = History([
        {"epoch": 1, "lr": 0.1, "train_loss": 2.0, "train_acc": 0.25, "val_loss": 1.5, "val_acc": 0.5,
         "mean_ap": 0.375, "train_seconds": 3.0, "seconds": 4.0, "images_per_s": 100.0},
        {"epoch": 2, "lr": 0.05, "train_loss": 1.0, "train_acc": 0.5, "val_loss": None, "val_acc": float("nan"),
         "mean_ap": 0.625, "train_seconds": 3.5, "seconds": 4.5, "images_per_s": 120.0},
    ], batch_losses=[{"epoch": 1, "batch": 2, "step": 2, "loss": 2.25}, {"epoch": 2, "batch": 2, "step": 4,
                                                                          "loss": 1.125}])
    with tb.SummaryWriter(tmp_path) as writer:
        tags = tb.log_history(writer, history)
    s = read_summaries(tmp_path)
    assert sorted(s) == tags == sorted(["lr", "loss/train", "accuracy/train", "loss/val", "accuracy/val",
                                        "metrics/mean_ap", "time/train_seconds", "time/epoch_seconds",
                                        "time/images_per_s", "loss/train_running"])
    assert scalars(s, "loss/train") == [(1, 2.0), (2, 1.0)]
    assert scalars(s, "accuracy/train") == [(1, 0.25), (2, 0.5)]
    assert scalars(s, "loss/val") == [(1, 1.5)]  # None and NaN are left out
    assert scalars(s, "accuracy/val") == [(1, 0.5)]
    assert [(step, pytest.approx(v)) for step, v in scalars(s, "lr")] == [(1, 0.1), (2, 0.05)]
    assert scalars(s, "metrics/mean_ap") == [(1, 0.375), (2, 0.625)]
    assert scalars(s, "time/images_per_s") == [(1, 100.0), (2, 120.0)]
    assert scalars(s, "loss/train_running") == [(2, 2.25), (4, 1.125)]


def test_log_parameters_histograms_weights_and_gradients(tb, tmp_path, rng):
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    model(mdl.tensor(rng.standard_normal((5, 4)).astype(np.float32))).sum().backward()
    model[2].bias.grad = None  # a parameter without gradient gets no grads/ histogram
    with tb.SummaryWriter(tmp_path) as writer:
        tb.log_parameters(writer, model, 7)
    s = read_summaries(tmp_path)
    assert sorted(s) == ["grads/0.bias", "grads/0.weight", "grads/2.weight", "weights/0.bias", "weights/0.weight",
                         "weights/2.bias", "weights/2.weight"]
    step, value = s["weights/0.weight"][0]
    assert step == 7 and value.histo.num == 12


def test_penultimate_features_are_the_input_of_the_last_linear(tb, rng):
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    x = rng.standard_normal((23, 4)).astype(np.float32)
    W, b = model[0].weight.numpy(), model[0].bias.numpy()
    expected = np.maximum(x @ W.T + b, 0)
    np.testing.assert_allclose(tb.penultimate_features(model, mdl.tensor(x)), expected, rtol=1e-5, atol=1e-6)
    loader = DataLoader(TensorDataset(mdl.tensor(x), mdl.tensor(np.zeros(23, dtype=np.int64))), batch_size=7)
    features = tb.penultimate_features(model, loader, limit=10)
    np.testing.assert_allclose(features, expected[:10], rtol=1e-5, atol=1e-6)
    assert model.training
    np.testing.assert_allclose(tb.penultimate_features(model, x, layer=model[1]), x @ W.T + b, rtol=1e-5,
                               atol=1e-6)


def test_log_classifier_writes_pr_curves_predictions_graph_and_projector(tb, tmp_path, rng):
    N, n_embedded = 120, 100
    model = small_classifier()
    images = rng.random((N, 3, 8, 8)).astype(np.float32)
    targets = rng.integers(0, len(CLASSES), N)
    with mdl.no_grad():
        scores = model(mdl.tensor(images))
    features = tb.penultimate_features(model, images)
    with tb.SummaryWriter(tmp_path) as writer:
        tags = tb.log_classifier(writer, scores=scores, targets=mdl.tensor(targets), class_names=CLASSES, step=2,
                                 images=images, features=features, model=model, example_input=images[:1],
                                 max_embedding=n_embedded)
    pr_tags = ["pr_curve/T-shirt_top", "pr_curve/bag", "pr_curve/ankle_boot"]
    assert tags == pr_tags + ["predictions", "graph", "projector/features"]
    s = read_summaries(tmp_path)
    assert set(s) == set(pr_tags) | {"predictions", "graph", "graph/text_summary"}

    for c, tag in enumerate(pr_tags):
        (step, value), = s[tag]
        assert step == 2 and value.metadata.plugin_data.plugin_name == "pr_curves"
        dims = [d.size for d in value.tensor.tensor_shape.dim]
        curve = np.array(value.tensor.float_val).reshape(dims)  # rows: TP, FP, TN, FN, precision, recall
        assert dims == [6, 127]
        positives = int(np.sum(targets == c))
        assert (curve[0, 0], curve[1, 0]) == (positives, N - positives)  # the lowest threshold takes every sample
        assert np.all(curve[0] + curve[3] == positives)

    for tag in ("predictions", "graph"):
        (step, value), = s[tag]
        assert value.image.encoded_image_string.startswith(PNG_SIGNATURE) and value.image.height > 100

    config = (tmp_path / "projector_config.pbtxt").read_text()
    assert 'tensor_path: "00002/features/tensors.tsv"' in config and "single_image_dim: 8" in config
    folder = tmp_path / "00002" / "features"
    rows = (folder / "tensors.tsv").read_text().splitlines()
    assert len(rows) == n_embedded
    np.testing.assert_allclose(np.array([r.split("\t") for r in rows], dtype=np.float32), features[:n_embedded],
                               rtol=1e-6)
    metadata = (folder / "metadata.tsv").read_text().splitlines()
    assert len(metadata) == n_embedded + 1 and metadata[0] == "label\tpredicted"
    predicted = scores.numpy().argmax(axis=1)
    assert metadata[1:] == [f"{CLASSES[t]}\t{CLASSES[p]}" for t, p in zip(targets, predicted)][:n_embedded]
    from PIL import Image
    with Image.open(folder / "sprite.png") as sprite:
        assert sprite.size == (8 * math.ceil(math.sqrt(n_embedded)),) * 2  # square: 10 x 10 thumbnails


def test_log_classifier_checks_its_inputs(tb, tmp_path, rng):
    scores, targets = rng.standard_normal((10, 3)), rng.integers(0, 3, 10)
    with tb.SummaryWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match="2 class names for 3 classes"):
            tb.log_classifier(writer, scores=scores, targets=targets, class_names=["a", "b"], step=0)
        with pytest.raises(ValueError, match="both model and example_input"):
            tb.log_classifier(writer, scores=scores, targets=targets, class_names=CLASSES, step=0,
                              model=small_classifier())
        with pytest.raises(ValueError, match="only 4 images"):
            tb.log_classifier(writer, scores=scores, targets=targets, class_names=CLASSES, step=0,
                              images=rng.random((4, 8, 8)), features=rng.standard_normal((10, 2)))


# ------------------------------------------------------------------------------------------ without tensorboardX
def test_missing_tensorboardx_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # makes `import tensorboardX` fail
    monkeypatch.delitem(sys.modules, "minidl.utils.tensorboard", raising=False)
    with pytest.raises(ImportError, match=r'needs tensorboardX: pip install "minidl\[tensorboard\]"'):
        importlib.import_module("minidl.utils.tensorboard")


def test_log_segmentation_writes_pixel_pr_curves_pictures_and_graph(tb, tmp_path, rng):
    from minidl.viz import FACADE_CLASSES, FACADE_COLORS
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1))
    photos = rng.integers(0, 256, size=(4, 6, 7, 3), dtype=np.uint8)
    x = mdl.tensor((photos / 255).transpose(0, 3, 1, 2).astype(np.float32))
    with mdl.no_grad():
        scores = model(x)
    targets = rng.integers(0, 5, size=(4, 6, 7))
    with tb.SummaryWriter(tmp_path) as writer:
        tags = tb.log_segmentation(writer, scores=scores, targets=targets, class_names=FACADE_CLASSES, step=3,
                                   images=photos[[1, 3]], image_indices=[1, 3], model=model, example_input=x[:1],
                                   max_pixels=100)
    assert tags == [f"pr_curve/{c}" for c in FACADE_CLASSES] + ["segmentation", "graph"]
    s = read_summaries(tmp_path)
    (step, value), = s["pr_curve/window"]
    curve = np.array(value.tensor.float_val).reshape(6, 127)
    assert step == 3 and curve[0, 0] + curve[1, 0] == 100  # a sample of 100 of the 168 pixels
    (step, value), = s["segmentation"]
    assert (value.image.height, value.image.width) == (2 * 6, 3 * 7)  # two rows: photo | prediction | truth
    from PIL import Image
    import io
    picture = np.asarray(Image.open(io.BytesIO(value.image.encoded_image_string)))
    np.testing.assert_array_equal(picture[6:, :7], photos[3])
    palette = np.round(255 * np.asarray(FACADE_COLORS)).astype(np.uint8)
    np.testing.assert_array_equal(picture[:6, 14:], palette[targets[1]])
    np.testing.assert_array_equal(picture[:6, 7:14], palette[scores.numpy()[1].argmax(axis=0)])
    with pytest.raises(ValueError, match=r"expected \(N, C, H, W\) scores and \(N, H, W\) targets"):
        tb.log_segmentation(writer, scores=scores, targets=targets[:, :5], class_names=FACADE_CLASSES, step=0)
