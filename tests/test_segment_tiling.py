"""Sliding-window prediction: tiles equal the whole-image prediction where both fit (a
valid-convolution model, windows on its pooling grid), blending removes seams of a
same-padding model, flips average back, importance maps."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from jaxwsi.models import get
from jaxwsi.segment.losses import foreground
from jaxwsi.segment.tiling import importance_map, sliding_window, window_starts


def _weight(path, leaf, rng: np.random.Generator) -> np.ndarray:
    """Seeded weights filled in on the host (any weights do for these properties, and this skips
    compiling a random initializer per layer shape): BatchNorm mean 0 / var 1, biases 0,
    kernels ~ N(0, 1 / fan_in)."""
    name = jax.tree_util.keystr(path)
    if "['var']" in name:
        return np.ones(leaf.shape, leaf.dtype)
    if "['mean']" in name or "['bias']" in name:
        return np.zeros(leaf.shape, leaf.dtype)
    fan_in = int(np.prod(leaf.shape[:-1])) or 1
    return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(leaf.dtype)


def predictor(name: str, nclass: list[int], **options):
    factory = get(name, kind="segmentation")
    abstract = nnx.eval_shape(
        lambda: factory(nchannel=1, nclass=nclass, rngs=nnx.Rngs(0), **options)
    )
    abstract.eval()
    graphdef, state = nnx.split(abstract)
    rng = np.random.default_rng(3)
    state = jax.tree_util.tree_map_with_path(lambda p, x: _weight(p, x, rng), state)
    forward = jax.jit(lambda s, x: foreground(nnx.merge(graphdef, s)(x)[0])[..., None])
    return lambda windows: np.asarray(forward(state, windows))


@pytest.fixture(scope="module")
def unet_xy():
    return predictor("unet_xy", [2, 2, 2], features=2)


@pytest.fixture(scope="module")
def unet2d():
    return predictor("unet2d", [2], depth=2, features=4)


@pytest.fixture(scope="module")
def volume():
    return np.random.default_rng(0).random((1, 28, 28, 1)).astype(np.float32)


def test_tiles_equal_whole_image(unet_xy, volume):
    """9 windows of [29, 100, 100] → [1, 12, 12] every 8 px, blended, equal one window of
    [29, 116, 116] → [1, 28, 28] over the whole (mirror-padded) image."""
    whole = sliding_window(unet_xy, volume, (29, 116, 116), (1, 28, 28), stride=(1, 8, 8))
    calls = []

    def counted(windows):
        calls.append(len(windows))
        return unet_xy(windows)

    tiled = sliding_window(
        counted,
        volume,
        (29, 100, 100),
        (1, 12, 12),
        overlap=0.25,
        stride=(1, 8, 8),
        batch_size=4,
    )
    assert sum(calls) == 9 and max(calls) == 4  # 3 × 3 windows, at most 4 per device call
    assert tiled.shape == whole.shape == (1, 28, 28, 1)
    np.testing.assert_allclose(tiled, whole, atol=2e-5)


def test_blending_removes_seams(unet2d):
    """A same-padding U-Net sees zero padding at tile borders: abutting tiles leave seams;
    overlapping Gaussian-blended tiles are much closer to the whole-image prediction there."""
    image = np.random.default_rng(1).random((96, 96, 1)).astype(np.float32)
    whole = sliding_window(unet2d, image, (96, 96), (96, 96), stride=4)[..., 0]
    abut = sliding_window(
        unet2d, image, (32, 32), (32, 32), overlap=0.0, blend="constant", stride=4
    )[..., 0]
    blended = sliding_window(unet2d, image, (32, 32), (32, 32), overlap=0.5, stride=4)[..., 0]
    seams = np.zeros((96, 96), bool)
    seams[[31, 32, 63, 64], :] = True
    seams[:, [31, 32, 63, 64]] = True
    err_abut = np.abs(abut - whole)[seams].mean()
    err_blend = np.abs(blended - whole)[seams].mean()
    assert err_abut > 0  # there are seams to remove
    assert err_blend < 0.5 * err_abut


def test_flip_tta_is_flip_equivariant(unet2d):
    """TTA averages all 4 flips: the prediction of a flipped image is the flipped prediction;
    without TTA it is not."""
    image = np.random.default_rng(2).random((32, 32, 1)).astype(np.float32)

    def run(x, tta):
        return sliding_window(unet2d, x, (32, 32), (32, 32), overlap=0.0, stride=4, tta=tta)

    for tta, equal in ((True, True), (False, False)):
        for flip in ((0,), (1,), (0, 1)):
            flipped = np.flip(run(np.flip(image, flip), tta), flip)
            assert np.allclose(flipped, run(image, tta), atol=1e-5) == equal


def test_importance_map_and_window_starts():
    g = importance_map((9, 5))
    assert g.shape == (9, 5) and g[4, 2] == 1.0 and g.min() > 0
    np.testing.assert_allclose(g, g[::-1, ::-1])
    assert np.all(importance_map((4, 4), "constant") == 1)
    with pytest.raises(ValueError, match="blend must be"):
        importance_map((4,), "linear")
    assert window_starts(28, 12, 8) == [0, 8, 16]
    assert window_starts(10, 12, 8) == [0]
    assert window_starts(29, 12, 8) == [0, 8, 16, 24]


def test_bad_arguments(unet2d):
    image = np.zeros((32, 32, 1), np.float32)
    with pytest.raises(ValueError, match="overlap must be in"):
        sliding_window(unet2d, image, (32, 32), (32, 32), overlap=1.0)
    with pytest.raises(ValueError, match="is 2D with channels"):
        sliding_window(unet2d, image, (32, 32, 32), (32, 32, 32))
