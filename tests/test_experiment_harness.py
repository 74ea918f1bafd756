"""The harness every experiment script shares (experiments/common.py), driven through fashion_cnn.main.

Runs are tiny (a synthetic MNIST of 300 training images, 32 of them trained on) and draw no figures (the
plotting functions are replaced by recorders), so each test takes well under a second: what is tested is
the command line, the run folder and the error messages, not learning.
"""
import functools
import json
import math
import shutil
import sys
from pathlib import Path

import pytest
from conftest import write_synthetic_mnist

from minidl.backend import cuda_is_available
from minidl.data.datasets import MNIST

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
import fashion_cnn  # noqa: E402

PLOTS = ("plot_training_curves", "plot_per_class_accuracy", "plot_confusion_matrix", "plot_classified_examples",
         "plot_filters")
SMOKE = ["--dataset", "mnist", "--train-subset", "32", "--val-size", "20", "--batch-size", "16", "--no-progress"]


class Plots(dict):
    """Stands in for minidl.viz's plotting functions: keeps each one's arguments, draws nothing."""

    def recorder(self, name):
        def record(*args, **kwargs):
            self[name] = (args, kwargs)
        return record


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A synthetic MNIST (not the official files, so its content is not checked), figures replaced by
    recorders, and a finished 2-epoch run to copy."""
    data = tmp_path_factory.mktemp("mnist")
    write_synthetic_mnist(data)
    plots = Plots()
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(fashion_cnn.DATASETS, "mnist", functools.partial(MNIST, check_content=False))
        for name in PLOTS:
            mp.setattr(fashion_cnn.viz, name, plots.recorder(name))
        finished = tmp_path_factory.mktemp("runs") / "finished"
        assert fashion_cnn.main([*SMOKE, "--epochs", "2", "--data-dir", str(data), "--out", str(finished)]) == 0
        yield {"data": data, "finished": finished, "plots": plots}


def run(world, *flags) -> int:
    return fashion_cnn.main([*SMOKE, "--data-dir", str(world["data"]), *flags])


def finished_copy(world, dest: Path) -> Path:
    shutil.copytree(world["finished"], dest)
    return dest


def assert_one_message(capsys, *parts) -> str:
    """stderr is one ``fashion_cnn.py: error: ...`` message (no traceback) that contains ``parts``."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("fashion_cnn.py: error: "), err
    for part in parts:
        assert part in err, (part, err)
    return err


# ----------------------------------------------------------------------------------- --resume (item 3)
def test_resume_refuses_flags_that_contradict_the_run_and_writes_nothing(world, tmp_path, capsys):
    out = finished_copy(world, tmp_path / "run")
    config = (out / "config.json").read_bytes()
    assert run(world, "--out", str(out), "--resume", "--optimizer", "sgd", "--batch-size", "8",
               "--train-subset", "16") == 2
    assert_one_message(capsys, "--optimizer: the run has adam, given sgd", "--batch-size: the run has 16, given 8",
                       "--train-subset: the run has 32, given 16", "--out DIR", "--overwrite")
    assert run(world, "--out", str(out), "--resume", "--epochs", "1") == 2
    assert_one_message(capsys, "argument --epochs", "already done 2 epochs", "--epochs 2 or more")
    assert (out / "config.json").read_bytes() == config


def test_resume_with_more_epochs_extends_the_cosine_schedule(world, tmp_path, capsys):
    out = finished_copy(world, tmp_path / "run")
    # Only --epochs is given: the run's other flags (--data-dir, --lr, --batch-size, ...) come from its config.json.
    assert fashion_cnn.main(["--out", str(out), "--resume", "--epochs", "3", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "started for 2 epochs and now has 3" in printed and "--epochs 3 (it had 2)" in printed
    lrs = [float(line.split(",")[1]) for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 3 and config["batch_size"] == 16 and config["lr"] == 1e-3  # Adam's default
    # Epoch 3 of a cosine over 3 epochs: not the 0 where the 2-epoch cosine ended.
    assert lrs[2] == pytest.approx(1e-3 * (1 + math.cos(2 * math.pi / 3)) / 2, rel=1e-5)
    assert config["resumes"][0]["epochs_done"] == 2 and config["resumes"][0]["changed"]["epochs"] == [2, 3]


# ----------------------------------------------------------------------------------- the run folder (item 4)
def test_a_new_run_never_replaces_a_run_folder_without_overwrite(world, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    default = finished_copy(world, tmp_path / "runs" / "fashion_cnn")
    summary = (default / "summary.json").read_bytes()
    assert run(world, "--epochs", "1") == 2  # the smoke run, without --out
    assert_one_message(capsys, "runs/fashion_cnn already holds a finished run (2 epochs", "--out DIR",
                       "--overwrite", "--resume")
    assert (default / "summary.json").read_bytes() == summary

    assert run(world, "--epochs", "1", "--overwrite") == 0
    assert json.loads((default / "summary.json").read_text())["epochs"] == 1

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    assert run(world, "--epochs", "1", "--out", "notes", "--overwrite") == 2
    assert_one_message(capsys, "holds files but no run", "even with --overwrite")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"

    assert run(world, "--resume", "--out", "nowhere") == 2
    assert_one_message(capsys, "--resume: there is no checkpoint to continue from in nowhere")


# ----------------------------------------------------------------------------------- flags (item 5)
@pytest.mark.parametrize("flags, message", [
    (["--val-size", "-5"], "argument --val-size: must be at least 0, got -5"),
    (["--train-subset", "0"], "argument --train-subset: must be at least 1, got 0"),
    (["--epochs", "0"], "argument --epochs: must be at least 1"),
    (["--batch-size", "0"], "argument --batch-size: must be at least 1"),
    (["--lr", "0"], "argument --lr: must be > 0"),
    (["--lr", "nan"], "argument --lr: must be > 0"),
    (["--weight-decay", "-1"], "argument --weight-decay: must be >= 0"),
    (["--momentum", "1"], "argument --momentum: must be in [0, 1)"),
    (["--resume", "--overwrite"], "--resume and --overwrite contradict each other"),
])
def test_bad_flags_are_refused_argparse_style(world, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_:
        run(world, "--out", str(tmp_path / "run"), *flags)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "usage: fashion_cnn.py" in err and message in err, err
    assert not (tmp_path / "run").exists()


def test_sizes_are_checked_against_the_data_set_and_no_validation_is_said_so(world, tmp_path, capsys):
    assert run(world, "--out", str(tmp_path / "a"), "--val-size", "300") == 2
    assert_one_message(capsys, "argument --val-size: 300 leaves nothing to train on", "300 images")
    assert run(world, "--out", str(tmp_path / "a"), "--val-size", "100", "--train-subset", "250") == 2
    assert_one_message(capsys, "argument --train-subset: 250 is more than the 200 training images left")
    assert not (tmp_path / "a").exists()

    assert run(world, "--out", str(tmp_path / "b"), "--epochs", "1", "--val-size", "0") == 0
    report = (tmp_path / "b" / "report.md").read_text()
    assert "no validation set" in report and "validation 0.00%" not in report


# ----------------------------------------------------------------------------------- errors (item 6)
def _corrupt_copy(world, tmp_path):
    data = tmp_path / "corrupt"
    shutil.copytree(world["data"], data)
    labels = data / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-10])
    return ["--out", str(tmp_path / "run"), "--data-dir", str(data)], [
        str(labels), "truncated", "Replace it with a good copy", "without --data-dir"]


def _bad_checkpoint(world, tmp_path):
    out = finished_copy(world, tmp_path / "run")
    (out / "checkpoint.npz").write_bytes(b"not a zip file")
    return ["--out", str(out), "--resume"], ["checkpoint cannot be read", "--overwrite"]


def _diverging(world, tmp_path):
    # --overwrite: the second run (with --debug) replaces the first's unfinished run.
    return ["--out", str(tmp_path / "run"), "--overwrite", "--epochs", "1", "--lr", "1e30"], [
        "Training diverged", "run again with a smaller --lr"]


def _missing_data(world, tmp_path):
    return ["--out", str(tmp_path / "run"), "--data-dir", str(tmp_path)], [
        f"the data set is not in {tmp_path}", "Pass --data-dir with the folder that holds these files"]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("case", [_missing_data, _corrupt_copy, _bad_checkpoint, _diverging],
                         ids=["data not found", "corrupt data", "bad checkpoint", "diverged"])
def test_expected_errors_print_one_message_and_debug_adds_the_traceback(world, tmp_path, capsys, case):
    flags, parts = case(world, tmp_path)
    assert run(world, *flags) == 1
    err = assert_one_message(capsys, *parts)
    assert "download=True" not in err and "root=" not in err
    assert run(world, *flags, "--debug") == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "fashion_cnn.py: error: " in err


def test_ctrl_c_says_how_to_resume_without_a_traceback(world, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        (tmp_path / "run" / "checkpoint.npz").write_bytes(b"")  # as if epoch 1 had finished
        raise KeyboardInterrupt
    monkeypatch.setattr(fashion_cnn.training, "fit", interrupted)
    assert run(world, "--out", str(tmp_path / "run"), "--epochs", "1") == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "interrupted" in err and f"--resume --out {tmp_path / 'run'}" in err


@pytest.mark.skipif(cuda_is_available(), reason="a GPU is usable here")
def test_cuda_without_a_gpu_is_refused_up_front(world, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run(world, "--out", str(tmp_path / "run"), "--device", "cuda")
    assert exit_.value.code == 2 and "run with --device cpu" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- MNIST (item 7)
def test_an_mnist_report_names_mnist_and_compares_only_with_mnist_figures(world):
    report = (world["finished"] / "report.md").read_text()
    assert report.startswith("# MNIST, report 001's network")
    assert "Fashion-MNIST only" in report and "> 95% after ~300 batches of 20" in report
    assert "T-shirt" not in report and "report 001 (test)" not in report and "83.26" not in report
    plots = world["plots"]
    per_class, _ = plots["plot_per_class_accuracy"]
    assert list(per_class[0]) == ["this run"]
    curves = plots["plot_training_curves"][1]
    assert curves["reference_accuracy"] == {"report 002 (its CNN, ~300 batches of 20)": 0.95}
    assert "MNIST" in curves["title"] and "Fashion" not in curves["title"]


# ----------------------------------------------------------------------------------- temporaries (item 9)
def test_resume_removes_stale_checkpoint_temporaries_and_nothing_else(world, tmp_path, capsys):
    out = finished_copy(world, tmp_path / "run")
    stale = out / ".checkpoint.npz.k3j2h1ab.tmp"  # what serialization.save leaves when killed mid-write
    stale.write_bytes(b"half a checkpoint")
    others = [out / ".checkpoint.npz.tmp", out / "checkpoint.npz.tmp", out / "notes.tmp"]
    for path in others:
        path.write_text("keep")
    assert run(world, "--out", str(out), "--resume") == 0
    printed = capsys.readouterr().out
    assert "Removed 1 temporary file(s)" in printed and stale.name in printed
    assert not stale.exists() and all(path.exists() for path in others)


# ----------------------------------------------------------------------------------- review fixes
def test_a_resumed_runs_report_shows_the_runs_flags_and_total_wall_time(world, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(world, "--out", str(out), "--net", "000", "--optimizer", "sgd", "--momentum", "0.5",
               "--epochs", "1") == 0
    first = json.loads((out / "summary.json").read_text())
    assert fashion_cnn.main(["--out", str(out), "--resume", "--epochs", "2", "--no-progress"]) == 0
    report = (out / "report.md").read_text()
    command = report.split("## Configuration")[1].split("```")[1].strip()
    for part in ("--net 000", "--optimizer sgd", "--momentum 0.5", "--batch-size 16", "--epochs 2",
                 "--train-subset 32", "--val-size 20", "--dataset mnist", f"--data-dir {world['data']}",
                 f"--out {out}"):
        assert part in command, (part, command)
    assert "--resume" not in command and "--no-progress" not in command
    summary = json.loads((out / "summary.json").read_text())
    assert summary["wall_seconds"] == pytest.approx(first["wall_seconds"] + summary["wall_seconds_this_command"])


def test_momentum_without_sgd_is_refused(world, tmp_path, capsys):
    assert run(world, "--out", str(tmp_path / "run"), "--momentum", "0.5") == 2
    assert_one_message(capsys, "argument --momentum", "--optimizer sgd")
    assert not (tmp_path / "run").exists()
    assert run(world, "--out", str(tmp_path / "run"), "--epochs", "1", "--optimizer", "sgd", "--momentum", "0.5") == 0


def test_an_out_folder_that_cannot_be_written_is_one_message(world, tmp_path, capsys):
    assert run(world, "--out", "/proc/minidl-no-such-run") == 2
    assert_one_message(capsys, "argument --out: /proc/minidl-no-such-run cannot be created or written")


def test_a_checkpoint_that_does_not_fit_the_net_is_refused_before_config_changes(world, tmp_path, capsys):
    out = finished_copy(world, tmp_path / "run")
    other = tmp_path / "other"
    assert run(world, "--out", str(other), "--net", "000", "--epochs", "1") == 0
    shutil.copy(other / "checkpoint.npz", out / "checkpoint.npz")  # a hand-swapped checkpoint
    config = (out / "config.json").read_bytes()
    assert run(world, "--out", str(out), "--resume", "--epochs", "3") == 1
    assert_one_message(capsys, str(out / "checkpoint.npz"), "does not match this model")
    assert (out / "config.json").read_bytes() == config


def test_a_schedule_that_cannot_be_stretched_is_one_message(world, tmp_path, monkeypatch, capsys):
    out = finished_copy(world, tmp_path / "run")
    config = (out / "config.json").read_bytes()
    lambda_lr = fashion_cnn.optim.lr_scheduler.LambdaLR
    monkeypatch.setattr(fashion_cnn.optim.lr_scheduler, "CosineAnnealingLR",
                        lambda opt, T_max: lambda_lr(opt, lambda e: 1 - e / T_max))
    assert run(world, "--out", str(out), "--resume", "--epochs", "3") == 1
    assert_one_message(capsys, "LambdaLR cannot be stretched to 3", "resume with --epochs 2")
    assert (out / "config.json").read_bytes() == config
