"""WSI: opening, MPP, grid locations, batched tile reads equal openslide's read_region, errors."""

from __future__ import annotations

import types

import numpy as np
import openslide
import pytest

from jaxwsi.slide import WSI, MissingMPPError, SlideError
from jaxwsi.slide import wsi as wsi_module
from jaxwsi.slide.wsi import detect_mpp, resize_tile, rgba_to_rgb
from jaxwsi.testing import synthetic_slide


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    """1000 × 760 px at 0.5 µm/px, levels 1x, 2x, 4x (sizes not multiples of the tiles)."""
    path = tmp_path_factory.mktemp("wsi") / "slide.tiff"
    return synthetic_slide(path, width=1000, height=760, mpp=0.5, num_levels=3, seed=1)


def _read_region(path, level, corner, size):
    with openslide.OpenSlide(path) as slide:
        return rgba_to_rgb(np.asarray(slide.read_region(tuple(map(int, corner)), level, size)))


def test_geometry_and_locations(slide_path):
    with WSI(slide_path, 100, 200) as wsi:  # 400 level-0 px → level 2 (4x), 100 px, no resize
        assert wsi.mpp == pytest.approx(0.5)
        assert (wsi.geometry.level, wsi.geometry.extract_px) == (2, 100)
        assert wsi.dimensions == (1000, 760)
        # Level 2 is 250 × 190: 2 × 1 whole tiles.
        np.testing.assert_array_equal(wsi.corners, [[0, 0], [400, 0]])
        np.testing.assert_array_equal(wsi.locations, [[200, 200], [600, 200]])
    with WSI(slide_path, 100, 200, stride_div=2) as wsi:
        assert len(wsi) == 4 * 2
    with WSI(slide_path, 100, 200, use_edge_tiles=True) as wsi:
        assert len(wsi) == 3 * 2


def test_tiles_equal_read_region(slide_path):
    """Batched reads give exactly what one read_region per tile gives, at the stored location."""
    with WSI(slide_path, 64, 64, stride_div=2) as wsi:  # level 1, 64 px, overlapping tiles
        g = wsi.geometry
        assert (g.level, g.extract_px, g.full_extract_px) == (1, 64, 128)
        indices = np.arange(0, len(wsi), 3)
        tiles = dict(wsi.read_tiles(indices))
        assert sorted(tiles) == indices.tolist()
        for i, tile in tiles.items():
            corner = wsi.locations[i] - g.full_extract_px // 2
            np.testing.assert_array_equal(tile, _read_region(slide_path, 1, corner, (64, 64)))


def test_resized_tiles_equal_resized_read_region(slide_path):
    with WSI(slide_path, 50, 75) as wsi:  # needs 3x: level 1 (2x), read 75 px, resize to 50
        g = wsi.geometry
        assert (g.level, g.extract_px) == (1, 75)
        for i, tile in wsi.read_tiles([0, 4, 7]):
            assert tile.shape == (50, 50, 3)
            corner = wsi.locations[i] - g.full_extract_px // 2
            expected = resize_tile(_read_region(slide_path, 1, corner, (75, 75)), 50)
            np.testing.assert_array_equal(tile, expected)


def test_edge_tiles_are_padded_white(slide_path):
    with WSI(slide_path, 100, 200, use_edge_tiles=True) as wsi:
        index = 2  # level-2 corner (200, 0): 50 px inside the 250-px-wide level, 50 outside
        assert wsi.level_corners[index].tolist() == [200, 0]
        ((_, tile),) = wsi.read_tiles([index])
        assert (tile[:, 50:] == 255).all()
        inside = _read_region(slide_path, 2, wsi.corners[index], (50, 100))
        np.testing.assert_array_equal(tile[:, :50], inside)


def test_magnification(slide_path):
    with WSI(slide_path, 100, "10x") as wsi:  # 1 µm/px = level 1 at 0.5 µm/px
        assert (wsi.geometry.level, wsi.geometry.extract_px) == (1, 100)
        assert wsi.geometry.tile_um == pytest.approx(100)
    with pytest.raises(SlideError, match="no pyramid level within 2x of 50x"):
        WSI(slide_path, 100, "50x")


def test_mpp_override(slide_path):
    with WSI(slide_path, 100, 100, mpp=0.25) as wsi:
        assert wsi.mpp == 0.25
        assert wsi.geometry.level == 2


def test_tiff_resolution_fallback(slide_path):
    no_properties = types.SimpleNamespace(properties={})
    assert detect_mpp(no_properties, slide_path) == pytest.approx(0.5, rel=1e-6)


def test_missing_mpp(tmp_path):
    path = synthetic_slide(tmp_path / "nompp.tiff", width=512, height=512, mpp=None)
    with pytest.raises(MissingMPPError, match=r"nompp\.tiff.*pass mpp="):
        WSI(path, 64, 64)
    with WSI(path, 64, 64, mpp=1.0) as wsi:
        assert len(wsi) == 8 * 8


def test_thumbnail_scale(slide_path):
    with WSI(slide_path, 64, 256) as wsi:  # 512 level-0 px per tile → 64 px: downsample 8
        image, downsample = wsi.thumbnail()
        assert downsample == 8
        assert image.shape == (95, 125, 3)
        # Box-reduced from level 2 (4x) by 2.
        level2 = _read_region(slide_path, 2, (0, 0), (250, 190))
        expected = level2.reshape(95, 2, 125, 2, 3).mean(axis=(1, 3))
        assert np.abs(image - expected).max() <= 1
    with WSI(slide_path, 64, 64) as wsi:  # 128 level-0 px per tile → 64 px: level 1 as it is
        image, downsample = wsi.thumbnail()
        assert downsample == 2
        np.testing.assert_array_equal(image, _read_region(slide_path, 1, (0, 0), (500, 380)))


def test_downsampled_reads_in_strips_match_one_read(slide_path, monkeypatch):
    with WSI(slide_path, 64, 64) as wsi:
        whole, downsample = wsi.read_downsampled(4)  # level 2 as it is, one strip
        monkeypatch.setattr(wsi_module, "_STRIP_PIXELS", 250 * 7)  # strips of 7 rows
        strips, same = wsi.read_downsampled(4)
        assert downsample == same == 4
        np.testing.assert_array_equal(strips, whole)
        reduced, downsample = wsi.read_downsampled(8)  # level 2 box-reduced by 2, 6-row strips
        assert downsample == 8
        monkeypatch.setattr(wsi_module, "_STRIP_PIXELS", 1 << 24)
        np.testing.assert_array_equal(reduced, wsi.read_downsampled(8)[0])


def test_openslide_fixtures(fixtures_dir):
    with WSI(fixtures_dir / "slides" / "small.svs", 8, 4) as wsi:  # 0.499 µm/px, 16 × 16
        assert wsi.mpp == pytest.approx(0.499)
        assert len(wsi) == 4
        assert all(t.shape == (8, 8, 3) for _, t in wsi.read_tiles(range(4)))
    with WSI(fixtures_dir / "slides" / "dicom_boxes" / "boxes_0.dcm", 8, 4) as wsi:
        assert len(wsi) == 4
    with WSI(fixtures_dir / "slides" / "boxes.tiff", 32, 32 * 352.78 * 4) as wsi:
        assert wsi.geometry.level == 2  # downsample 4.016 counts as 4


def test_error_paths(fixtures_dir, tmp_path):
    slides = fixtures_dir / "slides"
    with pytest.raises(SlideError, match=r"missing\.svs: slide file not found"):
        WSI(tmp_path / "missing.svs", 64, 64)
    with pytest.raises(SlideError, match=r"unopenable\.tiff: OpenSlide cannot open.*52479"):
        WSI(slides / "unopenable.tiff", 64, 64)
    (tmp_path / "notes.txt").write_text("not a slide")
    with pytest.raises(SlideError, match=r"notes\.txt: not a slide format"):
        WSI(tmp_path / "notes.txt", 64, 64)
    with (
        WSI(slides / "unreadable.svs", 8, 4) as wsi,
        pytest.raises(SlideError, match=r"unreadable\.svs: cannot read region"),
    ):
        list(wsi.read_tiles([0]))
    with pytest.raises(ValueError, match="mpp must be positive"):
        WSI(slides / "small.svs", 8, 4, mpp=0)
    with pytest.raises(IndexError, match="out of range"), WSI(slides / "small.svs", 8, 4) as wsi:
        list(wsi.read_tiles([4]))
