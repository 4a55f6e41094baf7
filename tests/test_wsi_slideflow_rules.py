"""The two rules where Slideflow and jaxwsi differ by design, under both options, on a pyramid
TIFF made here: which pyramid level a tile is read from (``level_rule``) and which pixels the
whitespace/grayspace filters judge a tile on (``filter_rule``). Expected values are computed from
OpenSlide's ``read_region`` following Slideflow 3.0.2's code (``slide/wsi.py``,
``slide/backends/vips.py``) and libvips' ``sRGB2HSV``."""

from __future__ import annotations

import numpy as np
import openslide
import pytest

from jaxwsi.slide import WSI
from jaxwsi.slide.grid import slideflow_filter_crop
from jaxwsi.slide.wsi import resize_tile, rgba_to_rgb
from jaxwsi.testing import synthetic_slide

MPP = 0.5


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    """1024 × 768 px at 0.5 µm/px with levels 1x, 2x, 4x, 8x, half of it tissue."""
    path = tmp_path_factory.mktemp("rules") / "pyramid.tiff"
    return synthetic_slide(path, width=1024, height=768, mpp=MPP, num_levels=4, seed=3)


def read_region(path, level, corner, size):
    with openslide.OpenSlide(path) as slide:
        return rgba_to_rgb(np.asarray(slide.read_region(tuple(map(int, corner)), level, size)))


def test_exact_downsample_is_read_directly_or_from_the_finer_level(slide_path):
    # 64 px covering 64 µm at 0.5 µm/px needs downsample 2, which level 1 has exactly.
    with WSI(slide_path, 64, 64) as direct, WSI(slide_path, 64, 64, level_rule="slideflow") as sf:
        assert (direct.geometry.level, direct.geometry.extract_px) == (1, 64)
        assert (sf.geometry.level, sf.geometry.extract_px) == (0, 128)  # strictly below 2
        np.testing.assert_array_equal(direct.locations, sf.locations)  # the same tiles ...
        indices = [0, 5, len(direct) - 1]
        direct_tiles = dict(direct.read_tiles(indices))
        sf_tiles = dict(sf.read_tiles(indices))
        for i in indices:
            corner = direct.corners[i]
            np.testing.assert_array_equal(
                direct_tiles[i], read_region(slide_path, 1, corner, (64, 64))
            )
            expected = resize_tile(read_region(slide_path, 0, corner, (128, 128)), 64)
            np.testing.assert_array_equal(sf_tiles[i], expected)
        # ... with other pixels: a resize of level 0 is not the pyramid's own level 1.
        assert any(not np.array_equal(direct_tiles[i], sf_tiles[i]) for i in indices)


def test_between_levels_both_rules_read_the_same_level(slide_path):
    # Downsample 3 lies between levels: both read level 1 (2x) and resize.
    with WSI(slide_path, 64, 96) as direct, WSI(slide_path, 64, 96, level_rule="slideflow") as sf:
        assert direct.geometry == sf.geometry


def slideflow_gray_fractions(path, wsi, threshold=0.05):
    """Per tile, Slideflow's gray fraction: a crop of the coarsest level with downsample below
    extract_px, origin int(x / downsample), side extract_px // (ratio of the downsamples), HSV
    saturation as libvips computes it in 8 bits, compared with threshold · 255."""
    downsamples = wsi.level_downsamples
    extract_px = wsi.geometry.extract_px
    filter_level = max(i for i, d in enumerate(downsamples) if d < extract_px)
    ratio = int(downsamples[filter_level] // downsamples[wsi.geometry.level])
    side = extract_px // ratio
    ds = downsamples[filter_level]
    level_image = read_region(path, filter_level, (0, 0), wsi.level_dimensions[filter_level])
    fractions = []
    for x, y in wsi.corners:
        crop = level_image[int(y / ds) : int(y / ds) + side, int(x / ds) : int(x / ds) + side]
        crop = crop.astype(np.float32)
        high, low = crop.max(axis=-1), crop.min(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(high > 0, (high - low) * np.float32(255.0) / high, 0).astype(np.uint8)
        fractions.append(float(np.mean(s < threshold * 255)))
    return np.array(fractions), filter_level, side


def test_grayspace_on_slideflow_crops_or_on_the_thumbnail(slide_path):
    with WSI(slide_path, 64, 128) as wsi:  # level 2 (4x), 64 px per tile
        expected, filter_level, side = slideflow_gray_fractions(slide_path, wsi)
        assert (filter_level, side) == (3, 32)  # level 3 (8x) is the coarsest below 64
        crops = wsi.select_tiles(filter_rule="slideflow")
        np.testing.assert_allclose(crops.grayspace, expected)
        np.testing.assert_array_equal(crops.keep, crops.in_roi & (expected <= 0.6))
        thumbnail = wsi.select_tiles()  # the default rule
        assert not np.allclose(thumbnail.grayspace, crops.grayspace)
        np.testing.assert_array_equal(
            thumbnail.keep, thumbnail.in_roi & (thumbnail.grayspace <= 0.6)
        )
        # Both see the same tissue: tiles far from the threshold agree.
        clear = np.abs(crops.grayspace - 0.6) > 0.3
        assert clear.sum() > len(wsi) // 2
        np.testing.assert_array_equal(thumbnail.keep[clear], crops.keep[clear])
    with pytest.raises(ValueError, match="filter_rule must be one of"):
        WSI(slide_path, 64, 128).select_tiles(filter_rule="vips")
    with pytest.raises(ValueError, match="level_rule must be one of"):
        WSI(slide_path, 64, 128, level_rule="strict")


def test_without_a_coarser_level_the_tile_itself_is_judged(tmp_path):
    # A slide without a pyramid: Slideflow judges each tile on its own pixels at level 0.
    path = synthetic_slide(tmp_path / "flat.tiff", width=512, height=384, num_levels=1, seed=4)
    with WSI(path, 64, 32) as wsi:
        assert (wsi.geometry.level, wsi.geometry.extract_px) == (0, 64)
        expected, filter_level, side = slideflow_gray_fractions(path, wsi)
        assert (filter_level, side) == (0, 64)
        np.testing.assert_allclose(wsi.select_tiles(filter_rule="slideflow").grayspace, expected)


@pytest.mark.parametrize("level_rule", ["direct", "slideflow"])
def test_extraction_settings_carry_both_rules_to_the_tiles(slide_path, tmp_path, level_rule):
    import io

    from PIL import Image

    from jaxwsi.io import read_records
    from jaxwsi.slide import extract_tiles

    report = extract_tiles(
        [slide_path], tmp_path, 64, 64, img_format="png", num_workers=0, progress=False,
        level_rule=level_rule, filter_rule="slideflow",
    )  # fmt: skip
    assert int(report.loc[0, "level"]) == (1 if level_rule == "direct" else 0)
    records = list(read_records(tmp_path / "64px_64um" / "pyramid.tfrecords"))
    with WSI(slide_path, 64, 64, level_rule=level_rule) as wsi:
        selection = wsi.select_tiles(filter_rule="slideflow")
        kept = np.flatnonzero(selection.keep)
        assert len(records) == len(kept)
        tiles = dict(wsi.read_tiles(kept))
    by_location = {tuple(wsi.locations[i]): tiles[i] for i in kept}
    for record in records:
        image = np.asarray(Image.open(io.BytesIO(record["image_raw"])))
        location = (int(record["loc_x"][0]), int(record["loc_y"][0]))
        np.testing.assert_array_equal(image, by_location[location])


def test_boxes_tiff_keeps_the_tiles_slideflow_keeps(fixtures_dir):
    """Issue 14: on boxes.tiff, where Slideflow judges tiles on 6 x 6 px crops, Slideflow 3.0.2
    kept 21 tiles and jaxwsi's thumbnail rule 17. 50 px tiles over 50 level-0 px are such a
    setting (30 grid tiles, level 3 crops of 6 px)."""
    path = fixtures_dir / "slides" / "boxes.tiff"
    with WSI(path, 50, int(50 * 352.77777983377013)) as wsi:
        assert len(wsi) == 30
        assert slideflow_filter_crop(wsi.level_downsamples, 0, wsi.geometry.extract_px) == (3, 6)
        expected, _, _ = slideflow_gray_fractions(path, wsi)
        crops = wsi.select_tiles(filter_rule="slideflow")
        np.testing.assert_allclose(crops.grayspace, expected)
        assert int(crops.keep.sum()) == 21
        assert int(wsi.select_tiles().keep.sum()) == 17
