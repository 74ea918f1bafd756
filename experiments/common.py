"""What every experiment script shares: its command line, its run folder, finding the data, and how it fails.

An experiment script stays thin: it builds its parser with the flags here, builds a model from ``models/``,
trains with :mod:`minidl.training`, writes its figures and report, and lets :func:`run` call it. What the
scripts then do alike (EXPERIMENTS.md):

- **Flags are checked up front**, argparse's way (``fashion_cnn.py: error: argument --epochs: must be at
  least 1, got 0``, exit status 2): numbers in range (:func:`int_at_least`, :func:`float_in`), no
  contradictions (``--resume`` with ``--overwrite``), a usable ``--device``. Sizes that depend on the data set
  are checked as soon as it is loaded (:func:`split_train_val`).
- **A run folder is never replaced by accident** (:class:`RunFolder`): a new run needs a missing or empty
  ``--out`` folder, or ``--overwrite``. ``--resume`` continues the run there with that run's own flags; flags
  given with it must agree with its config.json, except those that only continue it (``--epochs`` at least
  the epochs done, ``--device``, ``--data-dir``, ``--no-progress``, ``--debug``). Whatever is refused is
  refused before anything is written.
- **Expected failures print one message and no traceback**: a missing data set, a failed download, a corrupt
  file, an unreadable checkpoint or one that does not fit the model, an ``--out`` that cannot be written, a
  diverged loss, Ctrl-C, a refused flag. The message says what to do from
  the command line and the exit status is non-zero; a traceback means a bug (``--debug`` shows one for every
  failure).

A script's entry point is then::

    def main(argv=None) -> int:
        return common.run(build_parser(), argv, train)   # train(args, given) does the work
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import shlex
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # so ``models`` and ``minidl`` import when a script is run from anywhere

from minidl import distributed, training  # noqa: E402
from minidl.backend import cuda_is_available  # noqa: E402
from minidl.data.datasets.download import (CorruptFileError, DatasetNotFoundError, DownloadError,  # noqa: E402
                                           cache_home)
from minidl.serialization import SerializationError  # noqa: E402

EXIT_ERROR = 1  # an expected failure: no data, a bad checkpoint, a diverged loss
EXIT_USAGE = 2  # a flag that cannot work, as argparse's own errors
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


class ExperimentError(Exception):
    """An expected failure that the user can act on from the command line.

    :func:`run` prints its message as ``<script>: error: <message>`` and exits with ``exit_code``, without a
    traceback (unless ``--debug``).

    Args:
        message: what is wrong and what to do about it, in terms of the script's flags.
        exit_code: the exit status: :data:`EXIT_USAGE` for flags that cannot work, else :data:`EXIT_ERROR`.
    """

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ----------------------------------------------------------------------------------- the command line
def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type`` that accepts the integers from ``low`` up.

    >>> int_at_least(1)("3")
    3
    """
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def float_in(low: float, high: float | None = None, *, low_open: bool = False,
             high_open: bool = True) -> Callable[[str], float]:
    """An argparse ``type`` that accepts finite numbers from ``low`` to ``high`` (no upper bound when None).

    Args:
        low, high: the interval's ends.
        low_open: exclude ``low`` itself (a learning rate must be > 0, a weight decay may be 0).
        high_open: exclude ``high`` itself (a momentum of 1 never forgets).

    >>> float_in(0, 1)("0.9")
    0.9
    """
    if high is None:
        wanted = f"{'>' if low_open else '>='} {low:g}"
    else:
        wanted = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_low = value <= low if low_open else value < low
        too_high = high is not None and (value >= high if high_open else value > high)
        if not math.isfinite(value) or too_low or too_high:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value
    return parse


def make_parser(script_file: str, doc: str) -> argparse.ArgumentParser:
    """An argument parser named after the script (its errors read ``fashion_cnn.py: error: ...``), with the
    module docstring as its help text."""
    return argparse.ArgumentParser(prog=Path(script_file).name, description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def add_training_flags(parser: argparse.ArgumentParser, *, epochs: int | None, batch_size: int | None,
                       optimizers: Iterable[str], optimizer: str, lr_help: str, weight_decay: float | None = 0.0,
                       recipe_help: str = "") -> None:
    """The knobs every training script has: ``--epochs --batch-size --optimizer --lr --weight-decay --seed
    --train-subset``, each validated as it is parsed.

    Args:
        parser: the script's parser.
        epochs, batch_size, optimizer, weight_decay: the script's defaults; None for a default the script
            resolves itself once the flags are known (from ``--recipe``, say), which ``recipe_help`` explains.
        optimizers: the optimizers the script offers.
        lr_help: what ``--lr`` defaults to (the default is ``None``, for the script to resolve, since it
            usually depends on the optimizer).
        recipe_help: the help's words for a default of None, e.g. ``"12, 300 under --recipe report"``.
    """
    def default(value) -> str:
        return f"default {value}" if value is not None else f"default: {recipe_help}"

    parser.add_argument("--epochs", type=int_at_least(1), default=epochs, help=f"epochs in all ({default(epochs)})")
    parser.add_argument("--batch-size", type=int_at_least(1), default=batch_size,
                        help=f"training images per step ({default(batch_size)})")
    parser.add_argument("--optimizer", choices=sorted(optimizers), default=optimizer)
    parser.add_argument("--lr", type=float_in(0, low_open=True), default=None, help=lr_help)
    parser.add_argument("--weight-decay", type=float_in(0), default=weight_decay,
                        help=f"L2 penalty ({default(weight_decay)})")
    parser.add_argument("--seed", type=int_at_least(0), default=0,
                        help="seeds the weights, the validation split and the shuffling (default 0)")
    parser.add_argument("--train-subset", type=int_at_least(1), default=None, metavar="N",
                        help="train on only N images (smoke runs)")


def add_run_flags(parser: argparse.ArgumentParser, *, out: str) -> None:
    """The flags about where a run reads and writes and how it talks: ``--data-dir --out --resume
    --overwrite --device --tensorboard --no-progress --debug``.

    Args:
        parser: the script's parser.
        out: the default run folder, ``runs/<script>``.
    """
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="an offline copy of the data set (default: $MINIDL_DATA/<name>, ../shared/data/<name> "
                             "beside the checkout, the cache, then a checked download)")
    parser.add_argument("--out", type=Path, default=Path(out), metavar="DIR",
                        help=f"the run folder (default {out}); a folder that holds files is never replaced "
                             f"without --overwrite")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out with its own flags; others given with it must agree "
                             "with its config.json, except more --epochs (which extends the learning-rate "
                             "schedule), --device, --data-dir, --no-progress and --debug")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run in --out (everything in that folder is deleted first)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to train (default cpu)")
    parser.add_argument("--tensorboard", type=Path, default=None, metavar="DIR",
                        help="also write TensorBoard events to DIR (needs tensorboardX: pip install "
                             "'minidl[tensorboard]'); view them with: tensorboard --logdir DIR")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true",
                        help="print a full traceback for expected errors too (missing data, bad checkpoint, ...)")


def flag(dest: str) -> str:
    """The command-line spelling of an argparse ``dest``: ``batch_size`` -> ``--batch-size``."""
    return "--" + dest.replace("_", "-")


#: Flags about one command alone, left out of a run's command line (:func:`command_line`).
PER_COMMAND = frozenset({"resume", "overwrite", "debug", "no_progress"})


def command_line(script_file: str, args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The command that makes this run, for a report (config.json keeps every setting): every flag whose value
    in ``args`` (the run's settings, complete: under ``--resume``, those restored from config.json too)
    differs from the parser's default, but the :data:`PER_COMMAND` flags.

    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("--epochs", type=int, default=1); _ = parser.add_argument("--seed", default=0)
    >>> _ = parser.add_argument("--resume", action="store_true")
    >>> args = argparse.Namespace(epochs=2, seed=0, resume=True)
    >>> command_line(str(REPO / "experiments/x.py"), args, parser)
    'python experiments/x.py --epochs 2'
    """
    path = Path(script_file).resolve()
    words = ["python", str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)]
    for dest, value in vars(args).items():
        if dest in PER_COMMAND or _plain(value) == _plain(parser.get_default(dest)):
            continue
        if isinstance(value, bool):
            words.append(flag(dest) if value else "--no-" + flag(dest)[2:])
        else:
            words += [flag(dest), shlex.quote(str(value))]
    return " ".join(words)


def run(parser: argparse.ArgumentParser, argv: list[str] | None,
        body: Callable[[argparse.Namespace, frozenset[str]], int]) -> int:
    """Parse and check the flags, call ``body(args, given)``, and turn expected failures into one message.

    ``given`` is the set of flags (argparse ``dest`` names) that were on the command line, not defaulted:
    :meth:`RunFolder.open` fills the others from the run being resumed.

    The common flags are checked before ``body`` runs: ``--resume`` with ``--overwrite`` is refused, and so
    is ``--device cuda`` where no GPU is usable. A bad flag ends argparse's way (usage, message, exit 2).

    An expected failure raised by ``body`` (:class:`ExperimentError`; a data set not found, not downloaded,
    or corrupt; a checkpoint that cannot be read; :class:`minidl.training.ResumeError`, a checkpoint that
    does not fit the model or a schedule that cannot be stretched; :class:`minidl.training.TrainingDiverged`;
    Ctrl-C) is
    printed to stderr as ``<script>: error: <what to do>``, with a traceback before it only under
    ``--debug``, and its exit status returned. Any other exception is a bug and goes on up, traceback and all.

    Args:
        parser: the script's parser (with :func:`add_run_flags`' flags).
        argv: the arguments (default: ``sys.argv[1:]``).
        body: the script's work; returns the exit status.

    Returns:
        The exit status: ``body``'s, :data:`EXIT_ERROR` or :data:`EXIT_USAGE` after an expected failure,
        :data:`EXIT_INTERRUPTED` after Ctrl-C.
    """
    args = parser.parse_args(argv)
    given = _given_flags(parser, argv, args)
    rank, world = _start_distributed(parser, args)
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite contradict each other: --resume continues the run in --out, "
                     "--overwrite replaces it; pass one of them")
    if args.device == "cuda" and not cuda_is_available():
        parser.error("argument --device: cuda needs CuPy and an NVIDIA GPU, and this machine has none that works "
                     "(install minidl's 'gpu' extra on a machine with one); run with --device cpu")
    try:
        return body(args, given)
    except (ExperimentError, DatasetNotFoundError, DownloadError, CorruptFileError, SerializationError,
            training.TrainingDiverged, training.ResumeError, KeyboardInterrupt) as err:
        if args.debug:
            traceback.print_exc()
        where = f" (rank {rank} of {world}; every rank is stopped)" if world > 1 else ""
        if isinstance(err, KeyboardInterrupt):
            print(f"{parser.prog}: interrupted{where}. {_after_interrupt(args.out)}", file=sys.stderr)
            code = EXIT_INTERRUPTED
        else:
            print(f"{parser.prog}: error{where}: {_explain(err)}", file=sys.stderr)
            code = err.exit_code if isinstance(err, ExperimentError) else EXIT_ERROR
        if world > 1:
            sys.stderr.flush()
            distributed.abort(code)
        return code


def _start_distributed(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[int, int]:
    """Under ``mpirun -n N``: join the MPI world (minidl.distributed) and return (rank, N); else (0, 1).

    Every rank runs the whole script; ``training.fit`` splits each batch among them and ``evaluate`` the test
    set. Rank 0 writes the run folder (--out, --tensorboard) and prints; the other ranks write into a private
    temporary copy of it (the files of the run being resumed copied in, so that they resume alike), removed
    at exit, and print nothing but errors. ``--batch-size`` stays the global batch: it must divide by N.
    """
    if not distributed.launched_by_mpi():
        return 0, 1
    if not distributed.is_available():
        parser.error("this script was started by mpirun, but mpi4py is missing: pip install -e \".[distributed]\"")
    distributed.init_process_group()
    rank, world = distributed.get_rank(), distributed.get_world_size()
    batch = getattr(args, "batch_size", None)
    if isinstance(batch, int) and batch % world:
        if rank == 0:
            print(f"{parser.prog}: error: argument --batch-size: the global batch {batch} does not split evenly "
                  f"among the {world} ranks of mpirun: pass a multiple of {world}", file=sys.stderr)
        distributed.barrier()
        distributed.abort(EXIT_USAGE)
    if rank != 0:
        scratch = Path(tempfile.mkdtemp(prefix=f"minidl-rank{rank}-"))
        import atexit
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        run = scratch / "run"
        run.mkdir()
        if args.resume and Path(args.out).is_dir():
            for entry in Path(args.out).iterdir():
                if entry.is_file():
                    shutil.copy2(entry, run / entry.name)
        args.out = run
        if getattr(args, "tensorboard", None):
            args.tensorboard = str(scratch / "tensorboard")
        args.no_progress = True
        sys.stdout = open(os.devnull, "w")
    return rank, world


def _given_flags(parser: argparse.ArgumentParser, argv: list[str] | None,
                 args: argparse.Namespace) -> frozenset[str]:
    # argparse fills in a default only where the namespace has no value yet: parsed again into a namespace
    # that holds a marker everywhere, the flags on the command line are the ones whose marker was replaced.
    unset = object()
    probe = argparse.Namespace(**dict.fromkeys(vars(args), unset))
    parser.parse_args(argv, probe)
    return frozenset(dest for dest, value in vars(probe).items() if value is not unset)


def _after_interrupt(out: Path) -> str:
    if (out / training.CHECKPOINT_NAME).exists():
        return (f"The checkpoint of the last finished epoch is in {out}: run again with --resume --out {out} "
                f"to continue from there.")
    return f"No epoch had finished, so there is no checkpoint to resume from in {out}."


def _explain(err: BaseException) -> str:
    """The message for an expected failure that reached :func:`run`, with command-line advice."""
    if isinstance(err, (DatasetNotFoundError, DownloadError, CorruptFileError)):
        return data_error_message(err)
    if isinstance(err, training.TrainingDiverged):
        return (f"{err} From the command line: run again with a smaller --lr (with --overwrite to start over in "
                f"this folder, or --out DIR for a new one).")
    if isinstance(err, training.ResumeError):
        if err.planned is not None:
            return (f"{err}. From the command line: resume with --epochs {err.planned} (the run's own length), "
                    f"or start a new run with --out DIR.")
        return (f"{err}. Resume it with the flags of the run that wrote it (its config.json), or start a new run "
                f"with --out DIR (or replace this one with --overwrite).")
    if isinstance(err, SerializationError):
        return f"{err}. Pass --out with another run folder, or start this one anew with --overwrite."
    return str(err)


# ----------------------------------------------------------------------------------- the data
def _data_source(name: str, data_dir: str | None) -> tuple[str, Path | None]:
    """Where data set ``name`` is read from: ``("--data-dir" | "MINIDL_DATA" | "shared" | "cache", folder)``."""
    if data_dir:
        return "--data-dir", Path(data_dir)
    if os.environ.get("MINIDL_DATA"):
        return "MINIDL_DATA", Path(os.environ["MINIDL_DATA"]) / name
    shared = REPO.parent / "shared" / "data" / name
    if shared.is_dir():
        return "shared", shared
    return "cache", None


def data_root(name: str, data_dir: str | None) -> tuple[str | None, bool]:
    """Where dataset ``name`` is read from, and whether it may be downloaded.

    Order: ``--data-dir``; ``$MINIDL_DATA/<name>`` (the loaders read it themselves); a ``shared/data/<name>``
    folder beside this checkout (the development copy); else the cache, downloading what is missing.
    """
    source, folder = _data_source(name, data_dir)
    if source == "--data-dir" or source == "shared":
        return str(folder), False
    return None, source == "cache"


def load_dataset(cls: type, name: str, data_dir: str | None, **kwargs) -> Any:
    """``cls(root, download=..., **kwargs)`` from where :func:`data_root` says, with errors a user can act on.

    Args:
        cls: a ``minidl.data.datasets`` class, e.g. ``FashionMNIST``.
        name: its folder name (``"fashion-mnist"``).
        data_dir: the ``--data-dir`` flag.
        **kwargs: the rest of the dataset's arguments (``train=``, ``transform=``).

    Raises:
        ExperimentError: the data set is missing, could not be downloaded, or a file of it is corrupt; the
            message says where it looked and which flag or file to change.
    """
    root, download = data_root(name, data_dir)
    try:
        return cls(root, download=download, **kwargs)
    except (DatasetNotFoundError, DownloadError, CorruptFileError) as err:
        raise ExperimentError(data_error_message(err, name, data_dir)) from err


def data_error_message(err: Exception, name: str | None = None, data_dir: str | None = None) -> str:
    """A data set error's message with advice in flags, not in the loaders' Python arguments.

    Args:
        err: a ``DatasetNotFoundError``, ``DownloadError`` (``ChecksumError``) or ``CorruptFileError``
            (``UnsafeArchiveError``).
        name: the data set's folder name; None when not known (the advice is then generic).
        data_dir: the ``--data-dir`` flag.
    """
    source, folder = _data_source(name, data_dir) if name else ("unknown", None)
    if isinstance(err, CorruptFileError):
        advice = {
            "--data-dir": f"Replace it with a good copy, or run again without --data-dir to download {name} "
                          f"into the cache.",
            "MINIDL_DATA": f"Replace it with a good copy, or unset MINIDL_DATA to download {name} into the cache.",
            "shared": "Replace it with a good copy, or pass --data-dir DIR with one.",
            "cache": f"Delete {err.path} and run again: it is downloaded anew.",
        }.get(source, f"Delete {err.path} and run again without --data-dir to download it, or pass --data-dir DIR "
                      f"with a good copy.")
        return f"{err.path}: {err.problem}. The file was not used. {advice}"
    if isinstance(err, DownloadError):
        return f"{err} Then run again, or pass --data-dir with a folder that holds the files."
    # DatasetNotFoundError: keep what it says about where it looked and what it expected, not its API advice.
    found = str(err).split("\nOptions:")[0]
    default, default_folder = _data_source(name, None) if name else ("unknown", None)
    without = {"cache": "to download them into the cache",
               "MINIDL_DATA": f"to read them from {default_folder} ($MINIDL_DATA)",
               "shared": f"to read the development copy in {default_folder}"}.get(default, "")
    advice = {
        "--data-dir": f"Pass --data-dir with the folder that holds these files, or leave --data-dir out {without}.",
        "MINIDL_DATA": f"Put them in {folder}, pass --data-dir with the folder that holds them, or unset "
                       f"MINIDL_DATA to download them into {cache_home() / str(name)}.",
        "shared": f"Complete or remove {folder} (a development copy beside the checkout), or pass --data-dir "
                  f"with the folder that holds them.",
    }.get(source, "Pass --data-dir with the folder that holds these files.")
    return f"{found}\n{advice}"


def split_train_val(n: int, *, val_size: int, train_subset: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and the validation images of an ``n``-image training set.

    A seeded permutation of ``range(n)``: its first ``val_size`` indices validate, the rest train (only the
    first ``train_subset`` of them when given), so the split depends on ``--seed`` alone.

    Raises:
        ExperimentError: (exit status 2) ``--val-size`` leaves no training image, or ``--train-subset`` asks
            for more images than are left.
    """
    if val_size >= n:
        raise ExperimentError(f"argument --val-size: {val_size} leaves nothing to train on: the training set has "
                              f"{n} images (pass at most {n - 1}; 0 means no validation set)", EXIT_USAGE)
    if train_subset is not None and train_subset > n - val_size:
        raise ExperimentError(f"argument --train-subset: {train_subset} is more than the {n - val_size} training "
                              f"images left after --val-size {val_size}", EXIT_USAGE)
    order = np.random.default_rng(seed).permutation(n)
    train_idx = order[val_size:]
    return (train_idx[:train_subset] if train_subset else train_idx), order[:val_size]


# ----------------------------------------------------------------------------------- the run folder
class RunFolder:
    """The folder a run writes (``--out``), and the rules for using one that holds files.

    Two steps, so that nothing is written before every check has passed:

    1. :meth:`open`, right after the flags are parsed: the folder must be one that can be created and
       written (checked without leaving anything behind); a new run needs a missing or empty folder, or
       ``--overwrite`` (a folder that holds no run is never emptied). ``--resume`` needs the run's checkpoint
       and config.json; it fills in every flag not given from config.json (but the :attr:`INVOCATION` flags,
       such as ``--device``), and refuses flags given that differ from it, except the :attr:`CONTINUATION`
       flags and ``--epochs`` (no fewer than the epochs done).
    2. :meth:`start`, once the data set is loaded: empties the folder under ``--overwrite``, refuses a resume
       whose data set differs in size from the run's, then writes config.json (atomically): every flag, the
       script, the machine, the data set's sizes, and one note per resume.

    Args:
        path: the folder.
        script: the script's name, kept in config.json (a run is only resumed by the script that made it).
    """

    #: Flags about this invocation alone: a resumed run takes them as given (or defaulted), not from the run.
    INVOCATION = frozenset({"out", "resume", "overwrite", "device", "no_progress", "debug"})
    #: Flags a resumed run may change: where and how to run, not what is computed. When not given, the run's
    #: own value holds (but for :attr:`INVOCATION`).
    CONTINUATION = INVOCATION | {"data_dir", "tensorboard"}

    def __init__(self, path: Path, script: str) -> None:
        self.path = Path(path)
        self.script = script
        self.config_path = self.path / "config.json"
        self.checkpoint_path = self.path / training.CHECKPOINT_NAME
        self.saved: dict[str, Any] | None = None  # the config.json of the run being resumed
        self.epochs_done = 0

    def open(self, args: argparse.Namespace, given: Iterable[str], continuation: Iterable[str] = ()) -> None:
        """Check that this run may use the folder; under ``--resume``, complete ``args`` from the run's flags.

        Args:
            args: the parsed flags (``out``, ``resume``, ``overwrite``, ``epochs`` and the script's own).
            given: the flags on the command line (see :func:`run`).
            continuation: the script's flags that a resume may change besides :attr:`CONTINUATION`.

        Raises:
            ExperimentError: ``--out`` is a file, or a folder that cannot be created or written; the folder holds a run (and no ``--overwrite`` was given)
                or files but no run (even with ``--overwrite``); under ``--resume``: no checkpoint or
                config.json, an unreadable checkpoint, flags that differ from the run's, or ``--epochs`` below
                the epochs done.
        """
        if self.path.exists() and not self.path.is_dir():
            raise ExperimentError(f"argument --out: {self.path} is a file, not a folder", EXIT_USAGE)
        self._check_writable()
        if args.resume:
            self._open_for_resume(args, frozenset(given), self.CONTINUATION | frozenset(continuation))
        elif self.path.is_dir() and any(self.path.iterdir()):
            self._refuse_taken(args.overwrite)

    def _check_writable(self) -> None:
        """Refuse a folder that cannot be created or written: create what is missing of it, write a temporary
        file there, then remove both (nothing is left behind)."""
        missing = []
        try:
            folder = self.path.absolute()
            while not folder.exists():
                missing.append(folder)
                folder = folder.parent
            for folder in reversed(missing):
                folder.mkdir()
            with tempfile.NamedTemporaryFile(dir=self.path):
                pass
        except OSError as err:
            raise ExperimentError(f"argument --out: {self.path} cannot be created or written "
                                  f"({err.strerror or err}): pass --out with a folder you can write to.",
                                  EXIT_USAGE) from err
        finally:
            for folder in missing:  # the deepest first
                try:
                    folder.rmdir()
                except OSError:
                    pass

    def _refuse_taken(self, overwrite: bool) -> None:
        summary = read_json(self.path / "summary.json")
        if summary is not None:
            accuracy = summary.get("test_accuracy")
            what = (f"a finished run ({summary.get('epochs')} epochs"
                    + (f", test accuracy {100 * accuracy:.2f}%)" if isinstance(accuracy, float) else ")"))
        elif self.config_path.exists() or self.checkpoint_path.exists():
            what = "an unfinished run"
        else:
            raise ExperimentError(f"{self.path} holds files but no run (no config.json or "
                                  f"{self.checkpoint_path.name}), so it is not used"
                                  f"{', even with --overwrite' if overwrite else ''}: pass --out with a new or "
                                  f"empty folder.", EXIT_USAGE)
        if not overwrite:
            raise ExperimentError(f"{self.path} already holds {what}, which a new run would replace. Pass --out "
                                  f"DIR for a new run folder, --overwrite to replace that run, or --resume to "
                                  f"continue it (with --epochs N to train it longer).", EXIT_USAGE)

    def _open_for_resume(self, args: argparse.Namespace, given: frozenset[str],
                         continuation: frozenset[str]) -> None:
        if not self.checkpoint_path.exists():
            if self.config_path.exists():
                why = "the run there finished no epoch; start it again with --overwrite."
            else:
                why = "leave out --resume to start a new run, or pass --out with the folder of the run to continue."
            raise ExperimentError(f"--resume: there is no checkpoint to continue from in {self.path} "
                                  f"({self.checkpoint_path.name} is missing): {why}", EXIT_USAGE)
        saved = read_json(self.config_path)
        if saved is None:
            raise ExperimentError(f"--resume: {self.config_path} is missing or unreadable, so the flags of the run "
                                  f"in {self.path} are unknown. Start it anew with --overwrite, or pass --out DIR "
                                  f"for a new run.", EXIT_USAGE)
        if saved.get("script", self.script) != self.script:  # one that names no script passes
            raise ExperimentError(f"--resume: the run in {self.path} was made by {saved.get('script')!r}, not "
                                  f"{self.script!r}: pass --out with a folder of this script's runs.", EXIT_USAGE)
        try:
            done = int(training.load_checkpoint(self.checkpoint_path)["epoch"])
        except SerializationError as err:
            raise ExperimentError(f"--resume: the checkpoint cannot be read: {err}. Start the run anew with "
                                  f"--overwrite, or pass --out DIR for a new run.") from err

        differences = []
        for dest, value in vars(args).items():
            if dest in self.INVOCATION or dest == "epochs":
                continue
            if dest not in given:
                if dest in saved:
                    setattr(args, dest, saved[dest])
            elif dest not in continuation and (dest not in saved or saved[dest] != _plain(value)):
                differences.append(f"  {flag(dest)}: the run has {_show(saved.get(dest))}, given {_show(value)}")
        if differences:
            raise ExperimentError(f"--resume: these flags differ from those of the run in {self.path} (its "
                                  f"config.json):\n" + "\n".join(differences) + "\nLeave them out to continue "
                                  f"that run with its own flags, or start a new run with --out DIR (or replace "
                                  f"this one with --overwrite).", EXIT_USAGE)
        planned = saved.get("epochs")
        if "epochs" not in given:
            args.epochs = max(planned, done) if isinstance(planned, int) else done
        elif args.epochs < done:
            raise ExperimentError(f"argument --epochs: the run in {self.path} has already done {done} epochs, "
                                  f"more than {args.epochs}: pass --epochs {done} or more (or leave it out to "
                                  f"finish its {planned} planned epochs).", EXIT_USAGE)
        self.saved, self.epochs_done = saved, done

    def start(self, args: argparse.Namespace, data: dict[str, Any]) -> None:
        """Write config.json for this run (after :meth:`open` and the data checks), emptying the folder first
        under ``--overwrite``.

        Args:
            args: the flags, complete (under ``--resume``, as :meth:`open` filled them in).
            data: the data set's name and sizes (e.g. ``{"dataset": ..., "train_images": ...}``); a resumed run
                must have the same as the run it continues.

        Raises:
            ExperimentError: a resumed run's data set differs from the run's.
        """
        flags = {dest: _plain(value) for dest, value in vars(args).items()}
        if self.saved is None:
            if args.overwrite and self.path.is_dir() and any(self.path.iterdir()):
                print(f"--overwrite: deleting the run in {self.path}")
                for entry in self.path.iterdir():
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            config = {"script": self.script, **flags, "machine": machine(), "data": data, **_distributed_config(args)}
        else:
            saved_data = self.saved.get("data", _plain(data))  # a config.json that does not record them passes
            if saved_data != _plain(data):
                raise ExperimentError(f"--resume: the data set is not the one of the run in {self.path}: it had "
                                      f"{saved_data}, this one has {data}. Pass the run's --data-dir, or start a "
                                      f"new run with --out DIR.", EXIT_USAGE)
            changed = {dest: [self.saved.get(dest), value] for dest, value in flags.items()
                       if dest not in ("resume", "overwrite") and self.saved.get(dest) != value}
            if changed:
                print(f"Continuing the run in {self.path} with "
                      + ", ".join(f"{flag(dest)} {_show(new)} (it had {_show(old)})"
                                  for dest, (old, new) in changed.items()))
            resumes = [*self.saved.get("resumes", []), {"time": datetime.now().isoformat(timespec="seconds"),
                                                       "epochs_done": self.epochs_done, "changed": changed,
                                                       "machine": machine()}]
            config = {**self.saved, **flags, "resumes": resumes}
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.config_path, config)


def _distributed_config(args: argparse.Namespace) -> dict:
    """For config.json under mpirun: the ranks, and the global and per-rank batch and the learning rate."""
    rank, world = distributed.rank_and_size()
    if world == 1:
        return {}
    batch = getattr(args, "batch_size", None)
    return {"distributed": {"world_size": world, "global_batch_size": batch,
                            "batch_size_per_rank": batch // world if isinstance(batch, int) else None,
                            "lr": getattr(args, "lr", None),
                            "note": "the learning rate is the single-process one: the ranks' batches make up "
                                    "the global batch, averaged as one"}}


def open_sweep_folder(top: Path, args: argparse.Namespace, script: str) -> None:
    """Check a sweep's ``--out`` folder as :class:`RunFolder` checks a run's, and mark it as a sweep.

    The folder is never replaced without ``--overwrite`` (which empties it), ``--resume`` needs a sweep of
    this script there, and a folder that holds files but no sweep is refused; a new sweep's folder gets
    ``sweep.json``, naming ``script``.

    Raises:
        ExperimentError: any of those refusals, with the flags that get around it.
    """
    marker = top / "sweep.json"
    if top.exists() and not top.is_dir():
        raise ExperimentError(f"argument --out: {top} is a file, not a folder", EXIT_USAGE)
    taken = top.is_dir() and any(top.iterdir())
    owner = (read_json(marker) or {}).get("script", script) if marker.exists() else None
    if args.resume and owner is None:
        raise ExperimentError(f"--resume: {top} holds no sweep to continue (no sweep.json): leave out --resume to "
                              f"start one, or pass --out with the sweep's folder.", EXIT_USAGE)
    if owner is not None and owner != script:
        raise ExperimentError(f"{top} holds a sweep of {owner!r}, not of {script!r}: pass --out with another "
                              f"folder.", EXIT_USAGE)
    if taken and not args.resume:
        if owner is None:
            raise ExperimentError(f"{top} holds files but no sweep, so it is not used: pass --out with a new or "
                                  f"empty folder.", EXIT_USAGE)
        if not args.overwrite:
            raise ExperimentError(f"{top} already holds a sweep, which a new one would replace. Pass --out DIR for "
                                  f"a new sweep, --overwrite to replace it, or --resume to continue it.", EXIT_USAGE)
        print(f"--overwrite: deleting the sweep in {top}")
        shutil.rmtree(top)
    top.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        write_json(marker, {"script": script})


def _plain(value):
    """``value`` as it reads back from config.json (a Path as its string, a tuple as a list)."""
    return json.loads(json.dumps(value, default=_jsonable))


def _show(value) -> str:
    return "(not set)" if value is None else str(value)


def read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def earlier_wall_seconds(args: argparse.Namespace) -> float:
    """The ``wall_seconds`` of the commands that finished this run before (a resumed finished run adds its
    time to theirs); 0 for a new run."""
    earlier = read_json(args.out / "summary.json") if args.resume else None
    seconds = earlier.get("wall_seconds") if earlier else None
    return float(seconds) if isinstance(seconds, (int, float)) else 0.0


# ----------------------------------------------------------------------------------- the closing files
def write_json(path: Path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n")
    os.replace(tmp, path)


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def machine() -> dict:
    """The machine a run was made on, for config.json."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def exit_without_gc(code: int) -> NoReturn:
    """End the script with exit status ``code``, sparing the garbage collector's passes at shutdown.

    An exiting interpreter tears every module down and runs the cyclic garbage collector over what is
    left: the ~100,000 objects that numba and matplotlib create, 0.3 to 0.5 s measured on the 2-core
    development machine, for nothing, as the operating system takes the whole process's memory back.
    ``gc.freeze()`` moves every object out of the collector's reach first, so teardown only drops
    references. Call it last, with every file written and closed: an object only the collector would free
    (one in a reference cycle) is then not finalized, which is harmless at exit and only at exit.
    """
    gc.freeze()
    sys.exit(code)
