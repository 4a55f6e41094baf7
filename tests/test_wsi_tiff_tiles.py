"""Direct TIFF tile decoding: used only where it equals OpenSlide; errors reported as SlideError."""

from __future__ import annotations

import numpy as np
import openslide
import pytest
import tifffile

from jaxwsi.slide import WSI, SlideError
from jaxwsi.slide.tiff_tiles import TiffLevelReader
from jaxwsi.slide.wsi import rgba_to_rgb
from jaxwsi.testing import synthetic_slide


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiff") / "slide.tiff"
    return synthetic_slide(path, width=1000, height=760, mpp=0.5, num_levels=3, seed=2)


def _openslide_region(path, level, corner, size):
    with openslide.OpenSlide(path) as slide:
        origin = tuple(int(c * slide.level_downsamples[level]) for c in corner)
        return rgba_to_rgb(np.asarray(slide.read_region(origin, level, size)))


def test_reader_equals_openslide_everywhere_including_edges(slide_path):
    with openslide.OpenSlide(slide_path) as slide:
        sizes = slide.level_dimensions
    for level, size in enumerate(sizes):
        reader = TiffLevelReader.open(slide_path, size)
        assert reader is not None
        corners = [(0, 0), (200, 180), (size[0] - 50, size[1] - 40), (-20, -10)]
        regions = [(300, 200), (333, 257), (120, 90), (64, 64)]
        for corner, region in zip(corners, regions, strict=True):
            np.testing.assert_array_equal(
                reader.read(*corner, *region), _openslide_region(slide_path, level, corner, region)
            )
        reader.close()


def test_wsi_uses_it_only_where_verified(slide_path, fixtures_dir):
    with WSI(slide_path, 64, 64) as wsi:
        assert all(wsi._tiff_reader(level) is not None for level in range(3))
    # An Aperio SVS whose JPEG tiles need the page's shared JPEG tables.
    with WSI(fixtures_dir / "slides" / "small.svs", 8, 4) as wsi:
        assert wsi._tiff_reader(0) is not None
        tiles = dict(wsi.read_tiles(range(4)))
    with openslide.OpenSlide(fixtures_dir / "slides" / "small.svs") as slide:
        region = rgba_to_rgb(np.asarray(slide.read_region((0, 0), 0, (16, 16))))
    np.testing.assert_array_equal(tiles[3], region[8:, 8:])
    # Deflate-compressed boxes.tiff has no JPEG tiles: OpenSlide reads it.
    with WSI(fixtures_dir / "slides" / "boxes.tiff", 32, 32 * 352.78) as wsi:
        assert wsi._tiff_reader(0) is None
        assert len(list(wsi.read_tiles(range(len(wsi))))) == len(wsi)


def test_disagreement_falls_back_to_openslide(slide_path, monkeypatch):
    real_read = TiffLevelReader.read

    def off_by_one(self, *args):
        return real_read(self, *args) ^ 1

    monkeypatch.setattr(TiffLevelReader, "read", off_by_one)
    with WSI(slide_path, 64, 64) as wsi:
        assert wsi._tiff_reader(wsi.geometry.level) is None
        ((index, tile),) = wsi.read_tiles([5])
        corner = wsi.level_corners[index]
        expected = _openslide_region(slide_path, wsi.geometry.level, corner, (64, 64))
        np.testing.assert_array_equal(tile, expected)


def test_corrupt_tile_is_a_slide_error(slide_path, tmp_path):
    broken = tmp_path / "broken.tiff"
    data = bytearray(slide_path.read_bytes())
    with tifffile.TiffFile(slide_path) as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[3], page.databytecounts[3]
    data[offset : offset + count] = b"\x00" * count  # level-0 TIFF tile at x 768-1000, y 0-255
    broken.write_bytes(bytes(data))
    with WSI(broken, 64, 32) as wsi:  # level 0, 64 px tiles: grid tile 12 has corner (768, 0)
        assert wsi._tiff_reader(0) is not None  # the central tiles check out
        assert wsi.level_corners[12].tolist() == [768, 0]
        with pytest.raises(SlideError, match=r"broken\.tiff: cannot decode region at \(768, 0\)"):
            list(wsi.read_tiles([12]))
