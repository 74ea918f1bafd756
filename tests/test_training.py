"""fit/evaluate on tiny synthetic problems: learning, exact resume, the NaN guard, Ctrl-C, segmentation."""
import math

import numpy as np
import pytest

import minidl as mdl
import minidl.nn as nn
import minidl.optim as optim
from minidl import metrics, serialization
from minidl.data import DataLoader, TensorDataset
from minidl.training import (EvalResult, History, ResumeError, TrainingDiverged, check_resume, evaluate, fit,
                             load_checkpoint)

SEED = 1234


def _blobs(n: int, seed: int):
    """Three Gaussian blobs in 4-D around well separated centres: an easy 3-class problem."""
    g = np.random.default_rng(seed)
    centres = np.array([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]], dtype=np.float32)
    y = g.integers(0, 3, n)
    x = (centres[y] + 0.7 * g.standard_normal((n, 4))).astype(np.float32)
    return x, y.astype(np.int64)


def _setup(seed: int = SEED, lr: float = 0.05, plateau: bool = False):
    """Everything a run needs, built in a fixed order after manual_seed (as an experiment script does)."""
    mdl.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = (optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0) if plateau
                 else optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5))
    train = DataLoader(TensorDataset(*map(mdl.tensor, _blobs(96, 0))), batch_size=16, shuffle=True)
    val = DataLoader(TensorDataset(*map(mdl.tensor, _blobs(48, 1))), batch_size=32)
    return model, optimizer, scheduler, train, val


class Messages(list):
    """A ``log`` that keeps the messages."""

    def __call__(self, message):
        self.append(message)


class ScriptedLoss:
    """Cross-entropy that, at a chosen training (epoch, batch), raises or returns a chosen value instead."""

    def __init__(self, batches_per_epoch: int, at: tuple[int, int], action):
        self.loss = nn.CrossEntropyLoss()
        self.batches_per_epoch = batches_per_epoch
        self.calls = 0
        self.at = at
        self.action = action

    def __call__(self, out, y):
        loss = self.loss(out, y)
        if not out.requires_grad:  # a validation batch (run under no_grad): not counted
            return loss
        self.calls += 1
        epoch, batch = divmod(self.calls - 1, self.batches_per_epoch)
        if (epoch + 1, batch + 1) == self.at:
            return self.action(loss)
        return loss


def _weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def test_fit_learns_and_writes_history_and_csv(tmp_path):
    model, optimizer, scheduler, train, val = _setup(plateau=True)
    log = Messages()
    history = fit(model, nn.CrossEntropyLoss(), optimizer, train, val, epochs=6, scheduler=scheduler,
                  out_dir=tmp_path, log=log, log_every=3, progress=False,
                  metrics={"mean_recall": lambda r: metrics.mean_per_class_recall(r.predictions, r.targets, 3)})
    assert isinstance(history, History) and len(history) == 6
    assert history["epoch"] == [1, 2, 3, 4, 5, 6]
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert history["val_acc"][-1] > 0.9 and history["mean_recall"][-1] > 0.9
    assert all(a >= b for a, b in zip(history["lr"], history["lr"][1:]))  # plateau scheduler only lowers
    assert all(v > 0 for v in history["images_per_s"])
    # 96 samples in batches of 16: 6 batches per epoch, a running loss every 3.
    assert [(b["epoch"], b["batch"], b["step"]) for b in history.batch_losses[:3]] == [(1, 3, 3), (1, 6, 6),
                                                                                       (2, 3, 9)]
    assert any(m.startswith("epoch 6/6 | train loss") for m in log)
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == ("epoch,lr,train_loss,train_acc,val_loss,val_acc,mean_recall,train_seconds,seconds,"
                        "images_per_s")
    assert len(lines) == 7
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt["epoch"] == 6
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(ckpt["model"][k], v)


def test_evaluate_matches_a_manual_computation():
    model, _, _, _, val = _setup()
    x, y = _blobs(48, 1)
    model.train()
    result = evaluate(model, val, nn.CrossEntropyLoss(), keep_scores=True)
    assert isinstance(result, EvalResult) and result.num_samples == 48
    assert model.training  # the mode it was in is given back
    assert all(p.grad is None for p in model.parameters())  # no graph, no gradient
    model.eval()
    with mdl.no_grad():
        scores = model(mdl.tensor(x)).array
    # Cross-entropy by hand: mean over samples of logsumexp(scores) - scores[target].
    shifted = scores - scores.max(axis=1, keepdims=True)
    nll = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(48), y]
    assert result.loss == pytest.approx(float(nll.mean()), rel=1e-5)
    np.testing.assert_array_equal(result.predictions, scores.argmax(axis=1))
    np.testing.assert_array_equal(result.targets, y)
    np.testing.assert_array_equal(result.scores, scores)
    assert result.accuracy == pytest.approx(np.mean(scores.argmax(axis=1) == y))


def test_resume_after_ctrl_c_ends_with_identical_weights(tmp_path):
    # Uninterrupted: 5 epochs.
    model, optimizer, scheduler, train, val = _setup()
    full = fit(model, nn.CrossEntropyLoss(), optimizer, train, val, epochs=5, scheduler=scheduler,
               out_dir=tmp_path / "full", progress=False, log=Messages())
    expected = _weights(model)

    # Interrupted: Ctrl-C in the middle of epoch 3 (shuffling and dropout have drawn random numbers by then).
    model, optimizer, scheduler, train, val = _setup()
    log = Messages()

    def ctrl_c(loss):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(model, ScriptedLoss(len(train), (3, 4), ctrl_c), optimizer, train, val, epochs=5,
            scheduler=scheduler, out_dir=tmp_path / "cut", progress=False, log=log)
    ckpt_path = tmp_path / "cut" / "checkpoint.npz"
    assert log[-1].startswith("Interrupted during epoch 3/5. The checkpoint of epoch 2 is at")
    assert str(ckpt_path) in log[-1] and "resume=True" in log[-1]
    assert load_checkpoint(ckpt_path)["epoch"] == 2

    # Resumed in a fresh process-like setting: everything rebuilt, then fit(resume=True).
    model, optimizer, scheduler, train, val = _setup()
    log = Messages()
    resumed = fit(model, nn.CrossEntropyLoss(), optimizer, train, val, epochs=5, scheduler=scheduler,
                  out_dir=tmp_path / "cut", resume=True, progress=False, log=log)
    assert log[0] == f"Resuming from '{ckpt_path}': 2 of 5 epochs done."
    for k, v in expected.items():
        np.testing.assert_array_equal(model.state_dict()[k], v, err_msg=k)
    assert resumed["train_loss"] == full["train_loss"] and resumed["val_loss"] == full["val_loss"]
    assert resumed["lr"] == full["lr"]


def test_resume_is_not_a_no_op():
    # The same comparison must fail when the random state is not restored: resuming a run whose dropout and
    # shuffling drew different numbers gives different weights (so the test above can fail).
    model_a, opt_a, _, train_a, _ = _setup(seed=1)
    fit(model_a, nn.CrossEntropyLoss(), opt_a, train_a, epochs=2, progress=False, log=Messages())
    model_b, opt_b, _, train_b, _ = _setup(seed=1)
    mdl.manual_seed(999)  # dropout now draws other masks
    fit(model_b, nn.CrossEntropyLoss(), opt_b, train_b, epochs=2, progress=False, log=Messages())
    assert not np.array_equal(model_a.state_dict()["0.weight"], model_b.state_dict()["0.weight"])


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    model, optimizer, _, train, val = _setup()
    path = tmp_path / "ckpt.npz"
    snapshot = {}

    def poison(loss):
        snapshot["bytes"] = path.read_bytes()  # the checkpoint of epoch 1, as it is when epoch 2 goes bad
        return loss * float("nan")

    with pytest.raises(TrainingDiverged) as info:
        fit(model, ScriptedLoss(len(train), (2, 3), poison), optimizer, train, val, epochs=4,
            checkpoint_path=path, progress=False, log=Messages())
    err = info.value
    assert (err.epoch, err.batch, err.checkpoint_epoch, err.checkpoint_path) == (2, 3, 1, path)
    assert math.isnan(err.loss)
    message = str(err)
    assert "epoch 2/4, batch 3/6" in message and "nan" in message
    assert "lower the learning rate" in message and str(path) in message
    assert path.read_bytes() == snapshot["bytes"]
    assert load_checkpoint(path)["epoch"] == 1


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_real_divergence_of_a_regression_is_caught():
    # Linear regression with a huge learning rate: the MSE grows to inf within a few batches. Outputs are
    # not class scores, so accuracy is None, never computed.
    mdl.manual_seed(0)
    g = np.random.default_rng(0)
    x = g.standard_normal((64, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)).astype(np.float32)
    model = nn.Linear(3, 1)
    loader = DataLoader(TensorDataset(mdl.tensor(x), mdl.tensor(y)), batch_size=8, shuffle=True)
    with pytest.raises(TrainingDiverged, match="the loss is (nan|inf) at epoch 1/50"):
        fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=1e4), loader, epochs=50, progress=False,
            log=Messages())
    model = nn.Linear(3, 1)
    history = fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.05), loader, epochs=3, progress=False,
                  log=Messages())
    assert history["train_acc"] == [None, None, None]
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_ctrl_c_before_any_checkpoint_says_so(tmp_path):
    model, optimizer, _, train, _ = _setup()
    log = Messages()

    def ctrl_c(loss):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(model, ScriptedLoss(len(train), (1, 2), ctrl_c), optimizer, train, epochs=3, out_dir=tmp_path,
            progress=False, log=log)
    assert "No epoch was completed" in log[-1]
    assert not (tmp_path / "checkpoint.npz").exists()


def test_resume_arguments(tmp_path):
    model, optimizer, _, train, _ = _setup()
    with pytest.raises(ValueError, match="resume=True needs a checkpoint"):
        fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=1, resume=True, progress=False)
    log = Messages()
    fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=1, resume=True, out_dir=tmp_path,
        progress=False, log=log)
    assert log[0].startswith("No checkpoint at") and "starting from scratch" in log[0]
    # A finished run resumed with the same number of epochs has nothing left to do.
    before = _weights(model)
    history = fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=1, resume=True, out_dir=tmp_path,
                  progress=False, log=Messages())
    assert len(history) == 1
    for k, v in before.items():
        np.testing.assert_array_equal(model.state_dict()[k], v)
    serialization.save({"something": "else"}, tmp_path / "other.npz")
    with pytest.raises(serialization.SerializationError, match="not a checkpoint"):
        fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=2, resume=True,
            checkpoint_path=tmp_path / "other.npz", progress=False, log=Messages())


def _cosine_setup(epochs: int):
    model, optimizer, _, train, val = _setup()
    return model, optimizer, optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs), train, val


def test_resume_with_more_epochs_follows_the_schedule_for_the_new_total(tmp_path):
    model, optimizer, scheduler, train, _ = _cosine_setup(2)
    fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=2, scheduler=scheduler, out_dir=tmp_path,
        progress=False, log=Messages())
    # Resumed for 4 epochs with a cosine built for 4: epochs 3 and 4 follow that cosine (the checkpoint's
    # own, over 2 epochs, would have trained them at 0 and then climbed back up).
    model, optimizer, scheduler, train, _ = _cosine_setup(4)
    log = Messages()
    history = fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=4, scheduler=scheduler, out_dir=tmp_path,
                  resume=True, progress=False, log=log)
    cosine = [0.05 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(4)]
    assert history["lr"][:2] == pytest.approx([0.05, 0.025])  # as trained: the cosine over 2 epochs
    assert history["lr"][2:] == pytest.approx(cosine[2:])
    assert "started for 2 epochs and now has 4" in log[1] and "CosineAnnealingLR" in log[1]
    assert load_checkpoint(tmp_path / "checkpoint.npz")["epochs"] == 4


def test_resume_with_fewer_epochs_than_done_is_refused_untouched(tmp_path):
    model, optimizer, scheduler, train, _ = _cosine_setup(3)
    fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=3, scheduler=scheduler, out_dir=tmp_path,
        progress=False, log=Messages())
    model, optimizer, scheduler, train, _ = _cosine_setup(2)
    before = _weights(model)
    with pytest.raises(ValueError, match="3 epochs done, more than epochs=2"):
        fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=2, scheduler=scheduler, out_dir=tmp_path,
            resume=True, progress=False, log=Messages())
    for k, v in before.items():
        np.testing.assert_array_equal(model.state_dict()[k], v)


def test_fit_removes_the_temporaries_of_a_killed_checkpoint_write(tmp_path):
    # serialization.save writes .<name>.<random>.tmp beside the checkpoint, then renames it; a process killed
    # in between leaves it behind. Only those go: other files, even similar names, stay.
    stale = [tmp_path / ".checkpoint.npz.a1b2c3d4.tmp", tmp_path / ".checkpoint.npz.zz_9x8y7.tmp"]
    kept = [tmp_path / ".checkpoint.npz.tmp", tmp_path / "checkpoint.npz.tmp", tmp_path / ".other.npz.a1b2c3d4.tmp"]
    for path in stale + kept:
        path.write_bytes(b"partial")
    model, optimizer, _, train, _ = _setup()
    log = Messages()
    fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=1, out_dir=tmp_path, resume=True, progress=False,
        log=log)
    assert not any(path.exists() for path in stale) and all(path.exists() for path in kept)
    assert log[0].startswith("Removed 2 temporary file(s)") and stale[0].name in log[0]


def test_segmentation_outputs_use_pixel_accuracy():
    # A 1x1 convolution labels each pixel of 2-channel images by which channel is larger (3 classes:
    # 0, 1, or 2 where both are negative). Outputs (N, 3, H, W), targets (N, H, W).
    g = np.random.default_rng(3)
    x = g.standard_normal((24, 2, 5, 5)).astype(np.float32)
    y = np.where((x[:, 0] < 0) & (x[:, 1] < 0), 2, (x[:, 1] > x[:, 0]).astype(np.int64)).astype(np.int64)
    mdl.manual_seed(0)
    model = nn.Conv2d(2, 3, 1)
    loader = DataLoader(TensorDataset(mdl.tensor(x), mdl.tensor(y)), batch_size=8, shuffle=True)
    history = fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.05), loader, loader,
                  epochs=4, progress=False, log=Messages())
    assert history["train_loss"][-1] < history["train_loss"][0]
    result = evaluate(model, DataLoader(TensorDataset(mdl.tensor(x), mdl.tensor(y)), batch_size=8),
                      nn.CrossEntropyLoss(), keep_scores=True)
    assert result.predictions.shape == (24, 5, 5) and result.scores.shape == (24, 3, 5, 5)
    assert result.accuracy == pytest.approx(np.mean(result.scores.argmax(axis=1) == y))
    assert result.accuracy == pytest.approx(metrics.accuracy(result.scores, y))
    assert history["val_acc"][-1] == pytest.approx(result.accuracy)


def test_history_state_and_csv_round_trip(tmp_path):
    h = History()
    h.append({"epoch": 1, "train_loss": 0.5, "val_loss": None})
    h.append({"epoch": 2, "train_loss": 0.25, "val_loss": 0.3, "extra": 1})
    assert h.columns == ["epoch", "train_loss", "val_loss", "extra"]
    assert h["extra"] == [None, 1]
    back = History.from_state_dict(serialization.load(serialization.save(h.state_dict(), tmp_path / "h.npz")))
    assert back.rows == h.rows
    h.to_csv(tmp_path / "m.csv")
    assert (tmp_path / "m.csv").read_text() == "epoch,train_loss,val_loss,extra\n1,0.5,,\n2,0.25,0.3,1\n"
    with pytest.raises(KeyError, match="no column 'acc'"):
        h["acc"]


def test_progress_bars_run_when_enabled(monkeypatch, capsys):
    # Under pytest stderr is not a terminal, so bars are off; switch them on to run the bar code path.
    import minidl.training as training
    monkeypatch.setattr(training, "_progress_enabled", lambda progress: bool(progress))
    model, optimizer, _, train, val = _setup()
    fit(model, nn.CrossEntropyLoss(), optimizer, train, val, epochs=2, log=Messages())
    assert "epoch 2/2" in capsys.readouterr().err
    fit(model, nn.CrossEntropyLoss(), optimizer, train, val, epochs=1, progress=False, log=Messages())
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("make", [
    lambda opt, n: optim.lr_scheduler.LambdaLR(opt, lambda e: 1 - e / n),
    lambda opt, n: optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=n),
    lambda opt, n: optim.lr_scheduler.SequentialLR(
        opt, [optim.lr_scheduler.ConstantLR(opt, factor=0.5, total_iters=1),
              optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n - 1)], milestones=[1]),
], ids=["LambdaLR", "OneCycleLR", "SequentialLR"])
def test_resume_for_another_length_refuses_a_schedule_that_cannot_be_stretched(tmp_path, make):
    model, optimizer, _, train, _ = _setup()
    fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=2, scheduler=make(optimizer, 2), out_dir=tmp_path,
        progress=False, log=Messages())
    checkpoint = (tmp_path / "checkpoint.npz").read_bytes()
    model, optimizer, _, train, _ = _setup()
    before = _weights(model)
    with pytest.raises(ResumeError, match="planned for 2 epochs.*cannot be stretched to 4.*epochs=2") as err:
        fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=4, scheduler=make(optimizer, 4),
            out_dir=tmp_path, resume=True, progress=False, log=Messages())
    assert err.value.planned == 2 and isinstance(err.value, ValueError)
    assert (tmp_path / "checkpoint.npz").read_bytes() == checkpoint
    for k, v in before.items():
        np.testing.assert_array_equal(model.state_dict()[k], v)
    # Its own length still resumes (nothing left to do), and a plateau scheduler continues any length.
    fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=2, scheduler=make(optimizer, 2), out_dir=tmp_path,
        resume=True, progress=False, log=Messages())


def test_resume_with_a_plateau_scheduler_for_more_epochs_continues(tmp_path):
    model, optimizer, scheduler, train, val = _setup(plateau=True)
    fit(model, nn.CrossEntropyLoss(), optimizer, train, val, epochs=2, scheduler=scheduler, out_dir=tmp_path,
        progress=False, log=Messages())
    model, optimizer, scheduler, train, val = _setup(plateau=True)
    history = fit(model, nn.CrossEntropyLoss(), optimizer, train, val, epochs=3, scheduler=scheduler,
                  out_dir=tmp_path, resume=True, progress=False, log=Messages())
    assert len(history) == 3


def test_a_checkpoint_that_does_not_fit_the_model_is_a_resume_error(tmp_path):
    model, optimizer, scheduler, train, _ = _setup()
    fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=1, scheduler=scheduler, out_dir=tmp_path,
        progress=False, log=Messages())
    mdl.manual_seed(SEED)
    other = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = optim.SGD(other.parameters(), lr=0.05, momentum=0.9)
    with pytest.raises(ResumeError, match="does not match this model") as err:
        fit(other, nn.CrossEntropyLoss(), opt, train, epochs=2, scheduler=optim.lr_scheduler.StepLR(opt, 3),
            out_dir=tmp_path, resume=True, progress=False, log=Messages())
    assert err.value.checkpoint_path == tmp_path / "checkpoint.npz"
    with pytest.raises(ResumeError, match="does not match this model"):
        check_resume(tmp_path / "checkpoint.npz", other, opt, epochs=2)


def test_a_batch_interval_steps_the_scheduler_after_every_optimizer_step():
    model, optimizer, _, train, _ = _setup()
    batches = len(train)
    scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=3 * batches)
    seen = []
    original_step = optimizer.step

    def step():
        seen.append(optimizer.param_groups[0]["lr"])
        original_step()
    optimizer.step = step
    history = fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=3, scheduler=scheduler,
                  scheduler_interval="batch", progress=False, log=Messages())
    # The lr each step used is the one-cycle's, step by step, from max_lr / 25 up to max_lr and down.
    reference = optim.lr_scheduler.OneCycleLR(optim.SGD([nn.Parameter(mdl.zeros(1))], lr=0.1), max_lr=0.1,
                                              total_steps=3 * batches)
    expected = []
    for _ in range(3 * batches):
        expected.append(reference.optimizer.param_groups[0]["lr"])
        reference.optimizer.step()
        reference.step()
    assert seen == pytest.approx(expected)
    assert scheduler.last_epoch == 3 * batches
    assert history["lr"] == pytest.approx([expected[0], expected[batches], expected[2 * batches]])


def test_a_batch_interval_resumed_for_more_epochs_continues_the_new_schedule(tmp_path):
    model, optimizer, _, train, _ = _setup()
    batches = len(train)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=2 * batches)
    fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=2, scheduler=scheduler, scheduler_interval="batch",
        out_dir=tmp_path, progress=False, log=Messages())
    model, optimizer, _, train, _ = _setup()
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4 * batches)
    history = fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=4, scheduler=scheduler,
                  scheduler_interval="batch", out_dir=tmp_path, resume=True, progress=False, log=Messages())
    # Epoch 3 starts where the cosine over 4 epochs' batches is after 2 epochs' batches, not at its start.
    assert history["lr"][2] == pytest.approx(0.05 * (1 + math.cos(math.pi * 2 / 4)) / 2)
    assert scheduler.last_epoch == 4 * batches


def test_batch_interval_arguments_are_checked():
    model, optimizer, _, train, _ = _setup(plateau=True)
    with pytest.raises(ValueError, match="scheduler_interval must be 'epoch' or 'batch'"):
        fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=1, scheduler_interval="step", progress=False)
    plateau = optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    with pytest.raises(ValueError, match="ReduceLROnPlateau follows a loss measured once per epoch"):
        fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=1, scheduler=plateau, scheduler_interval="batch",
            progress=False)


def test_on_epoch_sees_the_history_after_each_epoch():
    model, optimizer, scheduler, train, val = _setup()
    calls = []
    fit(model, nn.CrossEntropyLoss(), optimizer, train, val, epochs=3, scheduler=scheduler, progress=False,
        log=Messages(), log_every=2, on_epoch=lambda h: calls.append((h.last["epoch"], len(h), len(h.batch_losses))))
    per_epoch = len(train) // 2
    assert calls == [(e, e, e * per_epoch) for e in (1, 2, 3)]
