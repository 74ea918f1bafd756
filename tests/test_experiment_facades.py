"""Smoke runs of experiments/facade_segmentation.py: a few steps on a tiny learnable facade set, the run folder
complete, the loss going down, resume, --predict, TensorBoard and the flags refused.

The full runs are benchmarks (see the README); these check that the script's whole path works. One test
trains on a few real CMP facades when ../shared/data is there.
"""
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_facades_folder

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "facades"
REAL = Path(os.environ["MINIDL_DATA"]) / "facades" if os.environ.get("MINIDL_DATA") else SHARED

sys.path.insert(0, str(REPO / "experiments"))
import facade_segmentation  # noqa: E402

FILES = ("config.json", "metrics.csv", "checkpoint.npz", "model_summary.txt", "report.md", "summary.json",
         "training_curves.png", "examples.png", "pr_curves.png", "per_class_ap.png", "confusion_matrix.png")
SUMMARY_KEYS = ("mean_ap", "per_class_ap", "mean_iou", "per_class_iou", "pixel_accuracy", "epochs",
                "train_seconds", "wall_seconds")


@pytest.fixture(scope="module")
def tiny_facades(tmp_path_factory):
    """12 training, 4 validation and 4 test photos of 32 x 32 whose colours give away their classes."""
    root = tmp_path_factory.mktemp("facades")
    write_facades_folder(root, np.random.default_rng(0), sizes=(12, 4, 4), side=32)
    return root


def train_losses(out: Path) -> list[float]:
    with open(out / "metrics.csv") as f:
        return [float(row["train_loss"]) for row in csv.DictReader(f)]


def check_run(out: Path) -> dict:
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    for key in SUMMARY_KEYS:
        assert key in summary, key
    assert len(summary["per_class_ap"]) == 5 and len(summary["per_class_iou"]) == 5
    assert abs(summary["mean_ap"] - np.mean(summary["per_class_ap"])) < 1e-12
    assert 0 <= summary["pixel_accuracy"] <= 1
    losses = train_losses(out)
    assert len(losses) == summary["epochs"] and losses[-1] < losses[0], losses
    report = (out / "report.md").read_text()
    assert "| 2 pillar |" in report and "0.482" in report and "0.507" in report
    return summary


def run(tiny, out, *flags) -> int:
    return facade_segmentation.main([*flags, "--data-dir", str(tiny), "--out", str(out), "--no-progress"])


def test_default_recipe_learns_the_tiny_set(tiny_facades, tmp_path):
    out = tmp_path / "run"
    assert run(tiny_facades, out, "--epochs", "6", "--crop", "16", "--batch-size", "4", "--lr", "0.01") == 0
    summary = check_run(out)
    assert summary["scale"] == [0.5, 0.25, 0.125] and summary["net"] == "001"
    assert summary["mean_ap"] > 0.5, summary  # chance is the class shares, about 0.2 on average
    config = json.loads((out / "config.json").read_text())
    assert config["crop"] == 16 and config["flip"] and config["normalize"] == "channel"
    assert config["class_weights"] == "sqrt" and config["tta"]
    assert len(config["data"]["pixel_mean"]) == 3 and config["data"]["train_images"] == 12


def test_report_recipe_with_net_000_and_resume(tiny_facades, tmp_path, capsys):
    out = tmp_path / "run000"
    flags = ["--net", "000", "--recipe", "report", "--batch-size", "4", "--lr", "0.003"]
    assert run(tiny_facades, out, *flags, "--epochs", "2") == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["scale"], config["crop"], config["flip"], config["normalize"], config["class_weights"],
            config["tta"]) == ([1.0], 0, False, "none", "none", False)
    assert "Total params: 742,533" in (out / "model_summary.txt").read_text()  # report 000's net
    # a finished run is not replaced, but continued for more epochs
    assert run(tiny_facades, out, *flags, "--epochs", "3") == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert run(tiny_facades, out, "--net", "000", "--resume", "--epochs", "3") == 0
    summary = check_run(out)
    assert summary["epochs"] == 3 and len(train_losses(out)) == 3


def test_predict_writes_the_colour_map_beside_the_photo(tiny_facades, tmp_path, capsys):
    from PIL import Image
    out = tmp_path / "run"
    assert run(tiny_facades, out, "--epochs", "2", "--crop", "16", "--batch-size", "4") == 0
    photo = tmp_path / "street.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (45, 70, 3), dtype=np.uint8)).save(photo)
    args = ["--predict", str(photo), "--checkpoint", str(out / "checkpoint.npz")]
    assert facade_segmentation.main(args) == 0
    with Image.open(tmp_path / "street_segmentation.png") as im:
        assert im.size == (70, 45) and im.mode == "RGB"
        colours = {tuple(c) for c in np.asarray(im).reshape(-1, 3)}
    palette = {tuple(int(round(255 * v)) for v in c) for c in facade_segmentation.viz.FACADE_COLORS}
    assert colours <= palette
    assert "street_segmentation.png: 70 x 45" in capsys.readouterr().out
    # never replaced silently; --overwrite replaces it
    assert facade_segmentation.main(args) == 2
    assert "already exist" in capsys.readouterr().err
    assert facade_segmentation.main(args + ["--overwrite"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["--predict", "{tmp}/missing.jpg", "--checkpoint", "{tmp}/run/checkpoint.npz"], "missing.jpg does not exist"),
    (["--predict", "{tmp}/not_a_photo.jpg", "--checkpoint", "{tmp}/run/checkpoint.npz"], "is not a readable image"),
    (["--predict", "{tmp}/photo.png", "--checkpoint", "{tmp}/nowhere/checkpoint.npz"],
     "nowhere/checkpoint.npz does not exist"),
    (["--predict", "{tmp}/photo.png", "--checkpoint", "{tmp}/run/checkpoint.npz", "--epochs", "3"],
     "--epochs do(es) not apply"),
    (["--checkpoint", "{tmp}/run/checkpoint.npz"], "only --predict reads a checkpoint"),
    (["--crop", "64", "--out", "{tmp}/big"], "--crop: 64 is larger than the 32 x 32 photos"),
])
def test_bad_requests_are_one_clear_message(tiny_facades, tmp_path, capsys, argv, message):
    from PIL import Image
    (tmp_path / "not_a_photo.jpg").write_bytes(b"this is not a JPEG")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photo.png")
    (tmp_path / "run").mkdir()
    data = [] if "--predict" in argv else ["--data-dir", str(tiny_facades)]
    code = facade_segmentation.main([a.format(tmp=tmp_path) for a in argv] + data + ["--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_predict_refuses_a_checkpoint_without_its_config(tiny_facades, tmp_path, capsys):
    from PIL import Image
    out = tmp_path / "run"
    assert run(tiny_facades, out, "--epochs", "1", "--crop", "16") == 0
    (out / "config.json").unlink()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photo.png")
    assert facade_segmentation.main(["--predict", str(tmp_path / "photo.png"), "--out", str(out)]) == 2
    assert "config.json" in capsys.readouterr().err


def test_tensorboard_flag_writes_pr_curves_and_pictures(tiny_facades, tmp_path):
    pytest.importorskip("tensorboardX")
    from test_tensorboard import read_summaries
    logs = tmp_path / "tb"
    assert run(tiny_facades, tmp_path / "run", "--epochs", "2", "--crop", "16", "--tensorboard", str(logs)) == 0
    s = read_summaries(logs)
    assert {"pr_curve/pillar", "pr_curve/balcony", "segmentation", "graph", "loss/train", "loss/val"} <= set(s)
    (step, value), = s["segmentation"]
    assert step == 2 and value.image.width == 3 * 32 and value.image.height == 4 * 32  # 4 test photos, 3 panels


@pytest.mark.skipif(not (REAL / "train.npz").is_file(), reason=f"the real CMP facades are not in {REAL}")
def test_net_001_learns_on_real_facades(tmp_path):
    out = tmp_path / "real"
    assert facade_segmentation.main(["--data-dir", str(REAL), "--out", str(out), "--no-progress", "--epochs", "4",
                                     "--train-subset", "32", "--crop", "64", "--batch-size", "8", "--lr", "0.01"]) == 0
    summary = check_run(out)
    # A scorer that knows nothing has a class's pixel share as its AP, so a mean AP of 0.2 (measured: 0.24
    # after these 16 steps; the full run reaches more than 0.5).
    assert summary["test_images"] == 39 and summary["mean_ap"] > 0.22, summary


def test_sqrt_class_weights_favour_rare_classes_with_mean_one():
    labels = np.repeat(np.arange(5), [400, 300, 4, 100, 196]).reshape(1, 1, -1)
    w = facade_segmentation.class_weights(labels, "sqrt").numpy()
    share = np.array([400, 300, 4, 100, 196]) / 1000
    np.testing.assert_allclose(w, (1 / np.sqrt(share)) / np.mean(1 / np.sqrt(share)), rtol=1e-6)
    assert w.mean() == pytest.approx(1) and w[2] == w.max()
    assert facade_segmentation.class_weights(labels, "none") is None
