"""Synthetic slides: openslide reads them as pyramidal generic TIFFs with the requested MPP."""

from __future__ import annotations

import numpy as np
import openslide
import pytest

from jaxwsi.slide.filters import saturation
from jaxwsi.testing import NUM_TISSUE_CLASSES, synthetic_slide


def test_openslide_sees_pyramid_and_mpp(tmp_path):
    path = synthetic_slide(tmp_path / "s.tiff", width=1100, height=1030, mpp=0.25, num_levels=3)
    with openslide.OpenSlide(path) as slide:
        assert slide.properties["openslide.vendor"] == "generic-tiff"
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.25, rel=1e-6)
        assert float(slide.properties["openslide.mpp-y"]) == pytest.approx(0.25, rel=1e-6)
        assert slide.level_count == 3
        assert slide.level_dimensions == ((1100, 1030), (550, 515), (275, 257))
        assert slide.level_downsamples == pytest.approx((1.0, 2.0, 4.0), rel=1e-3)


def test_default_levels_stop_below_512(tmp_path):
    path = synthetic_slide(tmp_path / "s.tiff", width=2048, height=1024)
    with openslide.OpenSlide(path) as slide:
        assert slide.level_dimensions == ((2048, 1024), (1024, 512))


def test_no_mpp_writes_no_resolution(tmp_path):
    path = synthetic_slide(tmp_path / "s.tiff", width=512, height=512, mpp=None)
    with openslide.OpenSlide(path) as slide:
        assert "openslide.mpp-x" not in slide.properties


def _pixels(path):
    with openslide.OpenSlide(path) as slide:
        return np.asarray(slide.read_region((0, 0), 0, slide.dimensions))[..., :3]


def test_seeded_and_deterministic(tmp_path):
    kwargs = {"width": 768, "height": 512, "tissue_class": 1}
    a = _pixels(synthetic_slide(tmp_path / "a.tiff", seed=3, **kwargs))
    b = _pixels(synthetic_slide(tmp_path / "b.tiff", seed=3, **kwargs))
    c = _pixels(synthetic_slide(tmp_path / "c.tiff", seed=4, **kwargs))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_tissue_fraction_and_classes_differ(tmp_path):
    stats = []
    for tissue_class in range(NUM_TISSUE_CLASSES):
        rgb = _pixels(
            synthetic_slide(
                tmp_path / f"{tissue_class}.tiff",
                width=1024,
                height=1024,
                tissue_class=tissue_class,
                tissue_fraction=0.5,
            )
        )
        tissue = rgb.mean(axis=-1) < 230
        assert 0.35 < tissue.mean() < 0.65
        dark = (rgb.mean(axis=-1) < 120) & tissue  # nuclei
        stats.append((dark.sum() / tissue.sum(), saturation(rgb)[tissue].mean()))
    # Every pair of classes differs in nucleus density or stain saturation.
    for i in range(len(stats)):
        for j in range(i + 1, len(stats)):
            assert np.abs(np.subtract(stats[i], stats[j])).max() > 0.03, (i, j, stats)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="tissue_class"):
        synthetic_slide(tmp_path / "s.tiff", tissue_class=NUM_TISSUE_CLASSES)
    with pytest.raises(ValueError, match="at least 256"):
        synthetic_slide(tmp_path / "s.tiff", width=100)
    with pytest.raises(ValueError, match="mpp"):
        synthetic_slide(tmp_path / "s.tiff", mpp=-1.0)
