"""The examples run unchanged: PyTorch's CIFAR-10 tutorial with only its imports switched to minidl."""
from __future__ import annotations

import runpy
from pathlib import Path

from conftest import write_cifar_folder

from minidl.data.datasets import CIFAR10

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_pytorch_cifar10_tutorial_runs_unchanged(tmp_path, monkeypatch, rng, capsys):
    """Every line of the tutorial below its imports: DataLoader with workers, torch.flatten, save/load of the
    state_dict, torch.max(outputs, 1) and outputs.data, labels indexing a tuple, per-class counts."""
    write_cifar_folder(tmp_path / "data", rng, per_file=20)
    monkeypatch.setattr(CIFAR10, "records_per_file", None)  # the real files hold 10,000 records each
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(EXAMPLES / "cifar10_tutorial.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "Finished Training" in out
    assert (tmp_path / "cifar_net.pth").is_file()
    assert "GroundTruth: " in out and "Predicted: " in out
    assert "Accuracy of the network on the 10000 test images:" in out
    assert sum(line.startswith("Accuracy for class:") for line in out.splitlines()) == 10
    assert out.rstrip().endswith("cpu")
