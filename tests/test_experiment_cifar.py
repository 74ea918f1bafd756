"""Smoke runs of the CIFAR-10 experiments of reports 003 and 004: a few steps on a tiny CIFAR-10, the run folder
complete, the loss going down, the sweep and its resume, the TensorBoard flag, the flags refused.

The full runs are benchmarks (see the README); these check that each script's whole path works. One test
runs LeNet on 2,000 real CIFAR-10 images when ../shared/data is there.
"""
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_cifar_folder

from minidl.data.datasets import CIFAR10

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "cifar-10"
REAL = Path(os.environ["MINIDL_DATA"]) / "cifar-10" if os.environ.get("MINIDL_DATA") else SHARED

sys.path.insert(0, str(REPO / "experiments"))
import cifar_cnn  # noqa: E402
import lenet_cifar  # noqa: E402
import vgg16_cifar  # noqa: E402

COMMON_FILES = ("config.json", "metrics.csv", "checkpoint.npz", "model_summary.txt", "report.md", "summary.json",
                "training_curves.png", "per_class_recall.png", "confusion_matrix.png", "pr_curves.png",
                "examples.png")
SUMMARY_KEYS = ("test_accuracy", "mean_recall", "per_class_accuracy", "epochs", "train_seconds", "wall_seconds")


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
    """A learnable CIFAR-10 of 100 images per batch file: 500 training, 100 test images."""
    root = tmp_path_factory.mktemp("cifar") / "cifar-10"
    write_cifar_folder(root, np.random.default_rng(0), per_file=100, learnable=True)
    return root


@pytest.fixture(autouse=True)
def small_files(monkeypatch):
    monkeypatch.setattr(CIFAR10, "records_per_file", None)


def train_losses(out: Path) -> list[float]:
    with open(out / "metrics.csv") as f:
        return [float(row["train_loss"]) for row in csv.DictReader(f)]


def check_run(out: Path, extra=()) -> dict:
    for name in COMMON_FILES + tuple(extra):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    for key in SUMMARY_KEYS:
        assert key in summary, key
    assert len(summary["per_class_accuracy"]) == 10
    assert abs(summary["mean_recall"] - np.nanmean(summary["per_class_accuracy"])) < 1e-9
    losses = train_losses(out)
    assert losses[-1] < losses[0], losses
    return summary


def test_cifar_cnn_best_variant_learns(tiny_cifar, tmp_path):
    out = tmp_path / "best"
    code = cifar_cnn.main(["--variant", "best", "--epochs", "3", "--batch-size", "50", "--lr", "0.02",
                           "--data-dir", str(tiny_cifar), "--out", str(out), "--no-progress"])
    assert code == 0
    summary = check_run(out)
    assert summary["variant"] == "best" and summary["epochs"] == 3
    config = json.loads((out / "config.json").read_text())
    assert config["filters"] == [64, 128, 256] and config["activation"] == "leaky" and config["batch_norm"]
    assert config["dropout"] == 0.3 and config["shuffle"] is False and config["schedule"] == "onecycle"
    report = (out / "report.md").read_text()
    assert "0.7487" in report and "| **best** |" in report


def test_cifar_cnn_default_net_matches_figure_1_and_report_recipe(tiny_cifar, tmp_path):
    out = tmp_path / "default"
    code = cifar_cnn.main(["--recipe", "report", "--epochs", "2", "--lr", "0.05", "--data-dir", str(tiny_cifar),
                           "--out", str(out), "--no-progress"])
    assert code == 0
    check_run(out)
    config = json.loads((out / "config.json").read_text())
    assert (config["batch_size"], config["momentum"], config["normalize"], config["augment"]) == (64, 0.0, "report",
                                                                                                  "none")
    table = (out / "model_summary.txt").read_text()
    assert "Total params: 256,058" in table and "[-1, 96, 2, 2]" in table
    assert "Report 003's Figure 1, for comparison" in (out / "report.md").read_text()


def test_cifar_cnn_sweep_and_its_resume(tiny_cifar, tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["--sweep", "--epochs", "1", "--train-subset", "100", "--data-dir", str(tiny_cifar),
            "--out", str(out), "--no-progress"]
    assert cifar_cnn.main(args) == 0
    for name in cifar_cnn.VARIANTS:
        assert (out / name / "summary.json").is_file(), name
    comparison = (out / "comparison.md").read_text()
    assert all(f"| {name} |" in comparison for name in cifar_cnn.VARIANTS)
    assert (out / "comparison.png").stat().st_size > 0
    assert json.loads((out / "batch256" / "config.json").read_text())["batch_size"] == 256
    assert json.loads((out / "lr0.1" / "config.json").read_text())["lr"] == 0.1
    # A second sweep into the folder is refused; --resume keeps the finished variants and reruns the missing one.
    assert cifar_cnn.main(args) == 2
    assert "already holds a sweep" in capsys.readouterr().err
    (out / "shuffle" / "summary.json").unlink()
    (out / "shuffle" / "checkpoint.npz").unlink()
    (out / "shuffle" / "config.json").unlink()
    for f in (out / "shuffle").iterdir():
        f.unlink()
    assert cifar_cnn.main(args + ["--resume"]) == 0
    printed = capsys.readouterr().out
    assert "variant default finished before" in printed and "=== variant shuffle" in printed
    assert (out / "shuffle" / "summary.json").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--sweep", "--variant", "best"], "--sweep runs every variant"),
    (["--momentum", "0", "--nesterov"], "Nesterov momentum needs a --momentum above 0"),
    (["--kernels", "9", "9", "9"], "leave no pixel"),
    (["--optimizer", "adam", "--momentum", "0.5"], "only --optimizer sgd has them"),
])
def test_cifar_cnn_refuses_contradictions(tiny_cifar, tmp_path, capsys, argv, message):
    code = cifar_cnn.main(argv + ["--data-dir", str(tiny_cifar), "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run" / "summary.json").exists()


def test_lenet_report_recipe_logs_every_n_batches_and_writes_the_report_figures(tiny_cifar, tmp_path, capsys):
    out = tmp_path / "lenet"
    code = lenet_cifar.main(["--recipe", "report", "--epochs", "2", "--log-every", "25", "--lr", "0.005",
                             "--data-dir", str(tiny_cifar), "--out", str(out), "--no-progress"])
    assert code == 0
    check_run(out, extra=("per_class_accuracy.txt", "loss_curve.png", "pr_curve_car.png", "pr_curve_cat.png"))
    printed = capsys.readouterr()
    assert "[epoch 1, batch 25] loss" in printed.err + printed.out
    lines = (out / "per_class_accuracy.txt").read_text().splitlines()
    assert len(lines) == 10 and lines[0].startswith("Accuracy of plane : ") and lines[0].endswith(" %")
    report = (out / "report.md").read_text()
    assert "| [1, 25] |" in report and "Accuracy of truck : " in report


def test_vgg16_runs_and_explains_the_report(tiny_cifar, tmp_path):
    out = tmp_path / "vgg"
    code = vgg16_cifar.main(["--epochs", "2", "--batch-size", "50", "--train-subset", "200", "--data-dir",
                             str(tiny_cifar), "--out", str(out), "--no-progress"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"] == 10_195_786 and summary["epochs"] == 2
    report = (out / "report.md").read_text()
    assert "Why the report's VGG-16 run failed" in report
    rows = [line for line in report.splitlines() if line.startswith("| pytorch |") or line.startswith("| kaiming |")]
    grads = [float(r.split("|")[3]) for r in rows]
    assert grads[0] < 1e-3 * grads[1], rows  # PyTorch's default init starves conv1_1 of gradient
    config = json.loads((out / "config.json").read_text())
    assert config["init"] == "kaiming"


def test_vgg16_report_recipe_trains_2000_batches_per_epoch(tiny_cifar, tmp_path):
    out = tmp_path / "vgg_report"
    code = vgg16_cifar.main(["--recipe", "report", "--epochs", "1", "--batches-per-epoch", "3", "--log-every", "3",
                             "--train-subset", "40", "--data-dir", str(tiny_cifar), "--out", str(out),
                             "--no-progress"])
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["batches_per_epoch"] == 3 and config["data"]["batches_per_epoch"] == 3
    assert config["batch_size"] == 4 and config["lr"] == 0.0001
    metrics = (out / "metrics.csv").read_text().splitlines()
    assert float(metrics[1].split(",")[-1]) * float(metrics[1].split(",")[-3]) == pytest.approx(12, rel=0.01)


def test_tensorboard_flag_writes_events(tiny_cifar, tmp_path):
    pytest.importorskip("tensorboardX")
    out, logs = tmp_path / "run", tmp_path / "tb"
    code = lenet_cifar.main(["--epochs", "1", "--batch-size", "50", "--data-dir", str(tiny_cifar), "--out", str(out),
                             "--tensorboard", str(logs), "--no-progress"])
    assert code == 0
    assert list(logs.glob("events.out.tfevents.*"))
    assert (logs / "projector_config.pbtxt").is_file()
    # The projector's metadata: a header, then the 100 test images of the tiny set.
    assert len((logs / "00001" / "features" / "metadata.tsv").read_text().splitlines()) == 101


def test_tensorboard_missing_is_one_clear_message(tiny_cifar, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    monkeypatch.delitem(sys.modules, "minidl.utils.tensorboard", raising=False)
    code = lenet_cifar.main(["--epochs", "1", "--data-dir", str(tiny_cifar), "--out", str(tmp_path / "run"),
                             "--tensorboard", str(tmp_path / "tb"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "pip install" in err and "--tensorboard" in err and "Traceback" not in err


@pytest.mark.skipif(not list(REAL.glob("cifar-10*")), reason=f"the real CIFAR-10 is not in {REAL}")
def test_lenet_learns_on_real_cifar10(tmp_path, monkeypatch):
    monkeypatch.setattr(CIFAR10, "records_per_file", 10000)
    out = tmp_path / "real"
    code = lenet_cifar.main(["--epochs", "2", "--train-subset", "4000", "--batch-size", "32", "--data-dir",
                             str(REAL), "--out", str(out), "--no-progress"])
    assert code == 0
    summary = check_run(out)
    assert summary["test_accuracy"] > 0.25, summary
