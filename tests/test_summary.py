"""minidl.summary: the torchsummary-style table of seed report 003 (its Figure 1), and that summarising a
model leaves the model and minidl's random stream as they were."""
from __future__ import annotations

import re

import numpy as np

import minidl as mdl
import minidl.nn as nn
from minidl.summary import summary


def report003_net():
    """Report 003's default network (models/cifar.py)."""
    from models.cifar import Report003Net
    return Report003Net()


# Report 003, Figure 1 (layer, output shape, parameters), and its totals.
FIGURE_1 = [("Conv2d-1", "[-1, 24, 28, 28]", "1,824"), ("ReLU-2", "[-1, 24, 28, 28]", "0"),
            ("MaxPool2d-3", "[-1, 24, 14, 14]", "0"), ("Conv2d-4", "[-1, 48, 12, 12]", "10,416"),
            ("ReLU-5", "[-1, 48, 12, 12]", "0"), ("MaxPool2d-6", "[-1, 48, 6, 6]", "0"),
            ("Conv2d-7", "[-1, 96, 4, 4]", "41,568"), ("MaxPool2d-8", "[-1, 96, 2, 2]", "0"),
            ("Flatten-9", "[-1, 384]", "0"), ("Linear-10", "[-1, 512]", "197,120"), ("ReLU-11", "[-1, 512]", "0"),
            ("Linear-12", "[-1, 10]", "5,130")]
FIGURE_1_TOTALS = ["Total params: 256,058", "Trainable params: 256,058", "Non-trainable params: 0",
                   "Input size (MB): 0.01", "Forward/backward pass size (MB): 0.47", "Params size (MB): 0.98",
                   "Estimated Total Size (MB): 1.46"]


def table_rows(text: str) -> list[tuple[str, str, str]]:
    """(layer, shape, params) of each row (columns are separated by at least two spaces)."""
    lines = text.splitlines()
    start, end = lines.index("=" * 64) + 1, len(lines) - 1 - lines[::-1].index("=" * 64)
    return [tuple(re.split(r"\s{2,}", line.strip())) for line in lines[start:end]]


def test_report003_table_is_figure_1(rng, capsys):
    """The default net of report 003 on a 3x32x32 input prints Figure 1's rows and totals (256,058 params),
    in torchsummary's layout, and returns the same text."""
    text = summary(report003_net(), (3, 32, 32))
    assert capsys.readouterr().out == text + "\n"
    assert text.splitlines()[1] == "        Layer (type)               Output Shape         Param #"
    assert "            Conv2d-1           [-1, 24, 28, 28]           1,824" in text.splitlines()
    assert table_rows(text) == FIGURE_1
    for line in FIGURE_1_TOTALS:
        assert line in text.splitlines()


def test_summary_leaves_model_and_random_stream_alone(rng):
    """Modes, BatchNorm statistics, gradients and hooks are as before; minidl's generator is not used."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 3))
    model[2].eval()
    state = model.state_dict()
    mdl.manual_seed(11)
    summary(model, (1, 8, 8))
    after = mdl.rand(3).array
    mdl.manual_seed(11)
    assert np.array_equal(after, mdl.rand(3).array)
    assert [m.training for m in model.modules()] == [True, True, True, False, True, True]
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[key])
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())


def test_trainable_batch_size_and_dtype(rng):
    """Frozen parameters count as non-trainable; batch_size appears in the shapes and scales the sizes;
    sizes use the dtype's bytes per number."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    model[0].requires_grad_(False)
    text = summary(model, (3, 6, 6), batch_size=64)
    assert table_rows(text)[:2] == [("Conv2d-1", "[64, 8, 4, 4]", "224"), ("BatchNorm2d-2", "[64, 8, 4, 4]", "16")]
    assert "Total params: 1,530" in text and "Trainable params: 1,306" in text
    assert "Non-trainable params: 224" in text
    # input 64*3*6*6 floats of 4 bytes; outputs 64*(3*128 + 128 + 10) floats, twice (values and gradients)
    assert f"Input size (MB): {64 * 108 * 4 / 2 ** 20:0.2f}" in text
    assert f"Forward/backward pass size (MB): {2 * 64 * 522 * 4 / 2 ** 20:0.2f}" in text
    text64 = summary(model.double(), (3, 6, 6), batch_size=64, dtype=mdl.float64)
    assert f"Params size (MB): {1530 * 8 / 2 ** 20:0.2f}" in text64


def test_several_inputs_and_tuple_outputs(rng):
    """A model with two inputs takes a list of sizes; a layer returning a tuple shows one shape per output."""
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 3)
            self.b = nn.Linear(5, 3)
            self.pool = nn.MaxPool2d(2, return_indices=True)

        def forward(self, x, z):
            y, _ = self.pool((self.a(x) + self.b(z)).reshape(-1, 1, 1, 3).expand(-1, 1, 2, 3))
            return y

    rows = table_rows(summary(TwoInputs(), [(4,), (5,)]))
    assert rows == [("Linear-1", "[-1, 3]", "15"), ("Linear-2", "[-1, 3]", "18"),
                    ("MaxPool2d-3", "[[-1, 1, 1, 1], [-1, 1, 1, 1]]", "0")]


def test_single_layer_model(rng):
    """A model without children is summarised as itself."""
    assert table_rows(summary(nn.Linear(4, 2), (4,))) == [("Linear-1", "[-1, 2]", "10")]
