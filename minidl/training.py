"""The training loop every experiment shares: :func:`fit` and :func:`evaluate`.

One epoch of :func:`fit` is the loop of every PyTorch tutorial::

    model.train()
    for x, y in train_loader:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

plus what a real run needs around it:

- a progress bar (tqdm, on a terminal only) with the running loss, accuracy and images per second;
- a :class:`History` of per-epoch numbers (train/val loss and accuracy, extra metrics, time, throughput),
  written to ``metrics.csv``;
- a checkpoint written atomically at the end of every epoch (model, optimizer, scheduler, history and
  minidl's random state), so ``resume=True`` continues an interrupted run and ends with exactly the
  weights an uninterrupted run with the same seed would have; resumed with more epochs than it was
  started with, a run follows its learning-rate schedule rebuilt for the new total (a cosine then
  anneals over all the epochs, instead of sitting at its end; a schedule that cannot be rebuilt for another
  length is refused with :class:`ResumeError`, as is a checkpoint that does not fit the model);
- a guard that stops with :class:`TrainingDiverged` as soon as the loss is NaN or infinite, leaving the last
  good checkpoint untouched;
- Ctrl-C during an epoch: a message saying which checkpoint is on disk and how to resume, then the
  ``KeyboardInterrupt`` goes on up.

Classification ``(N, C)`` and segmentation ``(N, C, H, W)`` outputs are both handled: accuracy is the
fraction of samples, or of pixels, whose arg-max over the class axis is the target.
"""
from __future__ import annotations

import fnmatch
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from . import distributed as _distributed
from . import random as _random
from . import serialization
from .autograd import no_grad
from .backend import normalize_device, to_numpy
from .tensor import Tensor

__all__ = ["fit", "evaluate", "History", "EvalResult", "TrainingDiverged", "ResumeError", "load_checkpoint",
           "check_resume"]

CHECKPOINT_NAME = "checkpoint.npz"
METRICS_NAME = "metrics.csv"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; training stopped before writing anything.

    Attributes:
        epoch: the epoch (counting from 1) in which it happened.
        batch: the batch (counting from 1) of that epoch, or None when the validation loss diverged.
        loss: the loss value.
        checkpoint_path: the checkpoint left untouched (None when fit had none).
        checkpoint_epoch: the epoch that checkpoint holds (0 when none was written yet).
    """

    def __init__(self, message: str, epoch: int, batch: int | None, loss: float,
                 checkpoint_path: Path | None, checkpoint_epoch: int):
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.loss = loss
        self.checkpoint_path = checkpoint_path
        self.checkpoint_epoch = checkpoint_epoch


class ResumeError(ValueError):
    """A checkpoint that cannot be continued as asked: it does not fit the model and optimizer given, or the run
    is given another length and its scheduler's schedule cannot be stretched to it.

    Attributes:
        checkpoint_path: the checkpoint.
        planned: the epochs the checkpoint's run was planned for, when the schedule is what cannot be
            stretched (else None).
    """

    def __init__(self, message: str, checkpoint_path: Path, planned: int | None = None):
        super().__init__(message)
        self.checkpoint_path = checkpoint_path
        self.planned = planned


class History:
    """Per-epoch numbers of a run: one row (a dict) per epoch, read back by column.

    Standard columns: ``epoch`` (counting from 1), ``lr`` (of the first parameter group, during the
    epoch), ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, one column per extra metric,
    ``train_seconds``, ``seconds`` (train + validation) and ``images_per_s`` (training throughput).
    Accuracies are fractions in [0, 1]; a number that does not exist (no validation set, a regression
    loss) is None. ``batch_losses`` holds the running losses logged every ``log_every`` batches.

    >>> h = History()
    >>> h.append({"epoch": 1, "train_loss": 0.9})
    >>> h["train_loss"]
    [0.9]
    """

    def __init__(self, rows: Iterable[Mapping[str, Any]] = (), batch_losses: Iterable[Mapping] = ()):
        self.rows: list[dict[str, Any]] = [dict(r) for r in rows]
        self.batch_losses: list[dict[str, Any]] = [dict(b) for b in batch_losses]

    def append(self, row: Mapping[str, Any]) -> None:
        """Add one epoch's row."""
        self.rows.append(dict(row))

    @property
    def columns(self) -> list[str]:
        """Every column name, in order of first appearance."""
        names: dict[str, None] = {}
        for row in self.rows:
            names.update(dict.fromkeys(row))
        return list(names)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, column: str) -> list:
        if column not in self.columns:
            raise KeyError(f"History has no column {column!r}; columns: {self.columns}")
        return [row.get(column) for row in self.rows]

    def as_dict(self) -> dict[str, list]:
        """``{column: [value per epoch]}``, what the plotting functions read."""
        return {c: self[c] for c in self.columns}

    @property
    def last(self) -> dict[str, Any]:
        """The row of the last epoch (an empty dict before the first)."""
        return dict(self.rows[-1]) if self.rows else {}

    def state_dict(self) -> dict[str, Any]:
        """The history as plain lists and dicts, for a checkpoint."""
        return {"rows": [dict(r) for r in self.rows], "batch_losses": [dict(b) for b in self.batch_losses]}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> "History":
        """The History a :meth:`state_dict` describes."""
        return cls(state.get("rows", ()), state.get("batch_losses", ()))

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write one line per epoch (header first; empty cells for missing values), atomically."""
        path = Path(path)
        columns = self.columns
        lines = [",".join(columns)]
        for row in self.rows:
            lines.append(",".join(_csv_cell(row.get(c)) for c in columns))
        _write_text_atomically(path, "\n".join(lines) + "\n")
        return path

    def __repr__(self) -> str:
        return f"History({len(self)} epochs, columns={self.columns})"


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _write_text_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


@dataclass
class EvalResult:
    """What :func:`evaluate` measured.

    Attributes:
        loss: mean loss per sample (None without a loss function).
        accuracy: fraction of samples (pixels, for segmentation) predicted right (None when the outputs are
            not class scores).
        predictions: NumPy array of predicted classes, ``(N,)`` or ``(N, H, W)`` (None when not class scores).
        targets: NumPy array of the targets, in loader order.
        scores: NumPy array of the raw model outputs when asked for (``keep_scores=True``), else None.
        num_samples: N.
        seconds: wall-clock time of the pass.
    """

    loss: float | None
    accuracy: float | None
    predictions: np.ndarray | None
    targets: np.ndarray
    scores: np.ndarray | None
    num_samples: int
    seconds: float


# ----------------------------------------------------------------------------------- helpers
def _model_device(model) -> str:
    for p in model.parameters():
        return p.device
    return "cpu"


def _to(t, device: str) -> Tensor:
    if not isinstance(t, Tensor):
        t = Tensor(t)
    return t if t.device == device else t.to(device)


def _batch(batch, device: str) -> tuple[Tensor, Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        got = type(batch).__name__ + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        raise TypeError(f"fit/evaluate: expected the loader to yield (input, target) pairs, got {got}")
    return _to(batch[0], device), _to(batch[1], device)


def _is_class_scores(out: Tensor, y: Tensor) -> bool:
    return out.ndim == y.ndim + 1 and out.ndim >= 2 and y.dtype.kind in "iu"


def _count_correct(out: Tensor, y: Tensor, ignore_index: int | None) -> tuple[int, int, Any]:
    """(number right, number counted, predicted classes as a device array) for class scores."""
    pred = out.array.argmax(axis=1)
    hit = pred == y.array
    if ignore_index is None:
        return int(hit.sum()), int(hit.size), pred
    valid = y.array != ignore_index
    return int((hit & valid).sum()), int(valid.sum()), pred


def _ignore_index(loss_fn) -> int | None:
    # Targets equal to the loss's ignore_index (CrossEntropyLoss, NLLLoss) do not count for accuracy either.
    value = getattr(loss_fn, "ignore_index", None)
    return value if isinstance(value, int) else None


def _progress_enabled(progress: bool) -> bool:
    return bool(progress) and sys.stderr.isatty()


def _default_log(message: str) -> None:
    tqdm.write(message)  # prints above an active progress bar instead of through it


def _len_or_none(loader) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def _lr(optimizer) -> float | None:
    groups = getattr(optimizer, "param_groups", None)
    return float(groups[0]["lr"]) if groups else None


def _is_plateau_scheduler(scheduler) -> bool:
    from .optim.lr_scheduler import ReduceLROnPlateau
    return isinstance(scheduler, ReduceLROnPlateau)


def _fmt(value, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f} %" if percent else f"{value:.4f}"


# ----------------------------------------------------------------------------------- evaluate
def evaluate(model, loader, loss_fn: Callable | None = None, *, device: str | None = None,
             keep_scores: bool = False, progress: bool = False, desc: str = "evaluate") -> EvalResult:
    """Run ``model`` over ``loader`` in eval mode without recording a graph, and measure it.

    The model is put in eval mode (dropout off, batch norm on running statistics) for the pass and
    given back in the mode it was in.

    Args:
        model: the network.
        loader: yields ``(x, y)`` batches.
        loss_fn: e.g. ``nn.CrossEntropyLoss()``; the loss is averaged over samples (each batch's mean loss
            weighted by its size). None: no loss.
        device: where to run (default: where the model's parameters are). Batches are moved there.
        keep_scores: also return the raw outputs (as a NumPy array, e.g. for average precision).
        progress: show a progress bar (on a terminal only).
        desc: the progress bar's label.

    Under ``mpiexec`` (more than one rank), a DataLoader that reads its dataset in order is split into one
    contiguous slice per rank; the sums are added and the outputs gathered in order, so every rank gets the
    single-process result. Any other loader is evaluated whole on every rank.

    Returns:
        An :class:`EvalResult`.
    """
    device = normalize_device(device) if device is not None else _model_device(model)
    sharded = None
    if _distributed.rank_and_size()[1] > 1:  # under MPI: each rank evaluates its slice, the sums are shared
        sharded = _distributed.shard_evaluation_loader(loader)
        loader = loader if sharded is None else sharded
        progress = progress and _distributed.get_rank() == 0
    ignore_index = _ignore_index(loss_fn)
    was_training = getattr(model, "training", False)
    model.eval()
    start = time.perf_counter()
    loss_sum, n, correct, counted = 0.0, 0, 0, 0
    preds, targets, scores = [], [], []
    class_scores = True
    try:
        with no_grad(), tqdm(loader, total=_len_or_none(loader), desc=desc, leave=False,
                             disable=not _progress_enabled(progress), unit="batch") as bar:
            for batch in bar:
                x, y = _batch(batch, device)
                out = model(x)
                N = x.shape[0]
                if loss_fn is not None:
                    loss_sum += float(loss_fn(out, y).item()) * N
                n += N
                class_scores = class_scores and _is_class_scores(out, y)
                if class_scores:
                    c, k, pred = _count_correct(out, y, ignore_index)
                    correct += c
                    counted += k
                    preds.append(to_numpy(pred).astype(np.int64, copy=False))
                targets.append(np.array(to_numpy(y.array)))
                if keep_scores:
                    scores.append(np.array(to_numpy(out.array)))
    finally:
        model.train(was_training)
    if sharded is not None:
        loss_sum, n, correct, counted = _distributed.all_sum(np.array([loss_sum, n, correct, counted],
                                                                      dtype=np.float64)).tolist()
        n, correct, counted = int(n), int(correct), int(counted)
        class_scores = bool(_distributed.all_sum(np.array([0 if class_scores else 1], np.int64))[0] == 0)
        preds, targets = _gathered(preds), _gathered(targets)
        scores = _gathered(scores) if keep_scores else scores
    if n == 0:
        raise ValueError("evaluate: the loader yielded no batch")
    return EvalResult(
        loss=loss_sum / n if loss_fn is not None else None,
        accuracy=correct / counted if class_scores and counted else None,
        predictions=np.concatenate(preds) if class_scores else None,
        targets=np.concatenate(targets),
        scores=np.concatenate(scores) if keep_scores else None,
        num_samples=n,
        seconds=time.perf_counter() - start)


def _gathered(parts: list) -> list:
    """Every rank's arrays (concatenated per rank), in rank order: the whole evaluation's, in its order."""
    mine = np.concatenate(parts) if parts else np.empty(0)
    return [a for a in _distributed.all_gather(mine) if a.size]


# ----------------------------------------------------------------------------------- checkpoints
def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`fit`.

    Returns:
        ``{"epoch": epochs done, "epochs": the run's total number of epochs then (absent from checkpoints
        of older minidl versions), "model": state_dict, "optimizer": state_dict, "scheduler": state_dict or
        None, "history": History.state_dict(), "rng": minidl's random state, "loader_seed": the training
        loader's seed or None}``.
    """
    ckpt = serialization.load(path)
    if not isinstance(ckpt, dict) or ckpt.get("kind") != "minidl.training checkpoint":
        raise serialization.SerializationError(f"load_checkpoint: '{path}' is not a checkpoint written by "
                                               "minidl.training.fit")
    return ckpt


def _remove_stale_temporaries(checkpoint_path: Path) -> list[str]:
    """Delete the temporary files that a killed checkpoint write left beside ``checkpoint_path``.

    :func:`minidl.serialization.save` writes ``.<name>.<random>.tmp`` in the checkpoint's folder and renames
    it over the checkpoint when complete; a process killed in between (``kill -9``, a power cut) leaves the
    temporary behind, never a half checkpoint. Returns the names removed.
    """
    folder = checkpoint_path.parent
    if not folder.is_dir():
        return []
    pattern = f".{checkpoint_path.name}.*.tmp"
    stale = sorted(p for p in folder.iterdir() if fnmatch.fnmatchcase(p.name, pattern) and p.is_file())
    for p in stale:
        p.unlink()
    return [p.name for p in stale]


def _length_free(scheduler) -> bool:
    """Whether the scheduler's course does not depend on the run's length, so that its saved state continues
    any length: ``ReduceLROnPlateau`` (driven by the loss) and ``CosineAnnealingWarmRestarts`` (its cycles)."""
    from .optim.lr_scheduler import CosineAnnealingWarmRestarts
    return _is_plateau_scheduler(scheduler) or isinstance(scheduler, CosineAnnealingWarmRestarts)


def _restart_schedule(scheduler, epoch: int) -> list[float] | None:
    """Put a scheduler built for a run's new length at ``epoch`` of its own schedule, by its closed form.

    Returns the learning rates it sets, or None, changing nothing, for a scheduler without a closed form
    (``ReduceLROnPlateau``, ``LambdaLR``, ``OneCycleLR``, ``SequentialLR``, ...): it cannot be rebuilt this
    way, and :func:`fit` refuses to resume one for another length unless its course does not depend on the
    run's length (see :func:`_length_free`).
    """
    closed_form = getattr(scheduler, "_get_closed_form_lr", None)
    if closed_form is None:
        return None
    # The schedules are recursive (each lr from the last one): once the closed form has set the lr of the
    # epoch reached, the next step() carries on from there along the new schedule.
    scheduler.last_epoch = epoch
    lrs = closed_form()
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = list(lrs)
    return lrs


def _save_checkpoint(path: Path, epoch: int, epochs: int, model, optimizer, scheduler, history: History,
                     loader_seed: int | None) -> None:
    serialization.save({
        "kind": "minidl.training checkpoint",
        "epoch": epoch,
        "epochs": epochs,
        "loader_seed": loader_seed,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "history": history.state_dict(),
        "rng": _random.get_state(),
    }, path)


def check_resume(checkpoint_path: str | os.PathLike, model, optimizer, *, epochs: int, scheduler=None) -> dict:
    """Check that ``fit(..., epochs=epochs, scheduler=scheduler, resume=True)`` can continue the checkpoint at
    ``checkpoint_path``, before anything else is written (fit makes the same checks).

    Loads the checkpoint's model and optimizer states into ``model`` and ``optimizer`` (fit restores them
    again), so a checkpoint that does not fit them is found here.

    Returns:
        The checkpoint, as :func:`load_checkpoint` reads it.

    Raises:
        ResumeError: the checkpoint has more epochs done than ``epochs``; it has no scheduler state but a
            scheduler is given; its model or optimizer state does not fit ``model`` or ``optimizer``;
            ``epochs`` differs from the run's planned epochs and the scheduler's schedule cannot be
            stretched (no closed form to rebuild it for the new length, and a course that depends on it).
        serialization.SerializationError: the file is not a readable checkpoint.
    """
    checkpoint_path = Path(checkpoint_path)
    ckpt = load_checkpoint(checkpoint_path)
    _restore_states(ckpt, checkpoint_path, model, optimizer, scheduler, epochs)
    return ckpt


def _restore_states(ckpt: dict, path: Path, model, optimizer, scheduler, epochs: int) -> None:
    """The checks of a resume, then the model's and the optimizer's states loaded (see :func:`check_resume`)."""
    done = int(ckpt["epoch"])
    if done > epochs:
        raise ResumeError(f"fit: the checkpoint '{path}' has {done} epochs done, more than epochs={epochs}: pass "
                          f"epochs={done} or more to resume it", path)
    if scheduler is not None and ckpt["scheduler"] is None:
        raise ResumeError(f"fit: the checkpoint '{path}' has no scheduler state but a scheduler was given", path)
    planned = ckpt.get("epochs")
    if (scheduler is not None and planned is not None and planned != epochs and not _length_free(scheduler)
            and getattr(scheduler, "_get_closed_form_lr", None) is None):
        raise ResumeError(f"fit: the run in the checkpoint '{path}' was planned for {planned} epochs, and the "
                          f"schedule of its {type(scheduler).__name__} cannot be stretched to {epochs} (it has "
                          f"no closed form to rebuild it for another length): resume it with its original "
                          f"epochs={planned}", path, planned)
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
        raise ResumeError(f"fit: the checkpoint '{path}' does not match this model and optimizer, so it cannot "
                          f"be resumed with them: {err}", path) from err


# ----------------------------------------------------------------------------------- fit
def fit(model, loss_fn: Callable, optimizer, train_loader, val_loader=None, *, epochs: int,
        scheduler=None, scheduler_interval: str = "epoch", out_dir: str | os.PathLike | None = None,
        checkpoint_path: str | os.PathLike | None = None, resume: bool = False,
        metrics: Mapping[str, Callable[[EvalResult], float]] | None = None, device: str | None = None,
        progress: bool = True, log: Callable[[str], Any] | None = None,
        log_every: int | None = None, on_epoch: Callable[["History"], Any] | None = None) -> History:
    """Train ``model`` for ``epochs`` epochs, validating, logging and checkpointing after each.

    Args:
        model: the network (a ``minidl.nn.Module``).
        loss_fn: ``loss_fn(output, target)`` -> scalar Tensor, e.g. ``nn.CrossEntropyLoss()``.
        optimizer: a ``minidl.optim`` optimizer over the model's parameters.
        train_loader: yields ``(x, y)`` batches; if it has ``set_epoch``, it is called with the epoch index
            (from 0) before each epoch, so the shuffle order is a function of (seed, epoch) and a resumed
            run sees the same batches as an uninterrupted one.
        val_loader: evaluated after every epoch (optional).
        epochs: the total number of epochs (a resumed run counts the epochs already done; it may be more
            than the run was started with, not fewer than the epochs done).
        scheduler: a ``minidl.optim.lr_scheduler`` scheduler, stepped once per epoch
            (``ReduceLROnPlateau`` with the validation loss, or the training loss without validation), or
            after every optimizer step with ``scheduler_interval="batch"``. Build
            it for ``epochs``: when a resumed run's ``epochs`` differs from the checkpoint's, this scheduler
            (not the checkpoint's, built for the old length) continues from the epoch reached, and a log line
            says so. That needs a scheduler with a closed form (``StepLR``, ``MultiStepLR``,
            ``CosineAnnealingLR``, ``ExponentialLR``, ...) or one whose course does not depend on the length
            (``ReduceLROnPlateau``, ``CosineAnnealingWarmRestarts``); any other (``LambdaLR``, ``OneCycleLR``,
            ``SequentialLR``, ...) is refused with :class:`ResumeError`.
        scheduler_interval: ``"epoch"`` (the default) or ``"batch"``: step the scheduler after each epoch,
            or after each optimizer step, as ``OneCycleLR`` is meant to be (built with
            ``total_steps=epochs * len(train_loader)``). The ``lr`` column is the rate the epoch began with.
        out_dir: a folder for ``checkpoint.npz`` and ``metrics.csv`` (rewritten every epoch).
        checkpoint_path: where to write the checkpoint (default ``out_dir/checkpoint.npz``; no checkpoint
            when neither is given).
        resume: continue from the checkpoint if it exists (model, optimizer, scheduler, history and random
            state are restored); start from scratch, saying so, if it does not. Either way, temporary files
            left beside the checkpoint by a write that was killed are deleted first, saying so.
        metrics: extra validation numbers, ``{name: fn(EvalResult) -> float}``, each a History column, e.g.
            ``{"mean_recall": lambda r: mean_per_class_recall(r.predictions, r.targets, 10)}``. When given,
            the raw validation outputs are kept (``EvalResult.scores``) for metrics like average precision.
        device: where to train (``"cpu"``/``"cuda"``); the model is moved there. Default: where the model is.
        progress: show tqdm progress bars (only when stderr is a terminal).
        log: where one-line messages go (the epoch summaries, resume and interrupt notes); default prints
            above the progress bar.
        log_every: also log the mean loss of every ``log_every`` batches (``[epoch 1, batch 2000] loss
            2.212``, as the PyTorch CIFAR-10 tutorial prints), kept in ``History.batch_losses``.
        on_epoch: called with the :class:`History` after each epoch (its last row is the epoch just done,
            as logged and written to ``metrics.csv``), e.g. to write it to TensorBoard as training goes.

    Under ``mpiexec`` (a :mod:`minidl.distributed` process group of more than one rank), every rank calls
    ``fit`` alike: the loader is re-made with a :class:`~minidl.distributed.DistributedSampler` (its seed, its
    batch size split evenly among the ranks: the ranks' batches together are this loader's batches), the
    model is wrapped in :class:`~minidl.distributed.DistributedDataParallel`, the epoch's loss and accuracy
    are summed over the ranks, validation is split among them (see :func:`evaluate`), and only rank 0 logs
    and writes the checkpoint and ``metrics.csv``. A resumed run's checkpoint is read by every rank.

    Returns:
        The :class:`History` (the restored epochs included, when resuming).

    Raises:
        ValueError: bad arguments.
        ResumeError: (a ValueError) ``resume=True`` and the checkpoint cannot be continued as asked (see
            :func:`check_resume`): more epochs done than ``epochs``, a model or optimizer it does not fit, or
            a schedule that cannot be stretched to ``epochs``. Nothing was changed on disk.
        TrainingDiverged: the training or validation loss became NaN or infinite; nothing was written for
            that epoch, the last good checkpoint is untouched.
        KeyboardInterrupt: re-raised after saying which checkpoint is on disk and how to resume.
    """
    log = _default_log if log is None else log
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
    if log_every is not None and log_every < 1:
        raise ValueError(f"fit: log_every must be a positive integer, got {log_every!r}")
    if scheduler_interval not in ("epoch", "batch"):
        raise ValueError(f"fit: scheduler_interval must be 'epoch' or 'batch', got {scheduler_interval!r}")
    if scheduler_interval == "batch" and _is_plateau_scheduler(scheduler):
        raise ValueError("fit: ReduceLROnPlateau follows a loss measured once per epoch: use "
                         "scheduler_interval='epoch' with it")
    if device is not None:
        device = normalize_device(device)
        model.to(device)
    else:
        device = _model_device(model)
    out_dir = Path(out_dir) if out_dir is not None else None
    if checkpoint_path is not None:
        checkpoint_path = Path(checkpoint_path)
    elif out_dir is not None:
        checkpoint_path = out_dir / CHECKPOINT_NAME
    if resume and checkpoint_path is None:
        raise ValueError("fit: resume=True needs a checkpoint: pass checkpoint_path= or out_dir=")
    metrics = dict(metrics or {})
    rank, world = _distributed.rank_and_size()
    if world > 1:  # under MPI: data-parallel over the ranks, and only rank 0 writes or talks
        train_loader = _distributed.shard_training_loader(train_loader)
        if rank != 0:
            log, progress, out_dir, on_epoch = (lambda message: None), False, None, None

    if checkpoint_path is not None:
        removed = _remove_stale_temporaries(checkpoint_path)
        if removed:
            log(f"Removed {len(removed)} temporary file(s) left in '{checkpoint_path.parent}' by a checkpoint "
                f"write that was killed: {', '.join(removed)}.")

    history = History()
    start_epoch = 0
    if resume and checkpoint_path.exists():
        ckpt = load_checkpoint(checkpoint_path)
        start_epoch = int(ckpt["epoch"])
        _restore_states(ckpt, checkpoint_path, model, optimizer, scheduler, epochs)
        planned = ckpt.get("epochs")
        restarted = None
        if scheduler is not None:
            if planned is not None and planned != epochs:
                per_epoch = (_len_or_none(train_loader) or 0) if scheduler_interval == "batch" else 1
                restarted = _restart_schedule(scheduler, start_epoch * per_epoch)
            if restarted is None:
                scheduler.load_state_dict(ckpt["scheduler"])
        history = History.from_state_dict(ckpt["history"])
        _random.set_state(ckpt["rng"])
        log(f"Resuming from '{checkpoint_path}': {start_epoch} of {epochs} epochs done.")
        if restarted is not None:
            log(f"The run was started for {planned} epochs and now has {epochs}: its learning-rate schedule "
                f"({type(scheduler).__name__}) is the one for {epochs} epochs from here on, at lr "
                f"{restarted[0]:.3g} for epoch {start_epoch + 1}.")
        seed = getattr(train_loader, "seed", None)
        if ckpt.get("loader_seed") is not None and seed != ckpt["loader_seed"]:
            log(f"Warning: the training loader's seed is {seed} but the checkpoint's run used "
                f"{ckpt['loader_seed']}: the remaining epochs will not see the batches an uninterrupted run "
                f"would. Build the loader with seed={ckpt['loader_seed']} (or after the same manual_seed).")
    elif resume:
        log(f"No checkpoint at '{checkpoint_path}' yet: starting from scratch.")
    saved_epoch = start_epoch if checkpoint_path is not None and checkpoint_path.exists() else 0

    ignore_index = _ignore_index(loss_fn)
    num_batches = _len_or_none(train_loader)
    step_model = model
    if world > 1 and not isinstance(model, _distributed.DistributedDataParallel):
        step_model = _distributed.DistributedDataParallel(model)  # after a resume restored rank 0's weights
    epoch = start_epoch
    try:
        for epoch in range(start_epoch + 1, epochs + 1):
            batch_scheduler = scheduler if scheduler_interval == "batch" else None
            row = _train_epoch(step_model, loss_fn, optimizer, batch_scheduler, train_loader, epoch, epochs, device,
                               ignore_index, num_batches, progress, log, log_every, history, checkpoint_path,
                               saved_epoch)
            seconds = row["train_seconds"]
            if val_loader is not None:
                if hasattr(val_loader, "set_epoch"):
                    val_loader.set_epoch(epoch - 1)
                result = evaluate(model, val_loader, loss_fn, device=device, keep_scores=bool(metrics),
                                  progress=progress, desc=f"validate {epoch}/{epochs}")
                if result.loss is not None and not math.isfinite(result.loss):
                    raise _diverged(epoch, epochs, None, None, result.loss, row["lr"], checkpoint_path,
                                    saved_epoch)
                row["val_loss"], row["val_acc"] = result.loss, result.accuracy
                for name, fn in metrics.items():
                    row[name] = float(fn(result))
                seconds += result.seconds
            else:
                row["val_loss"] = row["val_acc"] = None
            row["seconds"] = seconds
            row["images_per_s"] = row.pop("_images") / row["train_seconds"] if row["train_seconds"] > 0 else None
            row = {k: row[k] for k in ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc",
                                       *metrics, "train_seconds", "seconds", "images_per_s")}
            if scheduler is not None and scheduler_interval == "epoch":
                if _is_plateau_scheduler(scheduler):
                    scheduler.step(row["val_loss"] if row["val_loss"] is not None else row["train_loss"])
                else:
                    scheduler.step()
            history.append(row)
            log(_summary(row, epochs, metrics))
            if on_epoch is not None:
                on_epoch(history)
            if out_dir is not None:
                history.to_csv(out_dir / METRICS_NAME)
            if checkpoint_path is not None:
                if rank == 0:
                    _save_checkpoint(checkpoint_path, epoch, epochs, model, optimizer, scheduler, history,
                                     getattr(train_loader, "seed", None))
                saved_epoch = epoch
    except KeyboardInterrupt:
        if checkpoint_path is None:
            where = "No checkpoint is written by this run (pass out_dir= or checkpoint_path= to get one)."
        elif saved_epoch == 0:
            where = f"No epoch was completed, so this run wrote no checkpoint at '{checkpoint_path}'."
        else:
            where = (f"The checkpoint of epoch {saved_epoch} is at '{checkpoint_path}': run again with "
                     f"resume=True (--resume) to continue from there.")
        log(f"Interrupted during epoch {epoch}/{epochs}. {where}")
        raise
    return history


def _train_epoch(model, loss_fn, optimizer, batch_scheduler, loader, epoch, epochs, device, ignore_index,
                 num_batches, progress, log, log_every, history, checkpoint_path, saved_epoch) -> dict[str, Any]:
    """One pass over ``loader`` with updates (and ``batch_scheduler`` steps, if given); returns the epoch's
    row so far."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch - 1)
    model.train()
    lr = _lr(optimizer)
    start = time.perf_counter()
    loss_sum, n, correct, counted = 0.0, 0, 0, 0
    window_sum, window_batches = 0.0, 0
    class_scores = True
    with tqdm(loader, total=num_batches, desc=f"epoch {epoch}/{epochs}", leave=False,
              disable=not _progress_enabled(progress), unit="batch") as bar:
        for b, batch in enumerate(bar, start=1):
            x, y = _batch(batch, device)
            out = model(x)
            loss = loss_fn(out, y)
            value = float(loss.item())
            if not math.isfinite(value):  # before backward/step: the update that would spread it never runs
                raise _diverged(epoch, epochs, b, num_batches, value, lr, checkpoint_path, saved_epoch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if batch_scheduler is not None:
                batch_scheduler.step()

            N = x.shape[0]
            loss_sum += value * N
            n += N
            class_scores = class_scores and _is_class_scores(out, y)
            if class_scores:
                c, k, _ = _count_correct(out, y, ignore_index)
                correct += c
                counted += k
            if log_every is not None:
                window_sum += value
                window_batches += 1
                if b % log_every == 0:
                    mean = window_sum / window_batches
                    step = (epoch - 1) * num_batches + b if num_batches is not None else None
                    history.batch_losses.append({"epoch": epoch, "batch": b, "step": step, "loss": mean})
                    log(f"[epoch {epoch}, batch {b}] loss {mean:.3f}")
                    window_sum, window_batches = 0.0, 0
            if not bar.disable:
                elapsed = time.perf_counter() - start
                acc = f" acc {100 * correct / counted:.2f}%" if class_scores and counted else ""
                bar.set_postfix_str(f"loss {loss_sum / n:.4f}{acc} {n / max(elapsed, 1e-9):.0f} img/s",
                                    refresh=False)
    if _distributed.rank_and_size()[1] > 1:  # the epoch's figures over the whole global batch
        loss_sum, n, correct, counted = _distributed.all_sum(np.array([loss_sum, n, correct, counted],
                                                                      dtype=np.float64)).tolist()
        n, correct, counted = int(n), int(correct), int(counted)
    if n == 0:
        raise ValueError("fit: the training loader yielded no batch")
    train_seconds = time.perf_counter() - start
    return {"epoch": epoch, "lr": lr, "train_loss": loss_sum / n,
            "train_acc": correct / counted if class_scores and counted else None,
            "train_seconds": train_seconds, "_images": n}


def _diverged(epoch, epochs, batch, num_batches, loss, lr, checkpoint_path, saved_epoch) -> TrainingDiverged:
    where = (f"epoch {epoch}/{epochs}, batch {batch}" + (f"/{num_batches}" if num_batches else "")
             if batch is not None else f"the validation after epoch {epoch}/{epochs}")
    if checkpoint_path is None:
        kept = "No checkpoint was configured."
    elif saved_epoch == 0:
        kept = f"This run wrote no checkpoint yet (at '{checkpoint_path}')."
    else:
        kept = f"The last good checkpoint (epoch {saved_epoch}) is untouched at '{checkpoint_path}'."
    message = (f"Training diverged: the loss is {loss} at {where}. {kept} Hint: lower the learning rate "
               f"(it is {lr}), or check the inputs for NaN/inf and their normalisation.")
    return TrainingDiverged(message, epoch, batch, loss, checkpoint_path, saved_epoch)


def _summary(row: dict, epochs: int, metrics: Mapping) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}", f"train loss {_fmt(row['train_loss'])}"]
    if row["train_acc"] is not None:
        parts.append(f"acc {_fmt(row['train_acc'], percent=True)}")
    if row["val_loss"] is not None or row["val_acc"] is not None:
        parts.append(f"val loss {_fmt(row['val_loss'])}")
        if row["val_acc"] is not None:
            parts.append(f"acc {_fmt(row['val_acc'], percent=True)}")
    parts += [f"{name} {_fmt(row[name])}" for name in metrics]
    if row["lr"] is not None:
        parts.append(f"lr {row['lr']:.3g}")
    parts.append(f"{row['seconds']:.1f} s")
    if row["images_per_s"] is not None:
        parts.append(f"{row['images_per_s']:.0f} img/s")
    return " | ".join(parts)
