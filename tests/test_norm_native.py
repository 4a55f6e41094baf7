"""The native (Rust) stain-normalization kernels against the numpy reference code they replace."""

from __future__ import annotations

import numpy as np
import pytest

from jaxwsi import _native
from jaxwsi.norm import NORMALIZERS, autoselect

NATIVE_METHODS = sorted(m for m in NORMALIZERS if NORMALIZERS[m].has_native)


@pytest.fixture(scope="module")
def fitted(histo) -> dict:
    return {method: autoselect(method, histo) for method in NATIVE_METHODS}


def assert_within_one_level(native: np.ndarray, reference: np.ndarray) -> None:
    """At most one grey level apart anywhere, and equal almost everywhere."""
    assert native.dtype == np.uint8 and native.shape == reference.shape
    difference = np.abs(native.astype(np.int16) - reference.astype(np.int16))
    assert difference.max() <= 1, difference.max()
    assert (difference > 0).mean() < 0.01, (difference > 0).mean()


def mixed_batch(histo: np.ndarray, restained: np.ndarray) -> np.ndarray:
    """Tissue, re-stained tissue, half background, random noise, white, black: 64 px each."""
    half = histo[:64, 300:364].copy()
    half[:, 32:] = 247
    noise = np.random.default_rng(7).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return np.stack(
        [
            histo[:64, :64],
            restained[200:264, 100:164],
            half,
            noise,
            np.full((64, 64, 3), 255, np.uint8),
            np.zeros((64, 64, 3), np.uint8),
        ]
    )


def test_normalizers_with_kernels_are_the_expected_ones():
    assert NATIVE_METHODS == ["macenko", "reinhard", "reinhard_fast", "reinhard_mask"]


@pytest.mark.parametrize("method", NATIVE_METHODS)
def test_native_matches_reference_on_whole_images(method, histo, restained, fitted):
    normalizer = fitted[method]
    for image in (histo, restained):
        native = normalizer.transform(image)
        assert_within_one_level(native, normalizer.transform(image, native=False))
        # The image really changed (not a pass-through that trivially agrees).
        if image is restained:
            assert np.abs(native.astype(np.int16) - image).mean() > 3


@pytest.mark.parametrize("method", NATIVE_METHODS)
def test_native_matches_reference_on_a_mixed_batch_with_jitter(method, histo, restained, fitted):
    normalizer = fitted[method]
    batch = mixed_batch(histo, restained)
    rng = np.random.default_rng(1)
    for jitter in (None, rng.standard_normal((len(batch), normalizer.jitter_size))):
        native = normalizer.transform(batch, jitter=jitter)
        assert_within_one_level(native, normalizer.transform(batch, jitter=jitter, native=False))


@pytest.mark.parametrize("method", NATIVE_METHODS)
def test_native_matches_reference_on_random_batches(method, fitted):
    rng = np.random.default_rng(2)
    normalizer = fitted[method]
    for shape in ((1, 17, 23, 3), (5, 9, 31, 3)):
        # Random colours around an H&E tint, with random white background.
        tint = rng.integers(60, 230, (shape[0], 1, 1, 3))
        noise = rng.integers(-40, 40, shape)
        batch = np.clip(tint + noise, 0, 255).astype(np.uint8)
        batch[rng.random(shape[:3]) < 0.3] = 250
        native = normalizer.transform(batch)
        assert_within_one_level(native, normalizer.transform(batch, native=False))


@pytest.mark.parametrize("method", NATIVE_METHODS)
def test_all_white_tile(method, fitted):
    white = np.full((40, 40, 3), 255, np.uint8)
    native = fitted[method].transform(white)
    np.testing.assert_array_equal(native, fitted[method].transform(white, native=False))
    if method in ("reinhard_mask", "macenko"):  # no tissue: returned unchanged
        np.testing.assert_array_equal(native, white)


@pytest.mark.parametrize("method", NATIVE_METHODS)
def test_native_is_per_image_and_leaves_the_input_alone(method, histo, restained, fitted):
    normalizer = fitted[method]
    batch = mixed_batch(histo, restained)
    before = batch.copy()
    together = normalizer.transform(batch)
    np.testing.assert_array_equal(batch, before)
    for image, out in zip(batch, together, strict=True):
        np.testing.assert_array_equal(normalizer.transform(image), out)
    # A non-contiguous view gives the same result as its contiguous copy.
    view = histo[::2, ::3]
    np.testing.assert_array_equal(normalizer.transform(view), normalizer.transform(view.copy()))


def test_kernels_reject_mismatched_arguments():
    images = np.zeros((2, 4, 4, 3), np.uint8)
    out = np.empty_like(images)
    options = {
        "brightness_percentile": None,
        "mask_threshold": None,
        "min_std": 0.1,
        "min_tissue_pixels": 16,
    }
    means = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="target_stds must have 3 values per image for 2"):
        _native.reinhard_transform(images, means, np.ones((1, 3), np.float32), out, **options)
    with pytest.raises(ValueError, match="output"):
        _native.reinhard_transform(images, means, means, out[:1], **options)
    with pytest.raises(ValueError, match="images must be"):
        _native.od_tissue_covariance(np.zeros((1, 4, 4, 4), np.uint8), 0.15)
    with pytest.raises(ValueError, match="contiguous"):
        _native.od_tissue_covariance(images[:, ::2], 0.15)
    with pytest.raises(ValueError, match="one flag per image"):
        _native.od_reconstruct(
            images,
            np.zeros((2, 2, 3), np.float32),
            np.zeros((2, 3, 2), np.float32),
            np.ones((2, 2), np.float32),
            np.ones(3, bool),
            99.0,
            out,
        )
