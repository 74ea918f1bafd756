"""A short real-data run of the main job: one epoch on 10,000 Fashion-MNIST images must learn.

The full run is a benchmark (see the README), not a test; this one checks that the whole path —
data, model, training loop, figures, report — works together on the real data set.
"""
import functools
import json
import os
import sys
from pathlib import Path

import pytest
from conftest import write_synthetic_mnist

from minidl.data.datasets import MNIST

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "fashion-mnist"
DATA = Path(os.environ["MINIDL_DATA"]) / "fashion-mnist" if os.environ.get("MINIDL_DATA") else SHARED

sys.path.insert(0, str(REPO / "experiments"))
import fashion_cnn  # noqa: E402


@pytest.mark.skipif(not (DATA / "train-images-idx3-ubyte.gz").exists(),
                    reason=f"the real Fashion-MNIST files are not in {DATA}")
def test_one_epoch_on_10000_images_learns(tmp_path):
    out = tmp_path / "run"
    # Small batches: the recipe for a short run (the defaults are tuned for the full 12 epochs).
    code = fashion_cnn.main(["--epochs", "1", "--train-subset", "10000", "--val-size", "1000", "--batch-size", "32",
                             "--lr", "0.002", "--data-dir", str(DATA), "--out", str(out),
                             "--no-progress"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_accuracy"] >= 0.80, summary
    assert len(summary["per_class_accuracy"]) == 10 and summary["epochs"] == 1
    for name in ("config.json", "metrics.csv", "checkpoint.npz", "report.md", "training_curves.png",
                 "per_class_accuracy.png", "confusion_matrix.png", "examples.png", "conv1_filters.png"):
        assert (out / name).stat().st_size > 0, name


def test_mnist_runs_unchanged(tmp_path, monkeypatch):
    # MNIST has Fashion-MNIST's IDX format; a tiny synthetic copy checks the --dataset mnist path end to end.
    # It is not the official data set, so the loader is told not to compare its content with it.
    monkeypatch.setitem(fashion_cnn.DATASETS, "mnist", functools.partial(MNIST, check_content=False))
    data = tmp_path / "mnist"
    data.mkdir()
    write_synthetic_mnist(data)
    out = tmp_path / "run"
    code = fashion_cnn.main(["--dataset", "mnist", "--epochs", "1", "--val-size", "50", "--batch-size", "32",
                             "--data-dir", str(data), "--out", str(out), "--no-progress"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "mnist" and 0.0 <= summary["test_accuracy"] <= 1.0
    assert (out / "report.md").read_text().startswith("# MNIST, report 001's network")


def test_tensorboard_events(tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX")
    monkeypatch.setitem(fashion_cnn.DATASETS, "mnist", functools.partial(MNIST, check_content=False))
    data = tmp_path / "mnist"
    data.mkdir()
    write_synthetic_mnist(data)
    logs = tmp_path / "tb"
    code = fashion_cnn.main(["--dataset", "mnist", "--epochs", "2", "--val-size", "50", "--data-dir", str(data),
                             "--out", str(tmp_path / "run"), "--tensorboard", str(logs), "--no-progress"])
    assert code == 0
    assert list(logs.glob("events.out.tfevents.*")) and (logs / "projector_config.pbtxt").is_file()
    assert len((logs / "00002" / "features" / "metadata.tsv").read_text().splitlines()) == 101  # header + 100
