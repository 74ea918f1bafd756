"""minidl.data.transforms: each transform against torch / NumPy, single image vs batch, layouts, errors.

Images are random uint8 (channels-last arrays, as a dataset stores them) or random float Tensors
(channels-first, as ToTensor makes them). Random transforms are checked for: batch == image by image from
the same generator state, reproducibility under minidl.manual_seed, and reaching every outcome.
"""
from __future__ import annotations

import numpy as np
import pytest

import minidl as mdl
from minidl.data import transforms as T


def uint8_images(rng, *shape) -> np.ndarray:
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


# ----------------------------------------------------------------------------------------------- ToTensor
def test_to_tensor_matches_torch_hwc(rng, torch):
    x = uint8_images(rng, 5, 7, 3)
    y = T.ToTensor()(x)
    expected = torch.from_numpy(x.transpose(2, 0, 1).copy()).to(torch.float32).div(255).numpy()
    assert isinstance(y, mdl.Tensor) and y.dtype == np.float32 and y.shape == (3, 5, 7)
    np.testing.assert_array_equal(y.numpy(), expected)


def test_to_tensor_grey_and_extremes():
    x = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    y = T.ToTensor()(x)
    assert y.shape == (1, 2, 2)
    np.testing.assert_allclose(y.numpy()[0], [[0.0, 1.0], [0.2, 0.4]], rtol=1e-7)


def test_to_tensor_batch_equals_singles(rng):
    x = uint8_images(rng, 4, 6, 5, 3)
    batch = T.ToTensor()(x)
    assert batch.shape == (4, 3, 6, 5) and batch.array.flags.c_contiguous
    for n in range(4):
        np.testing.assert_array_equal(batch.numpy()[n], T.ToTensor()(x[n]).numpy())


def test_to_tensor_keeps_other_dtypes(rng):
    x = rng.standard_normal((4, 5, 2))
    y = T.ToTensor()(x)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y.numpy(), x.transpose(2, 0, 1))


def test_to_tensor_pil_images(rng):
    Image = pytest.importorskip("PIL.Image")
    x = uint8_images(rng, 6, 4, 3)
    np.testing.assert_array_equal(T.ToTensor()(Image.fromarray(x)).numpy(), T.ToTensor()(x).numpy())
    grey = uint8_images(rng, 6, 4)
    assert T.ToTensor()(Image.fromarray(grey, mode="L")).shape == (1, 6, 4)
    binary = Image.fromarray(grey > 128).convert("1")
    np.testing.assert_array_equal(T.ToTensor()(binary).numpy()[0], (grey > 128).astype(np.float32))


def test_to_tensor_errors():
    with pytest.raises(TypeError, match="ToTensor.*Tensor"):
        T.ToTensor()(mdl.zeros(3, 4, 4))
    with pytest.raises(ValueError, match=r"ToTensor.*\(1, 2, 3, 4, 5\)"):
        T.ToTensor()(np.zeros((1, 2, 3, 4, 5), np.uint8))
    with pytest.raises(TypeError, match="ToTensor"):
        T.ToTensor()([[1, 2]])


# ---------------------------------------------------------------------------------------------- Normalize
def test_normalize_matches_torch(rng, torch):
    x = rng.random((3, 5, 4), dtype=np.float32)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    y = T.Normalize(mean, std)(mdl.tensor(x))
    t = torch.from_numpy(x)
    expected = t.sub(torch.tensor(mean).view(-1, 1, 1)).div(torch.tensor(std).view(-1, 1, 1)).numpy()
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), expected)


def test_normalize_float64_and_batch(rng):
    x = rng.standard_normal((4, 2, 3, 3))
    norm = T.Normalize([0.5, -1.0], [2.0, 0.25])
    batch = norm(mdl.tensor(x))
    assert batch.dtype == np.float64
    np.testing.assert_allclose(batch.numpy()[:, 1], (x[:, 1] + 1.0) / 0.25, rtol=1e-12)
    for n in range(4):
        np.testing.assert_array_equal(batch.numpy()[n], norm(mdl.tensor(x[n])).numpy())


def test_normalize_scalar_and_inplace(rng):
    x = rng.random((1, 4, 4), dtype=np.float32)
    t = mdl.tensor(x.copy())
    out = T.Normalize(0.5, 1.0, inplace=True)(t)
    assert out is t
    np.testing.assert_allclose(t.numpy(), x - 0.5, rtol=1e-6)


def test_normalize_errors():
    with pytest.raises(ValueError, match="std evaluated to zero"):
        T.Normalize([0.0], [0.0])(mdl.zeros(1, 2, 2))
    with pytest.raises(ValueError, match=r"mean has 2 values but the input has 3 channels"):
        T.Normalize([0.0, 0.0], [1.0, 1.0])(mdl.zeros(3, 2, 2))
    with pytest.raises(TypeError, match="float tensor, got dtype uint8"):
        T.Normalize([0.0], [1.0])(mdl.tensor(np.zeros((1, 2, 2), np.uint8)))
    with pytest.raises(TypeError, match="apply ToTensor first"):
        T.Normalize([0.0], [1.0])(np.zeros((1, 2, 2), np.float32))


# ----------------------------------------------------------------------------------- RandomHorizontalFlip
def test_flip_always_and_never(rng):
    x = uint8_images(rng, 4, 5, 3)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x), x[:, ::-1])
    assert T.RandomHorizontalFlip(p=0.0)(x) is x
    t = mdl.tensor(rng.random((3, 4, 5), dtype=np.float32))
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(t).numpy(), t.numpy()[:, :, ::-1])


@pytest.mark.parametrize("as_tensor", [False, True])
def test_flip_batch_equals_singles(rng, as_tensor):
    flip = T.RandomHorizontalFlip(p=0.5)
    x = rng.random((16, 3, 4, 5), dtype=np.float32) if as_tensor else uint8_images(rng, 16, 4, 5, 3)
    wrap = mdl.tensor if as_tensor else (lambda a: a)
    unwrap = (lambda t: t.numpy()) if as_tensor else np.asarray
    mdl.manual_seed(7)
    batch = unwrap(flip(wrap(x)))
    mdl.manual_seed(7)
    singles = np.stack([unwrap(flip(wrap(x[n]))) for n in range(16)])
    np.testing.assert_array_equal(batch, singles)
    flipped = [not np.array_equal(batch[n], x[n]) for n in range(16)]
    assert 0 < sum(flipped) < 16


def test_flip_frequency_and_seed(rng):
    x = np.tile(np.arange(4, dtype=np.uint8), (2000, 1, 1))[..., None]  # (2000, 1, 4, 1), every row 0 1 2 3
    mdl.manual_seed(3)
    a = T.RandomHorizontalFlip(p=0.3)(x)
    mdl.manual_seed(3)
    b = T.RandomHorizontalFlip(p=0.3)(x)
    np.testing.assert_array_equal(a, b)
    rate = (a[:, 0, 0, 0] == 3).mean()
    assert 0.25 < rate < 0.35


# --------------------------------------------------------------------------------------------- RandomCrop
def test_crop_is_a_window_of_the_padded_image(rng):
    x = uint8_images(rng, 6, 7, 3)
    padded = np.pad(x, ((2, 2), (2, 2), (0, 0)))
    for _ in range(10):
        y = T.RandomCrop((5, 4), padding=2)(x)
        assert y.shape == (5, 4, 3) and y.dtype == np.uint8
        windows = [(i, j) for i in range(padded.shape[0] - 4) for j in range(padded.shape[1] - 3)
                   if np.array_equal(padded[i:i + 5, j:j + 4], y)]
        assert windows


def test_crop_reaches_every_position():
    x = np.arange(36, dtype=np.uint8).reshape(6, 6)
    mdl.manual_seed(0)
    corners = {(int(y[0, 0]) // 6, int(y[0, 0]) % 6) for y in (T.RandomCrop(4)(x) for _ in range(300))}
    assert corners == {(i, j) for i in range(3) for j in range(3)}


@pytest.mark.parametrize("as_tensor", [False, True])
@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_crop_batch_equals_singles(rng, as_tensor, mode):
    crop = T.RandomCrop(5, padding=(1, 2), padding_mode=mode, fill=9)
    x = rng.random((8, 2, 6, 5), dtype=np.float32) if as_tensor else uint8_images(rng, 8, 6, 5, 2)
    wrap = mdl.tensor if as_tensor else (lambda a: a)
    unwrap = (lambda t: t.numpy()) if as_tensor else np.asarray
    mdl.manual_seed(11)
    batch = unwrap(crop(wrap(x)))
    mdl.manual_seed(11)
    singles = np.stack([unwrap(crop(wrap(x[n]))) for n in range(8)])
    assert batch.shape == ((8, 2, 5, 5) if as_tensor else (8, 5, 5, 2))
    np.testing.assert_array_equal(batch, singles)


@pytest.mark.parametrize("mode, np_mode", [("edge", "edge"), ("reflect", "reflect"), ("symmetric", "symmetric")])
def test_crop_padding_modes_match_numpy(rng, mode, np_mode):
    # A crop as large as the padded image has one position, so the output is the padded image itself.
    x = uint8_images(rng, 5, 6, 3)
    y = T.RandomCrop((5 + 1 + 3, 6 + 2 + 4), padding=(2, 1, 4, 3), padding_mode=mode)(x)
    np.testing.assert_array_equal(y, np.pad(x, ((1, 3), (2, 4), (0, 0)), mode=np_mode))


@pytest.mark.parametrize("mode, torch_mode", [("edge", "replicate"), ("reflect", "reflect")])
def test_crop_padding_modes_match_torch_on_tensors(rng, torch, mode, torch_mode):
    x = rng.random((2, 5, 6), dtype=np.float32)
    y = T.RandomCrop((9, 12), padding=(2, 1, 4, 3), padding_mode=mode)(mdl.tensor(x))
    expected = torch.nn.functional.pad(torch.from_numpy(x)[None], (2, 4, 1, 3), mode=torch_mode)[0].numpy()
    np.testing.assert_array_equal(y.numpy(), expected)


def test_crop_constant_fill_per_channel(rng):
    x = uint8_images(rng, 2, 2, 3)
    y = T.RandomCrop(4, padding=1, fill=(10, 20, 30))(x)
    np.testing.assert_array_equal(y[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(y[1:3, 1:3], x)


def test_crop_pad_if_needed(rng):
    x = rng.integers(10, 256, size=(3, 5), dtype=np.uint8)
    y = T.RandomCrop((6, 5), pad_if_needed=True, fill=7)(x)
    assert y.shape == (6, 5)
    rows = [i for i in range(3, -1, -1) if np.array_equal(y[i:i + 3], x)]
    assert rows and (y == 7).sum() == 15


def test_crop_equal_size_draws_nothing(rng):
    x = uint8_images(rng, 4, 4, 3)
    state = mdl.random.get_state()
    assert T.RandomCrop(4)(x) is x
    assert mdl.random.get_state() == state


def test_crop_errors(rng):
    with pytest.raises(ValueError, match=r"required crop size \(5, 5\) is larger than the input image size \(4, 4\)"):
        T.RandomCrop(5)(uint8_images(rng, 4, 4))
    with pytest.raises(ValueError, match="padding_mode"):
        T.RandomCrop(3, padding_mode="wrap")
    with pytest.raises(ValueError, match="padding"):
        T.RandomCrop(3, padding=(1, 2, 3))
    with pytest.raises(ValueError, match="fill has 2 values but the image has 3 channels"):
        T.RandomCrop(3, padding=1, fill=(1, 2))(uint8_images(rng, 3, 3, 3))


def test_crop_tensor_keeps_dtype_and_extra_batch_dims(rng):
    x = mdl.tensor(rng.standard_normal((2, 3, 1, 6, 6)))
    y = T.RandomCrop(4)(x)
    assert y.shape == (2, 3, 1, 4, 4) and y.dtype == np.float64


# ------------------------------------------------------------------------------------ Compose and Lambda
def test_compose_order_and_batched_flag(rng):
    x = uint8_images(rng, 3, 4, 4, 3)
    pipeline = T.Compose([T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
    y = pipeline(x)
    np.testing.assert_allclose(y.numpy(), (x.transpose(0, 3, 1, 2) / 255 - 0.5) / 0.5, rtol=1e-5, atol=1e-6)
    assert pipeline.batched
    assert not T.Compose([T.ToTensor(), T.Lambda(lambda t: t * 2)]).batched
    assert T.Compose([T.ToTensor(), T.Lambda(lambda t: t * 2, batched=True)]).batched
    assert not T.is_batched(lambda t: t) and T.is_batched(None)
    assert "Normalize" in repr(pipeline)


def test_lambda(rng):
    x = uint8_images(rng, 2, 2)
    np.testing.assert_array_equal(T.Lambda(lambda a: a + 1)(x), x + 1)
    with pytest.raises(TypeError, match="lambd should be callable"):
        T.Lambda(3)


# ------------------------------------------------------------------------------ image and label map together
def position_pair(N: int, H: int, W: int, as_tensor: bool):
    """Images whose channels hold each pixel's row and column, and label maps holding row * W + column:
    wherever an image pixel lands, its label must still be row * W + column of its channels."""
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    image = np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.float32) + 1  # 0 marks padding
    images = np.repeat(image[None], N, axis=0)
    maps = np.repeat((rows * W + cols + 1)[None], N, axis=0).astype(np.int64)
    if as_tensor:
        return mdl.Tensor(images.transpose(0, 3, 1, 2).copy()), mdl.Tensor(maps)
    return images, maps


def assert_aligned(images, maps, W: int, as_tensor: bool) -> None:
    x = images.numpy().transpose(0, 2, 3, 1) if as_tensor else images
    m = maps.numpy() if as_tensor else maps
    position = np.where(x[..., 0] == 0, 0, (x[..., 0] - 1) * W + (x[..., 1] - 1) + 1).astype(np.int64)
    np.testing.assert_array_equal(m, position)


@pytest.mark.parametrize("as_tensor", [False, True])
@pytest.mark.parametrize("make", [
    lambda: T.RandomHorizontalFlip(),
    lambda: T.RandomCrop((5, 7)),
    lambda: T.RandomCrop(9, padding=(1, 2, 3, 0)),
    lambda: T.RandomCrop(12, pad_if_needed=True),
    lambda: T.Compose([T.RandomCrop(6, padding=2), T.RandomHorizontalFlip(), T.Lambda(lambda x: x)]),
])
def test_paired_transforms_keep_image_and_map_aligned(as_tensor, make):
    mdl.manual_seed(3)
    H, W = 8, 10
    images, maps = position_pair(16, H, W, as_tensor)
    t = make()
    out_images, out_maps = t(images, maps)
    assert type(out_maps) is type(maps) and out_maps.shape[0] == 16 and out_maps.shape[-2:] == (
        out_images.shape[-2:] if as_tensor else out_images.shape[1:3])
    assert_aligned(out_images, out_maps, W, as_tensor)
    if isinstance(t, T.Compose):
        return  # a composition draws transform by transform over the batch, so image by image differs
    # one image at a time, from the same generator state: the same outputs as the batch
    mdl.manual_seed(3)
    for n in range(16):
        one_image, one_map = t(images[n], maps[n])
        np.testing.assert_array_equal(np.asarray(one_image.numpy() if as_tensor else one_image),
                                      np.asarray(out_images[n].numpy() if as_tensor else out_images[n]))
        np.testing.assert_array_equal(one_map.numpy() if as_tensor else one_map,
                                      out_maps[n].numpy() if as_tensor else out_maps[n])


def test_paired_transforms_move_maps_like_images(rng):
    """The map gets exactly the window (and mirror) the image gets, and unpaired calls draw the same."""
    images = uint8_images(rng, 6, 9, 11, 3)
    maps = rng.integers(0, 5, size=(6, 9, 11))
    for t in (T.RandomCrop((4, 6), padding=2, target_fill=255), T.RandomHorizontalFlip(p=0.5)):
        mdl.manual_seed(11)
        image_only = t(images)
        mdl.manual_seed(11)
        paired_images, paired_maps = t(images, maps)
        np.testing.assert_array_equal(paired_images, image_only)
        mdl.manual_seed(11)
        # the map cut as a one-channel image with the same draws, padded with target_fill
        t_map = T.RandomCrop((4, 6), padding=2, fill=255) if isinstance(t, T.RandomCrop) else t
        np.testing.assert_array_equal(paired_maps, t_map(maps[..., None])[..., 0])
    assert (paired_maps >= 0).all()


def test_paired_crop_target_fill_and_padding_modes(rng):
    maps = np.arange(12).reshape(1, 3, 4)
    images = uint8_images(rng, 1, 3, 4, 3)
    _, padded = T.RandomCrop((7, 8), padding=2, target_fill=-1)(images, maps)
    assert (padded == -1).sum() == 7 * 8 - 12 and sorted(padded[padded >= 0]) == list(range(12))
    _, reflected = T.RandomCrop((7, 8), padding=2, padding_mode="reflect")(images, maps)
    np.testing.assert_array_equal(reflected[0], np.pad(maps[0], 2, mode="reflect")[:7, :8])


def test_compose_with_target_skips_image_only_transforms(rng):
    images = uint8_images(rng, 4, 8, 8, 3)
    maps = rng.integers(0, 5, size=(4, 8, 8))
    pipeline = T.Compose([T.RandomCrop(6), T.ToTensor(), T.Normalize((0.5,) * 3, (0.25,) * 3),
                          T.RandomHorizontalFlip()])
    mdl.manual_seed(0)
    x, y = pipeline(images, maps)
    assert isinstance(x, mdl.Tensor) and x.shape == (4, 3, 6, 6) and isinstance(y, np.ndarray)
    assert y.shape == (4, 6, 6) and y.dtype == maps.dtype
    mdl.manual_seed(0)
    assert pipeline(images).shape == (4, 3, 6, 6)  # without a target: the image alone, as before


def test_paired_target_shape_errors(rng):
    images = uint8_images(rng, 2, 8, 8, 3)
    with pytest.raises(ValueError, match=r"RandomCrop: the target should be a label map of shape \(2, 8, 8\).*"
                                         r"\(2, 8, 8, 3\), got shape \(2, 8, 7\)"):
        T.RandomCrop(4)(images, np.zeros((2, 8, 7), np.int64))
    with pytest.raises(ValueError, match=r"RandomHorizontalFlip: the target should be a label map of shape "
                                         r"\(8, 8\)"):
        T.RandomHorizontalFlip()(images[0], np.zeros((1, 8, 8), np.int64))
