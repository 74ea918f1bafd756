"""Image transforms with torchvision's names and arguments, for one image or a whole batch at once.

Layouts follow torchvision's two kinds of image:

- a NumPy (or CuPy) array or a PIL image is channels-last, like a PIL image: ``(H, W)``, ``(H, W, C)``,
  or a batch ``(N, H, W, C)``;
- a minidl Tensor is channels-first, like a torch tensor: ``(H, W)``, ``(C, H, W)``, or a batch
  ``(N, C, H, W)`` (more leading dimensions are more batch dimensions).

``ToTensor`` goes from the first kind to the second. Every transform here takes a batch as well as a
single image and is vectorised over it (``batched = True``), which is how the datasets' ``__getitems__``
prepare a whole batch in a few NumPy calls. A random transform gives each image of a batch its own draw,
and the draws are the ones it would make image by image: applying it to a batch equals applying it to each
image in turn, from the same generator state. (torchvision applies one draw to a whole 4-D tensor.)

Random transforms draw from minidl's default generator (``minidl.manual_seed`` fixes them), or inside a
DataLoader worker thread from that batch's own generator (see :mod:`minidl.data.worker`).

Segmentation needs the image and its label map moved together. The geometric transforms (``RandomCrop``,
``RandomHorizontalFlip``; ``takes_target = True``) also take a label map: ``t(image, target)`` returns
``(image, target)``, both cut or mirrored by the same draw. The map is ``(H, W)`` for one image, ``(N, H, W)``
for a batch, an array or a Tensor, of any dtype. ``Compose`` passes the pair on: ``Compose(ts)(image,
target)`` gives both to the transforms that take a target and only the image to the others (``ToTensor``,
``Normalize``), as torchvision's ``transforms.v2`` leaves a mask alone in its colour transforms. A data set's
``transforms=`` argument is such a joint transform (see :class:`~minidl.data.datasets.Facades`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Number

import numpy as np

from ..backend import get_array_module
from ..tensor import Tensor
from .worker import current_generator

__all__ = ["Compose", "Lambda", "Normalize", "RandomCrop", "RandomHorizontalFlip", "ToTensor", "Transform",
           "is_batched"]


class Transform:
    """Base of minidl's transforms. ``batched = True``: ``__call__`` also takes a batch; ``takes_target =
    True``: ``__call__(image, target)`` also moves a label map with the image (see the module doc)."""

    batched = True
    takes_target = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def is_batched(transform) -> bool:
    """Whether ``transform`` (None counts as the identity) can be called on a whole batch."""
    return transform is None or bool(getattr(transform, "batched", False))


def _is_pil(img) -> bool:
    return type(img).__module__.startswith("PIL.")


class _Layout:
    """An image or batch seen as a 4-D array, NHWC (arrays, PIL) or NCHW (Tensors), and the way back.

    For the usual layouts the 4-D view is not a copy, so a transform reads the caller's memory once and
    writes its result once.
    """

    def __init__(self, img, name: str) -> None:
        self.is_tensor = isinstance(img, Tensor)
        x = img.array if self.is_tensor else (np.asarray(img) if _is_pil(img) else img)
        if not hasattr(x, "ndim"):
            raise TypeError(f"{name}: expected a Tensor, an array or a PIL image, got {type(img).__name__}")
        self.shape = x.shape
        if self.is_tensor:
            if x.ndim < 2:
                raise ValueError(f"{name}: expected a tensor image (..., C, H, W) or (H, W), got shape {x.shape}")
            self.channels_last = False
            self.x4 = x[None, None] if x.ndim == 2 else x.reshape((-1,) + x.shape[-3:])
            self.is_batch = x.ndim >= 4
            self.h_pos = x.ndim - 2
        else:
            if x.ndim not in (2, 3, 4):
                raise ValueError(f"{name}: expected an array image (H, W), (H, W, C) or a batch (N, H, W, C), "
                                 f"got shape {x.shape}")
            self.channels_last = True
            self.x4 = x[None, :, :, None] if x.ndim == 2 else (x[None] if x.ndim == 3 else x)
            self.is_batch = x.ndim == 4
            self.h_pos = 1 if x.ndim == 4 else 0
        self.xp = get_array_module(x)

    def target_maps(self, target, name: str):
        """A label map for this image, ``(H, W)`` or ``(N, H, W)``, as an ``(N, H, W)`` array, checked."""
        t = target.array if isinstance(target, Tensor) else np.asarray(target) if _is_pil(target) else target
        h_axis, w_axis = self.hw_axes
        expected = ((self.x4.shape[0],) if self.is_batch else ()) + (self.x4.shape[h_axis], self.x4.shape[w_axis])
        if not hasattr(t, "shape") or t.shape != expected:
            got = f"shape {t.shape}" if hasattr(t, "shape") else type(target).__name__
            raise ValueError(f"{name}: the target should be a label map of shape {expected} for an image of "
                             f"shape {self.shape}, got {got}")
        return t.reshape((-1,) + t.shape[-2:])

    def target_back(self, target, t3):
        """``t3`` (N, H', W') in the shape and type of the ``target`` given to :meth:`target_maps`."""
        out = self.xp.ascontiguousarray(t3 if self.is_batch else t3[0])
        return Tensor(out) if isinstance(target, Tensor) else out

    @property
    def hw_axes(self) -> tuple[int, int]:
        return (1, 2) if self.channels_last else (2, 3)

    def back(self, y4):
        """``y4`` (same layout as ``x4``, maybe another H and W) in the input's shape and type."""
        h_axis, w_axis = self.hw_axes
        shape = list(self.shape)
        shape[self.h_pos:self.h_pos + 2] = y4.shape[h_axis], y4.shape[w_axis]
        out = self.xp.ascontiguousarray(y4.reshape(shape))
        return Tensor(out) if self.is_tensor else out


class Compose(Transform):
    """Apply ``transforms`` one after another.

    ``Compose(ts)(image)`` gives the image; ``Compose(ts)(image, target)`` gives ``(image, target)``: the
    transforms that take a target (``takes_target``) move the label map with the image, the others see the
    image only.

    Args:
        transforms: the transforms, in order. The composition takes batches when all of them do.
    """

    takes_target = True

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    @property
    def batched(self) -> bool:
        return all(is_batched(t) for t in self.transforms)

    def __call__(self, img, target=None):
        for t in self.transforms:
            if target is not None and getattr(t, "takes_target", False):
                img, target = t(img, target)
            else:
                img = t(img)
        return img if target is None else (img, target)

    def __repr__(self) -> str:
        lines = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({lines}\n)"


class ToTensor(Transform):
    """uint8 channels-last image(s) -> float32 channels-first Tensor in [0, 1], as torchvision's ToTensor.

    ``(H, W)`` and ``(H, W, C)`` give ``(C, H, W)`` (C = 1 for a grey image), a batch ``(N, H, W, C)`` gives
    ``(N, C, H, W)``. uint8 values are divided by 255 in float32 (``y = float32(x) / 255``); any other dtype
    keeps its values and dtype and is only transposed (torchvision's rule).
    """

    def __call__(self, pic) -> Tensor:
        if isinstance(pic, Tensor):
            raise TypeError("ToTensor: pic should be a PIL image or an array (channels-last), got a Tensor")
        if _is_pil(pic):
            x = np.asarray(pic, dtype=np.uint8) * np.uint8(255) if pic.mode == "1" else np.asarray(pic)
        elif hasattr(pic, "ndim"):
            x = pic
        else:
            raise TypeError(f"ToTensor: pic should be a PIL image or an array, got {type(pic).__name__}")
        if x.ndim == 2:
            x = x[:, :, None]
        if x.ndim == 3:
            x = x.transpose(2, 0, 1)
        elif x.ndim == 4:
            x = x.transpose(0, 3, 1, 2)
        else:
            raise ValueError(f"ToTensor: pic should be (H, W), (H, W, C) or a batch (N, H, W, C), got shape "
                             f"{x.shape}")
        xp = get_array_module(x)
        if x.dtype != np.uint8:
            return Tensor(xp.ascontiguousarray(x))
        y = xp.empty(x.shape, dtype=np.float32)
        xp.divide(x, np.float32(255), out=y)
        return Tensor(y)


class Normalize(Transform):
    """y = (x - mean[c]) / std[c] per channel c of a float Tensor (..., C, H, W), as torchvision's Normalize.

    Args:
        mean: one value per channel (or one for all).
        std: one value per channel (or one for all); none may be zero.
        inplace: write the result into the input Tensor's array.
    """

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float, inplace: bool = False) -> None:
        self.mean = mean
        self.std = std
        self.inplace = inplace

    def __call__(self, tensor: Tensor) -> Tensor:
        if not isinstance(tensor, Tensor):
            raise TypeError(f"Normalize: expected a Tensor (..., C, H, W), apply ToTensor first; got "
                            f"{type(tensor).__name__}")
        x = tensor.array
        if x.dtype.kind != "f":
            raise TypeError(f"Normalize: input tensor should be a float tensor, got dtype {x.dtype}")
        if x.ndim < 3:
            raise ValueError(f"Normalize: expected a tensor image of size (..., C, H, W), got shape {x.shape}")
        xp = get_array_module(x)
        mean = xp.asarray(self.mean, dtype=x.dtype).reshape(-1)
        std = xp.asarray(self.std, dtype=x.dtype).reshape(-1)
        if bool((std == 0).any()):
            raise ValueError(f"Normalize: std evaluated to zero after conversion to {x.dtype}, leading to "
                             f"division by zero")
        C = x.shape[-3]
        for name, v in (("mean", mean), ("std", std)):
            if v.size not in (1, C):
                raise ValueError(f"Normalize: {name} has {v.size} values but the input has {C} channels "
                                 f"(shape {x.shape})")
        mean, std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
        if self.inplace:
            xp.subtract(x, mean, out=x)
            xp.divide(x, std, out=x)
            return tensor
        y = xp.subtract(x, mean)
        xp.divide(y, std, out=y)
        return Tensor(y)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``.

    Each image draws u ~ U[0, 1) from the generator and is flipped when u < p (a batch draws its N values
    in one call, the same numbers N single calls would give). ``flip(image, target)`` mirrors the label map
    ``target`` with its image and returns both.

    Args:
        p: the probability of a flip.
    """

    takes_target = True

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img, target=None):
        view = _Layout(img, "RandomHorizontalFlip")
        maps = None if target is None else view.target_maps(target, "RandomHorizontalFlip")
        x4, xp = view.x4, view.xp
        flip = current_generator().random(x4.shape[0]) < self.p
        if not flip.any() and not view.is_batch:
            return img if target is None else (img, target)
        chosen = xp.asarray(np.flatnonzero(flip))
        out = _flip_chosen(x4, chosen, view.hw_axes[1], xp)
        if maps is None:
            return view.back(out)
        return view.back(out), view.target_back(target, _flip_chosen(maps, chosen, 2, xp))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


def _flip_chosen(x4, chosen, w_axis: int, xp):
    """A copy of ``x4`` with the images ``chosen`` mirrored along ``w_axis``."""
    # Copy, then overwrite only the flipped images: faster than a where() over the batch (docs/PERFORMANCE.md,
    # "Random flips").
    out = x4.copy()
    out[chosen] = xp.flip(x4[chosen], axis=w_axis)
    return out


def _pair(size, name: str) -> tuple[int, int]:
    if isinstance(size, Number):
        return int(size), int(size)
    if isinstance(size, Sequence) and len(size) == 1:
        return int(size[0]), int(size[0])
    if isinstance(size, Sequence) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ValueError(f"{name}: please provide only two dimensions (h, w) for size, got {size!r}")


def _ltrb(padding) -> tuple[int, int, int, int]:
    """torchvision's padding forms: p (all sides), (left/right, top/bottom), (left, top, right, bottom)."""
    if isinstance(padding, Number):
        pads = (padding,) * 4
    elif isinstance(padding, Sequence) and len(padding) in (1, 2, 4):
        pads = tuple(padding) * (4 if len(padding) == 1 else 1)
        if len(pads) == 2:
            pads = (pads[0], pads[1], pads[0], pads[1])
    else:
        raise ValueError(f"RandomCrop: padding must be an int or a 1, 2 or 4 element sequence, got {padding!r}")
    if any(int(p) != p or p < 0 for p in pads):
        raise ValueError(f"RandomCrop: padding must be non-negative integers, got {padding!r}")
    return tuple(int(p) for p in pads)


class RandomCrop(Transform):
    """Cut a random ``size`` window out of each image, after optional padding, as torchvision's RandomCrop.

    For an H x W (padded) image and a th x tw crop, the top-left corner is (i, j) with
    i = floor(u0 * (H - th + 1)), j = floor(u1 * (W - tw + 1)), (u0, u1) ~ U[0, 1)^2 drawn per image.
    ``crop(image, target)`` cuts the same window out of the label map ``target`` (padded with
    ``target_fill``) and returns both.

    Args:
        size: (th, tw), or one int for a square crop.
        padding: added before cropping: an int (all sides), (left/right, top/bottom) or (left, top, right,
            bottom).
        pad_if_needed: pad an image smaller than ``size`` up to it (by the shortfall on both sides).
        fill: the value of constant padding: one number, or one per channel.
        padding_mode: ``"constant"`` (fill), ``"edge"`` (repeat the border pixel), ``"reflect"`` (mirror
            without repeating the border: 2 1 | 1 2 3 -> 3 2 | 1 2 3 ...) or ``"symmetric"`` (mirror with the
            border repeated).
        target_fill: the label given to constant padding of a label map (e.g. a loss's ``ignore_index``, so
            the padded pixels do not count); the other modes pad the map as they pad the image.
    """

    _MODES = ("constant", "edge", "reflect", "symmetric")
    takes_target = True

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0,
                 padding_mode: str = "constant", target_fill: int = 0) -> None:
        self.size = _pair(size, "RandomCrop")
        if padding_mode not in self._MODES:
            raise ValueError(f"RandomCrop: padding_mode should be one of {self._MODES}, got {padding_mode!r}")
        if not isinstance(fill, (Number, Sequence)):
            raise TypeError(f"RandomCrop: fill should be a number or a sequence of numbers, got {type(fill)}")
        self.padding = padding
        self._pads = None if padding is None else _ltrb(padding)
        self.pad_if_needed = pad_if_needed
        self.fill = fill
        self.padding_mode = padding_mode
        self.target_fill = target_fill

    def _pad(self, view: _Layout, x4, left: int, top: int, right: int, bottom: int):
        xp = view.xp
        h_axis, w_axis = view.hw_axes
        widths = [(0, 0)] * 4
        widths[h_axis], widths[w_axis] = (top, bottom), (left, right)
        if self.padding_mode != "constant":
            return xp.pad(x4, widths, mode=self.padding_mode)
        c_axis = 3 if view.channels_last else 1
        fill = xp.asarray(self.fill, dtype=x4.dtype).reshape(-1)
        if fill.size not in (1, x4.shape[c_axis]):
            raise ValueError(f"RandomCrop: fill has {fill.size} values but the image has {x4.shape[c_axis]} "
                             f"channels")
        shape = list(x4.shape)
        shape[h_axis] += top + bottom
        shape[w_axis] += left + right
        out = xp.empty(shape, dtype=x4.dtype)
        out[...] = fill.reshape((1, 1, 1, -1) if view.channels_last else (1, -1, 1, 1))
        inner = [slice(None)] * 4
        inner[h_axis] = slice(top, top + x4.shape[h_axis])
        inner[w_axis] = slice(left, left + x4.shape[w_axis])
        out[tuple(inner)] = x4
        return out

    def _pad_maps(self, xp, maps, left: int, top: int, right: int, bottom: int):
        widths = ((0, 0), (top, bottom), (left, right))
        if self.padding_mode != "constant":
            return xp.pad(maps, widths, mode=self.padding_mode)
        return xp.pad(maps, widths, mode="constant", constant_values=self.target_fill)

    def _padded(self, view: _Layout, x4, maps):
        """The image batch (and label maps) after ``padding`` and ``pad_if_needed``."""
        h_axis, w_axis = view.hw_axes
        pads = [] if self._pads is None else [self._pads]
        th, tw = self.size
        width_short = tw - (x4.shape[w_axis] + (self._pads[0] + self._pads[2] if self._pads else 0))
        height_short = th - (x4.shape[h_axis] + (self._pads[1] + self._pads[3] if self._pads else 0))
        if self.pad_if_needed and width_short > 0:
            pads.append((width_short, 0, width_short, 0))
        if self.pad_if_needed and height_short > 0:
            pads.append((0, height_short, 0, height_short))
        for ltrb in pads:
            x4 = self._pad(view, x4, *ltrb)
            if maps is not None:
                maps = self._pad_maps(view.xp, maps, *ltrb)
        return x4, maps

    def __call__(self, img, target=None):
        view = _Layout(img, "RandomCrop")
        maps = None if target is None else view.target_maps(target, "RandomCrop")
        xp = view.xp
        x4, maps = self._padded(view, view.x4, maps)
        th, tw = self.size
        h_axis, w_axis = view.hw_axes
        N, H, W = x4.shape[0], x4.shape[h_axis], x4.shape[w_axis]
        if H < th or W < tw:
            raise ValueError(f"RandomCrop: required crop size {(th, tw)} is larger than the input image size "
                             f"{(H, W)}")
        if H == th and W == tw:
            image = img if x4 is view.x4 else view.back(x4)
            return image if maps is None else (image, view.target_back(target, maps))
        u = current_generator().random((N, 2))
        i = xp.asarray((u[:, 0] * (H - th + 1)).astype(np.int64))
        j = xp.asarray((u[:, 1] * (W - tw + 1)).astype(np.int64))
        # windows[n, a, b] is the th x tw window with top-left corner (a, b) of image n: a strided view, so
        # fancy-indexing it with the N corners gathers all crops in one copy.
        windows = xp.lib.stride_tricks.sliding_window_view(x4, (th, tw), axis=(h_axis, w_axis))
        if view.channels_last:
            windows = windows.transpose(0, 1, 2, 4, 5, 3)
        else:
            windows = windows.transpose(0, 2, 3, 1, 4, 5)
        n = xp.arange(N)
        image = view.back(windows[n, i, j])
        if maps is None:
            return image
        map_windows = xp.lib.stride_tricks.sliding_window_view(maps, (th, tw), axis=(1, 2))
        return image, view.target_back(target, map_windows[n, i, j])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class Lambda(Transform):
    """Apply a user function ``lambd`` as a transform.

    Args:
        lambd: the function, called with the image (or batch).
        batched: declare that ``lambd`` also handles a batch (N, H, W, C) array / (N, C, H, W) Tensor, so
            datasets may call it once per batch; by default it is called once per image.
    """

    def __init__(self, lambd: Callable, *, batched: bool = False) -> None:
        if not callable(lambd):
            raise TypeError(f"Lambda: argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd
        self.batched = batched

    def __call__(self, img):
        return self.lambd(img)
