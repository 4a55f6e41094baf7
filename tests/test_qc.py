"""Whitespace/grayspace filters, Otsu and blur QC, and tile selection on a synthetic slide."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from jaxwsi.slide import WSI, blur_mask, otsu_mask
from jaxwsi.slide.filters import footprint_fractions, gray_mask, saturation, white_mask
from jaxwsi.testing import synthetic_slide


def test_saturation_and_pixel_masks():
    rgb = np.array([[[255, 255, 255], [231, 231, 231], [230, 230, 230], [200, 100, 100],
                     [0, 0, 0], [100, 96, 100]]], np.uint8)  # fmt: skip
    np.testing.assert_allclose(saturation(rgb)[0], [0, 0, 0, 0.5, 0, 0.04], atol=1e-6)
    assert white_mask(rgb)[0].tolist() == [True, True, False, False, False, False]
    assert gray_mask(rgb)[0].tolist() == [True, True, True, False, True, True]
    assert white_mask(rgb, threshold=199)[0].tolist() == [True, True, True, False, False, False]


def test_footprint_fractions():
    mask = np.zeros((8, 8), bool)
    mask[:, :4] = True  # left half masked
    corners = np.array([[0, 0], [8, 0], [4, 8], [12, 12]])  # level-0 px at downsample 2
    fractions = footprint_fractions(mask, 2.0, corners, footprint=8)
    np.testing.assert_allclose(fractions, [1.0, 0.0, 0.5, 0.75])
    # Outside the mask counts as `outside`.
    np.testing.assert_allclose(footprint_fractions(mask, 2.0, [[12, 12]], 8, outside=0.0), [0.0])


def _pink_on_white(height=64, width=64):
    rgb = np.full((height, width, 3), 250, np.uint8)
    rgb[:, width // 2 :] = (220, 140, 190)
    return rgb


def test_otsu_masks_background():
    mask = otsu_mask(_pink_on_white())
    assert mask[:, :28].all()
    assert not mask[:, 36:].any()
    assert otsu_mask(np.full((16, 16, 3), 255, np.uint8)).all()
    assert not otsu_mask(np.full((16, 16, 3), (220, 140, 190), np.uint8)).any()


def test_blur_masks_smooth_areas():
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (64, 64, 1), dtype=np.uint8).repeat(3, axis=2)
    blurred = ndimage.gaussian_filter(sharp.astype(float), sigma=(8, 8, 0)).astype(np.uint8)
    image = np.concatenate([sharp, blurred], axis=1)
    mask = blur_mask(image)
    assert mask[:, 80:].mean() > 0.95
    assert mask[:, :48].mean() < 0.05


@pytest.fixture(scope="module")
def wsi(tmp_path_factory):
    path = tmp_path_factory.mktemp("qc") / "slide.tiff"
    synthetic_slide(path, width=1536, height=1024, mpp=0.5, num_levels=3, seed=5)
    with WSI(path, 64, 64) as wsi:
        yield wsi


def test_filter_fractions_match_full_resolution_tiles(wsi):
    """Fractions from the thumbnail agree with those of the tiles read at full resolution."""
    selection = wsi.select_tiles()
    indices = np.arange(0, len(wsi), 5)
    for i, tile in wsi.read_tiles(indices):
        assert abs(selection.whitespace[i] - white_mask(tile).mean()) < 0.1
        assert abs(selection.grayspace[i] - gray_mask(tile).mean()) < 0.1


def test_selection_rules(wsi):
    default = wsi.select_tiles()
    np.testing.assert_array_equal(default.keep, default.grayspace <= 0.6)
    assert 0 < default.keep.sum() < len(wsi)
    white = wsi.select_tiles(whitespace_fraction=0.1, grayspace_fraction=1.0)
    np.testing.assert_array_equal(white.keep, white.whitespace <= 0.1)
    everything = wsi.select_tiles(grayspace_fraction=1.0)
    assert everything.keep.all()
    assert everything.qc_mask is None


def test_otsu_qc_on_slide(wsi):
    selection = wsi.select_tiles(qc="otsu", grayspace_fraction=1.0)
    image, _ = wsi.thumbnail()
    assert selection.qc_mask.shape == image.shape[:2]
    np.testing.assert_array_equal(selection.keep, selection.qc_masked <= 0.6)
    # Otsu separates the synthetic tissue from glass about as well as the gray filter does.
    gray = wsi.select_tiles().keep
    assert (selection.keep == gray).mean() > 0.9
    both = wsi.select_tiles(qc="both", grayspace_fraction=1.0)
    assert (both.qc_masked >= selection.qc_masked - 1e-9).all()


def test_custom_qc(wsi):
    def left_half(rgb):
        mask = np.zeros(rgb.shape[:2], bool)
        mask[:, : rgb.shape[1] // 2] = True
        return mask

    selection = wsi.select_tiles(qc=left_half, grayspace_fraction=1.0)
    centres = wsi.locations[selection.keep]
    assert len(centres) and (centres[:, 0] > 1536 / 2).all()
    assert (wsi.locations[~selection.keep][:, 0] < 1536 / 2).all()

    with pytest.raises(ValueError, match="returned shape"):
        wsi.select_tiles(qc=lambda rgb: np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="qc must be one of"):
        wsi.select_tiles(qc="sharpness")
