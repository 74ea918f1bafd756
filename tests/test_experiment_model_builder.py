"""experiments/model_builder.py: report 002's Model Builder runs and sweep, on a tiny synthetic MNIST (and a
short run on the real one where it is on disk): the run folder complete, the loss going down, the batch
stream, resume, the sweep and what it says of the report, and the flags refused."""
import functools
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_cifar_folder, write_synthetic_mnist

from minidl import serialization
from minidl.data.datasets import CIFAR10, MNIST

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
import model_builder  # noqa: E402
from model_builder import BatchStream  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "mnist"
REAL_MNIST = Path(os.environ["MINIDL_DATA"]) / "mnist" if os.environ.get("MINIDL_DATA") else SHARED
RUN_FILES = ("config.json", "metrics.csv", "checkpoint.npz", "model_summary.txt", "training_curves.png",
             "confusion_matrix.png", "conv1_filters.png", "report.md", "summary.json")


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """A synthetic MNIST folder (300 + 100 images, a bar per class), read without the official checksums."""
    cls, size, stats = model_builder.DATASETS["mnist"]
    monkeypatch.setitem(model_builder.DATASETS, "mnist", (functools.partial(MNIST, check_content=False), size,
                                                          stats))
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_synthetic_mnist(folder)
    return folder


def run(*argv) -> int:
    return model_builder.main([*map(str, argv), "--no-progress"])


# ----------------------------------------------------------------------------------- the batch stream
def test_batch_stream_rounds_are_a_function_of_the_seed_and_the_round():
    stream = BatchStream(n=7, batch_size=3, batches=10, per_round=4, seed=5)
    assert stream.rounds == 3
    rounds = [list(stream) for _ in range(3)]
    assert [len(r) for r in rounds] == [4, 4, 2]
    positions = [i for r in rounds for batch in r for i in batch]
    # The stream is shuffled passes over the data: each run of 7 positions is a permutation of 0..6.
    for p in range(len(positions) // 7):
        assert sorted(positions[7 * p:7 * p + 7]) == list(range(7))
    assert positions[:7] != list(range(7))
    again = BatchStream(n=7, batch_size=3, batches=10, per_round=4, seed=5)
    again.set_epoch(1)  # a resumed run starting at round 1 sees what an uninterrupted one saw
    assert list(again) == rounds[1]
    assert list(BatchStream(n=7, batch_size=3, batches=10, per_round=4, seed=6)) != rounds[0]


# ----------------------------------------------------------------------------------- one run
@pytest.mark.skipif(not (REAL_MNIST / "train-images-idx3-ubyte.gz").exists(),
                    reason=f"the real MNIST files are not in {REAL_MNIST}")
def test_a_short_run_on_real_mnist_learns(tmp_path):
    out = tmp_path / "run"
    assert run("--batches", 150, "--eval-every", 50, "--eval-size", 500, "--data-dir", REAL_MNIST,
               "--out", out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_accuracy"] > 0.85, summary["test_accuracy"]
    assert summary["batches"] == 150 and summary["examples_per_second"] > 0 and summary["wall_seconds"] > 0
    for name in RUN_FILES:
        assert (out / name).stat().st_size > 0, name


def test_the_run_folder_and_summary(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert run("--batches", 30, "--eval-every", 10, "--eval-size", 50, "--lr", 0.05, "--data-dir", tiny_mnist,
               "--out", out) == 0
    for name in RUN_FILES:
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    for key in ("test_accuracy", "examples_per_second", "batches", "wall_seconds", "small_batch_accuracy",
                "relu_active_fraction"):
        assert key in summary, key
    assert summary["batches"] == 30 and summary["batch_size"] == 20 and summary["curve"]["batches"] == [10, 20, 30]
    assert summary["epochs"] == pytest.approx(30 * 20 / 300)
    assert set(summary["relu_active_fraction"]) == {"relu1", "relu2"}
    assert all(0 < f < 1 for f in summary["relu_active_fraction"].values())
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 4
    losses = [float(r.split(",")[2]) for r in rows[1:]]
    assert losses[-1] < losses[0]  # the loss goes down
    printed = capsys.readouterr().out
    assert "batch 10/30 | train loss" in printed and "examples/s" in printed
    report = (out / "report.md").read_text()
    assert report.startswith("# Report 002's Model Builder net on MNIST: the base net")
    assert "Report 002 observed: > 95 % after ~300 batches of 20." in report
    config = json.loads((out / "config.json").read_text())
    assert config["filters"] == 16 and config["field_size"] == 5 and config["ceil_mode"] is True


def test_resume_finishes_an_interrupted_run_like_an_uninterrupted_one(tiny_mnist, tmp_path, monkeypatch, capsys):
    flags = ["--batches", 12, "--eval-every", 4, "--eval-size", 50, "--data-dir", tiny_mnist]
    assert run(*flags, "--out", tmp_path / "whole") == 0

    rounds = []
    original = BatchStream.__iter__

    def interrupted(stream):
        rounds.append(stream.round)
        if stream.round == 2:
            raise KeyboardInterrupt
        yield from original(stream)

    monkeypatch.setattr(BatchStream, "__iter__", interrupted)
    assert run(*flags, "--out", tmp_path / "cut") == 130
    assert "--resume" in capsys.readouterr().err
    monkeypatch.setattr(BatchStream, "__iter__", original)
    assert run(*flags, "--out", tmp_path / "cut", "--resume") == 0
    whole = serialization.load(tmp_path / "whole" / "checkpoint.npz")["model"]
    cut = serialization.load(tmp_path / "cut" / "checkpoint.npz")["model"]
    for key in whole:
        np.testing.assert_allclose(cut[key], whole[key], rtol=1e-5, atol=1e-6)


def test_cosine_schedule_decays_over_the_batches(tiny_mnist, tmp_path):
    out = tmp_path / "run"
    assert run("--batches", 12, "--eval-every", 4, "--eval-size", 50, "--schedule", "cosine", "--lr", 0.02,
               "--data-dir", tiny_mnist, "--out", out) == 0
    lrs = [float(row.split(",")[1]) for row in (out / "metrics.csv").read_text().splitlines()[1:]]
    # The lr column is each round's first rate: batch 0, 4 and 8 of 12 on a cosine from 0.02 to 0.
    assert lrs == pytest.approx([0.02 * (1 + np.cos(np.pi * b / 12)) / 2 for b in (0, 4, 8)])


def test_cifar_10_with_crops_and_flips(tmp_path, monkeypatch):
    """The report's 78 % net on a tiny learnable CIFAR-10 (brightness by class), trained on crops and flips."""
    monkeypatch.setattr(CIFAR10, "records_per_file", None)
    root = tmp_path / "cifar-10"
    write_cifar_folder(root, np.random.default_rng(0), per_file=40, learnable=True)
    out = tmp_path / "run"
    assert run("--dataset", "cifar-10", "--field-size", 3, "--filters", 30, "--augment", "crop-flip",
               "--batches", 20, "--eval-every", 10, "--data-dir", root, "--out", out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "cifar-10" and summary["parameters"] == 30 * 27 + 30 + 30 * 270 + 30 + 1920 * 10 + 10
    report = (out / "report.md").read_text()
    assert report.startswith("# Report 002's Model Builder net on CIFAR-10") and "JPEG-recompressed" in report


def test_small_batch_accuracy_is_the_spread_of_random_batches():
    correct = np.r_[np.ones(70), np.zeros(30)].astype(bool)
    small = model_builder.small_batch_accuracy(correct, 10, seed=0)
    assert small["batches"] == 10 and small["mean"] == pytest.approx(0.7)
    assert small["min"] <= 0.7 <= small["max"] and small["p95"] <= small["max"]


# ----------------------------------------------------------------------------------- the sweep
def test_the_sweep_runs_every_variant_and_compares_them_with_the_report(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "sweep"
    flags = ["--sweep", "--batches", 2, "--eval-every", 2, "--eval-size", 20, "--train-subset", 60,
             "--data-dir", tiny_mnist, "--out", out]
    assert run(*flags) == 0
    comparison = (out / "comparison.md").read_text()
    for name in model_builder.VARIANTS:
        assert f"| {name} |" in comparison, name
        assert (out / name / "summary.json").exists(), name
    assert "on CIFAR-10: 10 % and very slow" in comparison  # the report's words on another data set
    assert "## Where the numbers agree with the report, and where they say otherwise" in comparison
    assert "Pool stride 1" in comparison and "Conv stride (report, on Fashion-MNIST: 1 to 5 alike, 10 worse)" in comparison
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sweep"]) == set(model_builder.VARIANTS)
    assert json.loads((out / "batch500" / "summary.json").read_text())["batch_size"] == 500
    assert (out / "comparison.png").stat().st_size > 0

    # A second sweep into the folder is refused; --resume keeps the finished variants and reruns a missing one.
    assert run(*flags) == 2
    assert "already holds a sweep" in capsys.readouterr().err
    (out / "k3f30" / "summary.json").unlink()
    assert run(*flags, "--resume") == 0
    printed = capsys.readouterr().out
    assert "--resume: variant base finished before" in printed and "=== variant k3f30" in printed


def test_findings_check_the_reports_explanations_against_the_numbers():
    def result(acc, train_acc=None, speed=1000.0, parameters=8000, batches=3000, batch_size=20):
        return {"test_accuracy": acc, "last_train_accuracy": acc if train_acc is None else train_acc,
                "examples_per_second": speed, "parameters": parameters, "batches": batches,
                "batch_size": batch_size, "wall_seconds": 60.0,
                "curve": {"batches": [100, 200, 300], "test_accuracy": [0.9, 0.96, 0.97]},
                "small_batch_accuracy": {"size": 50, "max": 0.9, "p95": 0.8}}
    results = {"base": result(0.97), "pool-stride1": result(0.96, 0.965, speed=300, parameters=110000),
               "field1": result(0.90), "field7": result(0.98), "batch500": result(0.98, speed=4000, batches=600,
                                                                                    batch_size=500)}
    results["extra4"] = result(0.1, 0.1)
    results["extra4"]["curve"] = {"batches": [100, 200, 300], "test_accuracy": [0.6, 0.7, 0.1]}
    results["extra4"]["relu_active_fraction"] = {"relu1": 0.3, "relu2": 0.0}
    lines = model_builder.findings(results, "mnist")
    assert ("Four extra convs collapsed: it reached 70.0% (on the measured test images) by batch 200, then by "
            "batch 300 it was at chance") in lines[-2]
    assert "relu2 is dead: not one output positive on the measured test images" in lines[-2]
    assert lines[0] == ("Report: > 95% after ~300 batches of 20. Here the base net first measured 95% or more "
                        "after 200 batches, and ended at 97.00%.")
    pool = next(line for line in lines if line.startswith("Pool stride 1"))
    assert "does not overfit" in pool and "0.30× the base's speed" in pool and "14× the base's weights" in pool
    stalled = dict(results, **{"pool-stride1": result(0.27, 0.25, speed=300, parameters=110000)})
    stalled["pool-stride1"]["curve"] = {"batches": [100, 200, 300, 400], "test_accuracy": [0.1, 0.11, 0.09, 0.3]}
    pool = next(line for line in model_builder.findings(stalled, "cifar-10") if line.startswith("Pool stride 1"))
    assert "sat at chance for its first 300 batches" in pool and "That is a stall, not overfitting" in pool
    field = next(line for line in lines if line.startswith("Field size"))
    assert "Otherwise: 7 is the best here (5 within 1.0 points)." in field
    batch = next(line for line in lines if line.startswith("Batch 500"))
    assert "per example it is faster" in batch and "it has seen 5× the images" in batch


# ----------------------------------------------------------------------------------- refused flags
@pytest.mark.parametrize("argv, message", [
    (["--augment", "crop-flip"], "argument --augment: crop-flip pads and crops 32×32 CIFAR-10 images"),
    (["--blocks", "5", "--no-ceil-mode"], "the net does not fit MNIST's images"),
    (["--optimizer", "adam", "--momentum", "0.5"], "argument --momentum: only --optimizer sgd"),
    (["--sweep", "--filters", "8"], "--sweep sets the net's knobs and the batch size itself"),
    (["--train-subset", "1000"], "argument --train-subset: 1000 is more than the 300 training images"),
])
def test_flags_that_cannot_work_are_one_clear_error(tiny_mnist, tmp_path, capsys, argv, message):
    assert run(*argv, "--batches", 2, "--data-dir", tiny_mnist, "--out", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
