"""TensorBoard logging for minidl, as ``torch.utils.tensorboard`` gives it to PyTorch.

``SummaryWriter`` is tensorboardX's writer taught to read minidl Tensors (and CuPy arrays): a PyTorch script's
TensorBoard calls run unchanged, and ``tensorboard --logdir runs`` shows the result. tensorboardX is an
optional dependency (``pip install "minidl[tensorboard]"``); without it, importing this module raises an
ImportError that says so.

One difference from PyTorch: ``add_graph`` cannot trace a minidl model with TorchScript, so it draws the graph
that autograd recorded for one forward pass (:func:`minidl.viz.draw_graph`) and logs it as an *image* (tag
``graph``, under IMAGES) and as Graphviz DOT text (under TEXT), not in TensorBoard's interactive GRAPHS tab.

Beside the writer, helpers log what an experiment has at its end in a few lines::

    from minidl.utils.tensorboard import SummaryWriter, log_classifier, log_history, penultimate_features

    history = training.fit(model, loss_fn, optimizer, train_loader, val_loader, epochs=10)
    test = training.evaluate(model, test_loader, loss_fn, keep_scores=True)
    with SummaryWriter("runs/fashion") as writer:
        log_history(writer, history)                      # loss/train, accuracy/val, lr, ... per epoch
        writer.add_scalar("accuracy/test", test.accuracy, len(history))
        log_classifier(writer, scores=test.scores, targets=test.targets, class_names=classes,
                       images=test_set.data[:500], features=penultimate_features(model, test_loader, limit=500),
                       model=model, example_input=next(iter(test_loader))[0][:1], step=len(history))

Then ``tensorboard --logdir runs`` (``pip install tensorboard`` for the viewer itself).
"""
from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence

import numpy as np

try:
    import tensorboardX
except ImportError as err:
    raise ImportError('minidl.utils.tensorboard needs tensorboardX: pip install "minidl[tensorboard]" (or pip '
                      f'install tensorboardX). Importing it failed with: {err}') from err

from ..autograd import enable_grad, no_grad
from ..backend import device_of, to_numpy
from ..nn import Linear, Module
from ..tensor import Tensor, tensor
from ..viz.graph import draw_graph
from ..viz.plots import FACADE_COLORS, _display_image, _show, colorize_labels

__all__ = ["SummaryWriter", "log_history", "log_classifier", "log_segmentation", "log_parameters",
           "penultimate_features"]


def _numpy(x):
    """``x`` as a NumPy array when it is a minidl Tensor or a CuPy array; anything else as it is (tensorboardX
    itself takes NumPy arrays, Python numbers and lists, and torch tensors)."""
    if isinstance(x, Tensor):
        return to_numpy(x.array)
    if device_of(x) == "cuda":
        return to_numpy(x)
    return x


class SummaryWriter(tensorboardX.SummaryWriter):
    """Writes TensorBoard event files; ``torch.utils.tensorboard.SummaryWriter`` for minidl.

    Every ``add_*`` method is tensorboardX's, with the same arguments as PyTorch's, and also takes minidl
    Tensors (from any device) where PyTorch takes torch tensors: scalars, histograms, images, PR curves and
    embeddings. ``add_graph`` is minidl's own (see :meth:`add_graph`). The writer is a context manager that
    closes (flushes) on exit; events are also flushed every ``flush_secs`` seconds and on :meth:`flush`.

    Args:
        log_dir: the run's folder (``logdir`` works too, as in tensorboardX). Default
            ``runs/<date>_<host><comment>``. Give each run its own folder under one parent and point
            ``tensorboard --logdir`` at the parent to compare runs.
        **kwargs: tensorboardX's: ``comment``, ``purge_step``, ``max_queue``, ``flush_secs``,
            ``filename_suffix``, ...

    Example::

        from minidl.utils.tensorboard import SummaryWriter

        with SummaryWriter("runs/mlp") as writer:
            for step in range(100):
                loss = train_step()                                # a minidl scalar Tensor
                writer.add_scalar("loss/train", loss, step)
            writer.add_histogram("fc1.weight", model.fc1.weight, step)
            writer.add_images("inputs", x[:16], step)             # (N, C, H, W) floats in [0, 1]
    """

    def add_scalar(self, tag: str, scalar_value, global_step: int | None = None, walltime: float | None = None,
                   **kwargs) -> None:
        """One number (a Python number, or a one-element Tensor or array) at ``global_step``."""
        super().add_scalar(tag, _numpy(scalar_value), global_step, walltime, **kwargs)

    def add_scalars(self, main_tag: str, tag_scalar_dict: Mapping[str, object], global_step: int | None = None,
                    walltime: float | None = None) -> None:
        """Several numbers drawn in one chart, ``{name: value}``; each name is written as a run of its own
        (a folder ``<log_dir>/<main_tag>/<name>``), as in PyTorch."""
        values = {name: _numpy(value) for name, value in tag_scalar_dict.items()}
        super().add_scalars(main_tag, values, global_step, walltime)

    def add_histogram(self, tag: str, values, global_step: int | None = None, bins="tensorflow",
                      walltime: float | None = None, max_bins: int | None = None) -> None:
        """The distribution of ``values`` (any shape), e.g. a layer's weights, at ``global_step``."""
        super().add_histogram(tag, _numpy(values), global_step, bins, walltime, max_bins)

    def add_image(self, tag: str, img_tensor, global_step: int | None = None, walltime: float | None = None,
                  dataformats: str = "CHW") -> None:
        """One image: floats in [0, 1] or uint8 in [0, 255], laid out as ``dataformats`` says (``CHW``,
        ``HWC``, ``HW``)."""
        super().add_image(tag, _numpy(img_tensor), global_step, walltime, dataformats)

    def add_images(self, tag: str, img_tensor, global_step: int | None = None, walltime: float | None = None,
                   dataformats: str = "NCHW") -> None:
        """A batch of images shown as one grid: an ``(N, C, H, W)`` array or Tensor (floats in [0, 1] or
        uint8), or a list of ``(C, H, W)`` images with ``dataformats="CHW"``."""
        if isinstance(img_tensor, (list, tuple)):
            # Stacked here: tensorboardX stacks lists with torch, which need not be installed.
            img_tensor = np.stack([np.asarray(_numpy(img)) for img in img_tensor])
            dataformats = "N" + dataformats if len(dataformats) == 3 else dataformats
        super().add_images(tag, _numpy(img_tensor), global_step, walltime, dataformats)

    def add_pr_curve(self, tag: str, labels, predictions, global_step: int | None = None,
                     num_thresholds: int = 127, weights=None, walltime: float | None = None) -> None:
        """A precision-recall curve: ``labels`` are the true/false answers, ``predictions`` the
        probabilities in [0, 1] that each answer is true (for a class of a classifier: ``target == c``
        and the softmax probability of ``c``; :func:`log_classifier` does that for every class)."""
        super().add_pr_curve(tag, _numpy(labels), _numpy(predictions), global_step, num_thresholds,
                             _numpy(weights), walltime)

    def add_embedding(self, mat, metadata=None, label_img=None, global_step: int | None = None,
                      tag: str = "default", metadata_header: Sequence[str] | None = None) -> None:
        """Points for TensorBoard's PROJECTOR (PCA, t-SNE, UMAP of feature vectors).

        Writes ``<log_dir>/<global_step:05d>/<tag>/`` with ``tensors.tsv`` (the vectors), ``metadata.tsv``
        (one label per row, or a header line and one row of columns when ``metadata_header`` is given) and
        ``sprite.png`` (the thumbnails), and adds an entry to ``<log_dir>/projector_config.pbtxt``.

        Args:
            mat: ``(N, D)`` feature vectors.
            metadata: N labels (a list, an array or a Tensor), or N lists of columns.
            label_img: ``(N, C, H, W)`` square thumbnails, floats in [0, 1].
            global_step: the step (a folder of its own, so log each step once).
            tag: the embedding's name.
            metadata_header: the column names when each metadata entry is a list.
        """
        metadata = _numpy(metadata)
        if isinstance(metadata, np.ndarray):
            metadata = metadata.tolist()
        super().add_embedding(_numpy(mat), metadata, _numpy(label_img), global_step, tag, metadata_header)

    def add_graph(self, model: Module, input_to_model=None, verbose: bool = False) -> str:
        """The model's graph, drawn as a picture: minidl's stand-in for PyTorch's ``add_graph``.

        PyTorch (and tensorboardX) trace the model with TorchScript and fill TensorBoard's GRAPHS tab. minidl
        has no tracer, so this runs one forward pass in eval mode (then gives the model back in the mode it
        was in), draws the graph that autograd recorded with :func:`minidl.viz.draw_graph` (ops as boxes,
        parameters named and blue, the input white) and logs it as an image with tag ``graph`` (IMAGES tab)
        and its Graphviz DOT text with tag ``graph`` (TEXT tab, stored as ``graph/text_summary``); paste the
        DOT into any Graphviz viewer to redraw it.

        Args:
            model: a ``minidl.nn.Module`` with one Tensor output.
            input_to_model: an input batch, e.g. one example ``x[:1]`` (a Tensor or an array; moved to the
                model's device), or a tuple of them for a model with several inputs.
            verbose: also print the DOT text.

        Returns:
            The DOT text.
        """
        if input_to_model is None:
            raise ValueError("add_graph: minidl draws the graph of one forward pass, so it needs input_to_model, "
                             "e.g. a batch of one example x[:1]")
        inputs = input_to_model if isinstance(input_to_model, (tuple, list)) else (input_to_model,)
        device = next((p.device for p in model.parameters()), "cpu")
        inputs = [x.to(device) if isinstance(x, Tensor) else tensor(np.asarray(_numpy(x)), device=device)
                  for x in inputs]
        was_training = model.training
        model.eval()
        try:
            with enable_grad():  # the graph is what is drawn, so it is recorded even inside no_grad()
                y = model(*inputs)
        finally:
            model.train(was_training)
        if not isinstance(y, Tensor):
            raise TypeError(f"add_graph: the model returned {type(y).__name__}; minidl draws the graph of a "
                            "model with one Tensor output")
        from PIL import Image  # tensorboardX needs Pillow for every image it writes

        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "graph.png")
            dot = draw_graph(y, path, params=dict(model.named_parameters()))
            with Image.open(path) as picture:
                image = np.asarray(picture.convert("RGB"))
        self.add_image("graph", image, dataformats="HWC")
        self.add_text("graph", "    " + dot.rstrip("\n").replace("\n", "\n    "))  # indented: Markdown code
        if verbose:
            print(dot)
        return dot


# ----------------------------------------------------------------------------------- helpers
# History columns and the tags they are written under; other columns (extra metrics) go to metrics/<name>.
# TensorBoard groups tags by their first part, so loss/train and loss/val sit side by side.
_HISTORY_TAGS = {"train_loss": "loss/train", "val_loss": "loss/val", "train_acc": "accuracy/train",
                 "val_acc": "accuracy/val", "lr": "lr", "train_seconds": "time/train_seconds",
                 "seconds": "time/epoch_seconds", "images_per_s": "time/images_per_s"}


def log_history(writer: SummaryWriter, history) -> list[str]:
    """Write every per-epoch number of a training run as a scalar, at step = epoch.

    Tags: ``loss/train``, ``loss/val``, ``accuracy/train``, ``accuracy/val`` (fractions in [0, 1]), ``lr``,
    ``time/train_seconds``, ``time/epoch_seconds``, ``time/images_per_s``, and ``metrics/<name>`` for every
    other column (the extra metrics of ``fit(metrics=...)``). Missing numbers (None, NaN: no validation set,
    a regression loss) are left out. The running losses of ``fit(log_every=...)`` go to ``loss/train_running``
    at their global batch number (their index in ``batch_losses`` when the loader had no length).

    Args:
        writer: the writer.
        history: a :class:`minidl.training.History`, or a mapping of columns with an ``"epoch"`` column.

    Returns:
        The tags written, sorted.

    Example::

        history = training.fit(model, loss_fn, optimizer, train_loader, val_loader, epochs=10)
        with SummaryWriter("runs/cifar") as writer:
            log_history(writer, history)
    """
    columns = history.as_dict() if hasattr(history, "as_dict") else dict(history)
    n = max((len(v) for v in columns.values()), default=0)
    epochs = columns.get("epoch") or list(range(1, n + 1))
    written = set()
    for name, values in columns.items():
        if name == "epoch":
            continue
        tag = _HISTORY_TAGS.get(name, f"metrics/{name}")
        for epoch, value in zip(epochs, values):
            if value is None or math.isnan(value):
                continue
            writer.add_scalar(tag, float(value), int(epoch))
            written.add(tag)
    for i, entry in enumerate(getattr(history, "batch_losses", ())):
        step = entry.get("step")
        writer.add_scalar("loss/train_running", float(entry["loss"]), int(i if step is None else step))
        written.add("loss/train_running")
    return sorted(written)


def log_parameters(writer: SummaryWriter, model: Module, step: int) -> list[str]:
    """A histogram of every parameter (``weights/<name>``) and of its gradient when it has one
    (``grads/<name>``), named as in ``state_dict`` (``conv1.weight``). Call it after ``backward()`` to see
    the gradients too; once per epoch is plenty.

    Returns:
        The tags written.
    """
    written = []
    for name, p in model.named_parameters():
        writer.add_histogram(f"weights/{name}", p, step)
        written.append(f"weights/{name}")
        if p.grad is not None:
            writer.add_histogram(f"grads/{name}", p.grad, step)
            written.append(f"grads/{name}")
    return written


def penultimate_features(model: Module, inputs, *, layer: Module | None = None,
                         limit: int | None = None) -> np.ndarray:
    """The feature vectors a classifier's last layer sees: the *input* of ``layer`` for every sample.

    These are what the PROJECTOR should show (:func:`log_classifier`'s ``features``): images of one class
    gather in this space when the network has learned to tell the classes apart. The model runs in eval
    mode without a graph and is given back in the mode it was in.

    Args:
        model: the network.
        inputs: a batch of model inputs (Tensor or array), or an iterable of batches such as a DataLoader
            yielding ``(x, y)`` (keep it unshuffled, so row i is sample i of the data set).
        layer: the module whose input is taken (default: the last ``nn.Linear`` in ``model.modules()``,
            the classifier's output layer in the usual model).
        limit: stop after this many samples.

    Returns:
        ``(N, D)`` float32 features, one row per sample, in input order.
    """
    if layer is None:
        linears = [m for m in model.modules() if isinstance(m, Linear)]
        if not linears:
            raise ValueError("penultimate_features: the model has no nn.Linear; pass layer=, the module whose "
                             "input is the feature vector")
        layer = linears[-1]
    batches = [inputs] if isinstance(inputs, (Tensor, np.ndarray)) or device_of(inputs) == "cuda" else inputs
    device = next((p.device for p in model.parameters()), "cpu")
    captured, count = [], 0
    handle = layer.register_forward_hook(lambda module, args, output: captured.append(args[0].numpy()))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for batch in batches:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                x = x.to(device) if isinstance(x, Tensor) else tensor(np.asarray(_numpy(x)), device=device)
                model(x)
                count += len(x)
                if limit is not None and count >= limit:
                    break
    finally:
        handle.remove()
        model.train(was_training)
    if not captured:
        raise ValueError("penultimate_features: no input reached the layer (an empty inputs?)")
    features = np.concatenate([f.reshape(len(f), -1) for f in captured]).astype(np.float32, copy=False)
    return features if limit is None else features[:limit]


def _tag_part(name) -> str:
    """A class name as one part of a tag: TensorBoard allows letters, digits, ``-``, ``_`` and ``.``; a ``/``
    would make a level of its own (Fashion-MNIST's "T-shirt/top" becomes "T-shirt_top")."""
    return re.sub(r"[^-\w.]", "_", str(name))


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = np.exp(scores - scores.max(axis=1, keepdims=True))  # minus the row max: no overflow for big logits
    return z / z.sum(axis=1, keepdims=True)


def _thumbnails(images: np.ndarray) -> np.ndarray:
    """``(N, 3, H, W)`` float32 in [0, 1] from ``(N, H, W)``, ``(N, C, H, W)`` or ``(N, H, W, C)`` images,
    uint8 or float (rescaled per image when outside [0, 1], as the figures do), grey ones repeated to RGB."""
    out = []
    for img in images:
        img = _display_image(img)
        out.append(np.repeat(img[None], 3, axis=0) if img.ndim == 2 else img.transpose(2, 0, 1))
    out = np.stack(out).astype(np.float32, copy=False)
    if out.shape[2] != out.shape[3]:
        raise ValueError(f"log_classifier: the projector needs square thumbnails, got {out.shape[2]}x"
                         f"{out.shape[3]} images")
    return out


def _log_pr_curves(writer: SummaryWriter, scores: np.ndarray, targets: np.ndarray, class_names: Sequence[str],
                   step: int) -> list[str]:
    """``pr_curve/<class>`` for every class: its softmax probability against ``target == c`` over the (M, C)
    ``scores`` and (M,) ``targets``; returns the tags."""
    probabilities = _softmax(scores)
    tags = []
    for c, name in enumerate(class_names):
        tags.append(f"pr_curve/{_tag_part(name)}")
        writer.add_pr_curve(tags[-1], targets == c, probabilities[:, c], step)
    return tags


def _predictions_figure(images: np.ndarray, predictions: np.ndarray, targets: np.ndarray,
                        class_names: Sequence[str]):
    """A grid of images, each titled with its predicted and true class (green when right, red when wrong)."""
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    n = len(images)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(1.7 * cols, 2.0 * rows + 0.4), dpi=100, layout="constrained")
    for i, ax in enumerate(fig.subplots(rows, cols, squeeze=False).flat):
        if i >= n:
            ax.axis("off")
            continue
        _show(ax, images[i])
        right = predictions[i] == targets[i]
        ax.set_title(f"pred: {class_names[predictions[i]]}\ntrue: {class_names[targets[i]]}", fontsize=8,
                     color="green" if right else "red")
    fig.suptitle("Predictions (green: right, red: wrong)", fontsize=10)
    return fig


def log_classifier(writer: SummaryWriter, *, scores, targets, class_names: Sequence[str], step: int,
                   images=None, features=None, model: Module | None = None, example_input=None,
                   num_examples: int = 16, max_embedding: int = 1000) -> list[str]:
    """Log how a classifier does on a test set: PR curves, sample predictions, its graph and its feature space.

    What is written (at ``step``, e.g. the number of epochs trained):

    - ``pr_curve/<class>`` for every class (PR CURVES tab): class c's softmax probability against
      ``target == c``, one-vs-rest, over all N samples;
    - ``predictions`` (IMAGES tab, when ``images`` is given): the first ``num_examples`` images in a grid,
      each titled with its predicted and true class;
    - ``graph`` (IMAGES and TEXT tabs, when ``model`` and ``example_input`` are given): see
      :meth:`SummaryWriter.add_graph`;
    - an embedding named ``features`` (PROJECTOR tab, when ``features`` is given): the first
      ``min(len(features), max_embedding)`` feature vectors, with the true and predicted class names as
      metadata columns ``label`` and ``predicted`` (colour the points by either) and the images as
      thumbnails. Give it at least a few hundred samples for a telling picture.

    Args:
        writer: the writer.
        scores: ``(N, C)`` raw model outputs (logits), e.g. ``evaluate(..., keep_scores=True).scores``.
        targets: ``(N,)`` true classes.
        class_names: the C class names.
        step: the step to log at.
        images: display images of the first samples (``images[i]`` is sample i), ``(M, C, H, W)``,
            ``(M, H, W)`` or ``(M, H, W, C)``, uint8 or float: the raw data set images (``test_set.data``)
            look best; normalised inputs are rescaled per image. Must cover the embedded samples.
        features: ``(M, D)`` feature vectors of the first M samples, e.g. from :func:`penultimate_features`.
        model: the model, for its graph.
        example_input: an input batch for the graph, e.g. ``x[:1]``.
        num_examples: how many images the predictions grid shows.
        max_embedding: at most this many samples in the projector.

    Returns:
        The tags written (the embedding as ``projector/features``).

    Example::

        test = training.evaluate(model, test_loader, loss_fn, keep_scores=True)
        features = penultimate_features(model, test_loader, limit=1000)
        with SummaryWriter("runs/cifar10") as writer:
            log_classifier(writer, scores=test.scores, targets=test.targets, class_names=test_set.classes,
                           images=test_set.data[:1000], features=features, model=model,
                           example_input=next(iter(test_loader))[0][:1], step=epochs)
    """
    scores = np.asarray(_numpy(scores), dtype=np.float64)
    targets = np.asarray(_numpy(targets)).astype(np.int64)
    if scores.ndim != 2 or targets.shape != scores.shape[:1]:
        raise ValueError(f"log_classifier: expected (N, C) scores and (N,) targets, got {scores.shape} and "
                         f"{targets.shape}")
    C = scores.shape[1]
    if len(class_names) != C:
        raise ValueError(f"log_classifier: {len(class_names)} class names for {C} classes")
    if (model is None) != (example_input is None):
        raise ValueError("log_classifier: the graph needs both model and example_input")
    if num_examples < 1:
        raise ValueError(f"log_classifier: num_examples must be at least 1, got {num_examples}")
    names = [str(name) for name in class_names]
    predictions = scores.argmax(axis=1)
    written = _log_pr_curves(writer, scores, targets, names, step)
    if images is not None:
        images = np.asarray(_numpy(images))
        shown = images[:num_examples]
        writer.add_figure("predictions", _predictions_figure(shown, predictions, targets, names), step)
        written.append("predictions")
    if model is not None:
        writer.add_graph(model, example_input)
        written.append("graph")
    if features is not None:
        features = np.asarray(_numpy(features), dtype=np.float32)
        features = features.reshape(len(features), -1)
        if len(features) > len(targets):
            raise ValueError(f"log_classifier: {len(features)} feature vectors for {len(targets)} samples")
        n = min(len(features), max_embedding)
        label_img = None
        if images is not None:
            if len(images) < n:
                raise ValueError(f"log_classifier: the projector shows {n} samples but only {len(images)} "
                                 "images were given; pass as many images as features, or lower max_embedding")
            label_img = _thumbnails(images[:n])
        metadata = [[names[t], names[p]] for t, p in zip(targets[:n], predictions[:n])]
        writer.add_embedding(features[:n], metadata=metadata, label_img=label_img, global_step=step,
                             tag="features", metadata_header=["label", "predicted"])
        written.append("projector/features")
    return written


def log_segmentation(writer: SummaryWriter, *, scores, targets, class_names: Sequence[str], step: int,
                     images=None, image_indices=None, colors: Sequence[Sequence[float]] = FACADE_COLORS,
                     model: Module | None = None, example_input=None, max_pixels: int = 500_000,
                     seed: int = 0) -> list[str]:
    """Log how a segmentation net does on a test set: per-class PR curves over its pixels, pictures, its graph.

    What is written (at ``step``):

    - ``pr_curve/<class>`` for every class (PR CURVES tab): class c's softmax probability against
      ``target == c``, one-vs-rest, over the test pixels (a uniform sample of ``max_pixels`` of them when
      there are more: TensorBoard bins them into 127 thresholds anyway);
    - ``segmentation`` (IMAGES tab, when ``images`` is given): one picture with a row per image: the photo,
      the predicted and the true label map side by side, in the class ``colors``;
    - ``graph`` (IMAGES and TEXT tabs, when ``model`` and ``example_input`` are given): see
      :meth:`SummaryWriter.add_graph`.

    Args:
        writer: the writer.
        scores: ``(N, C, H, W)`` raw model outputs (logits).
        targets: ``(N, H, W)`` true label maps.
        class_names: the C class names.
        step: the step to log at.
        images: ``(M, H, W, 3)`` or ``(M, 3, H, W)`` photos to show (uint8 or float), those of the samples
            ``image_indices`` (default: the first M).
        image_indices: which samples ``images`` are.
        colors: C RGB colours in [0, 1] for the label maps.
        model: the model, for its graph.
        example_input: an input batch for the graph.
        max_pixels: at most this many pixels in the PR curves.
        seed: the pixel sample's seed.

    Returns:
        The tags written.
    """
    scores = np.asarray(_numpy(scores))
    targets = np.asarray(_numpy(targets)).astype(np.int64)
    if scores.ndim != 4 or targets.shape != scores.shape[:1] + scores.shape[2:]:
        raise ValueError(f"log_segmentation: expected (N, C, H, W) scores and (N, H, W) targets, got "
                         f"{scores.shape} and {targets.shape}")
    C = scores.shape[1]
    if len(class_names) != C or len(colors) != C:
        raise ValueError(f"log_segmentation: {len(class_names)} class names and {len(colors)} colours for {C} "
                         f"classes")
    if (model is None) != (example_input is None):
        raise ValueError("log_segmentation: the graph needs both model and example_input")
    flat_scores = scores.transpose(0, 2, 3, 1).reshape(-1, C)
    flat_targets = targets.ravel()
    if len(flat_targets) > max_pixels:
        keep = np.sort(np.random.default_rng(seed).choice(len(flat_targets), max_pixels, replace=False))
        flat_scores, flat_targets = flat_scores[keep], flat_targets[keep]
    written = _log_pr_curves(writer, flat_scores.astype(np.float64), flat_targets, class_names, step)
    if images is not None:
        images = np.asarray(_numpy(images))
        indices = np.arange(len(images)) if image_indices is None else np.asarray(image_indices)
        predictions = scores[indices].argmax(axis=1)
        rows = []
        for img, pred, i in zip(images, predictions, indices):
            photo = _display_image(img)  # (H, W) or (H, W, 3) floats in [0, 1]
            photo = np.round(255 * (photo[..., None].repeat(3, axis=2) if photo.ndim == 2 else photo))
            rows.append(np.concatenate([photo.astype(np.uint8), colorize_labels(pred, colors),
                                        colorize_labels(targets[i], colors)], axis=1))
        writer.add_image("segmentation", np.concatenate(rows, axis=0), step, dataformats="HWC")
        written.append("segmentation")
    if model is not None:
        writer.add_graph(model, example_input)
        written.append("graph")
    return written
