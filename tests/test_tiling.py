"""Tile geometry: pyramid level choice for µm and magnification sizes, labels and grids."""

from __future__ import annotations

import numpy as np
import pytest

from jaxwsi.slide import SlideError, grid_positions, tile_geometry, tile_size_label
from jaxwsi.slide.grid import parse_tile_um, slideflow_filter_crop

PYRAMID = (1.0, 2.0, 4.0, 8.0)


@pytest.mark.parametrize(
    ("tile_px", "tile_um", "level", "extract_px"),
    [
        (100, 200, 2, 100),  # needs downsample 4 exactly: level 2, no resize
        (100, 150, 1, 150),  # needs 3: largest level not above it is 2x, read 150 px
        (100, 1000, 3, 250),  # needs 20: the coarsest level (8x), read 250 px
        (200, 50, 0, 100),  # needs 0.5: level 0, upsampled from 100 px
    ],
)
def test_level_for_microns(tile_px, tile_um, level, extract_px):
    g = tile_geometry(tile_px, tile_um, 0.5, PYRAMID)
    assert (g.level, g.extract_px) == (level, extract_px)
    assert g.full_extract_px == round(extract_px * PYRAMID[level])
    assert g.full_extract_px * 0.5 == pytest.approx(tile_um, abs=PYRAMID[level] * 0.5)
    assert g.tile_um == tile_um


def test_non_integer_downsample_counts_as_its_rounded_value():
    # boxes.tiff's third level has downsample 4.016: still chosen for a needed downsample of 4.
    g = tile_geometry(64, 64 * 4 * 0.5, 0.5, (1.0, 2.0, 4.016))
    assert g.level == 2


@pytest.mark.parametrize(
    ("magnification", "level", "extract_px"),
    [("10x", 1, 100), ("2.5x", 2, 100), ("40x", 0, 100), ("13x", 1, 77), ("5X", 1, 200)],
)
def test_level_for_magnification(magnification, level, extract_px):
    # A 40x slide (0.25 µm/px) with 4x and 16x levels: 40x, 10x, 2.5x.
    g = tile_geometry(100, magnification, 0.25, (1.0, 4.0, 16.0))
    assert (g.level, g.extract_px) == (level, extract_px)
    assert g.tile_um == pytest.approx(100 * 10 / float(magnification[:-1]))


def test_magnification_without_a_level_within_2x():
    with pytest.raises(SlideError, match=r"slide\.svs: no pyramid level within 2x of 1x"):
        tile_geometry(100, "1x", 0.25, (1.0, 4.0, 16.0), slide_name="slide.svs")
    with pytest.raises(SlideError, match="within 2x of 100x"):
        tile_geometry(100, "100x", 0.25, (1.0, 4.0, 16.0))


def test_stride():
    assert tile_geometry(100, 200, 0.5, PYRAMID, stride_div=2).stride_px == 50
    assert tile_geometry(100, 200, 0.5, PYRAMID, stride_div=3).stride_px == 33


@pytest.mark.parametrize("bad", ["10", "x10", "-2x", "0x", 0, -5, True, None])
def test_bad_tile_um(bad):
    with pytest.raises(ValueError, match="tile_um"):
        tile_geometry(100, bad, 0.5, PYRAMID)


def test_labels():
    assert tile_size_label(299, 302) == "299px_302um"
    assert tile_size_label(299, "10x") == "299px_10x"
    assert tile_size_label(256, "2.5x") == "256px_2.5x"
    assert tile_size_label(256, 128.5) == "256px_128.5um"


def test_grid_counts():
    assert len(grid_positions((1000, 500), 100, 100, False)) == 10 * 5
    assert len(grid_positions((1000, 500), 100, 50, False)) == 19 * 9
    assert len(grid_positions((1050, 500), 100, 100, False)) == 10 * 5
    assert len(grid_positions((1050, 500), 100, 100, True)) == 11 * 5
    assert len(grid_positions((99, 500), 100, 100, False)) == 0
    assert len(grid_positions((99, 500), 100, 100, True)) == 5


def test_grid_is_row_major_top_left_corners():
    corners = grid_positions((300, 200), 100, 100, False)
    np.testing.assert_array_equal(
        corners, [[0, 0], [100, 0], [200, 0], [0, 100], [100, 100], [200, 100]]
    )


@pytest.mark.parametrize(
    ("tile_px", "tile_um", "direct", "slideflow"),
    [
        (100, 200, (2, 100), (1, 200)),  # needs 4 exactly: read level 2, or level 1 and resize
        (100, 100, (1, 100), (0, 200)),  # needs 2 exactly
        (100, 150, (1, 150), (1, 150)),  # needs 3: between levels, both read 2x
        (100, 50, (0, 100), (0, 100)),  # needs 1: level 0 either way
    ],
)
def test_level_rules(tile_px, tile_um, direct, slideflow):
    for rule, expected in (("direct", direct), ("slideflow", slideflow)):
        g = tile_geometry(tile_px, tile_um, 0.5, PYRAMID, level_rule=rule)
        assert (g.level, g.extract_px) == expected
        assert g.full_extract_px == tile_um * 2  # the same tile on the slide either way
    # Slideflow's strict rule ignores the 1% tolerance for near-exact downsamples.
    assert tile_geometry(64, 128, 0.5, (1.0, 2.0, 4.016), level_rule="slideflow").level == 1


@pytest.mark.parametrize(
    ("level", "extract_px", "crop"),
    [
        (2, 64, (3, 32)),  # coarsest level below 64 is 8x: ratio 2, a 32-px crop
        (0, 256, (3, 32)),  # from level 0: ratio 8
        (3, 100, (3, 100)),  # already the coarsest: the tile itself
        (0, 2, (0, 2)),  # only level 0 is below 2: the tile itself
    ],
)
def test_slideflow_filter_crop(level, extract_px, crop):
    assert slideflow_filter_crop(PYRAMID, level, extract_px) == crop


@pytest.mark.parametrize(
    ("text", "value"), [("302", 302), ("302.5", 302.5), ("10x", "10x"), ("2.5X", "2.5x")]
)
def test_parse_tile_um(text, value):
    assert parse_tile_um(text) == value
    assert type(parse_tile_um(text)) is type(value)


@pytest.mark.parametrize("text", ["-4", "0", "abc", "nan", "10y"])
def test_parse_tile_um_rejects_what_is_not_a_size(text):
    with pytest.raises(ValueError, match="tile_um must be a positive number"):
        parse_tile_um(text)
